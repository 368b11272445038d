//! Google's front-end refusals, on by default in the emulator: per-project request quotas
//! (429 `RATE_LIMIT_EXCEEDED`, no `Retry-After`) that apply waits out as Google advises, and
//! APIs disabled in a project (403 `SERVICE_DISABLED`) that infra explains with the command
//! enabling them.

use crate::support::TestEnv;
use serde_json::Value as Json;

/// An environment of `count` secrets with values: two Secret Manager writes each (create,
/// addVersion), plus the fingerprint key's.
fn secrets_env(count: usize) -> String {
    let mut text =
        String::from("[env]\nname = \"test\"\nproject = \"proj-test\"\nregion = \"us-central1\"\n");
    for index in 0..count {
        text.push_str(&format!(
            "\n[resource.secret.s{index}]\nsecret_id = \"SECRET_{index}\"\nvalue = \"value-{index}\"\n"
        ));
    }
    text
}

/// Returns the emulator's count of one quota bucket of proj-test.
fn bucket(env: &TestEnv, metric: &str) -> Json {
    let (status, quotas) = env.api("GET", "_emulator/quotas", None);
    assert_eq!(status, 200, "{quotas}");
    quotas["quotas"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|bucket| bucket["quotaMetric"] == metric)
        .cloned()
        .unwrap_or(Json::Null)
}

#[test]
fn a_quota_429_burst_is_waited_out_and_apply_converges() {
    let mut env = TestEnv::empty();
    // One Secret Manager write per second for the project: twenty-odd writes take twenty-odd
    // seconds, longer than the quick 429 retries (~12 s in all) that gave up before.
    env.start_emulator_with(&[
        "--quota-window-ms",
        "1000",
        "--quota-override",
        "proj-test:secretmanager.googleapis.com/write_requests=1",
    ]);
    env.extra_env
        .push(("INFRA_QUOTA_RETRY_MIN".into(), "1s".into()));
    env.write("envs/test/env.toml", &secrets_env(10));
    env.infra(&["apply", "--env", "test", "--auto-approve"])
        .expect_code(0);
    let writes = bucket(&env, "secretmanager.googleapis.com/write_requests");
    assert!(
        writes["refused"].as_u64().unwrap_or_default() > 0,
        "the burst met the quota: {writes}"
    );
    env.infra(&["plan", "--env", "test", "--detailed-exitcode"])
        .expect_code(0);
    let (_, listed) = env.api("GET", "v1/projects/proj-test/secrets?pageSize=100", None);
    let secrets = listed["secrets"].as_array().map_or(0, Vec::len);
    // Ten secrets and the fingerprint key, none twice.
    assert_eq!(secrets, 11, "{listed}");
}

#[test]
fn a_quota_429_is_googles_envelope_without_retry_after() {
    let mut env = TestEnv::empty();
    env.start_emulator_with(&[
        "--quota-window-ms",
        "60000",
        "--quota-override",
        "proj-test:iam.googleapis.com/read_requests=1",
    ]);
    let (status, _) = env.api("GET", "v1/projects/proj-test/serviceAccounts", None);
    assert_eq!(status, 200);
    let endpoint = env.endpoint.clone().expect("endpoint");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (code, retry_after, body) = runtime.block_on(async move {
        let response = reqwest::get(format!("{endpoint}v1/projects/proj-test/serviceAccounts"))
            .await
            .expect("answer");
        let code = response.status().as_u16();
        let retry_after = response.headers().get("retry-after").cloned();
        let body: Json = response.json().await.expect("json");
        (code, retry_after, body)
    });
    assert_eq!(code, 429, "{body}");
    assert!(retry_after.is_none(), "Google sends no Retry-After");
    let error = &body["error"];
    assert_eq!(error["status"], "RESOURCE_EXHAUSTED");
    let info = &error["details"][0];
    assert_eq!(info["@type"], "type.googleapis.com/google.rpc.ErrorInfo");
    assert_eq!(info["reason"], "RATE_LIMIT_EXCEEDED");
    assert_eq!(info["domain"], "googleapis.com");
    assert_eq!(info["metadata"]["service"], "iam.googleapis.com");
    assert_eq!(
        info["metadata"]["quota_metric"],
        "iam.googleapis.com/read_requests"
    );
    assert_eq!(info["metadata"]["quota_limit_value"], "1");
    assert!(
        info["metadata"]["consumer"]
            .as_str()
            .is_some_and(|consumer| consumer.starts_with("projects/")),
        "{info}"
    );
    assert_eq!(
        error["details"][1]["@type"],
        "type.googleapis.com/google.rpc.Help"
    );
    // The counts are readable, and a control restores the limit.
    let reads = bucket(&env, "iam.googleapis.com/read_requests");
    assert_eq!(reads["admitted"], 1, "{reads}");
    assert_eq!(reads["refused"], 1, "{reads}");
    let (status, _) = env.api(
        "POST",
        "_emulator/quotas",
        Some(serde_json::json!({"project": "proj-test", "quotaMetric": "iam.googleapis.com/read_requests", "limit": null})),
    );
    assert_eq!(status, 200);
    let (status, _) = env.api("GET", "v1/projects/proj-test/serviceAccounts", None);
    assert_eq!(status, 200);
}

#[test]
fn a_disabled_api_is_explained_with_the_command_that_enables_it() {
    let mut env = TestEnv::empty();
    env.start_emulator_with(&[
        "--disable-service",
        "proj-test:secretmanager.googleapis.com",
    ]);
    env.write("envs/test/env.toml", &secrets_env(1));
    let plan = env.infra(&["plan", "--env", "test"]);
    plan.expect_code(1);
    insta::with_settings!({filters => vec![
        (r"http://127\.0\.0\.1:\d+/", "[EMULATOR]/"),
    ]}, {
        insta::assert_snapshot!(plan.stderr.trim_end(), @r"
        Refreshing 0 resources of `test`…
        error: reading the fingerprint key of secret values: GET [EMULATOR]/v1/projects/proj-test/secrets/infra-fingerprint-key-test/versions/latest:access: 403 PERMISSION_DENIED: Secret Manager API has not been used in project 635995613657 before or it is disabled. Enable it by visiting https://console.developers.google.com/apis/api/secretmanager.googleapis.com/overview?project=635995613657 then retry. If you enabled this API recently, wait a few minutes for the action to propagate to our systems and retry.
          hint: secretmanager.googleapis.com is not enabled in project proj-test: run `gcloud services enable secretmanager.googleapis.com --project proj-test`, wait a few minutes for it to propagate, then run again
          hint: `infra validate` prints the one command that enables every API the environment calls
        ");
    });
    // The API is enabled again (`gcloud services enable`): the same plan works.
    let (status, _) = env.api(
        "POST",
        "_emulator/services",
        Some(serde_json::json!({"project": "proj-test", "service": "secretmanager.googleapis.com", "enabled": true})),
    );
    assert_eq!(status, 200);
    env.infra(&["plan", "--env", "test"]).expect_code(0);
    // validate lists what the environment calls, with the command that enables it.
    let validate = env.infra(&["validate", "--env", "test"]);
    validate.expect_code(0);
    assert!(
        validate
            .stderr
            .contains("gcloud services enable secretmanager.googleapis.com --project proj-test"),
        "{}",
        validate.all()
    );
}
