//! What CI reads from a plan: the Markdown for a pull-request comment (and the job summary),
//! Terraform's JSON plan representation, and `show` of a saved plan in both forms.

use crate::support::TestEnv;
use serde_json::Value as Json;

/// The bundled project applied on envs/local, then BETA_MAX_USERS changed from 500 to 750 (the
/// backend, which reads it by version, changes with it).
fn applied_with_one_secret_changed() -> TestEnv {
    let env = TestEnv::bundled();
    env.infra(&["apply", "--env", "local", "--auto-approve"])
        .expect_code(0);
    let module = env.read("modules/beta_secrets/module.toml");
    assert!(module.contains("BETA_MAX_USERS = \"500\""));
    env.write(
        "modules/beta_secrets/module.toml",
        &module.replace("BETA_MAX_USERS = \"500\"", "BETA_MAX_USERS = \"750\""),
    );
    env
}

#[test]
fn markdown_plan_of_one_secret_change_has_a_table_a_graph_and_no_value() {
    let mut env = applied_with_one_secret_changed();
    env.extra_env.push((
        "GITHUB_STEP_SUMMARY".into(),
        env.root.path().join("summary.md").display().to_string(),
    ));
    let run = env.infra(&[
        "plan",
        "--env",
        "local",
        "--markdown",
        "--detailed-exitcode",
        "--out",
        "change.plan",
    ]);
    run.expect_code(2);
    assert!(!run.stdout.contains("750"), "the secret value leaked");
    assert!(run.stdout.contains("```mermaid"), "{}", run.stdout);
    // Which revision serves depends on when the runtime account's grant reached Cloud Run:
    // a first revision refused its secrets is followed by another.
    insta::with_settings!({filters => vec![(r"-\d{5}-[a-z]{3}\b", "-[REVISION]")]}, {
        insta::assert_snapshot!(run.stdout);
    });
    assert_eq!(
        env.read("summary.md"),
        format!("{}\n", run.stdout),
        "the job summary holds the same Markdown"
    );

    env.extra_env.clear();
    let shown = env.infra(&["show", "--markdown", "change.plan"]);
    shown.expect_code(0);
    assert_eq!(shown.stdout, run.stdout, "show --markdown PLANFILE");
}

#[test]
fn terraform_json_names_resources_and_actions_field_for_field() {
    let env = applied_with_one_secret_changed();
    let run = env.infra(&[
        "plan",
        "--env",
        "local",
        "--json",
        "--format",
        "terraform",
        "--out",
        "change.plan",
    ]);
    run.expect_code(0);
    // The JSON holds digests and timestamps whose digits may contain 750 by chance: a leak is
    // the value as a JSON string, anywhere in the document.
    assert!(!run.stdout.contains("\"750\""), "the secret value leaked");
    let plan: Json = serde_json::from_str(&run.stdout).expect("JSON on stdout");
    assert!(!holds_string(&plan, "750"), "the secret value leaked");
    assert_eq!(plan["format_version"], "1.2");
    assert_eq!(plan["applyable"], true);
    assert_eq!(plan["errored"], false);
    let changes = plan["resource_changes"].as_array().expect("a list");
    assert_eq!(changes.len(), 58, "every resource, no-ops included");
    let changed: Vec<&Json> = changes
        .iter()
        .filter(|change| change["change"]["actions"] != serde_json::json!(["no-op"]))
        .collect();
    // The secret, and the backend whose variable names the secret's version: a new value is a
    // new revision.
    assert_eq!(changed.len(), 2, "{changed:#?}");
    assert_eq!(
        changed[0]["address"],
        "module.backend.cloud_run_service.backend[\"us-central1\"]"
    );
    assert_eq!(
        changed[0]["change"]["actions"],
        serde_json::json!(["update"])
    );
    let secret = changed[1];
    assert_eq!(
        secret["address"],
        "module.beta_secrets.secret.beta[\"BETA_MAX_USERS\"]"
    );
    assert_eq!(secret["module_address"], "module.beta_secrets");
    assert_eq!(secret["type"], "secret");
    assert_eq!(secret["name"], "beta");
    assert_eq!(secret["index"], "BETA_MAX_USERS");
    assert_eq!(secret["change"]["actions"], serde_json::json!(["update"]));
    assert_eq!(secret["change"]["after_sensitive"]["value"], true);
    assert_eq!(secret["change"]["after"]["value"], Json::Null);

    let shown = env.infra(&["show", "--json", "--format", "terraform", "change.plan"]);
    shown.expect_code(0);
    assert_eq!(
        shown.stdout, run.stdout,
        "show --json --format terraform PLANFILE"
    );
}

#[test]
fn markdown_of_the_state_is_refused_with_a_hint() {
    let env = TestEnv::bundled();
    let run = env.infra(&["show", "--env", "local", "--markdown"]);
    run.expect_code(1);
    assert!(run.stderr.contains("hint:"), "{}", run.all());
    // A usage error; its exit code is the usage errors' own (issue of the error edge).
    let run = env.infra(&["plan", "--env", "local", "--format", "terraform"]);
    assert_ne!(run.code, 0, "{}", run.all());
    assert!(run.stderr.contains("--json"), "{}", run.all());
}

/// Whether `document` holds `text` as a string anywhere (as a value or as a key).
fn holds_string(document: &Json, text: &str) -> bool {
    match document {
        Json::String(value) => value == text,
        Json::Array(items) => items.iter().any(|item| holds_string(item, text)),
        Json::Object(fields) => fields
            .iter()
            .any(|(key, value)| key == text || holds_string(value, text)),
        _ => false,
    }
}
