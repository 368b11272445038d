//! What a packager installs around the binary: completion scripts that the shells accept, the
//! man page, and `infra version` naming the commit.

use crate::support::{TestEnv, repository};
use std::process::Command;

#[test]
fn bash_accepts_the_completion_script_and_completes_subcommands() {
    let env = TestEnv::empty();
    let run = env.infra(&["completions", "bash"]);
    run.expect_code(0);
    env.write("infra.bash", &run.stdout);
    let script = env.root.path().join("infra.bash");
    // Sourcing registers the function; calling it the way bash does on `infra pl<TAB>` fills
    // COMPREPLY.
    let output = Command::new("bash")
        .arg("-c")
        .arg(
            "source \"$1\" && complete -p infra && COMP_WORDS=(infra pl) COMP_CWORD=1 \
             COMP_LINE='infra pl' COMP_POINT=8 && _infra infra pl infra && \
             printf '%s\\n' \"${COMPREPLY[@]}\"",
        )
        .arg("bash")
        .arg(&script)
        .output()
        .expect("bash runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.lines().any(|line| line == "plan"), "{stdout}");
}

#[test]
fn every_shell_gets_a_script_naming_the_commands() {
    let env = TestEnv::empty();
    for (shell, marker) in [
        ("zsh", "#compdef infra"),
        ("fish", "complete -c infra"),
        ("powershell", "Register-ArgumentCompleter"),
    ] {
        let run = env.infra(&["completions", shell]);
        run.expect_code(0);
        assert!(run.stdout.contains(marker), "{shell}: {}", run.stdout);
        assert!(
            run.stdout.contains("detailed-exitcode"),
            "{shell} lacks plan's flags"
        );
    }
    let run = env.infra(&["completions", "tcsh"]);
    assert_ne!(run.code, 0, "an unknown shell is a usage error");
}

#[test]
fn man_page_is_roff_with_every_command() {
    let run = TestEnv::empty().infra(&["man"]);
    run.expect_code(0);
    assert!(run.stdout.contains(".TH infra 1"), "{}", run.stdout);
    for command in ["plan", "apply", "completions", "graph"] {
        assert!(
            run.stdout.contains(&format!("infra\\-{command}")),
            "{command} missing from the man page"
        );
    }
}

#[test]
fn version_names_the_commit_it_was_built_from() {
    let run = TestEnv::empty().infra(&["version"]);
    run.expect_code(0);
    let head = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(repository())
        .output()
        .ok()
        .filter(|output| output.status.success())
        .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_string());
    let expected = format!(
        "infra {} (commit {})\n",
        env!("CARGO_PKG_VERSION"),
        head.unwrap_or_else(|| "unknown".into())
    );
    assert_eq!(run.stdout, expected);
    let flag = TestEnv::empty().infra(&["--version"]);
    assert_eq!(flag.stdout, expected);
}
