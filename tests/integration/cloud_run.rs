//! Cloud Run services: the emulator's Admin v2 API (long-running operations, defaults,
//! revisions, traffic) and the kind's lifecycle (updates, canaries, replacement under
//! deletion protection, operation errors).

use crate::support::TestEnv;
use serde_json::{Value as Json, json};

const SERVICES: &str = "v2/projects/proj-test/locations/us-central1/services";

fn wait(env: &TestEnv, mut operation: Json) -> Json {
    for _ in 0..100 {
        if operation["done"] == true {
            return operation;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
        let (status, next) = env.api(
            "GET",
            &format!("v2/{}", operation["name"].as_str().expect("operation name")),
            None,
        );
        assert_eq!(status, 200, "{next}");
        operation = next;
    }
    panic!("the operation never finished: {operation}");
}

fn minimal() -> Json {
    json!({"template": {"containers": [{"image": "us-docker.pkg.dev/cloudrun/container/hello"}]}})
}

#[test]
fn create_is_a_long_running_operation_with_defaults_filled_in() {
    let env = TestEnv::with_emulator();
    let (status, operation) = env.api(
        "POST",
        &format!("{SERVICES}?serviceId=api"),
        Some(minimal()),
    );
    assert_eq!(status, 200, "{operation}");
    // proto3 JSON leaves `done: false` out.
    assert!(operation.get("done").is_none(), "{operation}");
    assert_eq!(
        operation["metadata"]["@type"],
        "type.googleapis.com/google.cloud.run.v2.Service"
    );
    let done = wait(&env, operation);
    let service = &done["response"];
    assert_eq!(
        service["@type"],
        "type.googleapis.com/google.cloud.run.v2.Service"
    );
    assert_eq!(service["ingress"], "INGRESS_TRAFFIC_ALL");
    assert_eq!(service["launchStage"], "GA");
    assert_eq!(
        service["traffic"],
        json!([{"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST", "percent": 100}])
    );
    assert_eq!(service["template"]["scaling"]["maxInstanceCount"], 100);
    assert_eq!(service["generation"], "1");
    assert_eq!(service["observedGeneration"], "1");
    // proto3 JSON leaves `reconciling: false` out.
    assert!(service.get("reconciling").is_none(), "{service}");
    assert_eq!(service["terminalCondition"]["state"], "CONDITION_SUCCEEDED");
    let revision = service["latestReadyRevision"]
        .as_str()
        .expect("ready revision");
    let short = revision.rsplit('/').next().expect("short");
    assert!(
        short.starts_with("api-00001-") && short.len() == "api-00001-abc".len(),
        "{short}"
    );
    assert_eq!(
        service["latestCreatedRevision"],
        service["latestReadyRevision"]
    );
    assert!(
        service["uri"]
            .as_str()
            .is_some_and(|uri| uri.starts_with("https://api-")),
        "{service}"
    );
    assert!(
        service["name"]
            .as_str()
            .is_some_and(|name| !name.contains("proj-test")),
        "names carry the project number"
    );
    for field in ["uid", "etag", "createTime", "updateTime", "trafficStatuses"] {
        assert!(!service[field].is_null(), "{field} is populated: {service}");
    }
}

#[test]
fn the_run_api_refuses_what_google_refuses() {
    let env = TestEnv::with_emulator();
    let (status, missing) = env.api("GET", &format!("{SERVICES}/nope"), None);
    assert_eq!(
        (status, missing["error"]["status"].as_str()),
        (404, Some("NOT_FOUND")),
        "{missing}"
    );
    let (_, operation) = env.api(
        "POST",
        &format!("{SERVICES}?serviceId=api"),
        Some(minimal()),
    );
    wait(&env, operation);
    let (status, duplicate) = env.api(
        "POST",
        &format!("{SERVICES}?serviceId=api"),
        Some(minimal()),
    );
    assert_eq!(
        (status, duplicate["error"]["status"].as_str()),
        (409, Some("ALREADY_EXISTS")),
        "{duplicate}"
    );
    let mut unknown = minimal();
    unknown["template"]["containers"][0]["imageUrl"] = json!("x");
    let (status, body) = env.api(
        "POST",
        &format!("{SERVICES}?serviceId=other"),
        Some(unknown),
    );
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("Unknown name \"imageUrl\"")),
        "{body}"
    );
    let mut bad_sum = minimal();
    bad_sum["traffic"] = json!([{"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST", "percent": 90}]);
    let (status, body) = env.api(
        "POST",
        &format!("{SERVICES}?serviceId=other"),
        Some(bad_sum),
    );
    assert_eq!(
        (status, body["error"]["status"].as_str()),
        (400, Some("INVALID_ARGUMENT")),
        "{body}"
    );
    let (status, body) = env.api(
        "POST",
        &format!("{SERVICES}?serviceId=Bad_Name"),
        Some(minimal()),
    );
    assert_eq!(status, 400, "{body}");
    let (status, body) = env.api(
        "PATCH",
        &format!("{SERVICES}/api?updateMask=uri"),
        Some(json!({})),
    );
    assert_eq!(status, 400, "output-only paths are not updatable: {body}");
    let (status, policy) = env.api("GET", &format!("{SERVICES}/api:getIamPolicy"), None);
    assert_eq!(status, 200, "{policy}");
    let (status, _) = env.api("DELETE", &format!("{SERVICES}/api?etag=%22stale%22"), None);
    assert_eq!(status, 409);
}

#[test]
fn a_template_change_makes_a_revision_and_traffic_can_split() {
    let env = TestEnv::with_emulator();
    let (_, operation) = env.api(
        "POST",
        &format!("{SERVICES}?serviceId=api"),
        Some(minimal()),
    );
    let first = wait(&env, operation)["response"]["latestReadyRevision"]
        .as_str()
        .expect("revision")
        .rsplit('/')
        .next()
        .expect("short")
        .to_string();
    let mut second = minimal();
    second["template"]["containers"][0]["image"] =
        json!("us-docker.pkg.dev/cloudrun/container/hello:2");
    let (_, operation) = env.api(
        "PATCH",
        &format!("{SERVICES}/api?updateMask=template"),
        Some(second),
    );
    let service = wait(&env, operation)["response"].clone();
    assert_eq!(service["generation"], "2");
    assert!(
        service["latestReadyRevision"]
            .as_str()
            .is_some_and(|revision| revision.contains("api-00002-")),
        "{service}"
    );
    let split = json!({"traffic": [
        {"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST", "percent": 10, "tag": "canary"},
        {"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION", "revision": first, "percent": 90},
    ]});
    let (status, operation) = env.api(
        "PATCH",
        &format!("{SERVICES}/api?updateMask=traffic"),
        Some(split),
    );
    assert_eq!(status, 200, "{operation}");
    let service = wait(&env, operation)["response"].clone();
    assert_eq!(service["trafficStatuses"][1]["percent"], 90);
    assert!(
        service["trafficStatuses"][0]["uri"]
            .as_str()
            .is_some_and(|uri| uri.starts_with("https://canary---")),
        "{service}"
    );
    assert!(
        service["latestReadyRevision"]
            .as_str()
            .is_some_and(|revision| revision.contains("api-00002-")),
        "traffic alone makes no revision"
    );
    let unknown = json!({"traffic": [{"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION", "revision": "api-00042-zzz", "percent": 100}]});
    let (status, _) = env.api(
        "PATCH",
        &format!("{SERVICES}/api?updateMask=traffic"),
        Some(unknown),
    );
    assert_eq!(status, 400);
}

fn service_env(image: &str, region: &str, protection: bool, traffic: &str) -> String {
    format!(
        r#"[env]
name = "test"
project = "proj-test"
region = "us-central1"

[resource.service_account.runner]
account_id = "api-runner"

[resource.cloud_run_service.api]
name = "api"
region = "{region}"
image = "{image}"
memory = "1Gi"
max_instances = 3
service_account = "${{service_account.runner.email}}"
env = {{ MODE = "test" }}
deletion_protection = {protection}
{traffic}

[output.url]
value = "${{cloud_run_service.api.uri}}"

[output.revision]
value = "${{cloud_run_service.api.latest_ready_revision}}"
"#
    )
}

#[test]
fn image_changes_update_in_place_and_a_canary_is_one_line() {
    let env = TestEnv::with_emulator();
    env.write(
        "envs/test/env.toml",
        &service_env("img:1", "us-central1", true, ""),
    );
    env.infra(&["apply", "--env", "test", "--auto-approve"])
        .expect_code(0);
    env.infra(&["plan", "--env", "test", "--detailed-exitcode"])
        .expect_code(0);
    let first = env
        .infra(&["output", "--env", "test", "revision", "--raw"])
        .stdout
        .trim()
        .to_string();
    assert!(first.starts_with("api-00001-"), "{first}");

    env.write(
        "envs/test/env.toml",
        &service_env("img:2", "us-central1", true, ""),
    );
    let plan = env.infra(&["plan", "--env", "test", "--detailed-exitcode"]);
    plan.expect_code(2);
    assert!(
        plan.stdout
            .contains("cloud_run_service.api will be updated in-place"),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout.contains(r#"~ image = "img:1" -> "img:2""#),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout
            .contains("Plan: 0 to add, 1 to change, 0 to destroy."),
        "{}",
        plan.stdout
    );
    env.infra(&["apply", "--env", "test", "--auto-approve"])
        .expect_code(0);
    let second = env
        .infra(&["output", "--env", "test", "revision", "--raw"])
        .stdout
        .trim()
        .to_string();
    assert!(second.starts_with("api-00002-"), "{second}");
    env.infra(&["plan", "--env", "test", "--detailed-exitcode"])
        .expect_code(0);

    let canary = format!(
        "traffic = [{{ latest = true, percent = 10 }}, {{ revision = \"{first}\", percent = 90 }}]"
    );
    env.write(
        "envs/test/env.toml",
        &service_env("img:2", "us-central1", true, &canary),
    );
    let plan = env.infra(&["plan", "--env", "test", "--detailed-exitcode", "--json"]);
    plan.expect_code(2);
    let parsed: Json = serde_json::from_str(&plan.stdout).expect("json");
    let change = parsed["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .find(|c| c["address"] == "cloud_run_service.api")
        .expect("service");
    assert_eq!(
        (change["action"].as_str(), &change["update_mask"]),
        (Some("update"), &json!(["traffic"])),
        "{change}"
    );
    env.infra(&["apply", "--env", "test", "--auto-approve"])
        .expect_code(0);
    let (_, service) = env.api("GET", &format!("{SERVICES}/api"), None);
    assert_eq!(
        service["trafficStatuses"][1]["revision"],
        json!(first),
        "{service}"
    );
    assert_eq!(service["trafficStatuses"][1]["percent"], 90);
    env.infra(&["plan", "--env", "test", "--detailed-exitcode"])
        .expect_code(0);
}

#[test]
fn changing_the_region_replaces_only_once_deletion_protection_is_off() {
    let env = TestEnv::with_emulator();
    env.write(
        "envs/test/env.toml",
        &service_env("img:1", "us-central1", true, ""),
    );
    env.infra(&["apply", "--env", "test", "--auto-approve"])
        .expect_code(0);

    env.write(
        "envs/test/env.toml",
        &service_env("img:1", "us-east1", true, ""),
    );
    let plan = env.infra(&["plan", "--env", "test", "--detailed-exitcode"]);
    plan.expect_code(2);
    assert!(
        plan.stdout.contains("-/+ cloud_run_service.api"),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout
            .contains(r#"~ region = "us-central1" -> "us-east1" # forces replacement"#),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout
            .contains("deletion_protection is on: apply will refuse"),
        "{}",
        plan.stdout
    );
    let refused = env.infra(&["apply", "--env", "test", "--auto-approve"]);
    refused.expect_code(1);
    assert!(
        refused
            .stderr
            .contains("cloud_run_service.api has deletion_protection on"),
        "{}",
        refused.all()
    );
    assert!(
        refused
            .stderr
            .contains("hint: set deletion_protection = false, run `infra apply`"),
        "{}",
        refused.all()
    );
    let (status, _) = env.api("GET", &format!("{SERVICES}/api"), None);
    assert_eq!(status, 200, "the service is still there");

    env.write(
        "envs/test/env.toml",
        &service_env("img:1", "us-central1", false, ""),
    );
    let unprotect = env.infra(&["apply", "--env", "test", "--auto-approve"]);
    unprotect.expect_code(0);
    assert!(
        unprotect
            .stdout
            .contains("~ deletion_protection = true -> false"),
        "{}",
        unprotect.all()
    );
    env.write(
        "envs/test/env.toml",
        &service_env("img:1", "us-east1", false, ""),
    );
    env.infra(&["apply", "--env", "test", "--auto-approve"])
        .expect_code(0);
    let (status, _) = env.api("GET", &format!("{SERVICES}/api"), None);
    assert_eq!(status, 404, "the old region's service is gone");
    let (status, _) = env.api(
        "GET",
        "v2/projects/proj-test/locations/us-east1/services/api",
        None,
    );
    assert_eq!(status, 200);
    env.infra(&["plan", "--env", "test", "--detailed-exitcode"])
        .expect_code(0);
    env.infra(&["destroy", "--env", "test", "--auto-approve"])
        .expect_code(0);
}

#[test]
fn a_failed_operation_is_reported_with_its_error() {
    let env = TestEnv::with_emulator();
    env.write(
        "envs/test/env.toml",
        "[env]\nname = \"test\"\nproject = \"proj-test\"\nregion = \"us-central1\"\n\n[resource.cloud_run_service.api]\nname = \"api\"\nimage = \"img:1\"\ndeletion_protection = false\nsecret_env = { TOKEN = \"projects/proj-test/secrets/MISSING\" }\n",
    );
    let apply = env.infra(&["apply", "--env", "test", "--auto-approve"]);
    apply.expect_code(1);
    assert!(
        apply
            .stderr
            .contains("cloud_run_service.api: operation projects/"),
        "{}",
        apply.all()
    );
    assert!(
        apply
            .stderr
            // Cloud Run names a secret of the service's own project by its short name.
            .contains("Secret MISSING was not found"),
        "{}",
        apply.all()
    );
}

#[test]
fn secrets_as_environment_and_public_access_in_the_bundled_module() {
    let env = TestEnv::bundled();
    env.infra(&["apply", "--env", "local", "--auto-approve"])
        .expect_code(0);
    let state: Json = serde_json::from_str(&env.read("state/local.state.json")).expect("state");
    let service = state["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .find(|r| r["kind"] == "cloud_run_service")
        .expect("service");
    let secret_env = service["attributes"]["secret_env"]
        .as_object()
        .expect("secret_env");
    assert_eq!(secret_env.len(), 16, "all 16 secrets are wired");
    // Pinned to the version state records: `latest` lags an add.
    assert_eq!(secret_env["EMAIL_VERIFICATION_SECRET_KEY"]["version"], "1");
    assert_eq!(
        service["attributes"]["service_account"],
        "bayit-plus-backend@bayit-local.iam.gserviceaccount.com"
    );
    let text = env.read("envs/local/env.toml").replace(
        "deletion_protection = false",
        "deletion_protection = false\nallow_unauthenticated = true",
    );
    env.write("envs/local/env.toml", &text);
    let plan = env.infra(&["plan", "--env", "local", "--detailed-exitcode"]);
    plan.expect_code(2);
    assert!(
        plan.stdout
            .contains(r#"module.backend.iam_member.public_invoker["us-central1"] will be created"#),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout
            .contains("Plan: 1 to add, 0 to change, 0 to destroy."),
        "{}",
        plan.stdout
    );
    env.infra(&["apply", "--env", "local", "--auto-approve"])
        .expect_code(0);
    env.infra(&["plan", "--env", "local", "--detailed-exitcode"])
        .expect_code(0);
}

#[test]
fn a_service_of_another_environment_is_not_taken_over() {
    let env = TestEnv::with_emulator();
    env.write(
        "envs/test/env.toml",
        &service_env("img:1", "us-central1", true, ""),
    );
    env.infra(&["apply", "--env", "test", "--auto-approve"])
        .expect_code(0);
    let path = "v2/projects/proj-test/locations/us-central1/services/api";
    let (_, before) = env.api("GET", path, None);
    assert_eq!(before["labels"]["infra-env"], "test", "{before}");
    env.write(
        "envs/other/env.toml",
        "[env]\nname = \"other\"\nproject = \"proj-test\"\nregion = \"us-central1\"\n\n[resource.cloud_run_service.api]\nname = \"api\"\nimage = \"img:9\"\n",
    );
    let apply = env.infra(&["apply", "--env", "other", "--auto-approve"]);
    apply.expect_code(1);
    assert!(
        apply.stderr.contains(
            "cloud_run_service.api: projects/proj-test/locations/us-central1/services/api already exists and is owned by environment `test`, state lineage "
        ),
        "{}",
        apply.all()
    );
    assert!(
        apply.stderr.contains("hint: if this environment should manage it: `infra import --env other 'cloud_run_service.api' projects/proj-test/locations/us-central1/services/api`"),
        "{}",
        apply.all()
    );
    let (_, after) = env.api("GET", path, None);
    assert_eq!(before, after, "untouched: no new revision, no new labels");
    env.infra(&["plan", "--env", "test", "--detailed-exitcode"])
        .expect_code(0);
}

/// What tells the client how long to keep rolling out a service refused its secrets; short
/// here so that a client without the handling fails in seconds, not in ten minutes.
const SECRET_ACCESS_WINDOW: (&str, &str) = ("INFRA_RUN_SECRET_ACCESS_WINDOW_SECONDS", "45");

/// Returns the emulator's logged requests whose method is `method` and whose path ends with
/// `suffix`.
fn logged(env: &TestEnv, method: &str, suffix: &str) -> Vec<Json> {
    let (status, log) = env.api("GET", "_emulator/requests", None);
    assert_eq!(status, 200, "{log}");
    log["requests"]
        .as_array()
        .expect("requests")
        .iter()
        .filter(|request| {
            request["method"] == method
                && request["path"]
                    .as_str()
                    .is_some_and(|path| path.ends_with(suffix))
        })
        .cloned()
        .collect()
}

/// Returns a service's revisions, oldest first, each as `(short name, Ready state)`.
fn revisions(env: &TestEnv, service: &str) -> Vec<(String, String)> {
    let (status, listed) = env.api("GET", &format!("{service}/revisions"), None);
    assert_eq!(status, 200, "{listed}");
    let mut revisions: Vec<(String, String)> = listed["revisions"]
        .as_array()
        .expect("revisions")
        .iter()
        .map(|revision| {
            (
                revision["name"]
                    .as_str()
                    .and_then(|name| name.rsplit('/').next())
                    .unwrap_or_default()
                    .to_string(),
                revision["conditions"][0]["state"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect();
    revisions.reverse();
    revisions
}

#[test]
fn a_revision_refused_its_new_secret_grant_is_followed_by_new_revisions_until_one_starts() {
    // Every realism default: the grant below reaches Cloud Run 1.5 s after it is made, and
    // the service's first revision starts well within that.
    let mut env = TestEnv::with_emulator();
    env.extra_env.push((
        SECRET_ACCESS_WINDOW.0.to_string(),
        SECRET_ACCESS_WINDOW.1.to_string(),
    ));
    env.write(
        "envs/test/env.toml",
        r#"[env]
name = "test"
project = "proj-test"
region = "us-central1"

[resource.service_account.runtime]
account_id = "api-runtime"

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
secret_env = { TOKEN = "${secret.token.version}" }
depends_on = ["iam_member.runtime_reads_token"]
"#,
    );
    env.infra(&["apply", "--env", "test", "--auto-approve"])
        .expect_code(0);
    let service = format!("{SERVICES}/api");
    let revisions = revisions(&env, &service);
    assert_eq!(
        revisions.first().map(|(_, state)| state.as_str()),
        Some("CONDITION_FAILED"),
        "the first revision was not refused, so this test proves nothing: {revisions:?}"
    );
    assert_eq!(
        revisions.last().map(|(_, state)| state.as_str()),
        Some("CONDITION_SUCCEEDED"),
        "{revisions:?}"
    );
    // Each rollout again asked for a new revision and made exactly one: none was sent twice
    // blind, and no PATCH without `forceNewRevision` (which makes no revision) was wasted.
    let patches = logged(&env, "PATCH", "/services/api");
    assert!(!patches.is_empty(), "no rollout again");
    assert!(
        patches
            .iter()
            .all(|patch| patch["query"]["forceNewRevision"] == "true"),
        "{patches:?}"
    );
    assert_eq!(
        revisions.len(),
        patches.len() + 1,
        "{revisions:?} {patches:?}"
    );
    let (_, live) = env.api("GET", &service, None);
    assert_eq!(
        live["latestReadyRevision"], live["latestCreatedRevision"],
        "{live}"
    );
    env.infra(&["plan", "--env", "test", "--detailed-exitcode"])
        .expect_code(0);
}

#[test]
fn a_service_whose_first_revision_failed_gets_a_new_revision_from_the_next_apply() {
    let mut env = TestEnv::with_emulator();
    env.extra_env.push((
        SECRET_ACCESS_WINDOW.0.to_string(),
        SECRET_ACCESS_WINDOW.1.to_string(),
    ));
    env.write(
        "envs/test/env.toml",
        r#"[env]
name = "test"
project = "proj-test"
region = "us-central1"

[resource.service_account.runtime]
account_id = "api-runtime"

[resource.cloud_run_service.api]
name = "api"
image = "img:1"
deletion_protection = false
service_account = "${service_account.runtime.email}"
secret_env = { TOKEN = "projects/proj-test/secrets/LATER/versions/1" }
"#,
    );
    let failed = env.infra(&["apply", "--env", "test", "--auto-approve"]);
    failed.expect_code(1);
    assert!(
        failed.stderr.contains("LATER was not found"),
        "{}",
        failed.all()
    );
    // The secret appears; the failed revision does not recover by itself, nor from a PATCH
    // of the same template.
    let (status, body) = env.api(
        "POST",
        "v1/projects/proj-test/secrets?secretId=LATER",
        Some(json!({"replication": {"automatic": {}}})),
    );
    assert_eq!(status, 200, "{body}");
    let (status, body) = env.api(
        "POST",
        "v1/projects/proj-test/secrets/LATER:addVersion",
        Some(json!({"payload": {"data": "bGF0ZXI="}})),
    );
    assert_eq!(status, 200, "{body}");
    env.infra(&["apply", "--env", "test", "--auto-approve"])
        .expect_code(0);
    let service = format!("{SERVICES}/api");
    let revisions = revisions(&env, &service);
    assert_eq!(
        revisions
            .iter()
            .map(|(_, state)| state.as_str())
            .collect::<Vec<_>>(),
        ["CONDITION_FAILED", "CONDITION_SUCCEEDED"],
        "{revisions:?}"
    );
    env.infra(&["plan", "--env", "test", "--detailed-exitcode"])
        .expect_code(0);
}

#[test]
fn ingress_unobserved_while_no_revision_is_active_is_no_change() {
    // A long window: a grant made below keeps the recreated service's revision refused.
    let mut env = TestEnv::empty();
    env.start_emulator_with(&["--secret-access-propagation-ms", "600000"]);
    let (status, body) = env.api(
        "POST",
        "v1/projects/proj-test/secrets?secretId=EXTERNAL",
        Some(json!({"replication": {"automatic": {}}})),
    );
    assert_eq!(status, 200, "{body}");
    env.api(
        "POST",
        "v1/projects/proj-test/secrets/EXTERNAL:addVersion",
        Some(json!({"payload": {"data": "ZXh0ZXJuYWw="}})),
    );
    env.write(
        "envs/test/env.toml",
        r#"[env]
name = "test"
project = "proj-test"
region = "us-central1"

[resource.cloud_run_service.api]
name = "api"
image = "img:1"
ingress = "internal"
deletion_protection = false
secret_env = { TOKEN = "projects/proj-test/secrets/EXTERNAL/versions/1" }
"#,
    );
    env.infra(&["apply", "--env", "test", "--auto-approve"])
        .expect_code(0);
    // Behind infra's back the service is made again, the same, and its first revision is
    // refused the secret: no revision of it is active.
    let service = format!("{SERVICES}/api");
    let (_, live) = env.api("GET", &service, None);
    assert_eq!(live["ingress"], "INGRESS_TRAFFIC_INTERNAL_ONLY", "{live}");
    let (_, operation) = env.api("DELETE", &service, None);
    wait(&env, operation);
    let (status, body) = env.api(
        "POST",
        "v1/projects/proj-test/secrets/EXTERNAL:setIamPolicy",
        Some(json!({"policy": {"bindings": [{
            "role": "roles/secretmanager.secretAccessor",
            "members": [format!("serviceAccount:{}", live["template"]["serviceAccount"].as_str().expect("account"))],
        }]}})),
    );
    assert_eq!(status, 200, "{body}");
    let again = json!({
        "labels": live["labels"],
        "ingress": live["ingress"],
        "template": live["template"],
        "traffic": live["traffic"],
    });
    let (status, operation) = env.api("POST", &format!("{SERVICES}?serviceId=api"), Some(again));
    assert_eq!(status, 200, "{operation}");
    let done = wait(&env, operation);
    assert!(
        done["error"]["message"]
            .as_str()
            .is_some_and(|message| message.contains("Permission denied on secret")),
        "{done}"
    );
    let (_, live) = env.api("GET", &service, None);
    assert!(
        live.get("ingress").is_none(),
        "UNSPECIFIED is left out: {live}"
    );
    env.infra(&["plan", "--env", "test", "--detailed-exitcode"])
        .expect_code(0);
}

#[test]
fn secrets_of_the_services_project_in_any_form_plan_clean() {
    let env = TestEnv::with_emulator();
    let mut number = String::new();
    for id in ["BY_ID", "BY_NUMBER"] {
        let (status, body) = env.api(
            "POST",
            &format!("v1/projects/proj-test/secrets?secretId={id}"),
            Some(json!({"replication": {"automatic": {}}})),
        );
        assert_eq!(status, 200, "{body}");
        number = body["name"]
            .as_str()
            .and_then(|name| name.split('/').nth(1))
            .expect("projects/NUMBER/secrets/ID")
            .to_string();
        env.api(
            "POST",
            &format!("v1/projects/proj-test/secrets/{id}:addVersion"),
            Some(json!({"payload": {"data": "dmFsdWU="}})),
        );
    }
    env.write(
        "envs/test/env.toml",
        &format!(
            r#"[env]
name = "test"
project = "proj-test"
region = "us-central1"

[resource.cloud_run_service.api]
name = "api"
image = "img:1"
deletion_protection = false
secret_env = {{ A = "projects/proj-test/secrets/BY_ID/versions/1", B = "projects/{number}/secrets/BY_NUMBER/versions/1", C = {{ secret = "BY_ID", version = "1" }} }}
"#
        ),
    );
    env.infra(&["apply", "--env", "test", "--auto-approve"])
        .expect_code(0);
    let (_, live) = env.api("GET", &format!("{SERVICES}/api"), None);
    let secrets: Vec<&str> = live["template"]["containers"][0]["env"]
        .as_array()
        .expect("env")
        .iter()
        .filter_map(|variable| variable.pointer("/valueSource/secretKeyRef/secret"))
        .filter_map(Json::as_str)
        .collect();
    assert_eq!(
        secrets,
        ["BY_ID", "BY_NUMBER", "BY_ID"],
        "Cloud Run answers the short form"
    );
    env.infra(&["plan", "--env", "test", "--detailed-exitcode"])
        .expect_code(0);
}

#[test]
fn a_rollout_again_whose_answer_is_lost_is_never_sent_again_before_a_read() {
    // Every PATCH of the service commits and then loses its answer.
    let mut env = TestEnv::empty();
    env.start_emulator_with(&[
        "--lose-answer-rate",
        "1",
        "--fault-only",
        "PATCH /v2/projects/proj-test/locations/us-central1/services/api",
    ]);
    env.extra_env.push((
        SECRET_ACCESS_WINDOW.0.to_string(),
        SECRET_ACCESS_WINDOW.1.to_string(),
    ));
    env.write(
        "envs/test/env.toml",
        r#"[env]
name = "test"
project = "proj-test"
region = "us-central1"

[resource.service_account.runtime]
account_id = "api-runtime"

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
secret_env = { TOKEN = "${secret.token.version}" }
depends_on = ["iam_member.runtime_reads_token"]
"#,
    );
    env.infra(&["apply", "--env", "test", "--auto-approve"])
        .expect_code(0);
    let service = format!("{SERVICES}/api");
    let revisions = revisions(&env, &service);
    let (_, log) = env.api("GET", "_emulator/requests", None);
    let calls: Vec<&str> = log["requests"]
        .as_array()
        .expect("requests")
        .iter()
        .filter(|request| {
            request["path"]
                .as_str()
                .is_some_and(|path| path.ends_with("/services/api"))
        })
        .filter_map(|request| request["method"].as_str())
        .collect();
    let patches = calls.iter().filter(|method| **method == "PATCH").count();
    assert!(
        patches > 0,
        "no rollout again, so this test proves nothing: {calls:?}"
    );
    assert_eq!(revisions.len(), patches + 1, "{revisions:?} {calls:?}");
    assert!(
        !calls.windows(2).any(|pair| pair == ["PATCH", "PATCH"]),
        "a PATCH whose answer was lost was sent again before the service was read: {calls:?}"
    );
    assert_eq!(
        revisions.last().map(|(_, state)| state.as_str()),
        Some("CONDITION_SUCCEEDED"),
        "{revisions:?}"
    );
    env.infra(&["plan", "--env", "test", "--detailed-exitcode"])
        .expect_code(0);
}

/// Returns the states of a secret's versions, newest first, read by number (the versions list
/// and `latest` lag an add).
fn secret_version_states(env: &TestEnv, secret_id: &str) -> Vec<String> {
    let mut states = Vec::new();
    for number in 1.. {
        let (status, version) = env.api(
            "GET",
            &format!("v1/projects/proj-test/secrets/{secret_id}/versions/{number}"),
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
fn a_secret_s_previous_version_stays_enabled_until_the_service_naming_the_new_one_rolled_out() {
    let mut env = TestEnv::with_emulator();
    env.extra_env.push((
        SECRET_ACCESS_WINDOW.0.to_string(),
        SECRET_ACCESS_WINDOW.1.to_string(),
    ));
    let configuration = |token: &str, other_env: &str| {
        format!(
            r#"[env]
name = "test"
project = "proj-test"
region = "us-central1"

[resource.service_account.runtime]
account_id = "api-runtime"

[resource.secret.token]
secret_id = "TOKEN"
value = "{token}"

[resource.iam_member.runtime_reads_token]
parent = "${{secret.token.name}}"
role = "roles/secretmanager.secretAccessor"
member = "serviceAccount:${{service_account.runtime.email}}"

[resource.cloud_run_service.api]
name = "api"
image = "img:1"
deletion_protection = false
service_account = "${{service_account.runtime.email}}"
secret_env = {{ TOKEN = "${{secret.token.version}}"{other_env} }}
depends_on = ["iam_member.runtime_reads_token"]
"#
        )
    };
    env.write("envs/test/env.toml", &configuration("first-token", ""));
    env.infra(&["apply", "--env", "test", "--auto-approve"])
        .expect_code(0);
    assert_eq!(secret_version_states(&env, "TOKEN"), ["ENABLED"]);

    // The new value is written, but the service naming it cannot roll out (another secret it
    // names does not exist): its serving revision, pinned to version 1, must keep starting.
    env.write(
        "envs/test/env.toml",
        &configuration(
            "second-token",
            r#", OTHER = "projects/proj-test/secrets/LATER/versions/1""#,
        ),
    );
    let failed = env.infra(&["apply", "--env", "test", "--auto-approve"]);
    failed.expect_code(1);
    assert!(
        failed.stderr.contains("LATER was not found"),
        "{}",
        failed.all()
    );
    assert_eq!(
        secret_version_states(&env, "TOKEN"),
        ["ENABLED", "ENABLED"],
        "version 1 was retired before the service naming version 2 rolled out"
    );
    let pending = env.infra(&["plan", "--env", "test", "--detailed-exitcode"]);
    pending.expect_code(2);
    assert!(
        pending
            .stdout
            .contains("secret.token will be updated in-place"),
        "the retirement still to do shows: {}",
        pending.stdout
    );

    let (status, body) = env.api(
        "POST",
        "v1/projects/proj-test/secrets?secretId=LATER",
        Some(json!({"replication": {"automatic": {}}})),
    );
    assert_eq!(status, 200, "{body}");
    let (status, body) = env.api(
        "POST",
        "v1/projects/proj-test/secrets/LATER:addVersion",
        Some(json!({"payload": {"data": "bGF0ZXI="}})),
    );
    assert_eq!(status, 200, "{body}");
    env.infra(&["apply", "--env", "test", "--auto-approve"])
        .expect_code(0);
    // Applied in full: the service rolled out on version 2, and only then was 1 disabled.
    assert_eq!(
        secret_version_states(&env, "TOKEN"),
        ["ENABLED", "DISABLED"]
    );
    env.infra(&["plan", "--env", "test", "--detailed-exitcode"])
        .expect_code(0);
}
