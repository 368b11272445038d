//! `--refresh-only`: drift made through the emulator's API is reported (exit 2 with
//! `--detailed-exitcode`, 0 without drift) and `apply --refresh-only` records it in the state
//! without changing any object.

use crate::support::TestEnv;
use serde_json::{Value as Json, json};

const SECRETS: &str = "v1/projects/proj-test/secrets";

fn applied() -> TestEnv {
    let env = TestEnv::with_emulator();
    env.write(
        "envs/test/env.toml",
        "[env]\nname = \"test\"\nproject = \"proj-test\"\nregion = \"us-central1\"\n\n\
         [resource.secret.a]\nsecret_id = \"A\"\nvalue = \"one\"\nlabels = { app = \"demo\" }\n\n\
         [resource.secret.b]\nsecret_id = \"B\"\nvalue = \"two\"\n",
    );
    env.infra(&["apply", "--env", "test", "--auto-approve"])
        .expect_code(0);
    env
}

fn make_drift(env: &TestEnv) {
    let (status, _) = env.api(
        "PATCH",
        &format!("{SECRETS}/A?updateMask=labels"),
        Some(json!({"labels": {"app": "demo", "owner": "someone"}})),
    );
    assert_eq!(status, 200);
    let (status, _) = env.api("DELETE", &format!("{SECRETS}/B"), None);
    assert_eq!(status, 200);
}

#[test]
fn no_drift_exits_zero() {
    let env = applied();
    let run = env.infra(&[
        "plan",
        "--env",
        "test",
        "--refresh-only",
        "--detailed-exitcode",
    ]);
    run.expect_code(0);
    assert_eq!(
        run.stdout,
        "No changes. The state matches the live objects.\n"
    );
}

#[test]
fn drift_exits_two_and_apply_refresh_only_records_it_without_touching_objects() {
    let env = applied();
    make_drift(&env);
    let run = env.infra(&[
        "plan",
        "--env",
        "test",
        "--refresh-only",
        "--detailed-exitcode",
    ]);
    run.expect_code(2);
    insta::assert_snapshot!(run.stdout);

    let terraform = env.infra(&[
        "plan",
        "--env",
        "test",
        "--refresh-only",
        "--json",
        "--format",
        "terraform",
    ]);
    terraform.expect_code(0);
    let json: Json = serde_json::from_str(&terraform.stdout).expect("JSON");
    assert_eq!(
        json["resource_changes"],
        json!([]),
        "refresh-only changes no object"
    );
    let drift: Vec<(&str, &Json)> = json["resource_drift"]
        .as_array()
        .expect("a list")
        .iter()
        .map(|entry| {
            (
                entry["address"].as_str().unwrap_or_default(),
                &entry["change"]["actions"],
            )
        })
        .collect();
    assert_eq!(
        drift,
        [
            ("secret.a", &json!(["update"])),
            ("secret.b", &json!(["delete"]))
        ]
    );
    assert_eq!(json["applyable"], true);
    let changed = &json["resource_drift"][0]["change"];
    assert_eq!(
        changed["before"]["labels"].get("owner"),
        None,
        "before: the state"
    );
    assert_eq!(
        changed["after"]["labels"]["owner"], "someone",
        "after: the live object"
    );

    let apply = env.infra(&["apply", "--env", "test", "--refresh-only", "--auto-approve"]);
    apply.expect_code(0);
    assert!(
        apply
            .all()
            .contains("1 resource refreshed, 1 forgotten; no object was changed"),
        "{}",
        apply.all()
    );
    env.infra(&[
        "plan",
        "--env",
        "test",
        "--refresh-only",
        "--detailed-exitcode",
    ])
    .expect_code(0);
    let (status, secret) = env.api("GET", &format!("{SECRETS}/A"), None);
    assert_eq!(status, 200);
    assert_eq!(
        secret["labels"]["owner"], "someone",
        "the object was not touched"
    );
    let (status, _) = env.api("GET", &format!("{SECRETS}/B"), None);
    assert_eq!(status, 404, "nothing was re-created");

    // The configuration still asks for what it asked: a normal plan restores both.
    let plan = env.infra(&["plan", "--env", "test", "--detailed-exitcode"]);
    plan.expect_code(2);
    assert!(
        plan.stdout
            .contains("Plan: 1 to add, 1 to change, 0 to destroy."),
        "{}",
        plan.stdout
    );
}

#[test]
fn a_saved_refresh_only_plan_applies_and_goes_stale_like_any_other() {
    let env = applied();
    make_drift(&env);
    env.infra(&[
        "plan",
        "--env",
        "test",
        "--refresh-only",
        "--out",
        "drift.plan",
    ])
    .expect_code(0);
    let shown = env.infra(&["show", "--markdown", "drift.plan"]);
    shown.expect_code(0);
    assert!(
        shown
            .stdout
            .contains("**Refresh-only: 1 to update in the state, 1 to forget.**"),
        "{}",
        shown.stdout
    );
    env.infra(&["apply", "--env", "test", "drift.plan"])
        .expect_code(0);
    let again = env.infra(&["apply", "--env", "test", "drift.plan"]);
    again.expect_code(1);
    assert!(again.stderr.contains("hint:"), "{}", again.all());
    env.infra(&[
        "plan",
        "--env",
        "test",
        "--refresh-only",
        "--detailed-exitcode",
    ])
    .expect_code(0);
}

#[test]
fn refresh_only_refuses_destroy_and_replace() {
    let env = applied();
    let run = env.infra(&[
        "destroy",
        "--env",
        "test",
        "--refresh-only",
        "--auto-approve",
    ]);
    run.expect_code(1);
    assert!(run.stderr.contains("hint:"), "{}", run.all());
    let run = env.infra(&[
        "plan",
        "--env",
        "test",
        "--refresh-only",
        "--replace",
        "secret.a",
    ]);
    assert_ne!(run.code, 0, "{}", run.all());
}
