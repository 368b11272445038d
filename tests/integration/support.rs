//! `TestEnv`: a throw-away project directory, an `infra emulator` child on an ephemeral port,
//! and helpers that run the real binary and call the emulator's API directly.

use serde_json::Value as Json;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

/// The outcome of one `infra` run.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Returns stdout and stderr together, for assertions and failure messages.
    pub fn all(&self) -> String {
        format!("--- stdout\n{}--- stderr\n{}", self.stdout, self.stderr)
    }

    /// Asserts the exit code, printing the output otherwise.
    #[track_caller]
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(self.code, code, "unexpected exit code\n{}", self.all());
        self
    }
}

/// A project directory with its own emulator.
pub struct TestEnv {
    pub root: tempfile::TempDir,
    emulator: Option<Child>,
    pub endpoint: Option<String>,
    pub extra_env: Vec<(String, String)>,
}

pub fn repository() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create dir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        if entry.path().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

impl TestEnv {
    /// An empty project (no modules, no environments).
    pub fn empty() -> Self {
        let root = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(root.path().join("envs")).expect("envs");
        Self {
            root,
            emulator: None,
            endpoint: None,
            extra_env: Vec::new(),
        }
    }

    /// A copy of the repository's bundled modules and environments.
    pub fn bundled() -> Self {
        let env = Self::empty();
        copy_tree(
            &repository().join("modules"),
            &env.root.path().join("modules"),
        );
        copy_tree(&repository().join("envs"), &env.root.path().join("envs"));
        env
    }

    /// A project with an environment `test` (local backend) whose endpoint is this test's emulator.
    pub fn with_emulator() -> Self {
        let mut env = Self::empty();
        env.write(
            "envs/test/env.toml",
            "[env]\nname = \"test\"\nproject = \"proj-test\"\nregion = \"us-central1\"\n",
        );
        env.start_emulator();
        env
    }

    /// Starts `infra emulator --port 0` with its data in the project directory.
    pub fn start_emulator(&mut self) {
        self.start_emulator_with(&[]);
    }

    /// Starts the emulator with extra flags (`--fail-rate`, `--latency-ms`).
    pub fn start_emulator_with(&mut self, flags: &[&str]) {
        let data = self.root.path().join(".emulator-data");
        let mut child = Command::new(env!("CARGO_BIN_EXE_infra"))
            .args(["emulator", "--port", "0", "--data"])
            .arg(&data)
            .args(if flags.contains(&"--operation-delay-ms") {
                &[][..]
            } else {
                &["--operation-delay-ms", "50"][..]
            })
            .args(flags)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the emulator");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("emulator prints its URL");
        assert!(
            !line.trim().is_empty(),
            "the emulator did not start (flags {flags:?})"
        );
        self.endpoint = Some(line.trim().to_string());
        self.emulator = Some(child);
    }

    /// Stops the emulator (its data stays).
    pub fn stop_emulator(&mut self) {
        if let Some(mut child) = self.emulator.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Writes a file under the project directory.
    pub fn write(&self, relative: &str, text: &str) {
        let path = self.root.path().join(relative);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    }

    /// Reads a file under the project directory.
    pub fn read(&self, relative: &str) -> String {
        std::fs::read_to_string(self.root.path().join(relative)).unwrap_or_default()
    }

    /// Runs the real `infra` binary in the project directory.
    pub fn infra(&self, arguments: &[&str]) -> Run {
        self.infra_at(self.endpoint.as_deref(), arguments)
    }

    /// Runs `infra` in this project against `endpoint` (a proxy in front of the emulator).
    pub fn infra_at(&self, endpoint: Option<&str>, arguments: &[&str]) -> Run {
        let mut command = self.command_at(endpoint, arguments);
        let Output {
            status,
            stdout,
            stderr,
        } = command.output().expect("run infra");
        Run {
            code: status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        }
    }

    /// Returns the command that runs `infra` in this project against its emulator, for tests
    /// that spawn it (to signal or kill it) rather than wait for its output.
    pub fn command(&self, arguments: &[&str]) -> Command {
        self.command_at(self.endpoint.as_deref(), arguments)
    }

    /// Returns the command that runs `infra` in this project against `endpoint`.
    pub fn command_at(&self, endpoint: Option<&str>, arguments: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_infra"));
        command
            .args(arguments)
            .current_dir(self.root.path())
            .env("NO_COLOR", "1")
            // Tests never reach Google: credentials fail to load before any request is made.
            .env(
                "GOOGLE_APPLICATION_CREDENTIALS",
                "/nonexistent/infra-test-credentials.json",
            )
            .env_remove("INFRA_ENV")
            .env_remove("INFRA_ROOT")
            .env_remove("INFRA_LOG")
            .env_remove("INFRA_GCP_ENDPOINT")
            .env_remove("INFRA_GCP_CREDENTIALS")
            .stdin(Stdio::null());
        if let Some(endpoint) = endpoint {
            // The emulator takes no credentials; the configuration (here the environment) says so.
            command
                .env("INFRA_GCP_ENDPOINT", endpoint)
                .env("INFRA_GCP_CREDENTIALS", "none");
        }
        for (key, value) in &self.extra_env {
            command.env(key, value);
        }
        command
    }

    /// Lists `path` as infra sees it: without the harness's consistent-read header, so what
    /// the emulator's lists do not show yet (objects created within `--list-lag-ms`) is missing.
    pub fn list_as_infra_sees(&self, path: &str, field: &str) -> Vec<Json> {
        let url = format!(
            "{}{path}",
            self.endpoint.as_deref().expect("an emulator is running")
        );
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async move {
            let page: Json = reqwest::get(&url)
                .await
                .expect("emulator answers")
                .json()
                .await
                .expect("a JSON list answer");
            page[field].as_array().cloned().unwrap_or_default()
        })
    }

    /// Waits until the list at `path` shows infra `count` objects: the emulator's lists lag a
    /// create, and a test that stands for "a later run" waits for them to show what an earlier
    /// run made.
    pub fn wait_until_listed(&self, path: &str, field: &str, count: usize) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while self.list_as_infra_sees(path, field).len() < count {
            assert!(
                std::time::Instant::now() < deadline,
                "{path} never listed {count} {field}"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }

    /// Calls the emulator's REST API directly (what someone else might do behind infra's back),
    /// its lists without their lag.
    pub fn api(&self, method: &str, path: &str, body: Option<Json>) -> (u16, Json) {
        let endpoint = self.endpoint.clone().expect("an emulator is running");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async move {
            let client = reqwest::Client::new();
            let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
            // What the emulator holds, without the lag of its lists (a header only it knows):
            // tests count objects with it, while infra sees lists as Google serves them.
            let mut request = client
                .request(method, format!("{endpoint}{path}"))
                .header("x-emulator-consistent-read", "1");
            if let Some(body) = body {
                request = request.json(&body);
            }
            let response = request.send().await.expect("emulator answers");
            let status = response.status().as_u16();
            let text = response.text().await.expect("body");
            (
                status,
                serde_json::from_str(&text).unwrap_or(Json::String(text)),
            )
        })
    }

    /// Accesses the newest version of a secret (`v1/projects/P/secrets/S`) as a client must
    /// right after an add: by number, counting up until a number is missing, since `latest`
    /// and the versions list are eventually consistent. The answer of `…/versions/N:access`
    /// (404 when the secret has no version).
    pub fn access_newest_version(&self, secret: &str) -> (u16, Json) {
        let newest = self.count_versions(secret);
        self.api("GET", &format!("{secret}/versions/{newest}:access"), None)
    }

    /// Returns how many versions a secret (`v1/projects/P/secrets/S`) has, read by number (the
    /// versions list lags an add): numbers grow by one and versions are never deleted.
    pub fn count_versions(&self, secret: &str) -> usize {
        let mut count = 0;
        while self
            .api("GET", &format!("{secret}/versions/{}", count + 1), None)
            .0
            == 200
        {
            count += 1;
        }
        count
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        self.stop_emulator();
    }
}

/// Counts the lines of a plan that announce an action on a kind (`# … will be created`).
pub fn count_actions(plan: &str, kind: &str, action: &str) -> usize {
    plan.lines()
        .filter(|line| {
            let line = line.trim_start();
            line.starts_with("# ")
                && (line.contains(&format!(".{kind}.")) || line.starts_with(&format!("# {kind}.")))
                && line.contains(action)
        })
        .count()
}
