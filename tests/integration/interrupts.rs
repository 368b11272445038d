//! Signals, locks and pipes on an emulated GCS backend (a standalone emulator child with
//! latency, like envs/emulated): SIGINT during a plan, SIGTERM during an apply, Ctrl-C at the
//! prompt (on a real terminal, through `script`), and two interrupts — each leaves no lock
//! behind, so the next apply runs without force-unlock. Also: a reader that closes stdout
//! early is not an error, and usage errors never exit 2.

use crate::support::TestEnv;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const LOCK_OBJECT: &str = "storage/v1/b/interrupt-state/o/infra%2Femulated.lock";

fn emulated(iteration: usize) -> String {
    format!(
        r#"[env]
name = "emulated"
project = "proj-test"
region = "us-central1"

[gcp]
emulator_only = true

[backend]
kind = "gcs"
bucket = "interrupt-state"
prefix = "infra"
create_bucket = true

[resource.secret.first]
secret_id = "FIRST"
value = "{iteration}"

[resource.secret.second]
secret_id = "SECOND"
value = "{iteration}"

[resource.cloud_run_service.api]
name = "api"
image = "img:1"
env = {{ ITERATION = "{iteration}" }}
deletion_protection = false
"#
    )
}

/// An applied environment on an emulator whose every answer takes `latency_ms`.
fn applied(latency_ms: u64) -> TestEnv {
    let mut env = TestEnv::empty();
    env.start_emulator_with(&[
        "--latency-ms",
        &latency_ms.to_string(),
        "--operation-delay-ms",
        "400",
    ]);
    env.write("envs/emulated/env.toml", &emulated(1));
    env.infra(&["apply", "--env", "emulated", "--auto-approve"])
        .expect_code(0);
    env
}

/// Starts `infra ARGS` in the project with piped stdout and stderr.
fn spawn(env: &TestEnv, arguments: &[&str]) -> Child {
    env.command(arguments)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn infra")
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([format!("-{name}"), child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{name}");
}

/// Waits for the child and returns its exit code, stdout and stderr.
fn finish(mut child: Child) -> (i32, String, String) {
    let mut stdout = String::new();
    let mut stderr = String::new();
    if let Some(mut out) = child.stdout.take() {
        let _ = out.read_to_string(&mut stdout);
    }
    if let Some(mut err) = child.stderr.take() {
        let _ = err.read_to_string(&mut stderr);
    }
    let status = child.wait().expect("wait");
    (status.code().unwrap_or(-1), stdout, stderr)
}

/// Reads the child's stderr on a thread, so a test can wait for a line and still get all of it.
struct StderrWatch {
    lines: std::sync::mpsc::Receiver<String>,
    seen: String,
}

impl StderrWatch {
    fn new(child: &mut Child) -> Self {
        let stderr = child.stderr.take().expect("stderr");
        let (sender, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    return;
                }
            }
        });
        Self {
            lines,
            seen: String::new(),
        }
    }

    /// Waits until a line containing `needle` appears on stderr.
    fn wait_for(&mut self, needle: &str) {
        let started = Instant::now();
        while !self.seen.contains(needle) {
            let line = self
                .lines
                .recv_timeout(Duration::from_secs(60).saturating_sub(started.elapsed()))
                .unwrap_or_else(|_| panic!("no `{needle}` on stderr:\n{}", self.seen));
            self.seen.push_str(&line);
            self.seen.push('\n');
        }
    }

    /// Returns all of stderr, once the child has exited.
    fn rest(mut self) -> String {
        while let Ok(line) = self.lines.recv() {
            self.seen.push_str(&line);
            self.seen.push('\n');
        }
        self.seen
    }
}

/// Asserts that no lock object is left and that the next apply runs without force-unlock.
#[track_caller]
fn assert_unlocked_and_next_apply_runs(env: &TestEnv, iteration: usize, output: &str) {
    let (status, lock) = env.api("GET", LOCK_OBJECT, None);
    assert_eq!(status, 404, "the lock is left behind: {lock}\n{output}");
    env.write("envs/emulated/env.toml", &emulated(iteration));
    env.infra(&["apply", "--env", "emulated", "--auto-approve"])
        .expect_code(0);
    env.infra(&["plan", "--env", "emulated", "--detailed-exitcode"])
        .expect_code(0);
}

#[test]
fn sigint_during_a_plan_releases_the_lock() {
    let env = applied(150);
    env.write("envs/emulated/env.toml", &emulated(2));
    let child = spawn(&env, &["plan", "--env", "emulated"]);
    std::thread::sleep(Duration::from_millis(300));
    signal(&child, "INT");
    let (code, stdout, stderr) = finish(child);
    let output = format!("--- stdout\n{stdout}--- stderr\n{stderr}");
    assert_eq!(code, 1, "{output}");
    assert!(stderr.contains("Interrupt received"), "{output}");
    assert!(
        stderr
            .contains("interrupted: stopped before changing anything; no state lock is left held"),
        "{output}"
    );
    assert!(!stderr.contains("panicked"), "{output}");
    assert_unlocked_and_next_apply_runs(&env, 2, &output);
}

#[test]
fn sigterm_during_an_apply_finishes_what_runs_and_releases_the_lock() {
    let env = applied(100);
    env.write("envs/emulated/env.toml", &emulated(2));
    let mut child = spawn(&env, &["apply", "--env", "emulated", "--auto-approve"]);
    let mut stderr = StderrWatch::new(&mut child);
    stderr.wait_for("Applying the changes to `emulated`");
    signal(&child, "TERM");
    let (code, stdout, _) = finish(child);
    let stderr = stderr.rest();
    let output = format!("--- stdout\n{stdout}--- stderr\n{stderr}");
    assert_eq!(code, 1, "{output}");
    assert!(
        stderr.contains("finishing the operations in flight"),
        "{output}"
    );
    assert!(stderr.contains("Apply interrupted"), "{output}");
    assert!(stderr.contains("the state is saved"), "{output}");
    assert_unlocked_and_next_apply_runs(&env, 2, &output);
}

#[test]
fn ctrl_c_at_the_prompt_releases_the_lock() {
    let env = applied(20);
    env.write("envs/emulated/env.toml", &emulated(2));
    // `script` gives the command a terminal; a ^C typed there reaches it as SIGINT.
    // The shell `script` starts must `exec` infra: a shell left waiting in the
    // terminal's process group gets the SIGINT too and reports 130 for itself.
    let command = format!(
        "exec '{}' apply --env emulated",
        env!("CARGO_BIN_EXE_infra")
    );
    let mut child = Command::new("script")
        .args(["-qfec", &command, "/dev/null"])
        .current_dir(env.root.path())
        .env("SHELL", "/bin/sh")
        .env(
            "INFRA_GCP_ENDPOINT",
            env.endpoint.clone().expect("endpoint"),
        )
        .env("INFRA_GCP_CREDENTIALS", "none")
        .env("NO_COLOR", "1")
        .env(
            "GOOGLE_APPLICATION_CREDENTIALS",
            "/nonexistent/infra-test-credentials.json",
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("script (util-linux) runs");
    let mut terminal = child.stdout.take().expect("stdout");
    let mut seen = Vec::new();
    let started = Instant::now();
    let mut buffer = [0u8; 4096];
    while !String::from_utf8_lossy(&seen).contains("Enter a value:") {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no prompt: {}",
            String::from_utf8_lossy(&seen)
        );
        let read = terminal.read(&mut buffer).expect("read the terminal");
        assert!(
            read > 0,
            "ended before the prompt: {}",
            String::from_utf8_lossy(&seen)
        );
        seen.extend_from_slice(&buffer[..read]);
    }
    let (status, _) = env.api("GET", LOCK_OBJECT, None);
    assert_eq!(status, 200, "the prompt is shown under the lock");
    let mut input = child.stdin.take().expect("stdin");
    input.write_all(&[0x03]).expect("type ^C");
    input.flush().expect("flush");
    let mut rest = Vec::new();
    let _ = terminal.read_to_end(&mut rest);
    seen.extend_from_slice(&rest);
    drop(input);
    let code = child.wait().expect("wait").code().unwrap_or(-1);
    let output = String::from_utf8_lossy(&seen).into_owned();
    assert_eq!(code, 1, "{output}");
    assert!(output.contains("Interrupt received"), "{output}");
    assert!(!output.contains("Apply complete"), "{output}");
    assert_unlocked_and_next_apply_runs(&env, 2, &output);
}

#[test]
fn a_second_interrupt_exits_at_once() {
    let env = applied(300);
    env.write("envs/emulated/env.toml", &emulated(2));
    let mut child = spawn(&env, &["apply", "--env", "emulated", "--auto-approve"]);
    let mut stderr = StderrWatch::new(&mut child);
    stderr.wait_for("Applying the changes to `emulated`");
    signal(&child, "INT");
    stderr.wait_for("finishing the operations in flight");
    signal(&child, "INT");
    let second = Instant::now();
    let (code, _, _) = finish(child);
    let stderr = stderr.rest();
    let elapsed = second.elapsed();
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("Two interrupts received. Exiting immediately."),
        "{stderr}"
    );
    // At most the bounded lock release (1.5 s), not the operations in flight.
    assert!(
        elapsed < Duration::from_millis(2500),
        "took {elapsed:?}: {stderr}"
    );
    let (status, _) = env.api("GET", LOCK_OBJECT, None);
    assert_eq!(
        status, 404,
        "the lock was released on the way out: {stderr}"
    );
}

/// An interrupt while the apply waits for its policy writes to show in reads ends the wait at
/// once: the write is recorded already, so the apply saves state and releases the lock rather
/// than reading on for up to a minute.
#[test]
fn an_interrupt_while_policy_writes_are_read_back_exits_promptly_and_releases_the_lock() {
    let mut env = TestEnv::empty();
    // Reads lag the write for longer than the read-back waits: only the interrupt ends it.
    env.start_emulator_with(&["--iam-policy-read-lag-ms", "120000"]);
    env.write(
        "envs/emulated/env.toml",
        r#"[env]
name = "emulated"
project = "proj-test"
region = "us-central1"

[gcp]
emulator_only = true

[backend]
kind = "gcs"
bucket = "interrupt-state"
prefix = "infra"
create_bucket = true

[resource.iam_member.ann_views]
parent = "projects/proj-test"
role = "roles/viewer"
member = "user:ann@example.com"
"#,
    );
    let mut child = spawn(&env, &["apply", "--env", "emulated", "--auto-approve"]);
    let mut stderr = StderrWatch::new(&mut child);
    stderr.wait_for("iam_member.ann_views: Creation complete");
    // The grant's operation is over: what runs now is the read-back.
    std::thread::sleep(Duration::from_millis(500));
    let (status, _) = env.api("GET", LOCK_OBJECT, None);
    assert_eq!(
        status, 200,
        "the apply ended before the read-back was interrupted"
    );
    signal(&child, "INT");
    let interrupted = Instant::now();
    let (code, stdout, _) = finish(child);
    let elapsed = interrupted.elapsed();
    let stderr = stderr.rest();
    let output = format!("--- stdout\n{stdout}--- stderr\n{stderr}");
    assert_eq!(code, 1, "{output}");
    assert!(stderr.contains("Apply interrupted"), "{output}");
    assert!(stderr.contains("the state is saved"), "{output}");
    // Far less than the read-back's own minute.
    assert!(
        elapsed < Duration::from_secs(15),
        "took {elapsed:?} after the interrupt: {output}"
    );
    let (status, lock) = env.api("GET", LOCK_OBJECT, None);
    assert_eq!(status, 404, "the lock is left behind: {lock}\n{output}");
    let listed = env.infra(&["state", "list", "--env", "emulated"]);
    assert!(
        listed.stdout.contains("iam_member.ann_views"),
        "the grant written is recorded: {}",
        listed.all()
    );
}

/// Spawns `infra ARGS` with a stdout whose reader is gone before anything is written.
fn run_with_closed_stdout(env: &TestEnv, arguments: &[&str]) -> (i32, String) {
    let mut child = spawn(env, arguments);
    drop(child.stdout.take());
    let (code, _, stderr) = finish(child);
    (code, stderr)
}

#[test]
fn a_closed_stdout_is_not_an_error() {
    let env = applied(0);
    for arguments in [
        &["state", "pull", "--env", "emulated"][..],
        &["plan", "--env", "emulated", "--json"][..],
        &["state", "list", "--env", "emulated"][..],
        &["show", "--env", "emulated", "--json"][..],
    ] {
        let (code, stderr) = run_with_closed_stdout(&env, arguments);
        assert_eq!(code, 0, "infra {arguments:?}: {stderr}");
        assert!(
            !stderr.contains("panicked"),
            "infra {arguments:?}: {stderr}"
        );
        assert!(
            !stderr.contains("Broken pipe"),
            "infra {arguments:?}: {stderr}"
        );
    }
    // And the lock taken by each was released.
    let (status, _) = env.api("GET", LOCK_OBJECT, None);
    assert_eq!(status, 404);
    // `| head -1` for real: the reader takes a line, then goes away.
    let mut child = spawn(&env, &["state", "pull", "--env", "emulated"]);
    let mut first = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut first)
        .expect("first line");
    assert!(first.starts_with('{'), "{first}");
    let (code, _, stderr) = finish(child);
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn usage_errors_exit_1_never_2() {
    let env = TestEnv::empty();
    let run = env.infra(&["plan", "--detailed-exitcode", "--parallelism", "0"]);
    run.expect_code(1);
    assert!(run.stderr.contains("--parallelism"), "{}", run.all());
    let help = env.infra(&["plan", "--help"]);
    help.expect_code(0);
    assert!(
        help.stdout.contains("--detailed-exitcode"),
        "{}",
        help.all()
    );
    let version = env.infra(&["--version"]);
    version.expect_code(0);
    assert!(version.stdout.starts_with("infra "), "{}", version.all());
}

/// How usage errors read: clap's message, the usage line, and hints — one for Terraform's
/// single-dash habit, one naming the `--help` of the command at hand.
#[test]
fn usage_errors_read_well() {
    let env = TestEnv::empty();
    let mut rendered = String::new();
    for arguments in [
        &["plan", "-out=x.plan"][..],
        &["plan", "--parallelism", "0"][..],
        &["plna"][..],
        &["state", "mv", "secret.a"][..],
    ] {
        let run = env.infra(arguments);
        run.expect_code(1);
        assert!(run.stdout.is_empty(), "{}", run.all());
        rendered.push_str(&format!(
            "$ infra {}\n{}\n",
            arguments.join(" "),
            run.stderr
        ));
    }
    insta::assert_snapshot!(rendered);
}
