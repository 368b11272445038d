//! The `secret` kind: a Secret Manager secret and its current version. The secret value never
//! leaves this file except inside the `addVersion` request: state and plans hold a keyed
//! fingerprint (or, for a generated value, only the mark that one was generated), and the
//! version name, instead.

use super::{
    Bound, Created, FieldSpec, FieldType, Kind, KindContext, KindError, Lookup, check_owner,
    create_checked, delete_if_exists, get_if_exists, managed_labels, string_attribute,
};
use crate::gcp::secret_versions::{self, version_number};
use crate::gcp::{GcpClient, GcpError, Service};
use crate::sensitive::{LEGACY_SALT_ATTRIBUTE, LEGACY_SCHEME, Redacted, Verdict};
use crate::state::StateResource;
use crate::value::{Attributes, Marker, Value};
use async_trait::async_trait;
use base64::Engine;
use reqwest::Method;
use serde_json::json;
use std::collections::BTreeMap;

/// Secret Manager secrets (`projects/{project}/secrets/{secret_id}`).
pub struct SecretKind;

static FIELDS: [FieldSpec; 9] = [
    FieldSpec::optional("secret_id", FieldType::String)
        .required()
        .force_new(),
    FieldSpec::optional("project", FieldType::String).force_new(),
    FieldSpec::optional("labels", FieldType::StringMap),
    FieldSpec::optional("annotations", FieldType::StringMap),
    FieldSpec::optional("replication", FieldType::Any).force_new(),
    FieldSpec::optional("value", FieldType::String).sensitive(),
    FieldSpec::optional("value_from_env", FieldType::String),
    FieldSpec::optional("generate", FieldType::Any),
    FieldSpec::optional("old_versions", FieldType::String),
];

const VALUE_SOURCES: [&str; 3] = ["value", "value_from_env", "generate"];

/// Secret Manager refuses a payload over 64 KiB (`SecretPayload.data`).
const MAX_PAYLOAD_BYTES: usize = 64 * 1024;
/// The encodings of a generated value; the first is the default.
const ENCODINGS: [&str; 3] = ["base64url", "base64", "hex"];
/// Fewer random bytes than this is not a secret worth the name.
const MIN_GENERATED_BYTES: i64 = 16;
/// The most random bytes any encoding fits in a payload (base64: 4 characters per 3 bytes).
const MAX_GENERATED_BYTES: i64 = (MAX_PAYLOAD_BYTES / 4 * 3) as i64;

static BOUNDS: [Bound; 1] = [Bound::new(
    "generate.bytes",
    MIN_GENERATED_BYTES,
    MAX_GENERATED_BYTES,
    "at least 16 random bytes; encoded, at most Secret Manager's 64 KiB payload",
)];

/// Returns the length of `bytes` random bytes in `encoding`, `None` for an unknown encoding.
fn encoded_length(bytes: usize, encoding: &str) -> Option<usize> {
    match encoding {
        "base64url" => Some((bytes * 4).div_ceil(3)),
        "base64" => Some(bytes.div_ceil(3) * 4),
        "hex" => Some(bytes * 2),
        _ => None,
    }
}
const GENERATED_MARKER: &str = "generated";
/// The state-only map of versions replaced but still enabled, each to what `old_versions` said
/// when it was replaced (`disable` or `destroy`): a Cloud Run service pinned to the old version
/// keeps starting instances on it until its own update rolled out, so versions retire only
/// after the apply has applied everything (`Kind::finish_deferred`).
const RETIRING: &str = "retiring";

impl SecretKind {
    fn project(context: &KindContext, config: &Attributes) -> String {
        string_attribute(config, "project")
            .unwrap_or(&context.project)
            .to_string()
    }

    fn secret_name(context: &KindContext, config: &Attributes) -> Option<String> {
        let secret_id = string_attribute(config, "secret_id")?;
        Some(format!(
            "projects/{}/secrets/{secret_id}",
            Self::project(context, config)
        ))
    }

    /// Returns the secret value the configuration asks for; `None` when it is generated or unset.
    fn literal_value(config: &Attributes) -> Result<Option<Redacted<String>>, KindError> {
        if let Some(value) = string_attribute(config, "value") {
            return Ok(Some(Redacted::new(value.to_string())));
        }
        if let Some(variable) = string_attribute(config, "value_from_env") {
            return match std::env::var(variable) {
                Ok(value) => Ok(Some(Redacted::new(value))),
                Err(_) => Err(KindError::Invalid(format!(
                    "environment variable `{variable}` (value_from_env) is not set\n  hint: export {variable}=… before running infra"
                ))),
            };
        }
        Ok(None)
    }

    fn generate(config: &Attributes) -> Result<Option<Redacted<String>>, KindError> {
        let Some(Value::Map(spec)) = config.get("generate") else {
            return Ok(None);
        };
        let bytes = match spec.get("bytes") {
            Some(Value::Integer(count))
                if (MIN_GENERATED_BYTES..=MAX_GENERATED_BYTES).contains(count) =>
            {
                *count as usize
            }
            _ => {
                return Err(KindError::Invalid(format!(
                    "generate.bytes must be an integer from {MIN_GENERATED_BYTES} to {MAX_GENERATED_BYTES}"
                )));
            }
        };
        let mut random = vec![0u8; bytes];
        rand::fill(random.as_mut_slice());
        let encoded = match spec
            .get("encoding")
            .and_then(Value::as_str)
            .unwrap_or("base64url")
        {
            "base64url" => base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&random),
            "base64" => base64::engine::general_purpose::STANDARD.encode(&random),
            "hex" => hex::encode(&random),
            other => {
                return Err(KindError::Invalid(format!(
                    "generate.encoding `{other}`: use {}",
                    ENCODINGS.join(", ")
                )));
            }
        };
        if encoded.len() > MAX_PAYLOAD_BYTES {
            return Err(KindError::Invalid(format!(
                "generate: {bytes} bytes encoded are {} bytes, over the 64 KiB payload limit",
                encoded.len()
            )));
        }
        Ok(Some(Redacted::new(encoded)))
    }

    fn desired_labels(context: &KindContext, config: &Attributes) -> Value {
        let labels = managed_labels(context, config, "labels");
        Value::Map(labels)
    }

    fn desired_replication(config: &Attributes) -> Value {
        match config.get("replication") {
            Some(Value::Map(table)) => match table.get("locations") {
                Some(Value::List(locations)) => {
                    let mut sorted: Vec<Value> = locations.clone();
                    sorted.sort_by_key(|location| location.to_string());
                    Value::Map(BTreeMap::from([(
                        "locations".to_string(),
                        Value::List(sorted),
                    )]))
                }
                _ => Value::string("automatic"),
            },
            _ => Value::string("automatic"),
        }
    }

    fn replication_json(replication: &Value) -> serde_json::Value {
        match replication {
            Value::Map(table) => {
                let replicas: Vec<serde_json::Value> = match table.get("locations") {
                    Some(Value::List(locations)) => locations
                        .iter()
                        .map(|location| json!({"location": location.to_json()}))
                        .collect(),
                    _ => Vec::new(),
                };
                json!({"userManaged": {"replicas": replicas}})
            }
            _ => json!({"automatic": {}}),
        }
    }

    fn normalize_replication(live: &serde_json::Value) -> Value {
        match live
            .get("userManaged")
            .and_then(|managed| managed.get("replicas"))
            .and_then(|replicas| replicas.as_array())
        {
            Some(replicas) => {
                let mut locations: Vec<Value> = replicas
                    .iter()
                    .filter_map(|replica| {
                        replica
                            .get("location")
                            .and_then(|l| l.as_str())
                            .map(Value::string)
                    })
                    .collect();
                locations.sort_by_key(|location| location.to_string());
                Value::Map(BTreeMap::from([(
                    "locations".to_string(),
                    Value::List(locations),
                )]))
            }
            None => Value::string("automatic"),
        }
    }

    fn string_map(live: Option<&serde_json::Value>) -> Value {
        match live {
            Some(value @ serde_json::Value::Object(_)) => Value::from_json(value),
            _ => Value::Map(BTreeMap::new()),
        }
    }

    /// Rewrites a version name the API returns (project number) into the project-id form.
    fn version_name(secret_name: &str, api_version_name: &str) -> String {
        let number = api_version_name
            .rsplit('/')
            .next()
            .unwrap_or(api_version_name);
        format!("{secret_name}/versions/{number}")
    }

    /// Adds `value` as a new version. When the answer is lost the newest version is looked up
    /// by number (never through `latest`, which lags an add): if it already holds this value
    /// the add had committed, and no second version is made. `floor`: a version number known
    /// to exist (0 when none is).
    async fn add_version(
        client: &GcpClient,
        secret_name: &str,
        value: &Redacted<String>,
        floor: u64,
    ) -> Result<String, KindError> {
        let data = value.expose().as_bytes();
        let body = json!({
            "payload": {
                "data": base64::engine::general_purpose::STANDARD.encode(data),
                "dataCrc32c": crc32c::crc32c(data).to_string(),
            }
        });
        let path = format!("v1/{secret_name}:addVersion");
        let find = || async {
            Ok(Self::newest_enabled(client, secret_name, floor)
                .await?
                .filter(|(_, latest)| latest.expose().as_slice() == data)
                .map(|(name, _)| json!({"name": name})))
        };
        let version = create_checked(
            client,
            Service::SecretManager,
            &path,
            &[],
            &body,
            Lookup::Settles,
            find,
        )
        .await?;
        let name = version
            .get("name")
            .and_then(|name| name.as_str())
            .ok_or_else(|| GcpError::Decode {
                method: "POST".into(),
                url: client.url(Service::SecretManager, &path),
                message: "the SecretVersion has no name".into(),
            })?;
        Ok(Self::version_name(secret_name, name))
    }

    /// Returns the newest version's name and value when it is enabled; `None` when the secret
    /// has no version or its newest is disabled or destroyed. The newest is found by number
    /// (`secret_versions::newest_version`): `latest` may still name an older one, or none, for
    /// a while after an add. The value stays in memory.
    async fn newest_enabled(
        client: &GcpClient,
        secret_name: &str,
        floor: u64,
    ) -> Result<Option<(String, Redacted<Vec<u8>>)>, KindError> {
        let Some((number, version)) =
            secret_versions::newest_version(client, secret_name, floor).await?
        else {
            return Ok(None);
        };
        if !secret_versions::is_enabled(&version) {
            return Ok(None);
        }
        let Some(payload) = secret_versions::access_version(client, secret_name, number).await?
        else {
            return Ok(None);
        };
        let name = version["name"].as_str().unwrap_or_default().to_string();
        Ok(Some((name, payload)))
    }

    /// Returns the newest version of the secret `id`. `latest` would lag an add, so that a
    /// refresh right after an apply saw the previous version as "changed outside infra":
    /// instead, the version state records (`recorded`) and the one after it are read by number
    /// together, in one round trip; only when that next one exists (versions were added outside
    /// infra), or there is no recorded number, is the newest searched for.
    async fn read_newest(
        client: &GcpClient,
        id: &str,
        recorded: Option<u64>,
    ) -> Result<Option<serde_json::Value>, GcpError> {
        let search = |floor| async move {
            Ok(secret_versions::newest_version(client, id, floor)
                .await?
                .map(|(_, version)| version))
        };
        let Some(number) = recorded else {
            return search(0).await;
        };
        let (current, next) = futures::join!(
            secret_versions::get_version(client, id, number),
            secret_versions::get_version(client, id, number + 1),
        );
        if next?.is_some() {
            return search(number + 1).await;
        }
        match current? {
            Some(version) => Ok(Some(version)),
            // The recorded version is not there: the secret was deleted and made again.
            None => search(0).await,
        }
    }

    /// Returns the versions state records as still to retire.
    fn retiring(prior: Option<&StateResource>) -> Option<&BTreeMap<String, Value>> {
        prior
            .and_then(|prior| prior.attributes.get(RETIRING))
            .and_then(Value::as_map)
    }

    async fn retire_version(
        client: &GcpClient,
        version: &str,
        policy: &str,
    ) -> Result<(), GcpError> {
        let verb = match policy {
            "destroy" => "destroy",
            "keep" => return Ok(()),
            _ => "disable",
        };
        // Disabling or destroying twice leaves the version as once: safe to repeat.
        match client
            .call_replayable(
                Method::POST,
                Service::SecretManager,
                &format!("v1/{version}:{verb}"),
                &[],
                Some(&json!({})),
            )
            .await
        {
            Ok(_) => Ok(()),
            // Already destroyed, or deleted behind our back: nothing left to retire.
            Err(error) if error.is_not_found() || error.code() == Some(400) => {
                tracing::debug!("not retiring {version}: {error}");
                Ok(())
            }
            Err(error) => Err(error),
        }
    }

    /// Writes the value (if any) as a new version and returns the state attributes of it.
    /// `recovering`: an interrupted create of this state may already have written it; then an
    /// enabled newest version holding the configured value — or, for a generated value, any
    /// enabled newest version — is adopted, so recovery never adds a version and never
    /// generates a second value. `floor`: a version number known to exist (0: none known).
    async fn write_value(
        client: &GcpClient,
        context: &KindContext,
        config: &Attributes,
        secret_name: &str,
        attributes: &mut Attributes,
        recovering: bool,
        floor: u64,
    ) -> Result<(), KindError> {
        let literal = Self::literal_value(config)?;
        if recovering
            && (literal.is_some() || config.get("generate").is_some())
            && let Some((name, latest)) = Self::newest_enabled(client, secret_name, floor).await?
        {
            let adopted = match &literal {
                Some(value) if latest.expose().as_slice() == value.expose().as_bytes() => {
                    Some(context.keyed_fingerprint("value", value.expose().as_bytes())?)
                }
                Some(_) => None,
                None => Some(Value::sensitive(GENERATED_MARKER)),
            };
            if let Some(fingerprint) = adopted {
                tracing::info!("{secret_name}: its value was written by an interrupted run");
                attributes.insert("value".into(), fingerprint);
                attributes.insert(
                    "version".into(),
                    Value::string(Self::version_name(secret_name, &name)),
                );
                return Ok(());
            }
        }
        let (value, generated) = match literal {
            Some(value) => (Some(value), false),
            None => (Self::generate(config)?, true),
        };
        if let Some(value) = value {
            // Fingerprinted before the write, so a missing key stops before anything changes.
            // A generated value is never compared again: no fingerprint of it is kept at all.
            let fingerprint = if generated {
                Value::sensitive(GENERATED_MARKER)
            } else {
                context.keyed_fingerprint("value", value.expose().as_bytes())?
            };
            let version = Self::add_version(client, secret_name, &value, floor).await?;
            attributes.insert("value".into(), fingerprint);
            attributes.insert("version".into(), Value::string(version));
        }
        Ok(())
    }
}

#[async_trait]
impl Kind for SecretKind {
    fn name(&self) -> &'static str {
        "secret"
    }

    fn fields(&self) -> &'static [FieldSpec] {
        &FIELDS
    }

    fn bounds(&self) -> &'static [Bound] {
        &BOUNDS
    }

    fn check(&self, config: &Attributes) -> Vec<String> {
        let mut problems = Vec::new();
        let sources: Vec<&str> = VALUE_SOURCES
            .iter()
            .copied()
            .filter(|source| config.contains_key(*source))
            .collect();
        if sources.len() > 1 {
            problems.push(format!(
                "set only one of {}, not {}",
                VALUE_SOURCES.join(", "),
                sources.join(" and ")
            ));
        }
        if let Some(policy) = config.get("old_versions")
            && !matches!(policy.as_str(), Some("disable" | "destroy" | "keep"))
            && !policy.is_unknown()
        {
            problems.push(format!(
                "old_versions = {policy}: use \"disable\", \"destroy\" or \"keep\""
            ));
        }
        if let Some(Value::String(secret_id)) = config.get("secret_id") {
            let valid = !secret_id.is_empty()
                && secret_id.len() <= 255
                && secret_id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if !valid {
                problems.push(format!(
                    "secret_id {secret_id:?}: 1 to 255 letters, digits, `-` or `_`"
                ));
            }
        }
        match config.get("replication") {
            None | Some(Value::Marker(_)) => {}
            Some(Value::String(mode)) if mode == "automatic" => {}
            Some(Value::Map(table))
                if matches!(table.get("locations"), Some(Value::List(list)) if !list.is_empty())
                    && table.len() == 1 => {}
            Some(other) => problems.push(format!(
                "replication = {other}: use \"automatic\" or {{ locations = [\"us-east1\", …] }}"
            )),
        }
        if let Some(generate) = config.get("generate") {
            let valid = matches!(generate, Value::Map(spec) if spec.keys().all(|key| key == "bytes" || key == "encoding") && matches!(spec.get("bytes"), Some(Value::Integer(_))));
            if !valid {
                problems.push("generate: use { bytes = 32, encoding = \"base64url\" } (encoding: base64url, base64 or hex)".into());
            }
            if let Value::Map(spec) = generate {
                let encoding = spec.get("encoding").unwrap_or(&Value::Null);
                let name = match encoding {
                    Value::Null => Some(ENCODINGS[0]),
                    Value::String(name) => Some(name.as_str()),
                    _ => None,
                };
                match name {
                    Some(name) if ENCODINGS.contains(&name) => {
                        if let Some(Value::Integer(bytes)) = spec.get("bytes")
                            && (MIN_GENERATED_BYTES..=MAX_GENERATED_BYTES).contains(bytes)
                            && let Some(length) = encoded_length(*bytes as usize, name)
                            && length > MAX_PAYLOAD_BYTES
                        {
                            problems.push(format!(
                                "generate: {bytes} random bytes in {name} are {length} bytes, over Secret Manager's 64 KiB payload limit\n  hint: in {name}, at most {} random bytes fit",
                                *bytes as usize * MAX_PAYLOAD_BYTES / length
                            ));
                        }
                    }
                    _ if encoding.is_unknown() => {}
                    _ => problems.push(format!(
                        "generate.encoding = {encoding} is not an encoding\n  hint: use one of {}",
                        ENCODINGS.join(", ")
                    )),
                }
            }
        }
        if let Some(Value::String(value)) = config.get("value")
            && value.len() > MAX_PAYLOAD_BYTES
        {
            problems.push(format!(
                "value is {} bytes, over Secret Manager's 64 KiB payload limit\n  hint: keep secret values under {MAX_PAYLOAD_BYTES} bytes",
                value.len()
            ));
        }
        problems
    }

    fn needs_intent_record(&self) -> bool {
        // A create that meets its secret id taken adopts the secret when infra labelled it.
        false
    }

    fn resource_id(&self, context: &KindContext, config: &Attributes) -> Option<String> {
        Self::secret_name(context, config)
    }

    fn desired(
        &self,
        context: &KindContext,
        config: &Attributes,
        prior: Option<&StateResource>,
    ) -> Result<Attributes, KindError> {
        let mut desired = Attributes::new();
        desired.insert(
            "secret_id".into(),
            config.get("secret_id").cloned().unwrap_or_default(),
        );
        desired.insert(
            "project".into(),
            Value::string(Self::project(context, config)),
        );
        desired.insert("labels".into(), Self::desired_labels(context, config));
        desired.insert(
            "annotations".into(),
            config
                .get("annotations")
                .cloned()
                .unwrap_or(Value::Map(BTreeMap::new())),
        );
        desired.insert("replication".into(), Self::desired_replication(config));
        if let Some(value) = Self::literal_value(config)? {
            let recorded = prior.and_then(|prior| prior.attributes.get("value"));
            desired.insert(
                "value".into(),
                context.fingerprint("value", value.expose().as_bytes(), recorded),
            );
        } else if config.contains_key("generate") {
            // Generated once: once a value exists it is never compared (nor regenerated) again,
            // unless the resource is replaced.
            let generated_before = prior
                .and_then(|prior| prior.attributes.get("value"))
                .is_some_and(|value| matches!(value, Value::Marker(Marker::Sensitive(_))));
            if !generated_before {
                desired.insert("value".into(), Value::sensitive(GENERATED_MARKER));
            }
        }
        // Versions still to retire are a change until an apply retires them: compared only
        // while there are some, so states without any plan as before.
        if Self::retiring(prior).is_some_and(|retiring| !retiring.is_empty()) {
            desired.insert(RETIRING.into(), Value::Map(BTreeMap::new()));
        }
        Ok(desired)
    }

    fn exported(
        &self,
        context: &KindContext,
        config: &Attributes,
        prior: Option<&StateResource>,
        changing: bool,
    ) -> Attributes {
        let mut exported = Attributes::new();
        let name = Self::secret_name(context, config).map_or_else(Value::unknown, Value::String);
        exported.insert("name".into(), name.clone());
        exported.insert("id".into(), name);
        exported.insert(
            "secret_id".into(),
            config.get("secret_id").cloned().unwrap_or_default(),
        );
        exported.insert(
            "project".into(),
            Value::string(Self::project(context, config)),
        );
        let prior_version = prior
            .and_then(|prior| prior.attributes.get("version"))
            .cloned();
        exported.insert(
            "version".into(),
            match (changing, prior_version) {
                (false, Some(version)) => version,
                _ => Value::unknown(),
            },
        );
        exported
    }

    fn refingerprint(
        &self,
        context: &KindContext,
        config: &Attributes,
        prior: &StateResource,
    ) -> Result<Option<Attributes>, KindError> {
        let mut attributes = prior.attributes.clone();
        let rewritten = match prior.attributes.get("value") {
            Some(Value::Marker(Marker::Sensitive(recorded)))
                if recorded.starts_with(&format!("{GENERATED_MARKER}:")) =>
            {
                Some(Value::sensitive(GENERATED_MARKER))
            }
            Some(Value::Marker(Marker::Sensitive(recorded))) if recorded == GENERATED_MARKER => {
                None
            }
            Some(recorded) if context.is_outdated(recorded) => {
                match Self::literal_value(config)? {
                    Some(value)
                        if context.judge("value", value.expose().as_bytes(), Some(recorded))
                            != Verdict::Unconfirmed =>
                    {
                        Some(context.keyed_fingerprint("value", value.expose().as_bytes())?)
                    }
                    // Not confirmed: the plan showed the update that writes it anew.
                    _ => None,
                }
            }
            _ => None,
        };
        let changed = rewritten.is_some();
        if let Some(value) = rewritten {
            attributes.insert("value".into(), value);
        }
        let legacy_left = matches!(
            attributes.get("value"),
            Some(Value::Marker(Marker::Sensitive(recorded))) if recorded.starts_with(&format!("{LEGACY_SCHEME}:"))
        );
        let salt_dropped = !legacy_left && attributes.remove(LEGACY_SALT_ATTRIBUTE).is_some();
        Ok((changed || salt_dropped).then_some(attributes))
    }

    fn update_mask(&self, changed_fields: &[String]) -> Vec<String> {
        changed_fields
            .iter()
            .filter_map(|field| match Some(crate::plan::diff::top_field(field)) {
                Some("labels") => Some("labels"),
                Some("annotations") => Some("annotations"),
                _ => None,
            })
            .map(String::from)
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect()
    }

    async fn read(
        &self,
        client: &GcpClient,
        id: &str,
        prior: Option<&StateResource>,
    ) -> Result<Option<Attributes>, KindError> {
        // The secret and its newest version in one round trip: refresh latency is one request.
        let secret_path = format!("v1/{id}");
        let recorded = prior
            .and_then(|prior| prior.attributes.get("version"))
            .and_then(Value::as_str)
            .and_then(version_number);
        let (live, latest) = futures::join!(
            client.call(Method::GET, Service::SecretManager, &secret_path, &[], None),
            Self::read_newest(client, id, recorded),
        );
        let live = match live {
            Ok(live) => live,
            Err(error) if error.is_not_found() => return Ok(None),
            Err(error) => return Err(error.into()),
        };
        let (project, secret_id) = match id.split('/').collect::<Vec<_>>()[..] {
            ["projects", project, "secrets", secret_id] => {
                (project.to_string(), secret_id.to_string())
            }
            _ => {
                return Err(KindError::Invalid(format!(
                    "`{id}` is not a secret name (projects/P/secrets/S)"
                )));
            }
        };
        let mut attributes = Attributes::new();
        attributes.insert("secret_id".into(), Value::string(secret_id));
        attributes.insert("project".into(), Value::string(project));
        attributes.insert("name".into(), Value::string(id));
        attributes.insert("labels".into(), Self::string_map(live.get("labels")));
        attributes.insert(
            "annotations".into(),
            Self::string_map(live.get("annotations")),
        );
        attributes.insert(
            "replication".into(),
            Self::normalize_replication(
                live.get("replication").unwrap_or(&serde_json::Value::Null),
            ),
        );
        let latest = latest?;
        let prior_version = prior
            .and_then(|prior| prior.attributes.get("version"))
            .and_then(Value::as_str);
        let prior_value = prior.and_then(|prior| prior.attributes.get("value"));
        if let Some(latest) = latest {
            let version = Self::version_name(
                id,
                latest
                    .get("name")
                    .and_then(|name| name.as_str())
                    .unwrap_or_default(),
            );
            let enabled = latest.get("state").and_then(|state| state.as_str()) == Some("ENABLED");
            let value = match (prior_version, prior_value) {
                (Some(known), Some(value)) if known == version && enabled => value.clone(),
                // Someone added, disabled or destroyed versions outside infra: the live value is not ours.
                _ => Value::sensitive(format!(
                    "changed outside infra: latest is {version}{}",
                    if enabled { "" } else { " (not enabled)" }
                )),
            };
            attributes.insert("value".into(), value);
            attributes.insert("version".into(), Value::string(version));
        }
        // Bookkeeping, not a live field: what is still to retire is what state says.
        if let Some(retiring) = Self::retiring(prior).filter(|retiring| !retiring.is_empty()) {
            attributes.insert(RETIRING.into(), Value::Map(retiring.clone()));
        }
        Ok(Some(attributes))
    }

    async fn import(
        &self,
        client: &GcpClient,
        context: &KindContext,
        id: &str,
    ) -> Result<Option<Attributes>, KindError> {
        let Some(mut attributes) = self.read(client, id, None).await? else {
            return Ok(None);
        };
        if let Some(number) = attributes
            .get("version")
            .and_then(Value::as_str)
            .and_then(version_number)
            // The version read is the one just found, by number (`latest` could name another);
            // one not enabled keeps the read's "changed outside infra" and is written anew.
            && let Some(value) = secret_versions::access_version(client, id, number).await?
        {
            // The value is fingerprinted in memory and dropped: state never holds it.
            attributes.insert(
                "value".into(),
                context.keyed_fingerprint("value", value.expose())?,
            );
        }
        Ok(Some(attributes))
    }

    async fn create(
        &self,
        client: &GcpClient,
        context: &KindContext,
        config: &Attributes,
    ) -> Result<Created, KindError> {
        let project = Self::project(context, config);
        let secret_id = string_attribute(config, "secret_id")
            .unwrap_or_default()
            .to_string();
        let name = format!("projects/{project}/secrets/{secret_id}");
        let desired = self.desired(context, config, None)?;
        let body = json!({
            "replication": Self::replication_json(&desired["replication"]),
            "labels": desired["labels"].to_json(),
            "annotations": desired["annotations"].to_json(),
        });
        let find = || async {
            let found =
                get_if_exists(client, Service::SecretManager, &format!("v1/{name}")).await?;
            if let Some(live) = &found {
                check_owner(context, &name, live.get("labels"))?;
            }
            Ok(found)
        };
        let created = create_checked(
            client,
            Service::SecretManager,
            &format!("v1/projects/{project}/secrets"),
            &[("secretId", secret_id.clone())],
            &body,
            // A create repeated under the same secret id is refused (409) and adopted.
            Lookup::Settles,
            find,
        )
        .await;
        let mut recovering = false;
        match created {
            Ok(_) => {}
            Err(KindError::Gcp(error)) if error.code() == Some(409) => {
                recovering = true;
                // An earlier run may have been interrupted after the create: adopt what carries our label.
                let live = client
                    .call(
                        Method::GET,
                        Service::SecretManager,
                        &format!("v1/{name}"),
                        &[],
                        None,
                    )
                    .await?;
                check_owner(context, &name, live.get("labels"))?;
                tracing::info!("adopting {name}, created by an interrupted run");
                let patch = json!({"labels": body["labels"], "annotations": body["annotations"]});
                client
                    .call(
                        Method::PATCH,
                        Service::SecretManager,
                        &format!("v1/{name}"),
                        &[("updateMask", "labels,annotations".into())],
                        Some(&patch),
                    )
                    .await?;
            }
            Err(error) => return Err(error),
        }
        let mut attributes = desired;
        attributes.remove("value");
        attributes.insert("name".into(), Value::string(name.clone()));
        Self::write_value(
            client,
            context,
            config,
            &name,
            &mut attributes,
            recovering,
            0,
        )
        .await?;
        Ok(Created {
            id: name,
            attributes,
        })
    }

    async fn update(
        &self,
        client: &GcpClient,
        context: &KindContext,
        config: &Attributes,
        prior: &StateResource,
        changed_fields: &[String],
    ) -> Result<Attributes, KindError> {
        let name = prior.id.clone();
        let desired = self.desired(context, config, Some(prior))?;
        let mask = self.update_mask(changed_fields);
        if !mask.is_empty() {
            let mut body = serde_json::Map::new();
            for field in &mask {
                body.insert(field.clone(), desired[field.as_str()].to_json());
            }
            client
                .call(
                    Method::PATCH,
                    Service::SecretManager,
                    &format!("v1/{name}"),
                    &[("updateMask", mask.join(","))],
                    Some(&serde_json::Value::Object(body)),
                )
                .await?;
        }
        let mut attributes = desired;
        attributes.remove("value");
        attributes.insert("name".into(), Value::string(name.clone()));
        attributes.remove(RETIRING);
        let mut retiring = Self::retiring(Some(prior)).cloned().unwrap_or_default();
        for carried in ["value", "version", LEGACY_SALT_ATTRIBUTE] {
            if let Some(value) = prior.attributes.get(carried) {
                attributes.insert(carried.into(), value.clone());
            }
        }
        if changed_fields.iter().any(|field| field == "value") {
            let previous_version = prior
                .attributes
                .get("version")
                .and_then(Value::as_str)
                .map(String::from);
            let recovering = prior.status == crate::state::ResourceStatus::Creating;
            let floor = previous_version
                .as_deref()
                .and_then(version_number)
                .unwrap_or(0);
            Self::write_value(
                client,
                context,
                config,
                &name,
                &mut attributes,
                recovering,
                floor,
            )
            .await?;
            if let Some(previous) = previous_version {
                let policy = string_attribute(config, "old_versions").unwrap_or("disable");
                // Not retired here: a Cloud Run service naming the previous version rolls out
                // only after this update, and until then (or forever, if its update fails) its
                // serving revision starts new instances on it.
                if attributes.get("version").and_then(Value::as_str) != Some(previous.as_str())
                    && policy != "keep"
                {
                    retiring.insert(previous, Value::string(policy));
                }
            }
        }
        if !retiring.is_empty() {
            attributes.insert(RETIRING.into(), Value::Map(retiring));
        }
        Ok(attributes)
    }

    async fn delete(&self, client: &GcpClient, prior: &StateResource) -> Result<(), KindError> {
        delete_if_exists(
            client,
            Service::SecretManager,
            &format!("v1/{}", prior.id),
            &[],
        )
        .await
    }

    fn deferred_field(&self) -> Option<&'static str> {
        Some(RETIRING)
    }

    async fn finish_deferred(
        &self,
        client: &GcpClient,
        resource: &StateResource,
    ) -> Result<Attributes, KindError> {
        let mut attributes = resource.attributes.clone();
        if let Some(retiring) = Self::retiring(Some(resource)) {
            for (version, policy) in retiring {
                let policy = policy.as_str().unwrap_or("disable");
                Self::retire_version(client, version, policy).await?;
            }
        }
        attributes.remove(RETIRING);
        Ok(attributes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context() -> KindContext {
        KindContext {
            address: "test.resource".into(),
            project: "p".into(),
            region: "r".into(),
            env_name: "e".into(),
            lineage: "l".into(),
            fingerprint_key: Some(std::sync::Arc::new(
                crate::sensitive::FingerprintKey::new("1", &[9; 32]).expect("key"),
            )),
            legacy_salt: None,
        }
    }

    fn config(entries: &[(&str, Value)]) -> Attributes {
        entries
            .iter()
            .map(|(key, value)| (key.to_string(), value.clone()))
            .collect()
    }

    fn generating(bytes: i64, encoding: Option<&str>) -> Attributes {
        let mut spec = BTreeMap::from([("bytes".to_string(), Value::Integer(bytes))]);
        if let Some(encoding) = encoding {
            spec.insert("encoding".into(), Value::string(encoding));
        }
        config(&[
            ("secret_id", Value::string("A")),
            ("generate", Value::Map(spec)),
        ])
    }

    #[test]
    fn generate_encodings_and_encoded_sizes_are_checked_before_any_call() {
        assert!(SecretKind.check(&generating(32, None)).is_empty());
        assert!(
            SecretKind
                .check(&generating(49_152, Some("base64")))
                .is_empty()
        );
        assert!(
            SecretKind
                .check(&generating(32_768, Some("hex")))
                .is_empty()
        );
        let too_big = SecretKind.check(&generating(32_769, Some("hex")));
        assert_eq!(too_big.len(), 1, "{too_big:?}");
        assert!(
            too_big[0].contains("65538 bytes, over Secret Manager's 64 KiB")
                && too_big[0].contains("at most 32768 random bytes"),
            "{too_big:?}"
        );
        let rot13 = SecretKind.check(&generating(32, Some("rot13")));
        assert!(
            rot13[0].contains("\"rot13\" is not an encoding")
                && rot13[0].contains("base64url, base64, hex"),
            "{rot13:?}"
        );
        let bounds =
            super::super::limits::check_limits(&BOUNDS, &[], &generating(1_000_000_000_000, None));
        assert_eq!(bounds.len(), 1, "{bounds:?}");
        assert!(SecretKind::generate(&generating(32_769, Some("hex"))).is_err());
        let value = SecretKind::generate(&generating(49_152, Some("base64url")))
            .expect("fits")
            .expect("generated");
        assert_eq!(value.expose().len(), 65_536);
    }

    #[test]
    fn a_value_over_64_kib_is_refused_without_showing_it() {
        let problems = SecretKind.check(&config(&[
            ("secret_id", Value::string("A")),
            ("value", Value::string("z".repeat(65_537))),
        ]));
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(!problems[0].contains("zzzz"), "{problems:?}");
    }

    #[test]
    fn desired_fingerprints_the_value_and_adds_the_managed_label() {
        let config = config(&[
            ("secret_id", Value::string("A")),
            ("value", Value::string("sentinel-500")),
        ]);
        let desired = SecretKind
            .desired(&context(), &config, None)
            .expect("desired");
        let text = serde_json::to_string(&desired).expect("json");
        assert!(!text.contains("sentinel-500"), "{text}");
        assert_eq!(
            desired["labels"].as_map().expect("map")["managed-by"],
            Value::string("infra")
        );
        assert_eq!(desired["replication"], Value::string("automatic"));
    }

    #[test]
    fn versions_still_to_retire_are_a_change_of_bookkeeping_only_until_retired() {
        let config = config(&[("secret_id", Value::string("A"))]);
        let recorded = |retiring: BTreeMap<String, Value>| StateResource {
            address: "test.resource".into(),
            kind: "secret".into(),
            id: "projects/p/secrets/A".into(),
            status: crate::state::ResourceStatus::Created,
            attributes: Attributes::from([(RETIRING.into(), Value::Map(retiring))]),
            dependencies: Vec::new(),
        };
        let pending = recorded(BTreeMap::from([(
            "projects/p/secrets/A/versions/1".to_string(),
            Value::string("disable"),
        )]));
        let desired = SecretKind
            .desired(&context(), &config, Some(&pending))
            .expect("desired");
        assert_eq!(desired[RETIRING], Value::Map(BTreeMap::new()));
        assert!(super::super::has_deferred_work(&SecretKind, &pending));
        // Nothing pending: not compared at all, so states of earlier builds plan no change.
        let done = recorded(BTreeMap::new());
        for prior in [None, Some(&done)] {
            let desired = SecretKind
                .desired(&context(), &config, prior)
                .expect("desired");
            assert!(!desired.contains_key(RETIRING), "{desired:?}");
        }
        assert!(!super::super::has_deferred_work(&SecretKind, &done));
    }

    #[test]
    fn apply_rewrites_a_confirmed_old_fingerprint_and_drops_the_salt() {
        let config = config(&[
            ("secret_id", Value::string("A")),
            ("value", Value::string("5000")),
        ]);
        let prior = StateResource {
            address: "test.resource".into(),
            kind: "secret".into(),
            id: "projects/p/secrets/A".into(),
            status: crate::state::ResourceStatus::Created,
            attributes: Attributes::from([
                (
                    "value".into(),
                    Value::sensitive(crate::sensitive::legacy_salted_fingerprint("s", b"5000")),
                ),
                (LEGACY_SALT_ATTRIBUTE.into(), Value::string("s")),
            ]),
            dependencies: Vec::new(),
        };
        let context = KindContext {
            legacy_salt: Some("s".into()),
            ..context()
        };
        let rewritten = SecretKind
            .refingerprint(&context, &config, &prior)
            .expect("rewrite")
            .expect("something to rewrite");
        assert!(!rewritten.contains_key(LEGACY_SALT_ATTRIBUTE));
        let key = context.fingerprint_key.clone().expect("key");
        assert_eq!(
            rewritten["value"],
            Value::sensitive(key.fingerprint("test.resource", "value", b"5000"))
        );
        // Another value than the one recorded: nothing is confirmed, nothing rewritten.
        let changed = config_with_value("5001");
        assert_eq!(
            SecretKind
                .refingerprint(&context, &changed, &prior)
                .expect("rewrite"),
            None
        );
        // Already current: nothing to do.
        let current = StateResource {
            attributes: rewritten,
            ..prior
        };
        assert_eq!(
            SecretKind
                .refingerprint(&context, &config, &current)
                .expect("rewrite"),
            None
        );
    }

    fn config_with_value(value: &str) -> Attributes {
        config(&[
            ("secret_id", Value::string("A")),
            ("value", Value::string(value)),
        ])
    }

    #[test]
    fn two_value_sources_are_refused() {
        let config = config(&[
            ("secret_id", Value::string("A")),
            ("value", Value::string("x")),
            ("value_from_env", Value::string("X")),
        ]);
        let problems = SecretKind.check(&config);
        assert_eq!(problems.len(), 1, "{problems:?}");
    }

    #[test]
    fn replication_locations_are_sorted_for_comparison() {
        let config = config(&[(
            "replication",
            Value::Map(BTreeMap::from([(
                "locations".into(),
                Value::List(vec![
                    Value::string("us-east1"),
                    Value::string("europe-west1"),
                ]),
            )])),
        )]);
        let replication = SecretKind::desired_replication(&config);
        assert_eq!(
            replication.to_string(),
            r#"{locations = ["europe-west1", "us-east1"]}"#
        );
        let live = json!({"userManaged": {"replicas": [{"location": "us-east1"}, {"location": "europe-west1"}]}});
        assert_eq!(SecretKind::normalize_replication(&live), replication);
    }

    #[test]
    fn update_mask_names_api_fields() {
        let mask =
            SecretKind.update_mask(&["labels.env".into(), "labels.app".into(), "value".into()]);
        assert_eq!(mask, vec!["labels".to_string()]);
    }
}
