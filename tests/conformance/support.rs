//! An `infra emulator` child per test, and the official clients' builders pointed at it.

use google_cloud_auth::credentials::Credentials;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// A running `infra emulator --port 0`, in memory; killed when dropped.
pub struct Emulator {
    child: Child,
    /// `http://127.0.0.1:PORT` (no trailing slash, as the clients' endpoints are written).
    pub endpoint: String,
}

impl Emulator {
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Starts one with extra flags (fault injection, realism).
    pub fn start_with(flags: &[&str]) -> Self {
        let delay: &[&str] = if flags.contains(&"--operation-delay-ms") {
            &[]
        } else {
            &["--operation-delay-ms", "30"]
        };
        let mut child = Command::new(env!("CARGO_BIN_EXE_infra"))
            .args(["emulator", "--port", "0"])
            .args(delay)
            .args(flags)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start infra emulator");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("the emulator prints its URL");
        let endpoint = line.trim().trim_end_matches('/').to_string();
        assert!(
            endpoint.starts_with("http://"),
            "unexpected first line {line:?}"
        );
        Self { child, endpoint }
    }

    /// Sends a raw REST request (for what the official clients cannot express).
    pub async fn rest(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let client = reqwest::Client::new();
        let mut request = client.request(method, format!("{}/{path}", self.endpoint));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("the emulator answers");
        let status = response.status().as_u16();
        let text = response.text().await.expect("a body");
        let json = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
        (status, json)
    }
}

impl Emulator {
    /// Waits until the REST list at `path` shows at least `count` items of `field`: the
    /// emulator's lists lag a create (`--list-lag-ms`), as Google's eventually consistent lists
    /// do, so a client that lists what it just made polls until the list shows it.
    pub async fn wait_listed(&self, path: &str, field: &str, count: usize) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let (status, page) = self.rest(reqwest::Method::GET, path, None).await;
            let listed = page[field].as_array().map_or(0, Vec::len);
            if status == 200 && listed >= count {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{path} never listed {count} {field}: {page}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Anonymous credentials: the emulator, like a local Google endpoint in tests, needs none.
pub fn anonymous() -> Credentials {
    google_cloud_auth::credentials::anonymous::Builder::new().build()
}

/// The gRPC-style status code of a client error, for asserting Google's documented codes.
pub fn code(error: &google_cloud_gax::error::Error) -> google_cloud_gax::error::rpc::Code {
    error
        .status()
        .map(|status| status.code)
        .unwrap_or_else(|| panic!("expected a service error, got {error:?}"))
}

/// The HTTP status of a client error.
pub fn http_status(error: &google_cloud_gax::error::Error) -> u16 {
    error
        .http_status_code()
        .unwrap_or_else(|| panic!("expected an HTTP error, got {error:?}"))
}

/// Builds a client of type `$client` against the emulator.
#[macro_export]
macro_rules! client {
    ($client:ty, $emulator:expr) => {
        <$client>::builder()
            .with_endpoint($emulator.endpoint.clone())
            .with_credentials($crate::support::anonymous())
            .build()
            .await
            .expect("client builds")
    };
}
