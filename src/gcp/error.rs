//! Typed errors of Google API calls: each names the HTTP method, the URL and Google's status.

/// A failed call to a Google API (or the emulator standing in for one).
#[derive(Debug, thiserror::Error)]
pub enum GcpError {
    /// Google answered with an error body.
    #[error("{method} {url}: {code} {status}: {message}")]
    Api {
        method: String,
        url: String,
        code: u16,
        status: String,
        message: String,
    },
    /// The request never got an answer.
    #[error("{method} {url}: {message}")]
    Transport {
        method: String,
        url: String,
        message: String,
    },
    /// The answer was not what the API documents.
    #[error("{method} {url}: unexpected response: {message}")]
    Decode {
        method: String,
        url: String,
        message: String,
    },
    /// No credentials could be found or refreshed.
    #[error(
        "credentials: {0}\n  hint: run `gcloud auth application-default login`, or set GOOGLE_APPLICATION_CREDENTIALS"
    )]
    Auth(String),
    /// A long-running operation finished with an error.
    #[error("operation {name} failed: {message} (google.rpc.Code {code})")]
    Operation {
        name: String,
        code: i64,
        message: String,
    },
    /// A long-running operation or retry loop ran out of time.
    #[error("{what}: timed out after {seconds}s")]
    Timeout { what: String, seconds: u64 },
}

impl GcpError {
    /// Returns the HTTP status code, for API errors.
    pub fn code(&self) -> Option<u16> {
        match self {
            GcpError::Api { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// Returns true for 404 NOT_FOUND.
    pub fn is_not_found(&self) -> bool {
        self.code() == Some(404)
    }

    /// Returns true when a read-modify-write lost a race: 409 ABORTED, 412, or 400 FAILED_PRECONDITION
    /// (AIP-154 asks for ABORTED; older services still use the other two).
    pub fn is_concurrency_conflict(&self) -> bool {
        match self {
            GcpError::Api {
                code: 409, status, ..
            } => status == "ABORTED",
            GcpError::Api { code: 412, .. } => true,
            GcpError::Api {
                code: 400, status, ..
            } => status == "FAILED_PRECONDITION",
            _ => false,
        }
    }

    /// Returns true for answers worth retrying as they are: 429, 500, 502, 503, 504.
    pub fn is_retryable(&self) -> bool {
        matches!(self.code(), Some(429 | 500 | 502 | 503 | 504))
            || matches!(self, GcpError::Transport { .. })
    }
}

/// Google's error envelope: `{"error": {"code", "message", "status"}}`.
#[derive(serde::Deserialize)]
pub(crate) struct ErrorEnvelope {
    pub error: ErrorBody,
}

#[derive(serde::Deserialize)]
pub(crate) struct ErrorBody {
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub status: String,
}
