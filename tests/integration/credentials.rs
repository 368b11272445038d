//! Credentials are the configuration's business, never the endpoint's: a run through an
//! endpoint override (a private or restricted Google endpoint, here a proxy) still carries the
//! Application Default Credentials' bearer token and quota project, and the token never
//! appears in any output, trace logs included.

use crate::lost_answers::{FaultProxy, SENTINEL_TOKEN};
use crate::support::TestEnv;

const ENV_FILE: &str = r#"[env]
name = "test"
project = "proj-test"
region = "us-central1"

[resource.secret.api_key]
secret_id = "API_KEY"
value = "not-a-real-key"

[resource.budget.monthly]
billing_account = "012345-6789AB-CDEF01"
display_name = "Test monthly"
amount = 500
projects = ["projects/123456789012"]
"#;

/// Writes user credentials (as `gcloud auth application-default login` leaves them) whose
/// token endpoint is the proxy's, and returns their path.
fn user_credentials(env: &TestEnv, proxy: &FaultProxy, quota_project: Option<&str>) -> String {
    let quota = quota_project
        .map(|project| format!(r#", "quota_project_id": "{project}""#))
        .unwrap_or_default();
    env.write(
        "adc.json",
        &format!(
            r#"{{"type": "authorized_user", "client_id": "id.apps.googleusercontent.com", "client_secret": "s", "refresh_token": "r", "token_uri": "{}token"{quota}}}"#,
            proxy.endpoint
        ),
    );
    env.root.path().join("adc.json").display().to_string()
}

fn with_user_credentials(env: &mut TestEnv, path: String) {
    env.extra_env
        .push(("GOOGLE_APPLICATION_CREDENTIALS".into(), path));
    env.extra_env
        .push(("INFRA_GCP_CREDENTIALS".into(), "application-default".into()));
}

#[test]
fn an_endpoint_override_keeps_the_credentials_and_their_quota_project() {
    let mut env = TestEnv::with_emulator();
    env.write("envs/test/env.toml", ENV_FILE);
    let proxy = FaultProxy::transparent(env.endpoint.as_deref().expect("emulator"));
    let path = user_credentials(&env, &proxy, Some("adc-quota-project"));
    with_user_credentials(&mut env, path);
    let apply = env.infra_at(
        Some(&proxy.endpoint),
        &[
            "apply",
            "--env",
            "test",
            "--auto-approve",
            "--log-level",
            "trace",
        ],
    );
    apply.expect_code(0);
    let seen = proxy.seen.lock().expect("seen").clone();
    assert!(!seen.is_empty(), "no request reached the proxy");
    for (authorization, quota_project) in &seen {
        assert_eq!(authorization, &format!("Bearer {SENTINEL_TOKEN}"));
        assert_eq!(quota_project, "adc-quota-project");
    }
    assert!(
        !apply.all().contains("SENTINEL"),
        "the access token reached the output:\n{}",
        apply.all()
    );
    assert!(
        apply.stderr.contains("TRACE") || apply.stderr.contains("trace"),
        "trace logging was not on, so the check above proves nothing:\n{}",
        apply.stderr
    );
}

#[test]
fn the_env_files_quota_project_applies_when_adc_names_none() {
    let mut env = TestEnv::with_emulator();
    env.write(
        "envs/test/env.toml",
        &ENV_FILE.replace(
            "region = \"us-central1\"\n",
            "region = \"us-central1\"\n\n[gcp]\nquota_project = \"env-quota-project\"\n",
        ),
    );
    let proxy = FaultProxy::transparent(env.endpoint.as_deref().expect("emulator"));
    let path = user_credentials(&env, &proxy, None);
    with_user_credentials(&mut env, path);
    env.infra_at(Some(&proxy.endpoint), &["plan", "--env", "test"])
        .expect_code(0);
    let seen = proxy.seen.lock().expect("seen").clone();
    assert!(!seen.is_empty(), "no request reached the proxy");
    assert!(
        seen.iter()
            .all(|(_, quota_project)| quota_project == "env-quota-project"),
        "{seen:?}"
    );
}

#[test]
fn an_emulator_endpoint_alone_does_not_drop_the_credentials() {
    let mut env = TestEnv::with_emulator();
    env.write("envs/test/env.toml", ENV_FILE);
    // Credentials that cannot load: with an endpoint but no "none", infra must try them.
    env.extra_env
        .push(("INFRA_GCP_CREDENTIALS".into(), "application-default".into()));
    let plan = env.infra(&["plan", "--env", "test"]);
    plan.expect_code(1);
    assert!(plan.stderr.contains("credentials"), "{}", plan.all());
}
