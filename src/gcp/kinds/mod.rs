//! The resource kinds and their registry. A kind is one file implementing `Kind`: its schema,
//! how its live object reads and normalizes for comparison, and how it is created, updated and
//! deleted. The planner and executor only ever see this trait.

mod alert_policy;
mod budget;
mod cloud_run_service;
mod iam_binding;
mod iam_member;
mod iam_policy;
mod monitoring_dashboard;
mod notification_channel;
mod secret;
mod service_account;

use super::{GcpClient, GcpError};
use crate::sensitive::{FingerprintKey, Verdict, judge};
use crate::state::StateResource;
use crate::value::{Attributes, Marker, Value};
use async_trait::async_trait;
use std::sync::Arc;

pub use alert_policy::AlertPolicyKind;
pub use budget::BudgetKind;
pub use cloud_run_service::CloudRunServiceKind;
pub use iam_binding::IamBindingKind;
pub use iam_member::IamMemberKind;
pub use monitoring_dashboard::MonitoringDashboardKind;
pub use notification_channel::NotificationChannelKind;
pub use secret::SecretKind;
pub use service_account::ServiceAccountKind;

/// The type a configuration field takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    String,
    Integer,
    Bool,
    StringMap,
    StringList,
    /// A table or a string; the kind checks the shape.
    Any,
}

impl FieldType {
    /// Returns true when a value fits this type (unknown fits everything).
    pub fn accepts(self, value: &Value) -> bool {
        match (self, value) {
            (FieldType::Any, _) | (_, Value::Marker(_)) => true,
            (FieldType::String, Value::String(_)) => true,
            (FieldType::Integer, Value::Integer(_)) => true,
            (FieldType::Bool, Value::Bool(_)) => true,
            (FieldType::StringMap, Value::Map(entries)) => entries
                .values()
                .all(|item| matches!(item, Value::String(_) | Value::Marker(_))),
            (FieldType::StringList, Value::List(items)) => items
                .iter()
                .all(|item| matches!(item, Value::String(_) | Value::Marker(_))),
            _ => false,
        }
    }

    /// Returns the type's name as the docs spell it.
    pub fn describe(self) -> &'static str {
        match self {
            FieldType::String => "string",
            FieldType::Integer => "integer",
            FieldType::Bool => "bool",
            FieldType::StringMap => "map of strings",
            FieldType::StringList => "list of strings",
            FieldType::Any => "table or string",
        }
    }
}

/// One settable configuration field of a kind.
#[derive(Debug)]
pub struct FieldSpec {
    pub name: &'static str,
    pub field_type: FieldType,
    pub required: bool,
    /// Never shown, logged or stored; plans show `(sensitive value)`.
    pub sensitive: bool,
    /// A change cannot be made in place: the resource is replaced.
    pub force_new: bool,
}

impl FieldSpec {
    /// Describes an optional, updatable field.
    pub const fn optional(name: &'static str, field_type: FieldType) -> Self {
        Self {
            name,
            field_type,
            required: false,
            sensitive: false,
            force_new: false,
        }
    }

    /// Marks the field required.
    pub const fn required(mut self) -> Self {
        self.required = true;
        self
    }

    /// Marks the field as forcing replacement when changed.
    pub const fn force_new(mut self) -> Self {
        self.force_new = true;
        self
    }

    /// Marks the field sensitive.
    pub const fn sensitive(mut self) -> Self {
        self.sensitive = true;
        self
    }
}

/// What a kind knows of the environment and the plan while planning or applying one resource.
#[derive(Debug, Clone)]
pub struct KindContext {
    /// The resource's address (`module.m.kind.name["key"]`).
    pub address: String,
    pub project: String,
    pub region: String,
    pub env_name: String,
    /// The state's lineage: created objects carry it in a label, and adoption checks it.
    pub lineage: String,
    /// The environment's fingerprint key; `None` until the first apply that needs it creates it.
    pub fingerprint_key: Option<Arc<FingerprintKey>>,
    /// The salt an older build recorded beside this resource's fingerprints: used only to
    /// verify them (so they migrate without showing a change), never to write.
    pub legacy_salt: Option<String>,
}

impl KindContext {
    /// Judges what state recorded for `field` against the value the configuration gives it.
    pub fn judge(&self, field: &str, value: &[u8], recorded: Option<&Value>) -> Verdict {
        match recorded {
            Some(Value::Marker(Marker::Sensitive(recorded))) => judge(
                recorded,
                self.fingerprint_key.as_deref(),
                self.legacy_salt.as_deref(),
                &self.address,
                field,
                value,
            ),
            _ => Verdict::Unconfirmed,
        }
    }

    /// Returns the comparable value standing for a secret: the recorded fingerprint when it
    /// still stands for this value, else a new keyed one — or unknown when the key does not
    /// exist yet (the first apply creates it and fingerprints then).
    pub fn fingerprint(&self, field: &str, value: &[u8], recorded: Option<&Value>) -> Value {
        match (self.judge(field, value, recorded), recorded) {
            (Verdict::Current | Verdict::Legacy, Some(recorded)) => recorded.clone(),
            _ => match &self.fingerprint_key {
                Some(key) => Value::sensitive(key.fingerprint(&self.address, field, value)),
                None => Value::unknown(),
            },
        }
    }

    /// Returns the keyed fingerprint state records for a value just written.
    pub fn keyed_fingerprint(&self, field: &str, value: &[u8]) -> Result<Value, KindError> {
        let key = self.fingerprint_key.as_ref().ok_or_else(|| {
            KindError::Invalid(format!(
                "{}: no fingerprint key for environment `{}`: apply creates it before writing secrets",
                self.address, self.env_name
            ))
        })?;
        Ok(Value::sensitive(key.fingerprint(
            &self.address,
            field,
            value,
        )))
    }

    /// Returns true when a recorded fingerprint is not keyed under the current key (an older
    /// recipe or key), so `apply` should rewrite it.
    pub fn is_outdated(&self, recorded: &Value) -> bool {
        match recorded {
            Value::Marker(Marker::Sensitive(recorded)) => {
                match crate::sensitive::parse_keyed(recorded) {
                    Some((id, _)) => self
                        .fingerprint_key
                        .as_ref()
                        .is_some_and(|key| key.id() != id),
                    None => true,
                }
            }
            _ => false,
        }
    }
}

/// A created object: its id and the attributes state records for it.
#[derive(Debug)]
pub struct Created {
    pub id: String,
    pub attributes: Attributes,
}

/// Why a kind could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum KindError {
    #[error(transparent)]
    Gcp(#[from] GcpError),
    #[error("{0}")]
    Invalid(String),
    #[error("{message}\n  hint: {hint}")]
    Conflict { message: String, hint: String },
}

/// A resource kind.
#[async_trait]
pub trait Kind: Send + Sync {
    /// Returns the kind's name as written in `[resource.NAME.…]`.
    fn name(&self) -> &'static str;

    /// Returns the settable fields.
    fn fields(&self) -> &'static [FieldSpec];

    /// Returns the problems of cross-field rules in an evaluated configuration.
    fn check(&self, config: &Attributes) -> Vec<String>;

    /// Returns the full resource name the configuration describes, when known at plan time.
    fn resource_id(&self, context: &KindContext, config: &Attributes) -> Option<String>;

    /// Returns the comparable desired attributes: defaults applied, secrets fingerprinted.
    fn desired(
        &self,
        context: &KindContext,
        config: &Attributes,
        prior: Option<&StateResource>,
    ) -> Result<Attributes, KindError>;

    /// Returns the attributes other resources may reference, as far as they are known before
    /// apply. `changing` is true when the plan creates, replaces or updates the resource.
    fn exported(
        &self,
        context: &KindContext,
        config: &Attributes,
        prior: Option<&StateResource>,
        changing: bool,
    ) -> Attributes;

    /// Returns the id of the resource this one lives inside (an IAM policy's owner), if any:
    /// when that one is created or replaced, this one must be written again.
    fn container(&self, _config: &Attributes) -> Option<String> {
        None
    }

    /// Returns why deleting this object is refused (deletion protection), judged from what state
    /// recorded; the planner shows it, `delete` enforces it.
    fn deletion_guard(&self, _prior: &StateResource) -> Option<String> {
        None
    }

    /// Returns what this resource manages inside another, as `(key, exclusive)`: an exclusive
    /// claim (an authoritative IAM binding's role) may not share its key with any other claim.
    fn claims(&self, _config: &Attributes) -> Vec<(String, bool)> {
        Vec::new()
    }

    /// Returns the state attributes with every fingerprint in the current keyed form, when
    /// some are not (written by an older build, or under an older key) and the configuration's
    /// value is confirmed to be the recorded one: `apply` rewrites them even with nothing else
    /// to do. `None` when nothing needs rewriting.
    fn refingerprint(
        &self,
        _context: &KindContext,
        _config: &Attributes,
        _prior: &StateResource,
    ) -> Result<Option<Attributes>, KindError> {
        Ok(None)
    }

    /// Returns the API update mask for changed comparable fields.
    fn update_mask(&self, changed_fields: &[String]) -> Vec<String>;

    /// Reads the live object and normalizes it for comparison; `None` when it does not exist.
    async fn read(
        &self,
        client: &GcpClient,
        id: &str,
        prior: Option<&StateResource>,
    ) -> Result<Option<Attributes>, KindError>;

    /// Reads an existing object into state attributes for `infra import`; `None` when it does
    /// not exist. Kinds whose state holds fingerprints of secrets compute them here.
    async fn import(
        &self,
        client: &GcpClient,
        _context: &KindContext,
        id: &str,
    ) -> Result<Option<Attributes>, KindError> {
        self.read(client, id, None).await
    }

    /// Creates the object.
    async fn create(
        &self,
        client: &GcpClient,
        context: &KindContext,
        config: &Attributes,
    ) -> Result<Created, KindError>;

    /// Updates the object in place for the changed comparable fields.
    async fn update(
        &self,
        client: &GcpClient,
        context: &KindContext,
        config: &Attributes,
        prior: &StateResource,
        changed_fields: &[String],
    ) -> Result<Attributes, KindError>;

    /// Deletes the object; an object already gone is not an error.
    async fn delete(&self, client: &GcpClient, prior: &StateResource) -> Result<(), KindError>;
}

/// Returns every registered kind.
pub fn registry() -> &'static [&'static dyn Kind] {
    static KINDS: [&dyn Kind; 9] = [
        &SecretKind,
        &ServiceAccountKind,
        &CloudRunServiceKind,
        &IamMemberKind,
        &IamBindingKind,
        &MonitoringDashboardKind,
        &NotificationChannelKind,
        &AlertPolicyKind,
        &BudgetKind,
    ];
    &KINDS
}

/// Finds a kind by name.
pub fn find(name: &str) -> Option<&'static dyn Kind> {
    registry().iter().copied().find(|kind| kind.name() == name)
}

/// Returns a string attribute of a configuration, if set.
pub(crate) fn string_attribute<'a>(config: &'a Attributes, name: &str) -> Option<&'a str> {
    config.get(name).and_then(Value::as_str)
}

/// Deletes the object at `path`; one already gone is not an error.
pub(crate) async fn delete_if_exists(
    client: &GcpClient,
    service: crate::gcp::Service,
    path: &str,
    query: &[(&str, String)],
) -> Result<(), KindError> {
    match client
        .call(reqwest::Method::DELETE, service, path, query, None)
        .await
    {
        Ok(_) => Ok(()),
        Err(error) if error.is_not_found() => Ok(()),
        Err(error) => Err(error.into()),
    }
}

/// Reads the object at `path`; `None` when it does not exist.
pub(crate) async fn get_if_exists(
    client: &GcpClient,
    service: crate::gcp::Service,
    path: &str,
) -> Result<Option<serde_json::Value>, KindError> {
    match client
        .call(reqwest::Method::GET, service, path, &[], None)
        .await
    {
        Ok(live) => Ok(Some(live)),
        Err(error) if error.is_not_found() => Ok(None),
        Err(error) => Err(error.into()),
    }
}

/// Returns what others may reference of a resource whose id Google assigns on create: the
/// name (known once created) and the display name.
pub(crate) fn assigned_name_exports(
    config: &Attributes,
    prior: Option<&StateResource>,
) -> Attributes {
    let name = prior.map_or_else(Value::unknown, |prior| Value::string(&prior.id));
    Attributes::from([
        ("id".into(), name.clone()),
        ("name".into(), name),
        (
            "display_name".into(),
            config.get("display_name").cloned().unwrap_or_default(),
        ),
    ])
}

/// The user label that names which resource of which environment an object with a
/// server-assigned id belongs to, so an interrupted create finds it again.
pub const INFRA_KEY_LABEL: &str = "infra-key";

/// Returns the value of `INFRA_KEY_LABEL` for a resource: a digest of environment and address.
pub(crate) fn infra_key(context: &KindContext) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(&Sha256::digest(format!("{}/{}", context.env_name, context.address))[..12])
}

/// Returns a kind's user labels with the ownership labels and this resource's `infra-key`.
pub(crate) fn keyed_user_labels(
    context: &KindContext,
    config: &Attributes,
) -> std::collections::BTreeMap<String, Value> {
    let mut labels = managed_labels(context, config, "user_labels");
    labels.insert(INFRA_KEY_LABEL.into(), Value::string(infra_key(context)));
    labels
}

/// Creates an object in a collection whose ids Google assigns — unless an interrupted create
/// of this state already made it: the object carrying this resource's `infra-key` and this
/// environment's and state's ownership labels is adopted instead, by a PATCH of `body` with
/// `adopt_query` (an update mask, where the API needs one). One carrying the key but owned by
/// another state is an error: it is never taken over silently.
pub(crate) async fn create_or_adopt(
    client: &GcpClient,
    service: crate::gcp::Service,
    collection_path: &str,
    items_field: &str,
    context: &KindContext,
    body: &serde_json::Value,
    adopt_query: &[(&str, String)],
) -> Result<serde_json::Value, KindError> {
    let candidates = find_by_infra_key(
        client,
        service,
        collection_path,
        items_field,
        &infra_key(context),
    )
    .await?;
    let ours = candidates
        .iter()
        .find(|found| check_owner(context, "", found.get("userLabels")).is_ok());
    let answer = match ours {
        Some(found) => {
            let name = found["name"].as_str().unwrap_or_default().to_string();
            tracing::info!("adopting {name}, created by an interrupted run");
            client
                .call(
                    reqwest::Method::PATCH,
                    service,
                    &format!("v3/{name}"),
                    adopt_query,
                    Some(body),
                )
                .await?
        }
        None => {
            // Carrying this resource's key but owned by another state: refuse, naming the owner.
            if let Some(foreign) = candidates.first() {
                let name = foreign["name"].as_str().unwrap_or_default();
                check_owner(context, name, foreign.get("userLabels"))?;
            }
            client
                .call(
                    reqwest::Method::POST,
                    service,
                    collection_path,
                    &[],
                    Some(body),
                )
                .await?
        }
    };
    Ok(answer)
}

/// Finds, in a collection whose ids Google assigns, the objects carrying this resource's
/// `infra-key` user label: what an interrupted create left behind. Pages through the list.
async fn find_by_infra_key(
    client: &GcpClient,
    service: crate::gcp::Service,
    collection_path: &str,
    items_field: &str,
    key: &str,
) -> Result<Vec<serde_json::Value>, KindError> {
    let mut found = Vec::new();
    let mut page_token = String::new();
    loop {
        let mut query = vec![("pageSize", "1000".to_string())];
        if !page_token.is_empty() {
            query.push(("pageToken", page_token.clone()));
        }
        let page = client
            .call(reqwest::Method::GET, service, collection_path, &query, None)
            .await?;
        found.extend(
            page[items_field]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|item| {
                    item.pointer(&format!("/userLabels/{INFRA_KEY_LABEL}"))
                        .and_then(|value| value.as_str())
                        == Some(key)
                })
                .cloned(),
        );
        match page["nextPageToken"]
            .as_str()
            .filter(|token| !token.is_empty())
        {
            Some(token) => page_token = token.to_string(),
            None => return Ok(found),
        }
    }
}

/// Returns a configured label map with the ownership labels added: `managed-by=infra`, the
/// environment and the state lineage.
pub(crate) fn managed_labels(
    context: &KindContext,
    config: &Attributes,
    field: &str,
) -> std::collections::BTreeMap<String, Value> {
    let mut labels = config
        .get(field)
        .and_then(Value::as_map)
        .cloned()
        .unwrap_or_default();
    labels.insert(MANAGED_BY_LABEL.0.into(), Value::string(MANAGED_BY_LABEL.1));
    labels.insert(
        ENV_LABEL.into(),
        Value::string(label_value(&context.env_name)),
    );
    labels.insert(
        LINEAGE_LABEL.into(),
        Value::string(label_value(&context.lineage)),
    );
    labels
}

/// Returns the label every object created by `infra` carries.
pub const MANAGED_BY_LABEL: (&str, &str) = ("managed-by", "infra");

/// The label naming the environment that created an object.
pub const ENV_LABEL: &str = "infra-env";

/// The label naming the state lineage that created an object.
pub const LINEAGE_LABEL: &str = "infra-lineage";

/// Returns `text` as a valid label value: lowercase letters, digits, `-` and `_`, at most 63
/// characters (Google's rule for label values); anything else becomes `-`.
pub fn label_value(text: &str) -> String {
    text.chars()
        .map(|character| {
            let lower = character.to_ascii_lowercase();
            if lower.is_ascii_lowercase() || lower.is_ascii_digit() || lower == '-' || lower == '_'
            {
                lower
            } else {
                '-'
            }
        })
        .take(63)
        .collect()
}

/// Checks that an existing object met on create (`name`, with its `labels`) belongs to this
/// environment and state: only then may it be adopted as what an interrupted create left.
/// Anything else is a conflict naming its owner, with the import command as the way to take it
/// over on purpose.
pub(crate) fn check_owner(
    context: &KindContext,
    name: &str,
    labels: Option<&serde_json::Value>,
) -> Result<(), KindError> {
    let label = |key: &str| {
        labels
            .and_then(|labels| labels.get(key))
            .and_then(serde_json::Value::as_str)
    };
    let env = label(ENV_LABEL);
    let lineage = label(LINEAGE_LABEL);
    let managed = label(MANAGED_BY_LABEL.0) == Some(MANAGED_BY_LABEL.1);
    if managed
        && env == Some(label_value(&context.env_name).as_str())
        && lineage == Some(label_value(&context.lineage).as_str())
    {
        return Ok(());
    }
    let owner = match (managed, env, lineage) {
        (false, ..) => "not created by infra".to_string(),
        (true, env, _) if label("infra-role").is_some() => format!(
            "infra's own fingerprint key of environment `{}`, reserved",
            env.unwrap_or("?")
        ),
        (true, Some(env), Some(lineage)) => {
            format!("owned by environment `{env}`, state lineage {lineage}")
        }
        (true, env, lineage) => format!(
            "created by infra for environment `{}`, state lineage {} (labels incomplete: an older build, or edited)",
            env.unwrap_or("?"),
            lineage.unwrap_or("?")
        ),
    };
    Err(KindError::Conflict {
        message: format!("{name} already exists and is {owner}: not adopted"),
        hint: format!(
            "if this environment should manage it: `infra import --env {} '{}' {name}`; otherwise give this resource another name",
            context.env_name, context.address
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sensitive::{FingerprintKey, legacy_salted_fingerprint};
    use serde_json::json;

    fn context() -> KindContext {
        KindContext {
            address: "secret.a".into(),
            project: "p".into(),
            region: "r".into(),
            env_name: "Staging.EU".into(),
            lineage: "0b9c-LINEAGE".into(),
            fingerprint_key: Some(Arc::new(FingerprintKey::new("2", &[5; 32]).expect("key"))),
            legacy_salt: Some("salt".into()),
        }
    }

    #[test]
    fn label_values_are_lowercase_and_at_most_63_characters() {
        assert_eq!(label_value("Staging.EU"), "staging-eu");
        assert_eq!(label_value("a_b-c9"), "a_b-c9");
        assert_eq!(label_value(&"x".repeat(80)).len(), 63);
    }

    #[test]
    fn created_objects_carry_the_environment_and_the_lineage() {
        let labels = managed_labels(&context(), &Attributes::new(), "labels");
        assert_eq!(labels["managed-by"], Value::string("infra"));
        assert_eq!(labels[ENV_LABEL], Value::string("staging-eu"));
        assert_eq!(labels[LINEAGE_LABEL], Value::string("0b9c-lineage"));
    }

    #[test]
    fn only_an_object_of_this_environment_and_state_may_be_adopted() {
        let context = context();
        let ours = json!({"managed-by": "infra", "infra-env": "staging-eu", "infra-lineage": "0b9c-lineage"});
        assert!(check_owner(&context, "projects/p/secrets/A", Some(&ours)).is_ok());
        let cases = [
            (json!({}), "is not created by infra"),
            (
                json!({"managed-by": "infra", "infra-env": "prod", "infra-lineage": "0b9c-lineage"}),
                "is owned by environment `prod`, state lineage 0b9c-lineage",
            ),
            (
                json!({"managed-by": "infra", "infra-env": "staging-eu", "infra-lineage": "other"}),
                "is owned by environment `staging-eu`, state lineage other",
            ),
            (
                json!({"managed-by": "infra"}),
                "created by infra for environment `?`, state lineage ? (labels incomplete",
            ),
        ];
        for (labels, owner) in cases {
            let error = check_owner(&context, "projects/p/secrets/A", Some(&labels))
                .expect_err("refused")
                .to_string();
            assert!(
                error.starts_with("projects/p/secrets/A already exists and ")
                    && error.contains(owner),
                "{error}"
            );
            assert!(
                error.contains("hint: if this environment should manage it: `infra import --env Staging.EU 'secret.a' projects/p/secrets/A`"),
                "{error}"
            );
        }
    }

    #[test]
    fn recorded_fingerprints_stand_when_they_verify_under_either_recipe() {
        let context = context();
        let key = context.fingerprint_key.clone().expect("key");
        let keyed = Value::sensitive(key.fingerprint("secret.a", "value", b"500"));
        let legacy = Value::sensitive(legacy_salted_fingerprint("salt", b"500"));
        assert_eq!(context.fingerprint("value", b"500", Some(&keyed)), keyed);
        assert_eq!(context.fingerprint("value", b"500", Some(&legacy)), legacy);
        assert_eq!(
            context.fingerprint("value", b"501", Some(&legacy)),
            Value::sensitive(key.fingerprint("secret.a", "value", b"501"))
        );
        assert!(context.is_outdated(&legacy));
        assert!(!context.is_outdated(&keyed));
        let without_key = KindContext {
            fingerprint_key: None,
            ..context
        };
        assert_eq!(
            without_key.fingerprint("value", b"501", Some(&legacy)),
            Value::unknown()
        );
        assert!(without_key.keyed_fingerprint("value", b"501").is_err());
    }
}
