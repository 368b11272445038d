//! Plan benchmarks: the refresh of 1,000 secrets against the in-process emulator with 50 ms of
//! simulated latency (ratio to the ideal of one round trip per secret, and the requests per
//! secret asserted), and the pure evaluate-and-diff step on a large environment. Run with
//! `cargo bench --bench plan`; compare ratios within one run.

use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};
use infra::apply::{StateSink, apply};
use infra::config::Configuration;
use infra::emulator::{self, EmulatorOptions};
use infra::gcp::GcpClient;
use infra::gcp::fingerprint_key::ensure_key;
use infra::graph::block_graph;
use infra::plan::planner::plan_with_live;
use infra::plan::{PlanOptions, make_plan};
use infra::state::State;
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

struct Discard;

#[async_trait::async_trait]
impl StateSink for Discard {
    async fn persist(&self, _state: &State) -> Result<(), String> {
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

/// Returns how many logged requests name each secret of the benchmark (the emulator keeps the
/// last 2,000: exactly two per secret fit, so a third request for any secret pushes another
/// secret's out and the check fails).
fn requests_per_secret(
    base_url: &str,
    runtime: &tokio::runtime::Runtime,
) -> BTreeMap<String, usize> {
    let log: serde_json::Value = runtime.block_on(async {
        reqwest::get(format!("{base_url}_emulator/requests"))
            .await
            .expect("request log")
            .json()
            .await
            .expect("json")
    });
    let mut counts = BTreeMap::new();
    for request in log["requests"].as_array().into_iter().flatten() {
        let path = request["path"].as_str().unwrap_or_default();
        if let Some(rest) = path.split("/secrets/").nth(1) {
            let secret = rest.split(['/', ':']).next().unwrap_or_default();
            *counts.entry(secret.to_string()).or_insert(0) += 1;
        }
    }
    counts
}

/// Refresh of 1,000 applied secrets at 50 ms per request, against the ideal of one round trip
/// per secret: secrets ÷ parallelism × latency.
fn refresh(criterion: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let (_root, configuration) = project(REFRESH_SECRETS);
    let options = EmulatorOptions {
        latency: LATENCY,
        ..EmulatorOptions::default()
    };
    let running = runtime
        .block_on(emulator::start(
            options,
            SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        ))
        .expect("emulator");
    let client =
        GcpClient::new(Some(running.base_url()), infra::gcp::Authentication::None).expect("client");
    let (state, fingerprint_key) = runtime.block_on(async {
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
        let (state, report) = apply(
            &configuration,
            &plan,
            empty,
            &client,
            &Discard,
            100,
            &AtomicBool::new(false),
            Some(fingerprint_key.clone()),
        )
        .await;
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        (state, fingerprint_key)
    });
    // One refresh, then the requests it made: every secret read with exactly two requests
    // (the secret and its latest version), sent together.
    let plan = runtime
        .block_on(make_plan(
            &configuration,
            &state,
            &client,
            &PlanOptions::default(),
        ))
        .expect("plan");
    assert!(!plan.has_changes());
    let counts = requests_per_secret(&running.base_url(), &runtime);
    assert_eq!(counts.len(), REFRESH_SECRETS, "every secret refreshed");
    assert!(
        counts.values().all(|count| *count == 2),
        "two requests per secret: {:?}",
        counts.iter().find(|(_, count)| **count != 2)
    );
    let mut group = criterion.benchmark_group("refresh_1000_secrets_50ms_latency");
    // One refresh per sample: each takes a second or more.
    group.sample_size(10).sampling_mode(SamplingMode::Flat);
    for parallelism in [32usize, 100] {
        let ideal = LATENCY.mul_f64(REFRESH_SECRETS.div_ceil(parallelism) as f64);
        let mut measured = Vec::new();
        group.bench_function(format!("parallelism_{parallelism}"), |bencher| {
            bencher.iter_custom(|iterations| {
                let options = PlanOptions {
                    parallelism,
                    fingerprint_key: Some(fingerprint_key.clone()),
                    ..PlanOptions::default()
                };
                let started = Instant::now();
                for _ in 0..iterations {
                    let plan = runtime
                        .block_on(make_plan(&configuration, &state, &client, &options))
                        .expect("plan");
                    assert!(!plan.has_changes());
                }
                let elapsed = started.elapsed();
                measured.push(elapsed.div_f64(iterations as f64));
                elapsed
            });
        });
        measured.sort();
        if let Some(median) = measured.get(measured.len() / 2) {
            eprintln!(
                "refresh of {REFRESH_SECRETS} secrets at parallelism {parallelism}: median {median:?}, ideal {ideal:?}, ratio {:.2}",
                median.as_secs_f64() / ideal.as_secs_f64()
            );
        }
    }
    group.finish();
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
