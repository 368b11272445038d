//! `infra emulator`: serves the emulated Google APIs on a port until interrupted.

use super::{CommandError, ErrorKind, Outcome};
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
}

/// Runs `infra emulator`.
pub async fn run_emulator(args: EmulatorArgs) -> anyhow::Result<Outcome> {
    if !(0.0..=1.0).contains(&args.fail_rate) {
        return Err(CommandError::new(
            ErrorKind::Usage,
            format!("--fail-rate {} is not between 0 and 1", args.fail_rate),
        )
        .hint("a share of requests: 0.1 fails one in ten")
        .into());
    }
    let options = EmulatorOptions {
        data_dir: args.data.clone(),
        latency: Duration::from_millis(args.latency_ms),
        fail_rate: args.fail_rate,
        operation_delay: Duration::from_millis(args.operation_delay_ms),
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
