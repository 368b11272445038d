//! Plan benchmarks: the refresh of 1,000 secrets against the in-process emulator with 50 ms of
//! simulated latency, in a whole plan session on local and on GCS state (ratio to the ideal of
//! one round trip per secret, and the requests per secret asserted), and the pure
//! evaluate-and-diff step on a large environment. Run with
//! `cargo bench --bench plan`; compare ratios within one run.

use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};
use infra::apply::{StateSink, apply};
use infra::config::{BackendSettings, Configuration};
use infra::emulator::quota::QuotaOptions;
use infra::emulator::realism::RealismOptions;
use infra::emulator::{self, EmulatorOptions};
use infra::gcp::GcpClient;
use infra::gcp::fingerprint_key::{ensure_key, read_key};
use infra::graph::block_graph;
use infra::plan::planner::{check_configuration, plan_with_live};
use infra::plan::{PlanOptions, make_plan, plan_refreshed, refresh_for_plan};
use infra::progress::NoProgress;
use infra::state::gcs::OBJECT_WRITE_INTERVAL;
use infra::state::{Backend, State};
use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

struct Discard;

#[async_trait::async_trait]
impl StateSink for Discard {
    async fn persist(&self, _document: Vec<u8>) -> Result<(), String> {
        Ok(())
    }
}

fn project(secrets: usize) -> (tempfile::TempDir, Configuration) {
    let root = tempfile::tempdir().expect("tempdir");
    let entries: Vec<String> = (0..secrets)
        .map(|index| format!("S{index:05} = \"value-{index}\""))
        .collect();
    let env = format!(
        "[env]\nname = \"bench\"\nproject = \"bench-project\"\nregion = \"us-central1\"\n\n[vars]\nvalues = {{ {} }}\n\n\
         [resource.secret.many]\nfor_each = \"${{var.values}}\"\nsecret_id = \"${{each.key}}\"\nvalue = \"${{each.value}}\"\nlabels = {{ env = \"${{env.name}}\" }}\n",
        entries.join(", ")
    );
    std::fs::create_dir_all(root.path().join("envs/bench")).expect("mkdir");
    std::fs::write(root.path().join("envs/bench/env.toml"), env).expect("write");
    let configuration = infra::config::load(root.path(), "bench").expect("valid configuration");
    (root, configuration)
}

/// Secrets in the refresh benchmark, and the emulated latency of every request.
const REFRESH_SECRETS: usize = 1000;
const LATENCY: Duration = Duration::from_millis(50);

/// Where the plan session keeps its state.
#[derive(Clone, Copy, Debug)]
enum StateKind {
    Local,
    Gcs,
}

impl StateKind {
    /// Requests to the state backend that a plan cannot overlap with anything: taking the lock
    /// together with reading the state (the refresh needs it; confirming the read was current
    /// overlaps the refresh), releasing the lock (after the plan). None for local state.
    fn sequential_requests(self) -> usize {
        match self {
            StateKind::Local => 0,
            StateKind::Gcs => 2,
        }
    }

    /// Requests to the state backend in one plan session: the lock, the read sent with it,
    /// the confirmation that the read was current (during the refresh), the release.
    fn state_requests(self) -> usize {
        match self {
            StateKind::Local => 0,
            StateKind::Gcs => 4,
        }
    }

    /// Returns the ideal session of `rounds` refresh round trips with this state: those and the
    /// sequential state requests, and on GCS what Cloud Storage's one write per second of the
    /// lock object adds as sessions run back to back: the lock's delete comes no sooner than a
    /// second after its create, and the next session's create a second after that delete, so
    /// a session takes at least its work (or a second, if that is shorter) and one second more.
    fn ideal(self, rounds: usize) -> Duration {
        let round_trips = LATENCY.mul_f64((rounds + self.sequential_requests()) as f64);
        match self {
            StateKind::Local => round_trips,
            StateKind::Gcs => round_trips.max(OBJECT_WRITE_INTERVAL) + OBJECT_WRITE_INTERVAL,
        }
    }

    fn settings(self) -> BackendSettings {
        match self {
            StateKind::Local => BackendSettings::Local {
                path: PathBuf::from("state/bench.state.json"),
            },
            StateKind::Gcs => BackendSettings::Gcs {
                bucket: "bench-state".into(),
                prefix: "infra".into(),
                create_bucket: true,
            },
        }
    }
}

/// An environment of applied secrets on an emulator with latency, its state saved in a backend.
struct Applied {
    _root: tempfile::TempDir,
    configuration: Configuration,
    running: emulator::RunningEmulator,
    client: GcpClient,
    backend: Backend,
}

/// Applies `secrets` secrets on a fresh emulator with `LATENCY` and saves the state in a
/// backend of `state_kind`.
async fn applied(secrets: usize, state_kind: StateKind) -> Applied {
    let (root, configuration) = project(secrets);
    let options = EmulatorOptions {
        latency: LATENCY,
        // The bench measures infra against an unthrottled server (Secret Manager's read quota
        // would pace the refresh).
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
    let mut backend = Backend::open(
        "bench",
        "bench-project",
        &state_kind.settings(),
        root.path(),
        &client,
    );
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
    let plan = make_plan(&configuration, &empty, &client, &options)
        .await
        .expect("plan");
    let (mut state, report) = apply(
        &configuration,
        &plan,
        empty,
        &client,
        &Discard,
        100,
        &AtomicBool::new(false),
        Some(fingerprint_key),
    )
    .await;
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    backend.lock("setup", Duration::ZERO).await.expect("lock");
    assert!(backend.read().await.expect("read").is_none());
    state.serial = 1;
    backend.write(&state).await.expect("write");
    backend.unlock().await;
    Applied {
        _root: root,
        configuration,
        running,
        client,
        backend,
    }
}

/// What `infra plan` does, in its order: checks the configuration, takes the lock while reading
/// the state, reads the fingerprint key and confirms the state read is current while refreshing
/// every object, plans (taking over what the check evaluated), releases the lock. Returns
/// whether the plan has changes.
async fn plan_session(applied: &mut Applied, parallelism: usize) -> bool {
    let graph = block_graph(&applied.configuration).expect("graph");
    let checked = check_configuration(&applied.configuration, &graph).expect("valid");
    let (read, _) = applied
        .backend
        .lock_and_read("plan", Duration::ZERO)
        .await
        .expect("lock");
    let state = read.expect("read").expect("a state");
    let options = PlanOptions {
        parallelism,
        ..PlanOptions::default()
    };
    let previous_versions = BTreeSet::new();
    let (fingerprint_key, refreshed, current) = futures::join!(
        read_key(
            &applied.client,
            "bench-project",
            "bench",
            &previous_versions
        ),
        refresh_for_plan(
            &applied.configuration,
            &state,
            &applied.client,
            &options,
            &NoProgress
        ),
        applied.backend.still_current()
    );
    assert!(current.expect("confirm"), "nobody else writes the state");
    let options = PlanOptions {
        fingerprint_key: fingerprint_key.expect("fingerprint key").map(Arc::new),
        ..options
    };
    let plan = plan_refreshed(
        &applied.configuration,
        &state,
        &refreshed.expect("refresh"),
        &options,
        checked,
    )
    .expect("plan");
    applied.backend.unlock().await;
    plan.has_changes()
}

/// The requests the emulator logged, by what they address: each secret of the benchmark, the
/// fingerprint key, and the state backend (Cloud Storage).
#[derive(Debug, Default)]
struct Logged {
    per_secret: BTreeMap<String, usize>,
    fingerprint_key: usize,
    state: usize,
    other: usize,
}

async fn logged(base_url: &str) -> Logged {
    let log: serde_json::Value = reqwest::get(format!("{base_url}_emulator/requests"))
        .await
        .expect("request log")
        .json()
        .await
        .expect("json");
    let mut logged = Logged::default();
    for request in log["requests"].as_array().into_iter().flatten() {
        let path = request["path"].as_str().unwrap_or_default();
        if path.starts_with("/storage/") {
            logged.state += 1;
        } else if let Some(rest) = path.split("/secrets/").nth(1) {
            let secret = rest.split(['/', ':']).next().unwrap_or_default();
            if secret.starts_with('S') {
                *logged.per_secret.entry(secret.to_string()).or_insert(0) += 1;
            } else {
                logged.fingerprint_key += 1;
            }
        } else {
            logged.other += 1;
        }
    }
    logged
}

/// Checks on a small environment what one plan session sends: exactly three requests per
/// secret (the secret, the version state records and the number after it, sent together: one
/// round trip; `latest` lags an add, numbers do not), two or three for the fingerprint key, and the backend's lock, read, confirmation and release — nothing else.
async fn check_requests(state_kind: StateKind) {
    const SECRETS: usize = 100;
    let mut applied = applied(SECRETS, state_kind).await;
    let before = logged(&applied.running.base_url()).await;
    assert!(!plan_session(&mut applied, 32).await, "no changes");
    let after = logged(&applied.running.base_url()).await;
    let per_secret: BTreeMap<&String, usize> = after
        .per_secret
        .iter()
        .map(|(secret, count)| {
            (
                secret,
                count - before.per_secret.get(secret).copied().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(per_secret.len(), SECRETS, "every secret refreshed");
    assert!(
        per_secret.values().all(|count| *count == 3),
        "three requests per secret, sent together: {:?}",
        per_secret.iter().find(|(_, count)| **count != 3)
    );
    // `latest` and then the numbers upward from the newest one it or the state names (2), and
    // the number state names as well while `latest` still lags the key's first version (3).
    let key_requests = after.fingerprint_key - before.fingerprint_key;
    assert!(
        (2..=3).contains(&key_requests),
        "two or three requests for the fingerprint key: {key_requests}"
    );
    assert_eq!(
        after.state - before.state,
        state_kind.state_requests(),
        "{state_kind:?} state: lock, read, confirmation, release"
    );
    assert_eq!(after.other, before.other, "nothing else");
}

/// The refresh of 1,000 applied secrets at 50 ms per request, as `infra plan` makes it (lock
/// with the state read, the fingerprint key read and the read's confirmation during the
/// refresh, plan, release), against the ideal
/// of one round trip per secret: ⌈secrets ÷ parallelism⌉ × latency. A second ratio counts the
/// state backend's sequential requests in the ideal too.
fn refresh(criterion: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    for state_kind in [StateKind::Local, StateKind::Gcs] {
        runtime.block_on(check_requests(state_kind));
    }
    let mut group = criterion.benchmark_group("refresh_1000_secrets_50ms_latency");
    // One refresh per sample: each takes a second or more.
    group.sample_size(10).sampling_mode(SamplingMode::Flat);
    let mut summary = Vec::new();
    for state_kind in [StateKind::Local, StateKind::Gcs] {
        let mut applied = runtime.block_on(applied(REFRESH_SECRETS, state_kind));
        for parallelism in [32usize, 100] {
            let rounds = REFRESH_SECRETS.div_ceil(parallelism);
            let ideal = LATENCY.mul_f64(rounds as f64);
            let with_state = state_kind.ideal(rounds);
            let mut measured = Vec::new();
            let name = format!("{state_kind:?}_state_parallelism_{parallelism}").to_lowercase();
            group.bench_function(&name, |bencher| {
                bencher.iter_custom(|iterations| {
                    let started = Instant::now();
                    for _ in 0..iterations {
                        assert!(!runtime.block_on(plan_session(&mut applied, parallelism)));
                    }
                    let elapsed = started.elapsed();
                    measured.push(elapsed.div_f64(iterations as f64));
                    elapsed
                });
            });
            measured.sort();
            if let Some(median) = measured.get(measured.len() / 2) {
                summary.push(format!(
                    "refresh of {REFRESH_SECRETS} secrets, {state_kind:?} state, parallelism {parallelism}: median {median:.3?}; {:.2}× the refresh ideal ({ideal:?}), {:.2}× with the {} sequential state requests ({with_state:?})",
                    median.as_secs_f64() / ideal.as_secs_f64(),
                    median.as_secs_f64() / with_state.as_secs_f64(),
                    state_kind.sequential_requests(),
                ));
            }
        }
    }
    group.finish();
    eprintln!("\nRatio to the ideal (one round trip per secret):");
    for line in summary {
        eprintln!("  {line}");
    }
}

fn evaluate(criterion: &mut Criterion) {
    let (_root, configuration) = project(2000);
    let graph = block_graph(&configuration).expect("graph");
    let state = State::new("bench");
    let live = BTreeMap::new();
    criterion.bench_function("evaluate_and_diff_2000_secrets", |bencher| {
        bencher.iter(|| {
            plan_with_live(
                &configuration,
                &state,
                &graph,
                &live,
                &PlanOptions::default(),
            )
            .expect("plan")
        });
    });
}

criterion_group!(benches, refresh, evaluate);
criterion_main!(benches);
