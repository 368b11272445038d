//! Core benchmarks: `infra plan --refresh=false` — the release binary, as a user runs it:
//! configuration checks, lock, state read, plan, render — on environments of 10,000 and
//! 100,000 applied resources, with the peak resident memory of each run. The phases inside
//! one process (configuration, state, plan, render) are printed too, to show where the time
//! goes. Run with `cargo bench --bench core`; targets (issue 11): ≤ 0.3 s at 10k, ≤ 3 s at
//! 100k, ≤ 100 MB at 10k.
//!
//! The applied state is real where it matters: one secret is applied through the in-process
//! emulator, and its recorded attributes are repeated under every other address (secrets without
//! values, so no fingerprint ties an attribute to its address). A third environment has 10,000
//! resources of which half are IAM members each reading its own secret's name, the shape of
//! the Beta environment's readers: a block that reads another resource is evaluated while the
//! configuration is checked and must not be evaluated a second time by the plan.

use criterion::{Criterion, criterion_group, criterion_main};
use infra::apply::{StateSink, apply};
use infra::emulator::{self, EmulatorOptions};
use infra::gcp::GcpClient;
use infra::plan::planner::check_configuration;
use infra::plan::render::{ColorChoice, render_plan};
use infra::plan::{PlanOptions, make_plan, plan_refreshed, refresh_for_plan};
use infra::progress::NoProgress;
use infra::state::State;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

struct Discard;

#[async_trait::async_trait]
impl StateSink for Discard {
    async fn persist(&self, _document: Vec<u8>) -> Result<(), String> {
        Ok(())
    }
}

fn secret_id(index: usize) -> String {
    format!("S{index:06}")
}

/// Writes an environment of `count` secrets (no values) under `root`, and with `members` an
/// IAM member per secret reading that secret's name.
fn write_project(root: &Path, count: usize, members: bool) {
    let ids: Vec<String> = (0..count)
        .map(|index| format!("\"{}\"", secret_id(index)))
        .collect();
    let mut env = format!(
        "[env]\nname = \"bench\"\nproject = \"bench-project\"\nregion = \"us-central1\"\n\n[vars]\nids = [{}]\n\n\
         [resource.secret.many]\nfor_each = \"${{var.ids}}\"\nsecret_id = \"${{each.value}}\"\nlabels = {{ env = \"${{env.name}}\", team = \"core\" }}\n",
        ids.join(", ")
    );
    if members {
        env.push_str(
            "\n[resource.iam_member.readers]\nfor_each = \"${var.ids}\"\nparent = \"${secret.many[each.key].name}\"\n\
             role = \"roles/secretmanager.secretAccessor\"\nmember = \"serviceAccount:reader@bench-project.iam.gserviceaccount.com\"\n",
        );
    }
    std::fs::create_dir_all(root.join("envs/bench")).expect("mkdir");
    std::fs::write(root.join("envs/bench/env.toml"), env).expect("write");
}

/// Applies one secret (and with `members` its member) for real, then repeats the recorded
/// resources for `count` secrets.
fn applied_state(runtime: &tokio::runtime::Runtime, count: usize, members: bool) -> Vec<u8> {
    let template_root = tempfile::tempdir().expect("tempdir");
    write_project(template_root.path(), 1, members);
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
    let templates: Vec<String> = document["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(templates.len(), if members { 2 } else { 1 });
    let first = secret_id(0);
    let resources: Vec<serde_json::Value> = templates
        .iter()
        .flat_map(|resource| {
            (0..count).map(|index| {
                serde_json::from_str(&resource.replace(&first, &secret_id(index))).expect("json")
            })
        })
        .collect();
    document["resources"] = serde_json::Value::Array(resources);
    let mut state: State = serde_json::from_value(document).expect("state");
    state.serial = 1;
    state.to_bytes()
}

/// Writes the environment and its applied state (the local backend's file) under `root`.
fn write_applied_project(
    root: &Path,
    count: usize,
    members: bool,
    runtime: &tokio::runtime::Runtime,
) {
    write_project(root, count, members);
    std::fs::create_dir_all(root.join("state")).expect("mkdir");
    std::fs::write(
        root.join("state/bench.state.json"),
        applied_state(runtime, count, members),
    )
    .expect("write");
}

/// Runs `infra plan --refresh=false` (the release binary, as a user runs it) on the project at
/// `root` and returns how long it took and its peak resident memory in MB. The peak is
/// sampled from `/proc/<pid>/status` (`VmHWM`, a high-water mark) every millisecond while it
/// runs; `None` where there is no `/proc`.
fn cli_plan(root: &Path, endpoint: &str) -> (Duration, Option<f64>) {
    let started = Instant::now();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_infra"))
        .args(["plan", "--refresh=false", "--no-color", "--env", "bench"])
        .arg("--root")
        .arg(root)
        // The fingerprint key is read (secrets are a kind with secret values): from the
        // in-process emulator, one request.
        .env("INFRA_GCP_ENDPOINT", endpoint)
        .env("INFRA_GCP_CREDENTIALS", "none")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run infra");
    let status_path = format!("/proc/{}/status", child.id());
    let mut peak: Option<f64> = None;
    let mut stdout = child.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut text).map(|_| text)
    });
    let status = loop {
        if let Some(megabytes) = std::fs::read_to_string(&status_path)
            .ok()
            .as_deref()
            .and_then(high_water_megabytes)
        {
            peak = Some(peak.map_or(megabytes, |known: f64| known.max(megabytes)));
        }
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    let elapsed = started.elapsed();
    let stdout = reader.join().expect("reader").expect("stdout");
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
    }
    assert!(status.success(), "infra plan failed: {stderr}");
    assert!(
        stdout.contains("No changes"),
        "an applied environment plans no change: {stdout}"
    );
    (elapsed, peak)
}

/// Reads `VmHWM` (peak resident memory) from a `/proc/<pid>/status` text, in MB.
fn high_water_megabytes(status: &str) -> Option<f64> {
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kilobytes: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kilobytes / 1024.0)
}

/// Reads the applied state `write_applied_project` left under `root`.
fn read_applied_state(root: &Path) -> State {
    let bytes = std::fs::read(root.join("state/bench.state.json")).expect("read");
    State::from_bytes(&bytes, "bench.state.json", "bench").expect("state")
}

/// Returns a client that reaches nothing and the options of `--refresh=false`: the in-process
/// plans below read no live object.
fn offline_planning() -> (GcpClient, PlanOptions) {
    let client = GcpClient::new(
        Some("http://127.0.0.1:9/".into()),
        infra::gcp::Authentication::None,
    )
    .expect("client");
    let options = PlanOptions {
        refresh: false,
        ..PlanOptions::default()
    };
    (client, options)
}

/// The phases of one plan inside this process as the CLI makes it (configuration loaded and
/// checked, state, plan taking over what the check evaluated, render), printed to show where
/// the CLI's time goes.
fn phases(root: &Path, runtime: &tokio::runtime::Runtime) -> [Duration; 4] {
    let started = Instant::now();
    let configuration = infra::config::load(root, "bench").expect("valid");
    let graph = infra::graph::block_graph(&configuration).expect("graph");
    let checked = check_configuration(&configuration, &graph).expect("checks");
    let loaded = started.elapsed();
    let state = read_applied_state(root);
    let parsed = started.elapsed();
    let (client, options) = offline_planning();
    let plan = runtime
        .block_on(async {
            let refreshed =
                refresh_for_plan(&configuration, &state, &client, &options, &NoProgress).await?;
            plan_refreshed(&configuration, &state, &refreshed, &options, checked)
        })
        .expect("plan");
    let planned = started.elapsed();
    let rendered = render_plan(&plan, ColorChoice::Never);
    assert!(rendered.contains("No changes"));
    let done = started.elapsed();
    [loaded, parsed - loaded, planned - parsed, done - planned]
}

/// Times the plan step on the project at `root` taking over what the configuration check
/// evaluated (as the CLI does), and evaluating every instance again (as it would without the
/// takeover), alternating the two five times and returning each one's median: their difference
/// is what a second evaluation would cost. (One run of each swings by a third on a noisy
/// machine.)
fn plan_with_and_without_takeover(root: &Path, runtime: &tokio::runtime::Runtime) -> [Duration; 2] {
    let configuration = infra::config::load(root, "bench").expect("valid");
    let graph = infra::graph::block_graph(&configuration).expect("graph");
    let state = read_applied_state(root);
    let (client, options) = offline_planning();
    let refreshed = runtime
        .block_on(refresh_for_plan(
            &configuration,
            &state,
            &client,
            &options,
            &NoProgress,
        ))
        .expect("refresh");
    let timed = |checked| {
        let started = Instant::now();
        let plan = plan_refreshed(&configuration, &state, &refreshed, &options, checked);
        let elapsed = started.elapsed();
        assert!(!plan.expect("plan").has_changes());
        elapsed
    };
    let mut taking_over = Vec::new();
    let mut evaluating_again = Vec::new();
    for _ in 0..5 {
        let checked = check_configuration(&configuration, &graph).expect("checks");
        taking_over.push(timed(checked));
        evaluating_again.push(timed(Default::default()));
    }
    taking_over.sort();
    evaluating_again.sort();
    [taking_over[2], evaluating_again[2]]
}

fn plan_without_refresh(criterion: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let running = runtime
        .block_on(emulator::start(
            EmulatorOptions::default(),
            SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        ))
        .expect("emulator");
    let endpoint = running.base_url();
    // (secrets, with a member per secret, name): resources are secrets × 2 with members.
    for (secrets, members, name) in [
        (10_000usize, false, "10000_resources"),
        (100_000, false, "100000_resources"),
        (5_000, true, "10000_resources_half_members"),
    ] {
        let count = if members { secrets * 2 } else { secrets };
        let described = if members {
            format!("{count} resources ({secrets} secrets + {secrets} members reading them)")
        } else {
            format!("{count} resources")
        };
        let root = tempfile::tempdir().expect("tempdir");
        write_applied_project(root.path(), secrets, members, &runtime);
        let [configuration, state, plan, render] = phases(root.path(), &runtime);
        eprintln!(
            "plan --refresh=false of {described}, in-process phases: configuration {configuration:?}, state {state:?}, plan {plan:?}, render {render:?}"
        );
        let [taking_over, evaluating_again] = plan_with_and_without_takeover(root.path(), &runtime);
        eprintln!(
            "  the plan step taking over the check's evaluations: {taking_over:?}; evaluating every instance again: {evaluating_again:?} ({:.2}×)",
            evaluating_again.as_secs_f64() / taking_over.as_secs_f64()
        );
        let (elapsed, peak) = cli_plan(root.path(), &endpoint);
        match peak {
            Some(megabytes) => eprintln!(
                "infra plan --refresh=false of {described}: {elapsed:?}, peak RSS {megabytes:.0} MB"
            ),
            None => eprintln!("infra plan --refresh=false of {described}: {elapsed:?}"),
        }
        let mut group = criterion.benchmark_group("cli_plan_refresh_false");
        group.sample_size(10);
        group.bench_function(name, |bencher| {
            bencher.iter(|| cli_plan(root.path(), &endpoint));
        });
        group.finish();
    }
    running.handle.abort();
}

criterion_group!(benches, plan_without_refresh);
criterion_main!(benches);
