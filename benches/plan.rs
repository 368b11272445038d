//! Plan benchmarks: the refresh of a few hundred secrets against the in-process emulator with
//! simulated network latency, serial versus concurrent, and the pure evaluate-and-diff step
//! on a large environment. Run with `cargo bench --bench plan`; compare ratios within one run.

use criterion::{Criterion, criterion_group, criterion_main};
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

fn refresh(criterion: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let (_root, configuration) = project(200);
    let options = EmulatorOptions {
        latency: Duration::from_millis(2),
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
            32,
            &AtomicBool::new(false),
            Some(fingerprint_key.clone()),
        )
        .await;
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        (state, fingerprint_key)
    });
    let mut group = criterion.benchmark_group("refresh_200_secrets_2ms_latency");
    group.sample_size(10);
    for parallelism in [1usize, 32] {
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
                started.elapsed()
            });
        });
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
