//! Progress off a terminal (one line per operation as it starts and ends, in order), the
//! apply summary on stdout with the outputs, and `--color` / `CLICOLOR_FORCE`.

use crate::support::TestEnv;
use std::process::Command;

fn project() -> TestEnv {
    let env = TestEnv::with_emulator();
    env.write(
        "envs/test/env.toml",
        "[env]\nname = \"test\"\nproject = \"proj-test\"\nregion = \"us-central1\"\n\n\
         [resource.secret.a]\nsecret_id = \"A\"\nvalue = \"one\"\n\n\
         [resource.secret.b]\nsecret_id = \"B\"\nvalue = \"two\"\n\n\
         [resource.iam_member.read_a]\nparent = \"${secret.a.name}\"\n\
         role = \"roles/secretmanager.secretAccessor\"\n\
         member = \"serviceAccount:reader@proj-test.iam.gserviceaccount.com\"\n\n\
         [output.a_name]\nvalue = \"${secret.a.name}\"\n",
    );
    env
}

fn position(lines: &[&str], wanted: &str) -> usize {
    let found: Vec<usize> = lines
        .iter()
        .enumerate()
        .filter(|(_, line)| line.starts_with(wanted))
        .map(|(index, _)| index)
        .collect();
    assert_eq!(found.len(), 1, "exactly one `{wanted}` line in {lines:#?}");
    found[0]
}

#[test]
fn off_a_terminal_each_resource_gets_a_start_and_an_end_line_in_order() {
    let env = project();
    let apply = env.infra(&[
        "apply",
        "--env",
        "test",
        "--auto-approve",
        "--parallelism",
        "1",
    ]);
    apply.expect_code(0);
    let lines: Vec<&str> = apply.stderr.lines().collect();
    for address in ["secret.a", "secret.b", "iam_member.read_a"] {
        let started = position(&lines, &format!("{address}: Creating…"));
        let ended = position(&lines, &format!("{address}: Creation complete after "));
        assert_eq!(
            ended,
            started + 1,
            "parallelism 1: nothing between: {lines:#?}"
        );
    }
    assert!(
        position(&lines, "iam_member.read_a: Creating…")
            > position(&lines, "secret.a: Creation complete after "),
        "a dependency ends before its dependent starts"
    );
    assert!(
        apply
            .stdout
            .contains("\nApply complete! Resources: 3 added, 0 changed, 0 destroyed.\n"),
        "{}",
        apply.all()
    );
    assert!(
        apply
            .stdout
            .contains("Outputs:\n\na_name = \"projects/proj-test/secrets/A\"\n"),
        "{}",
        apply.stdout
    );

    env.write(
        "envs/test/env.toml",
        &env.read("envs/test/env.toml").replace(
            "[resource.secret.b]\nsecret_id = \"B\"\nvalue = \"two\"\n",
            "",
        ),
    );
    let destroy_b = env.infra(&["apply", "--env", "test", "--auto-approve"]);
    destroy_b.expect_code(0);
    let lines: Vec<&str> = destroy_b.stderr.lines().collect();
    assert!(
        position(&lines, "secret.b: Destruction complete after ")
            > position(&lines, "secret.b: Destroying…"),
        "{lines:#?}"
    );
}

#[test]
fn color_is_forced_by_the_flag_or_clicolor_force_and_refused_by_no_color() {
    let env = project();
    let always = env.infra(&["plan", "--env", "test", "--color", "always"]);
    always.expect_code(0);
    assert!(always.stdout.contains("\u{1b}[32m+"), "{}", always.stdout);
    let never = env.infra(&["plan", "--env", "test", "--color", "never"]);
    assert!(!never.stdout.contains('\u{1b}'), "{}", never.stdout);

    let run = |variables: &[(&str, &str)]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_infra"));
        command
            .args(["plan", "--env", "test"])
            .current_dir(env.root.path())
            .env(
                "INFRA_GCP_ENDPOINT",
                env.endpoint.as_deref().unwrap_or_default(),
            )
            .env("INFRA_GCP_CREDENTIALS", "none")
            .env(
                "GOOGLE_APPLICATION_CREDENTIALS",
                "/nonexistent/infra-test-credentials.json",
            )
            .env_remove("NO_COLOR")
            .env_remove("CLICOLOR_FORCE")
            .env_remove("INFRA_ENV")
            .env_remove("INFRA_ROOT");
        for (name, value) in variables {
            command.env(name, value);
        }
        let output = command.output().expect("infra runs");
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    assert!(!run(&[]).contains('\u{1b}'), "a pipe is not a terminal");
    assert!(run(&[("CLICOLOR_FORCE", "1")]).contains("\u{1b}[32m+"));
    assert!(!run(&[("CLICOLOR_FORCE", "1"), ("NO_COLOR", "1")]).contains('\u{1b}'));
}
