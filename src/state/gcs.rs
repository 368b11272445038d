//! The GCS backend over the Cloud Storage JSON API: the state object is written with
//! `ifGenerationMatch=<generation read>` (so no writer, locked or not, clobbers a newer state),
//! the lock is a separate object created with `ifGenerationMatch=0` whose generation is its
//! id, released by `DELETE ?ifGenerationMatch=<id>`. An upload whose answer was lost is read
//! back, and recognised as ours by its bytes, never retried into its own precondition. Cloud
//! Storage takes one write per second per object name: this backend sends a write of an object
//! no sooner than a second after its previous one, and backs off on a 429 (another process
//! wrote it). Why not the `google-cloud-storage` crate: see docs/state.md.

use super::model::State;
use super::{LockInfo, StateError, StateVersion};
use crate::gcp::{GcpClient, GcpError, Service};
use reqwest::Method;
use serde_json::{Value as Json, json};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Cloud Storage's limit on writes (create, update, delete) of one object name: "one write per
/// second" (<https://cloud.google.com/storage/quotas>); faster ones get 429 `rateLimitExceeded`.
pub const OBJECT_WRITE_INTERVAL: Duration = Duration::from_secs(1);

/// How long a write keeps backing off while Cloud Storage answers 429: as long as Google's own
/// clients retry by default (<https://cloud.google.com/storage/docs/retry-strategy>), so a
/// throttled state write slows an apply down rather than failing it.
const RATE_LIMIT_PATIENCE: Duration = Duration::from_secs(120);

/// The first and the longest wait after a 429 (doubling in between, as Google advises).
const RATE_LIMIT_FIRST_DELAY: Duration = Duration::from_secs(1);
const RATE_LIMIT_MAX_DELAY: Duration = Duration::from_secs(32);

/// State kept in a Cloud Storage bucket.
pub struct GcsBackend {
    client: GcpClient,
    env: String,
    bucket: String,
    state_object: String,
    lock_object: String,
    /// The generation of the state object last read or written (0: none exists).
    generation: Mutex<Option<i64>>,
    /// Our lock's generation, while we hold it.
    lock_id: Mutex<Option<i64>>,
    /// Create the bucket (versioned, in this project) when it does not exist.
    create_bucket_in: Option<String>,
    /// When this backend's last write of each object (state, lock) ended: the next one waits
    /// until `OBJECT_WRITE_INTERVAL` after it.
    last_writes: Mutex<HashMap<String, Instant>>,
    /// The client without retries of its own, for the lock's create: a 429 there means the
    /// lock object was written within the second — taken (then it is held, and the lock
    /// timeout decides) or just released (sent again) — which only a look at the holder tells,
    /// and the client's quick retries would hide.
    lock_client: GcpClient,
}

/// Returns the wait before sending again after the `attempt`th 429 in a row: exponential from
/// `RATE_LIMIT_FIRST_DELAY`, capped, with jitter upwards only (a wait under the first delay
/// would meet the same limit).
fn rate_limit_delay(attempt: u32) -> Duration {
    let exponential = RATE_LIMIT_FIRST_DELAY
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
        .min(RATE_LIMIT_MAX_DELAY);
    exponential.mul_f64(rand::random_range(1.0..1.25))
}

/// Tells whether a 429 is Cloud Storage's limit on one object's writes, which its JSON API
/// answers without a `status`; a quota's 429 (RESOURCE_EXHAUSTED) is the client's to retry.
fn is_object_rate_limit(error: &GcpError) -> bool {
    match error {
        GcpError::Api {
            code: 429, status, ..
        } => status != "RESOURCE_EXHAUSTED",
        GcpError::OutcomeUnknown(inner) => is_object_rate_limit(inner),
        _ => false,
    }
}

fn encode(name: &str) -> String {
    percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC).to_string()
}

fn generation_of(object: &Json) -> Option<i64> {
    object["generation"]
        .as_str()
        .and_then(|text| text.parse().ok())
}

impl GcsBackend {
    /// Creates a backend for `env` keeping `<prefix>/<env>.state.json` in `bucket`.
    pub fn new(client: GcpClient, env: &str, bucket: &str, prefix: &str) -> Self {
        let prefix = prefix.trim_matches('/');
        let object = |suffix: &str| {
            if prefix.is_empty() {
                format!("{env}.{suffix}")
            } else {
                format!("{prefix}/{env}.{suffix}")
            }
        };
        let lock_client = client.clone().with_retry(crate::gcp::RetryPolicy {
            max_attempts: 1,
            ..client.retry_policy().clone()
        });
        Self {
            client,
            lock_client,
            env: env.to_string(),
            bucket: bucket.to_string(),
            state_object: object("state.json"),
            lock_object: object("lock"),
            generation: Mutex::new(None),
            lock_id: Mutex::new(None),
            create_bucket_in: None,
            last_writes: Mutex::default(),
        }
    }

    /// Makes the backend create a missing bucket, versioned, in `project` (`None`: never).
    pub fn creating_bucket_in(mut self, project: Option<String>) -> Self {
        self.create_bucket_in = project;
        self
    }

    async fn create_bucket(&self, project: &str) -> Result<(), StateError> {
        let body = json!({"name": self.bucket, "versioning": {"enabled": true}});
        match self
            .client
            .call(
                Method::POST,
                Service::Storage,
                "storage/v1/b",
                &[("project", project.to_string())],
                Some(&body),
            )
            .await
        {
            Ok(_) => {
                tracing::info!("created gs://{} (versioning on)", self.bucket);
                Ok(())
            }
            // Someone else created it meanwhile: fine.
            Err(error) if error.code() == Some(409) => Ok(()),
            // The create may have committed unheard: the bucket being there settles it.
            Err(error) if error.is_outcome_unknown() => {
                let path = format!("storage/v1/b/{}", self.bucket);
                match self
                    .client
                    .call(Method::GET, Service::Storage, &path, &[], None)
                    .await
                {
                    Ok(_) => Ok(()),
                    Err(_) => Err(self.error(format!("gs://{}", self.bucket), error)),
                }
            }
            Err(error) => Err(self.error(format!("gs://{}", self.bucket), error)),
        }
    }

    /// Returns the state object's URL, for messages.
    pub fn location(&self) -> String {
        format!("gs://{}/{}", self.bucket, self.state_object)
    }

    fn lock_location(&self) -> String {
        format!("gs://{}/{}", self.bucket, self.lock_object)
    }

    fn error(&self, location: String, source: GcpError) -> StateError {
        if source.is_not_found() && source.to_string().contains("bucket does not exist") {
            return StateError::BucketMissing {
                bucket: self.bucket.clone(),
            };
        }
        StateError::Gcs {
            location,
            source: Box::new(source),
        }
    }

    fn object_path(&self, object: &str) -> String {
        format!("storage/v1/b/{}/o/{}", self.bucket, encode(object))
    }

    async fn metadata(
        &self,
        object: &str,
        generation: Option<i64>,
    ) -> Result<Option<Json>, GcpError> {
        let query: Vec<(&str, String)> = generation
            .map(|generation| ("generation", generation.to_string()))
            .into_iter()
            .collect();
        match self
            .client
            .call(
                Method::GET,
                Service::Storage,
                &self.object_path(object),
                &query,
                None,
            )
            .await
        {
            Ok(metadata) => Ok(Some(metadata)),
            Err(error) if error.is_not_found() => Ok(None),
            Err(error) => Err(error),
        }
    }

    async fn media(&self, object: &str, generation: i64) -> Result<Vec<u8>, GcpError> {
        let query = [
            ("alt", "media".to_string()),
            ("generation", generation.to_string()),
        ];
        self.client
            .call_bytes(
                Method::GET,
                Service::Storage,
                &self.object_path(object),
                &query,
                None,
            )
            .await
    }

    /// Returns when this backend may next write `object` (`None`: now): a second after its
    /// previous write of it ended, so that, however long that write took to arrive, Cloud
    /// Storage sees the two a second apart.
    fn write_allowed_at(&self, object: &str) -> Option<Instant> {
        self.last_writes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(object)
            .map(|ended| *ended + OBJECT_WRITE_INTERVAL)
            .filter(|allowed| *allowed > Instant::now())
    }

    /// Returns when the next state write may be sent (`None`: now), for a writer that gathers
    /// changes until then rather than waiting inside the write.
    pub fn next_write_at(&self) -> Option<Instant> {
        self.write_allowed_at(&self.state_object)
    }

    /// Sends one write of `object` (an upload or a delete) through `send`: no sooner than
    /// `OBJECT_WRITE_INTERVAL` after this backend's previous write of it, and again after a
    /// backoff for as long as Cloud Storage answers 429 (another process wrote the object, or
    /// the client's own retries came too fast), within `patience`. A 429 is a
    /// refusal before any work, so sending again is safe; it is not counted as a write.
    async fn write_paced<T, F, Fut>(
        &self,
        object: &str,
        patience: Duration,
        send: F,
    ) -> Result<T, GcpError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<T, GcpError>>,
    {
        let started = Instant::now();
        let mut throttled = 0;
        loop {
            if let Some(allowed) = self.write_allowed_at(object) {
                tokio::time::sleep_until(allowed.into()).await;
            }
            let result = send().await;
            let wrote = match &result {
                Ok(_) => true,
                // It may have landed: the next write counts from now as well.
                Err(error) => {
                    error.is_outcome_unknown() || error.code().is_none_or(|code| code >= 500)
                }
            };
            if wrote {
                self.last_writes
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .insert(object.to_string(), Instant::now());
            }
            match result {
                Err(error) if is_object_rate_limit(&error) => {
                    throttled += 1;
                    let delay = rate_limit_delay(throttled);
                    if started.elapsed() + delay > patience {
                        return Err(error);
                    }
                    tracing::info!(
                        "gs://{}/{object}: throttled ({error}); writing again in {delay:?}",
                        self.bucket
                    );
                    tokio::time::sleep(delay).await;
                }
                other => return other,
            }
        }
    }

    /// Uploads `bytes` as `object` on condition `ifGenerationMatch=expected`; returns the new
    /// generation. When the answer is lost (the upload may have landed unheard) the object is
    /// read back first: holding exactly these bytes at a new generation, it is this upload's
    /// (a state or a lock is never mistaken for another writer's); otherwise the upload is
    /// sent again and its precondition decides.
    async fn upload(&self, object: &str, bytes: &[u8], expected: i64) -> Result<i64, GcpError> {
        self.upload_with(&self.client, RATE_LIMIT_PATIENCE, object, bytes, expected)
            .await
    }

    /// Uploads like `upload` through `client`, backing off on 429 within `patience`.
    async fn upload_with(
        &self,
        client: &GcpClient,
        patience: Duration,
        object: &str,
        bytes: &[u8],
        expected: i64,
    ) -> Result<i64, GcpError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self
                .write_paced(object, patience, || {
                    self.upload_once(client, object, bytes, expected)
                })
                .await
            {
                Err(error) if error.is_outcome_unknown() && attempt < 4 => {
                    tracing::info!("{error}: reading {object} back before writing again");
                    tokio::time::sleep(self.client.retry_policy().delay(attempt)).await;
                    if let Some(generation) = self.landed(object, bytes, expected).await? {
                        return Ok(generation);
                    }
                }
                other => return other,
            }
        }
    }

    /// Returns the generation of `object` when it now holds `bytes` at a generation other
    /// than `expected`: what an upload whose answer was lost wrote.
    async fn landed(
        &self,
        object: &str,
        bytes: &[u8],
        expected: i64,
    ) -> Result<Option<i64>, GcpError> {
        let Some(metadata) = self.metadata(object, None).await? else {
            return Ok(None);
        };
        let generation = generation_of(&metadata).unwrap_or(0);
        if generation == expected {
            return Ok(None);
        }
        match self.media(object, generation).await {
            Ok(current) if current == bytes => Ok(Some(generation)),
            Ok(_) => Ok(None),
            Err(error) if error.is_not_found() => Ok(None),
            Err(error) => Err(error),
        }
    }

    async fn upload_once(
        &self,
        client: &GcpClient,
        object: &str,
        bytes: &[u8],
        expected: i64,
    ) -> Result<i64, GcpError> {
        let boundary = format!("infra-{}", uuid::Uuid::new_v4().simple());
        let metadata = json!({"name": object, "contentType": "application/json"});
        let mut body = Vec::with_capacity(bytes.len() + 256);
        body.extend_from_slice(format!("--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n{metadata}\r\n--{boundary}\r\nContent-Type: application/json\r\n\r\n").as_bytes());
        body.extend_from_slice(bytes);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        let query = [
            ("uploadType", "multipart".to_string()),
            ("ifGenerationMatch", expected.to_string()),
        ];
        let answer = client
            .call_bytes(
                Method::POST,
                Service::Storage,
                &format!("upload/storage/v1/b/{}/o", self.bucket),
                &query,
                Some((body, format!("multipart/related; boundary={boundary}"))),
            )
            .await?;
        let object: Json = serde_json::from_slice(&answer).unwrap_or(Json::Null);
        Ok(generation_of(&object).unwrap_or(expected + 1))
    }

    /// Reads the state (remembering its generation for the next write).
    pub async fn read(&self) -> Result<Option<State>, StateError> {
        let location = self.location();
        // One round trip, as it sits between taking the lock and the first change: the
        // download names the generation it is in `x-goog-generation`, consistent with its
        // bytes. An answer without that header is read the longer way (metadata, then media).
        let query = [("alt", "media".to_string())];
        let downloaded = match self
            .client
            .get_with_headers(
                Service::Storage,
                &self.object_path(&self.state_object),
                &query,
            )
            .await
        {
            Ok((headers, bytes)) => headers
                .get("x-goog-generation")
                .and_then(|value| value.to_str().ok())
                .and_then(|text| text.parse::<i64>().ok())
                .map(|generation| (generation, bytes)),
            Err(error) if error.is_not_found() => {
                *self
                    .generation
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(0);
                return Ok(None);
            }
            Err(source) => return Err(self.error(location, source)),
        };
        let (generation, bytes) = match downloaded {
            Some(downloaded) => downloaded,
            None => {
                let Some(metadata) = self
                    .metadata(&self.state_object, None)
                    .await
                    .map_err(|source| self.error(location.clone(), source))?
                else {
                    *self
                        .generation
                        .lock()
                        .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(0);
                    return Ok(None);
                };
                let generation = generation_of(&metadata).unwrap_or(0);
                let bytes = self
                    .media(&self.state_object, generation)
                    .await
                    .map_err(|source| self.error(location.clone(), source))?;
                (generation, bytes)
            }
        };
        let state = State::from_bytes(&bytes, &format!("{location}#{generation}"), &self.env)?;
        *self
            .generation
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(generation);
        Ok(Some(state))
    }

    /// Tells whether the state object is still at the generation last read or written (none
    /// existing counts as generation 0): one metadata request.
    pub async fn still_current(&self) -> Result<bool, StateError> {
        let known = self
            .generation
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .unwrap_or(0);
        let metadata = self
            .metadata(&self.state_object, None)
            .await
            .map_err(|source| self.error(self.location(), source))?;
        let current = metadata.as_ref().and_then(generation_of).unwrap_or(0);
        Ok(current == known)
    }

    /// Writes the state, only over the generation last read or written.
    pub async fn write(&self, state: &State) -> Result<(), StateError> {
        self.write_bytes(&state.to_bytes()).await
    }

    /// Writes a state serialized by `State::to_bytes` (or `to_bytes_around`), like `write`.
    pub async fn write_bytes(&self, bytes: &[u8]) -> Result<(), StateError> {
        let expected = match *self
            .generation
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
        {
            Some(generation) => generation,
            None => {
                return Err(StateError::Stale {
                    location: self.location(),
                    message: "the state was never read by this run".into(),
                });
            }
        };
        match self.upload(&self.state_object, bytes, expected).await {
            Ok(generation) => {
                *self
                    .generation
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(generation);
                Ok(())
            }
            Err(error) if error.code() == Some(412) => Err(StateError::Stale {
                location: self.location(),
                message: format!(
                    "another writer replaced the state since it was read (expected generation {expected})"
                ),
            }),
            Err(error) => Err(self.error(self.location(), error)),
        }
    }

    /// Returns who holds the lock, with its id (the lock object's generation).
    pub async fn holder(&self) -> Result<Option<LockInfo>, StateError> {
        let location = self.lock_location();
        let Some(metadata) = self
            .metadata(&self.lock_object, None)
            .await
            .map_err(|source| self.error(location.clone(), source))?
        else {
            return Ok(None);
        };
        let generation = generation_of(&metadata).unwrap_or(0);
        let bytes = match self.media(&self.lock_object, generation).await {
            Ok(bytes) => bytes,
            Err(error) if error.is_not_found() => return Ok(None),
            Err(error) => return Err(self.error(location, error)),
        };
        let mut info: LockInfo = serde_json::from_slice(&bytes).unwrap_or_else(|_| LockInfo {
            id: String::new(),
            operation: "unknown".into(),
            who: "unknown (unreadable lock)".into(),
            created: metadata["timeCreated"].as_str().unwrap_or_default().into(),
            version: String::new(),
        });
        info.id = generation.to_string();
        Ok(Some(info))
    }

    /// Takes the lock, waiting up to `timeout` with backoff while someone else holds it.
    pub async fn lock(&self, info: &LockInfo, timeout: Duration) -> Result<(), StateError> {
        let started = Instant::now();
        let mut delay = Duration::from_millis(100);
        let body = serde_json::to_vec_pretty(info).unwrap_or_default();
        let mut created_bucket = false;
        let mut throttled = 0;
        loop {
            let created = self
                .upload_with(
                    &self.lock_client,
                    Duration::ZERO,
                    &self.lock_object,
                    &body,
                    0,
                )
                .await;
            // Refused for the object's rate: held by whoever wrote it within the second (the
            // lock timeout decides, as for 412), or just released (sent again after a backoff,
            // within the patience of any throttled write); likewise a request that never got
            // an answer, which this client does not retry by itself.
            let created = match created {
                // A quota's 429 goes through the client's own retries, as any request's.
                Err(error) if error.code() == Some(429) && !is_object_rate_limit(&error) => {
                    self.upload(&self.lock_object, &body, 0).await
                }
                other => other,
            };
            let created = match created {
                Err(error)
                    if is_object_rate_limit(&error)
                        || (error.is_retryable() && error.code() != Some(429)) =>
                {
                    let held = is_object_rate_limit(&error) && self.holder().await?.is_some();
                    if held {
                        Err(error)
                    } else {
                        throttled += 1;
                        let wait = rate_limit_delay(throttled);
                        if started.elapsed() + wait > RATE_LIMIT_PATIENCE {
                            return Err(self.error(self.lock_location(), error));
                        }
                        tokio::time::sleep(wait).await;
                        continue;
                    }
                }
                other => other,
            };
            match created {
                Err(error)
                    if error.is_not_found()
                        && !created_bucket
                        && self.create_bucket_in.is_some() =>
                {
                    created_bucket = true;
                    self.create_bucket(self.create_bucket_in.as_deref().unwrap_or_default())
                        .await?;
                }
                Ok(generation) => {
                    *self
                        .lock_id
                        .lock()
                        .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(generation);
                    return Ok(());
                }
                Err(error) if error.code() == Some(412) || is_object_rate_limit(&error) => {
                    if started.elapsed() >= timeout {
                        let holder = self.holder().await?.map(Box::new);
                        return Err(StateError::Locked {
                            location: self.lock_location(),
                            holder,
                            env: self.env.clone(),
                        });
                    }
                    tokio::time::sleep(
                        delay.min(
                            timeout
                                .saturating_sub(started.elapsed())
                                .max(Duration::from_millis(10)),
                        ),
                    )
                    .await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
                Err(error) => return Err(self.error(self.lock_location(), error)),
            }
        }
    }

    /// Releases our lock (only ours: the delete names its generation).
    pub async fn unlock(&self) {
        let Some(id) = self
            .lock_id
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take()
        else {
            return;
        };
        // Gone already: a repeat of a release whose answer was lost finds nothing to delete.
        if let Err(error) = self.delete_lock(id).await
            && !error.is_not_found()
        {
            tracing::warn!(
                "could not release the lock {}: {error}",
                self.lock_location()
            );
        }
    }

    /// Returns a release of the lock this backend holds that borrows nothing, for a signal
    /// handler exiting at once (`None` when no lock is held).
    pub fn detached_unlock(&self) -> Option<futures::future::BoxFuture<'static, ()>> {
        let id = (*self
            .lock_id
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()))?;
        let client = self.client.clone();
        let path = self.object_path(&self.lock_object);
        let allowed = self.write_allowed_at(&self.lock_object);
        Some(Box::pin(async move {
            // The caller bounds the whole release; a delete sooner would be refused 429.
            if let Some(allowed) = allowed {
                tokio::time::sleep_until(allowed.into()).await;
            }
            let query = [("ifGenerationMatch", id.to_string())];
            let _ = client
                .call_bytes(Method::DELETE, Service::Storage, &path, &query, None)
                .await;
        }))
    }

    async fn delete_lock(&self, id: i64) -> Result<(), GcpError> {
        let query = [("ifGenerationMatch", id.to_string())];
        let path = self.object_path(&self.lock_object);
        self.write_paced(&self.lock_object, RATE_LIMIT_PATIENCE, || {
            self.client
                .call_bytes(Method::DELETE, Service::Storage, &path, &query, None)
        })
        .await
        .map(|_| ())
    }

    /// Deletes a lock someone else holds, by its id.
    pub async fn force_unlock(&self, id: &str) -> Result<(), StateError> {
        let generation: i64 = id.parse().map_err(|_| StateError::LockMismatch {
            location: self.lock_location(),
            message: format!("`{id}` is not a lock id"),
        })?;
        match self.delete_lock(generation).await {
            Ok(()) => Ok(()),
            Err(error) if error.code() == Some(412) => Err(StateError::LockMismatch {
                location: self.lock_location(),
                message: format!("the lock's id is not {id} (it was released and taken again)"),
            }),
            Err(error) if error.is_not_found() => Err(StateError::LockMismatch {
                location: self.lock_location(),
                message: "the state is not locked".into(),
            }),
            Err(error) => Err(self.error(self.lock_location(), error)),
        }
    }

    /// Lists the state object's generations, newest first (a versioned bucket keeps them all).
    pub async fn versions(&self) -> Result<Vec<StateVersion>, StateError> {
        let mut versions: Vec<StateVersion> = Vec::new();
        let mut page_token = String::new();
        loop {
            let mut query = vec![
                ("prefix", self.state_object.clone()),
                ("versions", "true".to_string()),
            ];
            if !page_token.is_empty() {
                query.push(("pageToken", page_token.clone()));
            }
            let listed = self
                .client
                .call(
                    Method::GET,
                    Service::Storage,
                    &format!("storage/v1/b/{}/o", self.bucket),
                    &query,
                    None,
                )
                .await
                .map_err(|source| self.error(self.location(), source))?;
            versions.extend(
                listed["items"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|item| item["name"] == self.state_object.as_str())
                    .map(|item| StateVersion {
                        generation: generation_of(item).unwrap_or(0),
                        updated: item["updated"].as_str().unwrap_or_default().to_string(),
                        current: item.get("timeDeleted").is_none(),
                    }),
            );
            // Cloud Storage pages lists (1000 objects by default): every page is read.
            match listed["nextPageToken"]
                .as_str()
                .filter(|token| !token.is_empty())
            {
                Some(token) => page_token = token.to_string(),
                None => break,
            }
        }
        versions.sort_by_key(|version| std::cmp::Reverse(version.generation));
        Ok(versions)
    }

    /// Reads one generation of the state.
    pub async fn read_version(&self, generation: i64) -> Result<State, StateError> {
        let location = format!("{}#{generation}", self.location());
        let bytes = self
            .media(&self.state_object, generation)
            .await
            .map_err(|source| self.error(location.clone(), source))?;
        Ok(State::from_bytes(&bytes, &location, &self.env)?)
    }
}
