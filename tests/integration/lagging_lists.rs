//! Lists that lag a create (on by default): an object just created is missing from list
//! answers for `--list-lag-ms`, so a create whose answer was lost cannot be looked up with one
//! list. The client polls the list over its window (`INFRA_LIST_LAG`) before it believes the
//! object absent: budgets, alert policies and notification channels are each made once; a
//! create Google refuses leaves no pending record for later runs to wait on. Also here:
//! budgets in the billing account's currency.

use crate::lost_answers::{FaultProxy, Loss, Rule};
use crate::support::TestEnv;
use serde_json::json;

const BILLING: &str = "012345-6789AB-CDEF01";

/// Counts the objects of a collection the emulator holds (lists without their lag).
fn count(env: &TestEnv, path: &str, field: &str) -> usize {
    let (status, page) = env.api("GET", path, None);
    assert_eq!(status, 200, "GET {path}: {page}");
    page[field].as_array().map_or(0, Vec::len)
}

const MONITORING_ENV: &str = r#"[env]
name = "test"
project = "proj-test"
region = "us-central1"

[resource.notification_channel.finance]
type = "email"
display_name = "Finance"
labels = { email_address = "finance@example.com" }

[resource.alert_policy.errors]
display_name = "Error rate"
combiner = "OR"
notification_channels = ["${notification_channel.finance.name}"]
conditions = [{ displayName = "errors", conditionPrometheusQueryLanguage = { query = "sum(rate(beta_api_errors_total[5m])) > 1", duration = "60s", evaluationInterval = "60s", disableMetricValidation = true } }]
"#;

fn budget_env(extra: &str) -> String {
    format!(
        r#"[env]
name = "test"
project = "proj-test"
region = "us-central1"

[resource.budget.monthly]
billing_account = "{BILLING}"
display_name = "Test monthly"
amount = 500
projects = ["projects/123456789012"]
threshold_rules = [{{ percent = 0.5 }}]
{extra}
"#
    )
}

/// Applies `env_file` through a proxy that loses the answer of the first `POST path`, with
/// `extra_env` set for infra; returns the apply's output and the project.
fn apply_losing(
    env_file: &str,
    path: &'static str,
    extra_env: &[(&str, &str)],
) -> (TestEnv, crate::support::Run) {
    let mut env = TestEnv::with_emulator();
    for (key, value) in extra_env {
        env.extra_env.push((key.to_string(), value.to_string()));
    }
    env.write("envs/test/env.toml", env_file);
    let proxy = FaultProxy::start(
        env.endpoint.as_deref().expect("emulator"),
        Rule {
            method: "POST",
            path,
            body: "",
            loss: Loss::BadGateway,
        },
    );
    let apply = env.infra_at(
        Some(&proxy.endpoint),
        &[
            "apply",
            "--env",
            "test",
            "--auto-approve",
            "--log-level",
            "info",
        ],
    );
    assert_eq!(proxy.lost(), 1, "no answer was lost\n{}", apply.all());
    (env, apply)
}

#[test]
fn a_new_object_is_missing_from_lists_until_the_lag_has_passed() {
    let env = TestEnv::with_emulator();
    let path = "v3/projects/proj-test/alertPolicies";
    let (status, created) = env.api(
        "POST",
        path,
        Some(json!({"displayName": "x", "combiner": "OR", "conditions": [{"displayName": "c", "conditionThreshold": {"filter": "metric.type=\"run.googleapis.com/request_count\" AND resource.type=\"cloud_run_revision\"", "comparison": "COMPARISON_GT", "duration": "60s"}}]})),
    );
    assert_eq!(status, 200, "{created}");
    assert!(
        env.list_as_infra_sees(path, "alertPolicies").is_empty(),
        "a policy created just now is listed at once"
    );
    // A read by name is not a list: it shows the policy.
    let name = created["name"].as_str().expect("name");
    assert_eq!(env.api("GET", &format!("v3/{name}"), None).0, 200);
    assert_eq!(count(&env, path, "alertPolicies"), 1);
    std::thread::sleep(std::time::Duration::from_millis(2300));
    assert_eq!(env.list_as_infra_sees(path, "alertPolicies").len(), 1);
}

#[test]
fn a_lost_budget_create_with_a_lagging_list_makes_one_budget() {
    let path = format!("v1/billingAccounts/{BILLING}/budgets");
    let (env, apply) = apply_losing(&budget_env(""), "/budgets", &[]);
    apply.expect_code(0);
    assert!(
        apply.stderr.contains("the create had committed"),
        "{}",
        apply.all()
    );
    assert_eq!(count(&env, &path, "budgets"), 1, "{}", apply.all());
    env.infra(&["plan", "--env", "test", "--detailed-exitcode"])
        .expect_code(0);
    // Without the wait (one look at the list), the lag makes a second budget: the handling
    // above is what prevents it.
    let (blind, apply) = apply_losing(&budget_env(""), "/budgets", &[("INFRA_LIST_LAG", "0s")]);
    apply.expect_code(0);
    assert_eq!(count(&blind, &path, "budgets"), 2, "{}", apply.all());
}

#[test]
fn a_lost_alert_policy_create_with_a_lagging_list_makes_one_policy() {
    let (env, apply) = apply_losing(MONITORING_ENV, "/alertPolicies", &[]);
    apply.expect_code(0);
    assert_eq!(
        count(&env, "v3/projects/proj-test/alertPolicies", "alertPolicies"),
        1,
        "{}",
        apply.all()
    );
    env.infra(&["plan", "--env", "test", "--detailed-exitcode"])
        .expect_code(0);
}

#[test]
fn a_lost_channel_create_with_a_lagging_list_makes_one_channel() {
    let path = "v3/projects/proj-test/notificationChannels";
    let (env, apply) = apply_losing(MONITORING_ENV, "/notificationChannels", &[]);
    apply.expect_code(0);
    assert_eq!(
        count(&env, path, "notificationChannels"),
        1,
        "{}",
        apply.all()
    );
    env.infra(&["plan", "--env", "test", "--detailed-exitcode"])
        .expect_code(0);
    let (blind, apply) = apply_losing(
        MONITORING_ENV,
        "/notificationChannels",
        &[("INFRA_LIST_LAG", "0s")],
    );
    apply.expect_code(0);
    assert_eq!(
        count(&blind, path, "notificationChannels"),
        2,
        "{}",
        apply.all()
    );
}

/// Kills an apply once its alert policy create has committed (its answer never comes), then
/// applies `rerun` at once, within the list lag, with `extra_env` set; returns the project.
fn kill_after_the_policy_create_and_rerun(rerun: &str, extra_env: &[(&str, &str)]) -> TestEnv {
    let mut env = TestEnv::with_emulator();
    for (key, value) in extra_env {
        env.extra_env.push((key.to_string(), value.to_string()));
    }
    env.write("envs/test/env.toml", MONITORING_ENV);
    let proxy = FaultProxy::start(
        env.endpoint.as_deref().expect("emulator"),
        Rule {
            method: "POST",
            path: "/alertPolicies",
            body: "",
            loss: Loss::Stall,
        },
    );
    let mut child = env
        .command_at(
            Some(&proxy.endpoint),
            &["apply", "--env", "test", "--auto-approve"],
        )
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while proxy.lost() == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the policy create never came"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().expect("kill -9");
    child.wait().expect("reaped");
    env.write("envs/test/env.toml", rerun);
    env.infra(&["apply", "--env", "test", "--auto-approve"])
        .expect_code(0);
    env
}

#[test]
fn a_run_killed_after_a_policy_create_and_rerun_at_once_makes_one_policy() {
    let path = "v3/projects/proj-test/alertPolicies";
    let env = kill_after_the_policy_create_and_rerun(MONITORING_ENV, &[]);
    assert_eq!(count(&env, path, "alertPolicies"), 1);
    let state = env.infra(&["state", "pull", "--env", "test"]);
    assert!(
        !state.stdout.contains("\"creating\""),
        "an intent record is left\n{}",
        state.stdout
    );
    env.infra(&["plan", "--env", "test", "--detailed-exitcode"])
        .expect_code(0);
    // One look at the lagging list instead of the wait: the rerun makes a second policy.
    let blind = kill_after_the_policy_create_and_rerun(MONITORING_ENV, &[("INFRA_LIST_LAG", "0s")]);
    assert_eq!(count(&blind, path, "alertPolicies"), 2);
}

#[test]
fn a_policy_an_interrupted_create_made_is_deleted_when_it_leaves_the_configuration() {
    let without_policy = &MONITORING_ENV[..MONITORING_ENV
        .find("[resource.alert_policy.errors]")
        .expect("the policy block")];
    let env = kill_after_the_policy_create_and_rerun(without_policy, &[]);
    assert_eq!(
        count(&env, "v3/projects/proj-test/alertPolicies", "alertPolicies"),
        0,
        "the interrupted create's policy is left behind"
    );
    env.infra(&["plan", "--env", "test", "--detailed-exitcode"])
        .expect_code(0);
}

/// An alert policy alone, its condition's duration `duration`.
fn policy_env(duration: &str) -> String {
    format!(
        r#"[env]
name = "test"
project = "proj-test"
region = "us-central1"

[resource.alert_policy.errors]
display_name = "Error rate"
combiner = "OR"
conditions = [{{ displayName = "errors", conditionThreshold = {{ filter = 'metric.type="run.googleapis.com/request_count" AND resource.type="cloud_run_revision"', comparison = "COMPARISON_GT", duration = "{duration}" }} }}]
"#
    )
}

#[test]
fn a_create_google_refuses_leaves_no_pending_record_to_wait_on() {
    let mut env = TestEnv::with_emulator();
    env.extra_env
        .push(("INFRA_LIST_LAG".to_string(), "30s".to_string()));
    // Monitoring takes a threshold's duration in whole minutes: a 400, and nothing made.
    env.write("envs/test/env.toml", &policy_env("90s"));
    let refused = env.infra(&["apply", "--env", "test", "--auto-approve"]);
    refused.expect_code(1);
    assert!(
        refused.stderr.contains("must be a multiple of 60s"),
        "{}",
        refused.all()
    );
    let state = env.infra(&["state", "pull", "--env", "test"]);
    assert!(
        !state.stdout.contains("pending-create/"),
        "the refused create left its pending record\n{}",
        state.stdout
    );
    // Fixed, the next run creates at once: no list to watch for an object that cannot exist.
    env.write("envs/test/env.toml", &policy_env("60s"));
    let started = std::time::Instant::now();
    let apply = env.infra(&["apply", "--env", "test", "--auto-approve"]);
    apply.expect_code(0);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "waited {:?}\n{}",
        started.elapsed(),
        apply.all()
    );
    assert_eq!(
        count(&env, "v3/projects/proj-test/alertPolicies", "alertPolicies"),
        1
    );
}

/// A project on an emulator whose billing account bills in euros.
fn euro_account(env_file: &str) -> TestEnv {
    let mut env = TestEnv::empty();
    env.start_emulator_with(&["--billing-account-currency", &format!("{BILLING}=EUR")]);
    env.write("envs/test/env.toml", env_file);
    env
}

#[test]
fn a_budget_without_a_currency_takes_the_billing_accounts_and_shows_no_change() {
    let env = euro_account(&budget_env(""));
    env.infra(&["apply", "--env", "test", "--auto-approve"])
        .expect_code(0);
    let (_, page) = env.api(
        "GET",
        &format!("v1/billingAccounts/{BILLING}/budgets"),
        None,
    );
    assert_eq!(
        page["budgets"][0]["amount"]["specifiedAmount"]["currencyCode"], "EUR",
        "{page}"
    );
    env.infra(&["plan", "--env", "test", "--detailed-exitcode"])
        .expect_code(0);
}

#[test]
fn a_budget_in_another_currency_than_the_accounts_is_refused_with_a_hint() {
    let env = euro_account(&budget_env("currency = \"USD\""));
    let apply = env.infra(&["apply", "--env", "test", "--auto-approve"]);
    apply.expect_code(1);
    assert!(
        apply
            .stderr
            .contains("does not match the billing account currency code EUR")
            && apply.stderr.contains("hint: leave `currency` out"),
        "{}",
        apply.all()
    );
}
