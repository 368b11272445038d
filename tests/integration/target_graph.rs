//! `--target` (a resource with its dependencies, Terraform's warning, unknown addresses
//! refused) and `infra graph` in DOT and Mermaid.

use crate::support::TestEnv;

fn project() -> TestEnv {
    let env = TestEnv::with_emulator();
    env.write(
        "envs/test/env.toml",
        "[env]\nname = \"test\"\nproject = \"proj-test\"\nregion = \"us-central1\"\n\n\
         [resource.secret.a]\nsecret_id = \"A\"\nvalue = \"one\"\n\n\
         [resource.secret.b]\nsecret_id = \"B\"\nvalue = \"two\"\n\n\
         [resource.iam_member.read_a]\nparent = \"${secret.a.name}\"\n\
         role = \"roles/secretmanager.secretAccessor\"\n\
         member = \"serviceAccount:reader@proj-test.iam.gserviceaccount.com\"\n",
    );
    env
}

#[test]
fn a_target_is_applied_with_its_dependencies_and_a_warning() {
    let env = project();
    let plan = env.infra(&[
        "plan",
        "--env",
        "test",
        "--target",
        "iam_member.read_a",
        "--detailed-exitcode",
    ]);
    plan.expect_code(2);
    assert!(
        plan.stdout
            .contains("Plan: 2 to add, 0 to change, 0 to destroy."),
        "{}",
        plan.stdout
    );
    assert!(!plan.stdout.contains("secret.b"), "{}", plan.stdout);
    assert!(
        plan.stderr
            .contains("Warning: resource targeting is in effect"),
        "{}",
        plan.stderr
    );
    let markdown = env.infra(&[
        "plan",
        "--env",
        "test",
        "--target",
        "iam_member.read_a",
        "--markdown",
    ]);
    markdown.expect_code(0);
    assert!(
        markdown
            .stdout
            .contains("Resource targeting is in effect (`iam_member.read_a`)"),
        "{}",
        markdown.stdout
    );
    env.infra(&[
        "apply",
        "--env",
        "test",
        "--target",
        "iam_member.read_a",
        "--auto-approve",
    ])
    .expect_code(0);
    let rest = env.infra(&["plan", "--env", "test", "--detailed-exitcode"]);
    rest.expect_code(2);
    assert!(
        rest.stdout
            .contains("Plan: 1 to add, 0 to change, 0 to destroy.")
            && rest.stdout.contains("# secret.b will be created"),
        "{}",
        rest.stdout
    );
}

#[test]
fn an_unknown_target_is_refused_with_a_suggestion() {
    let env = project();
    let run = env.infra(&["plan", "--env", "test", "--target", "secret.c"]);
    run.expect_code(1);
    assert!(run.stderr.contains("--target secret.c"), "{}", run.all());
    assert!(
        run.stderr.contains("hint: did you mean `secret."),
        "{}",
        run.all()
    );
    env.infra(&["plan", "--env", "test", "--lock-timeout", "0s"])
        .expect_code(0);
}

#[test]
fn graph_draws_dependencies_in_dot_and_mermaid() {
    let env = project();
    let dot = env.infra(&["graph", "--env", "test"]);
    dot.expect_code(0);
    assert!(
        dot.stdout
            .contains("\"iam_member.read_a\" -> \"secret.a\";"),
        "{}",
        dot.stdout
    );
    let mermaid = env.infra(&["graph", "--env", "test", "--format", "mermaid"]);
    mermaid.expect_code(0);
    insta::assert_snapshot!(mermaid.stdout);

    env.infra(&["apply", "--env", "test", "--auto-approve"])
        .expect_code(0);
    env.write(
        "envs/test/env.toml",
        &env.read("envs/test/env.toml")
            .replace("value = \"two\"", "value = \"three\""),
    );
    let changes = env.infra(&["graph", "--env", "test", "--changes", "--format", "mermaid"]);
    changes.expect_code(0);
    assert!(
        changes.stdout.contains("[\"~ secret.b\"]"),
        "{}",
        changes.stdout
    );
    assert!(!changes.stdout.contains("secret.a"), "{}", changes.stdout);
}

#[test]
fn what_a_for_each_reads_is_a_dependency_of_every_instance() {
    // The members' keys are the secrets' ids: a target brings the secrets, the state records
    // them as each member's dependencies, and destroy deletes the members first.
    let env = TestEnv::with_emulator();
    env.write(
        "envs/test/env.toml",
        "[env]\nname = \"test\"\nproject = \"proj-test\"\nregion = \"us-central1\"\n\n\
         [vars]\nids = [\"A\", \"B\"]\n\n\
         [resource.secret.s]\nfor_each = \"${var.ids}\"\nsecret_id = \"${each.key}\"\n\n\
         [resource.iam_member.by_secret]\n\
         for_each = \"${zipmap(secret.s[*].secret_id, secret.s[*].name)}\"\n\
         parent = \"${each.value}\"\n\
         role = \"roles/secretmanager.secretAccessor\"\n\
         member = \"serviceAccount:reader@proj-test.iam.gserviceaccount.com\"\n",
    );
    let plan = env.infra(&[
        "plan",
        "--env",
        "test",
        "--target",
        "iam_member.by_secret[\"A\"]",
    ]);
    plan.expect_code(0);
    assert!(
        plan.stdout
            .contains("Plan: 3 to add, 0 to change, 0 to destroy."),
        "{}",
        plan.stdout
    );
    env.infra(&["apply", "--env", "test", "--auto-approve"])
        .expect_code(0);
    let state: serde_json::Value =
        serde_json::from_str(&env.read("state/test.state.json")).expect("state");
    let member = state["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .find(|resource| resource["address"] == "iam_member.by_secret[\"A\"]")
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        member["dependencies"],
        serde_json::json!(["secret.s[\"A\"]", "secret.s[\"B\"]"]),
        "{state}"
    );
    env.infra(&["destroy", "--env", "test", "--auto-approve"])
        .expect_code(0);
    let (_, log) = env.api("GET", "_emulator/requests", None);
    let requests = log["requests"].as_array().expect("log");
    let last = |wanted: &dyn Fn(&serde_json::Value) -> bool| requests.iter().rposition(wanted);
    for secret in ["A", "B"] {
        let member_removed = last(&|request| {
            request["path"]
                .as_str()
                .is_some_and(|path| path.ends_with(&format!("/secrets/{secret}:setIamPolicy")))
        });
        let secret_deleted = last(&|request| {
            request["method"] == "DELETE"
                && request["path"]
                    .as_str()
                    .is_some_and(|path| path.ends_with(&format!("/secrets/{secret}")))
        });
        assert!(
            matches!((member_removed, secret_deleted), (Some(member), Some(deleted)) if member < deleted),
            "{secret}: {log}"
        );
    }
}
