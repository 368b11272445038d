//! Typed errors of Google API calls: each names the HTTP method, the URL and Google's status.

/// A failed call to a Google API (or the emulator standing in for one).
#[derive(Debug, thiserror::Error)]
pub enum GcpError {
    /// Google answered with an error body.
    #[error("{method} {url}: {code} {status}: {message}{}", api_hint(*.code))]
    Api {
        method: String,
        url: String,
        code: u16,
        status: String,
        message: String,
    },
    /// The request never got an answer.
    #[error(
        "{method} {url}: {message}\n  hint: check the network and that the endpoint answers; for slow answers raise INFRA_HTTP_TIMEOUT (default 60s)"
    )]
    Transport {
        method: String,
        url: String,
        message: String,
    },
    /// The answer was not what the API documents.
    #[error(
        "{method} {url}: unexpected response: {message}\n  hint: this is not what the Google API answers: check that the endpoint (INFRA_GCP_ENDPOINT or the environment's endpoint) is the API"
    )]
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
    /// The answer was larger than infra reads (`MAX_BODY_BYTES`): not a Google API answer.
    #[error(
        "{method} {url}: the answer is larger than {limit} bytes{}, more than infra reads\n  hint: this is not what the Google API sends: check that the endpoint (INFRA_GCP_ENDPOINT or the environment's endpoint) is the API",
        declared.map(|size| format!(" ({size} bytes)")).unwrap_or_default()
    )]
    TooLarge {
        method: String,
        url: String,
        limit: usize,
        declared: Option<u64>,
    },
    /// A long-running operation finished with an error.
    #[error("operation {name} failed: {message} (google.rpc.Code {code})")]
    Operation {
        name: String,
        code: i64,
        message: String,
    },
    /// A request that may create something failed after it may have reached the server (a
    /// 5xx, a timeout, a lost connection): it may have committed, so it is not sent again
    /// until the caller has looked up what happened.
    #[error("{0}")]
    OutcomeUnknown(Box<GcpError>),
    /// A long-running operation or retry loop ran out of time.
    #[error("{what}: timed out after {seconds}s")]
    Timeout { what: String, seconds: u64 },
}

/// Returns the hint line for an API error whose fix is the same whatever the call was.
fn api_hint(code: u16) -> &'static str {
    match code {
        401 => {
            "\n  hint: the credentials were refused: run `gcloud auth application-default login`, or check GOOGLE_APPLICATION_CREDENTIALS"
        }
        403 => {
            "\n  hint: the account lacks a permission here (the message names it): grant it, or check the project id"
        }
        429 => {
            "\n  hint: still over quota after retries: wait and run again, or lower --parallelism"
        }
        500..=599 => {
            "\n  hint: the service kept failing after retries: run the command again later"
        }
        _ => "",
    }
}

impl GcpError {
    /// Returns the HTTP status code, for API errors.
    pub fn code(&self) -> Option<u16> {
        match self {
            GcpError::Api { code, .. } => Some(*code),
            GcpError::OutcomeUnknown(error) => error.code(),
            _ => None,
        }
    }

    /// Returns true when a request that may create something may have committed without
    /// infra hearing the answer.
    pub fn is_outcome_unknown(&self) -> bool {
        matches!(self, GcpError::OutcomeUnknown(_))
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

    /// Returns true for Monitoring's refusal of a write made while another edit of the same
    /// project's alerting state was in progress (409, "too many concurrent edits"): refused,
    /// not done, so it may be sent again.
    pub fn is_concurrent_edit_refusal(&self) -> bool {
        match self {
            GcpError::Api {
                code: 409, message, ..
            } => message.to_ascii_lowercase().contains("concurrent"),
            _ => false,
        }
    }

    /// Returns true for answers worth retrying as they are: 429, 500, 502, 503, 504, and no
    /// answer at all. An unknown outcome is not: it is looked up first.
    pub fn is_retryable(&self) -> bool {
        match self {
            GcpError::OutcomeUnknown(_) => false,
            GcpError::Transport { .. } => true,
            _ => matches!(self.code(), Some(429 | 500 | 502 | 503 | 504)),
        }
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
