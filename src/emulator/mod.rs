//! `infra emulator`: a local stand-in for the Google APIs `infra` calls, faithful to their
//! discovery documents (error bodies, output-only fields, etags, update masks). It serves on a
//! port, or in-process for environments that say `[emulator] embedded = true`.

mod budgets;
pub mod collection;
pub mod discovery;
pub mod error;
pub mod http;
mod iam;
mod monitoring;
mod projects;
pub mod proto_enums;
pub mod quota;
pub mod realism;
mod run;
mod secret_views;
mod secretmanager;
pub mod server;
mod service_accounts;
mod storage;
pub mod store;
pub mod wire;

pub use server::{Emulator, EmulatorError, EmulatorOptions};

use std::net::SocketAddr;
use std::sync::Arc;

/// A running emulator: its address and the task serving it.
pub struct RunningEmulator {
    pub address: SocketAddr,
    pub handle: tokio::task::JoinHandle<()>,
}

impl RunningEmulator {
    /// Returns the base URL clients use (`http://127.0.0.1:PORT/`).
    pub fn base_url(&self) -> String {
        format!("http://{}/", self.address)
    }
}

/// Starts serving on `address` (port 0 picks a free one) in the current runtime.
pub async fn start(
    options: EmulatorOptions,
    address: SocketAddr,
) -> Result<RunningEmulator, EmulatorError> {
    let emulator: Arc<Emulator> = Emulator::open(options)?;
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .map_err(|source| EmulatorError::Io {
            path: address.to_string(),
            source,
        })?;
    let address = listener.local_addr().map_err(|source| EmulatorError::Io {
        path: address.to_string(),
        source,
    })?;
    let router = emulator.router();
    let handle = tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, router).await {
            tracing::error!("emulator stopped: {error}");
        }
    });
    Ok(RunningEmulator { address, handle })
}
