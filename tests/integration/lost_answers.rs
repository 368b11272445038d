//! Lost answers: a proxy between infra and the emulator forwards one chosen request — so it
//! commits — and then loses its answer (the connection is cut mid-body, or a 502 comes back
//! instead). For every create method, the state upload, the lock create and release: the apply
//! succeeds, nothing is duplicated, no extra secret version appears, and the next plan is
//! empty.

use crate::support::TestEnv;
use serde_json::Value as Json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// How the proxy loses the answer of the request it picks.
#[derive(Debug, Clone, Copy)]
pub enum Loss {
    /// The request commits; the answer's body is cut off (a reset mid-answer).
    CutBody,
    /// The request commits; a 502 comes back (a front end that lost the backend's answer).
    BadGateway,
    /// The request is not forwarded: 429 with a `Retry-After` HTTP-date 2 s ahead.
    Throttle,
    /// The request commits; the answer never comes (for a test that kills the client then).
    Stall,
}

/// Which request loses its answer: the first whose method is `method`, whose path and query
/// contain `path`, and whose body contains `body`.
#[derive(Debug, Clone)]
pub struct Rule {
    pub method: &'static str,
    pub path: &'static str,
    pub body: &'static str,
    pub loss: Loss,
}

/// The access token the proxy's token endpoint issues: a user credential to the emulator
/// (its `user.` prefix), and never to appear in any output.
pub const SENTINEL_TOKEN: &str = "user.SENTINEL-TOKEN-7f3a9c";

/// A proxy in front of the emulator that loses the answer of the first request matching its
/// rule, counts how many it lost, records the credential headers each request carried, and
/// serves `POST /token` as an OAuth token endpoint issuing `SENTINEL_TOKEN`.
pub struct FaultProxy {
    pub endpoint: String,
    lost: Arc<AtomicUsize>,
    /// `(authorization, x-goog-user-project)` of every API request, in arrival order.
    pub seen: Arc<Mutex<Vec<(String, String)>>>,
}

impl FaultProxy {
    /// Starts a proxy that forwards everything and loses nothing.
    pub fn transparent(upstream: &str) -> Self {
        Self::start(
            upstream,
            Rule {
                method: "NONE",
                path: "",
                body: "",
                loss: Loss::BadGateway,
            },
        )
    }

    pub fn start(upstream: &str, rule: Rule) -> Self {
        let upstream = upstream.trim_end_matches('/').to_string();
        let lost = Arc::new(AtomicUsize::new(0));
        let counter = lost.clone();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let recorded = seen.clone();
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind");
                sender
                    .send(listener.local_addr().expect("address"))
                    .expect("send address");
                let client = reqwest::Client::new();
                let app = axum::Router::new().fallback(move |request: axum::extract::Request| {
                    let client = client.clone();
                    let upstream = upstream.clone();
                    let rule = rule.clone();
                    let counter = counter.clone();
                    let recorded = recorded.clone();
                    async move {
                        if request.uri().path() == "/token" {
                            return axum::response::Response::builder()
                                .header("content-type", "application/json")
                                .body(axum::body::Body::from(format!(
                                    r#"{{"access_token":"{SENTINEL_TOKEN}","expires_in":3600,"token_type":"Bearer"}}"#
                                )))
                                .expect("response");
                        }
                        let credentials = {
                            let header = |name: &str| {
                                request
                                    .headers()
                                    .get(name)
                                    .and_then(|value| value.to_str().ok())
                                    .unwrap_or_default()
                                    .to_string()
                            };
                            (header("authorization"), header("x-goog-user-project"))
                        };
                        recorded.lock().expect("record").push(credentials);
                        forward(client, &upstream, &rule, &counter, request).await
                    }
                });
                axum::serve(listener, app).await.expect("serve");
            });
        });
        let address = receiver.recv().expect("proxy address");
        Self {
            endpoint: format!("http://{address}/"),
            lost,
            seen,
        }
    }

    pub fn lost(&self) -> usize {
        self.lost.load(Ordering::SeqCst)
    }
}

async fn forward(
    client: reqwest::Client,
    upstream: &str,
    rule: &Rule,
    counter: &AtomicUsize,
    request: axum::extract::Request,
) -> axum::response::Response {
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, 64 * 1024 * 1024)
        .await
        .unwrap_or_default();
    let path_and_query = parts
        .uri
        .path_and_query()
        .map(ToString::to_string)
        .unwrap_or_default();
    let mut upstream_request = client.request(
        reqwest::Method::from_bytes(parts.method.as_str().as_bytes()).expect("method"),
        format!("{upstream}{path_and_query}"),
    );
    if let Some(content_type) = parts.headers.get("content-type") {
        upstream_request = upstream_request.header("content-type", content_type.as_bytes());
    }
    let matches = parts.method.as_str() == rule.method
        && path_and_query.contains(rule.path)
        && String::from_utf8_lossy(&bytes).contains(rule.body);
    if matches
        && matches!(rule.loss, Loss::Throttle)
        && counter
            .compare_exchange(0, 1, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
    {
        let later = chrono::Utc::now() + chrono::TimeDelta::seconds(2);
        return axum::response::Response::builder()
            .status(429)
            .header(
                "retry-after",
                later.format("%a, %d %b %Y %H:%M:%S GMT").to_string(),
            )
            .header("content-type", "application/json")
            .body(axum::body::Body::from(
                r#"{"error": {"code": 429, "message": "Quota exceeded.", "status": "RESOURCE_EXHAUSTED"}}"#,
            ))
            .expect("response");
    }
    let answer = upstream_request
        .body(bytes.to_vec())
        .send()
        .await
        .expect("emulator answers");
    let status = answer.status().as_u16();
    let content_type = answer
        .headers()
        .get("content-type")
        .map(|value| value.as_bytes().to_vec());
    let answer_body = answer.bytes().await.expect("emulator body");
    let committed = (200..300).contains(&status);
    if matches
        && committed
        && counter
            .compare_exchange(0, 1, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
    {
        return match rule.loss {
            Loss::Throttle => unreachable!("answered before forwarding"),
            Loss::Stall => {
                tokio::time::sleep(std::time::Duration::from_secs(120)).await;
                axum::response::Response::builder()
                    .status(502)
                    .body(axum::body::Body::from("stalled"))
                    .expect("response")
            }
            Loss::BadGateway => axum::response::Response::builder()
                .status(502)
                .body(axum::body::Body::from(
                    "<html><body>502 Bad Gateway</body></html>",
                ))
                .expect("response"),
            Loss::CutBody => {
                let head = answer_body.slice(..answer_body.len() / 2);
                let stream = futures::stream::iter([
                    Ok(head),
                    Err(std::io::Error::other("connection reset by the proxy")),
                ]);
                axum::response::Response::builder()
                    .status(status)
                    .header("content-type", "application/json")
                    .body(axum::body::Body::from_stream(stream))
                    .expect("response")
            }
        };
    }
    let mut response = axum::response::Response::builder().status(status);
    if let Some(content_type) = content_type {
        response = response.header("content-type", content_type);
    }
    response
        .body(axum::body::Body::from(answer_body))
        .expect("response")
}

const BILLING: &str = "012345-6789AB-CDEF01";

/// One of each kind that creates something with a POST, and a GCS state backend.
pub fn env_file() -> String {
    format!(
        r#"[env]
name = "test"
project = "proj-test"
region = "us-central1"

[backend]
kind = "gcs"
bucket = "lost-answers-state"
prefix = "infra"
create_bucket = true

[resource.secret.api_key]
secret_id = "API_KEY"
value = "not-a-real-key"

[resource.secret.session_key]
secret_id = "SESSION_KEY"
generate = {{ bytes = 16, encoding = "hex" }}

[resource.service_account.runner]
account_id = "runner"
display_name = "Runner"

[resource.iam_member.runner_reads_key]
parent = "${{secret.api_key.name}}"
role = "roles/secretmanager.secretAccessor"
member = "serviceAccount:${{service_account.runner.email}}"

[resource.cloud_run_service.api]
name = "api"
image = "us-docker.pkg.dev/cloudrun/container/hello"
service_account = "${{service_account.runner.email}}"

[resource.monitoring_dashboard.overview]
display_name = "Overview"
dashboard_json = {{ mosaicLayout = {{ columns = 12, tiles = [{{ xPos = 0, yPos = 0, width = 6, height = 4, widget = {{ title = "Requests", text = {{ content = "hello" }} }} }}] }} }}

[resource.notification_channel.finance]
type = "email"
display_name = "Finance"
labels = {{ email_address = "finance@example.com" }}

[resource.alert_policy.errors]
display_name = "Error rate"
combiner = "OR"
notification_channels = ["${{notification_channel.finance.name}}"]
conditions = [{{ displayName = "errors", conditionPrometheusQueryLanguage = {{ query = "sum(rate(beta_api_errors_total[5m])) > 1", duration = "60s", evaluationInterval = "60s", disableMetricValidation = true }} }}]

[resource.budget.monthly]
billing_account = "{BILLING}"
display_name = "Test monthly"
amount = 500
projects = ["projects/123456789012"]
threshold_rules = [{{ percent = 0.5 }}]
"#
    )
}

/// Returns the items of a list answer, paging through it.
fn list(env: &TestEnv, path: &str, field: &str) -> Vec<Json> {
    let (status, page) = env.api("GET", path, None);
    assert_eq!(status, 200, "GET {path}: {page}");
    page[field].as_array().cloned().unwrap_or_default()
}

/// Counts what exists in the emulator, by collection.
pub fn census(env: &TestEnv) -> Vec<(&'static str, usize)> {
    let secrets = list(env, "v1/projects/proj-test/secrets", "secrets");
    let mut versions = 0;
    for secret in &secrets {
        let name = secret["name"].as_str().unwrap_or_default();
        // By number: the versions list lags an add.
        versions += env.count_versions(&format!("v1/{name}"));
    }
    vec![
        ("secrets", secrets.len()),
        ("secret versions", versions),
        (
            "service accounts",
            list(env, "v1/projects/proj-test/serviceAccounts", "accounts").len(),
        ),
        (
            "cloud run services",
            list(
                env,
                "v2/projects/proj-test/locations/us-central1/services",
                "services",
            )
            .len(),
        ),
        (
            "dashboards",
            list(env, "v1/projects/proj-test/dashboards", "dashboards").len(),
        ),
        (
            "notification channels",
            list(
                env,
                "v3/projects/proj-test/notificationChannels",
                "notificationChannels",
            )
            .len(),
        ),
        (
            "alert policies",
            list(env, "v3/projects/proj-test/alertPolicies", "alertPolicies").len(),
        ),
        (
            "budgets",
            list(
                env,
                &format!("v1/billingAccounts/{BILLING}/budgets"),
                "budgets",
            )
            .len(),
        ),
    ]
}

/// What one clean apply of `env_file` makes: 3 secrets (two configured and the fingerprint
/// key), each with one version, and one of everything else.
pub fn expected_census() -> Vec<(&'static str, usize)> {
    vec![
        ("secrets", 3),
        ("secret versions", 3),
        ("service accounts", 1),
        ("cloud run services", 1),
        ("dashboards", 1),
        ("notification channels", 1),
        ("alert policies", 1),
        ("budgets", 1),
    ]
}

/// Applies `env_file` through a proxy that loses one answer, then checks the census and that
/// the next plan (straight to the emulator) shows nothing to do.
fn apply_losing(rule: Rule) {
    let env = TestEnv::with_emulator();
    env.write("envs/test/env.toml", &env_file());
    let proxy = FaultProxy::start(env.endpoint.as_deref().expect("emulator"), rule.clone());
    let apply = env.infra_at(
        Some(&proxy.endpoint),
        &["apply", "--env", "test", "--auto-approve"],
    );
    assert_eq!(
        proxy.lost(),
        1,
        "{rule:?} never matched a request\n{}",
        apply.all()
    );
    apply.expect_code(0);
    assert!(
        !apply.stderr.contains("could not release the lock"),
        "{rule:?}\n{}",
        apply.all()
    );
    let (lock, _) = env.api(
        "GET",
        "storage/v1/b/lost-answers-state/o/infra%2Ftest.lock",
        None,
    );
    assert_eq!(
        lock,
        404,
        "{rule:?}: the lock was left behind\n{}",
        apply.all()
    );
    assert_eq!(census(&env), expected_census(), "{rule:?}\n{}", apply.all());
    env.infra(&["plan", "--env", "test", "--detailed-exitcode"])
        .expect_code(0);
}

macro_rules! lost_answer_tests {
    ($($name:ident: $method:literal $path:literal $body:literal $loss:ident;)*) => {$(
        #[test]
        fn $name() {
            apply_losing(Rule { method: $method, path: $path, body: $body, loss: Loss::$loss });
        }
    )*};
}

lost_answer_tests! {
    lost_answer_of_the_fingerprint_key_create: "POST" "/secrets?secretId=infra-fingerprint-key" "" CutBody;
    lost_answer_of_the_fingerprint_key_version: "POST" "infra-fingerprint-key-test:addVersion" "" BadGateway;
    lost_answer_of_a_secret_create: "POST" "/secrets?secretId=API_KEY" "" CutBody;
    lost_answer_of_a_secret_version: "POST" "API_KEY:addVersion" "" BadGateway;
    lost_answer_of_a_generated_secret_version: "POST" "SESSION_KEY:addVersion" "" CutBody;
    lost_answer_of_a_service_account_create: "POST" "/serviceAccounts" "runner" BadGateway;
    lost_answer_of_a_policy_write: "POST" ":setIamPolicy" "" CutBody;
    lost_answer_of_a_cloud_run_create: "POST" "/services?serviceId=api" "" BadGateway;
    lost_answer_of_a_dashboard_create: "POST" "/dashboards" "" CutBody;
    lost_answer_of_a_channel_create: "POST" "/notificationChannels" "" BadGateway;
    lost_answer_of_an_alert_policy_create: "POST" "/alertPolicies" "" CutBody;
    lost_answer_of_a_budget_create: "POST" "/budgets" "" BadGateway;
    lost_answer_of_the_lock_create: "POST" "/upload/storage/v1/b/lost-answers-state/o" "infra/test.lock" CutBody;
    lost_answer_of_a_state_upload: "POST" "/upload/storage/v1/b/lost-answers-state/o" "infra/test.state.json" BadGateway;
    lost_answer_of_the_lock_release: "DELETE" "/o/infra%2Ftest%2Elock" "" BadGateway;
}

#[test]
fn a_429_whose_retry_after_is_an_http_date_is_waited_out() {
    let env = TestEnv::with_emulator();
    env.write("envs/test/env.toml", &env_file());
    let rule = Rule {
        method: "POST",
        path: "/budgets",
        body: "",
        loss: Loss::Throttle,
    };
    let proxy = FaultProxy::start(env.endpoint.as_deref().expect("emulator"), rule);
    let started = std::time::Instant::now();
    let apply = env.infra_at(
        Some(&proxy.endpoint),
        &["apply", "--env", "test", "--auto-approve"],
    );
    let took = started.elapsed();
    assert_eq!(proxy.lost(), 1, "the budget create was never throttled");
    apply.expect_code(0);
    // Backoff alone would retry within a second; the date asked for about two.
    assert!(
        took >= std::time::Duration::from_millis(1200),
        "the Retry-After date was not honoured: the apply took {took:?}"
    );
    assert_eq!(census(&env), expected_census());
}
