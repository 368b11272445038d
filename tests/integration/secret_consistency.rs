//! Secret Manager's eventual consistency: "adding a secret version and then immediately
//! accessing that secret version by version number is a strongly consistent operation … This
//! doesn't apply when you access a secret version using aliases or `latest`"
//! (cloud.google.com/secret-manager/docs/reference/consistency). Each test runs the emulator
//! with a lag far longer than the test, so that `latest`, aliases and version lists never
//! catch up: whatever passes reads by number.

use crate::support::TestEnv;
use serde_json::Value as Json;

const SECRETS: &str = "v1/projects/proj-test/secrets";
/// Longer than any test: `latest` never shows what the test adds.
const FOREVER: &str = "600000";

fn lagging(extra_flags: &[&str]) -> TestEnv {
    let mut env = TestEnv::with_emulator();
    env.stop_emulator();
    let mut flags = vec!["--secret-alias-lag-ms", FOREVER];
    flags.extend_from_slice(extra_flags);
    env.start_emulator_with(&flags);
    env
}

fn env_file(resources: &str) -> String {
    format!(
        "[env]\nname = \"test\"\nproject = \"proj-test\"\nregion = \"us-central1\"\n\n{resources}"
    )
}

fn secrets(a: &str, b: &str) -> String {
    env_file(&format!(
        "[resource.secret.a]\nsecret_id = \"A\"\nvalue = \"{a}\"\n\n[resource.secret.b]\nsecret_id = \"B\"\nvalue = \"{b}\"\n"
    ))
}

fn state_of(env: &TestEnv, address: &str) -> Json {
    let state: Json = serde_json::from_str(&env.read("state/test.state.json")).expect("state");
    state["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .find(|resource| resource["address"] == address)
        .cloned()
        .unwrap_or_else(|| panic!("{address} is not in state"))
}

/// Refresh used to read `latest`, which 404s for a while after a secret's first add (and names
/// the previous version after a later one): the plan right after an apply showed every value
/// as changed outside infra.
#[test]
fn a_refresh_right_after_an_apply_reads_versions_by_the_number_state_records() {
    let env = lagging(&[]);
    env.write("envs/test/env.toml", &secrets("one", "two"));
    env.infra(&["apply", "--env", "test", "--auto-approve"])
        .expect_code(0);
    let (status, _) = env.api("GET", &format!("{SECRETS}/A/versions/latest"), None);
    assert_eq!(status, 404, "the emulator's `latest` lags the add");
    env.infra(&["plan", "--env", "test", "--detailed-exitcode"])
        .expect_code(0);

    env.write("envs/test/env.toml", &secrets("one", "three"));
    env.infra(&["apply", "--env", "test", "--auto-approve"])
        .expect_code(0);
    env.infra(&["plan", "--env", "test", "--detailed-exitcode"])
        .expect_code(0);
    let (_, newest) = env.api("GET", &format!("{SECRETS}/B/versions/2"), None);
    let (_, previous) = env.api("GET", &format!("{SECRETS}/B/versions/1"), None);
    assert_eq!(
        (newest["state"].as_str(), previous["state"].as_str()),
        (Some("ENABLED"), Some("DISABLED"))
    );
    assert!(
        state_of(&env, "secret.b")["attributes"]["version"]
            .as_str()
            .is_some_and(|version| version.ends_with("/versions/2"))
    );
}

/// The fingerprint key used to be read through `latest`: right after the first apply made it,
/// that 404'd, the key counted as missing, and every recorded fingerprint planned as an update.
#[test]
fn the_fingerprint_key_is_read_by_number_right_after_its_first_version() {
    let env = lagging(&[]);
    env.write("envs/test/env.toml", &secrets("one", "two"));
    env.infra(&["apply", "--env", "test", "--auto-approve"])
        .expect_code(0);
    // Without refresh nothing but the key is read: the fingerprints must verify under it.
    env.infra(&[
        "plan",
        "--env",
        "test",
        "--refresh=false",
        "--detailed-exitcode",
    ])
    .expect_code(0);
    assert_eq!(
        env.count_versions(&format!("{SECRETS}/infra-fingerprint-key-test")),
        1,
        "no second key version"
    );
}

/// Every `addVersion` commits and loses its answer: what committed is found by number (the
/// versions list and `latest` lag it), so no value is written twice — the fingerprint key's
/// neither.
#[test]
fn every_lost_add_version_answer_is_recovered_by_number() {
    let env = lagging(&["--lose-answer-rate", "1", "--fault-only", ":addVersion"]);
    env.write("envs/test/env.toml", &secrets("one", "two"));
    env.infra(&["apply", "--env", "test", "--auto-approve"])
        .expect_code(0);
    for secret in ["A", "B", "infra-fingerprint-key-test"] {
        assert_eq!(
            env.count_versions(&format!("{SECRETS}/{secret}")),
            1,
            "{secret}: one version"
        );
    }
    env.write("envs/test/env.toml", &secrets("one", "three"));
    env.infra(&["apply", "--env", "test", "--auto-approve"])
        .expect_code(0);
    assert_eq!(env.count_versions(&format!("{SECRETS}/B")), 2);
    let (_, accessed) = env.api("GET", &format!("{SECRETS}/B/versions/2:access"), None);
    assert_eq!(accessed["payload"]["data"], "dGhyZWU=", "base64 of `three`");
    env.infra(&["plan", "--env", "test", "--detailed-exitcode"])
        .expect_code(0);
}

fn service(secret_reference: &str) -> String {
    env_file(&format!(
        "[resource.secret.token]\nsecret_id = \"TOKEN\"\nvalue = \"t-1\"\n\n[resource.cloud_run_service.api]\nname = \"api\"\nimage = \"img:1\"\ndeletion_protection = false\nsecret_env = {{ TOKEN = \"{secret_reference}\" }}\n"
    ))
}

/// Cloud Run resolves a `latest` secret version when the revision starts, through the same
/// lagging view: a service started seconds after the add finds no version.
#[test]
fn a_revision_reading_latest_right_after_the_add_fails_to_start() {
    let env = lagging(&[]);
    env.write("envs/test/env.toml", &service("${secret.token.name}"));
    let apply = env.infra(&["apply", "--env", "test", "--auto-approve"]);
    apply.expect_code(1);
    assert!(
        apply
            .stderr
            .contains("/secrets/TOKEN/versions/latest was not found"),
        "{}",
        apply.all()
    );
}

/// Pinned to the version state records (`${secret.NAME.version}`), the revision starts at
/// once, and a new value is a new version number: a new template, so a new revision.
#[test]
fn a_service_pinned_to_the_recorded_version_starts_and_follows_a_new_value() {
    let env = lagging(&[]);
    env.write("envs/test/env.toml", &service("${secret.token.version}"));
    env.infra(&["apply", "--env", "test", "--auto-approve"])
        .expect_code(0);
    env.infra(&["plan", "--env", "test", "--detailed-exitcode"])
        .expect_code(0);
    let first = state_of(&env, "cloud_run_service.api")["attributes"].clone();
    assert_eq!(first["secret_env"]["TOKEN"]["version"], "1", "{first}");

    env.write(
        "envs/test/env.toml",
        &service("${secret.token.version}").replace("t-1", "t-2"),
    );
    let plan = env.infra(&["plan", "--env", "test", "--detailed-exitcode"]);
    plan.expect_code(2);
    assert!(
        plan.stdout
            .contains("cloud_run_service.api will be updated"),
        "the new value's version is a new template: {}",
        plan.stdout
    );
    env.infra(&["apply", "--env", "test", "--auto-approve"])
        .expect_code(0);
    let second = state_of(&env, "cloud_run_service.api")["attributes"].clone();
    assert_eq!(second["secret_env"]["TOKEN"]["version"], "2", "{second}");
    assert_ne!(
        first["latest_ready_revision"], second["latest_ready_revision"],
        "a new revision serves the new value"
    );
    env.infra(&["plan", "--env", "test", "--detailed-exitcode"])
        .expect_code(0);
}

/// The bundled modules wire the Beta 500 secrets into the backend by version number: a new
/// value rolls out as a new revision in the same apply, and the next plan is empty.
#[test]
fn a_new_value_in_the_bundled_modules_rolls_out_a_pinned_revision() {
    let env = TestEnv::bundled();
    env.infra(&["apply", "--env", "local", "--auto-approve"])
        .expect_code(0);
    let backend = |env: &TestEnv| -> Json {
        let state: Json = serde_json::from_str(&env.read("state/local.state.json")).expect("state");
        state["resources"]
            .as_array()
            .expect("resources")
            .iter()
            .find(|resource| resource["kind"] == "cloud_run_service")
            .expect("the backend")["attributes"]
            .clone()
    };
    let before = backend(&env);
    assert_eq!(before["secret_env"]["BETA_MAX_USERS"]["version"], "1");
    let module = env
        .read("modules/beta_secrets/module.toml")
        .replace("BETA_MAX_USERS = \"500\"", "BETA_MAX_USERS = \"501\"");
    env.write("modules/beta_secrets/module.toml", &module);
    let plan = env.infra(&["plan", "--env", "local", "--detailed-exitcode"]);
    plan.expect_code(2);
    assert!(
        plan.stdout
            .contains("Plan: 0 to add, 2 to change, 0 to destroy."),
        "the secret and the service: {}",
        plan.stdout
    );
    env.infra(&["apply", "--env", "local", "--auto-approve"])
        .expect_code(0);
    let after = backend(&env);
    assert_eq!(after["secret_env"]["BETA_MAX_USERS"]["version"], "2");
    assert_eq!(after["secret_env"]["BETA_AI_CREDITS"]["version"], "1");
    assert_ne!(
        before["latest_ready_revision"],
        after["latest_ready_revision"]
    );
    env.infra(&["plan", "--env", "local", "--detailed-exitcode"])
        .expect_code(0);
}
