//! Per-project request quotas and disabled APIs, as Google's front end applies them before a
//! request reaches the API: a request to an API disabled in its project answers 403
//! `SERVICE_DISABLED`, one over its bucket's limit answers 429 `RATE_LIMIT_EXCEEDED` (no
//! `Retry-After`, as Google sends none), each with Google's `ErrorInfo` and `Help` details.
//! The buckets and their published values are `gcp::quotas`; this file counts requests per
//! window and keeps the counts readable (`/_emulator/quotas`). It knows no HTTP framework.

use super::error::ApiError;
use super::store::project_number;
use crate::gcp::quotas::{QuotaSpec, QuotaUse, classify, quota_by_metric};
use axum::http::StatusCode;
use serde_json::{Value as Json, json};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Where Google sends users to ask for more quota (the `Help` link of a quota 429).
pub const QUOTA_INCREASE_URL: &str = "https://cloud.google.com/docs/quotas/help/request_increase";

/// How the emulator applies quotas and which APIs it treats as disabled.
#[derive(Debug, Clone)]
pub struct QuotaOptions {
    /// Multiplies every published limit (1 is Google's values; 0 turns quotas off).
    pub scale: f64,
    /// How long one counting window lasts. Google counts per minute; the default is one
    /// second, so that the suite never waits minutes (the same counts in a sixtieth of the
    /// time: sixty times Google's rate).
    pub window: Duration,
    /// Limits per window that replace the scaled default: (project, quota metric) → limit.
    pub overrides: BTreeMap<(String, String), u64>,
    /// APIs disabled per project: (project, service name).
    pub disabled_services: BTreeSet<(String, String)>,
}

impl Default for QuotaOptions {
    fn default() -> Self {
        Self {
            scale: 1.0,
            window: Duration::from_secs(1),
            overrides: BTreeMap::new(),
            disabled_services: BTreeSet::new(),
        }
    }
}

impl QuotaOptions {
    /// Returns the options with no quota and no API disabled.
    pub fn off() -> Self {
        Self {
            scale: 0.0,
            ..Self::default()
        }
    }
}

/// The count of one bucket for one consumer.
#[derive(Debug, Clone)]
struct Counter {
    window_start: Instant,
    used: u64,
    admitted: u64,
    refused: u64,
}

/// (consumer project number or billing account, quota metric, region or "global").
type CounterKey = (String, &'static str, String);

struct QuotaState {
    counters: BTreeMap<CounterKey, Counter>,
    /// Keyed by project number, so an id and a number name the same project.
    overrides: BTreeMap<(String, String), u64>,
    disabled: BTreeSet<(String, String)>,
}

/// The quotas' state while the emulator runs.
pub struct Quotas {
    scale: f64,
    window: Duration,
    state: Mutex<QuotaState>,
}

impl Quotas {
    pub fn new(options: &QuotaOptions) -> Self {
        let overrides = options
            .overrides
            .iter()
            .map(|((project, metric), limit)| ((project_number(project), metric.clone()), *limit))
            .collect();
        let disabled = options
            .disabled_services
            .iter()
            .map(|(project, service)| (project_number(project), service.clone()))
            .collect();
        Self {
            scale: options.scale,
            window: options.window,
            state: Mutex::new(QuotaState {
                counters: BTreeMap::new(),
                overrides,
                disabled,
            }),
        }
    }

    /// Admits a request (`method`, `path` like `v1/projects/p/secrets`) or refuses it as
    /// Google's front end would: 403 when its API is disabled in the project, 429 when the
    /// project's bucket is spent for this window. `quota_project` is the
    /// `x-goog-user-project` header, the consumer of calls whose path names no project.
    pub fn admit(
        &self,
        method: &str,
        path: &str,
        quota_project: Option<&str>,
    ) -> Result<(), ApiError> {
        let Some(usage) = classify(method, path) else {
            return Ok(());
        };
        let consumer = consumer_of(&usage, path, quota_project);
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if state
            .disabled
            .contains(&(consumer.clone(), usage.spec.service.to_string()))
        {
            return Err(service_disabled(usage.spec, &consumer));
        }
        let limit = match state
            .overrides
            .get(&(consumer.clone(), usage.spec.metric.to_string()))
        {
            Some(limit) => *limit,
            None if self.scale <= 0.0 => return Ok(()),
            None => ((usage.spec.per_minute as f64) * self.scale)
                .round()
                .max(1.0) as u64,
        };
        let key = (
            consumer.clone(),
            usage.spec.metric,
            usage.location.clone().unwrap_or_else(|| "global".into()),
        );
        let now = Instant::now();
        let counter = state.counters.entry(key).or_insert(Counter {
            window_start: now,
            used: 0,
            admitted: 0,
            refused: 0,
        });
        if now.duration_since(counter.window_start) >= self.window {
            counter.window_start = now;
            counter.used = 0;
        }
        if counter.used >= limit {
            counter.refused += 1;
            return Err(quota_exceeded(
                usage.spec,
                &consumer,
                &usage.location,
                limit,
            ));
        }
        counter.used += 1;
        counter.admitted += 1;
        Ok(())
    }

    /// Sets (or with `None` removes) the limit per window of one project's bucket.
    pub fn set_override(&self, project: &str, metric: &str, limit: Option<u64>) -> bool {
        if quota_by_metric(metric).is_none() {
            return false;
        }
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let key = (project_number(project), metric.to_string());
        match limit {
            Some(limit) => state.overrides.insert(key, limit),
            None => state.overrides.remove(&key),
        };
        true
    }

    /// Marks an API enabled or disabled in a project.
    pub fn set_service_enabled(&self, project: &str, service: &str, enabled: bool) {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let key = (project_number(project), service.to_string());
        if enabled {
            state.disabled.remove(&key);
        } else {
            state.disabled.insert(key);
        }
    }

    /// Returns every bucket counted so far: consumer, metric, region, the limit per window,
    /// what the current window used, and the totals admitted and refused.
    pub fn snapshot(&self) -> Json {
        let state = self
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let now = Instant::now();
        let counters: Vec<Json> = state
            .counters
            .iter()
            .map(|((consumer, metric, location), counter)| {
                let spec = quota_by_metric(metric);
                let limit = state
                    .overrides
                    .get(&(consumer.clone(), metric.to_string()))
                    .copied()
                    .or_else(|| {
                        spec.map(|spec| {
                            ((spec.per_minute as f64) * self.scale).round().max(1.0) as u64
                        })
                    });
                let used = if now.duration_since(counter.window_start) >= self.window {
                    0
                } else {
                    counter.used
                };
                json!({
                    "consumer": consumer_name(consumer),
                    "service": spec.map(|spec| spec.service),
                    "quotaMetric": metric,
                    "quotaLimit": spec.map(|spec| spec.limit_name),
                    "location": location,
                    "limit": limit,
                    "windowMs": self.window.as_millis() as u64,
                    "used": used,
                    "admitted": counter.admitted,
                    "refused": counter.refused,
                })
            })
            .collect();
        let disabled: Vec<Json> = state
            .disabled
            .iter()
            .map(|(consumer, service)| {
                json!({"consumer": consumer_name(consumer), "service": service})
            })
            .collect();
        json!({"quotas": counters, "disabledServices": disabled})
    }
}

/// Returns who a request's quota is charged to: the project of its path (by number), or for
/// Billing Budgets the quota project header, else the billing account.
fn consumer_of(usage: &QuotaUse, path: &str, quota_project: Option<&str>) -> String {
    match &usage.project {
        Some(project) => project_number(project),
        None => match quota_project
            .map(str::trim)
            .filter(|project| !project.is_empty())
        {
            Some(project) => project_number(project),
            None => path
                .trim_start_matches('/')
                .split('/')
                .skip(1)
                .take(2)
                .collect::<Vec<_>>()
                .join("/"),
        },
    }
}

/// Returns `projects/NUMBER` for a project number, the name as it is otherwise.
fn consumer_name(consumer: &str) -> String {
    if consumer.chars().all(|c| c.is_ascii_digit()) {
        format!("projects/{consumer}")
    } else {
        consumer.to_string()
    }
}

/// 429 RESOURCE_EXHAUSTED as Google's quota system answers it.
fn quota_exceeded(
    spec: &QuotaSpec,
    consumer: &str,
    location: &Option<String>,
    limit: u64,
) -> ApiError {
    let message = format!(
        "Quota exceeded for quota metric '{}' and limit '{}' of service '{}' for consumer 'project_number:{consumer}'.",
        spec.metric_title, spec.limit_title, spec.service
    );
    let unit = if spec.per_region {
        "1/min/{project}/{region}"
    } else {
        "1/min/{project}"
    };
    ApiError::from_status(StatusCode::TOO_MANY_REQUESTS, message).with_details(vec![
        json!({
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": "RATE_LIMIT_EXCEEDED",
            "domain": "googleapis.com",
            "metadata": {
                "service": spec.service,
                "consumer": consumer_name(consumer),
                "quota_metric": spec.metric,
                "quota_limit": spec.limit_name,
                "quota_limit_value": limit.to_string(),
                "quota_location": location.clone().unwrap_or_else(|| "global".into()),
                "quota_unit": unit,
            },
        }),
        json!({
            "@type": "type.googleapis.com/google.rpc.Help",
            "links": [{"description": "Request a higher quota limit.", "url": QUOTA_INCREASE_URL}],
        }),
    ])
}

/// 403 PERMISSION_DENIED as Google answers a call to an API not enabled in the project
/// (cloud.google.com/service-usage/docs/troubleshooting).
fn service_disabled(spec: &QuotaSpec, consumer: &str) -> ApiError {
    let activation_url = format!(
        "https://console.developers.google.com/apis/api/{}/overview?project={consumer}",
        spec.service
    );
    let message = format!(
        "{} has not been used in project {consumer} before or it is disabled. Enable it by visiting {activation_url} then retry. If you enabled this API recently, wait a few minutes for the action to propagate to our systems and retry.",
        spec.service_title
    );
    ApiError::from_status(StatusCode::FORBIDDEN, message.clone()).with_details(vec![
        json!({
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": "SERVICE_DISABLED",
            "domain": "googleapis.com",
            "metadata": {
                "service": spec.service,
                "serviceTitle": spec.service_title,
                "consumer": consumer_name(consumer),
                "containerInfo": consumer,
                "activationUrl": activation_url,
            },
        }),
        json!({
            "@type": "type.googleapis.com/google.rpc.LocalizedMessage",
            "locale": "en-US",
            "message": message,
        }),
        json!({
            "@type": "type.googleapis.com/google.rpc.Help",
            "links": [{"description": "Google developers console API activation", "url": activation_url}],
        }),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny(limit: u64, window: Duration) -> Quotas {
        Quotas::new(&QuotaOptions {
            window,
            overrides: BTreeMap::from([(
                (
                    "p".to_string(),
                    "secretmanager.googleapis.com/write_requests".to_string(),
                ),
                limit,
            )]),
            ..QuotaOptions::default()
        })
    }

    #[test]
    fn a_spent_bucket_refuses_until_its_window_ends() {
        let quotas = tiny(2, Duration::from_millis(80));
        for _ in 0..2 {
            quotas
                .admit("POST", "v1/projects/p/secrets", None)
                .expect("admitted");
        }
        let refused = quotas
            .admit("POST", "v1/projects/p/secrets", None)
            .expect_err("over quota");
        assert_eq!(refused.code, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(refused.status, "RESOURCE_EXHAUSTED");
        assert_eq!(refused.details[0]["reason"], "RATE_LIMIT_EXCEEDED");
        assert_eq!(
            refused.details[0]["metadata"]["quota_metric"],
            "secretmanager.googleapis.com/write_requests"
        );
        assert_eq!(refused.details[0]["metadata"]["quota_limit_value"], "2");
        // Reads are another bucket; another project has its own.
        assert!(quotas.admit("GET", "v1/projects/p/secrets", None).is_ok());
        assert!(quotas.admit("POST", "v1/projects/q/secrets", None).is_ok());
        std::thread::sleep(Duration::from_millis(90));
        assert!(quotas.admit("POST", "v1/projects/p/secrets", None).is_ok());
        let snapshot = quotas.snapshot();
        let bucket = snapshot["quotas"]
            .as_array()
            .expect("list")
            .iter()
            .find(|bucket| {
                bucket["consumer"] == format!("projects/{}", project_number("p"))
                    && bucket["quotaMetric"] == "secretmanager.googleapis.com/write_requests"
            })
            .expect("bucket")
            .clone();
        assert_eq!(bucket["admitted"], 3);
        assert_eq!(bucket["refused"], 1);
    }

    #[test]
    fn a_disabled_api_is_refused_with_service_disabled_for_its_project_only() {
        let quotas = Quotas::new(&QuotaOptions::default());
        quotas.set_service_enabled("p", "secretmanager.googleapis.com", false);
        let refused = quotas
            .admit("GET", "v1/projects/p/secrets", None)
            .expect_err("disabled");
        assert_eq!(refused.code, StatusCode::FORBIDDEN);
        assert_eq!(refused.status, "PERMISSION_DENIED");
        let info = &refused.details[0];
        assert_eq!(info["reason"], "SERVICE_DISABLED");
        assert_eq!(info["domain"], "googleapis.com");
        assert_eq!(info["metadata"]["service"], "secretmanager.googleapis.com");
        assert!(refused.message.contains("has not been used in project"));
        // The number names the same project.
        assert!(
            quotas
                .admit(
                    "GET",
                    &format!("v1/projects/{}/secrets", project_number("p")),
                    None
                )
                .is_err()
        );
        assert!(quotas.admit("GET", "v1/projects/q/secrets", None).is_ok());
        assert!(
            quotas
                .admit("GET", "v1/projects/p/serviceAccounts", None)
                .is_ok()
        );
        quotas.set_service_enabled("p", "secretmanager.googleapis.com", true);
        assert!(quotas.admit("GET", "v1/projects/p/secrets", None).is_ok());
    }

    #[test]
    fn off_counts_nothing_but_overrides_still_apply() {
        let quotas = Quotas::new(&QuotaOptions::off());
        for _ in 0..1000 {
            assert!(
                quotas
                    .admit("POST", "v1/billingAccounts/A/budgets", None)
                    .is_ok()
            );
        }
        assert!(quotas.set_override("p", "iam.googleapis.com/write_requests", Some(0)));
        assert!(
            quotas
                .admit("POST", "v1/projects/p/serviceAccounts", None)
                .is_err()
        );
        assert!(!quotas.set_override("p", "no.such/metric", Some(1)));
    }
}
