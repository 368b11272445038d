//! Google's documented behaviours that a lax emulator would hide from the client, on by default
//! and tunable (or off) per run: a propagation window in which IAM refuses policies naming a
//! new service account, and one in which a GET of it answers 403; another in which a Cloud Run
//! revision is refused a secret just granted; IAM policy reads that lag a `setIamPolicy`;
//! Monitoring's 409 on concurrent edits of one project's alerting state; Billing Budgets'
//! demand for a quota project from user credentials; PromQL metric validation (system metrics
//! always exist, user metrics once written); dashboards answered with the fields Google's
//! server fills in; Secret Manager's lagging `latest` and aliases; lists that lag a create;
//! Cloud Storage's one write per second per object name; and injected faults (an answer lost
//! after the change committed, 429 with `Retry-After`, a slow answer), deterministic by seed.
//! The server calls it; it knows no HTTP framework.

use super::error::ApiError;
use super::quota::QuotaOptions;
use serde_json::Value as Json;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A bearer token starting with this is a user credential (what `gcloud auth
/// application-default login` yields): tests say "this token is a user's" by its prefix.
pub const USER_TOKEN_PREFIX: &str = "user.";

/// The collections whose lists lag a create, as `(create, list)` discovery method ids. Secret
/// Manager: "Other operations within Secret Manager are eventually consistent"
/// (<https://cloud.google.com/secret-manager/docs/reference/consistency>); IAM: "When you read
/// data from the IAM API, each read is eventually consistent" (the IAM API's service
/// description). Monitoring and Billing Budgets promise no read-after-write consistency for
/// lists, so the emulator takes the side a client must be ready for. Cloud Storage's object
/// listing is strongly consistent (<https://cloud.google.com/storage/docs/consistency>), and
/// is not here.
pub const LAGGING_COLLECTIONS: &[(&str, &str)] = &[
    (
        "secretmanager.projects.secrets.create",
        "secretmanager.projects.secrets.list",
    ),
    (
        "iam.projects.serviceAccounts.create",
        "iam.projects.serviceAccounts.list",
    ),
    (
        "monitoring.projects.alertPolicies.create",
        "monitoring.projects.alertPolicies.list",
    ),
    (
        "monitoring.projects.notificationChannels.create",
        "monitoring.projects.notificationChannels.list",
    ),
    (
        "monitoring.projects.dashboards.create",
        "monitoring.projects.dashboards.list",
    ),
    (
        "billingbudgets.billingAccounts.budgets.create",
        "billingbudgets.billingAccounts.budgets.list",
    ),
];
/// Cloud Storage's limit on writes to one object name: "one write per second"
/// (<https://cloud.google.com/storage/quotas>), the real value, as a state backend must live
/// with it (an apply paces its state writes to it).
pub const OBJECT_WRITE_INTERVAL: Duration = Duration::from_secs(1);

/// How many object names the write rate remembers before forgetting those written longer ago
/// than the interval (a bound on its memory, not a behaviour).
const OBJECT_WRITES_REMEMBERED: usize = 4096;

/// How the emulator imitates Google's quirks. `Default` is realism on.
#[derive(Debug, Clone)]
pub struct RealismOptions {
    /// How long after its create a service account is unknown to IAM policies (zero: off).
    pub account_propagation: Duration,
    /// Concurrent writes to one project's alert policies or notification channels get 409.
    pub monitoring_single_writer: bool,
    /// Billing Budgets refuse a user credential that names no quota project (403).
    pub quota_project_required: bool,
    /// A PromQL condition naming a user metric never written to the project is refused unless
    /// it sets `disableMetricValidation` (system metrics always exist).
    pub metric_validation: bool,
    /// Injected faults.
    pub faults: FaultOptions,
    // Quotas and disabled APIs (issue 18, blockers 4 and 5).
    /// Per-project request quotas (429 `RATE_LIMIT_EXCEEDED`) and APIs disabled per project
    /// (403 `SERVICE_DISABLED`), applied before anything else (`quota.rs`).
    pub quotas: QuotaOptions,
    // Cloud Run: secret access propagation (issue 18).
    /// How long after a `roles/secretmanager.secretAccessor` grant on a secret a Cloud Run
    /// revision that starts and mounts it is still refused it (zero: off).
    pub secret_access_propagation: Duration,
    // Secret Manager consistency.
    /// How long Secret Manager's `latest`, version aliases and version lists keep answering
    /// what a secret's versions were before a change (zero: off). Reads by number never lag.
    pub secret_alias_lag: Duration,
    // IAM read-after-write and new service accounts (issue 18, IAM).
    /// How long after a `setIamPolicy` a `getIamPolicy` of the same resource still answers the
    /// policy it replaced (zero: off). Every API's policies lag but Cloud Storage's, whose
    /// bucket metadata reads are strongly consistent.
    pub policy_read_lag: Duration,
    /// How long after its create a GET of a service account answers 403 PERMISSION_DENIED, as
    /// IAM does for an account it does not know yet (zero: off).
    pub account_read_lag: Duration,
    // Monitoring dashboards (issue 18, item 7).
    /// Dashboards are answered with the chart fields Google's server fills in when the request
    /// left them out (`targetAxis`, `minAlignmentPeriod`, `chartOptions.mode`, …).
    pub dashboard_server_fields: bool,
    // Lists that lag a create (issue 18, "lists that lag").
    /// How long an object just created stays out of the list answers of the collections whose
    /// lists Google does not promise to be consistent with a create (`LAGGING_COLLECTIONS`);
    /// zero: lists are consistent at once.
    pub list_lag: Duration,
    // Cloud Storage object write rate (issue 18, blocker 3).
    /// The shortest time between two writes (create, update or delete) of one Cloud Storage
    /// object name; a write sooner is refused 429 `rateLimitExceeded` (zero: off). Google
    /// allows one per second and documents no burst (cloud.google.com/storage/quotas).
    pub object_write_interval: Duration,
}

impl Default for RealismOptions {
    fn default() -> Self {
        Self {
            account_propagation: Duration::from_millis(1500),
            monitoring_single_writer: true,
            quota_project_required: true,
            metric_validation: true,
            faults: FaultOptions::default(),
            quotas: QuotaOptions::default(),
            secret_access_propagation: Duration::from_millis(1500),
            secret_alias_lag: Duration::from_millis(2000),
            policy_read_lag: Duration::from_millis(1000),
            account_read_lag: Duration::from_millis(1000),
            dashboard_server_fields: true,
            list_lag: Duration::from_millis(2000),
            object_write_interval: OBJECT_WRITE_INTERVAL,
        }
    }
}

impl RealismOptions {
    /// Returns the options with every quirk off (a lax emulator, for tests that say so).
    pub fn off() -> Self {
        Self {
            account_propagation: Duration::ZERO,
            monitoring_single_writer: false,
            quota_project_required: false,
            metric_validation: false,
            faults: FaultOptions::default(),
            quotas: QuotaOptions::off(),
            secret_access_propagation: Duration::ZERO,
            secret_alias_lag: Duration::ZERO,
            policy_read_lag: Duration::ZERO,
            account_read_lag: Duration::ZERO,
            dashboard_server_fields: false,
            list_lag: Duration::ZERO,
            object_write_interval: Duration::ZERO,
        }
    }
}

/// Faults injected into answers, picked deterministically from `seed` and the request's order.
#[derive(Debug, Clone, Default)]
pub struct FaultOptions {
    /// Share (0 to 1) of matching writes whose change commits and whose answer is then lost.
    pub lose_answer_rate: f64,
    /// Share of matching requests answered 429 RESOURCE_EXHAUSTED with `Retry-After: 1`.
    pub throttle_rate: f64,
    /// Share of matching requests answered after `slow` more.
    pub slow_rate: f64,
    pub slow: Duration,
    pub seed: u64,
    /// Only requests whose `METHOD /path` contains this are picked (all when empty).
    pub only: String,
}

/// What the fault dice say for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    None,
    Throttle,
    Slow(Duration),
    /// Commit the change, then cut the answer.
    LoseAnswer,
}

/// The quirks' state while the emulator runs.
pub struct Realism {
    pub options: RealismOptions,
    accounts_created: Mutex<BTreeMap<String, Instant>>,
    monitoring_writers: Mutex<BTreeMap<String, usize>>,
    picked: AtomicU64,
    /// When each object of a lagging collection was created, by its name as lists answer it.
    recently_created: Mutex<BTreeMap<String, Instant>>,
    /// When each Cloud Storage object name (`bucket/name`) was last written.
    object_writes: Mutex<HashMap<String, Instant>>,
}

/// Marks one Monitoring write in progress; dropping it ends the write.
pub struct MonitoringWrite<'a> {
    realism: &'a Realism,
    project: String,
}

impl Drop for MonitoringWrite<'_> {
    fn drop(&mut self) {
        let mut writers = self
            .realism
            .monitoring_writers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(count) = writers.get_mut(&self.project) {
            *count = count.saturating_sub(1);
        }
    }
}

impl Realism {
    pub fn new(options: RealismOptions) -> Self {
        Self {
            options,
            accounts_created: Mutex::default(),
            monitoring_writers: Mutex::default(),
            picked: AtomicU64::new(0),
            recently_created: Mutex::default(),
            object_writes: Mutex::default(),
        }
    }

    /// Rolls the fault dice for a request (`METHOD /path`); writes alone can lose answers.
    pub fn fault(&self, signature: &str, is_write: bool) -> Fault {
        let faults = &self.options.faults;
        if faults.lose_answer_rate <= 0.0 && faults.throttle_rate <= 0.0 && faults.slow_rate <= 0.0
        {
            return Fault::None;
        }
        if !faults.only.is_empty() && !signature.contains(&faults.only) {
            return Fault::None;
        }
        let draw = unit_interval(faults.seed, self.picked.fetch_add(1, Ordering::SeqCst));
        if is_write && draw < faults.lose_answer_rate {
            Fault::LoseAnswer
        } else if draw < faults.lose_answer_rate + faults.throttle_rate {
            Fault::Throttle
        } else if draw < faults.lose_answer_rate + faults.throttle_rate + faults.slow_rate {
            Fault::Slow(faults.slow)
        } else {
            Fault::None
        }
    }

    /// Notes a service account just created (its email).
    pub fn account_created(&self, email: &str) {
        if self.options.account_propagation.is_zero() && self.options.account_read_lag.is_zero() {
            return;
        }
        self.accounts_created
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(email.to_ascii_lowercase(), Instant::now());
    }

    /// Refuses a policy naming a service account IAM does not know yet, as Google does for
    /// seconds to a minute after its create: 400 INVALID_ARGUMENT "… does not exist".
    pub fn check_policy_members(&self, body: &Json) -> Result<(), ApiError> {
        let window = self.options.account_propagation;
        if window.is_zero() {
            return Ok(());
        }
        let created = self
            .accounts_created
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let members = body
            .pointer("/policy/bindings")
            .and_then(Json::as_array)
            .into_iter()
            .flatten()
            .flat_map(|binding| binding["members"].as_array().cloned().unwrap_or_default());
        for member in members {
            let Some(email) = member
                .as_str()
                .and_then(|member| member.strip_prefix("serviceAccount:"))
            else {
                continue;
            };
            if created
                .get(&email.to_ascii_lowercase())
                .is_some_and(|at| at.elapsed() < window)
            {
                return Err(ApiError::invalid_argument(format!(
                    "Service account {email} does not exist."
                )));
            }
        }
        Ok(())
    }

    /// Refuses a GET of a service account created less than `account_read_lag` ago with the
    /// 403 IAM gives for an account it does not know yet (IAM reads are eventually consistent;
    /// the Terraform provider retries exactly this 403 after a create). `account` is the path's
    /// last segment: an email, or a unique id (which this does not check).
    pub fn check_account_read(&self, path: &str, account: &str) -> Result<(), ApiError> {
        let window = self.options.account_read_lag;
        if window.is_zero() {
            return Ok(());
        }
        let created = self
            .accounts_created
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if created
            .get(&account.to_ascii_lowercase())
            .is_some_and(|at| at.elapsed() < window)
        {
            return Err(ApiError::from_status(
                axum::http::StatusCode::FORBIDDEN,
                format!(
                    "Permission 'iam.serviceAccounts.get' denied on resource (or it may not exist): {path}"
                ),
            ));
        }
        Ok(())
    }

    /// Starts a write to a project's alerting state; 409 while another is in progress.
    pub fn begin_monitoring_write(&self, project: &str) -> Result<MonitoringWrite<'_>, ApiError> {
        let mut writers = self
            .monitoring_writers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let count = writers.entry(project.to_string()).or_default();
        if *count > 0 && self.options.monitoring_single_writer {
            return Err(ApiError::aborted(
                "Too many concurrent edits to the project configuration. Please try again.",
            ));
        }
        *count += 1;
        Ok(MonitoringWrite {
            realism: self,
            project: project.to_string(),
        })
    }

    /// Refuses Billing Budgets calls made with a user credential but no quota project.
    pub fn check_quota_project(
        &self,
        authorization: Option<&str>,
        quota_project: Option<&str>,
    ) -> Result<(), ApiError> {
        let user = authorization
            .and_then(|value| value.strip_prefix("Bearer "))
            .is_some_and(|token| token.starts_with(USER_TOKEN_PREFIX));
        if self.options.quota_project_required
            && user
            && quota_project.is_none_or(|project| project.trim().is_empty())
        {
            return Err(ApiError::from_status(
                axum::http::StatusCode::FORBIDDEN,
                "Your application is authenticating by using local Application Default Credentials. The billingbudgets.googleapis.com API requires a quota project, which is not set by default. To learn how to set your quota project, see https://cloud.google.com/docs/authentication/adc-troubleshooting/user-creds .",
            ));
        }
        Ok(())
    }

    /// Notes an object a create of a lagging collection answered with (`method_id` is the
    /// discovery id of the create, `answer` the created object).
    pub fn object_created(&self, method_id: &str, answer: &Json) {
        if self.options.list_lag.is_zero()
            || !LAGGING_COLLECTIONS
                .iter()
                .any(|(create, _)| *create == method_id)
        {
            return;
        }
        if let Some(name) = answer["name"].as_str() {
            self.recently_created
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .insert(name.to_string(), Instant::now());
        }
    }

    /// Removes from a list answer of a lagging collection (`method_id` is the discovery id of
    /// the list) the objects created less than `list_lag` ago, as an eventually consistent
    /// index would not show them yet. A page may come back shorter than asked, which AIP-158
    /// allows; its `nextPageToken` stays.
    pub fn hide_recent(&self, method_id: &str, answer: &mut Json) {
        let window = self.options.list_lag;
        if window.is_zero()
            || !LAGGING_COLLECTIONS
                .iter()
                .any(|(_, list)| *list == method_id)
        {
            return;
        }
        let mut created = self
            .recently_created
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        created.retain(|_, at| at.elapsed() < window);
        if created.is_empty() {
            return;
        }
        let Some(fields) = answer.as_object_mut() else {
            return;
        };
        for items in fields.values_mut().filter_map(Json::as_array_mut) {
            items.retain(|item| {
                item["name"]
                    .as_str()
                    .is_none_or(|name| !created.contains_key(name))
            });
        }
        // proto3 JSON leaves an empty repeated field out.
        fields.retain(|_, value| !value.as_array().is_some_and(Vec::is_empty));
    }

    /// Refuses an alert policy whose PromQL names a user metric never written to the project
    /// (`written`: the metric types written through `timeSeries.create`) unless the condition
    /// sets `disableMetricValidation`. Google's own metrics, in Cloud Monitoring's PromQL
    /// naming (`run_googleapis_com:request_count` is `run.googleapis.com/request_count`), always
    /// exist. <https://cloud.google.com/monitoring/promql/promql-mapping>.
    pub fn check_promql(&self, policy: &Json, written: &[String]) -> Result<(), ApiError> {
        if !self.options.metric_validation {
            return Ok(());
        }
        let known: BTreeSet<String> = written
            .iter()
            .flat_map(|metric_type| promql_names(metric_type))
            .collect();
        for condition in policy["conditions"].as_array().into_iter().flatten() {
            let promql = &condition["conditionPrometheusQueryLanguage"];
            if promql.is_null() || promql["disableMetricValidation"] == true {
                continue;
            }
            if let Some(metric) = metric_names(promql["query"].as_str().unwrap_or_default())
                .into_iter()
                .find(|metric| !is_system_metric(metric) && !known.contains(metric))
            {
                let monitoring_type = match metric.split_once(':') {
                    Some((domain, rest)) => format!("{}/{rest}", domain.replace('_', ".")),
                    None => format!("prometheus.googleapis.com/{metric}"),
                };
                return Err(ApiError::invalid_argument(format!(
                    "Cannot find metric(s) that match type = \"{monitoring_type}\". If a metric was created recently, it could take up to 10 minutes to become available. Please try again soon, or set disableMetricValidation."
                )));
            }
        }
        Ok(())
    }

    /// Admits a write (create, update or delete) of Cloud Storage object `name` in `bucket`,
    /// or refuses it, returning how long until one would be admitted, when the name's last
    /// admitted write is younger than `object_write_interval`. A refused write does not count:
    /// Google throttles the object's mutations, and a client backing off gets through.
    pub fn admit_object_write(&self, bucket: &str, name: &str) -> Result<(), Duration> {
        let interval = self.options.object_write_interval;
        if interval.is_zero() {
            return Ok(());
        }
        let mut writes = self
            .object_writes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let now = Instant::now();
        let key = format!("{bucket}/{name}");
        if let Some(last) = writes.get(&key) {
            let elapsed = now.duration_since(*last);
            if elapsed < interval {
                return Err(interval - elapsed);
            }
        }
        if writes.len() >= OBJECT_WRITES_REMEMBERED {
            writes.retain(|_, last| now.duration_since(*last) < interval);
        }
        writes.insert(key, now);
        Ok(())
    }
}

/// Returns true when a PromQL metric name is one of Google's own metrics in Cloud Monitoring's
/// PromQL naming: the metric type's domain with `.` as `_`, a `:`, then the rest with `/` and
/// `.` as `_`. User-defined domains (custom, external, workload, Prometheus, log-based user
/// metrics) are not system metrics; a name with no `:` is a Prometheus metric.
pub fn is_system_metric(name: &str) -> bool {
    let Some((domain, rest)) = name.split_once(':') else {
        return false;
    };
    let google_domain = domain.ends_with("_googleapis_com")
        || ["kubernetes_io", "istio_io", "knative_dev"].contains(&domain);
    let user = super::monitoring::USER_METRIC_PREFIXES
        .iter()
        .any(|prefix| {
            let (prefix_domain, prefix_path) = prefix.split_once('/').unwrap_or((prefix, ""));
            domain == prefix_domain.replace('.', "_")
                && rest.starts_with(&prefix_path.replace('/', "_"))
        });
    google_domain && !user
}

/// Returns the names a written metric type has in PromQL: a Prometheus metric by its own name
/// (a histogram also as its `_bucket`, `_sum` and `_count` series, a summary as `_sum` and
/// `_count`); any other by Cloud Monitoring's mapping (`custom.googleapis.com/app/jobs` is
/// `custom_googleapis_com:app_jobs`).
pub fn promql_names(metric_type: &str) -> Vec<String> {
    if let Some(rest) = metric_type.strip_prefix("prometheus.googleapis.com/") {
        let (name, kind) = rest.rsplit_once('/').unwrap_or((rest, ""));
        let suffixes: &[&str] = match kind {
            "histogram" => &["", "_bucket", "_sum", "_count"],
            "summary" => &["", "_sum", "_count"],
            _ => &[""],
        };
        return suffixes
            .iter()
            .map(|suffix| format!("{name}{suffix}"))
            .collect();
    }
    match metric_type.split_once('/') {
        Some((domain, path)) => vec![format!(
            "{}:{}",
            domain.replace('.', "_"),
            path.replace(['/', '.'], "_")
        )],
        None => vec![metric_type.to_string()],
    }
}

/// Returns the metric names a PromQL query selects: names followed by a label matcher `{` or a
/// range `[`, or standing alone (not a function, keyword or label inside braces).
pub fn metric_names(query: &str) -> BTreeSet<String> {
    const KEYWORDS: [&str; 12] = [
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "and",
        "or",
        "unless",
        "bool",
        "offset",
        "inf",
    ];
    const AGGREGATIONS: [&str; 12] = [
        "sum",
        "min",
        "max",
        "avg",
        "group",
        "stddev",
        "stdvar",
        "count",
        "count_values",
        "bottomk",
        "topk",
        "quantile",
    ];
    let mut names = BTreeSet::new();
    let characters: Vec<char> = query.chars().collect();
    let mut index = 0;
    let mut brace_depth = 0usize;
    let mut in_string: Option<char> = None;
    while index < characters.len() {
        let character = characters[index];
        if let Some(quote) = in_string {
            if character == '\\' {
                index += 1;
            } else if character == quote {
                in_string = None;
            }
            index += 1;
            continue;
        }
        match character {
            '"' | '\'' | '`' => in_string = Some(character),
            '{' => brace_depth += 1,
            '}' => brace_depth = brace_depth.saturating_sub(1),
            '[' => {
                // A range or subquery duration: skip to its end.
                while index < characters.len() && characters[index] != ']' {
                    index += 1;
                }
            }
            _ if brace_depth == 0
                && (character.is_ascii_alphabetic() || character == '_' || character == ':') =>
            {
                let start = index;
                while index < characters.len()
                    && (characters[index].is_ascii_alphanumeric()
                        || characters[index] == '_'
                        || characters[index] == ':')
                {
                    index += 1;
                }
                let word: String = characters[start..index].iter().collect();
                let lower = word.to_ascii_lowercase();
                if lower == "by" || lower == "without" || lower == "on" || lower == "ignoring" {
                    // A label list follows: `by (le, env)` names labels, not metrics.
                    while index < characters.len() && characters[index] != ')' {
                        index += 1;
                    }
                    continue;
                }
                let next = characters[index..].iter().find(|c| !c.is_whitespace());
                let is_function = next == Some(&'(');
                let is_keyword =
                    KEYWORDS.contains(&lower.as_str()) || AGGREGATIONS.contains(&lower.as_str());
                if !is_function && !is_keyword {
                    names.insert(word);
                }
                continue;
            }
            _ => {}
        }
        index += 1;
    }
    names
}

/// Returns a number in [0, 1) from `seed` and `index` (splitmix64): the same seed picks the
/// same requests on every run.
fn unit_interval(seed: u64, index: u64) -> f64 {
    let mut value = seed.wrapping_add(index.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    value = (value ^ (value >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    value = (value ^ (value >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    value ^= value >> 31;
    (value >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn metric_names_are_the_selected_series_only() {
        assert_eq!(
            metric_names(
                "100 * sum(rate(beta_api_errors_total{env=\"dev\", feature!=\"\"}[5m])) / sum by (le) (rate(beta_api_requests_total[5m])) > 2"
            ),
            BTreeSet::from([
                "beta_api_errors_total".to_string(),
                "beta_api_requests_total".to_string()
            ])
        );
        assert_eq!(
            metric_names("histogram_quantile(0.95, sum by (le) (rate(x_bucket{a=\"b\"}[5m]))) > 1"),
            BTreeSet::from(["x_bucket".to_string()])
        );
        assert!(metric_names("vector(1) > 0").is_empty());
    }

    fn promql_policy(query: &str) -> Json {
        json!({"conditions": [{"conditionPrometheusQueryLanguage": {"query": query}}]})
    }

    #[test]
    fn google_metrics_in_promql_naming_always_exist() {
        let realism = Realism::new(RealismOptions::default());
        for query in [
            "sum(rate(run_googleapis_com:request_count{response_code_class=\"5xx\"}[5m])) > 1",
            "histogram_quantile(0.99, sum by (le) (rate(run_googleapis_com:request_latencies_bucket[5m]))) > 2000",
            "kubernetes_io:container_cpu_core_usage_time > 1",
        ] {
            assert!(
                realism.check_promql(&promql_policy(query), &[]).is_ok(),
                "{query}"
            );
        }
        // User-defined domains are not system metrics, nor is a Prometheus name.
        for name in [
            "custom_googleapis_com:jobs",
            "logging_googleapis_com:user_errors",
            "workload_googleapis_com:x",
            "beta_api_errors_total",
            "job:requests:rate5m",
        ] {
            assert!(!is_system_metric(name), "{name}");
        }
        assert!(is_system_metric("logging_googleapis_com:log_entry_count"));
    }

    #[test]
    fn user_metrics_exist_once_written() {
        let realism = Realism::new(RealismOptions::default());
        let errors = promql_policy("sum(rate(beta_api_errors_total[5m])) > 1");
        let refused = realism
            .check_promql(&errors, &[])
            .expect_err("never written");
        assert!(
            refused
                .message
                .contains("prometheus.googleapis.com/beta_api_errors_total"),
            "{}",
            refused.message
        );
        let written = ["prometheus.googleapis.com/beta_api_errors_total/counter".to_string()];
        assert!(realism.check_promql(&errors, &written).is_ok());
        let latency =
            promql_policy("histogram_quantile(0.9, rate(latency_seconds_bucket[5m])) > 1");
        assert!(
            realism
                .check_promql(
                    &latency,
                    &["prometheus.googleapis.com/latency_seconds/histogram".to_string()]
                )
                .is_ok()
        );
        let custom = promql_policy("custom_googleapis_com:app_jobs_done > 1");
        assert!(realism.check_promql(&custom, &[]).is_err());
        assert!(
            realism
                .check_promql(
                    &custom,
                    &["custom.googleapis.com/app/jobs.done".to_string()]
                )
                .is_ok()
        );
    }

    #[test]
    fn a_new_account_is_refused_in_policies_only_during_its_window() {
        let realism = Realism::new(RealismOptions {
            account_propagation: Duration::from_millis(50),
            ..RealismOptions::default()
        });
        realism.account_created("run@p.iam.gserviceaccount.com");
        let policy = json!({"policy": {"bindings": [{"role": "roles/x", "members": ["serviceAccount:Run@p.iam.gserviceaccount.com"]}]}});
        assert!(realism.check_policy_members(&policy).is_err());
        std::thread::sleep(Duration::from_millis(60));
        assert!(realism.check_policy_members(&policy).is_ok());
    }

    #[test]
    fn a_new_account_answers_403_to_reads_only_during_its_window() {
        let realism = Realism::new(RealismOptions {
            account_read_lag: Duration::from_millis(50),
            ..RealismOptions::off()
        });
        realism.account_created("run@p.iam.gserviceaccount.com");
        let path = "projects/p/serviceAccounts/Run@p.iam.gserviceaccount.com";
        let refused = realism
            .check_account_read(path, "Run@p.iam.gserviceaccount.com")
            .expect_err("too new");
        assert_eq!(refused.status, "PERMISSION_DENIED");
        assert!(refused.message.contains("iam.serviceAccounts.get"));
        assert!(
            realism
                .check_account_read(path, "other@p.iam.gserviceaccount.com")
                .is_ok()
        );
        std::thread::sleep(Duration::from_millis(60));
        assert!(
            realism
                .check_account_read(path, "run@p.iam.gserviceaccount.com")
                .is_ok()
        );
    }

    #[test]
    fn a_second_concurrent_monitoring_write_is_refused_until_the_first_ends() {
        let realism = Realism::new(RealismOptions::default());
        let first = realism.begin_monitoring_write("p").expect("first");
        assert!(realism.begin_monitoring_write("p").is_err());
        assert!(realism.begin_monitoring_write("q").is_ok());
        drop(first);
        assert!(realism.begin_monitoring_write("p").is_ok());
    }

    #[test]
    fn user_credentials_need_a_quota_project_for_budgets() {
        let realism = Realism::new(RealismOptions::default());
        assert!(
            realism
                .check_quota_project(Some("Bearer user.abc"), None)
                .is_err()
        );
        assert!(
            realism
                .check_quota_project(Some("Bearer user.abc"), Some("q"))
                .is_ok()
        );
        assert!(
            realism
                .check_quota_project(Some("Bearer ya29.service"), None)
                .is_ok()
        );
        assert!(realism.check_quota_project(None, None).is_ok());
    }

    #[test]
    fn a_new_object_is_missing_from_lists_only_during_the_lag() {
        let realism = Realism::new(RealismOptions {
            list_lag: Duration::from_millis(50),
            ..RealismOptions::default()
        });
        let create = "monitoring.projects.alertPolicies.create";
        let list = "monitoring.projects.alertPolicies.list";
        realism.object_created(create, &json!({"name": "projects/1/alertPolicies/new"}));
        let answer = json!({"alertPolicies": [{"name": "projects/1/alertPolicies/old"}, {"name": "projects/1/alertPolicies/new"}]});
        let mut lagging = answer.clone();
        realism.hide_recent(list, &mut lagging);
        assert_eq!(
            lagging,
            json!({"alertPolicies": [{"name": "projects/1/alertPolicies/old"}]})
        );
        // Another collection's list, and a strongly consistent one, show everything.
        let mut other = answer.clone();
        realism.hide_recent("storage.objects.list", &mut other);
        assert_eq!(other, answer);
        std::thread::sleep(Duration::from_millis(60));
        let mut settled = answer.clone();
        realism.hide_recent(list, &mut settled);
        assert_eq!(settled, answer);
        let mut only_new = json!({"alertPolicies": [{"name": "projects/1/alertPolicies/x"}], "nextPageToken": "t"});
        realism.object_created(create, &json!({"name": "projects/1/alertPolicies/x"}));
        realism.hide_recent(list, &mut only_new);
        assert_eq!(only_new, json!({"nextPageToken": "t"}));
    }

    #[test]
    fn one_object_name_takes_one_write_per_interval_and_others_are_not_held_up() {
        let realism = Realism::new(RealismOptions {
            object_write_interval: Duration::from_millis(80),
            ..RealismOptions::off()
        });
        assert_eq!(
            realism.admit_object_write("b", "infra/dev.state.json"),
            Ok(())
        );
        let wait = realism
            .admit_object_write("b", "infra/dev.state.json")
            .expect_err("a second write within the interval is refused");
        assert!(wait <= Duration::from_millis(80), "{wait:?}");
        // Another name, or the same name in another bucket, has its own rate.
        assert_eq!(realism.admit_object_write("b", "infra/dev.lock"), Ok(()));
        assert_eq!(
            realism.admit_object_write("c", "infra/dev.state.json"),
            Ok(())
        );
        std::thread::sleep(Duration::from_millis(90));
        assert_eq!(
            realism.admit_object_write("b", "infra/dev.state.json"),
            Ok(())
        );
        // Off: any rate.
        let lax = Realism::new(RealismOptions::off());
        for _ in 0..3 {
            assert_eq!(lax.admit_object_write("b", "o"), Ok(()));
        }
    }

    #[test]
    fn faults_are_deterministic_by_seed() {
        let options = RealismOptions {
            faults: FaultOptions {
                lose_answer_rate: 0.3,
                seed: 7,
                ..FaultOptions::default()
            },
            ..RealismOptions::default()
        };
        let picks = |realism: &Realism| -> Vec<Fault> {
            (0..50).map(|_| realism.fault("POST /v1/x", true)).collect()
        };
        let first = picks(&Realism::new(options.clone()));
        assert_eq!(first, picks(&Realism::new(options)));
        let lost = first
            .iter()
            .filter(|fault| **fault == Fault::LoseAnswer)
            .count();
        assert!((5..=25).contains(&lost), "{lost} of 50");
    }
}
