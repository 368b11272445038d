//! kill -9 at chosen moments of a first apply (every kind, a GCS backend, an emulator with
//! latency): after `force-unlock` the next apply converges and then: no duplicate (budgets
//! included), no orphan, no extra secret version, no regenerated value, no intent record left,
//! and a plan with nothing to do. `INFRA_KILL_TRIALS` sets the number of trials (default 6).

use crate::lost_answers::{census, env_file, expected_census};
use crate::support::TestEnv;
use std::time::Duration;

/// Returns a fresh project on an emulator with latency, configured with `env_file`.
fn fresh() -> TestEnv {
    let mut env = TestEnv::empty();
    env.start_emulator_with(&["--latency-ms", "15", "--operation-delay-ms", "100"]);
    env.write("envs/test/env.toml", &env_file());
    env
}

/// Runs one trial: kill the first apply `after` its start, recover, and check. Returns true
/// when the kill landed mid-apply (the recovery had something left to do).
fn trial(after: Duration) -> bool {
    let env = fresh();
    let mut child = env
        .command(&["apply", "--env", "test", "--auto-approve"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    std::thread::sleep(after);
    child.kill().expect("kill -9");
    child.wait().expect("reaped");

    let (status, lock) = env.api(
        "GET",
        "storage/v1/b/lost-answers-state/o/infra%2Ftest.lock",
        None,
    );
    if status == 200 {
        let id = lock["generation"]
            .as_str()
            .expect("lock generation")
            .to_string();
        env.infra(&["force-unlock", "--env", "test", &id, "--force"])
            .expect_code(0);
    }
    let generated_before = generated_value(&env);
    let apply = env.infra(&["apply", "--env", "test", "--auto-approve"]);
    apply.expect_code(0);
    assert_eq!(
        census(&env),
        expected_census(),
        "killed after {after:?}\n{}",
        apply.all()
    );
    if let Some(before) = generated_before {
        assert_eq!(
            generated_value(&env),
            Some(before),
            "killed after {after:?}: the generated value was regenerated"
        );
    }
    let state = env.infra(&["state", "pull", "--env", "test"]);
    state.expect_code(0);
    assert!(
        !state.stdout.contains("\"creating\""),
        "killed after {after:?}: an intent record is left\n{}",
        state.stdout
    );
    env.infra(&["plan", "--env", "test", "--detailed-exitcode"])
        .expect_code(0);
    status == 200 || !apply.stderr.contains("No changes")
}

/// Returns the generated secret's current value, if one was written.
fn generated_value(env: &TestEnv) -> Option<String> {
    let (status, accessed) = env.access_newest_version("v1/projects/proj-test/secrets/SESSION_KEY");
    (status == 200).then(|| {
        accessed["payload"]["data"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    })
}

#[test]
fn kill_9_during_a_first_apply_leaves_nothing_duplicated_or_orphaned() {
    let trials: u64 = std::env::var("INFRA_KILL_TRIALS")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(6);
    // Calibrate: how long a whole first apply takes here; the kills are spread over it.
    let calibration = fresh();
    let started = std::time::Instant::now();
    calibration
        .infra(&["apply", "--env", "test", "--auto-approve"])
        .expect_code(0);
    let whole = started.elapsed();
    assert_eq!(census(&calibration), expected_census());
    let mut mid_apply = 0;
    for index in 0..trials {
        let after = whole.mul_f64((index as f64 + 0.5) / trials as f64);
        if trial(after) {
            mid_apply += 1;
        }
    }
    eprintln!("{mid_apply} of {trials} kills landed mid-apply (a whole apply takes {whole:?})");
    // Kills that all landed after the apply ended would prove nothing.
    assert!(
        mid_apply * 2 >= trials,
        "only {mid_apply} of {trials} kills landed mid-apply (a whole apply takes {whole:?})"
    );
}
