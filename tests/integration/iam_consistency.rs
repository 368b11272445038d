//! IAM's eventual consistency, on by default in the emulator: a new service account answers
//! 403 to a GET for a while, and a policy read right after a `setIamPolicy` answers the policy
//! it replaced. Each test widens one window past what the client would survive without its
//! handling (polling the account, recognising its own account behind a 409, reading policies
//! back after a write, letting a refresh's reads settle), so it fails without that handling.

use crate::lost_answers::{FaultProxy, Loss, Rule};
use crate::support::TestEnv;
use serde_json::json;

const ENV_HEADER: &str = r#"[env]
name = "test"
project = "proj-test"
region = "us-central1"
"#;

fn accounts(env: &TestEnv) -> Vec<String> {
    let (_, listed) = env.api("GET", "v1/projects/proj-test/serviceAccounts", None);
    listed["accounts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|account| account["email"].as_str().map(String::from))
        .collect()
}

#[test]
fn a_new_service_account_answering_403_is_polled_until_read_three_times_in_a_row() {
    let mut env = TestEnv::empty();
    env.start_emulator_with(&["--service-account-read-lag-ms", "2500"]);
    env.write(
        "envs/test/env.toml",
        &format!("{ENV_HEADER}\n[resource.service_account.runner]\naccount_id = \"runner\"\n"),
    );
    env.infra(&["apply", "--env", "test", "--auto-approve"])
        .expect_code(0);
    let (_, requests) = env.api("GET", "_emulator/requests", None);
    let reads = requests["requests"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|request| {
            request["method"] == "GET"
                && request["path"]
                    .as_str()
                    .is_some_and(|path| path.contains("/serviceAccounts/runner"))
        })
        .count();
    assert!(
        reads >= 4,
        "the create never met the 403 window (or read fewer than 3 good times): {reads} GETs in {requests}"
    );
    env.infra(&["plan", "--env", "test", "--detailed-exitcode"])
        .expect_code(0);
    assert_eq!(accounts(&env), ["runner@proj-test.iam.gserviceaccount.com"]);
}

#[test]
fn a_409_after_a_lost_service_account_create_answer_is_recognised_as_this_runs_account() {
    let mut env = TestEnv::empty();
    // Longer than the create's first look-up after the lost answer: that GET meets the 403,
    // so the create is sent again and meets 409.
    env.start_emulator_with(&["--service-account-read-lag-ms", "3000"]);
    env.write(
        "envs/test/env.toml",
        &format!(
            "{ENV_HEADER}\n[resource.service_account.runner]\naccount_id = \"runner\"\ndisplay_name = \"Runner\"\n"
        ),
    );
    let proxy = FaultProxy::start(
        env.endpoint.as_deref().expect("emulator"),
        Rule {
            method: "POST",
            path: "/serviceAccounts",
            body: "runner",
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
    assert_eq!(
        proxy.lost(),
        1,
        "no create answer was lost\n{}",
        apply.all()
    );
    apply.expect_code(0);
    assert!(
        apply.stderr.contains("409 after a lost create answer"),
        "the re-sent create never met 409, so the test proves nothing:\n{}",
        apply.all()
    );
    assert_eq!(accounts(&env), ["runner@proj-test.iam.gserviceaccount.com"]);
    env.infra(&["plan", "--env", "test", "--detailed-exitcode"])
        .expect_code(0);
}

/// Longer than a refresh lets its reads settle: only reading back after each write makes the
/// plan right after the apply see every grant.
#[test]
fn grants_read_back_after_apply_so_the_next_plan_shows_none_as_created() {
    let mut env = TestEnv::empty();
    env.start_emulator_with(&["--iam-policy-read-lag-ms", "6000"]);
    env.write(
        "envs/test/env.toml",
        &format!(
            r#"{ENV_HEADER}
[resource.secret.token]
secret_id = "TOKEN"
value = "not-a-real-token"

[resource.iam_member.ann_reads_token]
parent = "${{secret.token.name}}"
role = "roles/secretmanager.secretAccessor"
member = "user:ann@example.com"

[resource.iam_member.bob_reads_token]
parent = "${{secret.token.name}}"
role = "roles/secretmanager.secretAccessor"
member = "user:bob@example.com"

[resource.iam_binding.viewers]
parent = "projects/proj-test"
role = "roles/viewer"
members = ["user:ann@example.com", "group:readers@example.com"]
"#
        ),
    );
    env.infra(&["apply", "--env", "test", "--auto-approve"])
        .expect_code(0);
    let plan = env.infra(&["plan", "--env", "test", "--detailed-exitcode"]);
    plan.expect_code(0);
}

/// A read within the lag of a write that left the grant as it was (removed, then added back)
/// answers the policy without it: a refresh that believed its first read would plan the
/// grant's create.
#[test]
fn a_stale_policy_read_does_not_make_a_recorded_grant_look_deleted() {
    let mut env = TestEnv::empty();
    env.start_emulator_with(&["--iam-policy-read-lag-ms", "2500"]);
    env.write(
        "envs/test/env.toml",
        &format!(
            r#"{ENV_HEADER}
[resource.iam_member.ann_views]
parent = "projects/proj-test"
role = "roles/viewer"
member = "user:ann@example.com"
"#
        ),
    );
    env.infra(&["apply", "--env", "test", "--auto-approve"])
        .expect_code(0);
    let read = || {
        let (_, policy) = env.api(
            "POST",
            "v3/projects/proj-test:getIamPolicy",
            Some(json!({})),
        );
        policy
    };
    let write = |policy: serde_json::Value| {
        let (status, written) = env.api(
            "POST",
            "v3/projects/proj-test:setIamPolicy",
            Some(json!({"policy": policy})),
        );
        assert_eq!(status, 200, "{written}");
        written
    };
    let with_ann = read();
    assert_eq!(
        with_ann["bindings"][0]["members"],
        json!(["user:ann@example.com"])
    );
    let without_ann = write(json!({"etag": with_ann["etag"], "bindings": []}));
    // Written with the etag the last write answered: reads still lag it.
    write(json!({"etag": without_ann["etag"], "bindings": with_ann["bindings"]}));
    assert!(
        read()["bindings"].is_null(),
        "the read did not lag, so the test proves nothing"
    );
    env.infra(&["plan", "--env", "test", "--detailed-exitcode"])
        .expect_code(0);
}

/// Grants on one parent do not wait for one another's read-back: each write starts from the
/// policy the last one answered, and one read-back confirms them all. Holding the parent
/// while each write's read-back ran took (read lag + three reads) per member: at least four
/// reads per member, and as many between consecutive writes.
#[test]
fn many_grants_on_one_parent_are_written_back_to_back_and_read_back_once() {
    const MEMBERS: usize = 12;
    let mut env = TestEnv::empty();
    env.start_emulator_with(&["--iam-policy-read-lag-ms", "3000"]);
    let grants: String = (0..MEMBERS)
        .map(|index| {
            format!(
                "\n[resource.iam_member.viewer_{index}]\nparent = \"projects/proj-test\"\nrole = \"roles/viewer\"\nmember = \"user:viewer-{index}@example.com\"\n"
            )
        })
        .collect();
    env.write("envs/test/env.toml", &format!("{ENV_HEADER}{grants}"));
    env.infra(&["apply", "--env", "test", "--auto-approve"])
        .expect_code(0);
    let (_, requests) = env.api("GET", "_emulator/requests", None);
    let calls: Vec<&str> = requests["requests"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|request| request["path"].as_str())
        .filter_map(|path| {
            if path.ends_with("projects/proj-test:setIamPolicy") {
                Some("set")
            } else if path.ends_with("projects/proj-test:getIamPolicy") {
                Some("get")
            } else {
                None
            }
        })
        .collect();
    let sets = calls.iter().filter(|call| **call == "set").count();
    assert_eq!(sets, MEMBERS, "one write per grant: {calls:?}");
    let first_set = calls.iter().position(|call| *call == "set").unwrap_or(0);
    let last_set = calls.iter().rposition(|call| *call == "set").unwrap_or(0);
    let reads_between = calls[first_set..last_set]
        .iter()
        .filter(|call| **call == "get")
        .count();
    assert!(
        reads_between < MEMBERS,
        "the writes waited for one another's read-back: {reads_between} reads between the first and last write: {calls:?}"
    );
    let reads = calls.len() - sets;
    assert!(
        reads < 2 * MEMBERS,
        "read back per member rather than per parent: {reads} reads: {calls:?}"
    );
    env.infra(&["plan", "--env", "test", "--detailed-exitcode"])
        .expect_code(0);
}

/// Reads a policy (`POST` for Resource Manager and IAM, `GET` for the others) until `shows`
/// holds, as anyone must after a `setIamPolicy` before trusting a read of it; panics after a
/// bound well past the emulator's default lag.
pub fn read_policy_until(
    env: &TestEnv,
    method: &str,
    path: &str,
    shows: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let body = (method == "POST").then(|| json!({}));
    let started = std::time::Instant::now();
    loop {
        let (status, policy) = env.api(method, path, body.clone());
        assert_eq!(status, 200, "{policy}");
        if shows(&policy) {
            return policy;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "{path} never showed the change: {policy}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// GETs a service account until IAM knows it (it answers 403 or 404 for a while after its
/// create), as anyone reading a new account must; returns the final status and body.
pub fn read_account_until_known(env: &TestEnv, path: &str) -> (u16, serde_json::Value) {
    let started = std::time::Instant::now();
    loop {
        let (status, account) = env.api("GET", path, None);
        if !matches!(status, 403 | 404) || started.elapsed() > std::time::Duration::from_secs(20) {
            return (status, account);
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}
