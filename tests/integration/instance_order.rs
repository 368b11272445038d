//! Apply runs instance by instance: an IAM member naming `secret.a[each.key]` is created as soon
//! as its own secret is, while another secret of the block is still slow to answer; a splat
//! waits for the whole block; a failed secret skips only the member that names it; an expression
//! failing only once its reference is known is an error naming its place.

use crate::support::TestEnv;
use serde_json::json;

const BODY: &str = r#"
[vars]
keys = ["fast", "slow"]

[resource.secret.a]
for_each = "${var.keys}"
secret_id = "A-${each.key}"
value = "value-${each.key}"

[resource.iam_member.b]
for_each = "${var.keys}"
parent = "${secret.a[each.key].name}"
role = "roles/secretmanager.secretAccessor"
member = "serviceAccount:reader@proj-test.iam.gserviceaccount.com"

[output.names]
value = "${secret.a[*].name}"
"#;

fn project(emulator_flags: &[&str]) -> TestEnv {
    let mut env = TestEnv::empty();
    env.start_emulator_with(emulator_flags);
    env.write(
        "envs/test/env.toml",
        &format!(
            "[env]\nname = \"test\"\nproject = \"proj-test\"\nregion = \"us-central1\"\n{BODY}"
        ),
    );
    env
}

fn line(lines: &[&str], wanted: &str) -> usize {
    lines
        .iter()
        .position(|line| line.starts_with(wanted))
        .unwrap_or_else(|| panic!("no `{wanted}` line in {lines:#?}"))
}

#[test]
fn a_member_is_created_while_another_secret_of_the_block_is_still_slow() {
    // Only A-slow's version is slow to answer: three seconds against milliseconds.
    let env = project(&[
        "--slow-rate",
        "1",
        "--slow-ms",
        "3000",
        "--fault-only",
        "secrets/A-slow:addVersion",
    ]);
    let apply = env.infra(&["apply", "--env", "test", "--auto-approve"]);
    apply.expect_code(0);
    let lines: Vec<&str> = apply.stderr.lines().collect();
    let slow_done = line(&lines, r#"secret.a["slow"]: Creation complete after "#);
    assert!(
        line(&lines, r#"iam_member.b["fast"]: Creation complete after "#) < slow_done,
        "b[fast] waited for a[slow]: {lines:#?}"
    );
    assert!(line(&lines, r#"iam_member.b["slow"]: Creating…"#) > slow_done);
    assert!(
        apply.stdout.contains(
            "\nnames = [\"projects/proj-test/secrets/A-fast\", \"projects/proj-test/secrets/A-slow\"]\n"
        ),
        "the splat output saw both secrets\n{}",
        apply.all()
    );
    env.infra(&["plan", "--env", "test", "--detailed-exitcode"])
        .expect_code(0);
}

#[test]
fn a_failed_secret_skips_only_the_member_naming_it_and_the_splat() {
    let env = project(&[]);
    // Someone else's secret holds A-slow's id: infra's create is refused, and nothing of A-fast's.
    let (status, body) = env.api(
        "POST",
        "v1/projects/proj-test/secrets?secretId=A-slow",
        Some(json!({"replication": {"automatic": {}}})),
    );
    assert_eq!(status, 200, "{body}");
    let apply = env.infra(&["apply", "--env", "test", "--auto-approve"]);
    apply.expect_code(1);
    assert!(
        apply.stderr.contains("error: secret.a[\"slow\"]: "),
        "{}",
        apply.all()
    );
    assert!(
        apply.stderr.contains(
            "skipped because something they depend on failed: iam_member.b[\"slow\"], output.names\n"
        ),
        "{}",
        apply.all()
    );
    assert!(
        apply
            .stderr
            .contains("iam_member.b[\"fast\"]: Creation complete after "),
        "{}",
        apply.all()
    );
    let state = env.read("state/test.state.json");
    assert!(state.contains(r#""iam_member.b[\"fast\"]""#), "{state}");
    assert!(!state.contains(r#""iam_member.b[\"slow\"]""#), "{state}");
}

#[test]
fn an_expression_that_fails_once_its_reference_is_known_fails_the_apply_naming_its_place() {
    // secret.a's version is known only once it is created: b's label fails to evaluate then.
    let mut env = TestEnv::empty();
    env.start_emulator_with(&[]);
    env.write(
        "envs/test/env.toml",
        "[env]\nname = \"test\"\nproject = \"proj-test\"\nregion = \"us-central1\"\n\n\
         [resource.secret.a]\nsecret_id = \"a\"\nvalue = \"x\"\n\n\
         [resource.secret.b]\nsecret_id = \"b\"\nlabels = { v = \"${json(secret.a.version)}\" }\n",
    );
    let apply = env.infra(&["apply", "--env", "test", "--auto-approve"]);
    apply.expect_code(1);
    let errors: Vec<&str> = apply
        .stderr
        .lines()
        .filter(|line| line.starts_with("error: "))
        .collect();
    assert_eq!(
        errors,
        vec![
            "error: secret.b: envs/test/env.toml:12:19: error[expression]: json(): not valid JSON: expected value at line 1 column 1",
            "error: Apply failed: 1 error(s); 1 added, 0 changed, 0 destroyed — what succeeded is in the state",
        ],
        "{}",
        apply.all()
    );
    let state = env.read("state/test.state.json");
    assert!(state.contains(r#""secret.a""#), "{state}");
    assert!(!state.contains(r#""secret.b""#), "{state}");
}
