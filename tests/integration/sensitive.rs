//! No secret value reaches state, plan files, logs or output: sentinel values go in through a
//! literal, an environment variable and generation, and every artifact is searched for them
//! (plain, base64 and hex), with logging at trace level.

use crate::support::TestEnv;
use base64::Engine;

const LITERAL: &str = "sentinel-literal-7f3a9c";
const FROM_ENV: &str = "sentinel-env-51d2e8";
const CHANGED: &str = "sentinel-changed-c0ffee";

fn forms(secret: &str) -> Vec<String> {
    vec![
        secret.to_string(),
        base64::engine::general_purpose::STANDARD.encode(secret),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret),
        hex::encode(secret),
    ]
}

fn env_file(literal: &str) -> String {
    format!(
        r#"[env]
name = "test"
project = "proj-test"
region = "us-central1"

[vars]
api_key = "{literal}"

[resource.secret.literal]
secret_id = "LITERAL"
value = "${{var.api_key}}"

[resource.secret.from_env]
secret_id = "FROM_ENV"
value_from_env = "SENTINEL_SOURCE"

[resource.secret.generated]
secret_id = "GENERATED"
generate = {{ bytes = 24, encoding = "hex" }}

[output.literal_name]
value = "${{secret.literal.name}}"
"#
    )
}

#[test]
fn secret_values_never_reach_state_plans_logs_or_output() {
    let mut env = TestEnv::with_emulator();
    env.extra_env
        .push(("SENTINEL_SOURCE".into(), FROM_ENV.into()));
    env.extra_env.push(("INFRA_LOG".into(), "trace".into()));
    env.write("envs/test/env.toml", &env_file(LITERAL));

    let mut transcripts = Vec::new();
    {
        let mut run = |arguments: &[&str]| {
            let outcome = env.infra(arguments);
            transcripts.push(format!(
                "$ infra {}\n{}",
                arguments.join(" "),
                outcome.all()
            ));
            outcome
        };
        run(&["plan", "--env", "test", "--out", "created.plan"]).expect_code(0);
        run(&["plan", "--env", "test", "--json"]).expect_code(0);
        run(&["apply", "--env", "test", "created.plan"]).expect_code(0);
        run(&["plan", "--env", "test", "--detailed-exitcode"]).expect_code(0);
        run(&["show", "--env", "test"]).expect_code(0);
        run(&["show", "--env", "test", "--json"]).expect_code(0);
        run(&["output", "--env", "test", "--json"]).expect_code(0);
        run(&["show", "created.plan", "--json"]).expect_code(0);
    }

    env.write("envs/test/env.toml", &env_file(CHANGED));
    let mut updated = env.infra(&["plan", "--env", "test", "--out", "changed.plan"]);
    updated.expect_code(0);
    assert!(
        updated
            .stdout
            .contains("~ value = (sensitive value) -> (sensitive value)"),
        "{}",
        updated.all()
    );
    transcripts.push(std::mem::take(&mut updated.stdout) + &updated.stderr);
    let applied = env.infra(&["apply", "--env", "test", "changed.plan"]);
    applied.expect_code(0);
    transcripts.push(applied.all());

    // The generated value exists only in the emulator (Google's side); fetch it to search for it.
    let (_, access) = env.access_newest_version("v1/projects/proj-test/secrets/GENERATED");
    let generated_b64 = access["payload"]["data"]
        .as_str()
        .expect("generated payload")
        .to_string();
    let generated = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(&generated_b64)
            .expect("b64"),
    )
    .expect("utf8");
    assert_eq!(generated.len(), 48, "24 bytes as hex");
    let (_, literal) = env.access_newest_version("v1/projects/proj-test/secrets/LITERAL");
    assert_eq!(
        literal["payload"]["data"],
        base64::engine::general_purpose::STANDARD.encode(CHANGED),
        "the value did reach Google"
    );

    let mut artifacts = vec![
        ("state", env.read("state/test.state.json")),
        ("created.plan", env.read("created.plan")),
        ("changed.plan", env.read("changed.plan")),
    ];
    artifacts.extend(transcripts.into_iter().map(|text| ("transcript", text)));
    assert!(
        artifacts.iter().any(|(_, text)| text.contains("TRACE")),
        "trace logging was on"
    );
    let mut secrets: Vec<String> = Vec::new();
    for secret in [LITERAL, FROM_ENV, CHANGED, generated.as_str()] {
        secrets.extend(forms(secret));
    }
    for (name, text) in &artifacts {
        assert!(!text.is_empty(), "{name} is empty");
        for secret in &secrets {
            assert!(
                !text.contains(secret.as_str()),
                "{name} contains a secret value ({secret}):\n{text}"
            );
        }
    }
}
