//! Google's error responses as the emulator sends them: `{"error": {"code", "message",
//! "status", "details"}}` with the HTTP status that `google.rpc.Code` maps to; `details`
//! (typed `google.rpc` messages such as `ErrorInfo` and `Help`) only when there are some.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// An error the emulator answers with.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: StatusCode,
    pub status: &'static str,
    pub message: String,
    /// `google.rpc` detail messages, each with its `@type`.
    pub details: Vec<serde_json::Value>,
}

impl ApiError {
    /// 400 INVALID_ARGUMENT.
    pub fn invalid_argument(message: impl Into<String>) -> Self {
        Self {
            code: StatusCode::BAD_REQUEST,
            status: "INVALID_ARGUMENT",
            message: message.into(),
            details: Vec::new(),
        }
    }

    /// 400 FAILED_PRECONDITION.
    pub fn failed_precondition(message: impl Into<String>) -> Self {
        Self {
            code: StatusCode::BAD_REQUEST,
            status: "FAILED_PRECONDITION",
            message: message.into(),
            details: Vec::new(),
        }
    }

    /// 404 NOT_FOUND.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self {
            code: StatusCode::NOT_FOUND,
            status: "NOT_FOUND",
            message: message.into(),
            details: Vec::new(),
        }
    }

    /// 409 ALREADY_EXISTS.
    pub fn already_exists(message: impl Into<String>) -> Self {
        Self {
            code: StatusCode::CONFLICT,
            status: "ALREADY_EXISTS",
            message: message.into(),
            details: Vec::new(),
        }
    }

    /// 409 ABORTED: a concurrency conflict (stale etag), per AIP-154.
    pub fn aborted(message: impl Into<String>) -> Self {
        Self {
            code: StatusCode::CONFLICT,
            status: "ABORTED",
            message: message.into(),
            details: Vec::new(),
        }
    }

    /// 503 UNAVAILABLE.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self {
            code: StatusCode::SERVICE_UNAVAILABLE,
            status: "UNAVAILABLE",
            message: message.into(),
            details: Vec::new(),
        }
    }

    /// 501 UNIMPLEMENTED: a method Google serves that the emulator does not.
    pub fn unimplemented(message: impl Into<String>) -> Self {
        Self {
            code: StatusCode::NOT_IMPLEMENTED,
            status: "UNIMPLEMENTED",
            message: message.into(),
            details: Vec::new(),
        }
    }

    /// 405, which Google answers without an RPC status of its own.
    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        Self {
            code: StatusCode::METHOD_NOT_ALLOWED,
            status: "UNIMPLEMENTED",
            message: message.into(),
            details: Vec::new(),
        }
    }

    /// 413: the body is larger than the server takes.
    pub fn payload_too_large(message: impl Into<String>) -> Self {
        Self {
            code: StatusCode::PAYLOAD_TOO_LARGE,
            status: "OUT_OF_RANGE",
            message: message.into(),
            details: Vec::new(),
        }
    }

    /// Any other HTTP status, with the `google.rpc.Code` it maps to.
    pub fn from_status(code: StatusCode, message: impl Into<String>) -> Self {
        let status = match code.as_u16() {
            400 => "INVALID_ARGUMENT",
            401 => "UNAUTHENTICATED",
            403 => "PERMISSION_DENIED",
            404 => "NOT_FOUND",
            409 => "ABORTED",
            412 => "FAILED_PRECONDITION",
            429 => "RESOURCE_EXHAUSTED",
            499 => "CANCELLED",
            501 => "UNIMPLEMENTED",
            503 => "UNAVAILABLE",
            504 => "DEADLINE_EXCEEDED",
            _ if code.is_client_error() => "FAILED_PRECONDITION",
            _ => "INTERNAL",
        };
        Self {
            code,
            status,
            message: message.into(),
            details: Vec::new(),
        }
    }

    /// Returns the error with `details` (`google.rpc.ErrorInfo`, `Help`, …).
    pub fn with_details(mut self, details: Vec<serde_json::Value>) -> Self {
        self.details = details;
        self
    }

    /// 500 INTERNAL.
    pub fn internal(message: impl Into<String>) -> Self {
        Self {
            code: StatusCode::INTERNAL_SERVER_ERROR,
            status: "INTERNAL",
            message: message.into(),
            details: Vec::new(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({"error": {"code": self.code.as_u16(), "message": self.message, "status": self.status}});
        if !self.details.is_empty() {
            body["error"]["details"] = serde_json::Value::Array(self.details);
        }
        (self.code, axum::Json(body)).into_response()
    }
}
