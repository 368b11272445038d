//! The bundled environments: envs/local end to end on its embedded emulator, envs/emulated on
//! a standalone one (both with the emulator's realism on); the cloud environments validate,
//! and need Google credentials to plan.

use crate::lost_answers::{FaultProxy, Loss, Rule};
use crate::support::{TestEnv, count_actions};
use serde_json::Value as Json;

#[test]
fn local_plan_apply_plan_converges() {
    let env = TestEnv::bundled();
    let plan = env.infra(&["plan", "--env", "local", "--detailed-exitcode"]);
    plan.expect_code(2);
    assert_eq!(
        count_actions(&plan.stdout, "secret", "will be created"),
        19,
        "16 Beta 500 secrets and 3 stand-in channel credentials: {}",
        plan.stdout
    );
    for (kind, count) in [
        ("monitoring_dashboard", 3),
        ("notification_channel", 6),
        ("alert_policy", 9),
        ("budget", 1),
    ] {
        assert_eq!(
            count_actions(&plan.stdout, kind, "will be created"),
            count,
            "{kind}: {}",
            plan.stdout
        );
    }
    let accessors = plan
        .stdout
        .lines()
        .filter(|line| {
            line.starts_with("  # module.beta_secrets.iam_member.")
                && line.ends_with("will be created")
        })
        .count();
    assert_eq!(accessors, 16, "{}", plan.stdout);
    assert_eq!(
        count_actions(&plan.stdout, "service_account", "will be created"),
        1
    );
    assert_eq!(
        count_actions(&plan.stdout, "cloud_run_service", "will be created"),
        1
    );
    assert_eq!(
        count_actions(&plan.stdout, "iam_member", "will be created"),
        18,
        "16 accessors and 2 project roles: {}",
        plan.stdout
    );
    assert!(
        plan.stdout
            .contains("Plan: 58 to add, 0 to change, 0 to destroy."),
        "{}",
        plan.stdout
    );

    let apply = env.infra(&["apply", "--env", "local", "--auto-approve"]);
    apply.expect_code(0);
    assert!(
        apply
            .stdout
            .contains("Apply complete! Resources: 58 added, 0 changed, 0 destroyed."),
        "{}",
        apply.all()
    );

    let again = env.infra(&["plan", "--env", "local", "--detailed-exitcode"]);
    again.expect_code(0);
    assert!(again.stdout.contains("No changes."), "{}", again.all());

    let outputs = env.infra(&["output", "--env", "local", "--json"]);
    outputs.expect_code(0);
    let parsed: serde_json::Value = serde_json::from_str(&outputs.stdout).expect("json");
    assert_eq!(
        parsed["module.beta_secrets.secret_names"]["value"]
            .as_array()
            .map(Vec::len),
        Some(15)
    );
}

/// The bundled envs/emulated project's ids in the emulator.
const EMULATED_PROJECT: &str = "bayit-emulated";
const EMULATED_BILLING_ACCOUNT: &str = "012345-6789AB-CDEF01";

/// Returns the items of a list answer (read consistently: the test counts what exists).
fn listed(env: &TestEnv, path: &str, field: &str) -> Vec<Json> {
    let (status, page) = env.api("GET", &format!("{path}?pageSize=1000"), None);
    assert_eq!(status, 200, "GET {path}: {page}");
    page[field].as_array().cloned().unwrap_or_default()
}

/// Returns how many objects of each kind exist in the emulator and how many state records,
/// so that a duplicate (more live than recorded) or an orphan (live, never recorded) shows as
/// a difference; the fingerprint key is infra's own secret, outside the state.
fn live_and_recorded(env: &TestEnv) -> Vec<(&'static str, usize, usize)> {
    let project = EMULATED_PROJECT;
    let list = env.infra(&["state", "list", "--env", "emulated"]);
    list.expect_code(0);
    let recorded = |kind: &str| {
        list.stdout
            .lines()
            .filter(|address| {
                address.starts_with(&format!("{kind}.")) || address.contains(&format!(".{kind}."))
            })
            .count()
    };
    let secrets: Vec<Json> = listed(env, &format!("v1/projects/{project}/secrets"), "secrets")
        .into_iter()
        .filter(|secret| {
            !secret["name"]
                .as_str()
                .unwrap_or_default()
                .contains("/secrets/infra-fingerprint-key")
        })
        .collect();
    vec![
        ("secret", secrets.len(), recorded("secret")),
        (
            "service_account",
            listed(
                env,
                &format!("v1/projects/{project}/serviceAccounts"),
                "accounts",
            )
            .len(),
            recorded("service_account"),
        ),
        (
            "cloud_run_service",
            listed(
                env,
                &format!("v2/projects/{project}/locations/us-central1/services"),
                "services",
            )
            .len(),
            recorded("cloud_run_service"),
        ),
        (
            "monitoring_dashboard",
            listed(
                env,
                &format!("v1/projects/{project}/dashboards"),
                "dashboards",
            )
            .len(),
            recorded("monitoring_dashboard"),
        ),
        (
            "notification_channel",
            listed(
                env,
                &format!("v3/projects/{project}/notificationChannels"),
                "notificationChannels",
            )
            .len(),
            recorded("notification_channel"),
        ),
        (
            "alert_policy",
            listed(
                env,
                &format!("v3/projects/{project}/alertPolicies"),
                "alertPolicies",
            )
            .len(),
            recorded("alert_policy"),
        ),
        (
            "budget",
            listed(
                env,
                &format!("v1/billingAccounts/{EMULATED_BILLING_ACCOUNT}/budgets"),
                "budgets",
            )
            .len(),
            recorded("budget"),
        ),
    ]
}

/// Asserts what the acceptance asks of an apply of envs/emulated: as many live objects
/// of each kind as state records (no duplicate, no orphan), one enabled version per secret
/// (read by number: the versions list lags), no lock left, and a next plan with no changes.
fn assert_emulated_converged(env: &TestEnv, context: &str) {
    for (kind, live, recorded) in live_and_recorded(env) {
        assert!(recorded > 0, "{context}: no {kind} in the state");
        assert_eq!(
            live, recorded,
            "{context}: {kind}: live objects against state records"
        );
    }
    for secret in listed(
        env,
        &format!("v1/projects/{EMULATED_PROJECT}/secrets"),
        "secrets",
    ) {
        let name = format!("v1/{}", secret["name"].as_str().expect("name"));
        let enabled = (1..=env.count_versions(&name))
            .filter(|number| {
                env.api("GET", &format!("{name}/versions/{number}"), None).1["state"] == "ENABLED"
            })
            .count();
        assert_eq!(enabled, 1, "{context}: enabled versions of {name}");
    }
    let (lock, _) = env.api(
        "GET",
        "storage/v1/b/bayit-emulated-tf-state/o/infra%2Femulated.lock",
        None,
    );
    assert_eq!(lock, 404, "{context}: the lock was left behind");
    env.infra(&["plan", "--env", "emulated", "--detailed-exitcode"])
        .expect_code(0);
}

#[test]
fn emulated_applies_from_empty_with_realism_on_and_then_plans_clean() {
    let mut env = TestEnv::bundled();
    // Every quirk at its default (lagging lists, `latest` and IAM reads, new accounts
    // answering 403, one write a second per state object, quotas), and a wider propagation
    // window than the default: the grants to the new runtime account are refused for a
    // while, as on Google, and the apply waits them out.
    env.start_emulator_with(&["--iam-propagation-ms", "3000", "--latency-ms", "5"]);
    env.infra(&["apply", "--env", "emulated", "--auto-approve"])
        .expect_code(0);
    assert_emulated_converged(&env, "clean apply");
}

#[test]
fn emulated_converges_when_a_create_answer_is_lost_while_lists_lag() {
    let mut env = TestEnv::bundled();
    env.start_emulator_with(&["--latency-ms", "5"]);
    // An alert policy's name is Google's to choose: only a lagging list can find it again.
    let proxy = FaultProxy::start(
        env.endpoint.as_deref().expect("emulator"),
        Rule {
            method: "POST",
            path: "/alertPolicies",
            body: "",
            loss: Loss::CutBody,
        },
    );
    let apply = env.infra_at(
        Some(&proxy.endpoint),
        &["apply", "--env", "emulated", "--auto-approve"],
    );
    assert_eq!(
        proxy.lost(),
        1,
        "no alert policy create was lost\n{}",
        apply.all()
    );
    apply.expect_code(0);
    assert_emulated_converged(&env, "an alert policy create's answer lost");
}

#[test]
fn the_environment_defaults_to_local() {
    let env = TestEnv::bundled();
    env.infra(&["validate"]).expect_code(0);
    let plan = env.infra(&["plan", "--detailed-exitcode"]);
    plan.expect_code(2);
    assert!(plan.stderr.contains("`local`"), "{}", plan.all());
}

#[test]
fn cloud_environments_validate_and_need_credentials_to_plan() {
    let mut env = TestEnv::bundled();
    // Not in BETA500.md, so the environments take them from the environment.
    env.extra_env.push((
        "INFRA_VAR_billing_account".into(),
        "0A1B2C-3D4E5F-6A7B8C".into(),
    ));
    env.extra_env
        .push(("INFRA_VAR_project_number".into(), "123456789012".into()));
    for name in ["dev", "staging", "prod"] {
        env.infra(&["validate", "--env", name]).expect_code(0);
        let plan = env.infra(&["plan", "--env", name]);
        plan.expect_code(1);
        assert!(plan.stderr.contains("credentials:"), "{}", plan.all());
        assert!(
            plan.stderr
                .contains("hint: run `gcloud auth application-default login`"),
            "{}",
            plan.all()
        );
    }
}

#[test]
fn apply_without_a_terminal_asks_for_auto_approve() {
    let env = TestEnv::bundled();
    let apply = env.infra(&["apply", "--env", "local"]);
    apply.expect_code(1);
    assert!(apply.stderr.contains("--auto-approve"), "{}", apply.all());
    assert!(
        !env.root.path().join("state/local.state.json").exists(),
        "nothing written"
    );
}

#[test]
fn an_unknown_environment_lists_the_known_ones() {
    let env = TestEnv::bundled();
    let run = env.infra(&["plan", "--env", "qa"]);
    run.expect_code(1);
    assert!(
        run.stderr.contains("environment `qa` not found"),
        "{}",
        run.all()
    );
    assert!(
        run.stderr.contains("dev, emulated, local, prod, staging"),
        "{}",
        run.all()
    );
}

#[test]
fn cloud_environments_name_what_they_are_missing() {
    let env = TestEnv::bundled();
    let run = env.infra(&["validate", "--env", "prod"]);
    run.expect_code(1);
    assert!(
        run.stderr
            .contains("pass it with INFRA_VAR_billing_account"),
        "{}",
        run.all()
    );
    assert!(
        run.stderr.contains("budgets filter projects by number"),
        "{}",
        run.all()
    );
    assert!(
        run.stderr.contains("2 configuration errors"),
        "no cascade of follow-on errors: {}",
        run.all()
    );
}
