//! The `notification_channel` kind: a Cloud Monitoring v3 notification channel. Credentials
//! (a Slack token, a PagerDuty key, a webhook password) go in `sensitive_labels`, from an
//! environment variable or a Secret Manager secret, read only when writing: state and plans
//! hold a keyed fingerprint of where they come from, and because Google returns them
//! obfuscated, the live value is never compared (no perpetual diff).

use super::{
    Created, FieldSpec, FieldType, Kind, KindContext, KindError, assigned_name_exports,
    create_or_adopt, delete_if_exists, get_if_exists, keyed_user_labels, string_attribute,
};
use crate::gcp::{GcpClient, Service};
use crate::sensitive::{LEGACY_SALT_ATTRIBUTE, LEGACY_SCHEME, Redacted, Verdict};
use crate::state::StateResource;
use crate::value::{Attributes, Marker, Value};
use async_trait::async_trait;
use base64::Engine;
use reqwest::Method;
use serde_json::{Value as Json, json};
use std::collections::BTreeMap;

/// Cloud Monitoring notification channels (`projects/{project}/notificationChannels/{id}`).
pub struct NotificationChannelKind;

static FIELDS: [FieldSpec; 8] = [
    FieldSpec::optional("type", FieldType::String)
        .required()
        .force_new(),
    FieldSpec::optional("display_name", FieldType::String),
    FieldSpec::optional("description", FieldType::String),
    FieldSpec::optional("labels", FieldType::StringMap),
    FieldSpec::optional("sensitive_labels", FieldType::Any).sensitive(),
    FieldSpec::optional("user_labels", FieldType::StringMap),
    FieldSpec::optional("enabled", FieldType::Bool),
    FieldSpec::optional("project", FieldType::String).force_new(),
];

/// The label keys each channel type treats as credentials.
const SENSITIVE_KEYS: [(&str, &str); 3] = [
    ("slack", "auth_token"),
    ("pagerduty", "service_key"),
    ("webhook_basicauth", "password"),
];

/// Where a sensitive label's value comes from.
enum LabelSource {
    Environment(String),
    Secret {
        name: String,
        version: String,
    },
    /// A secret version not known before apply (one this apply writes).
    Unknown,
}

impl NotificationChannelKind {
    fn project(context: &KindContext, config: &Attributes) -> String {
        string_attribute(config, "project")
            .unwrap_or(&context.project)
            .to_string()
    }

    fn sources(config: &Attributes) -> Result<BTreeMap<String, LabelSource>, String> {
        let mut sources = BTreeMap::new();
        for (key, source) in config
            .get("sensitive_labels")
            .and_then(Value::as_map)
            .into_iter()
            .flatten()
        {
            let table = source.as_map().ok_or_else(|| format!("sensitive_labels.{key}: {{ value_from_env = \"NAME\" }} or {{ secret = \"projects/P/secrets/S\" }}"))?;
            let text = |field: &str| table.get(field).and_then(Value::as_str).map(String::from);
            let unknown = table.get("secret").is_some_and(Value::is_unknown)
                || table.get("version").is_some_and(Value::is_unknown);
            let parsed = match (text("value_from_env"), text("secret")) {
                (None, None) if unknown => LabelSource::Unknown,
                (Some(variable), None) => LabelSource::Environment(variable),
                // A version name (`${secret.NAME.version}`) pins its version: read by number,
                // it is there at once, where `latest` lags an add by seconds or more.
                (None, Some(name)) => {
                    match crate::gcp::secret_versions::split_version_name(&name) {
                        Some((secret, version)) if !table.contains_key("version") => {
                            LabelSource::Secret {
                                name: secret.to_string(),
                                version: version.to_string(),
                            }
                        }
                        _ => LabelSource::Secret {
                            version: text("version")
                                .map(|version| {
                                    crate::gcp::secret_versions::split_version_name(&version)
                                        .map_or(version.clone(), |(_, id)| id.to_string())
                                })
                                .unwrap_or_else(|| "latest".into()),
                            name,
                        },
                    }
                }
                _ => {
                    return Err(format!(
                        "sensitive_labels.{key}: set exactly one of value_from_env or secret"
                    ));
                }
            };
            sources.insert(key.clone(), parsed);
        }
        Ok(sources)
    }

    /// Returns what a sensitive label's fingerprint is taken of: the variable's value, or the
    /// secret version it names (a rotation is a new `version`).
    fn fingerprinted(key: &str, source: &LabelSource) -> Result<Redacted<Vec<u8>>, KindError> {
        match source {
            LabelSource::Environment(variable) => match std::env::var(variable) {
                Ok(value) => Ok(Redacted::new(value.into_bytes())),
                Err(_) => Err(KindError::Invalid(format!(
                    "sensitive_labels.{key}: environment variable `{variable}` is not set\n  hint: export {variable}=… before running infra"
                ))),
            },
            LabelSource::Secret { name, version } => Ok(Redacted::new(
                format!("secret:{name}@{version}").into_bytes(),
            )),
            LabelSource::Unknown => Err(KindError::Invalid(format!(
                "sensitive_labels.{key}: the secret version is not known yet"
            ))),
        }
    }

    /// Returns the recorded fingerprint of one sensitive label.
    fn recorded<'a>(prior: Option<&'a StateResource>, key: &str) -> Option<&'a Value> {
        prior?
            .attributes
            .get("sensitive_labels")?
            .as_map()?
            .get(key)
    }

    async fn resolve(
        client: &GcpClient,
        source: &LabelSource,
    ) -> Result<Redacted<String>, KindError> {
        match source {
            LabelSource::Environment(variable) => {
                std::env::var(variable).map(Redacted::new).map_err(|_| {
                    KindError::Invalid(format!("environment variable `{variable}` is not set"))
                })
            }
            LabelSource::Unknown => Err(KindError::Invalid(
                "a sensitive label's secret version is not known yet".into(),
            )),
            LabelSource::Secret { name, version } => {
                let accessed = client
                    .call(
                        Method::GET,
                        Service::SecretManager,
                        &format!("v1/{name}/versions/{version}:access"),
                        &[],
                        None,
                    )
                    .await?;
                let data = accessed
                    .pointer("/payload/data")
                    .and_then(Json::as_str)
                    .unwrap_or_default();
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(data)
                    .map_err(|_| {
                        KindError::Invalid(format!("{name}: the secret's payload is not base64"))
                    })?;
                Ok(Redacted::new(String::from_utf8(bytes).map_err(|_| {
                    KindError::Invalid(format!("{name}: the secret is not UTF-8 text"))
                })?))
            }
        }
    }

    /// Builds the API body, reading the credentials from their sources.
    async fn body(
        client: &GcpClient,
        config: &Attributes,
        desired: &Attributes,
    ) -> Result<Json, KindError> {
        let mut labels: serde_json::Map<String, Json> = desired["labels"]
            .to_json()
            .as_object()
            .cloned()
            .unwrap_or_default();
        for (key, source) in Self::sources(config).map_err(KindError::Invalid)? {
            let value = Self::resolve(client, &source).await?;
            labels.insert(key, Json::String(value.expose().clone()));
        }
        Ok(json!({
            "type": desired["type"].to_json(),
            "displayName": desired["display_name"].to_json(),
            "description": desired["description"].to_json(),
            "labels": labels,
            "userLabels": desired["user_labels"].to_json(),
            "enabled": desired["enabled"].to_json(),
        }))
    }

    fn normalize(live: &Json, prior: Option<&StateResource>) -> Attributes {
        let kind = live["type"].as_str().unwrap_or_default();
        let sensitive_keys: Vec<&str> = SENSITIVE_KEYS
            .iter()
            .filter(|(name, _)| *name == kind)
            .map(|(_, key)| *key)
            .collect();
        let mut labels = live["labels"].as_object().cloned().unwrap_or_default();
        labels.retain(|key, _| !sensitive_keys.contains(&key.as_str()));
        let mut attributes = Attributes::from([
            ("type".into(), Value::string(kind)),
            (
                "display_name".into(),
                Value::string(live["displayName"].as_str().unwrap_or_default()),
            ),
            (
                "description".into(),
                Value::string(live["description"].as_str().unwrap_or_default()),
            ),
            ("labels".into(), Value::from_json(&Json::Object(labels))),
            (
                "user_labels".into(),
                Value::from_json(live.get("userLabels").unwrap_or(&json!({}))),
            ),
            (
                "enabled".into(),
                Value::Bool(live["enabled"].as_bool().unwrap_or(true)),
            ),
            ("name".into(), Value::from_json(&live["name"])),
        ]);
        // Google obfuscates credentials on read: what was written is what state recorded.
        if let Some(recorded) = prior.and_then(|prior| prior.attributes.get("sensitive_labels")) {
            attributes.insert("sensitive_labels".into(), recorded.clone());
        }
        attributes
    }

    /// Returns the attributes state records for a channel this run writes: the desired ones,
    /// with every credential's fingerprint keyed anew (what is written is the current value).
    fn written(&self, context: &KindContext, config: &Attributes) -> Result<Attributes, KindError> {
        let mut desired = self.desired(context, config, None)?;
        if let Some(Value::Map(labels)) = desired.get_mut("sensitive_labels") {
            for (key, source) in Self::sources(config).map_err(KindError::Invalid)? {
                let material = Self::fingerprinted(&key, &source)?;
                labels.insert(
                    key.clone(),
                    context
                        .keyed_fingerprint(&format!("sensitive_labels.{key}"), material.expose())?,
                );
            }
        }
        Ok(desired)
    }

    /// Rewrites a name Google returns (project number) into the project-id form of state.
    fn our_name(context: &KindContext, config: &Attributes, live: &Json) -> String {
        let id = live["name"]
            .as_str()
            .unwrap_or_default()
            .rsplit('/')
            .next()
            .unwrap_or_default();
        format!(
            "projects/{}/notificationChannels/{id}",
            Self::project(context, config)
        )
    }
}

#[async_trait]
impl Kind for NotificationChannelKind {
    fn name(&self) -> &'static str {
        "notification_channel"
    }

    fn fields(&self) -> &'static [FieldSpec] {
        &FIELDS
    }

    fn check(&self, config: &Attributes) -> Vec<String> {
        let mut problems = Vec::new();
        if let Err(problem) = Self::sources(config) {
            problems.push(problem);
        }
        if let Some(Value::String(kind)) = config.get("type") {
            for (_, key) in SENSITIVE_KEYS.iter().filter(|(name, _)| name == kind) {
                if config
                    .get("labels")
                    .and_then(Value::as_map)
                    .is_some_and(|labels| labels.contains_key(*key))
                {
                    problems.push(format!("labels.{key} is a credential: move it to sensitive_labels, from value_from_env or a secret"));
                }
            }
        }
        problems
    }

    fn resource_id(&self, _context: &KindContext, _config: &Attributes) -> Option<String> {
        // The id is assigned by Google on create.
        None
    }

    fn pending_id(&self, context: &KindContext, config: &Attributes) -> Option<String> {
        let collection = format!(
            "projects/{}/notificationChannels",
            Self::project(context, config)
        );
        Some(super::ownership::pending_id(&collection, context))
    }

    fn desired(
        &self,
        context: &KindContext,
        config: &Attributes,
        prior: Option<&StateResource>,
    ) -> Result<Attributes, KindError> {
        let user_labels = keyed_user_labels(context, config);
        let mut sensitive = BTreeMap::new();
        for (key, source) in Self::sources(config).map_err(KindError::Invalid)? {
            if matches!(source, LabelSource::Unknown) {
                // Known after apply: a new version is a new credential to write.
                sensitive.insert(key.clone(), Value::unknown());
                continue;
            }
            let material = Self::fingerprinted(&key, &source)?;
            sensitive.insert(
                key.clone(),
                context.fingerprint(
                    &format!("sensitive_labels.{key}"),
                    material.expose(),
                    Self::recorded(prior, &key),
                ),
            );
        }
        let mut desired = Attributes::from([
            (
                "type".into(),
                config.get("type").cloned().unwrap_or_default(),
            ),
            (
                "display_name".into(),
                Value::string(string_attribute(config, "display_name").unwrap_or_default()),
            ),
            (
                "description".into(),
                Value::string(string_attribute(config, "description").unwrap_or_default()),
            ),
            (
                "labels".into(),
                config
                    .get("labels")
                    .cloned()
                    .unwrap_or(Value::Map(BTreeMap::new())),
            ),
            ("user_labels".into(), Value::Map(user_labels)),
            (
                "enabled".into(),
                config.get("enabled").cloned().unwrap_or(Value::Bool(true)),
            ),
        ]);
        if !sensitive.is_empty() {
            desired.insert("sensitive_labels".into(), Value::Map(sensitive));
        }
        Ok(desired)
    }

    fn exported(
        &self,
        _context: &KindContext,
        config: &Attributes,
        prior: Option<&StateResource>,
        _changing: bool,
    ) -> Attributes {
        assigned_name_exports(config, prior)
    }

    fn refingerprint(
        &self,
        context: &KindContext,
        config: &Attributes,
        prior: &StateResource,
    ) -> Result<Option<Attributes>, KindError> {
        let mut attributes = prior.attributes.clone();
        let mut changed = false;
        let sources = Self::sources(config).map_err(KindError::Invalid)?;
        if let Some(Value::Map(recorded_labels)) = attributes.get_mut("sensitive_labels") {
            for (key, recorded) in recorded_labels.iter_mut() {
                let Some(source) = sources.get(key) else {
                    continue;
                };
                if !context.is_outdated(recorded) {
                    continue;
                }
                let material = Self::fingerprinted(key, source)?;
                let field = format!("sensitive_labels.{key}");
                if context.judge(&field, material.expose(), Some(recorded)) != Verdict::Unconfirmed
                {
                    *recorded = context.keyed_fingerprint(&field, material.expose())?;
                    changed = true;
                }
            }
        }
        let legacy_left = attributes
            .get("sensitive_labels")
            .and_then(Value::as_map)
            .into_iter()
            .flatten()
            .any(|(_, recorded)| {
                matches!(recorded, Value::Marker(Marker::Sensitive(text)) if text.starts_with(&format!("{LEGACY_SCHEME}:")))
            });
        let salt_dropped = !legacy_left && attributes.remove(LEGACY_SALT_ATTRIBUTE).is_some();
        Ok((changed || salt_dropped).then_some(attributes))
    }

    fn update_mask(&self, changed_fields: &[String]) -> Vec<String> {
        let mut mask = std::collections::BTreeSet::new();
        for field in changed_fields {
            mask.insert(match crate::plan::diff::top_field(field) {
                "display_name" => "displayName",
                "description" => "description",
                "labels" | "sensitive_labels" => "labels",
                "user_labels" => "userLabels",
                "enabled" => "enabled",
                _ => continue,
            });
        }
        mask.into_iter().map(String::from).collect()
    }

    async fn read(
        &self,
        client: &GcpClient,
        id: &str,
        prior: Option<&StateResource>,
    ) -> Result<Option<Attributes>, KindError> {
        if super::is_pending_id(id) {
            return Ok(None);
        }
        Ok(
            get_if_exists(client, Service::Monitoring, &format!("v3/{id}"))
                .await?
                .map(|live| Self::normalize(&live, prior)),
        )
    }

    async fn create(
        &self,
        client: &GcpClient,
        context: &KindContext,
        config: &Attributes,
    ) -> Result<Created, KindError> {
        let desired = self.written(context, config)?;
        let body = Self::body(client, config, &desired).await?;
        let project = Self::project(context, config);
        let collection = format!("v3/projects/{project}/notificationChannels");
        let live = create_or_adopt(
            client,
            Service::Monitoring,
            &collection,
            "notificationChannels",
            context,
            &body,
            &[(
                "updateMask",
                "displayName,description,labels,userLabels,enabled".to_string(),
            )],
        )
        .await?;
        let id = Self::our_name(context, config, &live);
        let mut attributes = desired;
        attributes.insert("name".into(), Value::string(id.clone()));
        Ok(Created { id, attributes })
    }

    async fn create_after_interruption(
        &self,
        client: &GcpClient,
        context: &KindContext,
        config: &Attributes,
    ) -> Result<Created, KindError> {
        let collection = format!(
            "v3/projects/{}/notificationChannels",
            Self::project(context, config)
        );
        super::ownership::wait_until_listed(
            client,
            Service::Monitoring,
            &collection,
            "notificationChannels",
            "userLabels",
            context,
        )
        .await?;
        self.create(client, context, config).await
    }

    async fn update(
        &self,
        client: &GcpClient,
        context: &KindContext,
        config: &Attributes,
        prior: &StateResource,
        changed_fields: &[String],
    ) -> Result<Attributes, KindError> {
        let desired = self.written(context, config)?;
        let mask = self.update_mask(changed_fields);
        if !mask.is_empty() {
            let body = Self::body(client, config, &desired).await?;
            client
                .call(
                    Method::PATCH,
                    Service::Monitoring,
                    &format!("v3/{}", prior.id),
                    &[("updateMask", mask.join(","))],
                    Some(&body),
                )
                .await?;
        }
        let mut attributes = desired;
        attributes.insert("name".into(), Value::string(prior.id.clone()));
        Ok(attributes)
    }

    async fn delete(&self, client: &GcpClient, prior: &StateResource) -> Result<(), KindError> {
        if super::is_pending_id(&prior.id) {
            return super::ownership::delete_pending(
                client,
                Service::Monitoring,
                "v3",
                "notificationChannels",
                &prior.id,
            )
            .await;
        }
        // force: alert policies still naming it (being deleted in this run too) drop it.
        delete_if_exists(
            client,
            Service::Monitoring,
            &format!("v3/{}", prior.id),
            &[("force", "true".into())],
        )
        .await
    }
}
