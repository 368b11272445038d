//! The `cloud_run_service` kind: a Cloud Run Admin v2 service with one container. Create,
//! update and delete are long-running operations, awaited under a timeout. Comparison is over
//! the fields the configuration manages, with Google's server defaults applied to the desired
//! side so that a freshly applied service plans clean. `deletion_protection` lives only in
//! state: while on, delete and replace are refused with a hint.

use super::limits::INT32_MAX;
use super::{
    Bound, Created, FieldSpec, FieldType, Kind, KindContext, KindError, OrderedPair, check_owner,
    get_if_exists, managed_labels, string_attribute,
};
use crate::gcp::operations::wait_for_operation;
use crate::gcp::secret_versions::split_version_name;
use crate::gcp::{GcpClient, GcpError, Replay, Service};
use crate::state::StateResource;
use crate::value::{Attributes, Value};
use async_trait::async_trait;
use reqwest::Method;
use serde_json::{Value as Json, json};
use std::collections::BTreeMap;
use std::time::Duration;

/// Cloud Run services (`projects/{project}/locations/{region}/services/{name}`).
pub struct CloudRunServiceKind;

/// `template.scaling.{min,max}InstanceCount` are `int32` in run.v2; a count is never negative.
static BOUNDS: [Bound; 2] = [
    Bound::new(
        "min_instances",
        0,
        INT32_MAX,
        "run.v2 RevisionScaling.minInstanceCount is an int32",
    ),
    Bound::new(
        "max_instances",
        0,
        INT32_MAX,
        "run.v2 RevisionScaling.maxInstanceCount is an int32",
    ),
];

static FIELDS: [FieldSpec; 15] = [
    FieldSpec::optional("name", FieldType::String)
        .required()
        .force_new(),
    FieldSpec::optional("region", FieldType::String).force_new(),
    FieldSpec::optional("project", FieldType::String).force_new(),
    FieldSpec::optional("image", FieldType::String).required(),
    FieldSpec::optional("env", FieldType::StringMap),
    FieldSpec::optional("secret_env", FieldType::Any),
    FieldSpec::optional("cpu", FieldType::String),
    FieldSpec::optional("memory", FieldType::String),
    FieldSpec::optional("min_instances", FieldType::Integer),
    FieldSpec::optional("max_instances", FieldType::Integer),
    FieldSpec::optional("service_account", FieldType::String),
    FieldSpec::optional("ingress", FieldType::String),
    FieldSpec::optional("labels", FieldType::StringMap),
    FieldSpec::optional("traffic", FieldType::Any),
    FieldSpec::optional("deletion_protection", FieldType::Bool),
];

/// How long one operation may take before `infra` stops waiting.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// How long a service whose revisions are refused their secrets is rolled out again: IAM
/// grants "typically propagate in 2 minutes, but could potentially take 7 minutes or longer"
/// (<https://cloud.google.com/iam/docs/access-change-propagation>).
const SECRET_ACCESS_WINDOW: Duration = Duration::from_secs(10 * 60);

/// Replaces `SECRET_ACCESS_WINDOW`, in whole seconds (tests set it short).
const SECRET_ACCESS_WINDOW_VARIABLE: &str = "INFRA_RUN_SECRET_ACCESS_WINDOW_SECONDS";

/// The pause before the first rollout again, doubled for each next one up to the longest:
/// every rollout makes a revision, so they are spaced out as the window goes on.
const FIRST_ROLLOUT_PAUSE: Duration = Duration::from_secs(1);
const LONGEST_ROLLOUT_PAUSE: Duration = Duration::from_secs(60);

/// Returns true for a rollout that failed because the revision's service account may not
/// (yet) access a secret it mounts: Cloud Run's "Permission denied on secret".
fn is_unpropagated_secret_access(error: &GcpError) -> bool {
    matches!(error, GcpError::Operation { message, .. } if message.contains("Permission denied on secret"))
}

/// Returns how long to keep rolling out a service refused secret access: `SECRET_ACCESS_WINDOW`,
/// or `INFRA_RUN_SECRET_ACCESS_WINDOW_SECONDS` when set.
fn secret_access_window() -> Result<Duration, KindError> {
    match std::env::var(SECRET_ACCESS_WINDOW_VARIABLE) {
        Ok(text) if !text.trim().is_empty() => {
            text.trim().parse().map(Duration::from_secs).map_err(|_| {
                KindError::Invalid(format!(
                    "{SECRET_ACCESS_WINDOW_VARIABLE}={text:?} is not a whole number of seconds\n  hint: set it to, say, 900 (15 minutes), or unset it for {}",
                    SECRET_ACCESS_WINDOW.as_secs()
                ))
            })
        }
        _ => Ok(SECRET_ACCESS_WINDOW),
    }
}

/// The attributes of `normalize` a revision template sets: what a rollout of a body must
/// leave the service serving.
const TEMPLATE_ATTRIBUTES: [&str; 8] = [
    "image",
    "env",
    "secret_env",
    "cpu",
    "memory",
    "min_instances",
    "max_instances",
    "service_account",
];

/// How many 409s (the service changed since it was read) `roll_out_again` reads through before
/// it gives up: each is someone else's change landing between a read and a rollout.
const CONFLICTS_TOLERATED: u32 = 5;

/// Returns the pause before rollout number `rollout` (1-based) of `roll_out_again`.
fn rollout_pause(rollout: u32) -> Duration {
    FIRST_ROLLOUT_PAUSE
        .saturating_mul(1u32 << rollout.saturating_sub(1).min(16))
        .min(LONGEST_ROLLOUT_PAUSE)
}

/// Returns why the service's latest rollout failed, from its `terminalCondition`; `None` when
/// it serves its latest revision. Read from a service that is not reconciling.
fn rollout_failure(id: &str, live: &Json) -> Option<GcpError> {
    let condition = &live["terminalCondition"];
    (condition["state"] == "CONDITION_FAILED").then(|| GcpError::Operation {
        name: format!("rolling out {id}"),
        code: 9,
        message: condition["message"]
            .as_str()
            .unwrap_or("the latest revision failed")
            .to_string(),
    })
}

/// Returns a `secretKeyRef.secret` in its compared form: the short `SECRET` when it names a
/// secret of the service's own project, by id or by number, as Cloud Run answers it
/// (SecretKeySelector.secret: "{secret_name} if the secret is in the same project.
/// projects/{project}/secrets/{secret_name} if the secret is in a different project"); any
/// other as written.
fn same_project_secret(secret: &str, project: &str, project_number: Option<&str>) -> String {
    match secret.split('/').collect::<Vec<_>>()[..] {
        ["projects", owner, "secrets", id] if owner == project || Some(owner) == project_number => {
            id.to_string()
        }
        _ => secret.to_string(),
    }
}

/// Rewrites the secret of every `secret_env` entry into its compared form.
fn shorten_secret_env(attributes: &mut Attributes, project: &str, project_number: Option<&str>) {
    let Some(Value::Map(entries)) = attributes.get_mut("secret_env") else {
        return;
    };
    for reference in entries.values_mut() {
        if let Value::Map(table) = reference
            && let Some(Value::String(secret)) = table.get_mut("secret")
        {
            *secret = same_project_secret(secret, project, project_number);
        }
    }
}

/// Config word and API enum of each ingress setting.
const INGRESS: [(&str, &str); 4] = [
    ("all", "INGRESS_TRAFFIC_ALL"),
    ("internal", "INGRESS_TRAFFIC_INTERNAL_ONLY"),
    (
        "internal-and-cloud-load-balancing",
        "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER",
    ),
    ("none", "INGRESS_TRAFFIC_NONE"),
];

/// Server defaults Google fills in when they are left out (compared as if configured).
const DEFAULT_CPU: &str = "1000m";
const DEFAULT_MEMORY: &str = "512Mi";
const DEFAULT_MAX_INSTANCES: i64 = 100;

/// The fields that live in the revision template: changing any of them makes a new revision.
const TEMPLATE_FIELDS: [&str; 8] = [
    "image",
    "env",
    "secret_env",
    "cpu",
    "memory",
    "min_instances",
    "max_instances",
    "service_account",
];

impl CloudRunServiceKind {
    fn location(context: &KindContext, config: &Attributes) -> (String, String) {
        let project = string_attribute(config, "project")
            .unwrap_or(&context.project)
            .to_string();
        let region = string_attribute(config, "region")
            .unwrap_or(&context.region)
            .to_string();
        (project, region)
    }

    fn full_name(context: &KindContext, config: &Attributes) -> Option<String> {
        let (project, region) = Self::location(context, config);
        let name = string_attribute(config, "name")?;
        Some(format!(
            "projects/{project}/locations/{region}/services/{name}"
        ))
    }

    /// Returns `{ENV: {secret, version}}` from the configuration's `secret_env`. A version name
    /// (`projects/P/secrets/S/versions/3`, a `secret`'s `version`) pins that version: a new
    /// value is then a new template, hence a new revision, and no revision depends on when
    /// Secret Manager's lagging `latest` catches up with an add.
    fn secret_env(config: &Attributes) -> Value {
        if config.get("secret_env").is_some_and(Value::is_unknown) {
            // Versions this apply writes: known after apply, not an empty map.
            return Value::unknown();
        }
        let entries = config
            .get("secret_env")
            .and_then(Value::as_map)
            .cloned()
            .unwrap_or_default();
        Value::Map(
            entries
                .into_iter()
                .map(|(variable, reference)| {
                    let (secret, version) = match &reference {
                        Value::Map(table) => (
                            table.get("secret").cloned().unwrap_or_default(),
                            match table.get("version") {
                                // `version = "${secret.NAME.version}"`: the number it ends with.
                                Some(Value::String(version)) => Value::string(
                                    split_version_name(version)
                                        .map_or(version.as_str(), |(_, id)| id),
                                ),
                                Some(version) => version.clone(),
                                None => Value::string("latest"),
                            },
                        ),
                        Value::String(name) => match split_version_name(name) {
                            Some((secret, version)) => {
                                (Value::string(secret), Value::string(version))
                            }
                            None => (reference.clone(), Value::string("latest")),
                        },
                        // Not known before apply: perhaps a version name, whose number neither is.
                        other if other.is_unknown() => (other.clone(), Value::unknown()),
                        other => (other.clone(), Value::string("latest")),
                    };
                    (
                        variable,
                        Value::Map(BTreeMap::from([
                            ("secret".into(), secret),
                            ("version".into(), version),
                        ])),
                    )
                })
                .collect(),
        )
    }

    /// Returns the traffic targets in their compared form: `{type, revision?, percent, tag?}`.
    fn traffic(config: &Attributes) -> Value {
        // An empty list means what leaving it out means: all traffic to the latest revision.
        let Some(Value::List(targets)) = config
            .get("traffic")
            .filter(|traffic| !matches!(traffic, Value::List(items) if items.is_empty()))
        else {
            return Value::List(vec![Value::Map(BTreeMap::from([
                ("percent".into(), Value::Integer(100)),
                ("type".into(), Value::string("latest")),
            ]))]);
        };
        Value::List(
            targets
                .iter()
                .map(|target| {
                    let table = target.as_map().cloned().unwrap_or_default();
                    let mut normalized = BTreeMap::new();
                    match table.get("revision") {
                        Some(revision) => {
                            normalized.insert("type".to_string(), Value::string("revision"));
                            normalized.insert("revision".to_string(), revision.clone());
                        }
                        None => {
                            normalized.insert("type".to_string(), Value::string("latest"));
                        }
                    }
                    normalized.insert(
                        "percent".to_string(),
                        table.get("percent").cloned().unwrap_or(Value::Integer(0)),
                    );
                    if let Some(tag) = table.get("tag") {
                        normalized.insert("tag".to_string(), tag.clone());
                    }
                    Value::Map(normalized)
                })
                .collect(),
        )
    }

    fn ingress_enum(word: &str) -> &'static str {
        INGRESS
            .iter()
            .find(|(config_word, _)| *config_word == word)
            .map_or("INGRESS_TRAFFIC_ALL", |(_, api)| api)
    }

    /// Builds the API body of the service the configuration describes.
    fn body(desired: &Attributes) -> Json {
        let text = |field: &str| {
            desired
                .get(field)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let mut env: Vec<Json> = desired
            .get("env")
            .and_then(Value::as_map)
            .into_iter()
            .flatten()
            .map(|(name, value)| json!({"name": name, "value": value.to_json()}))
            .collect();
        for (name, reference) in desired
            .get("secret_env")
            .and_then(Value::as_map)
            .into_iter()
            .flatten()
        {
            env.push(json!({"name": name, "valueSource": {"secretKeyRef": {"secret": reference.as_map().and_then(|r| r.get("secret")).map(Value::to_json), "version": reference.as_map().and_then(|r| r.get("version")).map(Value::to_json)}}}));
        }
        env.sort_by(|left, right| left["name"].as_str().cmp(&right["name"].as_str()));
        let mut template = json!({
            "containers": [{
                "image": text("image"),
                "env": env,
                "resources": {"limits": {"cpu": text("cpu"), "memory": text("memory")}, "cpuIdle": true},
            }],
            "scaling": {"minInstanceCount": desired.get("min_instances").map(Value::to_json), "maxInstanceCount": desired.get("max_instances").map(Value::to_json)},
        });
        if let Some(account) = desired.get("service_account").and_then(Value::as_str) {
            template["serviceAccount"] = json!(account);
        }
        let traffic: Vec<Json> = match desired.get("traffic") {
            Some(Value::List(targets)) => targets
                .iter()
                .map(|target| {
                    let table = target.as_map().cloned().unwrap_or_default();
                    let mut api = json!({"percent": table.get("percent").map(Value::to_json)});
                    match table.get("revision") {
                        Some(revision) => {
                            api["type"] = json!("TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION");
                            api["revision"] = revision.to_json();
                        }
                        None => api["type"] = json!("TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST"),
                    }
                    if let Some(tag) = table.get("tag") {
                        api["tag"] = tag.to_json();
                    }
                    api
                })
                .collect(),
            _ => Vec::new(),
        };
        json!({
            "labels": desired.get("labels").map(Value::to_json),
            "ingress": Self::ingress_enum(desired.get("ingress").and_then(Value::as_str).unwrap_or("all")),
            "template": template,
            "traffic": traffic,
        })
    }

    /// Normalizes a live service into the compared form, plus the attributes others read.
    fn normalize(id: &str, live: &Json, prior: Option<&StateResource>) -> Attributes {
        let parts: Vec<&str> = id.split('/').collect();
        let container = &live["template"]["containers"][0];
        let mut env = BTreeMap::new();
        let mut secret_env = BTreeMap::new();
        for variable in container["env"].as_array().into_iter().flatten() {
            let name = variable["name"].as_str().unwrap_or_default().to_string();
            match variable.pointer("/valueSource/secretKeyRef") {
                Some(reference) => {
                    secret_env.insert(
                        name,
                        Value::Map(BTreeMap::from([
                            ("secret".into(), Value::from_json(&reference["secret"])),
                            (
                                "version".into(),
                                reference["version"]
                                    .as_str()
                                    .map_or(Value::string("latest"), Value::string),
                            ),
                        ])),
                    );
                }
                None => {
                    env.insert(
                        name,
                        Value::string(variable["value"].as_str().unwrap_or_default()),
                    );
                }
            }
        }
        let limit = |key: &str, default: &str| {
            Value::string(
                container["resources"]["limits"][key]
                    .as_str()
                    .unwrap_or(default),
            )
        };
        let count = |key: &str, default: i64| {
            let value = &live["template"]["scaling"][key];
            Value::Integer(
                value
                    .as_i64()
                    .or_else(|| value.as_str().and_then(|text| text.parse().ok()))
                    .unwrap_or(default),
            )
        };
        // Service.ingress: "On output, returns the currently observed ingress settings, or
        // INGRESS_TRAFFIC_UNSPECIFIED if no revision is active" (which proto3 leaves out):
        // nothing observed is no drift, so what state recorded stands.
        let ingress = match live["ingress"].as_str() {
            None | Some("INGRESS_TRAFFIC_UNSPECIFIED") => prior
                .and_then(|prior| prior.attributes.get("ingress"))
                .cloned(),
            Some(ingress_enum) => Some(Value::string(
                INGRESS
                    .iter()
                    .find(|(_, api)| *api == ingress_enum)
                    .map_or(ingress_enum, |(word, _)| word),
            )),
        };
        let traffic: Vec<Value> = live["traffic"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|target| {
                let mut normalized = BTreeMap::new();
                if target["type"] == "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION" {
                    normalized.insert("type".to_string(), Value::string("revision"));
                    normalized.insert(
                        "revision".to_string(),
                        Value::from_json(&target["revision"]),
                    );
                } else {
                    normalized.insert("type".to_string(), Value::string("latest"));
                }
                normalized.insert(
                    "percent".to_string(),
                    Value::Integer(target["percent"].as_i64().unwrap_or(0)),
                );
                if let Some(tag) = target["tag"].as_str() {
                    normalized.insert("tag".to_string(), Value::string(tag));
                }
                Value::Map(normalized)
            })
            .collect();
        let short_revision = |field: &str| {
            live[field]
                .as_str()
                .and_then(|name| name.rsplit('/').next())
                .map_or(Value::Null, Value::string)
        };
        let protection = prior
            .and_then(|prior| prior.attributes.get("deletion_protection"))
            .cloned()
            .unwrap_or(Value::Bool(true));
        let mut attributes = Attributes::from([
            (
                "name".into(),
                Value::string(parts.get(5).copied().unwrap_or_default()),
            ),
            (
                "region".into(),
                Value::string(parts.get(3).copied().unwrap_or_default()),
            ),
            (
                "project".into(),
                Value::string(parts.get(1).copied().unwrap_or_default()),
            ),
            (
                "image".into(),
                Value::string(container["image"].as_str().unwrap_or_default()),
            ),
            ("env".into(), Value::Map(env)),
            ("secret_env".into(), Value::Map(secret_env)),
            ("cpu".into(), limit("cpu", DEFAULT_CPU)),
            ("memory".into(), limit("memory", DEFAULT_MEMORY)),
            ("min_instances".into(), count("minInstanceCount", 0)),
            (
                "max_instances".into(),
                count("maxInstanceCount", DEFAULT_MAX_INSTANCES),
            ),
            (
                "service_account".into(),
                Value::string(
                    live["template"]["serviceAccount"]
                        .as_str()
                        .unwrap_or_default(),
                ),
            ),
            (
                "labels".into(),
                Value::from_json(live.get("labels").unwrap_or(&json!({}))),
            ),
            ("traffic".into(), Value::List(traffic)),
            ("deletion_protection".into(), protection),
            ("uri".into(), Value::from_json(&live["uri"])),
            (
                "latest_ready_revision".into(),
                short_revision("latestReadyRevision"),
            ),
            (
                "latest_created_revision".into(),
                short_revision("latestCreatedRevision"),
            ),
        ]);
        if let Some(ingress) = ingress {
            attributes.insert("ingress".into(), ingress);
        }
        // Google names the service by project number: with it, a secret named by that number
        // is known to be in the service's project too (`desired` reads it back from state).
        let project_number = live["name"]
            .as_str()
            .and_then(|name| name.split('/').nth(1))
            .filter(|number| !number.is_empty() && number.chars().all(|c| c.is_ascii_digit()))
            .map(String::from);
        shorten_secret_env(
            &mut attributes,
            parts.get(1).copied().unwrap_or_default(),
            project_number.as_deref(),
        );
        if let Some(number) = project_number {
            attributes.insert("project_number".into(), Value::string(number));
        }
        attributes
    }

    async fn write(
        client: &GcpClient,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Json>,
    ) -> Result<Json, KindError> {
        let operation = client.call(method, Service::Run, path, query, body).await?;
        Ok(wait_for_operation(client, Service::Run, operation, OPERATION_TIMEOUT).await?)
    }

    /// Reads the service until its reconciliation is over (`reconciling` false: "there are
    /// two possible outcomes: reconciliation succeeded … or there was an error"), polling with
    /// backoff for at most `OPERATION_TIMEOUT`.
    async fn settled(client: &GcpClient, id: &str) -> Result<Json, KindError> {
        let started = std::time::Instant::now();
        let mut pause = Duration::from_millis(50);
        loop {
            let live = client
                .call(Method::GET, Service::Run, &format!("v2/{id}"), &[], None)
                .await?;
            if live["reconciling"] != true {
                return Ok(live);
            }
            if started.elapsed() >= OPERATION_TIMEOUT {
                return Err(GcpError::Timeout {
                    what: format!("{id}: waiting for its reconciliation"),
                    seconds: OPERATION_TIMEOUT.as_secs(),
                }
                .into());
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(5));
        }
    }

    /// Returns whether `live` serves the revision template of `body`, compared as `normalize`
    /// reads both, so that what Google fills in (defaults, a project number) is no difference.
    /// A service account `body` leaves out is Google's default: not compared.
    fn carries_template(id: &str, live: &Json, body: &Json) -> bool {
        let mut sent = body.clone();
        sent["name"] = live["name"].clone();
        let sent = Self::normalize(id, &sent, None);
        let served = Self::normalize(id, live, None);
        TEMPLATE_ATTRIBUTES.iter().all(|attribute| {
            (*attribute == "service_account" && body["template"]["serviceAccount"].is_null())
                || sent.get(*attribute) == served.get(*attribute)
        })
    }

    /// Takes over the service found under this name (a create of ours whose answer was lost,
    /// an interrupted run's): waits for its reconciliation to end, then writes `body`. A
    /// service whose latest rollout failed gets a new revision: the same template makes none,
    /// and a failed revision never recovers.
    async fn adopt(client: &GcpClient, id: &str, body: &Json) -> Result<Json, KindError> {
        let live = Self::settled(client, id).await?;
        if let Some(failure) = rollout_failure(id, &live) {
            let refused = is_unpropagated_secret_access(&failure).then_some(failure);
            return Self::roll_out_again(client, id, body, refused).await;
        }
        match Self::write(client, Method::PATCH, &format!("v2/{id}"), &[], Some(body)).await {
            Err(KindError::Gcp(error)) if is_unpropagated_secret_access(&error) => {
                Self::roll_out_again(client, id, body, Some(error)).await
            }
            other => other,
        }
    }

    /// Rolls the service out as a new revision of `body` (PATCH with `forceNewRevision`: the
    /// same template makes no revision otherwise, and a failed one stays failed) until one
    /// starts, while its revisions are refused a secret whose grant IAM has not propagated:
    /// pausing with backoff between rollouts, for `secret_access_window()`. `refused` is the
    /// refusal that calls for it (a pause comes first); `None` rolls out at once, whatever
    /// the latest failure was. Every rollout is preceded by a read, never sent blind: one
    /// whose answer was lost may have made its revision already (the read shows it serving,
    /// or failed again), and the etag read makes the PATCH refuse a service changed since.
    /// A service read with no failure is taken only when it serves this body's template: after
    /// a 409 (someone else changed the service since it was read) it may serve theirs, and
    /// this body is rolled out again over it. Returns the service as the successful rollout
    /// left it.
    async fn roll_out_again(
        client: &GcpClient,
        id: &str,
        body: &Json,
        refused: Option<GcpError>,
    ) -> Result<Json, KindError> {
        let window = secret_access_window()?;
        let started = std::time::Instant::now();
        let mut rollouts = 0;
        let mut judge = refused.is_some();
        let mut conflicts = 0;
        let path = format!("v2/{id}");
        loop {
            let live = Self::settled(client, id).await?;
            match rollout_failure(id, &live) {
                None if Self::carries_template(id, &live, body) => return Ok(live),
                // Serving, but another template: a change made since the service was read
                // (what refused this rollout with a 409), or before. State must record this
                // body, so it is rolled out over that one.
                None => tracing::info!(
                    "{id}: serves a template other than this configuration's (changed outside this run); rolling this one out"
                ),
                Some(failure) if judge => {
                    if !is_unpropagated_secret_access(&failure) {
                        return Err(failure.into());
                    }
                    if started.elapsed() >= window {
                        return Err(KindError::Unsettled {
                            message: format!(
                                "{id}: its revisions were still refused secret access after {rollouts} new revisions in {}s: {failure}",
                                window.as_secs()
                            ),
                            hint: format!(
                                "check that the runtime account holds roles/secretmanager.secretAccessor on every secret of secret_env; grants usually reach Cloud Run in 2 minutes, at times 7 or more. Then run `infra apply` again (set {SECRET_ACCESS_WINDOW_VARIABLE} to wait longer than {}s)",
                                window.as_secs()
                            ),
                        });
                    }
                    let pause =
                        rollout_pause(rollouts + 1).min(window.saturating_sub(started.elapsed()));
                    tracing::info!(
                        "{id}: {failure}; rolling out a new revision in {pause:?}, once IAM has caught up"
                    );
                    tokio::time::sleep(pause).await;
                }
                Some(failure) => tracing::info!("{id}: {failure}; rolling out a new revision"),
            }
            judge = true;
            rollouts += 1;
            let mut guarded = body.clone();
            guarded["etag"] = live["etag"].clone();
            let sent = client
                .call_with(
                    Method::PATCH,
                    Replay::CheckFirst,
                    Service::Run,
                    &path,
                    &[("forceNewRevision", "true".to_string())],
                    Some(&guarded),
                )
                .await;
            match sent {
                Ok(operation) => {
                    match wait_for_operation(client, Service::Run, operation, OPERATION_TIMEOUT)
                        .await
                    {
                        Ok(service) => return Ok(service),
                        // The new revision failed too: the next read says why.
                        Err(GcpError::Operation { .. }) => {}
                        Err(error) => return Err(error.into()),
                    }
                }
                // It may have made its revision: the next read finds out first.
                Err(error) if error.is_outcome_unknown() => {
                    tracing::info!("{id}: {error}; reading the service before rolling out again");
                }
                // ABORTED: the service changed since it was read (this rollout, come through
                // late, or someone else's); read it again, and roll out again unless it serves
                // this body. A service that keeps changing under every rollout is an error.
                Err(error) if error.code() == Some(409) && conflicts < CONFLICTS_TOLERATED => {
                    conflicts += 1;
                    tracing::info!("{id}: {error}; reading the service again");
                }
                Err(error) => return Err(error.into()),
            }
        }
    }
}

#[async_trait]
impl Kind for CloudRunServiceKind {
    fn name(&self) -> &'static str {
        "cloud_run_service"
    }

    fn fields(&self) -> &'static [FieldSpec] {
        &FIELDS
    }

    fn bounds(&self) -> &'static [Bound] {
        &BOUNDS
    }

    fn ordered_pairs(&self) -> &'static [OrderedPair] {
        &[OrderedPair {
            lower: "min_instances",
            upper: "max_instances",
        }]
    }

    fn check(&self, config: &Attributes) -> Vec<String> {
        let mut problems = Vec::new();
        if let Some(Value::String(name)) = config.get("name") {
            let valid = name.len() < 50
                && name.starts_with(|c: char| c.is_ascii_lowercase())
                && !name.ends_with('-')
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
            if !valid {
                problems.push(format!("name {name:?}: lowercase letters, digits and `-`, starting with a letter, under 50 characters"));
            }
        }
        if let Some(Value::String(ingress)) = config.get("ingress")
            && !INGRESS.iter().any(|(word, _)| word == ingress)
        {
            let words: Vec<&str> = INGRESS.iter().map(|(word, _)| *word).collect();
            problems.push(format!(
                "ingress {ingress:?}: use one of {}",
                words.join(", ")
            ));
        }
        if let Some(Value::String(cpu)) = config.get("cpu")
            && !["1", "2", "4", "8", "1000m", "2000m", "4000m", "8000m"].contains(&cpu.as_str())
        {
            problems.push(format!("cpu {cpu:?}: Cloud Run takes 1, 2, 4 or 8"));
        }
        match config.get("traffic") {
            None | Some(Value::Marker(_)) => {}
            Some(Value::List(targets)) => {
                let mut total = 0;
                let mut known = true;
                for target in targets {
                    let Some(table) = target.as_map() else {
                        problems.push(
                            "traffic: each target is a table like { latest = true, percent = 10 }"
                                .into(),
                        );
                        continue;
                    };
                    if let Some(unknown) = table.keys().find(|key| {
                        !["latest", "revision", "percent", "tag"].contains(&key.as_str())
                    }) {
                        problems.push(format!(
                            "traffic: unknown key `{unknown}` (latest, revision, percent, tag)"
                        ));
                    }
                    if table.contains_key("latest") == table.contains_key("revision") {
                        problems.push("traffic: each target sets exactly one of `latest = true` or `revision = \"…\"`".into());
                    }
                    match table.get("percent") {
                        Some(Value::Integer(percent)) if (0..=100).contains(percent) => {
                            total += percent
                        }
                        Some(Value::Marker(_)) => known = false,
                        _ => problems.push("traffic: percent is an integer from 0 to 100".into()),
                    }
                }
                if known && total != 100 && !targets.is_empty() {
                    problems.push(format!("traffic: percents add up to {total}, not 100"));
                }
            }
            Some(other) => problems.push(format!(
                "traffic = {other}: a list of targets like [{{ latest = true, percent = 100 }}]"
            )),
        }
        if let Some(entries) = config.get("secret_env").and_then(Value::as_map) {
            for (variable, reference) in entries {
                let valid = match reference {
                    Value::String(_) | Value::Marker(_) => true,
                    Value::Map(table) => {
                        table.contains_key("secret")
                            && table.keys().all(|key| key == "secret" || key == "version")
                    }
                    _ => false,
                };
                if !valid {
                    problems.push(format!("secret_env.{variable}: a secret name, a version name (`${{secret.NAME.version}}`), or {{ secret = \"…\", version = \"3\" }}"));
                }
            }
        } else if config
            .get("secret_env")
            .is_some_and(|value| !value.is_unknown())
        {
            problems.push("secret_env: a map of variable name to secret".into());
        }
        problems
    }

    fn needs_intent_record(&self) -> bool {
        // A create that meets its service name taken adopts the service when infra labelled it.
        false
    }

    fn resource_id(&self, context: &KindContext, config: &Attributes) -> Option<String> {
        Self::full_name(context, config)
    }

    fn desired(
        &self,
        context: &KindContext,
        config: &Attributes,
        prior: Option<&StateResource>,
    ) -> Result<Attributes, KindError> {
        let (project, region) = Self::location(context, config);
        let labels = managed_labels(context, config, "labels");
        let mut desired = Attributes::from([
            (
                "name".into(),
                config.get("name").cloned().unwrap_or_default(),
            ),
            ("region".into(), Value::string(region)),
            ("project".into(), Value::string(project)),
            (
                "image".into(),
                config.get("image").cloned().unwrap_or_default(),
            ),
            (
                "env".into(),
                config
                    .get("env")
                    .cloned()
                    .unwrap_or(Value::Map(BTreeMap::new())),
            ),
            ("secret_env".into(), Self::secret_env(config)),
            (
                "cpu".into(),
                config
                    .get("cpu")
                    .cloned()
                    .unwrap_or(Value::string(DEFAULT_CPU)),
            ),
            (
                "memory".into(),
                config
                    .get("memory")
                    .cloned()
                    .unwrap_or(Value::string(DEFAULT_MEMORY)),
            ),
            (
                "min_instances".into(),
                config
                    .get("min_instances")
                    .cloned()
                    .unwrap_or(Value::Integer(0)),
            ),
            (
                "max_instances".into(),
                config
                    .get("max_instances")
                    .cloned()
                    .unwrap_or(Value::Integer(DEFAULT_MAX_INSTANCES)),
            ),
            (
                "ingress".into(),
                config
                    .get("ingress")
                    .cloned()
                    .unwrap_or(Value::string("all")),
            ),
            ("labels".into(), Value::Map(labels)),
            ("traffic".into(), Self::traffic(config)),
            (
                "deletion_protection".into(),
                config
                    .get("deletion_protection")
                    .cloned()
                    .unwrap_or(Value::Bool(true)),
            ),
        ]);
        // Left out, Google picks the project's default account; then there is nothing to compare.
        if let Some(account) = config.get("service_account") {
            desired.insert("service_account".into(), account.clone());
        }
        let project_number = prior
            .and_then(|prior| prior.attributes.get("project_number"))
            .and_then(Value::as_str);
        let project = desired["project"].as_str().unwrap_or_default().to_string();
        shorten_secret_env(&mut desired, &project, project_number);
        Ok(desired)
    }

    fn exported(
        &self,
        context: &KindContext,
        config: &Attributes,
        prior: Option<&StateResource>,
        changing: bool,
    ) -> Attributes {
        let mut exported = self.desired(context, config, prior).unwrap_or_default();
        let id = Self::full_name(context, config).map_or_else(Value::unknown, Value::String);
        exported.insert("id".into(), id);
        let recorded = |field: &str| {
            prior
                .filter(|_| !changing)
                .and_then(|prior| prior.attributes.get(field))
                .cloned()
                .unwrap_or_else(Value::unknown)
        };
        exported.insert(
            "uri".into(),
            prior
                .and_then(|prior| prior.attributes.get("uri"))
                .cloned()
                .unwrap_or_else(Value::unknown),
        );
        exported.insert(
            "latest_ready_revision".into(),
            recorded("latest_ready_revision"),
        );
        exported.insert("revision_name".into(), recorded("latest_ready_revision"));
        if !config.contains_key("service_account") {
            exported.insert("service_account".into(), recorded("service_account"));
        }
        exported
    }

    fn deletion_guard(&self, prior: &StateResource) -> Option<String> {
        (prior.attributes.get("deletion_protection") != Some(&Value::Bool(false))).then(|| {
            format!(
                "{} has deletion_protection on\n  hint: set deletion_protection = false, run `infra apply`, then destroy or replace it",
                prior.address
            )
        })
    }

    fn update_mask(&self, changed_fields: &[String]) -> Vec<String> {
        let mut mask = std::collections::BTreeSet::new();
        for field in changed_fields {
            let top = crate::plan::diff::top_field(field);
            if TEMPLATE_FIELDS.contains(&top) {
                mask.insert("template");
            } else if matches!(top, "labels" | "ingress" | "traffic") {
                mask.insert(top);
            }
        }
        mask.into_iter().map(String::from).collect()
    }

    async fn read(
        &self,
        client: &GcpClient,
        id: &str,
        prior: Option<&StateResource>,
    ) -> Result<Option<Attributes>, KindError> {
        Ok(get_if_exists(client, Service::Run, &format!("v2/{id}"))
            .await?
            .map(|live| Self::normalize(id, &live, prior)))
    }

    async fn create(
        &self,
        client: &GcpClient,
        context: &KindContext,
        config: &Attributes,
    ) -> Result<Created, KindError> {
        let desired = self.desired(context, config, None)?;
        let (project, region) = Self::location(context, config);
        let id = Self::full_name(context, config)
            .ok_or_else(|| KindError::Invalid("name is required".into()))?;
        let service_id = string_attribute(config, "name")
            .unwrap_or_default()
            .to_string();
        let body = Self::body(&desired);
        let path = format!("v2/projects/{project}/locations/{region}/services");
        let query = [("serviceId", service_id)];
        let mut attempt = 0;
        let response = loop {
            attempt += 1;
            match Self::write(client, Method::POST, &path, &query, Some(&body)).await {
                Ok(response) => break response,
                // Someone's service at this name (an interrupted run's, or another owner's),
                // or this create's answer was lost: look it up before anything else.
                Err(KindError::Gcp(error))
                    if error.code() == Some(409) || (error.is_outcome_unknown() && attempt < 4) =>
                {
                    let Some(live) =
                        get_if_exists(client, Service::Run, &format!("v2/{id}")).await?
                    else {
                        if error.is_outcome_unknown() {
                            tokio::time::sleep(client.retry_policy().delay(attempt)).await;
                            continue;
                        }
                        return Err(error.into());
                    };
                    check_owner(context, &id, live.get("labels"))?;
                    tracing::info!("adopting {id}, created by an interrupted run");
                    break Self::adopt(client, &id, &body).await?;
                }
                // The revision could not start because the runtime account's access to a
                // secret has not propagated yet: the service exists; roll it out again.
                Err(KindError::Gcp(error)) if is_unpropagated_secret_access(&error) => {
                    break Self::roll_out_again(client, &id, &body, Some(error)).await?;
                }
                Err(error) => return Err(error),
            }
        };
        let mut attributes = Self::normalize(&id, &response, None);
        attributes.insert(
            "deletion_protection".into(),
            desired["deletion_protection"].clone(),
        );
        if !desired.contains_key("service_account") {
            attributes.remove("service_account");
            attributes.insert(
                "service_account".into(),
                Value::from_json(&response["template"]["serviceAccount"]),
            );
        }
        Ok(Created { id, attributes })
    }

    async fn update(
        &self,
        client: &GcpClient,
        context: &KindContext,
        config: &Attributes,
        prior: &StateResource,
        changed_fields: &[String],
    ) -> Result<Attributes, KindError> {
        let desired = self.desired(context, config, Some(prior))?;
        let mask = self.update_mask(changed_fields);
        let mut attributes = if mask.is_empty() {
            // Only state-side fields changed (deletion_protection): nothing to send.
            prior.attributes.clone()
        } else {
            let body = Self::body(&desired);
            let response = match Self::write(
                client,
                Method::PATCH,
                &format!("v2/{}", prior.id),
                &[("updateMask", mask.join(","))],
                Some(&body),
            )
            .await
            {
                Err(KindError::Gcp(error)) if is_unpropagated_secret_access(&error) => {
                    Self::roll_out_again(client, &prior.id, &body, Some(error)).await?
                }
                other => other?,
            };
            Self::normalize(&prior.id, &response, Some(prior))
        };
        attributes.insert(
            "deletion_protection".into(),
            desired["deletion_protection"].clone(),
        );
        Ok(attributes)
    }

    async fn delete(&self, client: &GcpClient, prior: &StateResource) -> Result<(), KindError> {
        if let Some(message) = self.deletion_guard(prior) {
            let (message, hint) = message
                .split_once("\n  hint: ")
                .unwrap_or((message.as_str(), ""));
            return Err(KindError::Conflict {
                message: message.to_string(),
                hint: hint.to_string(),
            });
        }
        // Google's DELETE takes no body (a `null` one is not an empty one).
        match Self::write(
            client,
            Method::DELETE,
            &format!("v2/{}", prior.id),
            &[],
            None,
        )
        .await
        {
            Ok(_) => Ok(()),
            Err(KindError::Gcp(error)) if error.is_not_found() => Ok(()),
            Err(error) => Err(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_rollout_never_takes_a_service_serving_another_template_for_its_own() {
        let (_emulator, client) = crate::gcp::client::emulator_and_client().await;
        let id = "projects/p/locations/us-central1/services/api";
        let operation = client
            .call(
                Method::POST,
                Service::Run,
                "v2/projects/p/locations/us-central1/services",
                &[("serviceId", "api".into())],
                Some(&json!({"template": {"containers": [{"image": "img:theirs"}]}})),
            )
            .await
            .expect("create");
        wait_for_operation(&client, Service::Run, operation, OPERATION_TIMEOUT)
            .await
            .expect("created");
        // Serving with no failure, another template: what the read after a rollout refused
        // with 409 shows when someone else's change won.
        let ours = json!({"template": {"containers": [{"image": "img:ours"}]}});
        let live = CloudRunServiceKind::roll_out_again(&client, id, &ours, None)
            .await
            .expect("rolled out");
        assert_eq!(live["template"]["containers"][0]["image"], "img:ours");
        assert!(CloudRunServiceKind::carries_template(id, &live, &ours));
        // Serving this body already: taken as it is, no new revision.
        let again = CloudRunServiceKind::roll_out_again(&client, id, &ours, None)
            .await
            .expect("read");
        assert_eq!(
            again["latestCreatedRevision"],
            live["latestCreatedRevision"]
        );
    }

    #[test]
    fn only_a_denied_secret_is_a_propagation_failure() {
        let failed = |message: &str| GcpError::Operation {
            name: "operations/o".into(),
            code: 9,
            message: message.into(),
        };
        assert!(is_unpropagated_secret_access(&failed(
            "Revision 'api-00001' is not ready and cannot serve traffic. Permission denied on secret: projects/p/secrets/S/versions/latest for Revision service account run@p.iam.gserviceaccount.com."
        )));
        assert!(!is_unpropagated_secret_access(&failed("Image not found")));
    }

    fn context() -> KindContext {
        KindContext {
            address: "test.resource".into(),
            project: "p".into(),
            region: "us-central1".into(),
            env_name: "e".into(),
            lineage: "l".into(),
            fingerprint_key: None,
            legacy_salt: None,
        }
    }

    fn config(entries: &[(&str, Value)]) -> Attributes {
        entries
            .iter()
            .map(|(key, value)| (key.to_string(), value.clone()))
            .collect()
    }

    #[test]
    fn a_freshly_defaulted_service_compares_equal_to_its_desired_form() {
        let config = config(&[
            ("name", Value::string("api")),
            ("image", Value::string("img:1")),
        ]);
        let desired = CloudRunServiceKind
            .desired(&context(), &config, None)
            .expect("desired");
        let mut live_body = CloudRunServiceKind::body(&desired);
        live_body["traffic"] =
            json!([{"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST", "percent": 100}]);
        live_body["template"]["serviceAccount"] =
            json!("123-compute@developer.gserviceaccount.com");
        let live = CloudRunServiceKind::normalize(
            "projects/p/locations/us-central1/services/api",
            &live_body,
            None,
        );
        assert_eq!(
            crate::plan::diff::changed_paths(&desired, &live),
            Vec::<String>::new()
        );
    }

    #[test]
    fn template_fields_share_one_mask_path() {
        let mask = CloudRunServiceKind.update_mask(&[
            "image".into(),
            "env.A".into(),
            "traffic".into(),
            "deletion_protection".into(),
        ]);
        assert_eq!(mask, vec!["template".to_string(), "traffic".to_string()]);
    }

    #[test]
    fn traffic_must_add_up() {
        let split = |first: i64, second: i64| {
            config(&[(
                "traffic",
                Value::List(vec![
                    Value::Map(BTreeMap::from([
                        ("latest".into(), Value::Bool(true)),
                        ("percent".into(), Value::Integer(first)),
                    ])),
                    Value::Map(BTreeMap::from([
                        ("revision".into(), Value::string("api-00001-abc")),
                        ("percent".into(), Value::Integer(second)),
                    ])),
                ]),
            )])
        };
        assert!(CloudRunServiceKind.check(&split(10, 90)).is_empty());
        assert_eq!(
            CloudRunServiceKind.check(&split(10, 80)),
            vec!["traffic: percents add up to 90, not 100".to_string()]
        );
    }

    fn prior_of(attributes: Attributes) -> StateResource {
        StateResource {
            address: "cloud_run_service.api".into(),
            kind: "cloud_run_service".into(),
            id: "projects/p/locations/us-central1/services/api".into(),
            status: Default::default(),
            attributes,
            dependencies: Vec::new(),
        }
    }

    #[test]
    fn a_secret_of_the_services_project_compares_in_its_short_form() {
        let number = Some("123456789012");
        assert_eq!(
            same_project_secret("projects/p/secrets/S", "p", number),
            "S"
        );
        assert_eq!(
            same_project_secret("projects/123456789012/secrets/S", "p", number),
            "S"
        );
        assert_eq!(same_project_secret("S", "p", number), "S");
        assert_eq!(
            same_project_secret("projects/other/secrets/S", "p", number),
            "projects/other/secrets/S",
            "another project's secret keeps its full name"
        );
        assert_eq!(
            same_project_secret("projects/123456789012/secrets/S", "p", None),
            "projects/123456789012/secrets/S",
            "a number not known to be the project's is not assumed to be"
        );
    }

    #[test]
    fn secrets_named_by_project_id_or_number_compare_equal_to_cloud_runs_short_form() {
        let config = config(&[
            ("name", Value::string("api")),
            ("image", Value::string("img:1")),
            (
                "secret_env",
                Value::Map(BTreeMap::from([
                    ("A".into(), Value::string("projects/p/secrets/A")),
                    ("B".into(), Value::string("projects/123456789012/secrets/B")),
                ])),
            ),
        ]);
        let first = CloudRunServiceKind
            .desired(&context(), &config, None)
            .expect("desired");
        let mut live = CloudRunServiceKind::body(&first);
        live["name"] = json!("projects/123456789012/locations/us-central1/services/api");
        live["traffic"] =
            json!([{"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST", "percent": 100}]);
        for variable in live["template"]["containers"][0]["env"]
            .as_array_mut()
            .expect("env")
        {
            let secret = &mut variable["valueSource"]["secretKeyRef"]["secret"];
            let short = secret
                .as_str()
                .and_then(|name| name.rsplit('/').next())
                .expect("secret")
                .to_string();
            *secret = json!(short);
        }
        let recorded = CloudRunServiceKind::normalize(
            "projects/p/locations/us-central1/services/api",
            &live,
            None,
        );
        assert_eq!(recorded["project_number"], Value::string("123456789012"));
        let prior = prior_of(recorded.clone());
        let desired = CloudRunServiceKind
            .desired(&context(), &config, Some(&prior))
            .expect("desired");
        assert_eq!(
            crate::plan::diff::changed_paths(&desired, &recorded),
            Vec::<String>::new()
        );
    }

    #[test]
    fn an_ingress_unobserved_while_no_revision_is_active_keeps_what_state_recorded() {
        let id = "projects/p/locations/us-central1/services/api";
        let live_with = |ingress: Option<&str>| {
            let mut live = json!({"name": id, "template": {"containers": [{"image": "img:1"}]}});
            if let Some(ingress) = ingress {
                live["ingress"] = json!(ingress);
            }
            live
        };
        let prior = prior_of(Attributes::from([(
            "ingress".to_string(),
            Value::string("internal"),
        )]));
        for unobserved in [None, Some("INGRESS_TRAFFIC_UNSPECIFIED")] {
            let live = live_with(unobserved);
            assert_eq!(
                CloudRunServiceKind::normalize(id, &live, Some(&prior))["ingress"],
                Value::string("internal")
            );
            assert!(
                !CloudRunServiceKind::normalize(id, &live, None).contains_key("ingress"),
                "nothing recorded, nothing observed: nothing claimed"
            );
        }
        let observed = live_with(Some("INGRESS_TRAFFIC_ALL"));
        assert_eq!(
            CloudRunServiceKind::normalize(id, &observed, Some(&prior))["ingress"],
            Value::string("all"),
            "an observed ingress is what is compared"
        );
    }

    #[test]
    fn rollouts_again_are_spaced_out_doubling_up_to_a_minute() {
        let pauses: Vec<u64> = (1..=8).map(|n| rollout_pause(n).as_secs()).collect();
        assert_eq!(pauses, [1, 2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(rollout_pause(1000), LONGEST_ROLLOUT_PAUSE);
        assert!(SECRET_ACCESS_WINDOW >= Duration::from_secs(10 * 60));
    }

    #[test]
    fn only_a_failed_terminal_condition_is_a_failed_rollout() {
        let id = "projects/p/locations/us-central1/services/api";
        let failed = json!({"terminalCondition": {"state": "CONDITION_FAILED", "message": "Revision 'api-00001-abc' is not ready and cannot serve traffic. Permission denied on secret: S/versions/latest for Revision service account a@p.iam.gserviceaccount.com."}});
        let failure = rollout_failure(id, &failed).expect("failed");
        assert!(is_unpropagated_secret_access(&failure), "{failure}");
        assert!(failure.to_string().contains(id), "{failure}");
        let ready = json!({"terminalCondition": {"state": "CONDITION_SUCCEEDED"}});
        assert!(rollout_failure(id, &ready).is_none());
    }
}
