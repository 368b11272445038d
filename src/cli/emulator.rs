//! `infra emulator`: serves the emulated Google APIs on a port until interrupted.

use super::{CommandError, ErrorKind, Outcome};
use crate::emulator::realism::{FaultOptions, RealismOptions};
use crate::emulator::{self, EmulatorOptions};
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
    // Cloud Storage object write rate (issue 18, blocker 3).
    /// The shortest time between two writes (create, update or delete) of one Cloud Storage
    /// object name; one sooner is answered 429 rateLimitExceeded, as Google allows one write per
    /// second per object name. 0 turns it off.
    #[arg(long, default_value_t = 1000, value_name = "MS")]
    pub gcs_object_write_interval_ms: u64,
}

impl EmulatorArgs {
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
    let options = EmulatorOptions {
        data_dir: args.data.clone(),
        latency: Duration::from_millis(args.latency_ms),
        fail_rate: args.fail_rate,
        operation_delay: Duration::from_millis(args.operation_delay_ms),
        realism: args.realism(),
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
