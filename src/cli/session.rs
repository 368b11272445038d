//! What every command that touches an environment sets up: the project root, the loaded
//! configuration, the API endpoint (Google, `INFRA_GCP_ENDPOINT`, or an embedded emulator), the
//! client, and the state backend with its lock.

use super::{CommandError, ErrorKind, GlobalArgs};
use crate::config::{self, Configuration};
use crate::emulator::{self, EmulatorOptions, RunningEmulator};
use crate::gcp::fingerprint_key::{create_key, ensure_key, read_key};
use crate::gcp::kinds;
use crate::gcp::{Authentication, GcpClient};
use crate::graph::block_graph;
use crate::plan::planner::{CheckedConfiguration, check_configuration};
use crate::plan::{Plan, PlanOptions, plan_refreshed, refresh_for_plan};
use crate::progress::Progress;
use crate::sensitive::{FingerprintKey, parse_keyed};
use crate::state::{Backend, State};
use crate::value::{Marker, Value};
use anyhow::Context;
use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How long releasing the lock on the way out may take.
const LOCK_RELEASE_LIMIT: Duration = Duration::from_secs(10);

/// An environment opened for a command.
pub struct Session {
    pub configuration: Configuration,
    pub client: GcpClient,
    pub backend: Backend,
    /// What checking `configuration` evaluated, until the plan takes it.
    checked: Option<CheckedConfiguration>,
    locked: bool,
    locking: bool,
    /// The state was read together with taking the lock, and `plan` confirms it is current.
    unconfirmed_read: bool,
    /// This run read the fingerprint key under the lock and found none: creating it needs no
    /// second read.
    key_found_missing: AtomicBool,
    _emulator: Option<RunningEmulator>,
}

/// Returns the project root: `--root`, or the nearest directory upward holding `envs/`.
pub fn project_root(global: &GlobalArgs) -> anyhow::Result<PathBuf> {
    if let Some(root) = &global.root {
        if !root.is_dir() {
            return Err(CommandError::new(
                ErrorKind::Usage,
                format!("--root {}: not a directory", root.display()),
            )
            .hint("give the project directory (the one holding envs/); INFRA_ROOT sets it too")
            .into());
        }
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
    load_checked(global).map(|(configuration, _)| configuration)
}

/// Loads and validates the configuration like `load_configuration`, and returns what the
/// check evaluated that a plan can take over (see `CheckedConfiguration`).
fn load_checked(global: &GlobalArgs) -> anyhow::Result<(Configuration, CheckedConfiguration)> {
    let root = project_root(global)?;
    let configuration = config::load(&root, &global.env)?;
    let graph = block_graph(&configuration)?;
    let checked = check_configuration(&configuration, &graph)?;
    Ok((configuration, checked))
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
    Duration::try_from_secs_f64(seconds).map_err(|_| format!("`{text}` is too long a duration"))
}

impl Session {
    /// Opens the environment: configuration, endpoint, client and backend (not yet locked).
    pub async fn open(global: &GlobalArgs) -> anyhow::Result<Self> {
        Self::open_keeping(global, false).await
    }

    /// Opens the environment like `open` for a command that plans, keeping what checking the
    /// configuration evaluated for its plan (`take_checked`).
    pub async fn open_for_planning(global: &GlobalArgs) -> anyhow::Result<Self> {
        Self::open_keeping(global, true).await
    }

    async fn open_keeping(global: &GlobalArgs, keep_checked: bool) -> anyhow::Result<Self> {
        let (configuration, checked) = load_checked(global)?;
        let checked = keep_checked.then_some(checked);
        let override_endpoint = std::env::var("INFRA_GCP_ENDPOINT")
            .ok()
            .filter(|value| !value.is_empty());
        if let Some(endpoint) = &override_endpoint {
            check_endpoint(endpoint)?;
        }
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
        let authentication = authentication(&configuration, running.is_some())?;
        let client = GcpClient::new(endpoint, authentication)?
            .with_timeout(http_timeout()?)
            .with_quota_retry(quota_retry()?)
            .with_list_lag(list_lag()?);
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
            checked,
            locked: false,
            locking: false,
            unconfirmed_read: false,
            key_found_missing: AtomicBool::new(false),
            _emulator: running,
        })
    }

    /// Takes what checking the configuration evaluated, for the one plan that uses it
    /// (nothing when taken before).
    pub fn take_checked(&mut self) -> CheckedConfiguration {
        self.checked.take().unwrap_or_default()
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

    /// Takes the state lock for `operation` and reads the state in the same round trip where
    /// the backend allows it, for a command that then calls `plan`: the plan confirms the
    /// state is still the one read while it refreshes, and plans again from a new read if not.
    pub async fn lock_and_read_for_planning(
        &mut self,
        operation: &str,
        lock_timeout: Duration,
    ) -> anyhow::Result<State> {
        self.locking = true;
        let (read, unconfirmed) = self.backend.lock_and_read(operation, lock_timeout).await?;
        self.locking = false;
        self.locked = true;
        super::interrupt().set_lock_release(self.backend.detached_unlock());
        self.unconfirmed_read = unconfirmed;
        let state = read?;
        if let Some(state) = &state {
            check_kinds(state, &self.backend.location())?;
        }
        Ok(state.unwrap_or_else(|| State::new(&self.configuration.env.name)))
    }

    /// Takes the state lock for `operation` without reading the state.
    pub async fn lock(&mut self, operation: &str, lock_timeout: Duration) -> anyhow::Result<()> {
        // Set while the lock request is in flight: an interrupt that drops this future may
        // leave a lock the server created but this run never heard of; Drop looks for it.
        self.locking = true;
        self.backend.lock(operation, lock_timeout).await?;
        self.locking = false;
        self.locked = true;
        super::interrupt().set_lock_release(self.backend.detached_unlock());
        Ok(())
    }

    /// Plans against `state`: reads the fingerprint key while refreshing every object (the
    /// refresh does not need it, and reading it first would add a round trip to every plan),
    /// and confirms meanwhile that a state read together with taking the lock is current
    /// (replacing `state` with a new read, and refreshing again, when it is not); then plans
    /// with the key, taking over what checking the configuration evaluated. Returns the plan
    /// and the key it fingerprinted with.
    pub async fn plan(
        &mut self,
        state: &mut State,
        options: PlanOptions,
        progress: &dyn Progress,
    ) -> anyhow::Result<(Plan, Option<Arc<FingerprintKey>>)> {
        let (fingerprint_key, refreshed) = loop {
            let confirming = self.unconfirmed_read;
            let confirmation = async {
                if confirming {
                    self.backend.still_current().await
                } else {
                    Ok(true)
                }
            };
            let (fingerprint_key, refreshed, current) = futures::join!(
                self.read_fingerprint_key(state),
                refresh_for_plan(&self.configuration, state, &self.client, &options, progress),
                confirmation
            );
            if current? {
                self.unconfirmed_read = false;
                break (fingerprint_key, refreshed);
            }
            // The lock's previous holder wrote after the read that went with taking the lock:
            // read the state again, now under the lock, and refresh what it holds.
            tracing::info!("the state changed while the lock was taken; reading it again");
            let read = self.backend.read().await?;
            if let Some(read) = &read {
                check_kinds(read, &self.backend.location())?;
            }
            *state = read.unwrap_or_else(|| State::new(&self.configuration.env.name));
            self.unconfirmed_read = false;
        };
        let fingerprint_key = fingerprint_key?;
        let options = PlanOptions {
            fingerprint_key: fingerprint_key.clone(),
            ..options
        };
        let checked = self.take_checked();
        let plan = plan_refreshed(&self.configuration, state, &refreshed?, &options, checked)?;
        Ok((plan, fingerprint_key))
    }

    /// Reads the environment's fingerprint key; `None` before the first apply created it, and
    /// when neither the configuration nor `state` has a kind with secrets (so an environment
    /// without secrets needs no access to Secret Manager).
    pub async fn read_fingerprint_key(
        &self,
        state: &State,
    ) -> anyhow::Result<Option<Arc<FingerprintKey>>> {
        let has_secrets = |kind: &str| {
            kinds::find(kind).is_some_and(|kind| kind.fields().iter().any(|field| field.sensitive))
        };
        let configured = self
            .configuration
            .modules
            .iter()
            .flat_map(|module| &module.resources)
            .any(|block| has_secrets(&block.kind));
        let recorded = state
            .resources
            .iter()
            .any(|resource| has_secrets(&resource.kind));
        if !configured && !recorded {
            return Ok(None);
        }
        let env = &self.configuration.env;
        let key = read_key(&self.client, &env.project, &env.name, &key_versions(state))
            .await
            .context("reading the fingerprint key of secret values")?;
        self.key_found_missing
            .store(key.is_none(), Ordering::SeqCst);
        Ok(key.map(Arc::new))
    }

    /// Returns the environment's fingerprint key (`known`, when this run already read it),
    /// creating it when missing. Only commands that write state call this, under the lock.
    pub async fn ensure_fingerprint_key(
        &self,
        known: Option<Arc<FingerprintKey>>,
    ) -> anyhow::Result<Arc<FingerprintKey>> {
        if let Some(key) = known {
            return Ok(key);
        }
        let env = &self.configuration.env;
        let key = if self.key_found_missing.load(Ordering::SeqCst) {
            create_key(&self.client, &env.project, &env.name).await
        } else {
            ensure_key(&self.client, &env.project, &env.name).await
        };
        Ok(Arc::new(key.context(
            "creating the fingerprint key of secret values",
        )?))
    }

    /// Releases the lock, if this session holds it.
    pub async fn close(&mut self) {
        if std::mem::take(&mut self.locked) {
            self.backend.unlock().await;
            // Cleared only now: a second interrupt meanwhile must still wait for a release.
            super::interrupt().set_lock_release(None);
        }
    }
}

/// Refuses a plan file path that names no file, before anything is locked.
pub fn check_plan_file(path: &std::path::Path, env: &str) -> anyhow::Result<()> {
    if path.is_file() {
        return Ok(());
    }
    let what = if path.is_dir() {
        "is a directory, not a plan file"
    } else {
        "no such plan file"
    };
    Err(
        CommandError::new(ErrorKind::Usage, format!("{}: {what}", path.display()))
            .hint(format!(
                "save one with `infra plan --env {env} --out {}`",
                path.display()
            ))
            .into(),
    )
}

/// Reads a saved plan file, with a hint on how to make one when it is not one.
pub fn read_plan_file(path: &std::path::Path, env: &str) -> anyhow::Result<crate::plan::Plan> {
    check_plan_file(path, env)?;
    crate::plan::file::read_plan(path).map_err(|error| {
        CommandError::from_anyhow(error.into())
            .hint(format!(
                "give a file saved by `infra plan --env {env} --out FILE`"
            ))
            .into()
    })
}

/// Returns how requests are authenticated: without credentials only against an emulator the
/// configuration names as one (the embedded emulator, `[gcp] emulator_only = true`,
/// `[gcp] credentials = "none"` or `INFRA_GCP_CREDENTIALS=none`); everything else, a
/// private, restricted or Private Service Connect endpoint included, uses Application Default
/// Credentials. The endpoint's URL is never the judge.
fn authentication(
    configuration: &Configuration,
    embedded_emulator: bool,
) -> anyhow::Result<Authentication> {
    let from_environment = std::env::var("INFRA_GCP_CREDENTIALS")
        .ok()
        .filter(|value| !value.is_empty());
    let without = match from_environment.as_deref() {
        Some("none") => true,
        Some("application-default") => false,
        Some(other) => anyhow::bail!(
            "INFRA_GCP_CREDENTIALS `{other}` is not a credentials mode\n  hint: use `application-default` (Google) or `none` (an emulator only)"
        ),
        None => {
            embedded_emulator
                || configuration.env.emulator_only
                || configuration.env.without_credentials
        }
    };
    Ok(if without {
        Authentication::None
    } else {
        Authentication::ApplicationDefault {
            quota_project: configuration.env.quota_project.clone(),
        }
    })
}

/// Refuses an `INFRA_GCP_ENDPOINT` that is not an http(s) URL before any request is made.
fn check_endpoint(endpoint: &str) -> anyhow::Result<()> {
    let problem = match reqwest::Url::parse(endpoint) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {
            return Ok(());
        }
        Ok(url) => format!("scheme `{}` is not http or https", url.scheme()),
        Err(error) => error.to_string(),
    };
    Err(CommandError::new(
        ErrorKind::Usage,
        format!("INFRA_GCP_ENDPOINT `{endpoint}` is not a URL infra can call: {problem}"),
    )
    .hint("set it to the emulator's base URL, like http://127.0.0.1:8086/, or unset it to call Google")
    .into())
}

/// Returns how long a list may lag a create: `INFRA_LIST_LAG` (like 2m), or
/// `gcp::DEFAULT_LIST_LAG`.
fn list_lag() -> anyhow::Result<Duration> {
    match std::env::var("INFRA_LIST_LAG") {
        Ok(text) if !text.is_empty() => parse_duration(&text).map_err(|message| {
            CommandError::new(ErrorKind::Usage, format!("INFRA_LIST_LAG: {message}"))
                .hint("set it to a duration such as 90s or 5m, or unset it for 60s")
                .into()
        }),
        _ => Ok(crate::gcp::client::DEFAULT_LIST_LAG),
    }
}

/// Returns the per-request HTTP timeout: `INFRA_HTTP_TIMEOUT` (like 30s), or 60 s.
fn http_timeout() -> anyhow::Result<Duration> {
    match std::env::var("INFRA_HTTP_TIMEOUT") {
        Ok(text) if !text.is_empty() => {
            let timeout = parse_duration(&text).map_err(|message| {
                CommandError::new(ErrorKind::Usage, format!("INFRA_HTTP_TIMEOUT: {message}"))
                    .hint("set it to a duration such as 30s or 2m, or unset it for 60s")
            })?;
            if timeout.is_zero() {
                return Err(CommandError::new(
                    ErrorKind::Usage,
                    "INFRA_HTTP_TIMEOUT: 0 would fail every request",
                )
                .hint("set it to a duration such as 30s or 2m, or unset it for 60s")
                .into());
            }
            Ok(timeout)
        }
        _ => Ok(Duration::from_secs(60)),
    }
}

/// Returns how quota 429s are waited out: at least `INFRA_QUOTA_RETRY_MIN` (like 30s or
/// 500ms) before each retry, Google's advised 30 s when unset.
fn quota_retry() -> anyhow::Result<crate::gcp::QuotaRetry> {
    match std::env::var("INFRA_QUOTA_RETRY_MIN") {
        Ok(text) if !text.is_empty() => Ok(parse_quota_retry(&text)?),
        _ => Ok(crate::gcp::QuotaRetry::default()),
    }
}

/// The least `INFRA_QUOTA_RETRY_MIN` taken: below it the retries of a refused call come back
/// at once, a busy loop that only spends the quota it waits for (0 would retry with no pause).
const LEAST_QUOTA_RETRY_MIN: Duration = Duration::from_millis(100);

/// Parses `INFRA_QUOTA_RETRY_MIN`, refusing what is not a duration and what is under
/// `LEAST_QUOTA_RETRY_MIN`.
fn parse_quota_retry(text: &str) -> Result<crate::gcp::QuotaRetry, CommandError> {
    const HINT: &str = "set it to a duration such as 30s or 500ms (at least 100ms), or unset it for Google's advised 30s";
    let minimum = parse_duration(text).map_err(|message| {
        CommandError::new(
            ErrorKind::Usage,
            format!("INFRA_QUOTA_RETRY_MIN: {message}"),
        )
        .hint(HINT)
    })?;
    if minimum < LEAST_QUOTA_RETRY_MIN {
        return Err(CommandError::new(
            ErrorKind::Usage,
            format!(
                "INFRA_QUOTA_RETRY_MIN: {text:?} is under 100ms: quota refusals would be retried at once, over and over"
            ),
        )
        .hint(HINT));
    }
    Ok(crate::gcp::QuotaRetry { minimum })
}

impl Session {
    /// Removes a lock this process created but whose answer it never read (the lock request
    /// was cut short by an interrupt): its holder record names this process.
    async fn release_orphaned_lock(&self) {
        let own = format!("(pid {})", std::process::id());
        if let Ok(Some(holder)) = self.backend.holder().await
            && holder.who.ends_with(&own)
        {
            let _ = self.backend.force_unlock(&holder.id).await;
        }
    }
}

/// Returns the key versions that state's keyed fingerprints name.
fn key_versions(state: &State) -> BTreeSet<String> {
    fn collect(value: &Value, found: &mut BTreeSet<String>) {
        match value {
            Value::Marker(Marker::Sensitive(recorded)) => {
                if let Some((version, _)) = parse_keyed(recorded) {
                    found.insert(version.to_string());
                }
            }
            Value::Map(entries) => entries.values().for_each(|item| collect(item, found)),
            Value::List(items) => items.iter().for_each(|item| collect(item, found)),
            _ => {}
        }
    }
    let mut found = BTreeSet::new();
    for resource in &state.resources {
        resource
            .attributes
            .values()
            .for_each(|value| collect(value, &mut found));
    }
    found
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
    /// Releases the lock on every path out of a command, errors and interrupts included. A GCS
    /// lock needs a request, so this blocks the (multi-threaded) runtime's worker for it.
    fn drop(&mut self) {
        if !self.locked && !self.locking {
            return;
        }
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => tokio::task::block_in_place(|| {
                // Bounded: an unreachable bucket must not hold the exit (the next run's
                // "state locked" error says how to remove the lock).
                let release = async {
                    if std::mem::take(&mut self.locking) {
                        self.release_orphaned_lock().await;
                    }
                    self.close().await;
                };
                let _ = handle.block_on(tokio::time::timeout(LOCK_RELEASE_LIMIT, release));
            }),
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
        assert!(parse_duration("99999999999999999999999h").is_err());
    }

    #[test]
    fn a_quota_retry_minimum_under_100_ms_is_refused_naming_the_variable() {
        for text in ["0s", "0ms", "50ms"] {
            let error = parse_quota_retry(text).expect_err(text).to_string();
            assert!(
                error.starts_with("INFRA_QUOTA_RETRY_MIN: ") && error.contains("under 100ms"),
                "{error}"
            );
        }
        assert_eq!(
            parse_quota_retry("100ms").expect("100ms").minimum,
            Duration::from_millis(100)
        );
        assert_eq!(
            parse_quota_retry("30s").expect("30s").minimum,
            Duration::from_secs(30)
        );
        assert!(parse_quota_retry("soon").is_err());
    }
}
