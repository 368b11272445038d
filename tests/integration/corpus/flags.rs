//! Bad-input corpus: command-line flags, arguments and environment variables. Every case exits
//! 1 (2 is only "changes present"), names the flag, argument or variable, gives a hint, and
//! writes nothing. The fixture has an applied state so that state subcommands reach their
//! address checks.

use super::{Case, case, run_table};
use crate::support::TestEnv;
use std::sync::OnceLock;

const ENV_TOML: &str = "[env]\nname = \"test\"\nproject = \"proj-test\"\nregion = \"us-central1\"\n\n[resource.secret.alpha]\nsecret_id = \"ALPHA\"\nvalue = \"a\"\n";

/// The state document an apply of `ENV_TOML` writes, made once per test run.
fn applied_state() -> &'static String {
    static STATE: OnceLock<String> = OnceLock::new();
    STATE.get_or_init(|| {
        let env = TestEnv::with_emulator();
        env.write("envs/test/env.toml", ENV_TOML);
        env.infra(&["apply", "--env", "test", "--auto-approve"])
            .expect_code(0);
        let state = env.read("state/test.state.json");
        assert!(state.contains("secret.alpha"), "{state}");
        state
    })
}

/// A project with environment `test` (local backend, this test's emulator) and its state.
fn with_state() -> TestEnv {
    let env = TestEnv::with_emulator();
    env.write("envs/test/env.toml", ENV_TOML);
    env.write("state/test.state.json", applied_state());
    env
}

/// The cases of this table.
pub fn cases() -> Vec<Case> {
    vec![
        // Numbers out of range or not numbers.
        case(
            "parallelism zero",
            &["plan", "--env", "test", "--parallelism", "0"],
        )
        .names(&["--parallelism", "'0'", "infra plan --help"]),
        case(
            "parallelism zero with detailed exit code exits 1, not 2",
            &[
                "plan",
                "--env",
                "test",
                "--detailed-exitcode",
                "--parallelism",
                "0",
            ],
        )
        .names(&["--parallelism", "1..=256"])
        .code(1),
        case(
            "parallelism huge",
            &["apply", "--env", "test", "--parallelism", "100000"],
        )
        .names(&["--parallelism", "100000", "infra apply --help"]),
        case(
            "parallelism negative",
            &["destroy", "--env", "test", "--parallelism=-1"],
        )
        .names(&["--parallelism", "-1"]),
        case(
            "parallelism a word",
            &["plan", "--env", "test", "--parallelism", "lots"],
        )
        .names(&["--parallelism", "lots"]),
        // Durations.
        case(
            "lock timeout garbage",
            &["plan", "--env", "test", "--lock-timeout", "garbage"],
        )
        .names(&["--lock-timeout", "garbage", "not a duration"]),
        case(
            "lock timeout unknown unit",
            &["plan", "--env", "test", "--lock-timeout", "5y"],
        )
        .names(&["--lock-timeout", "unknown unit `y`"]),
        case(
            "lock timeout too long",
            &[
                "plan",
                "--env",
                "test",
                "--lock-timeout",
                "99999999999999999999999h",
            ],
        )
        .names(&["--lock-timeout", "too long"]),
        case(
            "lock timeout negative",
            &["apply", "--env", "test", "--lock-timeout=-5s"],
        )
        .names(&["--lock-timeout", "-5s"]),
        case(
            "lock timeout empty",
            &["show", "--env", "test", "--lock-timeout="],
        )
        .names(&["--lock-timeout", "not a duration"]),
        case(
            "state lock timeout garbage",
            &["state", "list", "--env", "test", "--lock-timeout", "soon"],
        )
        .names(&["--lock-timeout", "soon", "infra state list --help"]),
        case(
            "output lock timeout garbage",
            &["output", "--env", "test", "--lock-timeout", "1x"],
        )
        .names(&["--lock-timeout", "unknown unit `x`"]),
        // Terraform habits and typos.
        case(
            "terraform style out",
            &["plan", "--env", "test", "-out=x.plan"],
        )
        .names(&["'-o'", "two dashes: `--out=x.plan`"]),
        case(
            "terraform style auto approve",
            &["apply", "--env", "test", "-auto-approve"],
        )
        .names(&["'-a'", "`--auto-approve`"]),
        case("unknown flag", &["plan", "--env", "test", "--frobnicate"])
            .names(&["--frobnicate", "infra plan --help"]),
        case(
            "typo in a flag",
            &["plan", "--env", "test", "--detailed-exit-code"],
        )
        .names(&["--detailed-exit-code", "--detailed-exitcode"]),
        case("typo in a command", &["plna", "--env", "test"]).names(&["plna", "'plan'"]),
        case("unknown command", &["deploy", "--env", "test"]).names(&["deploy", "infra --help"]),
        case(
            "typo in a state subcommand",
            &["state", "lst", "--env", "test"],
        )
        .names(&["lst", "'list'", "infra state --help"]),
        case("no command", &[]).names(&["`infra` needs a command", "validate"]),
        case("state without subcommand", &["state", "--env", "test"])
            .names(&["'infra state' requires a subcommand", "infra state --help"]),
        case(
            "extra positional argument",
            &["plan", "--env", "test", "everything"],
        )
        .names(&["everything"]),
        case(
            "value given to a switch",
            &["plan", "--env", "test", "--json=yes"],
        )
        .names(&["--json", "yes"]),
        case(
            "refresh neither true nor false",
            &["plan", "--env", "test", "--refresh=maybe"],
        )
        .names(&["--refresh", "maybe"]),
        case(
            "flag given twice",
            &[
                "plan", "--env", "test", "--out", "a.plan", "--out", "b.plan",
            ],
        )
        .names(&["--out"]),
        case("flag without its value", &["plan", "--env"]).names(&["--env"]),
        // Missing arguments.
        case(
            "state rm without address",
            &["state", "rm", "--env", "test"],
        )
        .names(&["<ADDRESSES>", "infra state rm --help"]),
        case(
            "state mv without target",
            &["state", "mv", "--env", "test", "secret.alpha"],
        )
        .names(&["<TO>", "infra state mv --help"]),
        case(
            "state show without address",
            &["state", "show", "--env", "test"],
        )
        .names(&["<ADDRESS>"]),
        case(
            "state push without file",
            &["state", "push", "--env", "test"],
        )
        .names(&["<FILE>"]),
        case(
            "import without id",
            &["import", "--env", "test", "secret.alpha"],
        )
        .names(&["<ID>", "infra import --help"]),
        case(
            "force-unlock without id",
            &["force-unlock", "--env", "test"],
        )
        .names(&["<ID>", "infra force-unlock --help"]),
        // Log filter.
        case(
            "log level garbage",
            &["--log-level", "garbage", "validate", "--env", "test"],
        )
        .names(&["--log-level", "garbage"]),
        case(
            "log level bad directive",
            &["validate", "--env", "test", "--log-level", "infra=loud"],
        )
        .names(&["--log-level", "infra=loud"]),
        case("INFRA_LOG bad", &["validate", "--env", "test"])
            .env("INFRA_LOG", "verbose")
            .names(&["--log-level", "INFRA_LOG is set to `verbose`"]),
        // Environment names and roots.
        case("env does not exist", &["plan", "--env", "nope"]).names(&["nope"]),
        case("env is a path traversal", &["plan", "--env", "../x"])
            .names(&["--env", "`../x` is not an environment name"]),
        case("env is an absolute path", &["validate", "--env", "/etc"]).names(&["--env", "`/etc`"]),
        case("env is empty", &["validate", "--env", ""]).names(&["--env"]),
        case("INFRA_ENV is a path traversal", &["plan"])
            .env("INFRA_ENV", "../../etc")
            .names(&["--env", "INFRA_ENV is set to `../../etc`"]),
        case("INFRA_ENV does not exist", &["plan"])
            .env("INFRA_ENV", "staging2")
            .names(&["staging2"]),
        case(
            "root does not exist",
            &["plan", "--env", "test", "--root", "/nonexistent/infra"],
        )
        .names(&["/nonexistent/infra"]),
        case("INFRA_ROOT does not exist", &["validate", "--env", "test"])
            .env("INFRA_ROOT", "/nonexistent/infra-root")
            .names(&["/nonexistent/infra-root"]),
        // Client settings from the environment.
        case("INFRA_HTTP_TIMEOUT garbage", &["plan", "--env", "test"])
            .env("INFRA_HTTP_TIMEOUT", "fast")
            .names(&["INFRA_HTTP_TIMEOUT", "`fast`"]),
        case("INFRA_HTTP_TIMEOUT zero", &["plan", "--env", "test"])
            .env("INFRA_HTTP_TIMEOUT", "0s")
            .names(&["INFRA_HTTP_TIMEOUT", "0 would fail every request"]),
        case("INFRA_GCP_ENDPOINT not a URL", &["plan", "--env", "test"])
            .env("INFRA_GCP_ENDPOINT", "localhost 8086")
            .names(&["INFRA_GCP_ENDPOINT", "`localhost 8086`"]),
        case(
            "INFRA_GCP_ENDPOINT wrong scheme",
            &["plan", "--env", "test"],
        )
        .env("INFRA_GCP_ENDPOINT", "ftp://127.0.0.1:8086/")
        .names(&["INFRA_GCP_ENDPOINT", "scheme `ftp`"]),
        // Plan file paths.
        case(
            "plan file missing",
            &["apply", "--env", "test", "missing.plan"],
        )
        .names(&["missing.plan"]),
        case(
            "plan file is a directory",
            &["apply", "--env", "test", "envs"],
        )
        .names(&["envs"])
        .absent("Is a directory (os error 21): Is a directory (os error 21)"),
        case(
            "plan file is not a plan",
            &["apply", "--env", "test", "notes.txt"],
        )
        .file("notes.txt", "remember to apply on Friday\n")
        .names(&["notes.txt", "not an infra plan file"]),
        case(
            "state show with no state yet",
            &["state", "show", "--env", "test", "secret.alpha"],
        )
        .without("state/test.state.json")
        .names(&["there is no state yet for `test`", "infra apply --env test"]),
        case(
            "show plan file missing",
            &["show", "--env", "test", "gone.plan"],
        )
        .names(&["gone.plan"]),
        case(
            "plan out under a file",
            &[
                "plan",
                "--env",
                "test",
                "--out",
                "envs/test/env.toml/x.plan",
            ],
        )
        .names(&["envs/test/env.toml/x.plan"]),
        // State subcommands with bad addresses and generations.
        case(
            "state show unknown address",
            &["state", "show", "--env", "test", "secret.nope"],
        )
        .names(&["no resource `secret.nope` in the state"]),
        case(
            "state rm unknown address",
            &["state", "rm", "--env", "test", "secret.nope"],
        )
        .names(&["no resource `secret.nope` in the state"]),
        case(
            "state mv from unknown address",
            &[
                "state",
                "mv",
                "--env",
                "test",
                "secret.nope",
                "secret.other",
            ],
        )
        .names(&["no resource `secret.nope` in the state"]),
        case(
            "state mv onto itself",
            &[
                "state",
                "mv",
                "--env",
                "test",
                "secret.alpha",
                "secret.alpha",
            ],
        )
        .names(&["secret.alpha", "already in the state"]),
        case(
            "state mv to a malformed address",
            &[
                "state",
                "mv",
                "--env",
                "test",
                "secret.alpha",
                "not an address",
            ],
        )
        .names(&["`not an address` is not a resource address"]),
        case(
            "state mv to an unclosed index",
            &[
                "state",
                "mv",
                "--env",
                "test",
                "secret.alpha",
                "secret.alpha[\"KEY",
            ],
        )
        .names(&["`secret.alpha[\"KEY` is not a resource address"]),
        case(
            "state restore a word",
            &["state", "restore", "--env", "test", "latest"],
        )
        .names(&["<GENERATION>", "latest"]),
        case(
            "state restore a fraction",
            &["state", "restore", "--env", "test", "1.5"],
        )
        .names(&["<GENERATION>", "1.5"]),
        case(
            "state push missing file",
            &["state", "push", "--env", "test", "nope.json"],
        )
        .names(&["nope.json", "state pull"]),
        case(
            "import unknown address",
            &[
                "import",
                "--env",
                "test",
                "secret.nope",
                "projects/proj-test/secrets/NOPE",
            ],
        )
        .names(&["secret.nope", "not in the configuration"]),
        case("output unknown name", &["output", "--env", "test", "nope"]).names(&["nope"]),
        // force-unlock with bad ids.
        case(
            "force-unlock when not locked",
            &["force-unlock", "--env", "test", "--force", "123"],
        )
        .names(&["not locked", "state/test.state.json"]),
        case(
            "force-unlock without --force off a terminal",
            &["force-unlock", "--env", "test", "abc"],
        )
        .names(&["not locked"]),
        // The emulator's own flags.
        case(
            "emulator fail rate above one",
            &["emulator", "--port", "0", "--fail-rate", "2"],
        )
        .names(&["--fail-rate 2"]),
        case(
            "emulator port out of range",
            &["emulator", "--port", "99999"],
        )
        .names(&["--port", "99999"]),
        case(
            "emulator host not an address",
            &["emulator", "--host", "localhost:1"],
        )
        .names(&["--host", "localhost:1"]),
    ]
}

#[test]
fn flags_bad_inputs() {
    run_table(&with_state, &cases());
}
