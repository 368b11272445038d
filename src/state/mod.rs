//! State: the document model and where it is kept. Backends do the I/O; the document's rules
//! (lineage, serial, checksum) live in `model.rs`.

pub mod gcs;
pub mod local;
pub mod model;

pub use gcs::GcsBackend;
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
    #[error(
        "{location}: {source}\n  hint: the state's directory must exist as a directory, and its files be readable and writable by this user"
    )]
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
    #[error("{location}: {source}")]
    Gcs {
        location: String,
        source: Box<crate::gcp::GcpError>,
    },
    #[error(
        "gs://{bucket} does not exist\n  hint: create it first (versioning on): `gcloud storage buckets create gs://{bucket} && gcloud storage buckets update gs://{bucket} --versioning`"
    )]
    BucketMissing { bucket: String },
    #[error("{location}: {message}\n  hint: run the command again; it reads the newer state first")]
    Stale { location: String, message: String },
    #[error(
        "{location}: {message}\n  hint: `infra state …` shows who holds it; nothing was unlocked"
    )]
    LockMismatch { location: String, message: String },
    #[error("{0}")]
    Unsupported(String),
}

/// One stored generation of a state.
#[derive(Debug, Clone, Serialize)]
pub struct StateVersion {
    pub generation: i64,
    pub updated: String,
    pub current: bool,
}

fn locked_message(location: &str, holder: Option<&LockInfo>, env: &str) -> String {
    match holder {
        Some(holder) if location.starts_with("gs://") => format!(
            "state locked by {} since {} for `{}` (id {}) — {location}\n  hint: wait for it (--lock-timeout 60s); if that run is dead: `infra force-unlock --env {env} --force {}`",
            holder.who, holder.created, holder.operation, holder.id, holder.id
        ),
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
    /// Boxed: it carries a client and its write bookkeeping, several times the local one.
    Gcs(Box<GcsBackend>),
}

impl Backend {
    /// Opens the backend an environment configures.
    pub fn open(
        env: &str,
        project: &str,
        settings: &BackendSettings,
        root: &Path,
        client: &crate::gcp::GcpClient,
    ) -> Self {
        match settings {
            BackendSettings::Local { path } => {
                Backend::Local(LocalBackend::new(env, root.join(path)))
            }
            BackendSettings::Gcs {
                bucket,
                prefix,
                create_bucket,
            } => {
                let creator = create_bucket.then(|| project.to_string());
                Backend::Gcs(Box::new(
                    GcsBackend::new(client.clone(), env, bucket, prefix)
                        .creating_bucket_in(creator),
                ))
            }
        }
    }

    /// Returns where the state lives, for messages.
    pub fn location(&self) -> String {
        match self {
            Backend::Local(local) => local.location(),
            Backend::Gcs(gcs) => gcs.location(),
        }
    }

    /// Reads the state; `None` when none was ever written. Later writes are checked against it.
    pub async fn read(&self) -> Result<Option<State>, StateError> {
        match self {
            Backend::Local(local) => local.read().await,
            Backend::Gcs(gcs) => gcs.read().await,
        }
    }

    /// Writes the state, refusing when someone else wrote since this run read it.
    pub async fn write(&self, state: &State) -> Result<(), StateError> {
        match self {
            Backend::Local(local) => local.write(state).await,
            Backend::Gcs(gcs) => gcs.write(state).await,
        }
    }

    /// Writes a state serialized by `State::to_bytes` (or `to_bytes_around`), like `write`:
    /// what the apply's writer hands over, having kept each resource serialized.
    pub async fn write_bytes(&self, bytes: Vec<u8>) -> Result<(), StateError> {
        match self {
            Backend::Local(local) => local.write_bytes(bytes).await,
            Backend::Gcs(gcs) => gcs.write_bytes(&bytes).await,
        }
    }

    /// Returns when the next state write may be sent (`None`: now). Cloud Storage takes one
    /// write per second per object, so a writer gathers every change until then into one
    /// write; local files take any rate.
    pub fn next_write_at(&self) -> Option<std::time::Instant> {
        match self {
            Backend::Local(_) => None,
            Backend::Gcs(gcs) => gcs.next_write_at(),
        }
    }

    /// Takes the lock.
    pub async fn lock(&mut self, operation: &str, timeout: Duration) -> Result<(), StateError> {
        let info = LockInfo::for_operation(operation);
        match self {
            Backend::Local(local) => local.lock(&info, timeout),
            Backend::Gcs(gcs) => gcs.lock(&info, timeout).await,
        }
    }

    /// Takes the lock and reads the state. On GCS the two requests go together, saving a
    /// round trip; the read may then have come before the last write of the lock's previous
    /// holder, so it is *unconfirmed* (the returned flag) until `still_current` says the state
    /// is at the generation read — a check meant to overlap the refresh. The outer error: the
    /// lock was not taken. The inner: it was (release it), but the read failed.
    pub async fn lock_and_read(
        &mut self,
        operation: &str,
        timeout: Duration,
    ) -> Result<(Result<Option<State>, StateError>, bool), StateError> {
        match self {
            Backend::Local(local) => {
                local.lock(&LockInfo::for_operation(operation), timeout)?;
                Ok((local.read().await, false))
            }
            Backend::Gcs(gcs) => {
                let info = LockInfo::for_operation(operation);
                let (locked, read) = futures::join!(gcs.lock(&info, timeout), gcs.read());
                locked?;
                match read {
                    Ok(state) => Ok((Ok(state), true)),
                    // A read that failed while the lock was being taken (perhaps long before
                    // it was) is made again, once, now under the lock, and needs no check.
                    Err(_) => Ok((gcs.read().await, false)),
                }
            }
        }
    }

    /// Tells whether the state is still at the generation this run last read (always, for the
    /// local backend, whose lock is taken before its read).
    pub async fn still_current(&self) -> Result<bool, StateError> {
        match self {
            Backend::Local(_) => Ok(true),
            Backend::Gcs(gcs) => gcs.still_current().await,
        }
    }

    /// Releases the lock.
    pub async fn unlock(&mut self) {
        match self {
            Backend::Local(local) => local.unlock(),
            Backend::Gcs(gcs) => gcs.unlock().await,
        }
    }

    /// Returns a release of the held lock that borrows nothing, for a signal handler; `None`
    /// for the local backend, whose OS lock ends with the process.
    pub fn detached_unlock(&self) -> Option<futures::future::BoxFuture<'static, ()>> {
        match self {
            Backend::Local(_) => None,
            Backend::Gcs(gcs) => gcs.detached_unlock(),
        }
    }

    /// Removes a lock left by a run that died, by its id.
    pub async fn force_unlock(&self, id: &str) -> Result<(), StateError> {
        match self {
            Backend::Local(local) => local.force_unlock(id),
            Backend::Gcs(gcs) => gcs.force_unlock(id).await,
        }
    }

    /// Returns who holds the lock, if anyone.
    pub async fn holder(&self) -> Result<Option<LockInfo>, StateError> {
        match self {
            Backend::Local(local) => local.holder(),
            Backend::Gcs(gcs) => gcs.holder().await,
        }
    }

    /// Lists the stored generations of the state.
    pub async fn versions(&self) -> Result<Vec<StateVersion>, StateError> {
        match self {
            Backend::Local(_) => Err(StateError::Unsupported(
                "the local backend keeps no versions\n  hint: use a gcs backend on a bucket with versioning on".into(),
            )),
            Backend::Gcs(gcs) => gcs.versions().await,
        }
    }

    /// Reads one stored generation of the state.
    pub async fn read_version(&self, generation: i64) -> Result<State, StateError> {
        match self {
            Backend::Local(_) => Err(StateError::Unsupported(
                "the local backend keeps no versions".into(),
            )),
            Backend::Gcs(gcs) => gcs.read_version(generation).await,
        }
    }
}
