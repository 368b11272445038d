//! One conformance suite for the state backends, run against the local backend and against
//! GCS on the emulator: round trip, lock contention, unlock with a wrong id, stale writes,
//! push checks. Then the GCS-only behaviour: concurrent applies, a killed apply's lock,
//! versions and restore, import.

use crate::support::TestEnv;
use infra::config::BackendSettings;
use infra::gcp::GcpClient;
use infra::state::{Backend, State, StateError};
use serde_json::{Value as Json, json};
use std::path::PathBuf;
use std::time::Duration;

/// Which backend a conformance case runs against.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Local,
    Gcs,
}

struct Fixture {
    env: TestEnv,
    kind: Kind,
}

impl Fixture {
    fn new(kind: Kind) -> Self {
        let env = TestEnv::with_emulator();
        if matches!(kind, Kind::Gcs) {
            let (status, _) = env.api(
                "POST",
                "storage/v1/b?project=proj-test",
                Some(json!({"name": "conformance-state", "versioning": {"enabled": true}})),
            );
            assert_eq!(status, 200);
        }
        Self { env, kind }
    }

    fn open(&self) -> Backend {
        let client = GcpClient::new(self.env.endpoint.clone(), infra::gcp::Authentication::None)
            .expect("client");
        let settings = match self.kind {
            Kind::Local => BackendSettings::Local {
                path: PathBuf::from("state/test.state.json"),
            },
            Kind::Gcs => BackendSettings::Gcs {
                bucket: "conformance-state".into(),
                prefix: "infra".into(),
                create_bucket: false,
            },
        };
        Backend::open(
            "test",
            "proj-test",
            &settings,
            self.env.root.path(),
            &client,
        )
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

fn conformance(kind: Kind) {
    let fixture = Fixture::new(kind);
    runtime().block_on(async {
        // Round trip.
        let mut first = fixture.open();
        first.lock("test", Duration::ZERO).await.expect("lock");
        assert!(
            first.read().await.expect("read").is_none(),
            "{kind:?}: empty at first"
        );
        let mut state = State::new("test");
        state.serial = 1;
        first.write(&state).await.expect("write");
        let read = fixture.open().read().await.expect("read").expect("a state");
        assert_eq!(
            (read.lineage.clone(), read.serial),
            (state.lineage.clone(), 1),
            "{kind:?}"
        );

        // Lock contention: a second holder waits its timeout, then is told who holds it.
        let mut second = fixture.open();
        let started = std::time::Instant::now();
        let error = second
            .lock("test", Duration::from_millis(300))
            .await
            .expect_err("held");
        assert!(
            started.elapsed() >= Duration::from_millis(250),
            "{kind:?}: it waited"
        );
        assert!(
            matches!(
                error,
                StateError::Locked {
                    holder: Some(_),
                    ..
                }
            ),
            "{kind:?}: {error}"
        );
        assert!(
            error.to_string().contains("state locked by"),
            "{kind:?}: {error}"
        );

        // Unlocking with a wrong id fails and leaves the lock alone.
        let error = second.force_unlock("12345").await.expect_err("wrong id");
        assert!(
            matches!(error, StateError::LockMismatch { .. }),
            "{kind:?}: {error}"
        );
        assert!(
            fixture.open().holder().await.expect("holder").is_some(),
            "{kind:?}: still locked"
        );
        first.unlock().await;
        second
            .lock("test", Duration::ZERO)
            .await
            .expect("free once released");
        second.unlock().await;

        // A stale write fails: someone wrote after this backend read.
        let stale = fixture.open();
        let mut old = stale.read().await.expect("read").expect("state");
        let fresh = fixture.open();
        let mut newer = fresh.read().await.expect("read").expect("state");
        newer.serial += 1;
        fresh.write(&newer).await.expect("first writer wins");
        old.serial += 1;
        let error = stale.write(&old).await.expect_err("stale");
        assert!(
            matches!(error, StateError::Stale { .. }),
            "{kind:?}: {error}"
        );
    });
    push_checks(&fixture);
}

/// `state push` refuses another lineage and an older serial, and `--force` overrides both.
fn push_checks(fixture: &Fixture) {
    let env = &fixture.env;
    let backend = match fixture.kind {
        Kind::Local => "[backend]\nkind = \"local\"\n".to_string(),
        Kind::Gcs => {
            "[backend]\nkind = \"gcs\"\nbucket = \"conformance-state\"\nprefix = \"infra\"\n"
                .to_string()
        }
    };
    env.write(
        "envs/test/env.toml",
        &format!("[env]\nname = \"test\"\nproject = \"proj-test\"\nregion = \"us-central1\"\n\n{backend}\n[resource.secret.a]\nsecret_id = \"A\"\nvalue = \"1\"\n"),
    );
    env.infra(&["apply", "--env", "test", "--auto-approve"])
        .expect_code(0);
    let pulled = env.infra(&["state", "pull", "--env", "test"]);
    pulled.expect_code(0);
    env.write("old.json", &pulled.stdout);
    env.write(
        "envs/test/env.toml",
        &env.read("envs/test/env.toml")
            .replace("value = \"1\"", "value = \"2\""),
    );
    env.infra(&["apply", "--env", "test", "--auto-approve"])
        .expect_code(0);
    let refused = env.infra(&["state", "push", "--env", "test", "old.json"]);
    refused.expect_code(1);
    assert!(
        refused.stderr.contains("is older than the current state's"),
        "{:?}: {}",
        fixture.kind,
        refused.all()
    );
    let mut foreign: serde_json::Value = serde_json::from_str(&pulled.stdout).expect("json");
    foreign["lineage"] = json!("00000000-0000-0000-0000-000000000000");
    foreign["serial"] = json!(10_000);
    let mut document: State = serde_json::from_value(foreign).expect("state");
    document.checksum.clear();
    env.write(
        "foreign.json",
        &String::from_utf8_lossy(&document.to_bytes()),
    );
    let refused = env.infra(&["state", "push", "--env", "test", "foreign.json"]);
    refused.expect_code(1);
    assert!(
        refused.stderr.contains("belongs to another state"),
        "{:?}: {}",
        fixture.kind,
        refused.all()
    );
    env.infra(&["state", "push", "--env", "test", "old.json", "--force"])
        .expect_code(0);
    let plan = env.infra(&["plan", "--env", "test", "--detailed-exitcode"]);
    plan.expect_code(2);
    assert!(
        plan.stdout.contains("has changed: value"),
        "the pushed state predates the second value: {}",
        plan.all()
    );
}

#[test]
fn the_local_backend_conforms() {
    conformance(Kind::Local);
}

#[test]
fn the_gcs_backend_on_the_emulator_conforms() {
    conformance(Kind::Gcs);
}

/// Returns the Cloud Storage requests the emulator logged so far.
fn storage_requests(fixture: &Fixture) -> Vec<Json> {
    let (status, log) = fixture.env.api("GET", "_emulator/requests", None);
    assert_eq!(status, 200, "{log}");
    log["requests"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|request| {
            request["path"]
                .as_str()
                .is_some_and(|path| path.starts_with("/storage/"))
        })
        .cloned()
        .collect()
}

/// The read between taking the lock and the first change is one request: the download names
/// its generation (`x-goog-generation`), and that generation guards the next write.
#[test]
fn a_gcs_state_is_read_in_one_request_whose_generation_guards_the_next_write() {
    let fixture = Fixture::new(Kind::Gcs);
    let mut state = State::new("test");
    state.serial = 1;
    runtime().block_on(async {
        let writer = fixture.open();
        assert!(writer.read().await.expect("read").is_none());
        writer.write(&state).await.expect("write");
    });
    let before = storage_requests(&fixture).len();
    let reader = fixture.open();
    let mut read = runtime()
        .block_on(reader.read())
        .expect("read")
        .expect("a state");
    let requests = storage_requests(&fixture);
    assert_eq!(
        requests.len() - before,
        1,
        "one request reads the state: {:?}",
        &requests[before..]
    );
    assert_eq!(requests[before]["query"]["alt"], "media");
    assert_eq!(
        (read.lineage.clone(), read.serial),
        (state.lineage.clone(), 1)
    );
    // The generation learnt from the download is the one the write is conditioned on: a write
    // by someone else in between makes it stale, and without one it goes through.
    read.serial = 2;
    runtime().block_on(async {
        let other = fixture.open();
        let mut newer = other.read().await.expect("read").expect("state");
        newer.serial = 2;
        other.write(&newer).await.expect("the other writer first");
        let error = reader.write(&read).await.expect_err("stale");
        assert!(matches!(error, StateError::Stale { .. }), "{error}");
        let fresh = fixture.open();
        let mut current = fresh.read().await.expect("read").expect("state");
        current.serial = 3;
        fresh
            .write(&current)
            .await
            .expect("a write after a one-request read");
    });
}

fn emulated(iteration: usize) -> String {
    format!(
        r#"[env]
name = "emulated"
project = "proj-test"
region = "us-central1"

[gcp]
emulator_only = true

[backend]
kind = "gcs"
bucket = "emulated-state"
prefix = "infra"
create_bucket = true

[resource.secret.counter]
secret_id = "COUNTER"
value = "{iteration}"

[resource.cloud_run_service.api]
name = "api"
image = "img:1"
env = {{ ITERATION = "{iteration}" }}
deletion_protection = false
"#
    )
}

#[test]
fn of_two_applies_started_together_exactly_one_proceeds() {
    let mut env = TestEnv::empty();
    // Each apply updates a Cloud Run service whose operation takes 600 ms: the winner holds
    // the lock well past the loser's 150 ms lock timeout.
    env.start_emulator_with(&["--operation-delay-ms", "600"]);
    let binary = env!("CARGO_BIN_EXE_infra");
    for iteration in 0..20 {
        env.write("envs/emulated/env.toml", &emulated(iteration));
        let spawn = || {
            std::process::Command::new(binary)
                .args([
                    "apply",
                    "--env",
                    "emulated",
                    "--auto-approve",
                    "--lock-timeout",
                    "150ms",
                ])
                .current_dir(env.root.path())
                .env(
                    "INFRA_GCP_ENDPOINT",
                    env.endpoint.clone().expect("endpoint"),
                )
                .env("INFRA_GCP_CREDENTIALS", "none")
                .env(
                    "GOOGLE_APPLICATION_CREDENTIALS",
                    "/nonexistent/infra-test-credentials.json",
                )
                .env("NO_COLOR", "1")
                .env_remove("INFRA_LOG")
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("spawn")
        };
        let (first, second) = (spawn(), spawn());
        let outcomes: Vec<std::process::Output> = [first, second]
            .into_iter()
            .map(|child| child.wait_with_output().expect("wait"))
            .collect();
        let codes: Vec<i32> = outcomes
            .iter()
            .map(|output| output.status.code().unwrap_or(-1))
            .collect();
        let transcript: String = outcomes
            .iter()
            .map(|output| String::from_utf8_lossy(&output.stderr).into_owned())
            .collect::<Vec<_>>()
            .join("\n---\n");
        let mut sorted = codes.clone();
        sorted.sort();
        assert_eq!(
            sorted,
            vec![0, 1],
            "iteration {iteration}: exactly one proceeds\n{transcript}"
        );
        let loser = &outcomes[codes.iter().position(|code| *code == 1).expect("a loser")];
        let message = String::from_utf8_lossy(&loser.stderr);
        assert!(
            message.contains("state locked by")
                && message.contains("for `apply`")
                && message.contains("(pid "),
            "iteration {iteration}: names the holder\n{message}"
        );
        assert!(
            message.contains("infra force-unlock --env emulated"),
            "{message}"
        );
    }
    env.infra(&["plan", "--env", "emulated", "--detailed-exitcode"])
        .expect_code(0);
}

/// A plan on GCS reads the state together with taking the lock, saving a round trip. When it
/// had to wait for an apply's lock, the apply wrote after that read: once the plan holds the
/// lock it sees the state changed, reads it again, and plans from what the apply left.
#[test]
fn a_plan_that_waited_for_an_apply_plans_from_the_state_the_apply_left() {
    let mut env = TestEnv::empty();
    // The apply's Cloud Run create takes 1.5 s: the plan starts long before the apply saves it.
    env.start_emulator_with(&["--operation-delay-ms", "1500"]);
    env.write("envs/emulated/env.toml", &emulated(0));
    let apply = env
        .command(&["apply", "--env", "emulated", "--auto-approve"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut waited = 0;
    while env
        .api(
            "GET",
            "storage/v1/b/emulated-state/o/infra%2Femulated.lock",
            None,
        )
        .0
        != 200
    {
        waited += 1;
        assert!(waited < 400, "the apply never took the lock");
        std::thread::sleep(Duration::from_millis(10));
    }
    let plan = env.infra(&[
        "plan",
        "--env",
        "emulated",
        "--detailed-exitcode",
        "--lock-timeout",
        "30s",
    ]);
    let applied = apply.wait_with_output().expect("wait");
    assert!(
        applied.status.success(),
        "{}",
        String::from_utf8_lossy(&applied.stderr)
    );
    plan.expect_code(0);
    assert!(plan.stdout.contains("No changes."), "{}", plan.all());
}

#[test]
fn a_killed_apply_leaves_its_lock_and_force_unlock_recovers() {
    let mut env = TestEnv::empty();
    env.start_emulator_with(&["--operation-delay-ms", "3000"]);
    env.write("envs/emulated/env.toml", &emulated(1));
    let mut child = env
        .command(&["apply", "--env", "emulated", "--auto-approve"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    // Wait until the Cloud Run create is under way (its intent is in the state), then kill -9.
    let mut waited = 0;
    loop {
        let (status, _) = env.api(
            "GET",
            "v2/projects/proj-test/locations/us-central1/services/api",
            None,
        );
        if status == 200 {
            break;
        }
        waited += 1;
        assert!(waited < 200, "the apply never reached the service");
        std::thread::sleep(Duration::from_millis(25));
    }
    child.kill().expect("kill -9");
    child.wait().expect("reaped");

    let blocked = env.infra(&["apply", "--env", "emulated", "--auto-approve"]);
    blocked.expect_code(1);
    let hint = blocked
        .stderr
        .lines()
        .find(|line| line.contains("infra force-unlock --env emulated"))
        .unwrap_or_default()
        .to_string();
    let id = hint
        .rsplit(' ')
        .next()
        .unwrap_or_default()
        .trim_end_matches('`')
        .to_string();
    assert!(
        id.chars().all(|c| c.is_ascii_digit()) && !id.is_empty(),
        "the hint names the lock id: {}",
        blocked.all()
    );
    let refused = env.infra(&["force-unlock", "--env", "emulated", &id]);
    refused.expect_code(1);
    assert!(
        refused.stderr.contains("pass --force"),
        "asks first: {}",
        refused.all()
    );
    env.infra(&["force-unlock", "--env", "emulated", &id, "--force"])
        .expect_code(0);
    let converged = env.infra(&["apply", "--env", "emulated", "--auto-approve"]);
    converged.expect_code(0);
    env.infra(&["plan", "--env", "emulated", "--detailed-exitcode"])
        .expect_code(0);
    let (_, services) = env.api(
        "GET",
        "v2/projects/proj-test/locations/us-central1/services",
        None,
    );
    assert_eq!(
        services["services"].as_array().map(Vec::len),
        Some(1),
        "adopted, not duplicated: {services}"
    );
}

#[test]
fn versions_can_be_listed_and_restored() {
    let mut env = TestEnv::empty();
    env.start_emulator_with(&["--operation-delay-ms", "20"]);
    env.write("envs/emulated/env.toml", &emulated(1));
    env.infra(&["apply", "--env", "emulated", "--auto-approve"])
        .expect_code(0);
    let versions = env.infra(&["state", "versions", "--env", "emulated"]);
    versions.expect_code(0);
    let generations: Vec<&str> = versions
        .stdout
        .lines()
        .map(|line| line.split_whitespace().next().unwrap_or_default())
        .collect();
    // Group commit: the secret is recorded well before the service's operation finishes, so
    // they land in different writes, each a generation.
    assert!(
        generations.len() >= 2,
        "every write is a generation: {}",
        versions.stdout
    );
    assert!(
        versions
            .stdout
            .lines()
            .next()
            .is_some_and(|line| line.ends_with("(current)")),
        "{}",
        versions.stdout
    );
    // Restore the oldest generation, written before the service was recorded.
    let oldest = generations.last().expect("oldest");
    env.infra(&["state", "restore", "--env", "emulated", oldest])
        .expect_code(0);
    let listed = env.infra(&["state", "list", "--env", "emulated"]);
    assert!(listed.stdout.lines().count() <= 1, "{}", listed.stdout);
    // The next apply adopts what exists instead of duplicating it.
    env.infra(&["apply", "--env", "emulated", "--auto-approve"])
        .expect_code(0);
    env.infra(&["plan", "--env", "emulated", "--detailed-exitcode"])
        .expect_code(0);
    let local = TestEnv::with_emulator();
    local.write(
        "envs/test/env.toml",
        "[env]\nname = \"test\"\nproject = \"p\"\nregion = \"r\"\n",
    );
    let unsupported = local.infra(&["state", "versions", "--env", "test"]);
    unsupported.expect_code(1);
    assert!(
        unsupported.stderr.contains("keeps no versions"),
        "{}",
        unsupported.all()
    );
}

#[test]
fn import_list_show_mv_and_rm() {
    let env = TestEnv::with_emulator();
    env.write(
        "envs/test/env.toml",
        "[env]\nname = \"test\"\nproject = \"proj-test\"\nregion = \"us-central1\"\n\n[resource.secret.existing]\nsecret_id = \"EXISTING\"\nvalue = \"kept\"\nlabels = { team = \"a\" }\n",
    );
    env.api("POST", "v1/projects/proj-test/secrets?secretId=EXISTING", Some(json!({"replication": {"automatic": {}}, "labels": {"team": "a", "managed-by": "infra"}})));
    env.api(
        "POST",
        "v1/projects/proj-test/secrets/EXISTING:addVersion",
        Some(json!({"payload": {"data": "a2VwdA=="}})),
    );
    let missing = env.infra(&[
        "import",
        "--env",
        "test",
        "secret.nope",
        "projects/proj-test/secrets/EXISTING",
    ]);
    missing.expect_code(1);
    assert!(
        missing.stderr.contains("is not in the configuration"),
        "{}",
        missing.all()
    );
    env.infra(&[
        "import",
        "--env",
        "test",
        "secret.existing",
        "projects/proj-test/secrets/EXISTING",
    ])
    .expect_code(0);
    // The imported object matches the configuration; it only lacks the ownership labels,
    // which the next apply adds (docs/kinds.md).
    let plan = env.infra(&["plan", "--env", "test", "--detailed-exitcode"]);
    plan.expect_code(2);
    assert!(
        plan.stdout.contains(r#"+ "infra-env" = "test""#)
            && plan
                .stdout
                .contains("Plan: 0 to add, 1 to change, 0 to destroy."),
        "{}",
        plan.stdout
    );
    env.infra(&["apply", "--env", "test", "--auto-approve"])
        .expect_code(0);
    env.infra(&["plan", "--env", "test", "--detailed-exitcode"])
        .expect_code(0);
    let again = env.infra(&[
        "import",
        "--env",
        "test",
        "secret.existing",
        "projects/proj-test/secrets/EXISTING",
    ]);
    again.expect_code(1);
    assert!(again.stderr.contains("already managed"), "{}", again.all());

    assert_eq!(
        env.infra(&["state", "list", "--env", "test"]).stdout,
        "secret.existing\n"
    );
    let shown = env.infra(&["state", "show", "--env", "test", "secret.existing"]);
    assert!(
        shown.stdout.contains("value = (sensitive value)") && !shown.stdout.contains("kept"),
        "{}",
        shown.stdout
    );
    env.infra(&[
        "state",
        "mv",
        "--env",
        "test",
        "secret.existing",
        "secret.renamed",
    ])
    .expect_code(0);
    assert_eq!(
        env.infra(&["state", "list", "--env", "test"]).stdout,
        "secret.renamed\n"
    );
    env.infra(&["state", "rm", "--env", "test", "secret.renamed"])
        .expect_code(0);
    assert_eq!(env.infra(&["state", "list", "--env", "test"]).stdout, "");
    let (status, _) = env.api("GET", "v1/projects/proj-test/secrets/EXISTING", None);
    assert_eq!(status, 200, "rm forgets; it does not delete");
}

/// Returns a file's permission bits.
fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn a_hand_edited_state_goes_back_with_push_force_and_the_previous_is_kept_as_backup() {
    let env = TestEnv::with_emulator();
    env.write(
        "envs/test/env.toml",
        "[env]\nname = \"test\"\nproject = \"proj-test\"\nregion = \"us-central1\"\n\n[resource.secret.a]\nsecret_id = \"A\"\nvalue = \"1\"\n\n[resource.secret.b]\nsecret_id = \"B\"\nvalue = \"2\"\n",
    );
    env.infra(&["apply", "--env", "test", "--auto-approve"])
        .expect_code(0);
    let state_path = env.root.path().join("state/test.state.json");
    // Someone edits the state in place: every command refuses it, and says how to proceed.
    let edited: String = env
        .read("state/test.state.json")
        .lines()
        .filter(|line| !line.contains("\"address\":\"secret.b\""))
        .collect::<Vec<_>>()
        .join("\n")
        .replace("}\n],", "}],");
    let edited = edited.replace("},\n]", "}\n]");
    env.write("state/test.state.json", &format!("{edited}\n"));
    let refused = env.infra(&["plan", "--env", "test"]);
    refused.expect_code(1);
    assert!(
        refused.stderr.contains("checksum mismatch")
            && refused.stderr.contains("infra state push --force"),
        "{}",
        refused.all()
    );
    let refused = env.infra(&["state", "push", "--env", "test", "state/test.state.json"]);
    refused.expect_code(1);
    assert!(refused.stderr.contains("--force"), "{}", refused.all());

    let pushed = env.infra(&[
        "state",
        "push",
        "--env",
        "test",
        "--force",
        "state/test.state.json",
    ]);
    pushed.expect_code(0);
    assert!(
        pushed
            .stderr
            .contains("warning: state/test.state.json: checksum mismatch"),
        "the warning names the file: {}",
        pushed.all()
    );
    let listed = env.infra(&["state", "list", "--env", "test"]);
    listed.expect_code(0);
    assert_eq!(listed.stdout, "secret.a\n");
    let backup = env.root.path().join("state/test.state.json.backup");
    assert!(
        std::fs::read_to_string(&backup)
            .expect("a backup")
            .contains("secret.a"),
        "the backup is the state as the push found it"
    );
    for path in [
        &state_path,
        &backup,
        &env.root.path().join("state/test.lock"),
    ] {
        assert_eq!(mode(path), 0o600, "{}", path.display());
    }
    // secret.b is no longer managed: the plan creates it again and meets the existing secret.
    env.infra(&["plan", "--env", "test", "--detailed-exitcode"])
        .expect_code(2);
}

/// Turns every record of the environment's state into an intent record (`status: creating`,
/// no attributes), as a run that died before hearing of its creates leaves them, lets `edit`
/// change the state further, and pushes it back.
fn push_as_interrupted(env: &TestEnv, edit: impl FnOnce(&mut State)) {
    let pulled = env.infra(&["state", "pull", "--env", "test"]);
    let mut state: State = serde_json::from_str(&pulled.stdout).expect("state");
    for resource in &mut state.resources {
        resource.status = infra::state::ResourceStatus::Creating;
        resource.attributes.clear();
    }
    edit(&mut state);
    env.write(
        "interrupted.json",
        &String::from_utf8_lossy(&state.to_bytes()),
    );
    env.infra(&[
        "state",
        "push",
        "--env",
        "test",
        "--force",
        "interrupted.json",
    ])
    .expect_code(0);
}

#[test]
fn intent_records_are_settled_adopted_created_or_dropped() {
    let env = TestEnv::with_emulator();
    let config = "[env]\nname = \"test\"\nproject = \"proj-test\"\nregion = \"us-central1\"\n\n[resource.service_account.found]\naccount_id = \"found-sa\"\ndisplay_name = \"Found\"\n\n[resource.service_account.never]\naccount_id = \"never-sa\"\ndisplay_name = \"Never\"\n";
    env.write("envs/test/env.toml", config);
    env.infra(&["apply", "--env", "test", "--auto-approve"])
        .expect_code(0);
    // A run that died left intent records: one whose object exists, one whose create never
    // happened, and one for a resource since removed from the configuration.
    let (status, _) = env.api(
        "DELETE",
        "v1/projects/proj-test/serviceAccounts/never-sa@proj-test.iam.gserviceaccount.com",
        None,
    );
    assert_eq!(status, 200);
    push_as_interrupted(&env, |state| {
        let mut gone = state.resources[0].clone();
        gone.address = "service_account.removed".into();
        gone.id = "projects/proj-test/serviceAccounts/removed-sa@proj-test.iam.gserviceaccount.com"
            .into();
        state.upsert(gone);
    });

    let plan = env.infra(&["plan", "--env", "test"]);
    plan.expect_code(0);
    assert!(
        plan.stdout.contains("an interrupted create never made it")
            && !plan.stdout.contains("deleted outside infra"),
        "{}",
        plan.all()
    );
    env.infra(&["apply", "--env", "test", "--auto-approve"])
        .expect_code(0);
    let after = env.read("state/test.state.json");
    assert!(!after.contains("creating"), "every intent settled: {after}");
    assert!(!after.contains("service_account.removed"), "{after}");
    let listed = env.infra(&["state", "list", "--env", "test"]);
    assert_eq!(
        listed.stdout,
        "service_account.found\nservice_account.never\n"
    );
    env.infra(&["plan", "--env", "test", "--detailed-exitcode"])
        .expect_code(0);
}

/// A run killed after its last create committed, before recording it, leaves an intent record
/// whose object exists as configured: the next plan has no changes, and apply still records it
/// as created (reading it once), so no intent record outlives the recovery.
#[test]
fn an_intent_record_with_nothing_else_to_do_is_settled_by_apply() {
    let env = TestEnv::with_emulator();
    env.write(
        "envs/test/env.toml",
        "[env]\nname = \"test\"\nproject = \"proj-test\"\nregion = \"us-central1\"\n\n[resource.service_account.found]\naccount_id = \"found-sa\"\ndisplay_name = \"Found\"\n",
    );
    env.infra(&["apply", "--env", "test", "--auto-approve"])
        .expect_code(0);
    push_as_interrupted(&env, |_| {});
    env.infra(&["plan", "--env", "test", "--detailed-exitcode"])
        .expect_code(0);
    let apply = env.infra(&["apply", "--env", "test", "--auto-approve"]);
    apply.expect_code(0);
    assert!(
        apply
            .stderr
            .contains("Recording creates an interrupted apply made"),
        "{}",
        apply.all()
    );
    let after = env.read("state/test.state.json");
    assert!(!after.contains("creating"), "the intent settled: {after}");
    assert!(
        after.contains("found-sa@proj-test.iam.gserviceaccount.com"),
        "{after}"
    );
    let again = env.infra(&["apply", "--env", "test", "--auto-approve"]);
    again.expect_code(0);
    assert!(
        !again.stderr.contains("Recording creates"),
        "{}",
        again.all()
    );
}

/// Starts `apply --env test` of a secret `secret.a`, a Cloud Run service whose operation takes
/// 1.5 s, and `extra` resources, and returns once the secret is saved while the service's
/// operation still runs.
fn apply_saving_the_secret_first(extra: &str) -> (TestEnv, std::process::Child) {
    let mut env = TestEnv::empty();
    env.start_emulator_with(&["--operation-delay-ms", "1500"]);
    env.write(
        "envs/test/env.toml",
        &format!(
            "[env]\nname = \"test\"\nproject = \"proj-test\"\nregion = \"us-central1\"\n\n[resource.secret.a]\nsecret_id = \"A\"\nvalue = \"1\"\n\n[resource.cloud_run_service.api]\nname = \"api\"\nimage = \"img:1\"\ndeletion_protection = false\n{extra}"
        ),
    );
    let child = env
        .command(&["apply", "--env", "test", "--auto-approve"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut waited = 0;
    while !env.read("state/test.state.json").contains("secret.a") {
        waited += 1;
        assert!(waited < 400, "the secret was never saved");
        std::thread::sleep(Duration::from_millis(10));
    }
    (env, child)
}

#[test]
fn a_final_write_that_fails_leaves_an_errored_state_to_push() {
    // Once the secret is saved (the service's operation is still running), someone replaces
    // the state file behind the run's back: its next write is refused as stale.
    let (env, child) = apply_saving_the_secret_first("");
    let foreign = env.read("state/test.state.json");
    std::fs::remove_file(env.root.path().join("state/test.state.json")).expect("remove");
    env.write("state/test.state.json", &foreign);
    let output = child.wait_with_output().expect("finished");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("test.errored.state.json")
            && stderr.contains("infra state push --env test test.errored.state.json"),
        "{stderr}"
    );
    let errored = env.root.path().join("test.errored.state.json");
    assert_eq!(mode(&errored), 0o600);
    assert!(
        env.read("test.errored.state.json")
            .contains("cloud_run_service.api")
    );
    env.infra(&["state", "push", "--env", "test", "test.errored.state.json"])
        .expect_code(0);
    env.infra(&["plan", "--env", "test", "--detailed-exitcode"])
        .expect_code(0);
}

#[test]
fn an_interrupted_apply_saves_what_finished() {
    // Ctrl-C while the service's operation runs: it finishes and is saved; what depends on it
    // does not start.
    let (env, child) = apply_saving_the_secret_first(
        "\n[resource.secret.after]\nsecret_id = \"AFTER\"\nvalue = \"${cloud_run_service.api.uri}\"\n",
    );
    let interrupted = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill -INT");
    assert!(interrupted.success());
    let output = child.wait_with_output().expect("finished");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    let saved = env.read("state/test.state.json");
    assert!(
        saved.contains("cloud_run_service.api") && !saved.contains("secret.after"),
        "{saved}"
    );
    env.infra(&["apply", "--env", "test", "--auto-approve"])
        .expect_code(0);
    env.infra(&["plan", "--env", "test", "--detailed-exitcode"])
        .expect_code(0);
}

#[test]
fn an_apply_writes_the_state_far_fewer_times_than_it_changes_it() {
    let mut env = TestEnv::empty();
    env.start_emulator_with(&["--latency-ms", "20"]);
    let values: Vec<String> = (0..60)
        .map(|index| format!("S{index:02} = \"value-{index}\""))
        .collect();
    env.write(
        "envs/test/env.toml",
        &format!(
            "[env]\nname = \"test\"\nproject = \"proj-test\"\nregion = \"us-central1\"\n\n[backend]\nkind = \"gcs\"\nbucket = \"group-commit\"\nprefix = \"infra\"\ncreate_bucket = true\n\n[vars]\nvalues = {{ {} }}\n\n[resource.secret.many]\nfor_each = \"${{var.values}}\"\nsecret_id = \"${{each.key}}\"\nvalue = \"${{each.value}}\"\n",
            values.join(", ")
        ),
    );
    env.infra(&[
        "apply",
        "--env",
        "test",
        "--auto-approve",
        "--parallelism",
        "32",
    ])
    .expect_code(0);
    // Every write is a generation of the state object in the versioned bucket.
    let versions = env.infra(&["state", "versions", "--env", "test"]);
    versions.expect_code(0);
    let writes = versions.stdout.lines().count();
    assert!(
        (1..=20).contains(&writes),
        "60 creates, {writes} writes: one write covers every change since the last\n{}",
        versions.stdout
    );
    let listed = env.infra(&["state", "list", "--env", "test"]);
    assert_eq!(listed.stdout.lines().count(), 60, "every create is saved");
}

/// A local write takes a millisecond: without pacing, the writer would write the whole state
/// again after every few changes. Each write raises the serial by one, so the final serial
/// counts them; paced, at most one write starts per 50 ms (plus the final one).
#[test]
fn a_fast_backend_is_written_at_a_paced_rate_not_after_every_few_changes() {
    let mut env = TestEnv::empty();
    env.start_emulator_with(&["--latency-ms", "10"]);
    let values: Vec<String> = (0..100)
        .map(|index| format!("S{index:03} = \"value-{index}\""))
        .collect();
    env.write(
        "envs/test/env.toml",
        &format!(
            "[env]\nname = \"test\"\nproject = \"proj-test\"\nregion = \"us-central1\"\n\n[vars]\nvalues = {{ {} }}\n\n[resource.secret.many]\nfor_each = \"${{var.values}}\"\nsecret_id = \"${{each.key}}\"\nvalue = \"${{each.value}}\"\n",
            values.join(", ")
        ),
    );
    let started = std::time::Instant::now();
    // Four at a time: 25 rounds of two requests, changes recorded every 20 ms or so.
    env.infra(&[
        "apply",
        "--env",
        "test",
        "--auto-approve",
        "--parallelism",
        "4",
    ])
    .expect_code(0);
    let elapsed = started.elapsed();
    let state: Json = serde_json::from_str(&env.read("state/test.state.json")).expect("state");
    let writes = state["serial"].as_u64().expect("serial");
    let allowed = elapsed.as_millis() as u64 / 50 + 2;
    assert!(
        writes <= allowed,
        "{writes} writes in {elapsed:?}: at most one per 50 ms and the final one ({allowed})"
    );
    assert_eq!(
        state["resources"].as_array().map(Vec::len),
        Some(100),
        "every create is saved"
    );
}

/// Cloud Storage takes one write per second per object name (the emulator enforces it by
/// default). An apply whose IAM members each wait for their intent record — the writes an
/// operation waits for — must still make at most about one state write per second, each
/// gathering every intent recorded meanwhile, and never be refused for it. Before the writer
/// waited for the backend's rate, it wrote every 50 ms while creates waited and met 429 after
/// 429 (15 to 21 uploads for 5 writes here), each landing only within the client's six quick retries.
#[test]
fn an_apply_on_gcs_writes_the_state_at_most_once_a_second_and_is_never_throttled() {
    let mut env = TestEnv::empty();
    env.start_emulator_with(&["--latency-ms", "20"]);
    let values: Vec<String> = (0..40)
        .map(|index| format!("S{index:02} = \"value-{index}\""))
        .collect();
    env.write(
        "envs/test/env.toml",
        &format!(
            "[env]\nname = \"test\"\nproject = \"proj-test\"\nregion = \"us-central1\"\n\n[backend]\nkind = \"gcs\"\nbucket = \"object-rate\"\nprefix = \"infra\"\n\n[vars]\nvalues = {{ {} }}\n\n[resource.secret.many]\nfor_each = \"${{var.values}}\"\nsecret_id = \"${{each.key}}\"\nvalue = \"${{each.value}}\"\n\n[resource.iam_member.readers]\nfor_each = \"${{var.values}}\"\nparent = \"${{secret.many[each.key].name}}\"\nrole = \"roles/secretmanager.secretAccessor\"\nmember = \"serviceAccount:reader@proj-test.iam.gserviceaccount.com\"\n",
            values.join(", ")
        ),
    );
    let (status, bucket) = env.api(
        "POST",
        "storage/v1/b?project=proj-test",
        Some(json!({"name": "object-rate", "versioning": {"enabled": true}})),
    );
    assert_eq!(status, 200, "{bucket}");
    // Parallelism 4: the members' creates come over about a second or two, so their intents
    // cannot all share one write.
    let started = std::time::Instant::now();
    let applied = env.infra(&[
        "apply",
        "--env",
        "test",
        "--auto-approve",
        "--parallelism",
        "4",
    ]);
    let elapsed = started.elapsed();
    applied.expect_code(0);
    assert!(
        applied.all().contains("80 added"),
        "every create succeeded: {}",
        applied.all()
    );
    // Never throttled: every upload (the lock's create, then the state writes) landed at the
    // first try, none was refused 429 and sent again.
    let (status, log) = env.api("GET", "_emulator/requests", None);
    assert_eq!(status, 200, "{log}");
    let versions = env.infra(&["state", "versions", "--env", "test"]);
    versions.expect_code(0);
    let writes = versions.stdout.lines().count() as u64;
    let allowed = elapsed.as_secs() + 2;
    assert!(
        writes <= allowed,
        "{writes} state writes in {elapsed:?}: at most one per second and the last ({allowed})\n{}",
        versions.stdout
    );
    assert!(writes >= 2, "intents were written before their creates");
    let uploads = log["requests"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|request| {
            request["method"] == "POST" && request["path"] == "/storage/b/object-rate/o"
        })
        .count() as u64;
    assert_eq!(
        uploads,
        writes + 1,
        "{uploads} uploads for {writes} state writes and one lock: some were refused and sent again"
    );
    // No lock is left, and the next command (right after: its lock create meets the apply's
    // lock delete within the second, and is sent again after a backoff) sees the state whole.
    env.infra(&["plan", "--env", "test", "--detailed-exitcode"])
        .expect_code(0);
    let listed = env.infra(&["state", "list", "--env", "test"]);
    assert_eq!(listed.stdout.lines().count(), 80, "every create is saved");
}

/// A state write that Cloud Storage refuses for the object's rate (another process wrote the
/// state just before) is sent again after a backoff, not failed: here with a client that does
/// not retry by itself, so the backend's own patience is what carries the write.
#[test]
fn a_state_write_throttled_by_another_writer_backs_off_and_lands() {
    let fixture = Fixture::new(Kind::Gcs);
    let impatient = GcpClient::new(
        fixture.env.endpoint.clone(),
        infra::gcp::Authentication::None,
    )
    .expect("client")
    .with_retry(infra::gcp::RetryPolicy {
        max_attempts: 1,
        ..infra::gcp::RetryPolicy::default()
    });
    let settings = BackendSettings::Gcs {
        bucket: "conformance-state".into(),
        prefix: "infra".into(),
        create_bucket: false,
    };
    runtime().block_on(async {
        let first = fixture.open();
        assert!(first.read().await.expect("read").is_none());
        let mut state = State::new("test");
        state.serial = 1;
        first.write(&state).await.expect("the first write");
        // Another run reads that state at once and writes the next serial: within the second.
        let second = Backend::open(
            "test",
            "proj-test",
            &settings,
            fixture.env.root.path(),
            &impatient,
        );
        let mut read = second.read().await.expect("read").expect("a state");
        read.serial = 2;
        let started = std::time::Instant::now();
        second
            .write(&read)
            .await
            .expect("a throttled write lands after a backoff");
        assert!(
            started.elapsed() >= Duration::from_millis(500),
            "it was throttled, then waited: {:?}",
            started.elapsed()
        );
        let current = fixture.open().read().await.expect("read").expect("a state");
        assert_eq!(current.serial, 2);
    });
}
