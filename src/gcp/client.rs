//! The REST core every kind uses: endpoint selection (Google, a private or restricted Google
//! endpoint, or an emulator), credentials (chosen by configuration, never by the URL), retries
//! with backoff and jitter that never re-send a request which may have committed (such a
//! failure comes back as `GcpError::OutcomeUnknown` for the kind to look up), `Retry-After`
//! (seconds or HTTP-date, capped) under a total deadline per call, quota refusals waited out
//! from 30 s as Google advises (`QuotaRetry`), Google error bodies (their `details` included)
//! mapped to `GcpError`, per-parent serialization of read-modify-write cycles, and bounded
//! reading of answers (a body past `MAX_BODY_BYTES` is refused, an error body is kept to
//! `MAX_ERROR_BODY_BYTES`), so a misbehaving endpoint cannot exhaust memory. It knows no
//! resource kind.

use super::error::{ErrorDetails, ErrorEnvelope, GcpError};
use reqwest::Method;
use serde_json::Value as Json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Mutex as AsyncMutex;

/// The largest answer infra reads (a state document or a list page is far smaller).
pub const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

/// The most of an error answer infra keeps; Google's error envelopes are a few KiB.
pub const MAX_ERROR_BODY_BYTES: usize = 64 * 1024;

/// How much of an error message infra shows before truncating it.
pub const SHOWN_ERROR_CHARS: usize = 1000;

/// The default per-request timeout, body included.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// The longest `Retry-After` infra honours: Google asks for seconds, and a larger value (or a
/// date far off) must not hang a run.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// How requests are authenticated. The configuration decides; an endpoint URL never does, so
/// a run through `private.googleapis.com`, `restricted.googleapis.com` or a Private Service
/// Connect endpoint still carries credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Authentication {
    /// Application Default Credentials. Their headers are sent as the library builds them,
    /// the quota project (`x-goog-user-project`) included; `quota_project` (the env file's)
    /// applies when ADC names none, and `GOOGLE_CLOUD_QUOTA_PROJECT` overrides both.
    ApplicationDefault { quota_project: Option<String> },
    /// No credentials at all: only for an emulator the configuration names as one.
    None,
}

/// A Google API, each with its own base URL in production.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    SecretManager,
    Run,
    Iam,
    ResourceManager,
    Monitoring,
    BillingBudgets,
    Storage,
}

impl Service {
    fn production_base(self) -> &'static str {
        match self {
            Service::SecretManager => "https://secretmanager.googleapis.com/",
            Service::Run => "https://run.googleapis.com/",
            Service::Iam => "https://iam.googleapis.com/",
            Service::ResourceManager => "https://cloudresourcemanager.googleapis.com/",
            Service::Monitoring => "https://monitoring.googleapis.com/",
            Service::BillingBudgets => "https://billingbudgets.googleapis.com/",
            Service::Storage => "https://storage.googleapis.com/",
        }
    }
}

/// How often and how patiently to retry.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub initial_delay: Duration,
    pub max_delay: Duration,
    /// The most time one call may take, retries and waits included.
    pub deadline: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 6,
            initial_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(10),
            deadline: Duration::from_secs(180),
        }
    }
}

/// How patiently a quota refusal (429 `RESOURCE_EXHAUSTED` without `Retry-After`) is waited
/// out. Google asks for at least 30 s before retrying one, with exponential backoff and
/// randomness (cloud.google.com/service-usage/docs/troubleshooting): per-minute quotas refill
/// only when their minute ends, so quick retries are refused again and spend the budget.
#[derive(Debug, Clone)]
pub struct QuotaRetry {
    /// The least wait before a retry (`INFRA_QUOTA_RETRY_MIN`; Google's advice is 30 s).
    pub minimum: Duration,
}

impl Default for QuotaRetry {
    fn default() -> Self {
        Self {
            minimum: Duration::from_secs(30),
        }
    }
}

impl QuotaRetry {
    /// Returns the wait before quota retry number `attempt` (1-based): the minimum doubled
    /// per retry up to four times it, plus up to half again at random, so that the callers
    /// one refill admits do not all come back together.
    pub fn delay(&self, attempt: u32) -> Duration {
        let exponential = self
            .minimum
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(2));
        let jitter: f64 = rand::random_range(1.0..1.5);
        exponential.mul_f64(jitter)
    }

    /// Returns how long one call keeps waiting out quota refusals: ten times the minimum
    /// (five minutes at Google's 30 s, five refills of a per-minute quota), and never less
    /// than the call's own deadline.
    pub fn deadline(&self, call_deadline: Duration) -> Duration {
        self.minimum.saturating_mul(10).max(call_deadline)
    }
}

/// Whether a failed request may be sent again as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replay {
    /// Sending it twice does what sending it once does (a read, a PUT, a DELETE, a PATCH of
    /// a whole desired state, a write guarded by an etag or generation precondition).
    Safe,
    /// It may create something (a POST): once it may have reached the server, it is never
    /// re-sent blind; the caller looks up what happened first.
    CheckFirst,
}

impl Replay {
    /// Returns the replay rule of a method: POST creates, the others do not.
    pub fn of(method: &Method) -> Self {
        if *method == Method::POST {
            Replay::CheckFirst
        } else {
            Replay::Safe
        }
    }
}

impl RetryPolicy {
    /// Returns the delay before retry number `attempt` (1-based): exponential with full jitter.
    pub fn delay(&self, attempt: u32) -> Duration {
        let exponential = self
            .initial_delay
            .saturating_mul(1u32 << attempt.min(16))
            .min(self.max_delay);
        let jitter: f64 = rand::random_range(0.5..1.0);
        exponential.mul_f64(jitter)
    }
}

/// The header naming the project a user credential's quota and billing go to (Billing Budgets
/// refuses user credentials without it).
pub const QUOTA_PROJECT_HEADER: &str = "x-goog-user-project";

/// A client for Google's REST APIs.
#[derive(Clone)]
pub struct GcpClient {
    http: reqwest::Client,
    endpoint: Option<String>,
    credentials: Option<google_cloud_auth::credentials::AccessTokenCredentials>,
    /// The quota project sent when the credentials' own headers name none.
    quota_project: Option<String>,
    retry: RetryPolicy,
    quota_retry: QuotaRetry,
    timeout: Duration,
    parent_locks: Arc<Mutex<HashMap<String, Arc<AsyncMutex<()>>>>>,
    /// What this client's own IAM policy writes taught it, per parent (`iam_policy`): kept
    /// per client, since etags only mean something to the server that made them.
    policy_writes: Arc<Mutex<HashMap<String, Arc<crate::gcp::kinds::ParentWrites>>>>,
    /// How long a list may lag a create (`INFRA_LIST_LAG`): a lookup by list after a create's
    /// unknown outcome believes absence only once it has polled this long.
    list_lag: Duration,
}

/// How long a list is polled after a create's unknown outcome before the object is believed
/// absent. Google bounds none of its list lags (Secret Manager's eventually consistent
/// operations "typically converge within minutes"; IAM's reads are "eventually consistent"),
/// and Monitoring's and Billing Budgets' lists promise no read-after-write consistency: a
/// minute covers the lags seen in practice, and only a create whose outcome is unknown pays it.
pub const DEFAULT_LIST_LAG: Duration = Duration::from_secs(60);

/// Why one attempt failed, and what the retry loop needs to know about it.
struct Failure {
    error: GcpError,
    retry_after: Option<Duration>,
    /// The request may have reached the server (anything but a refused connection).
    reached_server: bool,
}

/// Returns the per-project scope writes to Monitoring are serialized in; `None` for reads and
/// other services.
fn monitoring_write_scope(service: Service, method: &Method, path: &str) -> Option<String> {
    if service != Service::Monitoring || *method == Method::GET {
        return None;
    }
    let mut segments = path.split('/');
    segments.find(|segment| *segment == "projects")?;
    let project = segments.next().filter(|project| !project.is_empty())?;
    Some(format!("monitoring-writes/{project}"))
}

/// Returns the wait a `Retry-After` value asks for: delay-seconds or an HTTP-date (RFC 9110),
/// capped at `MAX_RETRY_AFTER`; `None` when it is neither.
pub fn parse_retry_after(value: &str, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    let value = value.trim();
    let wait = match value.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => {
            let date = chrono::DateTime::parse_from_rfc2822(value).ok()?;
            (date.with_timezone(&chrono::Utc) - now)
                .to_std()
                .unwrap_or(Duration::ZERO)
        }
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

/// An answer's body, read up to a limit.
enum Body {
    Complete(Vec<u8>),
    /// The answer went past the limit: what was read, and the total if the server declared it.
    TooLarge {
        head: Vec<u8>,
        declared: Option<u64>,
    },
}

/// Reads a body chunk by chunk, stopping once it passes `limit`.
async fn read_body(response: &mut reqwest::Response, limit: usize) -> Result<Body, reqwest::Error> {
    let declared = response.content_length();
    if declared.is_some_and(|length| length > limit as u64) {
        let head = response.chunk().await?.map(|chunk| chunk.to_vec());
        return Ok(Body::TooLarge {
            head: head.unwrap_or_default(),
            declared,
        });
    }
    let mut bytes = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if bytes.len() + chunk.len() > limit {
            bytes.extend_from_slice(&chunk[..limit.saturating_sub(bytes.len())]);
            return Ok(Body::TooLarge {
                head: bytes,
                declared,
            });
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(Body::Complete(bytes))
}

/// Returns `text` cut to `SHOWN_ERROR_CHARS`, saying how much there was.
fn shorten(text: &str) -> String {
    let text = text.trim();
    if text.chars().count() <= SHOWN_ERROR_CHARS {
        return text.to_string();
    }
    let shown: String = text.chars().take(SHOWN_ERROR_CHARS).collect();
    format!(
        "{shown}… ({} bytes; first {SHOWN_ERROR_CHARS} shown)",
        text.len()
    )
}

/// Returns a non-JSON error body as one line: tags dropped (an HTML error page), whitespace
/// collapsed.
fn plain_text(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut plain = String::with_capacity(text.len().min(4096));
    let mut in_tag = false;
    for character in text.chars() {
        match character {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                plain.push(' ');
            }
            _ if in_tag => {}
            _ => plain.push(character),
        }
    }
    plain.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl GcpClient {
    /// Creates a client for `endpoint` (Google's own endpoints when `None`), authenticated as
    /// `authentication` says.
    pub fn new(endpoint: Option<String>, authentication: Authentication) -> Result<Self, GcpError> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("infra/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| GcpError::Transport {
                method: "-".into(),
                url: "-".into(),
                message: error.to_string(),
            })?;
        let (credentials, quota_project) = match authentication {
            Authentication::None => (None, None),
            Authentication::ApplicationDefault { quota_project } => {
                let builder = google_cloud_auth::credentials::Builder::default()
                    .with_scopes(["https://www.googleapis.com/auth/cloud-platform"]);
                let credentials = builder
                    .build_access_token_credentials()
                    .map_err(|error| GcpError::Auth(error.to_string()))?;
                (Some(credentials), quota_project)
            }
        };
        let endpoint = endpoint.map(|base| {
            if base.ends_with('/') {
                base
            } else {
                format!("{base}/")
            }
        });
        Ok(Self {
            http,
            endpoint,
            credentials,
            quota_project,
            retry: RetryPolicy::default(),
            quota_retry: QuotaRetry::default(),
            timeout: DEFAULT_TIMEOUT,
            parent_locks: Arc::default(),
            policy_writes: Arc::default(),
            list_lag: DEFAULT_LIST_LAG,
        })
    }

    /// Replaces how long a list may lag a create (`INFRA_LIST_LAG`).
    pub fn with_list_lag(mut self, list_lag: Duration) -> Self {
        self.list_lag = list_lag;
        self
    }

    /// Returns how long a list may lag a create: the window a lookup by list polls before it
    /// believes an object absent.
    pub fn list_lag(&self) -> Duration {
        self.list_lag
    }

    /// Replaces the per-request timeout (body included; `INFRA_HTTP_TIMEOUT`).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Replaces the retry policy (tests use short delays).
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Replaces how quota refusals are waited out (`INFRA_QUOTA_RETRY_MIN`; tests use less
    /// than Google's 30 s).
    pub fn with_quota_retry(mut self, quota_retry: QuotaRetry) -> Self {
        self.quota_retry = quota_retry;
        self
    }

    /// Returns the retry policy, for callers that retry whole read-modify-write cycles.
    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.retry
    }

    /// Returns the full URL of `path` (for example `v1/projects/p/secrets`) on a service.
    pub fn url(&self, service: Service, path: &str) -> String {
        let base = self
            .endpoint
            .as_deref()
            .unwrap_or(service.production_base());
        format!("{base}{path}")
    }

    /// Sends a request and returns the decoded JSON body (`Json::Null` for an empty body),
    /// retrying 429 and 5xx answers with backoff and honouring `Retry-After`. A POST that may
    /// have reached the server is not re-sent: its failure is `GcpError::OutcomeUnknown`.
    pub async fn call(
        &self,
        method: Method,
        service: Service,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Json>,
    ) -> Result<Json, GcpError> {
        let replay = Replay::of(&method);
        self.call_with(method, replay, service, path, query, body)
            .await
    }

    /// Sends a POST that is safe to repeat (a read such as `getIamPolicy`, or a write guarded
    /// by an etag), with the retries of `call`.
    pub async fn call_replayable(
        &self,
        method: Method,
        service: Service,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Json>,
    ) -> Result<Json, GcpError> {
        self.call_with(method, Replay::Safe, service, path, query, body)
            .await
    }

    /// Sends a request under an explicit replay rule, with the retries of `call`: a write
    /// that is not idempotent though it is no POST (a PATCH with Cloud Run's
    /// `forceNewRevision`, which makes a revision each time) is `Replay::CheckFirst`.
    pub async fn call_with(
        &self,
        method: Method,
        replay: Replay,
        service: Service,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Json>,
    ) -> Result<Json, GcpError> {
        let payload = body.map(|body| {
            (
                serde_json::to_vec(body).unwrap_or_default(),
                "application/json".to_string(),
            )
        });
        let url = self.url(service, path);
        let bytes = self
            .call_bytes_with(method.clone(), replay, service, path, query, payload)
            .await?;
        if bytes.is_empty() {
            return Ok(Json::Null);
        }
        serde_json::from_slice(&bytes).map_err(|error| {
            let start: String = String::from_utf8_lossy(&bytes[..bytes.len().min(80)])
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ");
            GcpError::Decode {
                method: method.to_string(),
                url,
                message: format!(
                    "not JSON ({error}); {} bytes starting `{start}`",
                    bytes.len()
                ),
            }
        })
    }

    /// Sends a request with a raw body (bytes and content type) and returns the raw answer,
    /// with the same retries and error mapping as `call` (Cloud Storage media and uploads).
    pub async fn call_bytes(
        &self,
        method: Method,
        service: Service,
        path: &str,
        query: &[(&str, String)],
        body: Option<(Vec<u8>, String)>,
    ) -> Result<Vec<u8>, GcpError> {
        let replay = Replay::of(&method);
        self.call_bytes_with(method, replay, service, path, query, body)
            .await
    }

    /// Sends a raw request under an explicit replay rule (a Cloud Storage upload guarded by
    /// `ifGenerationMatch` is safe to repeat; its caller recognises its own earlier write).
    pub async fn call_bytes_with(
        &self,
        method: Method,
        replay: Replay,
        service: Service,
        path: &str,
        query: &[(&str, String)],
        body: Option<(Vec<u8>, String)>,
    ) -> Result<Vec<u8>, GcpError> {
        self.call_answer(method, replay, service, path, query, body)
            .await
            .map(|(_, bytes)| bytes)
    }

    /// Sends a GET like `call_bytes` and returns the answer's headers with its body (Cloud
    /// Storage describes a downloaded object in `x-goog-*` headers, so one request reads an
    /// object and its generation together).
    pub async fn get_with_headers(
        &self,
        service: Service,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<(reqwest::header::HeaderMap, Vec<u8>), GcpError> {
        self.call_answer(Method::GET, Replay::Safe, service, path, query, None)
            .await
    }

    async fn call_answer(
        &self,
        method: Method,
        replay: Replay,
        service: Service,
        path: &str,
        query: &[(&str, String)],
        body: Option<(Vec<u8>, String)>,
    ) -> Result<(reqwest::header::HeaderMap, Vec<u8>), GcpError> {
        let url = self.url(service, path);
        // Monitoring asks callers to single-thread writes to alerting state within a project
        // (its discovery document); concurrent ones get 409. One writer per project per run.
        let serial = match monitoring_write_scope(service, &method, path) {
            Some(scope) => Some(self.parent_lock(&scope).lock_owned().await),
            None => None,
        };
        let started = std::time::Instant::now();
        let mut attempt = 0;
        let mut quota_attempt = 0;
        loop {
            let failure = match self
                .send_once(method.clone(), &url, query, body.as_ref())
                .await
            {
                Ok(answer) => return Ok(answer),
                Err(failure) => failure,
            };
            // A quota refusal is waited out by its own rule (at least `quota_retry.minimum`,
            // under a longer deadline), not by the short backoff of transient failures; a
            // `Retry-After` or `RetryInfo` still says exactly how long.
            if failure.retry_after.is_none() && failure.error.is_quota_exhausted() {
                quota_attempt += 1;
                let delay = self.quota_retry.delay(quota_attempt);
                if started.elapsed() + delay > self.quota_retry.deadline(self.retry.deadline) {
                    return Err(failure.error);
                }
                // Said at info: a wait of 30 s or more must not look like a hang.
                tracing::info!(
                    "{method} {url}: over quota, retrying in {} s (Google asks for at least {} s)",
                    delay.as_secs(),
                    self.quota_retry.minimum.as_secs()
                );
                tokio::time::sleep(delay).await;
                continue;
            }
            attempt += 1;
            // 429 is a refusal before any work (Google's quota check); a refused connection
            // never reached the server. Anything else may have committed.
            let concurrent_edit = serial.is_some() && failure.error.is_concurrent_edit_refusal();
            let not_committed =
                failure.error.code() == Some(429) || concurrent_edit || !failure.reached_server;
            if !failure.error.is_retryable() && !concurrent_edit {
                return Err(failure.error);
            }
            if replay == Replay::CheckFirst && !not_committed {
                return Err(GcpError::OutcomeUnknown(Box::new(failure.error)));
            }
            let delay = failure
                .retry_after
                .unwrap_or_else(|| self.retry.delay(attempt));
            if attempt >= self.retry.max_attempts || started.elapsed() + delay > self.retry.deadline
            {
                return Err(failure.error);
            }
            tracing::debug!(%method, %url, attempt, ?delay, "retrying: {}", failure.error);
            tokio::time::sleep(delay).await;
        }
    }

    async fn send_once(
        &self,
        method: Method,
        url: &str,
        query: &[(&str, String)],
        body: Option<&(Vec<u8>, String)>,
    ) -> Result<(reqwest::header::HeaderMap, Vec<u8>), Failure> {
        let method_name = method.to_string();
        let transport = |message: String| GcpError::Transport {
            method: method_name.clone(),
            url: url.to_string(),
            message,
        };
        let mut request = self
            .http
            .request(method.clone(), url)
            .query(query)
            .timeout(self.timeout);
        if let Some((bytes, content_type)) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, content_type.as_str())
                .body(bytes.clone());
        }
        if let Some(credentials) = &self.credentials {
            request = request.headers(self.credential_headers(credentials).await.map_err(
                |error| Failure {
                    error,
                    retry_after: None,
                    reached_server: false,
                },
            )?);
        }
        tracing::trace!(method = %method_name, %url, "request");
        let describe = |error: reqwest::Error| {
            // The message already names METHOD and URL; reqwest's would repeat the URL.
            let error = error.without_url();
            let mut message = error.to_string();
            let mut source = std::error::Error::source(&error);
            while let Some(cause) = source {
                let text = cause.to_string();
                if !message.contains(&text) {
                    message = format!("{message}: {text}");
                }
                source = cause.source();
            }
            if error.is_timeout() {
                message = format!("no complete answer within {:?} ({message})", self.timeout);
            }
            transport(message)
        };
        let mut response = request.send().await.map_err(|error| Failure {
            reached_server: !error.is_connect(),
            error: describe(error),
            retry_after: None,
        })?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| parse_retry_after(value, chrono::Utc::now()));
        let limit = if status.is_success() {
            MAX_BODY_BYTES
        } else {
            MAX_ERROR_BODY_BYTES
        };
        let body = read_body(&mut response, limit)
            .await
            .map_err(|error| Failure {
                error: describe(error),
                retry_after: None,
                reached_server: true,
            })?;
        tracing::trace!(method = %method_name, %url, status = status.as_u16(), "response");
        // The size of an error body cut at the limit, for the message.
        let (bytes, cut_size) = match body {
            Body::Complete(bytes) if status.is_success() => {
                return Ok((std::mem::take(response.headers_mut()), bytes));
            }
            Body::TooLarge { declared, .. } if status.is_success() => {
                return Err(Failure {
                    error: GcpError::TooLarge {
                        method: method_name,
                        url: url.to_string(),
                        limit: MAX_BODY_BYTES,
                        declared,
                    },
                    retry_after: None,
                    reached_server: true,
                });
            }
            Body::Complete(bytes) => (bytes, None),
            Body::TooLarge { head, declared } => {
                let size = declared.map_or_else(
                    || format!("more than {} bytes", head.len()),
                    |size| format!("{size} bytes"),
                );
                (head, Some(size))
            }
        };
        let (message, google_status, details) =
            match serde_json::from_slice::<ErrorEnvelope>(&bytes) {
                Ok(envelope) => (
                    shorten(&envelope.error.message),
                    envelope.error.status,
                    ErrorDetails::parse(&envelope.error.details),
                ),
                Err(_) => {
                    let text = plain_text(&bytes);
                    let message = match cut_size {
                        _ if text.is_empty() => "(empty body)".to_string(),
                        Some(size) => {
                            let shown: String = text.chars().take(SHOWN_ERROR_CHARS).collect();
                            format!("{shown}… ({size}; first {SHOWN_ERROR_CHARS} shown)")
                        }
                        None => shorten(&text),
                    };
                    (message, String::new(), ErrorDetails::default())
                }
            };
        // Google's `RetryInfo` asks for a wait as `Retry-After` does.
        let retry_after =
            retry_after.or(details.retry_delay.map(|delay| delay.min(MAX_RETRY_AFTER)));
        let google_status = if google_status.is_empty() {
            status
                .canonical_reason()
                .unwrap_or("")
                .to_uppercase()
                .replace(' ', "_")
        } else {
            google_status
        };
        Err(Failure {
            error: GcpError::Api {
                method: method_name,
                url: url.to_string(),
                code: status.as_u16(),
                status: google_status,
                message,
                details: Box::new(details),
            },
            retry_after,
            reached_server: true,
        })
    }

    /// Returns the headers the credentials ask for (the bearer token, and the quota project
    /// ADC names), marked sensitive so no debug output prints them, plus this client's quota
    /// project when the credentials name none.
    async fn credential_headers(
        &self,
        credentials: &google_cloud_auth::credentials::AccessTokenCredentials,
    ) -> Result<reqwest::header::HeaderMap, GcpError> {
        use google_cloud_auth::credentials::{CacheableResource, CredentialsProvider};
        let mut headers = match credentials.headers(Default::default()).await {
            Ok(CacheableResource::New { data, .. }) => data,
            Ok(CacheableResource::NotModified) => {
                return Err(GcpError::Auth("the credentials returned no headers".into()));
            }
            Err(error) => return Err(GcpError::Auth(error.to_string())),
        };
        for value in headers.values_mut() {
            value.set_sensitive(true);
        }
        if let Some(project) = &self.quota_project
            && !headers.contains_key(QUOTA_PROJECT_HEADER)
            && let Ok(value) = reqwest::header::HeaderValue::from_str(project)
        {
            headers.insert(QUOTA_PROJECT_HEADER, value);
        }
        Ok(headers)
    }

    /// Returns a lock that serializes read-modify-write cycles on one parent (an IAM policy),
    /// so that changes within one run never race each other.
    pub fn parent_lock(&self, parent: &str) -> Arc<AsyncMutex<()>> {
        let mut locks = self
            .parent_locks
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        locks.entry(parent.to_string()).or_default().clone()
    }

    /// Returns what this client's policy writes on `parent` taught it (`iam_policy`).
    pub fn policy_writes(&self, parent: &str) -> Arc<crate::gcp::kinds::ParentWrites> {
        let mut writes = self
            .policy_writes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        writes.entry(parent.to_string()).or_default().clone()
    }
}

/// Starts an in-process emulator (realism on) and returns it with a client of it, for unit
/// tests that need Google's answers; the emulator serves until it is dropped.
#[cfg(test)]
pub(crate) async fn emulator_and_client() -> (crate::emulator::RunningEmulator, GcpClient) {
    let running = crate::emulator::start(
        crate::emulator::EmulatorOptions::default(),
        std::net::SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, 0)),
    )
    .await
    .expect("emulator");
    let client = GcpClient::new(Some(running.base_url()), Authentication::None).expect("client");
    (running, client)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emulator_endpoint_serves_every_service() {
        let client = GcpClient::new(Some("http://127.0.0.1:9".into()), Authentication::None)
            .expect("client");
        assert_eq!(
            client.url(Service::SecretManager, "v1/projects/p/secrets"),
            "http://127.0.0.1:9/v1/projects/p/secrets"
        );
        assert_eq!(client.url(Service::Run, "v2/x"), "http://127.0.0.1:9/v2/x");
    }

    #[test]
    fn long_messages_are_cut_with_their_size() {
        let long = "x".repeat(5000);
        let shown = shorten(&long);
        assert!(
            shown.ends_with("… (5000 bytes; first 1000 shown)"),
            "{shown}"
        );
        assert_eq!(shorten("short"), "short");
        assert_eq!(
            plain_text(b"<html><body><h1>502 Bad Gateway</h1>\n<p>nginx</p></body></html>"),
            "502 Bad Gateway nginx"
        );
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let policy = RetryPolicy {
            max_attempts: 5,
            initial_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(500),
            deadline: Duration::from_secs(5),
        };
        assert!(policy.delay(1) <= Duration::from_millis(200));
        assert!(policy.delay(10) <= Duration::from_millis(500));
        assert!(policy.delay(10) >= Duration::from_millis(250));
    }

    #[test]
    fn quota_waits_start_at_the_minimum_and_grow_to_four_times_it() {
        let quota = QuotaRetry::default();
        for attempt in 1..=6 {
            let delay = quota.delay(attempt);
            assert!(delay >= Duration::from_secs(30), "{attempt}: {delay:?}");
            assert!(delay < Duration::from_secs(180), "{attempt}: {delay:?}");
        }
        assert!(quota.delay(3) >= Duration::from_secs(120));
        assert_eq!(
            quota.deadline(Duration::from_secs(180)),
            Duration::from_secs(300)
        );
        let fast = QuotaRetry {
            minimum: Duration::from_millis(100),
        };
        assert_eq!(
            fast.deadline(Duration::from_secs(180)),
            Duration::from_secs(180)
        );
    }

    #[test]
    fn retry_after_reads_seconds_and_dates_and_is_capped() {
        let now = chrono::DateTime::parse_from_rfc3339("2015-10-21T07:28:00Z")
            .expect("date")
            .with_timezone(&chrono::Utc);
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after("100000", now), Some(MAX_RETRY_AFTER));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:27:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(
            parse_retry_after("Thu, 22 Oct 2015 07:28:00 GMT", now),
            Some(MAX_RETRY_AFTER)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn monitoring_writes_are_serialized_per_project() {
        assert_eq!(
            monitoring_write_scope(
                Service::Monitoring,
                &Method::POST,
                "v3/projects/p/alertPolicies"
            ),
            Some("monitoring-writes/p".into())
        );
        assert_eq!(
            monitoring_write_scope(
                Service::Monitoring,
                &Method::GET,
                "v3/projects/p/alertPolicies"
            ),
            None
        );
        assert_eq!(
            monitoring_write_scope(
                Service::SecretManager,
                &Method::POST,
                "v1/projects/p/secrets"
            ),
            None
        );
    }

    #[test]
    fn only_a_post_must_be_checked_before_it_is_sent_again() {
        assert_eq!(Replay::of(&Method::POST), Replay::CheckFirst);
        for method in [Method::GET, Method::PUT, Method::PATCH, Method::DELETE] {
            assert_eq!(Replay::of(&method), Replay::Safe, "{method}");
        }
    }
}
