//! Secret fingerprints in state and plan files: keyed with the environment's key (kept in
//! Secret Manager, never in state), so a guessable value cannot be confirmed offline; states
//! written with the older salted recipe migrate without showing a change; the key's absence
//! (first plan) and loss behave as docs/state.md says.

use crate::support::TestEnv;
use base64::Engine;
use infra::sensitive::{FingerprintKey, legacy_salted_fingerprint};
use infra::state::State;
use infra::value::{Marker, Value};
use serde_json::{Value as Json, json};

const ENV: &str = r##"[env]
name = "test"
project = "proj-test"
region = "us-central1"

[resource.secret.credits]
secret_id = "BETA_AI_CREDITS"
value = "VALUE"
labels = { app = "demo" }

[resource.notification_channel.slack]
type = "slack"
display_name = "Slack"
labels = { channel_name = "#ops" }
sensitive_labels = { auth_token = { value_from_env = "SLACK_TOKEN_FOR_TEST" } }
"##;

const CREDITS: &str = "secret.credits";
/// How a fingerprint of the older recipe appears in a state file.
const OLD_FINGERPRINT: &str = r#""(sensitive)":"sha256:"#;
const KEY_SECRET: &str = "v1/projects/proj-test/secrets/infra-fingerprint-key-test";

fn project(value: &str) -> TestEnv {
    let mut env = TestEnv::with_emulator();
    env.extra_env
        .push(("SLACK_TOKEN_FOR_TEST".into(), "xoxb-4".into()));
    env.write("envs/test/env.toml", &ENV.replace("VALUE", value));
    env
}

fn applied(value: &str) -> TestEnv {
    let env = project(value);
    env.infra(&["apply", "--env", "test", "--auto-approve"])
        .expect_code(0);
    env.infra(&["plan", "--env", "test", "--detailed-exitcode"])
        .expect_code(0);
    env
}

fn state(env: &TestEnv) -> State {
    State::from_bytes(
        env.read("state/test.state.json").as_bytes(),
        "state",
        "test",
    )
    .expect("state")
}

fn write_state(env: &TestEnv, state: &State) {
    let bytes = state.to_bytes();
    env.write(
        "state/test.state.json",
        std::str::from_utf8(&bytes).expect("utf-8"),
    );
}

fn sensitive(value: Option<&Value>) -> String {
    match value {
        Some(Value::Marker(Marker::Sensitive(text))) => text.clone(),
        other => panic!("not a fingerprint: {other:?}"),
    }
}

/// Returns the environment's key as the emulator holds it (what only a principal with access
/// to the project's Secret Manager can read).
fn the_key(env: &TestEnv) -> FingerprintKey {
    let (status, accessed) = env.access_newest_version(KEY_SECRET);
    assert_eq!(status, 200, "{accessed}");
    let version = accessed["name"]
        .as_str()
        .and_then(|name| name.rsplit('/').next())
        .expect("version")
        .to_string();
    let material = base64::engine::general_purpose::STANDARD
        .decode(accessed["payload"]["data"].as_str().expect("data"))
        .expect("base64");
    FingerprintKey::new(version, &material).expect("a key of 256 bits")
}

/// Every string in a JSON document: all an offline attacker could try as a salt.
fn strings(document: &Json, found: &mut Vec<String>) {
    match document {
        Json::String(text) => found.push(text.clone()),
        Json::Array(items) => items.iter().for_each(|item| strings(item, found)),
        Json::Object(entries) => {
            for (key, value) in entries {
                found.push(key.clone());
                strings(value, found);
            }
        }
        _ => {}
    }
}

/// Tries the old recipe (salted SHA-256, salt from the file) over a guess list.
fn guessed_with_old_recipe(file: &str, fingerprint: &str, guesses: &[String]) -> Option<String> {
    let document: Json = serde_json::from_str(file).expect("json");
    let mut salts = Vec::new();
    strings(&document, &mut salts);
    salts.push(String::new());
    salts.iter().find_map(|salt| {
        guesses
            .iter()
            .find(|guess| legacy_salted_fingerprint(salt, guess.as_bytes()) == fingerprint)
            .cloned()
    })
}

#[test]
fn a_low_entropy_value_in_state_or_a_plan_cannot_be_confirmed_without_the_key() {
    let env = applied("5000");
    let text = env.read("state/test.state.json");
    assert!(!text.contains("value_salt"), "{text}");
    let recorded = sensitive(
        state(&env)
            .resource(CREDITS)
            .expect("credits")
            .attributes
            .get("value"),
    );
    assert!(recorded.starts_with("hmac-sha256:"), "{recorded}");
    let guesses: Vec<String> = (0..=20_000).map(|number| number.to_string()).collect();
    assert_eq!(guessed_with_old_recipe(&text, &recorded, &guesses), None);
    // With the key, the same search confirms the value: the check above could fail.
    let key = the_key(&env);
    let confirmed: Vec<&String> = guesses
        .iter()
        .filter(|guess| key.verifies(&recorded, CREDITS, "value", guess.as_bytes()))
        .collect();
    assert_eq!(confirmed, vec!["5000"]);

    // A saved plan holds the fingerprint of the new value, and no salt either.
    env.write("envs/test/env.toml", &ENV.replace("VALUE", "6000"));
    env.infra(&["plan", "--env", "test", "--out", "p.plan"])
        .expect_code(0);
    let plan_text = env.read("p.plan");
    assert!(!plan_text.contains("salt"), "{plan_text}");
    let plan: Json = serde_json::from_str(&plan_text).expect("plan");
    let change = plan["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .find(|change| change["address"] == CREDITS)
        .expect("credits change");
    let planned = change["after"]["value"]["(sensitive)"]
        .as_str()
        .expect("fingerprint")
        .to_string();
    assert_eq!(
        guessed_with_old_recipe(&plan_text, &planned, &guesses),
        None
    );
    assert!(key.verifies(&planned, CREDITS, "value", b"6000"));
    env.infra(&["apply", "--env", "test", "p.plan"])
        .expect_code(0);
    env.infra(&["plan", "--env", "test", "--detailed-exitcode"])
        .expect_code(0);
}

/// Rewrites a state as an older build wrote it: salted SHA-256 fingerprints with the salt
/// beside them. The key is deleted too: that build had none.
fn downgrade(env: &TestEnv, value: &str, token: &str) {
    let mut state = state(env);
    let salt = "00112233445566778899aabbccddeeff";
    for resource in &mut state.resources {
        match resource.kind.as_str() {
            "secret" => {
                resource.attributes.insert(
                    "value".into(),
                    Value::sensitive(legacy_salted_fingerprint(salt, value.as_bytes())),
                );
            }
            "notification_channel" => {
                resource.attributes.insert(
                    "sensitive_labels".into(),
                    Value::Map(
                        [(
                            "auth_token".to_string(),
                            Value::sensitive(legacy_salted_fingerprint(salt, token.as_bytes())),
                        )]
                        .into(),
                    ),
                );
            }
            _ => continue,
        }
        resource
            .attributes
            .insert("value_salt".into(), Value::string(salt));
    }
    write_state(env, &state);
    let (status, _) = env.api("DELETE", KEY_SECRET, None);
    assert_eq!(status, 200);
}

#[test]
fn an_old_format_state_migrates_without_showing_a_change() {
    let env = applied("5000");
    downgrade(&env, "5000", "xoxb-4");
    let before = env.read("state/test.state.json");
    assert!(before.contains("value_salt") && before.contains(OLD_FINGERPRINT));
    // The old fingerprints are verified with the old recipe: no change to show.
    let plan = env.infra(&["plan", "--env", "test", "--detailed-exitcode"]);
    plan.expect_code(0);
    // An apply with nothing to change still rewrites them, creating the key first.
    let apply = env.infra(&["apply", "--env", "test", "--auto-approve"]);
    apply.expect_code(0);
    assert!(
        apply
            .stderr
            .contains("Rewriting secret fingerprints recorded in an older form"),
        "{}",
        apply.all()
    );
    let after = env.read("state/test.state.json");
    assert!(!after.contains("value_salt"), "{after}");
    assert!(!after.contains(OLD_FINGERPRINT), "{after}");
    let key = the_key(&env);
    let rewritten = state(&env);
    let credits = rewritten.resource(CREDITS).expect("credits");
    assert!(key.verifies(
        &sensitive(credits.attributes.get("value")),
        CREDITS,
        "value",
        b"5000"
    ));
    let slack = rewritten
        .resource("notification_channel.slack")
        .expect("slack");
    let token = slack
        .attributes
        .get("sensitive_labels")
        .and_then(Value::as_map)
        .and_then(|labels| labels.get("auth_token"));
    assert!(key.verifies(
        &sensitive(token),
        "notification_channel.slack",
        "sensitive_labels.auth_token",
        b"xoxb-4"
    ));
    // Nothing was written to the cloud: still one secret version.
    assert_eq!(
        env.count_versions("v1/projects/proj-test/secrets/BETA_AI_CREDITS"),
        1
    );
    env.infra(&["plan", "--env", "test", "--detailed-exitcode"])
        .expect_code(0);
}

#[test]
fn an_old_format_state_with_a_changed_value_shows_the_update() {
    let env = applied("5000");
    downgrade(&env, "5000", "xoxb-4");
    env.write("envs/test/env.toml", &ENV.replace("VALUE", "5001"));
    let plan = env.infra(&["plan", "--env", "test", "--detailed-exitcode"]);
    plan.expect_code(2);
    assert!(
        plan.stdout
            .contains("secret.credits will be updated in-place")
            && plan
                .stdout
                .contains("Plan: 0 to add, 1 to change, 0 to destroy."),
        "{}",
        plan.all()
    );
    env.infra(&["apply", "--env", "test", "--auto-approve"])
        .expect_code(0);
    let after = env.read("state/test.state.json");
    assert!(
        !after.contains("value_salt") && !after.contains(OLD_FINGERPRINT),
        "{after}"
    );
    env.infra(&["plan", "--env", "test", "--detailed-exitcode"])
        .expect_code(0);
}

#[test]
fn a_plan_saved_before_the_key_exists_applies_and_fingerprints_then() {
    let env = project("5000");
    let first = env.infra(&["plan", "--env", "test", "--out", "first.plan"]);
    first.expect_code(0);
    assert!(
        first.stderr.contains("Secret values are fingerprinted once apply has created the environment's key projects/proj-test/secrets/infra-fingerprint-key-test"),
        "{}",
        first.all()
    );
    let (status, _) = env.api("GET", KEY_SECRET, None);
    assert_eq!(status, 404, "plan writes nothing, not even the key");
    let plan = env.read("first.plan");
    assert!(
        !plan.contains("hmac-sha256") && !plan.contains("salt"),
        "{plan}"
    );
    env.infra(&["apply", "--env", "test", "first.plan"])
        .expect_code(0);
    let recorded = sensitive(
        state(&env)
            .resource(CREDITS)
            .expect("credits")
            .attributes
            .get("value"),
    );
    assert!(the_key(&env).verifies(&recorded, CREDITS, "value", b"5000"));
    env.infra(&["plan", "--env", "test", "--detailed-exitcode"])
        .expect_code(0);
    env.infra(&[
        "plan",
        "--env",
        "test",
        "--refresh=false",
        "--detailed-exitcode",
    ])
    .expect_code(0);
}

#[test]
fn a_lost_key_shows_every_secret_value_as_an_update_once() {
    let env = applied("5000");
    let (status, _) = env.api("DELETE", KEY_SECRET, None);
    assert_eq!(status, 200);
    let plan = env.infra(&["plan", "--env", "test", "--detailed-exitcode"]);
    plan.expect_code(2);
    assert!(
        plan.stdout
            .contains("Plan: 0 to add, 2 to change, 0 to destroy."),
        "{}",
        plan.all()
    );
    env.infra(&["apply", "--env", "test", "--auto-approve"])
        .expect_code(0);
    let recorded = sensitive(
        state(&env)
            .resource(CREDITS)
            .expect("credits")
            .attributes
            .get("value"),
    );
    assert!(the_key(&env).verifies(&recorded, CREDITS, "value", b"5000"));
    env.infra(&["plan", "--env", "test", "--detailed-exitcode"])
        .expect_code(0);
}

#[test]
fn the_key_is_labelled_as_infra_s_and_is_not_in_state() {
    let env = applied("5000");
    let (status, key_secret) = env.api("GET", KEY_SECRET, None);
    assert_eq!(status, 200);
    assert_eq!(
        key_secret["labels"],
        json!({"managed-by": "infra", "infra-env": "test", "infra-role": "fingerprint-key"})
    );
    let text = env.read("state/test.state.json");
    assert!(!text.contains("infra-fingerprint-key"), "{text}");
}

#[test]
fn a_rotated_key_shows_no_change_and_the_next_apply_rewrites_under_it() {
    let env = applied("5000");
    let first = the_key(&env);
    let material = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
    let (status, added) = env.api(
        "POST",
        &format!("{KEY_SECRET}:addVersion"),
        Some(json!({"payload": {"data": material}})),
    );
    assert_eq!(status, 200, "{added}");
    let rotated = the_key(&env);
    assert_ne!(rotated.id(), first.id());
    // Fingerprints under the previous version still verify: nothing to show.
    env.infra(&["plan", "--env", "test", "--detailed-exitcode"])
        .expect_code(0);
    let apply = env.infra(&["apply", "--env", "test", "--auto-approve"]);
    apply.expect_code(0);
    assert!(
        apply
            .stderr
            .contains("Rewriting secret fingerprints recorded in an older form"),
        "{}",
        apply.all()
    );
    let recorded = sensitive(
        state(&env)
            .resource(CREDITS)
            .expect("credits")
            .attributes
            .get("value"),
    );
    assert!(rotated.verifies(&recorded, CREDITS, "value", b"5000"));
    assert!(!first.verifies(&recorded, CREDITS, "value", b"5000"));
    assert_eq!(
        env.count_versions("v1/projects/proj-test/secrets/BETA_AI_CREDITS"),
        1,
        "no value written again"
    );
    // Nothing names the first version any more: it can be disabled.
    let (status, _) = env.api(
        "POST",
        &format!("{KEY_SECRET}/versions/{}:disable", first.id()),
        Some(json!({})),
    );
    assert_eq!(status, 200);
    env.infra(&["plan", "--env", "test", "--detailed-exitcode"])
        .expect_code(0);
}

/// A first apply reads the key once: the plan's read found it missing under the same lock, so
/// the apply creates it (its secret, then its first version) without reading it again.
#[test]
fn a_first_apply_creates_the_key_without_reading_it_twice() {
    let env = project("5000");
    env.infra(&["apply", "--env", "test", "--auto-approve"])
        .expect_code(0);
    let (status, log) = env.api("GET", "_emulator/requests", None);
    assert_eq!(status, 200, "{log}");
    let key_requests: Vec<String> = log["requests"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|request| {
            let path = request["path"].as_str()?;
            let secret_id = request["query"]["secretId"].as_str().unwrap_or_default();
            (path.contains("infra-fingerprint-key-test")
                || secret_id == "infra-fingerprint-key-test")
                .then(|| format!("{} {path}", request["method"].as_str().unwrap_or_default()))
        })
        .collect();
    assert_eq!(
        key_requests,
        vec![
            "GET /v1/projects/proj-test/secrets/infra-fingerprint-key-test/versions/latest:access",
            // `latest` may lag an add: absence is confirmed by number.
            "GET /v1/projects/proj-test/secrets/infra-fingerprint-key-test/versions/1:access",
            "POST /v1/projects/proj-test/secrets",
            "POST /v1/projects/proj-test/secrets/infra-fingerprint-key-test:addVersion",
        ],
        "{log}"
    );
    env.infra(&["plan", "--env", "test", "--detailed-exitcode"])
        .expect_code(0);
}
