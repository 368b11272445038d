//! The emulator's HTTP side: one axum router for every emulated API, request parsing (query,
//! JSON body, Google's refusal of unknown query parameters), fault injection (`--latency-ms`,
//! `--fail-rate`), Google's quirks and injected faults (`realism.rs`), and persistence of the
//! store after every change.

use super::discovery;
use super::error::ApiError;
use super::http::{AnswerFormat, Request, take_system_parameters};
use super::quota::Quotas;
use super::realism::{Fault, Realism, RealismOptions};
use super::store::Store;
use super::wire;
use super::{
    budgets, collection, monitoring, projects, run, secretmanager, service_accounts, storage,
};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::Method;
use axum::response::IntoResponse;
use serde_json::Value as Json;
use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The largest upload body the emulator takes in one request (larger media goes in resumable
/// chunks).
const UPLOAD_LIMIT: usize = 256 * 1024 * 1024;

/// A request header (not Google's) asking for list answers without their lag: tests count what
/// the emulator holds with it, while `infra` never sends it.
pub const CONSISTENT_READ_HEADER: &str = "x-emulator-consistent-read";

/// How many requests `/_emulator/requests` remembers.
const REQUEST_LOG_LENGTH: usize = 2000;

/// Every API served through the collection engine: its methods, by discovery id.
const SERVED: &[&[collection::Method]] = &[
    secretmanager::METHODS,
    service_accounts::METHODS,
    projects::METHODS,
    run::METHODS,
    monitoring::METHODS,
    budgets::METHODS,
];

/// How the emulator behaves beyond Google's rules.
#[derive(Debug, Clone, Default)]
pub struct EmulatorOptions {
    /// Where to keep the store; `None` keeps it in memory only.
    pub data_dir: Option<PathBuf>,
    /// Delay added to every answer.
    pub latency: Duration,
    /// Share of requests answered 503 UNAVAILABLE (evenly spaced), to exercise clients' retries.
    pub fail_rate: f64,
    /// How long a long-running operation takes to finish.
    pub operation_delay: Duration,
    /// Google's quirks and injected faults (on by default).
    pub realism: RealismOptions,
    /// The currency of each billing account named (ISO 4217); the others bill in USD.
    pub billing_currencies: std::collections::BTreeMap<String, String>,
}

/// The emulator's shared state.
pub struct Emulator {
    store: Mutex<Store>,
    options: EmulatorOptions,
    requests: AtomicU64,
    forced_conflicts: AtomicU64,
    request_log: Mutex<std::collections::VecDeque<Json>>,
    realism: Realism,
    _data_lock: Option<File>,
    /// Request quotas and disabled APIs, checked before anything else.
    quotas: Quotas,
}

/// Why the emulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "{path}: the emulator's data is not readable: {message}\n  hint: move the directory aside to start empty"
    )]
    Corrupt { path: String, message: String },
    #[error(
        "{path} is in use by another emulator or infra process\n  hint: wait for it to finish, or give this one another --data directory"
    )]
    InUse { path: String },
}

impl Emulator {
    /// Opens the store in `options.data_dir` (locking it) or in memory.
    pub fn open(options: EmulatorOptions) -> Result<Arc<Self>, EmulatorError> {
        let (store, lock) = match &options.data_dir {
            None => (Store::default(), None),
            Some(directory) => {
                let io = |source| EmulatorError::Io {
                    path: directory.display().to_string(),
                    source,
                };
                std::fs::create_dir_all(directory).map_err(io)?;
                let lock_path = directory.join("emulator.lock");
                let lock = File::options()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(&lock_path)
                    .map_err(io)?;
                let mut waited = Duration::ZERO;
                loop {
                    match lock.try_lock() {
                        Ok(()) => break,
                        Err(std::fs::TryLockError::WouldBlock)
                            if waited < Duration::from_secs(30) =>
                        {
                            std::thread::sleep(Duration::from_millis(100));
                            waited += Duration::from_millis(100);
                        }
                        Err(std::fs::TryLockError::WouldBlock) => {
                            return Err(EmulatorError::InUse {
                                path: directory.display().to_string(),
                            });
                        }
                        Err(std::fs::TryLockError::Error(error)) => return Err(io(error)),
                    }
                }
                let data_path = directory.join("emulator.json");
                let store = match std::fs::read(&data_path) {
                    Ok(bytes) => {
                        serde_json::from_slice(&bytes).map_err(|error| EmulatorError::Corrupt {
                            path: data_path.display().to_string(),
                            message: error.to_string(),
                        })?
                    }
                    Err(error) if error.kind() == std::io::ErrorKind::NotFound => Store::default(),
                    Err(error) => return Err(io(error)),
                };
                (store, Some(lock))
            }
        };
        let mut store = store;
        store.access_propagation_ms =
            i64::try_from(options.realism.secret_access_propagation.as_millis())
                .unwrap_or(i64::MAX);
        let options_quotas = options.realism.quotas.clone();
        store.secret_alias_lag_ms =
            i64::try_from(options.realism.secret_alias_lag.as_millis()).unwrap_or(i64::MAX);
        store.policy_read_lag_ms =
            i64::try_from(options.realism.policy_read_lag.as_millis()).unwrap_or(i64::MAX);
        store.billing_currencies = options.billing_currencies.clone();
        Ok(Arc::new(Self {
            store: Mutex::new(store),
            realism: Realism::new(options.realism.clone()),
            options,
            requests: AtomicU64::new(0),
            forced_conflicts: AtomicU64::new(0),
            request_log: Mutex::default(),
            _data_lock: lock,
            quotas: Quotas::new(&options_quotas),
        }))
    }

    /// Returns the router serving every emulated API.
    pub fn router(self: &Arc<Self>) -> Router {
        Router::new()
            .route("/_emulator/faults", axum::routing::post(handle_faults))
            .route("/_emulator/requests", axum::routing::get(handle_requests))
            .route(
                "/_emulator/quotas",
                axum::routing::get(handle_quotas).post(handle_quota_override),
            )
            .route("/_emulator/services", axum::routing::post(handle_services))
            .route("/storage/v1/{*path}", axum::routing::any(handle_storage))
            .route(
                "/upload/storage/v1/{*path}",
                // Media is not held to the JSON APIs' 2 MiB request limit.
                axum::routing::any(handle_storage)
                    .layer(axum::extract::DefaultBodyLimit::max(UPLOAD_LIMIT)),
            )
            .route(
                "/download/storage/v1/{*path}",
                axum::routing::any(handle_storage),
            )
            // The discovery document's `batchPath`: Cloud Storage batches (multipart/mixed) are
            // not served, which is said, not hidden behind a 404.
            .route(
                "/batch/storage/v1",
                axum::routing::any(|| async {
                    storage::StorageError::new(
                        axum::http::StatusCode::NOT_IMPLEMENTED,
                        "notImplemented",
                        "Batch requests (batch/storage/v1) are not implemented by the emulator: send each request on its own.",
                    )
                    .into_response()
                }),
            )
            .route("/{version}/{*path}", axum::routing::any(handle_api))
            .fallback(|method: Method, uri: axum::http::Uri| async move {
                ApiError::not_found(format!("Method not found: {method} {}", uri.path()))
            })
            .method_not_allowed_fallback(|method: Method, uri: axum::http::Uri| async move {
                ApiError::method_not_allowed(format!(
                    "Method {method} is not allowed on {}",
                    uri.path()
                ))
            })
            .layer(axum::middleware::map_response(google_error_envelope))
            .with_state(self.clone())
    }

    /// Returns true for the requests `--fail-rate` picks: evenly spaced (request n fails when
    /// n × rate crosses a whole number), so a run is repeatable and a retry is not failed again
    /// by chance.
    fn should_fail(&self) -> bool {
        let rate = self.options.fail_rate;
        if rate <= 0.0 {
            return false;
        }
        let count = self.requests.fetch_add(1, Ordering::SeqCst) as f64;
        ((count + 1.0) * rate).floor() > (count * rate).floor()
    }

    fn take_forced_conflict(&self) -> bool {
        self.forced_conflicts
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
                left.checked_sub(1)
            })
            .is_ok()
    }

    fn persist(&self, store: &Store) -> Result<(), ApiError> {
        let Some(directory) = &self.options.data_dir else {
            return Ok(());
        };
        let bytes =
            serde_json::to_vec(store).map_err(|error| ApiError::internal(error.to_string()))?;
        crate::state::local::write_atomically(&directory.join("emulator.json"), &bytes).map_err(
            |error| ApiError::internal(format!("emulator could not persist its data: {error}")),
        )
    }

    /// Remembers a request's method, path and query (never its body) for `/_emulator/requests`.
    fn log_request(&self, request: &Request) {
        let mut log = self
            .request_log
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if log.len() >= REQUEST_LOG_LENGTH {
            log.pop_front();
        }
        let query: serde_json::Map<String, Json> = request
            .query
            .iter()
            .map(|(key, value)| (key.clone(), Json::String(value.clone())))
            .collect();
        log.push_back(serde_json::json!({
            "method": request.method.as_str(),
            "path": format!("/{}/{}", request.version, request.path),
            "query": query,
        }));
    }

    /// Serves one API request. `consistent_read` (the `x-emulator-consistent-read` header, not
    /// Google's) lets a test see what the emulator holds without the lag of lists.
    async fn dispatch(
        &self,
        mut request: Request,
        consistent_read: bool,
    ) -> Result<Json, ApiError> {
        let format = take_system_parameters(&mut request.query)?;
        self.log_request(&request);
        let full_path = format!("{}/{}", request.version, request.path);
        // Held until the answer: a second write meanwhile meets Monitoring's 409.
        let _monitoring_write = match monitoring_write_project(&request.method, &full_path) {
            Some(project) => Some(self.realism.begin_monitoring_write(&project)?),
            None => None,
        };
        self.check_quirks(&request, &full_path)?;
        if !self.options.latency.is_zero() {
            tokio::time::sleep(self.options.latency).await;
        }
        if self.should_fail() {
            return Err(ApiError::unavailable(
                "The service is currently unavailable (injected by --fail-rate).",
            ));
        }
        let method = discovery::find_method(request.method.as_str(), &full_path);
        if let Some(method) = method {
            normalize_query_names(method, &mut request);
            refuse_unknown_query(method, &request)?;
            decode_body(method, &mut request)?;
        }
        if request.version == "v2" && request.method == Method::POST {
            let wait = {
                let store = self
                    .store
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                run::wait_for(&store, &request)
            };
            if let Some(wait) = wait {
                tokio::time::sleep(wait).await;
            }
        }
        let mut store = self
            .store
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        self.check_stored_quirks(&store, &request, &full_path)?;
        if self.realism.options.dashboard_server_fields
            && let Some(method) = method
            && matches!(
                method.id.as_str(),
                "monitoring.projects.dashboards.create" | "monitoring.projects.dashboards.patch"
            )
            && let Ok(mut dashboard) = serde_json::from_slice::<Json>(&request.body)
        {
            // Filled before the handler stores it, so every later read answers them too.
            monitoring::fill_server_fields(&mut dashboard);
            request.body = Bytes::from(
                serde_json::to_vec(&dashboard)
                    .map_err(|error| ApiError::internal(error.to_string()))?,
            );
        }
        if request.path.ends_with(":setIamPolicy") && self.take_forced_conflict() {
            return Err(ApiError::aborted(
                "There were concurrent policy changes. Please retry the whole read-modify-write with exponential backoff.",
            ));
        }
        let outcome = match method {
            None => Err(ApiError::not_found(format!(
                "Method not found: {} /{full_path}",
                request.method
            ))),
            Some(method) => match collection::handler(SERVED, &method.id) {
                None => Err(ApiError::unimplemented(format!(
                    "Method {} is not implemented by the emulator ({} /{full_path}).",
                    method.id, request.method
                ))),
                Some(handler) => {
                    let path = discovery::path_variables(&method.path, &full_path);
                    if let Some(project) = path.get("projectsId")
                        && !project.chars().all(|c| c.is_ascii_digit())
                        && project != "-"
                    {
                        store
                            .project_ids
                            .entry(super::store::project_number(project))
                            .or_insert_with(|| project.clone());
                    }
                    let mut call = collection::Call {
                        store: &mut store,
                        request: &request,
                        path,
                        operation_delay: self.options.operation_delay,
                    };
                    handler(&mut call)
                }
            },
        };
        let response = outcome?;
        if response.changed {
            self.persist(&store)?;
        }
        if full_path.ends_with(":setIamPolicy") && full_path.contains("/secrets/") {
            record_secret_grants(&mut store, &full_path, &request);
        }
        if request.method == Method::POST
            && full_path.ends_with("/serviceAccounts")
            && let Some(email) = response.body["email"].as_str()
        {
            self.realism.account_created(email);
        }
        let mut body = response.body;
        if let Some(method) = method {
            if request.method == Method::POST {
                self.realism.object_created(&method.id, &body);
            } else if !consistent_read {
                self.realism.hide_recent(&method.id, &mut body);
            }
            encode_body(method, &mut body, &format);
        }
        Ok(body)
    }
}

impl Emulator {
    /// Applies Google's quirks that refuse a request before it is served: a policy naming a
    /// service account IAM does not know yet, a GET of a service account IAM does not know yet.
    fn check_quirks(&self, request: &Request, full_path: &str) -> Result<(), ApiError> {
        if request.method == Method::GET
            && let ["v1", "projects", _, "serviceAccounts", account] =
                full_path.split('/').collect::<Vec<_>>()[..]
        {
            self.realism
                .check_account_read(full_path.trim_start_matches("v1/"), account)?;
        }
        let is_write = matches!(request.method, Method::POST | Method::PATCH);
        if !is_write {
            return Ok(());
        }
        let body = || serde_json::from_slice::<Json>(&request.body).unwrap_or(Json::Null);
        if full_path.ends_with(":setIamPolicy") {
            self.realism.check_policy_members(&body())?;
        }
        Ok(())
    }

    /// Applies the quirks that read what the project holds: a PromQL condition naming a user
    /// metric never written to it is refused.
    fn check_stored_quirks(
        &self,
        store: &Store,
        request: &Request,
        full_path: &str,
    ) -> Result<(), ApiError> {
        if !matches!(request.method, Method::POST | Method::PATCH) {
            return Ok(());
        }
        if let Some(rest) = full_path.strip_prefix("v3/projects/")
            && let Some((project, _)) = rest.split_once("/alertPolicies")
        {
            let body = serde_json::from_slice::<Json>(&request.body).unwrap_or(Json::Null);
            let written = monitoring::written_metric_types(store, project);
            self.realism.check_promql(&body, &written)?;
        }
        Ok(())
    }
}

/// Notes when each secret-accessor grant of a `setIamPolicy` on a secret was first seen, for
/// the window in which a starting Cloud Run revision is still refused the secret.
fn record_secret_grants(store: &mut Store, full_path: &str, request: &Request) {
    if store.access_propagation_ms <= 0 {
        return;
    }
    let Some((resource, _)) = full_path
        .strip_prefix("v1/")
        .and_then(|path| path.split_once(":setIamPolicy"))
    else {
        return;
    };
    let secret = match resource.split('/').collect::<Vec<_>>()[..] {
        ["projects", project, "secrets", id] => {
            format!(
                "projects/{}/secrets/{id}",
                super::store::project_number(project)
            )
        }
        _ => return,
    };
    let body: Json = serde_json::from_slice(&request.body).unwrap_or(Json::Null);
    let now = chrono::Utc::now().timestamp_millis();
    let members = body
        .pointer("/policy/bindings")
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
        .filter(|binding| binding["role"] == "roles/secretmanager.secretAccessor")
        .flat_map(|binding| binding["members"].as_array().cloned().unwrap_or_default());
    for member in members {
        if let Some(member) = member.as_str() {
            store
                .secret_grants
                .entry(format!("{secret}|{}", member.to_ascii_lowercase()))
                .or_insert(now);
        }
    }
}

/// Returns the project whose alerting state a request writes (alert policies, notification
/// channels), for Monitoring's one-writer rule; `None` for anything else.
fn monitoring_write_project(method: &Method, full_path: &str) -> Option<String> {
    if *method == Method::GET {
        return None;
    }
    let rest = full_path.strip_prefix("v3/projects/")?;
    let (project, collection) = rest.split_once('/')?;
    (collection.starts_with("alertPolicies") || collection.starts_with("notificationChannels"))
        .then(|| project.to_string())
}

/// Answers as a connection cut mid-answer: the status and half the body, then an error, so
/// the client cannot tell whether the change it asked for was made (it was).
fn lost_answer(response: axum::response::Response) -> axum::response::Response {
    let (mut parts, _) = response.into_parts();
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    let stream = futures::stream::iter([
        Ok(Bytes::from_static(b"{\"name\": ")),
        Err(std::io::Error::other(
            "answer lost (injected by --lose-answer-rate)",
        )),
    ]);
    axum::response::Response::from_parts(parts, axum::body::Body::from_stream(stream))
}

/// 429 RESOURCE_EXHAUSTED with `Retry-After: 1`, as Google's quota checks answer; in Cloud
/// Storage's own error shape (reason `rateLimitExceeded`) on its paths.
fn throttled(storage: bool) -> axum::response::Response {
    let message = "Quota exceeded for quota metric 'Requests' (injected by --throttle-rate).";
    let mut response = if storage {
        storage::StorageError::new(
            axum::http::StatusCode::TOO_MANY_REQUESTS,
            "rateLimitExceeded",
            message,
        )
        .into_response()
    } else {
        ApiError::from_status(axum::http::StatusCode::TOO_MANY_REQUESTS, message).into_response()
    };
    response.headers_mut().insert(
        axum::http::header::RETRY_AFTER,
        axum::http::HeaderValue::from_static("1"),
    );
    response
}

/// Serves one request through the fault dice: throttled, slowed, or served and then its
/// answer lost (a write whose change commits).
async fn with_faults(
    emulator: &Emulator,
    method: &Method,
    signature: &str,
    serve: impl std::future::Future<Output = axum::response::Response>,
) -> axum::response::Response {
    let is_write = *method != Method::GET;
    match emulator.realism.fault(signature, is_write) {
        Fault::Throttle => throttled(
            ["/storage/", "/upload/storage/", "/download/storage/"]
                .iter()
                .any(|prefix| {
                    signature
                        .split_once(' ')
                        .is_some_and(|(_, path)| path.starts_with(prefix))
                }),
        ),
        Fault::Slow(delay) => {
            tokio::time::sleep(delay).await;
            serve.await
        }
        Fault::LoseAnswer => {
            let response = serve.await;
            if response.status().is_success() {
                lost_answer(response)
            } else {
                response
            }
        }
        Fault::None => serve.await,
    }
}

/// Refuses query parameters the discovery method does not define, as Google does, so no API
/// can accept more than Google's.
/// Query parameters may use the proto field name (`page_size`) as well as the JSON name
/// (`pageSize`), as Google's HTTP transcoding reads both; handlers see the JSON name.
fn normalize_query_names(method: &discovery::Method, request: &mut Request) {
    for (key, _) in request.query.iter_mut() {
        if key.contains('_') && !method.parameters.iter().any(|parameter| parameter == key) {
            let camel = super::collection::camel_case(key);
            if method.parameters.contains(&camel) {
                *key = camel;
            }
        }
    }
}

fn refuse_unknown_query(method: &discovery::Method, request: &Request) -> Result<(), ApiError> {
    for (key, _) in &request.query {
        if !method.parameters.iter().any(|parameter| parameter == key) {
            return Err(ApiError::invalid_argument(format!(
                "Invalid JSON payload received. Unknown name \"{key}\": Cannot bind query parameter. Field '{key}' could not be found in request message."
            )));
        }
    }
    Ok(())
}

/// Rewrites a request body into the form handlers read (enum names), refusing enum numbers the
/// `.proto` does not define.
fn decode_body(method: &discovery::Method, request: &mut Request) -> Result<(), ApiError> {
    let Some(schema) = &method.request else {
        return Ok(());
    };
    let Ok(mut body) = serde_json::from_slice::<Json>(&request.body) else {
        // Malformed JSON is the handler's to refuse, with its own wording.
        return Ok(());
    };
    wire::decode_request(method.api, schema, &mut body)?;
    request.body = Bytes::from(
        serde_json::to_vec(&body).map_err(|error| ApiError::internal(error.to_string()))?,
    );
    Ok(())
}

/// Writes an answer as proto3 JSON in the encoding the client asked for, keeping only the
/// `fields` selected.
fn encode_body(method: &discovery::Method, body: &mut Json, format: &AnswerFormat) {
    if let Some(schema) = &method.response {
        wire::encode_answer(method.api, schema, body, format.int_enums);
    }
    if let Some(selection) = &format.fields {
        *body = super::http::select_fields(body, selection);
    }
}

/// Gives every error the server answers (axum's own 405 and 413 included) Google's envelope.
async fn google_error_envelope(response: axum::response::Response) -> axum::response::Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/json"));
    if !status.is_client_error() && !status.is_server_error() || is_json {
        return response;
    }
    let error = match status {
        axum::http::StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::payload_too_large("Request payload size exceeds the limit.")
        }
        axum::http::StatusCode::METHOD_NOT_ALLOWED => {
            ApiError::method_not_allowed("The method is not allowed on this resource.")
        }
        _ => ApiError::from_status(status, "The request could not be served."),
    };
    error.into_response()
}

/// `POST /_emulator/faults {"setIamPolicyConflicts": N}`: the next N `setIamPolicy` calls, on
/// any API, answer 409 ABORTED as if another writer had won the race. Not a Google API: tests
/// use it to exercise read-modify-write retries.
async fn handle_faults(
    State(emulator): State<Arc<Emulator>>,
    body: Bytes,
) -> axum::response::Response {
    let parsed: Json = match serde_json::from_slice(&body) {
        Ok(parsed) => parsed,
        Err(error) => {
            return ApiError::invalid_argument(format!("Invalid JSON payload received. {error}"))
                .into_response();
        }
    };
    let Some(conflicts) = parsed.get("setIamPolicyConflicts").and_then(Json::as_u64) else {
        return ApiError::invalid_argument("expected {\"setIamPolicyConflicts\": N}")
            .into_response();
    };
    emulator.forced_conflicts.store(conflicts, Ordering::SeqCst);
    axum::Json(serde_json::json!({"setIamPolicyConflicts": conflicts})).into_response()
}

/// `GET /_emulator/requests`: the most recent API requests (method, path, query; never bodies),
/// oldest first, so tests can assert what a client sent (an update mask, say). Not a Google API.
async fn handle_requests(State(emulator): State<Arc<Emulator>>) -> axum::response::Response {
    let log = emulator
        .request_log
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    axum::Json(serde_json::json!({"requests": log.iter().cloned().collect::<Vec<_>>()}))
        .into_response()
}

/// `GET /_emulator/quotas`: every quota bucket counted so far, per consumer (project number),
/// quota metric and region: the limit per window, what the current window used, and the totals
/// admitted and refused; plus the APIs disabled. Not a Google API.
async fn handle_quotas(State(emulator): State<Arc<Emulator>>) -> axum::response::Response {
    axum::Json(emulator.quotas.snapshot()).into_response()
}

/// `POST /_emulator/quotas {"project": P, "quotaMetric": M, "limit": N}`: from now on project
/// P's bucket M admits N requests per window (`"limit": null` restores the default). Not a
/// Google API.
async fn handle_quota_override(
    State(emulator): State<Arc<Emulator>>,
    body: Bytes,
) -> axum::response::Response {
    let parsed: Json = serde_json::from_slice(&body).unwrap_or(Json::Null);
    let (Some(project), Some(metric)) =
        (parsed["project"].as_str(), parsed["quotaMetric"].as_str())
    else {
        return ApiError::invalid_argument(
            "expected {\"project\": P, \"quotaMetric\": M, \"limit\": N or null}",
        )
        .into_response();
    };
    if !emulator
        .quotas
        .set_override(project, metric, parsed["limit"].as_u64())
    {
        return ApiError::invalid_argument(format!("unknown quota metric `{metric}`"))
            .into_response();
    }
    axum::Json(emulator.quotas.snapshot()).into_response()
}

/// `POST /_emulator/services {"project": P, "service": S, "enabled": false}`: marks API S
/// disabled (or enabled again) in project P, as `gcloud services disable|enable` would. Not a
/// Google API.
async fn handle_services(
    State(emulator): State<Arc<Emulator>>,
    body: Bytes,
) -> axum::response::Response {
    let parsed: Json = serde_json::from_slice(&body).unwrap_or(Json::Null);
    let (Some(project), Some(service), Some(enabled)) = (
        parsed["project"].as_str(),
        parsed["service"].as_str(),
        parsed["enabled"].as_bool(),
    ) else {
        return ApiError::invalid_argument(
            "expected {\"project\": P, \"service\": S, \"enabled\": true or false}",
        )
        .into_response();
    };
    emulator
        .quotas
        .set_service_enabled(project, service, enabled);
    axum::Json(emulator.quotas.snapshot()).into_response()
}

/// Serves Cloud Storage, whose paths keep object names percent-encoded (so the raw URI is
/// parsed, not axum's decoded path) and whose errors have their own shape.
async fn handle_storage(
    State(emulator): State<Arc<Emulator>>,
    method: Method,
    uri: axum::http::Uri,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    let signature = format!("{method} {}", uri.path());
    let served = serve_storage(emulator.clone(), method.clone(), uri, headers, body);
    with_faults(&emulator, &method, &signature, served).await
}

async fn serve_storage(
    emulator: Arc<Emulator>,
    method: Method,
    uri: axum::http::Uri,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    let raw_path = uri.path();
    let (path, upload) = match raw_path.strip_prefix("/upload/storage/v1/") {
        Some(rest) => (rest, true),
        None => (
            raw_path
                .strip_prefix("/storage/v1/")
                .or_else(|| raw_path.strip_prefix("/download/storage/v1/"))
                .unwrap_or_default(),
            false,
        ),
    };
    let query: Vec<(String, String)> =
        form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("127.0.0.1");
    let logged = Request {
        method: method.clone(),
        version: "storage".into(),
        path: path.to_string(),
        query: query.clone(),
        body: Bytes::new(),
    };
    emulator.log_request(&logged);
    if !emulator.options.latency.is_zero() {
        tokio::time::sleep(emulator.options.latency).await;
    }
    if emulator.should_fail() {
        return storage::StorageError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "backendError",
            "The service is currently unavailable (injected by --fail-rate).",
        )
        .into_response();
    }
    let request = storage::StorageRequest {
        method: &method,
        path,
        upload,
        query: &query,
        headers: &headers,
        body: &body,
        base_url: format!("http://{host}/"),
        realism: Some(&emulator.realism),
    };
    let mut store = emulator
        .store
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    match storage::handle(&mut store, &request) {
        Ok((answer, changed)) => {
            if changed && let Err(error) = emulator.persist(&store) {
                return error.into_response();
            }
            match answer {
                storage::StorageAnswer::Json(body) => {
                    let selection = query
                        .iter()
                        .find(|(key, _)| key == "fields" || key == "$fields")
                        .map(|(_, value)| value.as_str())
                        .filter(|value| !value.trim().is_empty());
                    match selection {
                        Some(selection) => {
                            axum::Json(super::http::select_fields(&body, selection)).into_response()
                        }
                        None => axum::Json(body).into_response(),
                    }
                }
                storage::StorageAnswer::Media {
                    data,
                    content_type,
                    headers,
                    range,
                } => {
                    let status = if range.is_some() {
                        axum::http::StatusCode::PARTIAL_CONTENT
                    } else {
                        axum::http::StatusCode::OK
                    };
                    let mut response = (
                        status,
                        [(axum::http::header::CONTENT_TYPE, content_type)],
                        data,
                    )
                        .into_response();
                    let extra = headers
                        .into_iter()
                        .chain(range.map(|range| ("content-range".to_string(), range)));
                    for (name, value) in extra {
                        if let (Ok(name), Ok(value)) = (
                            axum::http::HeaderName::try_from(name),
                            axum::http::HeaderValue::try_from(value),
                        ) {
                            response.headers_mut().insert(name, value);
                        }
                    }
                    response
                }
                storage::StorageAnswer::Empty => axum::http::StatusCode::NO_CONTENT.into_response(),
                storage::StorageAnswer::Session(location) => (
                    axum::http::StatusCode::OK,
                    [(axum::http::header::LOCATION, location)],
                )
                    .into_response(),
                storage::StorageAnswer::Incomplete(persisted) => {
                    let mut response = axum::http::StatusCode::PERMANENT_REDIRECT.into_response();
                    if persisted > 0
                        && let Ok(value) = format!("bytes=0-{}", persisted - 1).parse()
                    {
                        response
                            .headers_mut()
                            .insert(axum::http::header::RANGE, value);
                    }
                    response
                }
            }
        }
        Err(error) => error.into_response(),
    }
}

async fn handle_api(
    State(emulator): State<Arc<Emulator>>,
    method: Method,
    Path((version, path)): Path<(String, String)>,
    RawQuery(raw_query): RawQuery,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
    // Google's front end refuses a disabled API or a spent quota before the API sees it.
    if let Err(error) = emulator.quotas.admit(
        method.as_str(),
        &format!("{version}/{path}"),
        header(crate::gcp::client::QUOTA_PROJECT_HEADER),
    ) {
        return error.into_response();
    }
    if version == "v1"
        && path.starts_with("billingAccounts/")
        && let Err(error) = emulator
            .realism
            .check_quota_project(header("authorization"), header("x-goog-user-project"))
    {
        return error.into_response();
    }
    let signature = format!("{method} /{version}/{path}");
    let consistent_read = headers.contains_key(CONSISTENT_READ_HEADER);
    let served = serve_api(
        emulator.clone(),
        method.clone(),
        version,
        path,
        raw_query,
        body,
        consistent_read,
    );
    with_faults(&emulator, &method, &signature, served).await
}

async fn serve_api(
    emulator: Arc<Emulator>,
    method: Method,
    version: String,
    path: String,
    raw_query: Option<String>,
    body: Bytes,
    consistent_read: bool,
) -> axum::response::Response {
    let query: Vec<(String, String)> =
        form_urlencoded::parse(raw_query.unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    let request = Request {
        method,
        version,
        path,
        query,
        body,
    };
    match emulator.dispatch(request, consistent_read).await {
        Ok(body) => axum::Json(body).into_response(),
        Err(error) => error.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_served_method_is_a_discovery_method_and_served_once() {
        let mut seen = std::collections::BTreeSet::new();
        for method in SERVED.iter().flat_map(|methods| methods.iter()) {
            assert!(
                discovery::method_by_id(method.id).is_some(),
                "{} is not a method of any embedded discovery document",
                method.id
            );
            assert!(seen.insert(method.id), "{} is served twice", method.id);
        }
    }
}
