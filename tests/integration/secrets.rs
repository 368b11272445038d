//! The secret and iam_member lifecycle against the emulator: value changes, drift, replacement,
//! saved plans, destroy, and adoption after an interrupted create.

use crate::support::{TestEnv, count_actions};
use serde_json::json;

const MODULE: &str = r#"
[input.accessor]
type = "string"

[input.values]
type = "map"

[input.old_versions]
type = "string"
default = "disable"

[input.replication]
type = "any"
default = "automatic"

[resource.secret.config]
for_each = "${input.values}"
secret_id = "${each.key}"
value = "${each.value}"
old_versions = "${input.old_versions}"
replication = "${input.replication}"
labels = { env = "${env.name}", app = "demo" }

[resource.iam_member.read]
for_each = "${input.values}"
parent = "${secret.config[each.key].name}"
role = "roles/secretmanager.secretAccessor"
member = "serviceAccount:${input.accessor}"

[output.names]
value = "${secret.config[*].name}"
"#;

fn env_file(values: &str, extra: &str) -> String {
    format!(
        "[env]\nname = \"test\"\nproject = \"proj-test\"\nregion = \"us-central1\"\n\n[module.app]\nsource = \"app\"\naccessor = \"reader@proj-test.iam.gserviceaccount.com\"\nvalues = {values}\n{extra}"
    )
}

fn applied(values: &str, extra: &str) -> TestEnv {
    let env = TestEnv::with_emulator();
    env.write("modules/app/module.toml", MODULE);
    env.write("envs/test/env.toml", &env_file(values, extra));
    env.infra(&["apply", "--env", "test", "--auto-approve"])
        .expect_code(0);
    env.infra(&["plan", "--env", "test", "--detailed-exitcode"])
        .expect_code(0);
    env
}

const AB: &str = r#"{ A = "one", B = "two" }"#;
const SECRETS: &str = "v1/projects/proj-test/secrets";

/// Returns the states of a secret's versions, newest first, read by number as a client must
/// right after an add: the versions list and `latest` are eventually consistent.
fn version_states(env: &TestEnv, secret_id: &str) -> Vec<String> {
    let mut states = Vec::new();
    for number in 1.. {
        let (status, version) = env.api(
            "GET",
            &format!("{SECRETS}/{secret_id}/versions/{number}"),
            None,
        );
        if status == 404 {
            break;
        }
        assert_eq!(status, 200, "{version}");
        states.insert(0, version["state"].as_str().unwrap_or_default().to_string());
    }
    states
}

#[test]
fn editing_one_value_adds_a_version_and_disables_the_previous_one() {
    let env = applied(AB, "");
    env.write(
        "envs/test/env.toml",
        &env_file(r#"{ A = "one", B = "three" }"#, ""),
    );
    let plan = env.infra(&["plan", "--env", "test", "--detailed-exitcode"]);
    plan.expect_code(2);
    assert!(
        plan.stdout
            .contains("Plan: 0 to add, 1 to change, 0 to destroy."),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout
            .contains(r#"module.app.secret.config["B"] will be updated in-place"#),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout
            .contains("~ value = (sensitive value) -> (sensitive value)"),
        "{}",
        plan.stdout
    );
    assert!(!plan.stdout.contains("three"), "{}", plan.stdout);

    env.infra(&["apply", "--env", "test", "--auto-approve"])
        .expect_code(0);
    // Read by number: the versions list and `latest` lag an add (realism's default).
    assert_eq!(
        version_states(&env, "B"),
        vec!["ENABLED", "DISABLED"],
        "newest first"
    );
    let (_, newest) = env.api("GET", &format!("{SECRETS}/B/versions/2:access"), None);
    assert_eq!(
        newest["payload"]["data"],
        json!("dGhyZWU="),
        "base64 of `three`"
    );
    env.infra(&["plan", "--env", "test", "--detailed-exitcode"])
        .expect_code(0);
}

#[test]
fn a_targeted_apply_leaves_the_previous_version_enabled_until_a_full_apply() {
    let env = applied(AB, "");
    env.write(
        "envs/test/env.toml",
        &env_file(r#"{ A = "one", B = "three" }"#, ""),
    );
    // What reads the secret is outside the target, so it may still name version 1.
    env.infra(&[
        "apply",
        "--env",
        "test",
        "--target",
        r#"module.app.secret.config["B"]"#,
        "--auto-approve",
    ])
    .expect_code(0);
    assert_eq!(version_states(&env, "B"), ["ENABLED", "ENABLED"]);
    let pending = env.infra(&["plan", "--env", "test", "--detailed-exitcode"]);
    pending.expect_code(2);
    assert!(
        pending.stdout.contains("retiring")
            && pending
                .stdout
                .contains("Plan: 0 to add, 1 to change, 0 to destroy."),
        "only the retirement is left: {}",
        pending.stdout
    );
    env.infra(&["apply", "--env", "test", "--auto-approve"])
        .expect_code(0);
    assert_eq!(version_states(&env, "B"), ["ENABLED", "DISABLED"]);
    env.infra(&["plan", "--env", "test", "--detailed-exitcode"])
        .expect_code(0);
}

#[test]
fn old_versions_destroy_destroys_the_previous_version() {
    let env = applied(AB, "old_versions = \"destroy\"\n");
    env.write(
        "envs/test/env.toml",
        &env_file(
            r#"{ A = "uno", B = "two" }"#,
            "old_versions = \"destroy\"\n",
        ),
    );
    env.infra(&["apply", "--env", "test", "--auto-approve"])
        .expect_code(0);
    let (_, first) = env.api("GET", &format!("{SECRETS}/A/versions/1"), None);
    assert_eq!(first["state"], "DESTROYED", "{first}");
    env.infra(&["plan", "--env", "test", "--detailed-exitcode"])
        .expect_code(0);
}

#[test]
fn a_secret_deleted_behind_our_back_is_reported_and_recreated() {
    let env = applied(AB, "");
    let (status, _) = env.api("DELETE", &format!("{SECRETS}/A"), None);
    assert_eq!(status, 200);
    let plan = env.infra(&["plan", "--env", "test", "--detailed-exitcode"]);
    plan.expect_code(2);
    assert!(
        plan.stdout
            .contains("Objects have changed outside of infra:"),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout
            .contains(r#"# module.app.secret.config["A"] has been deleted"#),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout
            .contains(r#"module.app.secret.config["A"] will be created (deleted outside infra)"#),
        "{}",
        plan.stdout
    );
    assert_eq!(
        count_actions(&plan.stdout, "iam_member", "will be created"),
        1,
        "its policy went with it: {}",
        plan.stdout
    );
    env.infra(&["apply", "--env", "test", "--auto-approve"])
        .expect_code(0);
    let (status, policy) = env.api("GET", &format!("{SECRETS}/A:getIamPolicy"), None);
    assert_eq!(status, 200);
    assert_eq!(
        policy["bindings"][0]["members"][0],
        "serviceAccount:reader@proj-test.iam.gserviceaccount.com"
    );
    env.infra(&["plan", "--env", "test", "--detailed-exitcode"])
        .expect_code(0);
}

#[test]
fn labels_and_versions_changed_outside_are_drift_and_get_fixed() {
    let env = applied(AB, "");
    let (_, secret) = env.api("GET", &format!("{SECRETS}/A"), None);
    let mut labels = secret["labels"].clone();
    labels["owner"] = json!("someone");
    let (status, _) = env.api(
        "PATCH",
        &format!("{SECRETS}/A?updateMask=labels"),
        Some(json!({ "labels": labels })),
    );
    assert_eq!(status, 200);
    let (status, _) = env.api(
        "POST",
        &format!("{SECRETS}/B:addVersion"),
        Some(json!({"payload": {"data": "c25lYWt5"}})),
    );
    assert_eq!(status, 200);
    let plan = env.infra(&["plan", "--env", "test", "--detailed-exitcode"]);
    plan.expect_code(2);
    assert!(
        plan.stdout
            .contains(r#"# module.app.secret.config["A"] has changed: labels.owner"#),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout
            .contains(r#"# module.app.secret.config["B"] has changed: value"#),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout.contains(r#"- "owner" = "someone""#),
        "{}",
        plan.stdout
    );
    env.infra(&["apply", "--env", "test", "--auto-approve"])
        .expect_code(0);
    let (_, secret) = env.api("GET", &format!("{SECRETS}/A"), None);
    assert!(secret["labels"].get("owner").is_none(), "{secret}");
    // Version 2 is the one added outside; the apply wrote `two` again as version 3.
    let (_, newest) = env.api("GET", &format!("{SECRETS}/B/versions/3:access"), None);
    assert_eq!(newest["payload"]["data"], json!("dHdv"), "base64 of `two`");
    env.infra(&["plan", "--env", "test", "--detailed-exitcode"])
        .expect_code(0);
}

#[test]
fn changing_replication_replaces_the_secret_and_rewrites_its_members() {
    let env = applied(AB, "");
    env.write(
        "envs/test/env.toml",
        &env_file(AB, "replication = { locations = [\"us-east1\"] }\n"),
    );
    let plan = env.infra(&["plan", "--env", "test", "--detailed-exitcode"]);
    plan.expect_code(2);
    assert!(
        plan.stdout.contains(r#"-/+ module.app.secret.config["A"]"#),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout.contains("# forces replacement"),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout
            .contains("Plan: 4 to add, 0 to change, 2 to destroy."),
        "{}",
        plan.stdout
    );
    env.infra(&["apply", "--env", "test", "--auto-approve"])
        .expect_code(0);
    let (_, secret) = env.api("GET", &format!("{SECRETS}/A"), None);
    assert_eq!(
        secret["replication"]["userManaged"]["replicas"][0]["location"],
        "us-east1"
    );
    let (_, policy) = env.api("GET", &format!("{SECRETS}/A:getIamPolicy"), None);
    assert_eq!(
        policy["bindings"][0]["role"], "roles/secretmanager.secretAccessor",
        "{policy}"
    );
    env.infra(&["plan", "--env", "test", "--detailed-exitcode"])
        .expect_code(0);
}

#[test]
fn a_saved_plan_applies_once_and_a_stale_one_is_refused() {
    let env = applied(AB, "");
    env.write(
        "envs/test/env.toml",
        &env_file(r#"{ A = "one", B = "two", C = "three" }"#, ""),
    );
    env.infra(&["plan", "--env", "test", "--out", "first.plan"])
        .expect_code(0);
    env.infra(&["plan", "--env", "test", "--out", "second.plan"])
        .expect_code(0);
    let shown = env.infra(&["show", "first.plan"]);
    assert!(shown.stdout.contains("Plan: 2 to add"), "{}", shown.all());
    let apply = env.infra(&["apply", "--env", "test", "first.plan"]);
    apply.expect_code(0);
    assert!(apply.stdout.contains("2 added"), "{}", apply.all());
    let stale = env.infra(&["apply", "--env", "test", "second.plan"]);
    stale.expect_code(1);
    assert!(
        stale
            .stderr
            .contains("the state changed since the plan was made"),
        "{}",
        stale.all()
    );
    assert!(
        stale
            .stderr
            .contains("hint: run `infra plan --env test --out second.plan` again"),
        "{}",
        stale.all()
    );

    env.infra(&["plan", "--env", "test", "--out", "third.plan"])
        .expect_code(0);
    env.write(
        "envs/test/env.toml",
        &env_file(r#"{ A = "one", B = "two", C = "four" }"#, ""),
    );
    let changed = env.infra(&["apply", "--env", "test", "third.plan"]);
    changed.expect_code(1);
    assert!(
        changed
            .stderr
            .contains("the configuration changed since the plan was made"),
        "{}",
        changed.all()
    );
}

#[test]
fn a_saved_plan_is_refused_when_live_objects_changed() {
    let env = applied(AB, "");
    env.write(
        "envs/test/env.toml",
        &env_file(r#"{ A = "one", B = "deux" }"#, ""),
    );
    env.infra(&["plan", "--env", "test", "--out", "p.plan"])
        .expect_code(0);
    env.api("DELETE", &format!("{SECRETS}/A"), None);
    let stale = env.infra(&["apply", "--env", "test", "p.plan"]);
    stale.expect_code(1);
    assert!(
        stale.stderr.contains("live infrastructure changed"),
        "{}",
        stale.all()
    );
    assert!(
        stale.stderr.contains(r#"module.app.secret.config["A"]"#),
        "{}",
        stale.all()
    );
}

#[test]
fn destroy_deletes_everything_members_first() {
    let env = applied(AB, "");
    let destroy = env.infra(&["destroy", "--env", "test", "--auto-approve"]);
    destroy.expect_code(0);
    assert!(destroy.stdout.contains("4 destroyed"), "{}", destroy.all());
    // What remains is infra's own fingerprint key, which destroy never deletes (docs/state.md).
    let (_, listed) = env.api("GET", SECRETS, None);
    let names: Vec<&str> = listed["secrets"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|secret| secret["name"].as_str())
        .collect();
    assert_eq!(names.len(), 1, "{listed}");
    assert!(
        names[0].ends_with("/secrets/infra-fingerprint-key-test"),
        "{listed}"
    );
    let state: serde_json::Value =
        serde_json::from_str(&env.read("state/test.state.json")).expect("state");
    assert_eq!(state["resources"], json!([]));
    assert_eq!(state["outputs"], json!({}));
    env.infra(&["plan", "--env", "test", "--destroy", "--detailed-exitcode"])
        .expect_code(0);
}

#[test]
fn prevent_destroy_stops_a_destroying_plan() {
    let env = TestEnv::with_emulator();
    env.write(
        "envs/test/env.toml",
        "[env]\nname = \"test\"\nproject = \"proj-test\"\nregion = \"us-central1\"\n\n[resource.secret.keep]\nsecret_id = \"KEEP\"\nvalue = \"x\"\nlifecycle = { prevent_destroy = true }\n",
    );
    env.infra(&["apply", "--env", "test", "--auto-approve"])
        .expect_code(0);
    let destroy = env.infra(&["destroy", "--env", "test", "--auto-approve"]);
    destroy.expect_code(1);
    assert!(
        destroy.stderr.contains(
            "secret.keep: the plan would destroy it, but lifecycle.prevent_destroy is set"
        ),
        "{}",
        destroy.all()
    );
    let (status, _) = env.api("GET", &format!("{SECRETS}/KEEP"), None);
    assert_eq!(status, 200);
}

#[test]
fn an_interrupted_create_is_adopted_not_duplicated() {
    let env = applied(AB, "");
    // What a run that created A and died before recording it leaves: the object, carrying
    // this environment's and state's labels, and a state that does not hold it.
    env.infra(&[
        "state",
        "rm",
        "--env",
        "test",
        r#"module.app.secret.config["A"]"#,
    ])
    .expect_code(0);
    let (status, _) = env.api(
        "PATCH",
        &format!("{SECRETS}/A?updateMask=labels"),
        Some(json!({"labels": {"managed-by": "infra", "infra-env": "test", "infra-lineage": lineage(&env)}})),
    );
    assert_eq!(status, 200);
    env.infra(&["apply", "--env", "test", "--auto-approve"])
        .expect_code(0);
    let (_, secret) = env.api("GET", &format!("{SECRETS}/A"), None);
    assert_eq!(
        secret["labels"]["app"], "demo",
        "adopted and brought in line: {secret}"
    );
    env.infra(&["plan", "--env", "test", "--detailed-exitcode"])
        .expect_code(0);
}

#[test]
fn a_foreign_secret_with_the_same_id_is_not_taken_over() {
    let env = TestEnv::with_emulator();
    env.write("modules/app/module.toml", MODULE);
    env.write("envs/test/env.toml", &env_file(AB, ""));
    env.api(
        "POST",
        &format!("{SECRETS}?secretId=A"),
        Some(json!({"replication": {"automatic": {}}})),
    );
    let apply = env.infra(&["apply", "--env", "test", "--auto-approve"]);
    apply.expect_code(1);
    assert!(
        apply.stderr.contains(
            r#"module.app.secret.config["A"]: projects/proj-test/secrets/A already exists and is not created by infra: not adopted"#
        ),
        "{}",
        apply.all()
    );
    assert!(
        apply.stderr.contains(r#"hint: if this environment should manage it: `infra import --env test 'module.app.secret.config["A"]' projects/proj-test/secrets/A`"#),
        "{}",
        apply.all()
    );
    let (_, secret) = env.api("GET", &format!("{SECRETS}/A"), None);
    assert!(secret.get("labels").is_none(), "untouched: {secret}");
    let state = env.read("state/test.state.json");
    assert!(
        state.contains(r#"secret.config[\"B\"]"#),
        "B went ahead: {state}"
    );
}

#[test]
fn the_generated_key_is_generated_once() {
    let env = TestEnv::with_emulator();
    env.write(
        "envs/test/env.toml",
        "[env]\nname = \"test\"\nproject = \"proj-test\"\nregion = \"us-central1\"\n\n[resource.secret.key]\nsecret_id = \"KEY\"\ngenerate = { bytes = 32, encoding = \"base64url\" }\n",
    );
    env.infra(&["apply", "--env", "test", "--auto-approve"])
        .expect_code(0);
    let (_, first) = env.api("GET", &format!("{SECRETS}/KEY/versions/1:access"), None);
    env.infra(&["apply", "--env", "test", "--auto-approve"])
        .expect_code(0);
    env.infra(&["plan", "--env", "test", "--detailed-exitcode"])
        .expect_code(0);
    let (_, second) = env.api("GET", &format!("{SECRETS}/KEY/versions/1:access"), None);
    assert_eq!(first, second);
    let replace = env.infra(&[
        "apply",
        "--env",
        "test",
        "--auto-approve",
        "--replace",
        "secret.key",
    ]);
    replace.expect_code(0);
    let (_, third) = env.api("GET", &format!("{SECRETS}/KEY/versions/1:access"), None);
    assert_ne!(
        first["payload"]["data"], third["payload"]["data"],
        "--replace generates anew"
    );
    assert_eq!(
        third["payload"]["data"].as_str().map(str::len),
        Some(60),
        "32 bytes as 43 base64url characters, base64-encoded on the wire"
    );
}

#[test]
fn transient_failures_are_retried_until_the_apply_converges() {
    let mut env = TestEnv::empty();
    env.write("modules/app/module.toml", MODULE);
    env.write(
        "envs/test/env.toml",
        &env_file(
            r#"{ A = "1", B = "2", C = "3", D = "4", E = "5", F = "6" }"#,
            "",
        ),
    );
    // One request in ten is answered 503 UNAVAILABLE.
    env.start_emulator_with(&["--fail-rate", "0.1"]);
    let apply = env.infra(&[
        "apply",
        "--env",
        "test",
        "--auto-approve",
        "--log-level",
        "debug",
    ]);
    apply.expect_code(0);
    assert!(apply.stdout.contains("12 added"), "{}", apply.all());
    assert!(
        apply.stderr.contains("retrying"),
        "failures were injected and retried: {}",
        apply.all()
    );
    env.infra(&["plan", "--env", "test", "--detailed-exitcode"])
        .expect_code(0);
}

/// Returns the lineage of an environment's local state.
fn lineage_of(env: &TestEnv, name: &str) -> String {
    let state: serde_json::Value =
        serde_json::from_str(&env.read(&format!("state/{name}.state.json"))).expect("state");
    state["lineage"].as_str().expect("lineage").to_string()
}

fn lineage(env: &TestEnv) -> String {
    lineage_of(env, "test")
}

#[test]
fn a_second_environment_does_not_take_over_the_first_ones_secrets() {
    let env = applied(AB, "");
    let first_lineage = lineage(&env);
    let (_, before) = env.api("GET", &format!("{SECRETS}/A"), None);
    assert_eq!(before["labels"]["infra-env"], "test", "{before}");
    assert_eq!(before["labels"]["infra-lineage"], first_lineage.as_str());
    // A second environment in the same project, naming the same secret ids.
    env.write(
        "envs/other/env.toml",
        &env_file(AB, "").replace("name = \"test\"", "name = \"other\""),
    );
    let apply = env.infra(&["apply", "--env", "other", "--auto-approve"]);
    apply.expect_code(1);
    assert!(
        apply.stderr.contains(&format!(
            r#"module.app.secret.config["A"]: projects/proj-test/secrets/A already exists and is owned by environment `test`, state lineage {first_lineage}: not adopted"#
        )),
        "{}",
        apply.all()
    );
    assert!(
        apply.stderr.contains(r#"hint: if this environment should manage it: `infra import --env other 'module.app.secret.config["A"]' projects/proj-test/secrets/A`"#),
        "{}",
        apply.all()
    );
    let other_state = env.read("state/other.state.json");
    assert!(
        !other_state.contains("projects/proj-test/secrets/A\""),
        "nothing adopted: {other_state}"
    );
    let (_, after) = env.api("GET", &format!("{SECRETS}/A"), None);
    assert_eq!(before, after, "the first environment's secret is untouched");
    assert_eq!(version_states(&env, "A").len(), 1, "no value written");
    env.infra(&["plan", "--env", "test", "--detailed-exitcode"])
        .expect_code(0);
}

#[test]
fn a_new_state_of_the_same_environment_does_not_take_over_the_old_ones_secrets() {
    let env = applied(AB, "");
    let first_lineage = lineage(&env);
    // The state file is lost (or another checkout starts empty): a new lineage.
    std::fs::remove_file(env.root.path().join("state/test.state.json")).expect("remove state");
    let apply = env.infra(&["apply", "--env", "test", "--auto-approve"]);
    apply.expect_code(1);
    assert!(
        apply.stderr.contains(&format!(
            "already exists and is owned by environment `test`, state lineage {first_lineage}: not adopted"
        )),
        "{}",
        apply.all()
    );
    assert!(
        apply
            .stderr
            .contains("hint: if this environment should manage it: `infra import --env test"),
        "{}",
        apply.all()
    );
    let (_, secret) = env.api("GET", &format!("{SECRETS}/A"), None);
    assert_eq!(secret["labels"]["infra-lineage"], first_lineage.as_str());
}
