//! Core benchmarks: what `infra plan --refresh=false` does with no network — load the
//! configuration, parse the state, plan, render — on environments of 10,000 and 100,000 applied
//! resources, plus the peak resident memory after the 10,000 case. Run with
//! `cargo bench --bench core`; targets (issue 11): ≤ 0.3 s at 10k, ≤ 3 s at 100k, ≤ 100 MB.
//!
//! The applied state is real where it matters: one secret is applied through the in-process
//! emulator, and its recorded attributes are repeated under every other address (secrets without
//! values, so no fingerprint ties an attribute to its address).

use criterion::{Criterion, criterion_group, criterion_main};
use infra::apply::{StateSink, apply};
use infra::emulator::{self, EmulatorOptions};
use infra::gcp::GcpClient;
use infra::plan::render::{ColorChoice, render_plan};
use infra::plan::{PlanOptions, make_plan};
use infra::state::State;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

struct Discard;

#[async_trait::async_trait]
impl StateSink for Discard {
    async fn persist(&self, _state: &State) -> Result<(), String> {
        Ok(())
    }
}

fn secret_id(index: usize) -> String {
    format!("S{index:06}")
}

/// Writes an environment of `count` secrets (no values) under `root`.
fn write_project(root: &Path, count: usize) {
    let ids: Vec<String> = (0..count)
        .map(|index| format!("\"{}\"", secret_id(index)))
        .collect();
    let env = format!(
        "[env]\nname = \"bench\"\nproject = \"bench-project\"\nregion = \"us-central1\"\n\n[vars]\nids = [{}]\n\n\
         [resource.secret.many]\nfor_each = \"${{var.ids}}\"\nsecret_id = \"${{each.value}}\"\nlabels = {{ env = \"${{env.name}}\", team = \"core\" }}\n",
        ids.join(", ")
    );
    std::fs::create_dir_all(root.join("envs/bench")).expect("mkdir");
    std::fs::write(root.join("envs/bench/env.toml"), env).expect("write");
}

/// Applies one secret for real, then repeats its recorded resource under `count` addresses.
fn applied_state(runtime: &tokio::runtime::Runtime, count: usize) -> Vec<u8> {
    let template_root = tempfile::tempdir().expect("tempdir");
    write_project(template_root.path(), 1);
    let configuration = infra::config::load(template_root.path(), "bench").expect("valid");
    let running = runtime
        .block_on(emulator::start(
            EmulatorOptions::default(),
            SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        ))
        .expect("emulator");
    let client =
        GcpClient::new(Some(running.base_url()), infra::gcp::Authentication::None).expect("client");
    let template = runtime.block_on(async {
        let empty = State::new("bench");
        let plan = make_plan(&configuration, &empty, &client, &PlanOptions::default())
            .await
            .expect("plan");
        let (state, report) = apply(
            &configuration,
            &plan,
            empty,
            &client,
            &Discard,
            1,
            &AtomicBool::new(false),
            // Secrets without values: no fingerprint, so no key.
            None,
        )
        .await;
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        state
    });
    running.handle.abort();
    let text = String::from_utf8(template.to_bytes()).expect("utf8");
    let mut document: serde_json::Value = serde_json::from_str(&text).expect("json");
    let resource = document["resources"][0].to_string();
    let first = secret_id(0);
    let resources: Vec<serde_json::Value> = (0..count)
        .map(|index| {
            serde_json::from_str(&resource.replace(&first, &secret_id(index))).expect("json")
        })
        .collect();
    document["resources"] = serde_json::Value::Array(resources);
    let mut state: State = serde_json::from_value(document).expect("state");
    state.serial = 1;
    state.to_bytes()
}

/// One `plan --refresh=false`: configuration, state, plan, render. Returns the phases' times.
fn plan_once(root: &Path, state_bytes: &[u8], runtime: &tokio::runtime::Runtime) -> [Duration; 4] {
    let started = Instant::now();
    let configuration = infra::config::load(root, "bench").expect("valid");
    let loaded = started.elapsed();
    let state = State::from_bytes(state_bytes, "bench.state.json", "bench").expect("state");
    let parsed = started.elapsed();
    let client = GcpClient::new(
        Some("http://127.0.0.1:9/".into()),
        infra::gcp::Authentication::None,
    )
    .expect("client");
    let options = PlanOptions {
        refresh: false,
        ..PlanOptions::default()
    };
    let plan = runtime
        .block_on(make_plan(&configuration, &state, &client, &options))
        .expect("plan");
    assert!(
        !plan.has_changes(),
        "an applied environment plans no change"
    );
    let planned = started.elapsed();
    let rendered = render_plan(&plan, ColorChoice::Never);
    assert!(rendered.contains("No changes"));
    let done = started.elapsed();
    [loaded, parsed - loaded, planned - parsed, done - planned]
}

fn peak_resident_megabytes() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kilobytes: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kilobytes / 1024.0)
}

fn plan_without_refresh(criterion: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    for count in [10_000usize, 100_000] {
        let root = tempfile::tempdir().expect("tempdir");
        write_project(root.path(), count);
        let state_bytes = applied_state(&runtime, count);
        let phases = plan_once(root.path(), &state_bytes, &runtime);
        eprintln!(
            "plan --refresh=false of {count} resources: configuration {:?}, state {:?}, plan {:?}, render {:?}",
            phases[0], phases[1], phases[2], phases[3]
        );
        if count == 10_000
            && let Some(megabytes) = peak_resident_megabytes()
        {
            eprintln!("peak RSS after the {count}-resource plan: {megabytes:.0} MB");
        }
        let mut group = criterion.benchmark_group("plan_refresh_false");
        group.sample_size(10);
        group.bench_function(format!("{count}_resources"), |bencher| {
            bencher.iter(|| plan_once(root.path(), &state_bytes, &runtime));
        });
        group.finish();
    }
}

criterion_group!(benches, plan_without_refresh);
criterion_main!(benches);
