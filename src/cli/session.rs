//! What every command that touches an environment sets up: the project root, the loaded
//! configuration, the API endpoint (Google, `INFRA_GCP_ENDPOINT`, or an embedded emulator), the
//! client, and the state backend with its lock.

use super::GlobalArgs;
use crate::config::{self, Configuration};
use crate::emulator::{self, EmulatorOptions, RunningEmulator};
use crate::gcp::GcpClient;
use crate::graph::block_graph;
use crate::plan::PlanOptions;
use crate::plan::planner::plan_with_live;
use crate::state::{Backend, State};
use anyhow::Context;
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

/// An environment opened for a command.
pub struct Session {
    pub configuration: Configuration,
    pub client: GcpClient,
    pub backend: Backend,
    locked: bool,
    _emulator: Option<RunningEmulator>,
}

/// Returns the project root: `--root`, or the nearest directory upward holding `envs/`.
pub fn project_root(global: &GlobalArgs) -> anyhow::Result<PathBuf> {
    if let Some(root) = &global.root {
        return Ok(root.clone());
    }
    let current = std::env::current_dir().context("cannot read the current directory")?;
    let found = current
        .ancestors()
        .find(|candidate| candidate.join("envs").is_dir());
    Ok(found.unwrap_or(&current).to_path_buf())
}

/// Loads and validates the environment's configuration: keys, kinds, references, cycles, and
/// every expression evaluated against an empty state. Nothing is read or written elsewhere, so
/// a bad configuration stops here with nothing written.
pub fn load_configuration(global: &GlobalArgs) -> anyhow::Result<Configuration> {
    let root = project_root(global)?;
    let configuration = config::load(&root, &global.env)?;
    let graph = block_graph(&configuration)?;
    let empty = State::new(&configuration.env.name);
    plan_with_live(
        &configuration,
        &empty,
        &graph,
        &BTreeMap::new(),
        &PlanOptions::default(),
    )?;
    Ok(configuration)
}

/// Parses `--lock-timeout` values such as `0s`, `500ms`, `60s`, `2m`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(text.len()),
    );
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration (like 30s, 500ms, 2m)"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" | "" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => {
            return Err(format!(
                "`{text}`: unknown unit `{unit}` (use ms, s, m or h)"
            ));
        }
    };
    Ok(Duration::from_secs_f64(seconds))
}

impl Session {
    /// Opens the environment: configuration, endpoint, client and backend (not yet locked).
    pub async fn open(global: &GlobalArgs) -> anyhow::Result<Self> {
        let configuration = load_configuration(global)?;
        let override_endpoint = std::env::var("INFRA_GCP_ENDPOINT")
            .ok()
            .filter(|value| !value.is_empty());
        let (endpoint, running) = match (override_endpoint, &configuration.env.emulator) {
            (Some(endpoint), _) => (Some(endpoint), None),
            (None, Some(embedded)) => {
                let options = EmulatorOptions {
                    data_dir: Some(embedded.data_dir.clone()),
                    operation_delay: Duration::from_millis(100),
                    ..EmulatorOptions::default()
                };
                let running = emulator::start(options, SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
                    .await
                    .with_context(|| {
                        format!(
                            "starting the embedded emulator of environment `{}`",
                            configuration.env.name
                        )
                    })?;
                tracing::info!("embedded emulator on {}", running.base_url());
                (Some(running.base_url()), Some(running))
            }
            (None, None) if configuration.env.emulator_only => {
                anyhow::bail!(
                    "environment `{}` runs only against an emulator, and INFRA_GCP_ENDPOINT is not set\n  hint: start one with `infra emulator --port 8086 --data .emulator` and export INFRA_GCP_ENDPOINT=http://127.0.0.1:8086/",
                    configuration.env.name
                )
            }
            (None, None) => (configuration.env.endpoint.clone(), None),
        };
        let client = GcpClient::new(endpoint)?;
        let backend = Backend::open(
            &configuration.env.name,
            &configuration.env.project,
            &configuration.env.backend,
            &configuration.root,
            &client,
        );
        Ok(Self {
            configuration,
            client,
            backend,
            locked: false,
            _emulator: running,
        })
    }

    /// Takes the state lock for `operation` and reads the state.
    pub async fn lock_and_read(
        &mut self,
        operation: &str,
        lock_timeout: Duration,
    ) -> anyhow::Result<State> {
        let existing = self.lock_and_read_existing(operation, lock_timeout).await?;
        Ok(existing.unwrap_or_else(|| State::new(&self.configuration.env.name)))
    }

    /// Takes the state lock for `operation` and reads the state, `None` when none exists yet.
    pub async fn lock_and_read_existing(
        &mut self,
        operation: &str,
        lock_timeout: Duration,
    ) -> anyhow::Result<Option<State>> {
        self.lock(operation, lock_timeout).await?;
        let state = self.backend.read().await?;
        if let Some(state) = &state {
            check_kinds(state, &self.backend.location())?;
        }
        Ok(state)
    }

    /// Takes the state lock for `operation` without reading the state.
    pub async fn lock(&mut self, operation: &str, lock_timeout: Duration) -> anyhow::Result<()> {
        self.backend.lock(operation, lock_timeout).await?;
        self.locked = true;
        Ok(())
    }

    /// Releases the lock, if this session holds it.
    pub async fn close(&mut self) {
        if std::mem::take(&mut self.locked) {
            self.backend.unlock().await;
        }
    }
}

/// Refuses a state recording a kind this build does not know: nothing could read, update or
/// delete it.
pub fn check_kinds(state: &State, location: &str) -> anyhow::Result<()> {
    if let Some(resource) = state
        .resources
        .iter()
        .find(|resource| crate::gcp::kinds::find(&resource.kind).is_none())
    {
        anyhow::bail!(
            "{location}: `{}` has kind `{}`, which this build does not know\n  hint: use the infra version that wrote this state, or `infra state rm {}` to stop managing it",
            resource.address,
            resource.kind,
            resource.address
        );
    }
    Ok(())
}

impl Drop for Session {
    /// Releases the lock on every path out of a command, errors included. A GCS lock needs a
    /// request, so this blocks the (multi-threaded) runtime's worker for that request.
    fn drop(&mut self) {
        if !self.locked {
            return;
        }
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => tokio::task::block_in_place(|| handle.block_on(self.close())),
            Err(_) => {
                if let Backend::Local(local) = &mut self.backend {
                    local.unlock();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("60s"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5y").is_err());
    }
}
