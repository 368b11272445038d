//! The bundled environments: envs/local end to end on its embedded emulator, envs/emulated on
//! a standalone one (both with the emulator's realism on); the cloud environments validate,
//! and need Google credentials to plan.

use crate::support::{TestEnv, count_actions};

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

#[test]
fn emulated_applies_from_empty_with_realism_on_and_then_plans_clean() {
    let mut env = TestEnv::bundled();
    // A wider propagation window than the default: the grants to the new runtime account
    // are refused for a while, as on Google, and the apply waits them out.
    env.start_emulator_with(&["--iam-propagation-ms", "3000", "--latency-ms", "5"]);
    env.infra(&["apply", "--env", "emulated", "--auto-approve"])
        .expect_code(0);
    env.infra(&["plan", "--env", "emulated", "--detailed-exitcode"])
        .expect_code(0);
    let (_, budgets) = env.api(
        "GET",
        "v1/billingAccounts/012345-6789AB-CDEF01/budgets",
        None,
    );
    assert_eq!(
        budgets["budgets"].as_array().map(Vec::len),
        Some(1),
        "{budgets}"
    );
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
