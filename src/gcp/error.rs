//! Typed errors of Google API calls: each names the HTTP method, the URL and Google's status,
//! with the `google.rpc` details Google sent (`ErrorInfo` reason and metadata, `Help` links,
//! `QuotaFailure`, `RetryInfo`) parsed, so the hint can say what to do: enable a disabled API,
//! wait out a quota, grant a permission.

use serde_json::Value as Json;
use std::collections::BTreeMap;
use std::time::Duration;

/// A failed call to a Google API (or the emulator standing in for one).
#[derive(Debug, thiserror::Error)]
pub enum GcpError {
    /// Google answered with an error body.
    #[error("{method} {url}: {code} {status}: {message}{}", api_hint(*.code, details, url))]
    Api {
        method: String,
        url: String,
        code: u16,
        status: String,
        message: String,
        /// What `error.details` said (empty when Google sent none).
        details: Box<ErrorDetails>,
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

/// The `google.rpc` details of an error answer that infra acts on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorDetails {
    /// `ErrorInfo.reason` (`SERVICE_DISABLED`, `RATE_LIMIT_EXCEEDED`, …).
    pub reason: Option<String>,
    /// `ErrorInfo.domain` (`googleapis.com`).
    pub domain: Option<String>,
    /// `ErrorInfo.metadata` (`service`, `consumer`, `quota_metric`, `activationUrl`, …).
    pub metadata: BTreeMap<String, String>,
    /// `Help.links`: (description, url).
    pub help_links: Vec<(String, String)>,
    /// `QuotaFailure.violations`: (subject or quota metric, description).
    pub quota_violations: Vec<(String, String)>,
    /// `RetryInfo.retryDelay`: how long the server asks the client to wait.
    pub retry_delay: Option<Duration>,
}

impl ErrorDetails {
    /// Reads `error.details`: each entry by its `@type`, unknown types skipped; an entry
    /// without `@type` that carries a `reason` is read as an `ErrorInfo` (some front ends
    /// leave the type out).
    pub fn parse(details: &[Json]) -> Self {
        let mut parsed = Self::default();
        for detail in details {
            let kind = detail["@type"].as_str().unwrap_or_default();
            let kind = kind.rsplit('/').next().unwrap_or(kind);
            match kind {
                "google.rpc.ErrorInfo" => parsed.read_error_info(detail),
                "" if detail.get("reason").is_some() => parsed.read_error_info(detail),
                "google.rpc.Help" => {
                    for link in detail["links"].as_array().into_iter().flatten() {
                        if let Some(url) = link["url"].as_str() {
                            let description = link["description"].as_str().unwrap_or_default();
                            parsed
                                .help_links
                                .push((description.to_string(), url.to_string()));
                        }
                    }
                }
                "google.rpc.QuotaFailure" => {
                    for violation in detail["violations"].as_array().into_iter().flatten() {
                        let subject = violation["subject"]
                            .as_str()
                            .or(violation["quotaMetric"].as_str())
                            .unwrap_or_default();
                        let description = violation["description"]
                            .as_str()
                            .or(violation["quotaId"].as_str())
                            .unwrap_or_default();
                        parsed
                            .quota_violations
                            .push((subject.to_string(), description.to_string()));
                    }
                }
                "google.rpc.RetryInfo" => {
                    parsed.retry_delay = detail["retryDelay"].as_str().and_then(proto_duration);
                }
                _ => {}
            }
        }
        parsed
    }

    fn read_error_info(&mut self, detail: &Json) {
        if self.reason.is_some() {
            return;
        }
        self.reason = detail["reason"].as_str().map(str::to_string);
        self.domain = detail["domain"].as_str().map(str::to_string);
        if let Some(metadata) = detail["metadata"].as_object() {
            for (key, value) in metadata {
                if let Some(value) = value.as_str() {
                    self.metadata.insert(key.clone(), value.to_string());
                }
            }
        }
    }

    /// Returns true for `ErrorInfo.reason` `reason`.
    pub fn has_reason(&self, reason: &str) -> bool {
        self.reason.as_deref() == Some(reason)
    }

    /// Returns the consumer project of `ErrorInfo.metadata.consumer` (`projects/123` → `123`).
    pub fn consumer_project(&self) -> Option<&str> {
        let consumer = self.metadata.get("consumer")?;
        Some(
            consumer
                .strip_prefix("projects/")
                .or_else(|| consumer.strip_prefix("project_number:"))
                .unwrap_or(consumer),
        )
    }
}

/// Returns the project a request URL names (`…/projects/ID/…`), if any.
fn project_in_url(url: &str) -> Option<&str> {
    let (_, rest) = url.split_once("/projects/")?;
    let project = rest.split(['/', ':', '?']).next()?;
    (!project.is_empty() && project != "-").then_some(project)
}

/// Reads a proto3 JSON `Duration` ("26s", "1.5s").
fn proto_duration(text: &str) -> Option<Duration> {
    let seconds: f64 = text.trim().strip_suffix('s')?.parse().ok()?;
    Duration::try_from_secs_f64(seconds).ok()
}

/// Returns the hint line for an API error: what `error.details` says to do when Google sent
/// details, else the fix that is the same whatever the call was.
fn api_hint(code: u16, details: &ErrorDetails, url: &str) -> String {
    if details.has_reason("SERVICE_DISABLED") {
        let service = details
            .metadata
            .get("service")
            .map_or("the API", String::as_str);
        // The project id the request named reads better than the number Google reports;
        // gcloud takes either.
        let project = project_in_url(url)
            .or(details.consumer_project())
            .unwrap_or("PROJECT");
        return format!(
            "\n  hint: {service} is not enabled in project {project}: run `gcloud services enable {service} --project {project}`, wait a few minutes for it to propagate, then run again\n  hint: `infra validate` prints the one command that enables every API the environment calls"
        );
    }
    if code == 429 {
        let quota = match (
            details.metadata.get("quota_limit"),
            details.metadata.get("service"),
        ) {
            (Some(limit), Some(service)) => {
                let value = details
                    .metadata
                    .get("quota_limit_value")
                    .map(|value| format!(" ({value})"))
                    .unwrap_or_default();
                format!("the {limit}{value} quota of {service}")
            }
            _ => "the quota".to_string(),
        };
        let increase = details
            .help_links
            .first()
            .map(|(_, url)| format!(", or ask for more: {url}"))
            .unwrap_or_default();
        return format!(
            "\n  hint: still over {quota} after waiting it out as long as infra does (ten times INFRA_QUOTA_RETRY_MIN: 5 minutes by default): run again later, lower --parallelism{increase}"
        );
    }
    match code {
        401 => {
            "\n  hint: the credentials were refused: run `gcloud auth application-default login`, or check GOOGLE_APPLICATION_CREDENTIALS"
        }
        403 => {
            "\n  hint: the account lacks a permission here (the message names it): grant it, or check the project id"
        }
        500..=599 => {
            "\n  hint: the service kept failing after retries: run the command again later"
        }
        _ => "",
    }
    .to_string()
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

    /// Returns the parsed `error.details` of an API error.
    pub fn details(&self) -> Option<&ErrorDetails> {
        match self {
            GcpError::Api { details, .. } => Some(details),
            GcpError::OutcomeUnknown(error) => error.details(),
            _ => None,
        }
    }

    /// Returns true for a call to an API that is not enabled in the project (403 with
    /// `ErrorInfo.reason` `SERVICE_DISABLED`).
    pub fn is_service_disabled(&self) -> bool {
        self.details()
            .is_some_and(|details| details.has_reason("SERVICE_DISABLED"))
    }

    /// Returns true for a quota refusal: 429 with `RESOURCE_EXHAUSTED` or `ErrorInfo.reason`
    /// `RATE_LIMIT_EXCEEDED` (Cloud Storage's per-object `rateLimitExceeded` has neither).
    pub fn is_quota_exhausted(&self) -> bool {
        match self {
            GcpError::Api {
                code: 429,
                status,
                details,
                ..
            } => status == "RESOURCE_EXHAUSTED" || details.has_reason("RATE_LIMIT_EXCEEDED"),
            _ => false,
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
    #[serde(default)]
    pub details: Vec<Json>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn api_error(code: u16, status: &str, details: Json) -> GcpError {
        GcpError::Api {
            method: "GET".into(),
            url: "https://secretmanager.googleapis.com/v1/projects/p/secrets".into(),
            code,
            status: status.into(),
            message: "refused".into(),
            details: Box::new(ErrorDetails::parse(
                details.as_array().map(Vec::as_slice).unwrap_or_default(),
            )),
        }
    }

    #[test]
    fn service_disabled_details_are_read_and_hint_the_enable_command() {
        let error = api_error(
            403,
            "PERMISSION_DENIED",
            json!([
                {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "SERVICE_DISABLED",
                 "domain": "googleapis.com",
                 "metadata": {"service": "secretmanager.googleapis.com", "consumer": "projects/123",
                              "activationUrl": "https://console.developers.google.com/apis/api/secretmanager.googleapis.com/overview?project=123"}},
                {"@type": "type.googleapis.com/google.rpc.LocalizedMessage", "locale": "en-US", "message": "m"},
                {"@type": "type.googleapis.com/google.rpc.Help", "links": [
                    {"description": "Google developers console API activation",
                     "url": "https://console.developers.google.com/apis/api/secretmanager.googleapis.com/overview?project=123"}]}
            ]),
        );
        assert!(error.is_service_disabled());
        let details = error.details().expect("details");
        assert_eq!(details.domain.as_deref(), Some("googleapis.com"));
        assert_eq!(details.consumer_project(), Some("123"));
        assert_eq!(details.help_links.len(), 1);
        let text = error.to_string();
        assert!(
            text.contains(
                "hint: secretmanager.googleapis.com is not enabled in project p: run `gcloud services enable secretmanager.googleapis.com --project p`"
            ),
            "{text}"
        );
        assert!(!text.contains("lacks a permission"), "{text}");
    }

    #[test]
    fn quota_details_are_read_and_name_the_limit() {
        let error = api_error(
            429,
            "RESOURCE_EXHAUSTED",
            json!([
                {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "RATE_LIMIT_EXCEEDED",
                 "domain": "googleapis.com",
                 "metadata": {"service": "secretmanager.googleapis.com", "consumer": "projects/123",
                              "quota_metric": "secretmanager.googleapis.com/write_requests",
                              "quota_limit": "WriteRequestsPerMinutePerProject", "quota_limit_value": "600"}},
                {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [
                    {"subject": "project:123", "description": "write requests"}]},
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "26.5s"},
                {"@type": "type.googleapis.com/google.rpc.Help", "links": [
                    {"description": "Request a higher quota limit.", "url": "https://cloud.google.com/docs/quotas/help/request_increase"}]}
            ]),
        );
        assert!(error.is_quota_exhausted());
        assert!(!error.is_service_disabled());
        let details = error.details().expect("details");
        assert_eq!(
            details.quota_violations,
            vec![("project:123".to_string(), "write requests".to_string())]
        );
        assert_eq!(details.retry_delay, Some(Duration::from_millis(26_500)));
        let text = error.to_string();
        assert!(
            text.contains("over the WriteRequestsPerMinutePerProject (600) quota of secretmanager.googleapis.com"),
            "{text}"
        );
        assert!(
            text.contains("https://cloud.google.com/docs/quotas/help/request_increase"),
            "{text}"
        );
    }

    #[test]
    fn untyped_or_missing_details_fall_back_to_the_plain_hints() {
        let untyped = api_error(
            403,
            "PERMISSION_DENIED",
            json!([{"reason": "SERVICE_DISABLED"}]),
        );
        assert!(untyped.is_service_disabled());
        let plain = api_error(403, "PERMISSION_DENIED", json!([]));
        assert!(!plain.is_service_disabled());
        assert!(plain.to_string().contains("lacks a permission"));
        // Cloud Storage's per-object 429 is no quota refusal.
        let storage = api_error(429, "TOO_MANY_REQUESTS", json!([]));
        assert!(!storage.is_quota_exhausted());
        assert!(api_error(429, "RESOURCE_EXHAUSTED", json!([])).is_quota_exhausted());
    }
}
