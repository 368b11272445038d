//! Guards at the configuration's edge: an emptied env.toml, an environment that declares nothing
//! over an applied state, and `validate` reporting every value-level problem at once.

use crate::support::TestEnv;

const ENV: &str = "envs/test/env.toml";
const SECRETS: &str = "v1/projects/proj-test/secrets";
const HEADER: &str = "[env]\nname = \"test\"\nproject = \"proj-test\"\nregion = \"us-central1\"\n";

/// A project with two secrets applied to its emulator.
fn applied() -> TestEnv {
    let env = TestEnv::with_emulator();
    env.write(
        ENV,
        &format!(
            "{HEADER}\n[resource.secret.a]\nsecret_id = \"A\"\nvalue = \"first\"\n\n[resource.secret.b]\nsecret_id = \"B\"\nvalue = \"second\"\n"
        ),
    );
    env.infra(&["apply", "--env", "test", "--auto-approve"])
        .expect_code(0);
    env
}

fn secret_exists(env: &TestEnv, secret_id: &str) -> bool {
    env.api("GET", &format!("{SECRETS}/{secret_id}"), None).0 == 200
}

#[test]
fn an_emptied_env_toml_fails_validate_and_apply_leaves_state_and_objects_alone() {
    let env = applied();
    let state_before = env.read("state/test.state.json");
    assert!(state_before.contains("secret.a"), "{state_before}");
    for emptied in [
        "",
        "# the environment, emptied by mistake\n",
        "[vars]\nx = 1\n",
    ] {
        env.write(ENV, emptied);
        let validate = env.infra(&["validate", "--env", "test"]);
        validate.expect_code(1);
        assert!(
            validate
                .stderr
                .contains("envs/test/env.toml:1:1: error[missing-field]: envs/test/env.toml has no [env] table"),
            "{}",
            validate.all()
        );
        env.infra(&["apply", "--env", "test", "--auto-approve"])
            .expect_code(1);
        assert_eq!(env.read("state/test.state.json"), state_before);
        assert!(secret_exists(&env, "A") && secret_exists(&env, "B"));
    }
}

#[test]
fn an_environment_that_declares_nothing_is_destroyed_only_when_asked() {
    let env = applied();
    let state_before = env.read("state/test.state.json");
    env.write(ENV, HEADER);
    let refused = env.infra(&["apply", "--env", "test", "--auto-approve"]);
    refused.expect_code(1);
    assert!(
        refused.stdout.is_empty(),
        "no plan shown: {}",
        refused.all()
    );
    insta::assert_snapshot!(refused.stderr);
    assert_eq!(env.read("state/test.state.json"), state_before);
    assert!(secret_exists(&env, "A") && secret_exists(&env, "B"));

    // `plan --destroy` is how to mean it, and so is the explicit flag.
    let destroy_plan = env.infra(&["plan", "--env", "test", "--destroy"]);
    destroy_plan.expect_code(0);
    assert!(
        destroy_plan.stdout.contains("2 to destroy"),
        "{}",
        destroy_plan.all()
    );
    env.infra(&[
        "apply",
        "--env",
        "test",
        "--auto-approve",
        "--allow-empty-config",
    ])
    .expect_code(0);
    assert!(!secret_exists(&env, "A") && !secret_exists(&env, "B"));
}

#[test]
fn validate_reports_every_value_problem_at_once_at_its_place() {
    let env = TestEnv::empty();
    env.write(
        ENV,
        &format!(
            "{HEADER}
[resource.secret.generated]
secret_id = \"G\"
generate = {{ bytes = 1000000000000, encoding = \"rot13\" }}

[resource.secret.first]
secret_id = \"shared\"

[resource.secret.second]
secret_id = \"shared\"

[resource.secret.each]
for_each = [\"x\", \"y\", \"x\"]
secret_id = \"e-${{each.key}}\"

[resource.cloud_run_service.web]
name = \"web\"
image = \"gcr.io/proj-test/web\"
min_instances = 3000000000
max_instances = 2

[resource.monitoring_dashboard.board]
display_name = \"board\"
dashboard_json = {{ mosaicLayout = {{ columns = 48, tiles = [{{ xPos = -1, yPos = 0, width = 4, height = 4 }}] }} }}
"
        ),
    );
    let run = env.infra(&["validate", "--env", "test"]);
    run.expect_code(1);
    assert!(run.stdout.is_empty(), "{}", run.all());
    insta::assert_snapshot!(run.stderr);
}
