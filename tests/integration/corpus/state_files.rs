//! Bad-input corpus: state files, plan files and lock files that are damaged, foreign or hand-edited.
//! The fixture is a project with an applied state, a saved plan, and derived documents (another
//! lineage, an older serial, a hand edit, tampered plans) that cases point commands at.

use super::{Case, case, check, run_table};
use crate::support::TestEnv;
use infra::state::{State, StateResource};
use serde_json::{Value as Json, json};

const STATE: &str = "state/test.state.json";

const CONFIG: &str = "[env]\nname = \"test\"\nproject = \"proj-test\"\nregion = \"us-central1\"\n\n\
[resource.secret.a]\nsecret_id = \"A\"\nvalue = \"1\"\n\n\
[resource.secret.b]\nsecret_id = \"B\"\nvalue = \"2\"\n";

/// A project with two applied secrets, `plans/good.plan` (no changes), and derived documents.
fn applied() -> TestEnv {
    let env = TestEnv::with_emulator();
    env.write("envs/test/env.toml", CONFIG);
    env.infra(&["apply", "--env", "test", "--auto-approve"])
        .expect_code(0);
    env.infra(&["plan", "--env", "test", "--out", "plans/good.plan"])
        .expect_code(0);
    let pulled = env.infra(&["state", "pull", "--env", "test"]);
    pulled.expect_code(0);
    let current: State = serde_json::from_str(&pulled.stdout).expect("a state");
    assert!(current.serial >= 1, "the apply wrote the state");

    env.write(
        "variants/edited.json",
        &pulled.stdout.replace("secrets/A", "secrets/Z"),
    );
    let foreign = State {
        lineage: "00000000-0000-4000-8000-000000000000".into(),
        serial: current.serial + 10,
        ..current.clone()
    };
    env.write("variants/foreign.json", &text(&foreign));
    let older = State {
        serial: current.serial - 1,
        ..current.clone()
    };
    env.write("variants/older.json", &text(&older));
    let mut same_serial = current.clone();
    same_serial.remove("secret.b");
    env.write("variants/same-serial.json", &text(&same_serial));

    let good: Json = serde_json::from_str(&env.read("plans/good.plan")).expect("a plan");
    let derive = |path: &str, edit: &dyn Fn(&mut Json)| {
        let mut plan = good.clone();
        edit(&mut plan);
        env.write(path, &plan.to_string());
    };
    derive("plans/prod.plan", &|plan| plan["env"] = json!("prod"));
    derive("plans/foreign.plan", &|plan| {
        plan["lineage"] = json!("00000000-0000-4000-8000-000000000000");
    });
    derive("plans/stale.plan", &|plan| {
        plan["serial"] = json!(current.serial - 1);
    });
    derive("plans/digest.plan", &|plan| {
        plan["config_digest"] = json!("sha256:00");
    });
    derive("plans/tampered.plan", &|plan| {
        for change in plan["changes"].as_array_mut().into_iter().flatten() {
            if change["address"] == "secret.a" {
                change["action"] = json!("delete");
            }
        }
    });
    derive("plans/no-lineage.plan", &|plan| {
        if let Some(fields) = plan.as_object_mut() {
            fields.remove("lineage");
        }
    });
    env
}

fn text(state: &State) -> String {
    String::from_utf8(state.to_bytes()).expect("utf8")
}

/// A valid document of `env` holding `resources`, with a correct checksum.
fn document(env: &str, resources: Vec<StateResource>) -> String {
    let mut state = State::new(env);
    state.serial = 3;
    state.resources = resources;
    text(&state)
}

fn secret(address: &str, id: &str) -> StateResource {
    StateResource {
        address: address.into(),
        kind: "secret".into(),
        id: id.into(),
        status: Default::default(),
        attributes: Default::default(),
        dependencies: Vec::new(),
    }
}

/// A state document's JSON with one edit, written as JSON without a valid checksum.
fn raw(edit: impl FnOnce(&mut Json)) -> String {
    let mut state = json!({
        "format": 1,
        "lineage": "8a4c1f0e-3f43-4bde-9c55-0d6f2a1b7c11",
        "serial": 3,
        "checksum": "sha256:00",
        "env": "test",
        "resources": [{
            "address": "secret.a", "kind": "secret", "id": "projects/proj-test/secrets/A",
            "attributes": {}, "dependencies": []
        }],
        "outputs": {}
    });
    edit(&mut state);
    state.to_string()
}

fn on<'a>(args: &[&'a str]) -> Vec<&'a str> {
    let mut full = args.to_vec();
    full.extend(["--env", "test"]);
    full
}

/// The cases of this table.
pub fn cases() -> Vec<Case> {
    let malformed = "not a valid state document";
    vec![
        // The current state file, damaged.
        case("state: truncated JSON", &on(&["plan"]))
            .file(STATE, "{\"format\": 1, \"lineage\": \"8a4c")
            .names(&[STATE, malformed]),
        case("state: empty file", &on(&["show"]))
            .file(STATE, "")
            .names(&[STATE, malformed]),
        case("state: binary garbage", &on(&["output"]))
            .file(STATE, "\u{7f}ELF\u{2}\u{1}\u{1}\u{0}\u{0}\u{fffd}\u{fffd}")
            .names(&[STATE, malformed]),
        case("state: a JSON array", &on(&["state", "list"]))
            .file(STATE, "[]")
            .names(&[STATE, malformed]),
        case("state: format 0", &on(&["state", "show", "secret.a"]))
            .file(STATE, &raw(|state| state["format"] = json!(0)))
            .names(&[STATE, "format 0"]),
        case("state: a newer format", &on(&["apply", "--auto-approve"]))
            .file(STATE, &raw(|state| state["format"] = json!(99)))
            .names(&[STATE, "format 99 is newer", "upgrade"]),
        case("state: hand-edited (checksum mismatch)", &on(&["plan"]))
            .file(
                STATE,
                &document("test", vec![secret("secret.a", "projects/proj-test/secrets/A")])
                    .replace("secrets/A", "secrets/Q"),
            )
            .names(&[STATE, "checksum mismatch", "state push --force"]),
        case("state: another environment's", &on(&["plan"]))
            .file(STATE, &document("prod", vec![]))
            .names(&[STATE, "environment `prod`, not `test`"]),
        case("state: lineage missing", &on(&["import", "secret.a", "projects/proj-test/secrets/A"]))
            .file(
                STATE,
                &raw(|state| {
                    state.as_object_mut().map(|fields| fields.remove("lineage"));
                }),
            )
            .names(&[STATE, "missing field `lineage`"]),
        case("state: lineage not a UUID", &on(&["output"]))
            .file(STATE, &raw(|state| state["lineage"] = json!("my-state")))
            .names(&[STATE, "`my-state` is not a UUID"]),
        case("state: resources missing", &on(&["state", "pull"]))
            .file(
                STATE,
                &raw(|state| {
                    state.as_object_mut().map(|fields| fields.remove("resources"));
                }),
            )
            .names(&[STATE, "missing field `resources`"]),
        case("state: serial is a string", &on(&["state", "rm", "secret.a"]))
            .file(STATE, &raw(|state| state["serial"] = json!("three")))
            .names(&[STATE, "invalid type"]),
        case("state: serial negative", &on(&["plan"]))
            .file(STATE, &raw(|state| state["serial"] = json!(-1)))
            .names(&[STATE, malformed]),
        case("state: resources is an object", &on(&["state", "mv", "secret.a", "secret.z"]))
            .file(STATE, &raw(|state| state["resources"] = json!({})))
            .names(&[STATE, "invalid type"]),
        case("state: a resource without its kind", &on(&["state", "list"]))
            .file(
                STATE,
                &raw(|state| {
                    state["resources"][0]
                        .as_object_mut()
                        .map(|fields| fields.remove("kind"));
                }),
            )
            .names(&[STATE, "missing field `kind`"]),
        case("state: attributes are a string", &on(&["plan"]))
            .file(
                STATE,
                &raw(|state| state["resources"][0]["attributes"] = json!("value=1")),
            )
            .names(&[STATE, malformed]),
        case("state: unknown status", &on(&["plan"]))
            .file(
                STATE,
                &raw(|state| state["resources"][0]["status"] = json!("deleting")),
            )
            .names(&[STATE, "deleting"]),
        case("state: duplicate addresses", &on(&["plan"]))
            .file(
                STATE,
                &document(
                    "test",
                    vec![
                        secret("secret.a", "projects/proj-test/secrets/A"),
                        secret("secret.a", "projects/proj-test/secrets/B"),
                    ],
                ),
            )
            .names(&[STATE, "`secret.a` appears twice"]),
        case("state: unknown kind", &on(&["plan"]))
            .file(
                STATE,
                &document(
                    "test",
                    vec![StateResource {
                        kind: "bucket".into(),
                        ..secret("bucket.logs", "projects/proj-test/buckets/logs")
                    }],
                ),
            )
            .names(&[STATE, "`bucket.logs` has kind `bucket`", "state rm"]),
        case("state: empty id", &on(&["apply", "--auto-approve"]))
            .file(STATE, &document("test", vec![secret("secret.a", "")]))
            .names(&[STATE, "`secret.a`: id \"\" is not a resource name"]),
        case("state: id with a line break", &on(&["show"]))
            .file(
                STATE,
                &document(
                    "test",
                    vec![secret("secret.a", "projects/proj-test/secrets/A\nB")],
                ),
            )
            .names(&[STATE, "is not a resource name"]),
        case("state: empty address", &on(&["output"]))
            .file(
                STATE,
                &document("test", vec![secret("", "projects/proj-test/secrets/A")]),
            )
            .names(&[STATE, "is not a resource address"]),
        case("state: a directory where the file should be", &on(&["plan"]))
            .file(
                "envs/test/env.toml",
                &format!("{CONFIG}\n[backend]\nkind = \"local\"\npath = \"variants\"\n"),
            )
            .names(&["variants", "a directory stands where the state file should be"]),
        case("state: a path through a file", &on(&["state", "list"]))
            .file(
                "envs/test/env.toml",
                &format!("{CONFIG}\n[backend]\nkind = \"local\"\npath = \"envs/test/env.toml/test.state.json\"\n"),
            )
            .names(&["envs/test/env.toml/test.lock"]),
        // Lock files.
        case("lock: a directory where the lock file should be", &on(&["plan"]))
            .file(
                "envs/test/env.toml",
                &format!("{CONFIG}\n[backend]\nkind = \"local\"\npath = \"other/test.state.json\"\n"),
            )
            .file("other/test.lock/keep", "")
            .names(&["other/test.lock", "Is a directory"]),
        case("lock: a stale record, force-unlocked", &on(&["force-unlock", "--force", "1700000000123"]))
            .file(
                "state/test.lock",
                "{\"id\":\"1700000000123\",\"operation\":\"apply\",\"who\":\"ci@runner-7 (pid 4182)\",\"created\":\"2026-11-23T12:03:00Z\",\"version\":\"0.1.0\"}",
            )
            .names(&["test", "is not locked"]),
        // Addresses given to the state commands.
        case("state show: an address not in the state", &on(&["state", "show", "secret.aa"]))
            .names(&["no resource `secret.aa`", "did you mean `secret.a`"]),
        case("state rm: an address not in the state", &on(&["state", "rm", "secret.a", "secret.c"]))
            .names(&["no resource `secret.c`", "nothing was removed"]),
        case("state mv: a source not in the state", &on(&["state", "mv", "secret.x", "secret.y"]))
            .names(&["no resource `secret.x`", "nothing was moved"]),
        case("state mv: a target already in the state", &on(&["state", "mv", "secret.a", "secret.b"]))
            .names(&["`secret.b` is already in the state", "state rm"]),
        // Documents pushed.
        case("push: a file that does not exist", &on(&["state", "push", "missing.json"]))
            .names(&["missing.json", "cannot read it"]),
        case("push: a directory", &on(&["state", "push", "variants"]))
            .names(&["variants: cannot read it"]),
        case("push: truncated JSON", &on(&["state", "push", "push.json"]))
            .file("push.json", "{\"format\": 1,")
            .names(&["push.json", malformed]),
        case("push: a hand edit without --force", &on(&["state", "push", "variants/edited.json"]))
            .names(&["variants/edited.json", "checksum mismatch", "--force"]),
        case("push: another lineage", &on(&["state", "push", "variants/foreign.json"]))
            .names(&["variants/foreign.json", "belongs to another state"]),
        case("push: an older serial", &on(&["state", "push", "variants/older.json"]))
            .names(&["variants/older.json", "is older than the current state's"]),
        case("push: the same serial, other content", &on(&["state", "push", "variants/same-serial.json"]))
            .names(&["variants/same-serial.json", "same serial"]),
        case("push: another environment's, even with --force", &on(&["state", "push", "--force", "prod.json"]))
            .file("prod.json", &document("prod", vec![]))
            .names(&["prod.json", "environment `prod`, not `test`"]),
        case("push: a newer format", &on(&["state", "push", "newer.json"]))
            .file("newer.json", &raw(|state| state["format"] = json!(2)))
            .names(&["newer.json", "format 2 is newer"]),
        case("push: a plan file", &on(&["state", "push", "plans/good.plan"]))
            .names(&["plans/good.plan", malformed]),
        // Saved plans.
        case("plan file: not JSON", &on(&["apply", "bad.plan"]))
            .file("bad.plan", "Plan: 1 to add, 0 to change, 0 to destroy.\n")
            .names(&["bad.plan", "not an infra plan file"]),
        case("plan file: empty", &on(&["apply", "empty.plan"]))
            .file("empty.plan", "")
            .names(&["empty.plan", "not an infra plan file"]),
        case("plan file: does not exist", &on(&["apply", "nothing.plan"]))
            .names(&["nothing.plan: no such plan file"]),
        case("plan file: a directory", &on(&["apply", "plans"]))
            .names(&["plans: is a directory, not a plan file"]),
        case("plan file: a state file", &on(&["apply", STATE]))
            .names(&[STATE, "not an infra plan file"]),
        case("plan file: another format", &on(&["apply", "format.plan"]))
            .file(
                "format.plan",
                "{\"format\":7,\"env\":\"test\",\"lineage\":\"x\",\"serial\":1,\"config_digest\":\"d\",\"salt\":\"s\",\"destroy\":false,\"changes\":[],\"drift\":[],\"outputs\":{}}",
            )
            .names(&["format.plan", "plan format 7"]),
        case("plan file: lineage missing", &on(&["apply", "plans/no-lineage.plan"]))
            .names(&["plans/no-lineage.plan", "missing field `lineage`"]),
        case("plan file: another environment's", &on(&["apply", "plans/prod.plan"]))
            .names(&["plans/prod.plan", "environment `prod`, not `test`"]),
        case("plan file: another lineage", &on(&["apply", "plans/foreign.plan"]))
            .names(&["plans/foreign.plan", "made against another state"]),
        case("plan file: a stale serial", &on(&["apply", "plans/stale.plan"]))
            .names(&["plans/stale.plan", "the state changed since the plan was made"]),
        case("plan file: another configuration", &on(&["apply", "plans/digest.plan"]))
            .names(&["plans/digest.plan", "the configuration changed"]),
        case("plan file: tampered changes", &on(&["apply", "plans/tampered.plan"]))
            .names(&["plans/tampered.plan", "the plan is stale", "secret.a"]),
    ]
}

#[test]
fn state_files_bad_inputs() {
    run_table(&applied, &cases());
}

/// The harness notices what the table relies on it to notice: a run that writes the state, an
/// unexpected exit code, a missing hint, a text that must not appear.
#[test]
fn the_harness_notices_writes_codes_hints_and_leaks() {
    let forced = case(
        "a forced push",
        &on(&["state", "push", "--force", "variants/older.json"]),
    )
    .code(0)
    .no_hint();
    let problems = check(&applied, &forced).expect("the write is noticed");
    assert!(
        problems.contains("wrote [\"state/test.state.json"),
        "{problems}"
    );

    let listed = case("a list of nothing", &["state", "list"])
        .env("INFRA_ENV", "test")
        .without(STATE)
        .absent("secret.a");
    let problems = check(&applied, &listed).expect("exit 0 without a hint is noticed");
    assert!(
        problems.contains("exit code 0 (expected 1)") && problems.contains("gives no `hint:`"),
        "{problems}"
    );

    let shown = case("a shown address", &on(&["state", "show", "secret.a"]))
        .code(0)
        .no_hint()
        .absent("projects/proj-test/secrets/A");
    let problems = check(&applied, &shown).expect("the text is noticed");
    assert!(
        problems.contains("contains `projects/proj-test/secrets/A`"),
        "{problems}"
    );
}
