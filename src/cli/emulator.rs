//! `infra emulator`: serves the emulated Google APIs on a port until interrupted.

use super::{CommandError, ErrorKind, Outcome};
use crate::emulator::quota::QuotaOptions;
use crate::emulator::realism::{FaultOptions, RealismOptions};
use crate::emulator::{self, EmulatorOptions};
use crate::gcp::quotas::{QUOTAS, quota_by_metric};
use clap::Args;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

/// Arguments of `infra emulator`.
#[derive(Debug, Args)]
pub struct EmulatorArgs {
    /// The port to listen on (0 picks a free one and prints it).
    #[arg(long, default_value_t = 8086)]
    pub port: u16,
    /// The address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: IpAddr,
    /// Keep the emulated objects in this directory across restarts (in memory otherwise).
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Delay every answer by this many milliseconds.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// How long a long-running operation (Cloud Run create, update, delete) takes to finish.
    #[arg(long, default_value_t = 200)]
    pub operation_delay_ms: u64,
    /// Answer this share of requests (0 to 1) with 503 UNAVAILABLE, evenly spaced, to exercise retries.
    #[arg(long, default_value_t = 0.0)]
    pub fail_rate: f64,
    /// For this long after its create, IAM refuses policies naming a new service account
    /// ("… does not exist"), as Google does for seconds to a minute; 0 turns it off.
    #[arg(long, default_value_t = 1500, value_name = "MS")]
    pub iam_propagation_ms: u64,
    /// Let concurrent writes to one project's alert policies and channels through (Google
    /// answers 409 to all but one).
    #[arg(long)]
    pub no_monitoring_single_writer: bool,
    /// Let Billing Budgets serve user credentials (tokens starting `user.`) that name no
    /// quota project (Google answers 403).
    #[arg(long)]
    pub no_quota_project_check: bool,
    /// Accept PromQL conditions naming metrics never written (Google refuses them unless the
    /// condition sets disableMetricValidation).
    #[arg(long)]
    pub no_metric_validation: bool,
    /// Turn every quirk above off (a lax emulator).
    #[arg(long)]
    pub no_realism: bool,
    /// Share (0 to 1) of writes whose change commits and whose answer is then cut off.
    #[arg(long, default_value_t = 0.0)]
    pub lose_answer_rate: f64,
    /// Share of requests answered 429 RESOURCE_EXHAUSTED with `Retry-After: 1`.
    #[arg(long, default_value_t = 0.0)]
    pub throttle_rate: f64,
    /// Share of requests answered `--slow-ms` late.
    #[arg(long, default_value_t = 0.0)]
    pub slow_rate: f64,
    /// How late a slow answer is.
    #[arg(long, default_value_t = 2000, value_name = "MS")]
    pub slow_ms: u64,
    /// The seed picking which requests get a fault: the same seed picks the same requests.
    #[arg(long, default_value_t = 0)]
    pub fault_seed: u64,
    /// Only requests whose `METHOD /path` contains this get faults (for example `POST /v1/billingAccounts`).
    #[arg(long, default_value = "", value_name = "TEXT")]
    pub fault_only: String,
    // Quotas and disabled APIs (issue 18, blockers 4 and 5).
    /// Multiply Google's published per-project request quotas (Secret Manager, IAM, Resource
    /// Manager, Cloud Run, Monitoring, Billing Budgets) by this; over one, the emulator
    /// answers 429 RESOURCE_EXHAUSTED as Google does. 0 turns quotas off.
    #[arg(long, default_value_t = 1.0, value_name = "FACTOR")]
    pub quota_scale: f64,
    /// How long one quota window lasts. Google counts per minute (60000); the default counts
    /// Google's per-minute values per second, so tests never wait minutes.
    #[arg(long, default_value_t = 1000, value_name = "MS")]
    pub quota_window_ms: u64,
    /// Give one project's quota bucket this limit per window, for example
    /// `proj-test:secretmanager.googleapis.com/write_requests=2` (repeatable; applies even
    /// with --no-realism).
    #[arg(long, value_name = "PROJECT:METRIC=LIMIT")]
    pub quota_override: Vec<String>,
    /// Treat an API as disabled in a project, for example
    /// `proj-test:secretmanager.googleapis.com`: every call answers 403 SERVICE_DISABLED
    /// (repeatable; applies even with --no-realism).
    #[arg(long, value_name = "PROJECT:SERVICE")]
    pub disable_service: Vec<String>,
    // Cloud Run: secret access propagation (issue 18).
    /// For this long after a secret is granted (roles/secretmanager.secretAccessor), a Cloud
    /// Run revision that mounts it fails to start ("Permission denied on secret"), as IAM
    /// grants take minutes to reach Google's services; 0 turns it off.
    #[arg(long, default_value_t = 1500, value_name = "MS")]
    pub secret_access_propagation_ms: u64,
    // Secret Manager consistency.
    /// For this long after a version is added, enabled, disabled or destroyed (or an alias
    /// changes), Secret Manager's `latest`, aliases and version lists answer what was there
    /// before, as Google's eventually consistent reads may; reads by version number never
    /// lag. 0 turns it off.
    #[arg(long, default_value_t = 2000, value_name = "MS")]
    pub secret_alias_lag_ms: u64,
    // IAM read-after-write and new service accounts (issue 18, IAM).
    /// For this long after a setIamPolicy, getIamPolicy of the same resource answers the
    /// policy it replaced, with that policy's etag (IAM reads are eventually consistent;
    /// Google gives no bound, seconds are typical); 0 turns it off.
    #[arg(long, default_value_t = 1000, value_name = "MS")]
    pub iam_policy_read_lag_ms: u64,
    /// For this long after its create, a GET of a service account answers 403
    /// PERMISSION_DENIED, as IAM does for an account it does not know yet; 0 turns it off.
    #[arg(long, default_value_t = 1000, value_name = "MS")]
    pub service_account_read_lag_ms: u64,
    // Monitoring dashboards (issue 18, item 7).
    /// Answer dashboards as sent, without the chart fields Google's server fills in
    /// (targetAxis, minAlignmentPeriod, chartOptions.mode, yAxis.scale, timeshiftDuration).
    #[arg(long)]
    pub no_dashboard_server_fields: bool,
    // Lists that lag a create, and billing accounts' currencies (issue 18, "lists that lag").
    /// For this long after its create, an object is missing from list answers (secrets,
    /// service accounts, alert policies, notification channels, dashboards, budgets), as
    /// eventually consistent lists are; 0 (or --no-realism) turns it off.
    #[arg(long, default_value_t = 2000, value_name = "MS")]
    pub list_lag_ms: u64,
    /// Bill this billing account in this ISO 4217 currency (`012345-6789AB-CDEF01=EUR`;
    /// repeatable); accounts not named bill in USD. A budget naming another currency is refused.
    #[arg(long, value_name = "ACCOUNT=CURRENCY", value_parser = parse_account_currency)]
    pub billing_account_currency: Vec<(String, String)>,
    // Cloud Storage object write rate (issue 18, blocker 3).
    /// The shortest time between two writes (create, update or delete) of one Cloud Storage
    /// object name; one sooner is answered 429 rateLimitExceeded, as Google allows one write per
    /// second per object name. 0 turns it off.
    #[arg(long, default_value_t = 1000, value_name = "MS")]
    pub gcs_object_write_interval_ms: u64,
}

/// Parses `ACCOUNT=CURRENCY` (a billing account id and a three-letter currency code).
fn parse_account_currency(text: &str) -> Result<(String, String), String> {
    let (account, currency) = text.split_once('=').ok_or_else(|| {
        format!("{text:?} is not ACCOUNT=CURRENCY (like 012345-6789AB-CDEF01=EUR)")
    })?;
    if account.is_empty() {
        return Err(format!("{text:?} names no billing account"));
    }
    if currency.len() != 3 || !currency.chars().all(|c| c.is_ascii_uppercase()) {
        return Err(format!(
            "{currency:?} is not an ISO 4217 currency code (three capital letters, like EUR)"
        ));
    }
    Ok((account.to_string(), currency.to_string()))
}

impl EmulatorArgs {
    /// Returns the quotas and disabled APIs the flags ask for.
    fn quotas(&self) -> Result<QuotaOptions, CommandError> {
        let mut quotas = if self.no_realism {
            QuotaOptions::off()
        } else {
            QuotaOptions {
                scale: self.quota_scale,
                window: Duration::from_millis(self.quota_window_ms.max(1)),
                ..QuotaOptions::default()
            }
        };
        for text in &self.quota_override {
            let parsed = text.split_once(':').and_then(|(project, rest)| {
                let (metric, limit) = rest.rsplit_once('=')?;
                let limit = limit.trim().parse::<u64>().ok()?;
                quota_by_metric(metric)?;
                Some((project.to_string(), metric.to_string(), limit))
            });
            let Some((project, metric, limit)) = parsed else {
                return Err(CommandError::new(
                    ErrorKind::Usage,
                    format!("--quota-override `{text}` is not PROJECT:METRIC=LIMIT with a known quota metric"),
                )
                .hint(format!(
                    "for example proj-test:secretmanager.googleapis.com/write_requests=2; the metrics are {}",
                    QUOTAS.iter().map(|spec| spec.metric).collect::<Vec<_>>().join(", ")
                )));
            };
            quotas.overrides.insert((project, metric), limit);
        }
        for text in &self.disable_service {
            let Some((project, service)) = text
                .split_once(':')
                .filter(|(project, service)| !project.is_empty() && service.contains('.'))
            else {
                return Err(CommandError::new(
                    ErrorKind::Usage,
                    format!("--disable-service `{text}` is not PROJECT:SERVICE"),
                )
                .hint("for example proj-test:secretmanager.googleapis.com"));
            };
            quotas
                .disabled_services
                .insert((project.to_string(), service.to_string()));
        }
        Ok(quotas)
    }

    /// Returns the realism the flags ask for.
    fn realism(&self) -> RealismOptions {
        let mut realism = if self.no_realism {
            RealismOptions::off()
        } else {
            RealismOptions {
                account_propagation: Duration::from_millis(self.iam_propagation_ms),
                monitoring_single_writer: !self.no_monitoring_single_writer,
                quota_project_required: !self.no_quota_project_check,
                metric_validation: !self.no_metric_validation,
                secret_alias_lag: Duration::from_millis(self.secret_alias_lag_ms),
                policy_read_lag: Duration::from_millis(self.iam_policy_read_lag_ms),
                account_read_lag: Duration::from_millis(self.service_account_read_lag_ms),
                list_lag: Duration::from_millis(self.list_lag_ms),
                object_write_interval: Duration::from_millis(self.gcs_object_write_interval_ms),
                ..RealismOptions::default()
            }
        };
        realism.faults = FaultOptions {
            lose_answer_rate: self.lose_answer_rate,
            throttle_rate: self.throttle_rate,
            slow_rate: self.slow_rate,
            slow: Duration::from_millis(self.slow_ms),
            seed: self.fault_seed,
            only: self.fault_only.clone(),
        };
        // Cloud Run: secret access propagation (issue 18).
        if !self.no_realism {
            realism.secret_access_propagation =
                Duration::from_millis(self.secret_access_propagation_ms);
        }
        // Monitoring dashboards (issue 18, item 7).
        if self.no_dashboard_server_fields {
            realism.dashboard_server_fields = false;
        }
        realism
    }
}

/// Runs `infra emulator`.
pub async fn run_emulator(args: EmulatorArgs) -> anyhow::Result<Outcome> {
    for (flag, rate) in [
        ("--fail-rate", args.fail_rate),
        ("--lose-answer-rate", args.lose_answer_rate),
        ("--throttle-rate", args.throttle_rate),
        ("--slow-rate", args.slow_rate),
    ] {
        if !(0.0..=1.0).contains(&rate) {
            return Err(CommandError::new(
                ErrorKind::Usage,
                format!("{flag} {rate} is not between 0 and 1"),
            )
            .hint("a share of requests: 0.1 picks one in ten")
            .into());
        }
    }
    if !(args.quota_scale >= 0.0 && args.quota_scale.is_finite()) {
        return Err(CommandError::new(
            ErrorKind::Usage,
            format!(
                "--quota-scale {} is not a factor of 0 or more",
                args.quota_scale
            ),
        )
        .hint("1 is Google's published quotas, 0.01 a hundredth of them, 0 turns quotas off")
        .into());
    }
    let mut realism = args.realism();
    realism.quotas = args.quotas()?;
    let options = EmulatorOptions {
        data_dir: args.data.clone(),
        latency: Duration::from_millis(args.latency_ms),
        fail_rate: args.fail_rate,
        operation_delay: Duration::from_millis(args.operation_delay_ms),
        realism,
        billing_currencies: args.billing_account_currency.iter().cloned().collect(),
    };
    let running = emulator::start(options, SocketAddr::new(args.host, args.port)).await?;
    outln!("{}", running.base_url());
    eprintln!(
        "infra emulator listening on {} — use it with INFRA_GCP_ENDPOINT={}. Ctrl-C or SIGTERM stops it.",
        running.base_url(),
        running.base_url()
    );
    super::interrupt().cancelled().await;
    running.handle.abort();
    Ok(Outcome::Success)
}
