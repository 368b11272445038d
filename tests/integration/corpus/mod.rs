//! The bad-input corpus: table-driven cases of things a user (or a server) gets wrong. Each case
//! runs the real binary in a fresh project and asserts the exit code, that the message names
//! the place (file:line:col, address, URL, flag) and gives a `hint:`, and that nothing was
//! written: every file of the project — state, backups, the emulator's objects — is byte-for-byte
//! what it was before. The tables live beside this harness, one file per area.

mod config;
mod flags;
mod server;
mod state_files;

use crate::support::TestEnv;
use std::collections::BTreeMap;
use std::path::Path;

/// One bad input and what `infra` must answer.
#[derive(Clone, Debug)]
pub struct Case {
    pub name: String,
    /// Files written on top of the fixture before the run (relative path, contents).
    pub files: Vec<(String, String)>,
    /// Files removed from the fixture before the run.
    pub removed: Vec<String>,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Substrings the combined output must contain: the place, and what is wrong.
    pub names: Vec<String>,
    /// Substrings the combined output must not contain (a secret value, a panic).
    pub absent: Vec<String>,
    pub hint: bool,
    pub code: i32,
}

/// Starts a case: `infra ARGS…` must exit 1 with a hint and write nothing.
pub fn case(name: &str, args: &[&str]) -> Case {
    Case {
        name: name.to_string(),
        files: Vec::new(),
        removed: Vec::new(),
        args: args.iter().map(ToString::to_string).collect(),
        env: Vec::new(),
        names: Vec::new(),
        absent: Vec::new(),
        hint: true,
        code: 1,
    }
}

impl Case {
    /// Writes a file into the fixture before the run.
    pub fn file(mut self, path: &str, contents: &str) -> Self {
        self.files.push((path.to_string(), contents.to_string()));
        self
    }

    /// Removes a fixture file before the run.
    pub fn without(mut self, path: &str) -> Self {
        self.removed.push(path.to_string());
        self
    }

    /// Sets an environment variable for the run.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// Requires the output to contain each of `names`.
    pub fn names(mut self, names: &[&str]) -> Self {
        self.names.extend(names.iter().map(ToString::to_string));
        self
    }

    /// Requires the output not to contain `text`.
    pub fn absent(mut self, text: &str) -> Self {
        self.absent.push(text.to_string());
        self
    }

    /// The message need not carry a `hint:` (the error itself says all there is).
    #[allow(dead_code)] // not every table has such a case
    pub fn no_hint(mut self) -> Self {
        self.hint = false;
        self
    }

    /// Expects another exit code than 1.
    pub fn code(mut self, code: i32) -> Self {
        self.code = code;
        self
    }
}

/// Every file under `root` with its bytes, except what a run may legitimately leave: the
/// emulator's own lock, and lock files left empty (an OS lock taken and released).
pub fn snapshot(root: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, directory: &Path, files: &mut BTreeMap<String, Vec<u8>>) {
        let Ok(entries) = std::fs::read_dir(directory) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(root, &path, files);
                continue;
            }
            let relative = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .display()
                .to_string();
            let bytes = std::fs::read(&path).unwrap_or_default();
            if relative.ends_with("emulator.lock")
                || (relative.ends_with(".lock") && bytes.is_empty())
            {
                continue;
            }
            files.insert(relative, bytes);
        }
    }
    let mut files = BTreeMap::new();
    walk(root, root, &mut files);
    files
}

/// Runs one case in the fixture `make` builds; returns what was wrong, if anything.
pub fn check(make: &dyn Fn() -> TestEnv, case: &Case) -> Option<String> {
    let mut env = make();
    for (path, contents) in &case.files {
        env.write(path, contents);
    }
    for path in &case.removed {
        let _ = std::fs::remove_file(env.root.path().join(path));
    }
    env.extra_env.extend(case.env.iter().cloned());
    let before = snapshot(env.root.path());
    let arguments: Vec<&str> = case.args.iter().map(String::as_str).collect();
    let run = env.infra(&arguments);
    let after = snapshot(env.root.path());
    let all = run.all();
    let mut problems = Vec::new();
    if run.code != case.code {
        problems.push(format!("exit code {} (expected {})", run.code, case.code));
    }
    for name in &case.names {
        if !all.contains(name.as_str()) {
            problems.push(format!("does not name `{name}`"));
        }
    }
    for text in case
        .absent
        .iter()
        .map(String::as_str)
        .chain(["panicked", "RUST_BACKTRACE"])
    {
        if all.contains(text) {
            problems.push(format!("contains `{text}`"));
        }
    }
    if case.hint && !all.contains("hint:") {
        problems.push("gives no `hint:`".to_string());
    }
    if before != after {
        let changed: Vec<&String> = before
            .keys()
            .chain(after.keys())
            .filter(|path| before.get(*path) != after.get(*path))
            .collect();
        problems.push(format!("wrote {changed:?}"));
    }
    (!problems.is_empty()).then(|| {
        format!(
            "case `{}` (infra {}): {}\n{all}",
            case.name,
            case.args.join(" "),
            problems.join("; ")
        )
    })
}

/// Runs a table of cases, two at a time, and fails once with every case that went wrong.
#[track_caller]
pub fn run_table(make: &(dyn Fn() -> TestEnv + Sync), cases: &[Case]) {
    let mut names = std::collections::BTreeSet::new();
    for case in cases {
        assert!(
            names.insert(&case.name),
            "case `{}` appears twice",
            case.name
        );
    }
    let failures: Vec<String> = std::thread::scope(|scope| {
        let workers: Vec<_> = cases
            .chunks(cases.len().div_ceil(2).max(1))
            .map(|chunk| {
                scope.spawn(move || {
                    chunk
                        .iter()
                        .filter_map(|case| {
                            // A case whose fixture panics is a failure of that case, never a
                            // silent loss of the rest of its chunk.
                            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                                check(make, case)
                            }))
                            .unwrap_or_else(|_| Some(format!("case `{}` panicked", case.name)))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|worker| {
                worker
                    .join()
                    .unwrap_or_else(|_| vec!["a corpus worker panicked".to_string()])
            })
            .collect()
    });
    assert!(
        failures.is_empty(),
        "{} of {} bad-input cases failed:\n\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
}

/// Counts every case of the corpus, so the total is asserted in one place.
#[test]
fn the_corpus_has_at_least_150_distinct_cases() {
    let total: usize = TABLES.iter().map(|table| table().len()).sum();
    assert!(total >= 150, "the corpus has {total} cases");
}

/// Every table of the corpus.
const TABLES: &[fn() -> Vec<Case>] = &[
    config::cases,
    flags::cases,
    server::cases,
    state_files::cases,
];
