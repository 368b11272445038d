//! The emulator's realism (docs/emulator.md), on by default for the whole suite: each quirk is
//! shown refusing what Google refuses, and the client is shown surviving it; injected faults
//! (answers lost after commit, 429s) leave an apply that converges with nothing duplicated.

use crate::lost_answers::{census, env_file, expected_census};
use crate::support::TestEnv;
use serde_json::json;

#[test]
fn a_new_service_account_is_refused_in_policies_until_iam_knows_it_and_apply_waits() {
    let env = TestEnv::with_emulator();
    let (status, _) = env.api(
        "POST",
        "v1/projects/proj-test/serviceAccounts",
        Some(json!({"accountId": "fresh-account", "serviceAccount": {"displayName": "Fresh"}})),
    );
    assert_eq!(status, 200);
    let (_, policy) = env.api(
        "POST",
        "v3/projects/proj-test:getIamPolicy",
        Some(json!({})),
    );
    let mut policy = policy;
    policy["bindings"] = json!([{"role": "roles/viewer", "members": ["serviceAccount:fresh-account@proj-test.iam.gserviceaccount.com"]}]);
    let (status, refused) = env.api(
        "POST",
        "v3/projects/proj-test:setIamPolicy",
        Some(json!({"policy": policy})),
    );
    assert_eq!(status, 400, "{refused}");
    assert!(refused.to_string().contains("does not exist"), "{refused}");

    // The client creates an account and grants it at once: it retries until IAM knows it.
    env.write(
        "envs/test/env.toml",
        r#"[env]
name = "test"
project = "proj-test"
region = "us-central1"

[resource.service_account.runner]
account_id = "runner"

[resource.iam_member.runner_views]
parent = "projects/proj-test"
role = "roles/viewer"
member = "serviceAccount:${service_account.runner.email}"
"#,
    );
    env.infra(&["apply", "--env", "test", "--auto-approve"])
        .expect_code(0);
    env.infra(&["plan", "--env", "test", "--detailed-exitcode"])
        .expect_code(0);
}

#[test]
fn promql_naming_an_unseen_metric_is_refused_unless_validation_is_off() {
    let env = TestEnv::with_emulator();
    let policy = |disable: bool| {
        json!({
            "displayName": "errors",
            "combiner": "OR",
            "conditions": [{"displayName": "c", "conditionPrometheusQueryLanguage": {
                "query": "sum(rate(beta_api_errors_total[5m])) > 1",
                "duration": "60s",
                "disableMetricValidation": disable,
            }}],
        })
    };
    let (status, refused) = env.api(
        "POST",
        "v3/projects/proj-test/alertPolicies",
        Some(policy(false)),
    );
    assert_eq!(status, 400, "{refused}");
    assert!(
        refused.to_string().contains("beta_api_errors_total"),
        "{refused}"
    );
    let (status, created) = env.api(
        "POST",
        "v3/projects/proj-test/alertPolicies",
        Some(policy(true)),
    );
    assert_eq!(status, 200, "{created}");
}

#[test]
fn concurrent_monitoring_writes_meet_409_and_the_client_serializes_them() {
    let mut env = TestEnv::empty();
    env.start_emulator_with(&["--latency-ms", "150"]);
    let endpoint = env.endpoint.clone().expect("endpoint");
    // Two writes at once from outside infra: one is refused.
    let writers: Vec<_> = (0..2)
        .map(|index| {
            let endpoint = endpoint.clone();
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                runtime.block_on(async move {
                    reqwest::Client::new()
                        .post(format!("{endpoint}v3/projects/proj-test/notificationChannels"))
                        .json(&json!({"type": "email", "displayName": format!("c{index}"), "labels": {"email_address": "a@example.com"}}))
                        .send()
                        .await
                        .expect("answer")
                        .status()
                        .as_u16()
                })
            })
        })
        .collect();
    let mut statuses: Vec<u16> = writers
        .into_iter()
        .map(|writer| writer.join().expect("writer"))
        .collect();
    statuses.sort();
    assert_eq!(statuses, vec![200, 409]);

    // infra writes many at once (parallelism) and converges.
    let mut config =
        String::from("[env]\nname = \"test\"\nproject = \"proj-test\"\nregion = \"us-central1\"\n");
    for index in 0..6 {
        config.push_str(&format!(
            "\n[resource.notification_channel.c{index}]\ntype = \"email\"\ndisplay_name = \"Channel {index}\"\nlabels = {{ email_address = \"c{index}@example.com\" }}\n"
        ));
    }
    env.write("envs/test/env.toml", &config);
    env.infra(&["apply", "--env", "test", "--auto-approve"])
        .expect_code(0);
    env.infra(&["plan", "--env", "test", "--detailed-exitcode"])
        .expect_code(0);
}

#[test]
fn budgets_refuse_a_user_credential_without_a_quota_project() {
    let env = TestEnv::with_emulator();
    let endpoint = env.endpoint.clone().expect("endpoint");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let status = |quota: Option<&str>| {
        let endpoint = endpoint.clone();
        let quota = quota.map(String::from);
        runtime.block_on(async move {
            let mut request = reqwest::Client::new()
                .get(format!(
                    "{endpoint}v1/billingAccounts/012345-6789AB-CDEF01/budgets"
                ))
                .bearer_auth("user.token");
            if let Some(quota) = quota {
                request = request.header("x-goog-user-project", quota);
            }
            request.send().await.expect("answer").status().as_u16()
        })
    };
    assert_eq!(status(None), 403);
    assert_eq!(status(Some("quota-project")), 200);
}

/// Applies `env_file` on an emulator that loses the answers of a share of creates (and
/// throttles some), picked by seed: the apply converges with nothing duplicated.
fn apply_with_faults(seed: u64) {
    let mut env = TestEnv::empty();
    let seed = seed.to_string();
    env.start_emulator_with(&[
        "--lose-answer-rate",
        "0.3",
        "--throttle-rate",
        "0.1",
        "--fault-seed",
        &seed,
        // Creates only: the census below reads the same emulator.
        "--fault-only",
        "POST ",
    ]);
    env.write("envs/test/env.toml", &env_file());
    let apply = env.infra(&[
        "apply",
        "--env",
        "test",
        "--auto-approve",
        "--log-level",
        "info",
    ]);
    apply.expect_code(0);
    // Proof that answers were lost: the client said so while resolving them.
    assert!(
        apply.stderr.contains("may have committed")
            || apply.stderr.contains("before writing again"),
        "seed {seed}: no answer was lost, so this trial proves nothing\n{}",
        apply.all()
    );
    assert_eq!(census(&env), expected_census(), "seed {seed}");
    env.infra(&["plan", "--env", "test", "--detailed-exitcode"])
        .expect_code(0);
}

#[test]
fn lost_answers_and_429s_by_seed_leave_nothing_duplicated() {
    for seed in [1, 2, 3] {
        apply_with_faults(seed);
    }
}

#[test]
fn a_revision_started_right_after_its_secret_grant_is_refused_and_rolled_out_again() {
    let mut env = TestEnv::empty();
    env.start_emulator_with(&["--iam-propagation-ms", "2500"]);
    env.write(
        "envs/test/env.toml",
        r#"[env]
name = "test"
project = "proj-test"
region = "us-central1"

[resource.service_account.runtime]
account_id = "runtime-account"

[resource.secret.token]
secret_id = "TOKEN"
value = "not-a-real-token"

[resource.iam_member.runtime_reads_token]
parent = "${secret.token.name}"
role = "roles/secretmanager.secretAccessor"
member = "serviceAccount:${service_account.runtime.email}"

[resource.cloud_run_service.api]
name = "api"
image = "img:1"
deletion_protection = false
service_account = "${service_account.runtime.email}"
secret_env = { TOKEN = "${secret.token.name}" }
depends_on = ["iam_member.runtime_reads_token"]
"#,
    );
    let apply = env.infra(&[
        "apply",
        "--env",
        "test",
        "--auto-approve",
        "--log-level",
        "info",
    ]);
    apply.expect_code(0);
    assert!(
        apply.stderr.contains("Permission denied on secret"),
        "the revision was never refused, so the test proves nothing:\n{}",
        apply.all()
    );
    env.infra(&["plan", "--env", "test", "--detailed-exitcode"])
        .expect_code(0);
}
