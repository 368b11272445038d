//! Apply benchmarks: creating N secrets against the in-process emulator with 50 ms of latency
//! per request, with state kept by a real local backend (files in a temporary directory) and
//! by a real GCS backend (on the same emulator), at parallelism 10, 32 and 100. Each
//! measurement is also reported as its ratio to the ideal — API requests ÷ parallelism ×
//! latency — which is what group commit of the state is for: state writes must not add to it —
//! and, on GCS, to that plus what Cloud Storage's one write per second per object costs where
//! nothing can overlap it (`StateKind::ideal`).
//! A second group applies the Beta shape, 16 secrets and 16 IAM members each naming its own
//! secret, which per-instance scheduling lets overlap. A last group applies 1,000 and then
//! 10,000 secrets and members without latency, whose time per resource must not grow with N.
//! Run with `cargo bench --bench apply`; a summary of ratios is printed at the end.

use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};
use infra::apply::{StateSink, apply};
use infra::config::{BackendSettings, Configuration};
use infra::emulator::quota::QuotaOptions;
use infra::emulator::realism::RealismOptions;
use infra::emulator::{self, EmulatorOptions};
use infra::gcp::GcpClient;
use infra::gcp::fingerprint_key::ensure_key;
use infra::plan::{PlanOptions, make_plan};
use infra::state::gcs::OBJECT_WRITE_INTERVAL;
use infra::state::{Backend, State};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const LATENCY: Duration = Duration::from_millis(50);

/// The ratios measured, printed once every benchmark ran.
static RATIOS: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct BackendSink<'a>(&'a Backend);

#[async_trait::async_trait]
impl StateSink for BackendSink<'_> {
    async fn persist(&self, document: Vec<u8>) -> Result<(), String> {
        self.0
            .write_bytes(document)
            .await
            .map_err(|error| error.to_string())
    }

    fn next_write_at(&self) -> Option<Instant> {
        self.0.next_write_at()
    }
}

#[derive(Clone, Copy, Debug)]
enum StateKind {
    Local,
    Gcs,
}

impl StateKind {
    /// Requests to the state backend that an apply cannot overlap with anything: taking the
    /// lock (the state is not trusted before), reading the state (the plan was made from it),
    /// the final write (after the last change) and releasing the lock (after that write). None
    /// for local state. Every other write overlaps the changes (group commit).
    fn sequential_requests(self) -> usize {
        match self {
            StateKind::Local => 0,
            StateKind::Gcs => 4,
        }
    }

    /// Returns the ideal apply with this state: the API ideal plus the sequential state round
    /// trips, and on GCS what Cloud Storage's one write per second per object name costs at the
    /// least. Creates that wait for their intent record (`intents`) add the round trip of the
    /// write holding the intents (one, at the start, as the plan knows their ids), and the final
    /// write cannot follow that one sooner than a second; in any apply, the lock's delete cannot
    /// follow its create sooner than a second.
    fn ideal(self, api_ideal: Duration, intents: bool) -> Duration {
        let requests = self.sequential_requests() + usize::from(intents);
        let with_round_trips = api_ideal + LATENCY.mul_f64(requests as f64);
        match self {
            StateKind::Local => with_round_trips,
            StateKind::Gcs => {
                // Lock, read, intent write, a second, final write, release; or lock, a
                // second, release.
                let rate_bound = if intents {
                    OBJECT_WRITE_INTERVAL + LATENCY * 5
                } else {
                    OBJECT_WRITE_INTERVAL + LATENCY * 2
                };
                with_round_trips.max(rate_bound)
            }
        }
    }
}

/// N secrets in one `for_each` block, and with `members` an IAM member per secret naming its
/// own secret (`secret.many[each.key]`), as the Beta environment's readers do.
fn project(root: &Path, secrets: usize, members: bool) -> Configuration {
    let entries: Vec<String> = (0..secrets)
        .map(|index| format!("S{index:05} = \"value-{index}\""))
        .collect();
    let mut env = format!(
        "[env]\nname = \"bench\"\nproject = \"bench-project\"\nregion = \"us-central1\"\n\n[vars]\nvalues = {{ {} }}\n\n\
         [resource.secret.many]\nfor_each = \"${{var.values}}\"\nsecret_id = \"${{each.key}}\"\nvalue = \"${{each.value}}\"\n",
        entries.join(", ")
    );
    if members {
        env.push_str(
            "\n[resource.iam_member.readers]\nfor_each = \"${var.values}\"\nparent = \"${secret.many[each.key].name}\"\n\
             role = \"roles/secretmanager.secretAccessor\"\nmember = \"serviceAccount:reader@bench-project.iam.gserviceaccount.com\"\n",
        );
    }
    std::fs::create_dir_all(root.join("envs/bench")).expect("mkdir");
    std::fs::write(root.join("envs/bench/env.toml"), env).expect("write");
    infra::config::load(root, "bench").expect("valid configuration")
}

/// Runs one apply of `configuration` from an empty state on a fresh emulator; returns the time
/// the apply took (lock, read, apply with state persisted, unlock) and the API requests it made
/// for resources (state requests excluded; counted in full only while the emulator's log holds
/// them all, as for the small apply that measures the requests per secret).
async fn apply_once(
    configuration: &Configuration,
    state_kind: StateKind,
    parallelism: usize,
) -> (Duration, usize) {
    apply_once_at(configuration, state_kind, parallelism, LATENCY).await
}

/// `apply_once` with `latency` per request.
async fn apply_once_at(
    configuration: &Configuration,
    state_kind: StateKind,
    parallelism: usize,
    latency: Duration,
) -> (Duration, usize) {
    let options = EmulatorOptions {
        latency,
        // The bench measures infra against an unthrottled server: thousands of writes a
        // second are over Secret Manager's quota even at the emulator's one-second window.
        realism: RealismOptions {
            quotas: QuotaOptions::off(),
            ..RealismOptions::default()
        },
        ..EmulatorOptions::default()
    };
    let running = emulator::start(options, SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .await
        .expect("emulator");
    let client =
        GcpClient::new(Some(running.base_url()), infra::gcp::Authentication::None).expect("client");
    let directory = tempfile::tempdir().expect("tempdir");
    let settings = match state_kind {
        StateKind::Local => BackendSettings::Local {
            path: PathBuf::from("state/bench.state.json"),
        },
        StateKind::Gcs => BackendSettings::Gcs {
            bucket: "bench-state".into(),
            prefix: "infra".into(),
            create_bucket: true,
        },
    };
    let mut backend = Backend::open(
        "bench",
        "bench-project",
        &settings,
        directory.path(),
        &client,
    );
    // The bucket exists before an apply, as it does for a real user: created outside the timing,
    // by a call of its own — not by taking and releasing the lock, which would leave the lock
    // object written within the second before the apply's lock, and time Cloud Storage's
    // one write per second per object instead of the apply.
    if let StateKind::Gcs = state_kind {
        client
            .call(
                reqwest::Method::POST,
                infra::gcp::Service::Storage,
                "storage/v1/b",
                &[("project", "bench-project".to_string())],
                Some(&serde_json::json!({"name": "bench-state", "versioning": {"enabled": true}})),
            )
            .await
            .expect("state bucket");
    }
    // The environment's fingerprint key exists, as after a first apply: made outside the timing.
    let fingerprint_key = Arc::new(
        ensure_key(&client, "bench-project", "bench")
            .await
            .expect("fingerprint key"),
    );
    let empty = State::new("bench");
    let options = PlanOptions {
        fingerprint_key: Some(fingerprint_key.clone()),
        ..PlanOptions::default()
    };
    let plan = make_plan(configuration, &empty, &client, &options)
        .await
        .expect("plan");
    // The requests before this point (the fingerprint key's) are not the apply's.
    let before = resource_requests(&running.base_url()).await;
    let started = Instant::now();
    backend.lock("apply", Duration::ZERO).await.expect("lock");
    let state = backend.read().await.expect("read").unwrap_or(empty);
    let (_, report) = apply(
        configuration,
        &plan,
        state,
        &client,
        &BackendSink(&backend),
        parallelism,
        &AtomicBool::new(false),
        Some(fingerprint_key),
    )
    .await;
    backend.unlock().await;
    let elapsed = started.elapsed();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert!(report.unsaved.is_none());
    (
        elapsed,
        resource_requests(&running.base_url()).await - before,
    )
}

/// Counts the requests the emulator remembers, except the state backend's (Cloud Storage).
async fn resource_requests(base_url: &str) -> usize {
    requests(base_url).await.0
}

/// Counts the requests the emulator remembers: for resources, and for the state backend
/// (Cloud Storage).
async fn requests(base_url: &str) -> (usize, usize) {
    let log: serde_json::Value = reqwest::get(format!("{base_url}_emulator/requests"))
        .await
        .expect("request log")
        .json()
        .await
        .expect("json");
    let (state, resources): (Vec<&serde_json::Value>, Vec<&serde_json::Value>) = log["requests"]
        .as_array()
        .into_iter()
        .flatten()
        .partition(|request| {
            request["path"]
                .as_str()
                .unwrap_or_default()
                .starts_with("/storage/")
        });
    (resources.len(), state.len())
}

fn apply_secrets(criterion: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    // Requests per secret, counted on a small apply (the emulator's log is bounded).
    let small_root = tempfile::tempdir().expect("tempdir");
    let small = project(small_root.path(), 10, false);
    let (_, small_requests) = runtime.block_on(apply_once(&small, StateKind::Local, 10));
    // A secret is created in two requests (the secret, then its first version).
    assert_eq!(small_requests, 20, "requests of 10 secrets' creates");
    let requests_per_secret = small_requests as f64 / 10.0;
    for secrets in [200usize, 1000] {
        let root = tempfile::tempdir().expect("tempdir");
        let configuration = project(root.path(), secrets, false);
        let mut group = criterion.benchmark_group(format!("apply_{secrets}_secrets_50ms_latency"));
        group.sample_size(10);
        group.sampling_mode(SamplingMode::Flat);
        group.warm_up_time(Duration::from_millis(1));
        group.measurement_time(Duration::from_secs(1));
        for state_kind in [StateKind::Local, StateKind::Gcs] {
            for parallelism in [10usize, 32, 100] {
                let ideal =
                    LATENCY.mul_f64(requests_per_secret * secrets as f64 / parallelism as f64);
                let with_state = state_kind.ideal(ideal, false);
                let name = format!("{state_kind:?}_state_parallelism_{parallelism}").to_lowercase();
                let mut ratios = Vec::new();
                let mut ratios_with_state = Vec::new();
                group.bench_function(&name, |bencher| {
                    bencher.iter_custom(|iterations| {
                        let mut total = Duration::ZERO;
                        for _ in 0..iterations {
                            let (elapsed, _) = runtime.block_on(apply_once(
                                &configuration,
                                state_kind,
                                parallelism,
                            ));
                            ratios.push(elapsed.as_secs_f64() / ideal.as_secs_f64());
                            ratios_with_state
                                .push(elapsed.as_secs_f64() / with_state.as_secs_f64());
                            total += elapsed;
                        }
                        total
                    });
                });
                ratios.sort_by(f64::total_cmp);
                ratios_with_state.sort_by(f64::total_cmp);
                let (Some(median), Some(median_with_state)) = (
                    ratios.get(ratios.len() / 2).copied(),
                    ratios_with_state.get(ratios_with_state.len() / 2).copied(),
                ) else {
                    continue;
                };
                RATIOS.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(format!(
                    "apply {secrets} secrets, {state_kind:?} state, parallelism {parallelism}: median {median:.2}× ideal ({:.2} s ideal), {median_with_state:.2}× with the {} sequential state requests and the object write rate ({:.2} s), {} runs",
                    ideal.as_secs_f64(),
                    state_kind.sequential_requests(),
                    with_state.as_secs_f64(),
                    ratios.len()
                ));
            }
        }
        group.finish();
    }
    RATIOS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .push(format!("({requests_per_secret} API requests per secret)"));
}

/// The Beta environment's shape: 16 secrets and 16 IAM members, each naming its own secret.
/// A member starts once its secret exists, not once all 16 do, so the apply approaches the
/// ideal; the target is 1.5 s with GCS state at the default parallelism.
fn apply_secrets_and_members(criterion: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let root = tempfile::tempdir().expect("tempdir");
    let configuration = project(root.path(), 16, true);
    let mut group = criterion.benchmark_group("apply_16_secrets_16_members_50ms_latency");
    group.sample_size(10);
    group.sampling_mode(SamplingMode::Flat);
    group.warm_up_time(Duration::from_millis(1));
    group.measurement_time(Duration::from_secs(1));
    for state_kind in [StateKind::Local, StateKind::Gcs] {
        for parallelism in [10usize, 32] {
            let name = format!("{state_kind:?}_state_parallelism_{parallelism}").to_lowercase();
            let mut runs = Vec::new();
            group.bench_function(&name, |bencher| {
                bencher.iter_custom(|iterations| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iterations {
                        let (elapsed, requests) =
                            runtime.block_on(apply_once(&configuration, state_kind, parallelism));
                        let ideal = LATENCY.mul_f64(requests as f64 / parallelism as f64);
                        // The members wait for their intent records.
                        let with_state = state_kind.ideal(ideal, true);
                        runs.push((
                            elapsed.as_secs_f64(),
                            elapsed.as_secs_f64() / ideal.as_secs_f64(),
                            elapsed.as_secs_f64() / with_state.as_secs_f64(),
                            with_state.as_secs_f64(),
                        ));
                        total += elapsed;
                    }
                    total
                });
            });
            runs.sort_by(|left, right| left.0.total_cmp(&right.0));
            let Some((seconds, ratio, ratio_with_state, with_state)) =
                runs.get(runs.len() / 2).copied()
            else {
                continue;
            };
            RATIOS.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(format!(
                "apply 16 secrets + 16 members, {state_kind:?} state, parallelism {parallelism}: median {seconds:.2} s, {ratio:.2}× ideal, {ratio_with_state:.2}× with the sequential state requests and the object write rate ({with_state:.2} s) ({} runs)",
                runs.len()
            ));
        }
    }
    group.finish();
}

/// The Beta 500 environment's secrets (modules/beta_secrets as bundled: 16 secrets, one
/// generated, and 16 IAM members granting the backend's account access) with GCS state, as a
/// user runs it: the real `infra apply --auto-approve` against the in-process emulator with
/// 50 ms of latency, a first apply (the fingerprint key is created too). The state bucket
/// exists beforehand, as docs/state.md asks.
async fn beta_emulator() -> (emulator::RunningEmulator, tempfile::TempDir) {
    let options = EmulatorOptions {
        latency: LATENCY,
        ..EmulatorOptions::default()
    };
    let running = emulator::start(options, SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .await
        .expect("emulator");
    let client =
        GcpClient::new(Some(running.base_url()), infra::gcp::Authentication::None).expect("client");
    client
        .call(
            reqwest::Method::POST,
            infra::gcp::Service::Storage,
            "storage/v1/b",
            &[("project", "bench-project".to_string())],
            Some(&serde_json::json!({"name": "bench-beta-state", "versioning": {"enabled": true}})),
        )
        .await
        .expect("state bucket");
    let root = tempfile::tempdir().expect("tempdir");
    let module = Path::new(env!("CARGO_MANIFEST_DIR")).join("modules/beta_secrets/module.toml");
    std::fs::create_dir_all(root.path().join("modules/beta_secrets")).expect("mkdir");
    std::fs::copy(
        &module,
        root.path().join("modules/beta_secrets/module.toml"),
    )
    .expect("the bundled beta_secrets module");
    std::fs::create_dir_all(root.path().join("envs/beta")).expect("mkdir");
    std::fs::write(
        root.path().join("envs/beta/env.toml"),
        "[env]\nname = \"beta\"\nproject = \"bench-project\"\nregion = \"us-central1\"\n\n\
         [gcp]\nemulator_only = true\n\n\
         [backend]\nkind = \"gcs\"\nbucket = \"bench-beta-state\"\nprefix = \"infra\"\n\n\
         [module.beta_secrets]\nsource = \"beta_secrets\"\n\
         accessor = \"bayit-plus-backend@bench-project.iam.gserviceaccount.com\"\n",
    )
    .expect("write");
    (running, root)
}

fn apply_beta(criterion: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let mut group = criterion.benchmark_group("apply_beta_16_secrets_16_members_50ms_latency");
    group.sample_size(10);
    group.sampling_mode(SamplingMode::Flat);
    group.warm_up_time(Duration::from_millis(1));
    group.measurement_time(Duration::from_secs(1));
    let mut runs = Vec::new();
    group.bench_function("gcs_state_cli", |bencher| {
        bencher.iter_custom(|iterations| {
            let mut total = Duration::ZERO;
            for _ in 0..iterations {
                let (running, root) = runtime.block_on(beta_emulator());
                let started = Instant::now();
                let output = std::process::Command::new(env!("CARGO_BIN_EXE_infra"))
                    .args(["apply", "--env", "beta", "--auto-approve"])
                    .current_dir(root.path())
                    .env("NO_COLOR", "1")
                    .env("INFRA_GCP_ENDPOINT", running.base_url())
                    .env("INFRA_GCP_CREDENTIALS", "none")
                    .env_remove("INFRA_ENV")
                    .env_remove("INFRA_ROOT")
                    .env_remove("INFRA_LOG")
                    .stdin(std::process::Stdio::null())
                    .output()
                    .expect("infra apply");
                let elapsed = started.elapsed();
                assert!(
                    output.status.success(),
                    "{}",
                    String::from_utf8_lossy(&output.stderr)
                );
                let (resources, state) = runtime.block_on(requests(&running.base_url()));
                runs.push((elapsed, resources, state));
                total += elapsed;
            }
            total
        });
    });
    group.finish();
    runs.sort();
    if let Some((median, resources, state)) = runs.get(runs.len() / 2) {
        RATIOS.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(format!(
            "apply Beta 16 secrets + 16 members, GCS state, CLI: median {:.3} s (target 1.5 s), {resources} API requests, {state} state requests, {} runs",
            median.as_secs_f64(),
            runs.len()
        ));
    }
}

/// N secrets and N IAM members (each naming its secret, so each needing an intent record) at
/// no latency with local state, for N = 1,000 and 10,000: the time is then the CPU of the
/// apply and the emulator, and the time per resource must not grow with N (an apply in
/// O(N log N)). A cost per change or per write that grows with the state — a whole-state
/// clone per write, a sorted list shifted per create, a scan per lookup — shows as a ratio of
/// several.
fn apply_at_scale(criterion: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let mut group = criterion.benchmark_group("apply_secrets_and_members_no_latency");
    group.sample_size(10);
    group.sampling_mode(SamplingMode::Flat);
    group.warm_up_time(Duration::from_millis(1));
    group.measurement_time(Duration::from_secs(1));
    let mut per_resource = Vec::new();
    for secrets in [1000usize, 10_000] {
        let root = tempfile::tempdir().expect("tempdir");
        let configuration = project(root.path(), secrets, true);
        let mut runs = Vec::new();
        group.bench_function(format!("{secrets}_secrets_{secrets}_members"), |bencher| {
            bencher.iter_custom(|iterations| {
                let mut total = Duration::ZERO;
                for _ in 0..iterations {
                    let (elapsed, _) = runtime.block_on(apply_once_at(
                        &configuration,
                        StateKind::Local,
                        32,
                        Duration::ZERO,
                    ));
                    runs.push(elapsed);
                    total += elapsed;
                }
                total
            });
        });
        runs.sort();
        if let Some(median) = runs.get(runs.len() / 2) {
            per_resource.push((secrets, median.as_secs_f64() / (2 * secrets) as f64));
        }
    }
    group.finish();
    if let [(small, at_small), (large, at_large)] = per_resource[..] {
        RATIOS.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(format!(
            "apply {large} secrets + {large} members against {small} + {small}, no latency, local state: {:.0} µs per resource against {:.0} µs, {:.2}× (1 when the cost per resource does not grow with N)",
            at_large * 1e6,
            at_small * 1e6,
            at_large / at_small
        ));
    }
}

/// Prints the ratios measured by every group that ran.
fn summary(_: &mut Criterion) {
    let lines = RATIOS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if lines.is_empty() {
        return;
    }
    eprintln!(
        "\nRatio to the ideal (API requests ÷ parallelism × latency, then with the state's sequential requests and Cloud Storage's object write rate; see CONTRIBUTING.md):"
    );
    for line in lines.iter() {
        eprintln!("  {line}");
    }
}

criterion_group!(
    benches,
    apply_secrets,
    apply_secrets_and_members,
    apply_beta,
    apply_at_scale,
    summary
);
criterion_main!(benches);
