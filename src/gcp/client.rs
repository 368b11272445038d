//! The REST core every kind uses: endpoint selection (Google or an emulator), credentials,
//! retries with backoff and jitter, Google error bodies mapped to `GcpError`, and per-parent
//! serialization of read-modify-write cycles. It knows no resource kind.

use super::error::{ErrorEnvelope, GcpError};
use reqwest::Method;
use serde_json::Value as Json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Mutex as AsyncMutex;

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
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 6,
            initial_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(10),
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

/// A client for Google's REST APIs.
#[derive(Clone)]
pub struct GcpClient {
    http: reqwest::Client,
    endpoint: Option<String>,
    credentials: Option<google_cloud_auth::credentials::AccessTokenCredentials>,
    retry: RetryPolicy,
    parent_locks: Arc<Mutex<HashMap<String, Arc<AsyncMutex<()>>>>>,
}

impl GcpClient {
    /// Creates a client. With an endpoint (an emulator) no credentials are used; without one,
    /// Application Default Credentials are looked up.
    pub fn new(endpoint: Option<String>) -> Result<Self, GcpError> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("infra/", env!("CARGO_PKG_VERSION")))
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|error| GcpError::Transport {
                method: "-".into(),
                url: "-".into(),
                message: error.to_string(),
            })?;
        let credentials = match endpoint {
            Some(_) => None,
            None => Some(
                google_cloud_auth::credentials::Builder::default()
                    .with_scopes(["https://www.googleapis.com/auth/cloud-platform"])
                    .build_access_token_credentials()
                    .map_err(|error| GcpError::Auth(error.to_string()))?,
            ),
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
            retry: RetryPolicy::default(),
            parent_locks: Arc::default(),
        })
    }

    /// Replaces the retry policy (tests use short delays).
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
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
    /// retrying 429 and 5xx answers with backoff and honouring `Retry-After`.
    pub async fn call(
        &self,
        method: Method,
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
            .call_bytes(method.clone(), service, path, query, payload)
            .await?;
        if bytes.is_empty() {
            return Ok(Json::Null);
        }
        serde_json::from_slice(&bytes).map_err(|error| GcpError::Decode {
            method: method.to_string(),
            url,
            message: error.to_string(),
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
        let url = self.url(service, path);
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self
                .send_once(method.clone(), &url, query, body.as_ref())
                .await
            {
                Ok(bytes) => return Ok(bytes),
                Err((error, retry_after))
                    if error.is_retryable() && attempt < self.retry.max_attempts =>
                {
                    let delay = retry_after.unwrap_or_else(|| self.retry.delay(attempt));
                    tracing::debug!(%method, %url, attempt, ?delay, "retrying: {error}");
                    tokio::time::sleep(delay).await;
                }
                Err((error, _)) => return Err(error),
            }
        }
    }

    async fn send_once(
        &self,
        method: Method,
        url: &str,
        query: &[(&str, String)],
        body: Option<&(Vec<u8>, String)>,
    ) -> Result<Vec<u8>, (GcpError, Option<Duration>)> {
        let method_name = method.to_string();
        let transport = |message: String| GcpError::Transport {
            method: method_name.clone(),
            url: url.to_string(),
            message,
        };
        let mut request = self.http.request(method.clone(), url).query(query);
        if let Some((bytes, content_type)) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, content_type.as_str())
                .body(bytes.clone());
        }
        if let Some(credentials) = &self.credentials {
            let token = credentials
                .access_token()
                .await
                .map_err(|error| (GcpError::Auth(error.to_string()), None))?;
            request = request.bearer_auth(token.token);
        }
        tracing::trace!(method = %method_name, %url, "request");
        let response = request
            .send()
            .await
            .map_err(|error| (transport(error.to_string()), None))?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let bytes = response
            .bytes()
            .await
            .map_err(|error| (transport(error.to_string()), None))?;
        tracing::trace!(method = %method_name, %url, status = status.as_u16(), "response");
        if status.is_success() {
            return Ok(bytes.to_vec());
        }
        let (message, google_status) = match serde_json::from_slice::<ErrorEnvelope>(&bytes) {
            Ok(envelope) => (envelope.error.message, envelope.error.status),
            Err(_) => (
                String::from_utf8_lossy(&bytes).chars().take(300).collect(),
                String::new(),
            ),
        };
        let google_status = if google_status.is_empty() {
            status
                .canonical_reason()
                .unwrap_or("")
                .to_uppercase()
                .replace(' ', "_")
        } else {
            google_status
        };
        Err((
            GcpError::Api {
                method: method_name,
                url: url.to_string(),
                code: status.as_u16(),
                status: google_status,
                message,
            },
            retry_after,
        ))
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emulator_endpoint_serves_every_service() {
        let client = GcpClient::new(Some("http://127.0.0.1:9".into())).expect("client");
        assert_eq!(
            client.url(Service::SecretManager, "v1/projects/p/secrets"),
            "http://127.0.0.1:9/v1/projects/p/secrets"
        );
        assert_eq!(client.url(Service::Run, "v2/x"), "http://127.0.0.1:9/v2/x");
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let policy = RetryPolicy {
            max_attempts: 5,
            initial_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(500),
        };
        assert!(policy.delay(1) <= Duration::from_millis(200));
        assert!(policy.delay(10) <= Duration::from_millis(500));
        assert!(policy.delay(10) >= Duration::from_millis(250));
    }
}
