//! Service accounts and IAM on projects and service accounts: the emulator's IAM v1 and
//! Resource Manager v3, the kinds' lifecycle, etag conflicts, authoritative bindings.

use crate::support::TestEnv;
use serde_json::json;

const ACCOUNTS: &str = "v1/projects/proj-test/serviceAccounts";
const EMAIL: &str = "backend-sa@proj-test.iam.gserviceaccount.com";

#[test]
fn the_iam_api_serves_service_accounts_as_google_does() {
    let env = TestEnv::with_emulator();
    let body = json!({"accountId": "backend-sa", "serviceAccount": {"displayName": "Backend"}});
    let (status, created) = env.api("POST", ACCOUNTS, Some(body.clone()));
    assert_eq!(status, 200, "{created}");
    assert_eq!(created["email"], EMAIL);
    assert_eq!(
        created["name"],
        format!("projects/proj-test/serviceAccounts/{EMAIL}")
    );
    assert!(
        created["uniqueId"]
            .as_str()
            .is_some_and(|id| id.chars().all(|c| c.is_ascii_digit())),
        "{created}"
    );
    let (status, duplicate) = env.api("POST", ACCOUNTS, Some(body));
    assert_eq!(
        (status, duplicate["error"]["status"].as_str()),
        (409, Some("ALREADY_EXISTS")),
        "{duplicate}"
    );
    let (status, bad) = env.api("POST", ACCOUNTS, Some(json!({"accountId": "Bad_Id"})));
    assert_eq!(status, 400, "{bad}");
    let (status, unknown) = env.api(
        "POST",
        ACCOUNTS,
        Some(json!({"accountId": "other-sa", "colour": "red"})),
    );
    assert_eq!(status, 400, "{unknown}");

    // IAM reads lag the create: a GET answers 403 until IAM knows the account.
    let (status, fetched) = crate::iam_consistency::read_account_until_known(
        &env,
        &format!("v1/projects/-/serviceAccounts/{EMAIL}"),
    );
    assert_eq!(
        (status, fetched["displayName"].as_str()),
        (200, Some("Backend"))
    );
    let (status, missing) = env.api(
        "GET",
        "v1/projects/-/serviceAccounts/nobody@proj-test.iam.gserviceaccount.com",
        None,
    );
    assert_eq!(
        (status, missing["error"]["status"].as_str()),
        (403, Some("PERMISSION_DENIED")),
        "the `-` wildcard hides existence"
    );
    let (status, _) = env.api(
        "GET",
        &format!("{ACCOUNTS}/nobody@proj-test.iam.gserviceaccount.com"),
        None,
    );
    assert_eq!(status, 404);

    let path = format!("{ACCOUNTS}/{EMAIL}");
    let (status, no_mask) = env.api(
        "PATCH",
        &path,
        Some(json!({"serviceAccount": {"description": "x"}})),
    );
    assert_eq!(status, 400, "the mask is required, in the body: {no_mask}");
    let (status, email_mask) = env.api(
        "PATCH",
        &path,
        Some(json!({"serviceAccount": {"email": "x"}, "updateMask": "email"})),
    );
    assert_eq!(status, 400, "{email_mask}");
    let (status, patched) = env.api(
        "PATCH",
        &path,
        Some(
            json!({"serviceAccount": {"description": "runs the API"}, "updateMask": "description"}),
        ),
    );
    assert_eq!(
        (
            status,
            patched["description"].as_str(),
            patched["displayName"].as_str()
        ),
        (200, Some("runs the API"), Some("Backend"))
    );

    let (status, _) = env.api("GET", &format!("{path}:getIamPolicy"), None);
    assert_eq!(status, 404, "IAM v1's getIamPolicy is a POST");
    let (status, policy) = env.api("POST", &format!("{path}:getIamPolicy"), None);
    assert_eq!(status, 200, "{policy}");
    let (_, listed) = env.api("GET", ACCOUNTS, None);
    assert_eq!(listed["accounts"].as_array().map(Vec::len), Some(1));
    let (status, _) = env.api("DELETE", &path, None);
    assert_eq!(status, 200);
    let (status, _) = env.api("GET", &path, None);
    assert_eq!(status, 404);
}

#[test]
fn project_policies_take_the_version_in_the_body_and_refuse_public_members() {
    let env = TestEnv::with_emulator();
    let (status, policy) = env.api(
        "POST",
        "v3/projects/proj-test:getIamPolicy",
        Some(json!({"options": {"requestedPolicyVersion": 3}})),
    );
    assert_eq!(status, 200, "{policy}");
    let etag = policy["etag"].as_str().expect("etag").to_string();
    let (status, _) = env.api("GET", "v3/projects/proj-test:getIamPolicy", None);
    assert_eq!(status, 404, "a POST only");
    let set = |etag: &str, member: &str| json!({"policy": {"etag": etag, "bindings": [{"role": "roles/viewer", "members": [member]}]}});
    let (status, public) = env.api(
        "POST",
        "v3/projects/proj-test:setIamPolicy",
        Some(set(&etag, "allUsers")),
    );
    assert_eq!(
        (status, public["error"]["status"].as_str()),
        (400, Some("INVALID_ARGUMENT")),
        "{public}"
    );
    let (status, written) = env.api(
        "POST",
        "v3/projects/proj-test:setIamPolicy",
        Some(set(&etag, "user:a@example.com")),
    );
    assert_eq!(status, 200, "{written}");
    let (status, stale) = env.api(
        "POST",
        "v3/projects/proj-test:setIamPolicy",
        Some(set(&etag, "user:b@example.com")),
    );
    assert_eq!(
        (status, stale["error"]["status"].as_str()),
        (409, Some("ABORTED")),
        "{stale}"
    );
    let (_, project) = env.api("GET", "v3/projects/proj-test", None);
    assert!(
        project["name"]
            .as_str()
            .is_some_and(|name| name.starts_with("projects/") && !name.contains("proj-test")),
        "{project}"
    );
}

const IDENTITY: &str = r#"[env]
name = "test"
project = "proj-test"
region = "us-central1"

[resource.service_account.backend]
account_id = "backend-sa"
display_name = "DISPLAY"

[resource.iam_member.roles]
for_each = ["roles/cloudsql.client", "roles/cloudkms.cryptoKeyDecrypter"]
parent = "projects/${env.project}"
role = "${each.key}"
member = "serviceAccount:${service_account.backend.email}"

[resource.iam_binding.users]
parent = "${service_account.backend.name}"
role = "roles/iam.serviceAccountUser"
members = ["group:deployers@example.com", "user:ci@example.com"]
"#;

fn identity(display_name: &str) -> String {
    IDENTITY.replace("DISPLAY", display_name)
}

#[test]
fn a_service_account_with_project_roles_and_a_binding_converges() {
    let env = TestEnv::with_emulator();
    env.write("envs/test/env.toml", &identity("Backend"));
    let plan = env.infra(&["plan", "--env", "test", "--detailed-exitcode"]);
    plan.expect_code(2);
    assert!(plan.stdout.contains("Plan: 4 to add"), "{}", plan.stdout);
    assert!(
        plan.stdout
            .contains("serviceAccount:backend-sa@proj-test.iam.gserviceaccount.com"),
        "the email is known at plan time: {}",
        plan.stdout
    );
    env.infra(&["apply", "--env", "test", "--auto-approve"])
        .expect_code(0);
    env.infra(&["plan", "--env", "test", "--detailed-exitcode"])
        .expect_code(0);

    let (_, project) = env.api(
        "POST",
        "v3/projects/proj-test:getIamPolicy",
        Some(json!({})),
    );
    let roles: Vec<&str> = project["bindings"]
        .as_array()
        .expect("bindings")
        .iter()
        .map(|b| b["role"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(roles.len(), 2, "{project}");
    assert!(
        roles.contains(&"roles/cloudsql.client")
            && roles.contains(&"roles/cloudkms.cryptoKeyDecrypter")
    );

    env.write("envs/test/env.toml", &identity("Beta backend"));
    let rename = env.infra(&["plan", "--env", "test", "--detailed-exitcode", "--json"]);
    rename.expect_code(2);
    let parsed: serde_json::Value = serde_json::from_str(&rename.stdout).expect("json plan");
    let change = parsed["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .find(|c| c["action"] == "update")
        .expect("an update");
    assert_eq!(change["address"], "service_account.backend");
    assert_eq!(change["update_mask"], json!(["displayName"]));
    env.infra(&["apply", "--env", "test", "--auto-approve"])
        .expect_code(0);
    let (_, account) = env.api("GET", &format!("{ACCOUNTS}/{EMAIL}"), None);
    assert_eq!(account["displayName"], "Beta backend");
    env.infra(&["plan", "--env", "test", "--detailed-exitcode"])
        .expect_code(0);
}

#[test]
fn an_authoritative_binding_removes_members_added_outside() {
    let env = TestEnv::with_emulator();
    env.write("envs/test/env.toml", &identity("Backend"));
    env.infra(&["apply", "--env", "test", "--auto-approve"])
        .expect_code(0);
    let path = format!("{ACCOUNTS}/{EMAIL}");
    let (_, mut policy) = env.api("POST", &format!("{path}:getIamPolicy"), None);
    let bindings = policy["bindings"].as_array_mut().expect("bindings");
    bindings[0]["members"]
        .as_array_mut()
        .expect("members")
        .push(json!("user:intruder@example.com"));
    bindings.push(json!({"role": "roles/iam.serviceAccountTokenCreator", "members": ["user:other@example.com"]}));
    let (status, _) = env.api(
        "POST",
        &format!("{path}:setIamPolicy"),
        Some(json!({"policy": policy})),
    );
    assert_eq!(status, 200);
    // IAM reads lag writes: the intruder is there once reads show it.
    crate::iam_consistency::read_policy_until(
        &env,
        "POST",
        &format!("{path}:getIamPolicy"),
        |policy| policy.to_string().contains("intruder"),
    );
    let plan = env.infra(&["plan", "--env", "test", "--detailed-exitcode"]);
    plan.expect_code(2);
    assert!(
        plan.stdout
            .contains("# iam_binding.users has changed: members"),
        "{}",
        plan.stdout
    );
    env.infra(&["apply", "--env", "test", "--auto-approve"])
        .expect_code(0);
    let (_, after) = env.api("POST", &format!("{path}:getIamPolicy"), None);
    let text = after.to_string();
    assert!(!text.contains("intruder"), "{after}");
    assert!(
        text.contains("user:other@example.com"),
        "other roles are left alone: {after}"
    );
    env.infra(&["plan", "--env", "test", "--detailed-exitcode"])
        .expect_code(0);
}

#[test]
fn two_members_of_one_role_both_land_despite_an_etag_conflict() {
    let env = TestEnv::with_emulator();
    env.write(
        "envs/test/env.toml",
        "[env]\nname = \"test\"\nproject = \"proj-test\"\nregion = \"us-central1\"\n\n\
         [resource.iam_member.first]\nparent = \"projects/proj-test\"\nrole = \"roles/viewer\"\nmember = \"user:first@example.com\"\n\n\
         [resource.iam_member.second]\nparent = \"projects/proj-test\"\nrole = \"roles/viewer\"\nmember = \"user:second@example.com\"\n",
    );
    let (status, _) = env.api(
        "POST",
        "_emulator/faults",
        Some(json!({"setIamPolicyConflicts": 1})),
    );
    assert_eq!(status, 200);
    let apply = env.infra(&[
        "apply",
        "--env",
        "test",
        "--auto-approve",
        "--log-level",
        "debug",
    ]);
    apply.expect_code(0);
    assert!(
        apply.stderr.contains("policy changed under us"),
        "the forced conflict was retried: {}",
        apply.all()
    );
    let (_, policy) = env.api(
        "POST",
        "v3/projects/proj-test:getIamPolicy",
        Some(json!({})),
    );
    assert_eq!(
        policy["bindings"][0]["members"],
        json!(["user:first@example.com", "user:second@example.com"]),
        "{policy}"
    );
    env.infra(&["plan", "--env", "test", "--detailed-exitcode"])
        .expect_code(0);
}

#[test]
fn a_binding_and_a_member_on_the_same_role_is_a_configuration_error() {
    let env = TestEnv::with_emulator();
    env.write(
        "envs/test/env.toml",
        "[env]\nname = \"test\"\nproject = \"proj-test\"\nregion = \"us-central1\"\n\n\
         [resource.iam_binding.viewers]\nparent = \"projects/proj-test\"\nrole = \"roles/viewer\"\nmembers = [\"user:a@example.com\"]\n\n\
         [resource.iam_member.extra]\nparent = \"projects/proj-test\"\nrole = \"roles/viewer\"\nmember = \"user:b@example.com\"\n",
    );
    let run = env.infra(&["validate", "--env", "test"]);
    run.expect_code(1);
    assert!(
        run.stderr.contains("envs/test/env.toml:6:23"),
        "{}",
        run.all()
    );
    assert!(run.stderr.contains("iam_binding.viewers is authoritative for role roles/viewer on projects/proj-test, but iam_member.extra also manages it"), "{}", run.all());
}

#[test]
fn service_account_policies_refuse_stale_etags_and_resource_manager_unknown_fields() {
    let env = TestEnv::with_emulator();
    env.api("POST", ACCOUNTS, Some(json!({"accountId": "backend-sa"})));
    let path = format!("{ACCOUNTS}/{EMAIL}");
    let (_, empty) = env.api("POST", &format!("{path}:getIamPolicy"), None);
    let etag = empty["etag"].as_str().expect("etag").to_string();
    let policy = |etag: &str, member: &str| json!({"policy": {"etag": etag, "bindings": [{"role": "roles/iam.serviceAccountUser", "members": [member]}]}});
    let (status, written) = env.api(
        "POST",
        &format!("{path}:setIamPolicy"),
        Some(policy(&etag, "user:a@example.com")),
    );
    assert_eq!(status, 200);
    let current = written["etag"].as_str().expect("etag").to_string();
    let (status, stale) = env.api(
        "POST",
        &format!("{path}:setIamPolicy"),
        Some(policy(&etag, "user:b@example.com")),
    );
    assert_eq!(
        (status, stale["error"]["status"].as_str()),
        (409, Some("ABORTED")),
        "{stale}"
    );
    let (status, public) = env.api(
        "POST",
        &format!("{path}:setIamPolicy"),
        Some(policy(&current, "allUsers")),
    );
    assert_eq!(status, 400, "{public}");
    let (status, unknown) = env.api(
        "POST",
        "v3/projects/proj-test:getIamPolicy",
        Some(json!({"options": {"requestedPolicyVersion": 3, "bogus": true}})),
    );
    assert_eq!(
        (status, unknown["error"]["status"].as_str()),
        (400, Some("INVALID_ARGUMENT")),
        "{unknown}"
    );
    let (status, unknown) = env.api(
        "POST",
        "v3/projects/proj-test:setIamPolicy",
        Some(json!({"policy": {"bindings": []}, "colour": 1})),
    );
    assert_eq!(status, 400, "{unknown}");
}

#[test]
fn a_service_account_of_another_state_is_refused_and_not_adopted_later() {
    let env = TestEnv::with_emulator();
    env.write("envs/test/env.toml", &identity("Backend"));
    env.infra(&["apply", "--env", "test", "--auto-approve"])
        .expect_code(0);
    let (_, before) = env.api("GET", &format!("{ACCOUNTS}/{EMAIL}"), None);
    env.write(
        "envs/other/env.toml",
        &identity("Other").replace("name = \"test\"", "name = \"other\""),
    );
    for _ in 0..2 {
        let apply = env.infra(&["apply", "--env", "other", "--auto-approve"]);
        apply.expect_code(1);
        assert!(
            apply.stderr.contains(&format!(
                "service_account.backend: projects/proj-test/serviceAccounts/{EMAIL} already exists and is not in this state (service accounts carry no ownership labels): not adopted"
            )),
            "{}",
            apply.all()
        );
        assert!(
            apply.stderr.contains(&format!(
                "hint: if this environment should manage it: `infra import --env other 'service_account.backend' projects/proj-test/serviceAccounts/{EMAIL}`"
            )),
            "{}",
            apply.all()
        );
    }
    let (_, after) = env.api("GET", &format!("{ACCOUNTS}/{EMAIL}"), None);
    assert_eq!(
        before, after,
        "the first environment's account is untouched"
    );
}
