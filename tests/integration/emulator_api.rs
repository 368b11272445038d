//! The emulator behaves as Google documents Secret Manager: status codes, error bodies,
//! required parameters, unknown fields, etags, version states, persistence.

use crate::support::TestEnv;
use serde_json::json;

const SECRETS: &str = "v1/projects/proj-test/secrets";

fn create(env: &TestEnv, id: &str) {
    let (status, body) = env.api(
        "POST",
        &format!("{SECRETS}?secretId={id}"),
        Some(json!({"replication": {"automatic": {}}})),
    );
    assert_eq!(status, 200, "{body}");
}

#[test]
fn not_found_and_already_exists_use_googles_error_body() {
    let env = TestEnv::with_emulator();
    let (status, body) = env.api("GET", &format!("{SECRETS}/NOPE"), None);
    assert_eq!(status, 404);
    assert_eq!(body["error"]["status"], "NOT_FOUND");
    assert_eq!(body["error"]["code"], 404);
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("NOPE")),
        "{body}"
    );
    create(&env, "A");
    let (status, body) = env.api(
        "POST",
        &format!("{SECRETS}?secretId=A"),
        Some(json!({"replication": {"automatic": {}}})),
    );
    assert_eq!(
        (status, body["error"]["status"].as_str()),
        (409, Some("ALREADY_EXISTS")),
        "{body}"
    );
}

#[test]
fn created_secrets_carry_output_only_fields_and_the_project_number() {
    let env = TestEnv::with_emulator();
    let (_, body) = env.api(
        "POST",
        &format!("{SECRETS}?secretId=A"),
        Some(json!({"replication": {"automatic": {}}, "createTime": "ignored"})),
    );
    let name = body["name"].as_str().expect("name");
    assert!(
        name.starts_with("projects/")
            && name.ends_with("/secrets/A")
            && !name.contains("proj-test"),
        "{name}"
    );
    assert!(
        body["createTime"]
            .as_str()
            .is_some_and(|time| time != "ignored"),
        "{body}"
    );
    assert!(body["etag"].as_str().is_some(), "{body}");
}

#[test]
fn malformed_requests_are_invalid_arguments() {
    let env = TestEnv::with_emulator();
    let cases = [
        (
            "POST",
            SECRETS.to_string(),
            Some(json!({"replication": {"automatic": {}}})),
            "secret_id is required",
        ),
        (
            "POST",
            format!("{SECRETS}?secretId=A"),
            Some(json!({"replication": {"automatic": {}}, "colour": "red"})),
            "Unknown name \"colour\"",
        ),
        (
            "POST",
            format!("{SECRETS}?secretId=A"),
            Some(json!({"replication": {"automatic": {}}, "labels": ["x"]})),
            "Invalid value at 'secret.labels'",
        ),
        (
            "POST",
            format!("{SECRETS}?secretId=bad%20id"),
            Some(json!({"replication": {"automatic": {}}})),
            "Invalid secret_id",
        ),
        (
            "POST",
            format!("{SECRETS}?secretId=A"),
            Some(json!({})),
            "replication must be specified",
        ),
        (
            "POST",
            format!("{SECRETS}?secretId=A&colour=red"),
            Some(json!({"replication": {"automatic": {}}})),
            "Cannot bind query parameter",
        ),
    ];
    for (method, path, body, expected) in cases {
        let (status, answer) = env.api(method, &path, body);
        assert_eq!(status, 400, "{path}: {answer}");
        assert_eq!(answer["error"]["status"], "INVALID_ARGUMENT", "{answer}");
        assert!(
            answer["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains(expected)),
            "{expected}: {answer}"
        );
    }
}

#[test]
fn patch_needs_an_update_mask_and_honours_it() {
    let env = TestEnv::with_emulator();
    env.api("POST", &format!("{SECRETS}?secretId=A"), Some(json!({"replication": {"automatic": {}}, "labels": {"a": "1"}, "annotations": {"k": "v"}})));
    let (status, body) = env.api(
        "PATCH",
        &format!("{SECRETS}/A"),
        Some(json!({"labels": {"a": "2"}})),
    );
    assert_eq!(
        (status, body["error"]["status"].as_str()),
        (400, Some("INVALID_ARGUMENT")),
        "{body}"
    );
    let (status, body) = env.api(
        "PATCH",
        &format!("{SECRETS}/A?updateMask=labels"),
        Some(json!({"labels": {"a": "2"}, "annotations": {}})),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["labels"], json!({"a": "2"}));
    assert_eq!(
        body["annotations"],
        json!({"k": "v"}),
        "not in the mask, untouched"
    );
    let (status, body) = env.api(
        "PATCH",
        &format!("{SECRETS}/A?updateMask=replication"),
        Some(json!({"replication": {"automatic": {}}})),
    );
    assert_eq!(status, 400, "immutable: {body}");
    let (status, body) = env.api(
        "PATCH",
        &format!("{SECRETS}/A?updateMask=labels"),
        Some(json!({"labels": {}, "etag": "\"stale\""})),
    );
    assert_eq!(
        (status, body["error"]["status"].as_str()),
        (400, Some("FAILED_PRECONDITION")),
        "{body}"
    );
}

#[test]
fn versions_follow_their_states_and_the_latest_alias() {
    // States and what `latest` names, without its lag (the next test has that).
    let mut env = TestEnv::with_emulator();
    env.stop_emulator();
    env.start_emulator_with(&["--secret-alias-lag-ms", "0"]);
    create(&env, "A");
    let (status, body) = env.api("GET", &format!("{SECRETS}/A/versions/latest"), None);
    assert_eq!(status, 404, "no versions yet: {body}");
    let (_, first) = env.api(
        "POST",
        &format!("{SECRETS}/A:addVersion"),
        Some(json!({"payload": {"data": "b25l"}})),
    );
    assert!(
        first["name"]
            .as_str()
            .is_some_and(|name| name.ends_with("/versions/1")),
        "{first}"
    );
    assert_eq!(first["state"], "ENABLED");
    let (status, body) = env.api(
        "POST",
        &format!("{SECRETS}/A:addVersion"),
        Some(json!({"payload": {"data": "dHdv", "dataCrc32c": "1"}})),
    );
    assert_eq!(status, 400, "checksum mismatch: {body}");
    let (_, second) = env.api(
        "POST",
        &format!("{SECRETS}/A:addVersion"),
        Some(json!({"payload": {"data": "dHdv"}})),
    );
    assert!(
        second["name"]
            .as_str()
            .is_some_and(|name| name.ends_with("/versions/2")),
        "{second}"
    );
    let (_, latest) = env.api("GET", &format!("{SECRETS}/A/versions/latest:access"), None);
    assert_eq!(latest["payload"]["data"], "dHdv");
    assert!(latest["payload"]["dataCrc32c"].is_string());

    let (status, _) = env.api(
        "POST",
        &format!("{SECRETS}/A/versions/2:disable"),
        Some(json!({})),
    );
    assert_eq!(status, 200);
    let (status, body) = env.api("GET", &format!("{SECRETS}/A/versions/2:access"), None);
    assert_eq!(
        (status, body["error"]["status"].as_str()),
        (400, Some("FAILED_PRECONDITION")),
        "{body}"
    );
    let (status, body) = env.api(
        "POST",
        &format!("{SECRETS}/A/versions/2:enable"),
        Some(json!({"etag": "\"wrong\""})),
    );
    assert_eq!(
        (status, body["error"]["status"].as_str()),
        (400, Some("FAILED_PRECONDITION")),
        "{body}"
    );
    env.api(
        "POST",
        &format!("{SECRETS}/A/versions/1:destroy"),
        Some(json!({})),
    );
    let (_, destroyed) = env.api("GET", &format!("{SECRETS}/A/versions/1"), None);
    assert_eq!(destroyed["state"], "DESTROYED");
    assert!(destroyed["destroyTime"].is_string(), "{destroyed}");
    let (status, _) = env.api(
        "POST",
        &format!("{SECRETS}/A/versions/1:enable"),
        Some(json!({})),
    );
    assert_eq!(status, 400, "a destroyed version may not leave that state");
    let (_, listed) = env.api(
        "GET",
        &format!("{SECRETS}/A/versions?filter=state:DESTROYED"),
        None,
    );
    assert_eq!(
        listed["versions"].as_array().map(Vec::len),
        Some(1),
        "{listed}"
    );
}

/// "Adding a secret version and then immediately accessing that secret version by version
/// number is a strongly consistent operation … This doesn't apply when you access a secret
/// version using aliases or `latest`"; other operations, lists included, are eventually
/// consistent (cloud.google.com/secret-manager/docs/reference/consistency).
#[test]
fn latest_aliases_and_lists_lag_a_change_while_numbers_do_not() {
    let mut env = TestEnv::with_emulator();
    env.stop_emulator();
    env.start_emulator_with(&["--secret-alias-lag-ms", "1500"]);
    create(&env, "A");
    let add = |data: &str| {
        let (status, body) = env.api(
            "POST",
            &format!("{SECRETS}/A:addVersion"),
            Some(json!({"payload": {"data": data}})),
        );
        assert_eq!(status, 200, "{body}");
    };
    add("b25l");
    // Within the window `latest` does not see the first version yet; version 1 is there.
    let (status, body) = env.api("GET", &format!("{SECRETS}/A/versions/latest"), None);
    assert_eq!(status, 404, "latest lags the first add: {body}");
    let (status, body) = env.api("GET", &format!("{SECRETS}/A/versions/1:access"), None);
    assert_eq!(
        (status, body["payload"]["data"].as_str()),
        (200, Some("b25l"))
    );
    let (_, listed) = env.api("GET", &format!("{SECRETS}/A/versions"), None);
    assert_eq!(listed, json!({}), "the list lags too");
    // Once the window has passed `latest` names it: polled, not slept for.
    let settled = |path: &str, expected: &str| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let (status, body) = env.api("GET", path, None);
            if status == 200
                && body["name"]
                    .as_str()
                    .is_some_and(|name| name.ends_with(expected))
            {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{path} never showed {expected}: {body}"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    };
    settled(&format!("{SECRETS}/A/versions/latest"), "/versions/1");
    add("dHdv");
    let (_, latest) = env.api("GET", &format!("{SECRETS}/A/versions/latest:access"), None);
    assert!(
        latest["name"]
            .as_str()
            .is_some_and(|name| name.ends_with("/versions/1")),
        "latest still names the previous version: {latest}"
    );
    let (_, listed) = env.api("GET", &format!("{SECRETS}/A/versions"), None);
    assert_eq!(
        listed["versions"].as_array().map(Vec::len),
        Some(1),
        "{listed}"
    );
    let (_, second) = env.api("GET", &format!("{SECRETS}/A/versions/2"), None);
    assert_eq!(second["state"], "ENABLED", "by number at once: {second}");
    // An alias set now, and a disable, lag the same way.
    let (status, body) = env.api(
        "PATCH",
        &format!("{SECRETS}/A?updateMask=versionAliases"),
        Some(json!({"versionAliases": {"current": "2"}})),
    );
    assert_eq!(status, 200, "{body}");
    let (status, _) = env.api("GET", &format!("{SECRETS}/A/versions/current"), None);
    assert_eq!(status, 404, "the alias is not seen yet");
    settled(&format!("{SECRETS}/A/versions/current"), "/versions/2");
    settled(&format!("{SECRETS}/A/versions/latest"), "/versions/2");
    let (status, _) = env.api(
        "POST",
        &format!("{SECRETS}/A/versions/2:disable"),
        Some(json!({})),
    );
    assert_eq!(status, 200);
    let (status, body) = env.api("GET", &format!("{SECRETS}/A/versions/2:access"), None);
    assert_eq!(status, 400, "by number: disabled at once: {body}");
    let (_, seen) = env.api("GET", &format!("{SECRETS}/A/versions/latest"), None);
    assert_eq!(
        seen["state"], "ENABLED",
        "latest still sees it enabled: {seen}"
    );
}

#[test]
fn iam_policies_refuse_stale_etags_and_bad_bindings() {
    let env = TestEnv::with_emulator();
    create(&env, "A");
    let (_, empty) = env.api(
        "GET",
        &format!("{SECRETS}/A:getIamPolicy?options.requestedPolicyVersion=3"),
        None,
    );
    let etag = empty["etag"].as_str().expect("etag").to_string();
    assert!(empty.get("bindings").is_none(), "{empty}");
    let policy = |etag: &str, member: &str| json!({"policy": {"etag": etag, "bindings": [{"role": "roles/secretmanager.secretAccessor", "members": [member]}]}});
    let (status, set) = env.api(
        "POST",
        &format!("{SECRETS}/A:setIamPolicy"),
        Some(policy(&etag, "user:a@example.com")),
    );
    assert_eq!(status, 200, "{set}");
    assert_ne!(set["etag"], json!(etag));
    let (status, stale) = env.api(
        "POST",
        &format!("{SECRETS}/A:setIamPolicy"),
        Some(policy(&etag, "user:b@example.com")),
    );
    assert_eq!(
        (status, stale["error"]["status"].as_str()),
        (409, Some("ABORTED")),
        "{stale}"
    );
    let (status, bad) = env.api(
        "POST",
        &format!("{SECRETS}/A:setIamPolicy"),
        Some(policy(set["etag"].as_str().unwrap_or_default(), "alice")),
    );
    assert_eq!(
        (status, bad["error"]["status"].as_str()),
        (400, Some("INVALID_ARGUMENT")),
        "{bad}"
    );
    let (status, _) = env.api(
        "GET",
        &format!("{SECRETS}/A:getIamPolicy?options.requestedPolicyVersion=2"),
        None,
    );
    assert_eq!(status, 400);
    let (status, _) = env.api("POST", &format!("{SECRETS}/A:getIamPolicy"), None);
    assert_eq!(status, 404, "Secret Manager's getIamPolicy is a GET");
    let (status, _) = env.api("GET", &format!("{SECRETS}/NOPE:getIamPolicy"), None);
    assert_eq!(status, 404);
}

#[test]
fn data_survives_a_restart() {
    let mut env = TestEnv::with_emulator();
    create(&env, "A");
    env.api(
        "POST",
        &format!("{SECRETS}/A:addVersion"),
        Some(json!({"payload": {"data": "b25l"}})),
    );
    env.stop_emulator();
    env.start_emulator();
    let (status, body) = env.api("GET", &format!("{SECRETS}/A/versions/1:access"), None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["payload"]["data"], "b25l");
}

#[test]
fn delete_honours_the_etag_and_removes_versions_and_policy() {
    let env = TestEnv::with_emulator();
    create(&env, "A");
    let (status, body) = env.api("DELETE", &format!("{SECRETS}/A?etag=%22stale%22"), None);
    assert_eq!(
        (status, body["error"]["status"].as_str()),
        (400, Some("FAILED_PRECONDITION")),
        "{body}"
    );
    let (status, body) = env.api("DELETE", &format!("{SECRETS}/A"), None);
    assert_eq!((status, body), (200, json!({})));
    create(&env, "A");
    let (_, versions) = env.api("GET", &format!("{SECRETS}/A/versions"), None);
    assert_eq!(versions, json!({}), "a new secret starts without versions");
}
