//! State: the document model and where it is kept. Backends do the I/O; the document's rules
//! (lineage, serial, checksum) live in `model.rs`.

pub mod local;
pub mod model;

pub use local::LocalBackend;
pub use model::{ResourceStatus, State, StateOutput, StateResource};

use crate::config::BackendSettings;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Duration;

/// Who holds a lock, and for what.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LockInfo {
    pub id: String,
    pub operation: String,
    pub who: String,
    pub created: String,
    pub version: String,
}

impl LockInfo {
    /// Describes the current process taking a lock for `operation`.
    pub fn for_operation(operation: &str) -> Self {
        let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
        let host = std::fs::read_to_string("/etc/hostname")
            .map(|name| name.trim().to_string())
            .unwrap_or_else(|_| "localhost".into());
        let now = chrono::Utc::now();
        Self {
            id: now.timestamp_millis().to_string(),
            operation: operation.to_string(),
            who: format!("{user}@{host} (pid {})", std::process::id()),
            created: now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            version: env!("CARGO_PKG_VERSION").to_string(),
        }
    }
}

/// A state backend failure.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("{location}: {source}")]
    Io {
        location: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Document(#[from] model::StateDocumentError),
    #[error("{}", locked_message(.location, .holder.as_deref(), .env))]
    Locked {
        location: String,
        holder: Option<Box<LockInfo>>,
        env: String,
    },
    #[error(
        "backend `{kind}` for environment `{env}` is not available yet\n  hint: the GCS backend lands with issue 5; until then use `[backend] kind = \"local\"` or run `infra validate --env {env}`"
    )]
    Unavailable { kind: String, env: String },
}

fn locked_message(location: &str, holder: Option<&LockInfo>, env: &str) -> String {
    match holder {
        Some(holder) => format!(
            "state locked by {} since {} for `{}` (id {}) — {location}\n  hint: wait for it, retry with --lock-timeout 60s; if that run is dead its lock is gone with it (an OS lock)",
            holder.who, holder.created, holder.operation, holder.id
        ),
        None => format!(
            "state for `{env}` is locked by another process — {location}\n  hint: retry with --lock-timeout 60s"
        ),
    }
}

/// A state backend, chosen by the environment's `[backend]`.
pub enum Backend {
    Local(LocalBackend),
}

impl Backend {
    /// Opens the backend an environment configures.
    pub fn open(env: &str, settings: &BackendSettings, root: &Path) -> Result<Self, StateError> {
        match settings {
            BackendSettings::Local { path } => {
                Ok(Backend::Local(LocalBackend::new(env, root.join(path))))
            }
            BackendSettings::Gcs { .. } => Err(StateError::Unavailable {
                kind: "gcs".into(),
                env: env.into(),
            }),
        }
    }

    /// Returns where the state lives, for messages.
    pub fn location(&self) -> String {
        match self {
            Backend::Local(local) => local.location(),
        }
    }

    /// Reads the state; `None` when none was ever written.
    pub fn read(&self) -> Result<Option<State>, StateError> {
        match self {
            Backend::Local(local) => local.read(),
        }
    }

    /// Reads the state, or a new empty one.
    pub fn read_or_new(&self, env: &str) -> Result<State, StateError> {
        Ok(self.read()?.unwrap_or_else(|| State::new(env)))
    }

    /// Writes the state.
    pub fn write(&self, state: &State) -> Result<(), StateError> {
        match self {
            Backend::Local(local) => local.write(state),
        }
    }

    /// Takes the lock.
    pub fn lock(&mut self, operation: &str, timeout: Duration) -> Result<(), StateError> {
        let info = LockInfo::for_operation(operation);
        match self {
            Backend::Local(local) => local.lock(&info, timeout),
        }
    }

    /// Releases the lock.
    pub fn unlock(&mut self) {
        match self {
            Backend::Local(local) => local.unlock(),
        }
    }
}
