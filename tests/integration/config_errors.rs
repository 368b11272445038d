//! Bad configuration: each problem is its own error with file:line:col, exit 1, nothing written.

use crate::support::TestEnv;

fn check(env_toml: &str, module_toml: Option<&str>) -> String {
    let env = TestEnv::empty();
    env.write("envs/test/env.toml", env_toml);
    if let Some(module) = module_toml {
        env.write("modules/m/module.toml", module);
    }
    for command in [
        &["validate", "--env", "test"][..],
        &["plan", "--env", "test"][..],
        &["apply", "--env", "test", "--auto-approve"][..],
    ] {
        let run = env.infra(command);
        run.expect_code(1);
        assert!(run.stdout.is_empty(), "nothing on stdout: {}", run.all());
    }
    assert!(!env.root.path().join("state").exists(), "nothing written");
    env.infra(&["validate", "--env", "test"]).stderr
}

const HEADER: &str = "[env]\nname = \"test\"\nproject = \"p\"\nregion = \"us-central1\"\n";

#[test]
fn malformed_toml() {
    let error = check(
        &format!("{HEADER}\n[resource.secret.a]\nsecret_id = \"A\nvalue = 1\n"),
        None,
    );
    insta::assert_snapshot!(error);
}

#[test]
fn unknown_kind() {
    let error = check(
        &format!("{HEADER}\n[resource.secrets.a]\nsecret_id = \"A\"\n"),
        None,
    );
    insta::assert_snapshot!(error);
}

#[test]
fn unknown_field() {
    let error = check(
        &format!("{HEADER}\n[resource.secret.a]\nsecret_id = \"A\"\nlabel = {{ a = \"b\" }}\n"),
        None,
    );
    insta::assert_snapshot!(error);
}

#[test]
fn reference_to_a_missing_resource() {
    let error = check(
        &format!(
            "{HEADER}\n[resource.iam_member.a]\nparent = \"${{secret.missing.name}}\"\nrole = \"roles/viewer\"\nmember = \"user:a@b.c\"\n"
        ),
        None,
    );
    insta::assert_snapshot!(error);
}

#[test]
fn dependency_cycle() {
    let error = check(
        &format!(
            "{HEADER}\n[resource.secret.a]\nsecret_id = \"${{secret.b.secret_id}}x\"\n\n[resource.secret.b]\nsecret_id = \"B\"\ndepends_on = [\"secret.c\"]\n\n[resource.secret.c]\nsecret_id = \"${{secret.a.secret_id}}\"\n"
        ),
        None,
    );
    insta::assert_snapshot!(error);
}

#[test]
fn missing_required_input() {
    let error = check(
        &format!("{HEADER}\n[module.app]\nsource = \"m\"\n"),
        Some(
            "[input.accessor]\ntype = \"string\"\n\n[resource.secret.a]\nsecret_id = \"${input.accessor}\"\n",
        ),
    );
    insta::assert_snapshot!(error);
}

#[test]
fn several_problems_are_reported_together() {
    let error = check(
        &format!(
            "{HEADER}\n[resource.secret.a]\nsecret_id = \"A\"\ncolour = \"red\"\n\n[resource.secret.b]\nvalue = \"${{var.nope}}\"\n"
        ),
        None,
    );
    assert!(error.contains("3 configuration errors"), "{error}");
    assert!(
        error.contains("unknown-field")
            && error.contains("missing-field")
            && error.contains("unknown-reference"),
        "{error}"
    );
}
