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
use crate::state::StateResource;
use crate::value::{Attributes, Value};
use async_trait::async_trait;

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
    /// The resource's salt for fingerprints of secret values (its prior one, or a fresh one).
    pub salt: String,
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

    /// Returns whether a create must make its intent record (`status: creating`, the id) durable
    /// before the request: so for a kind whose interrupted create the next run could not find
    /// again. Kinds whose create adopts the object found under its client-chosen name, or whose
    /// create is idempotent, answer false and skip a state write per create.
    fn needs_intent_record(&self) -> bool {
        true
    }

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

/// Returns a kind's user labels with `managed-by=infra` and this resource's `infra-key`.
pub(crate) fn keyed_user_labels(
    context: &KindContext,
    config: &Attributes,
) -> std::collections::BTreeMap<String, Value> {
    let mut labels = managed_labels(config, "user_labels");
    labels.insert(INFRA_KEY_LABEL.into(), Value::string(infra_key(context)));
    labels
}

/// Creates an object in a collection whose ids Google assigns — unless an interrupted create
/// already made it: the object carrying this resource's `infra-key` is adopted instead, by a
/// PATCH of `body` with `adopt_query` (an update mask, where the API needs one).
pub(crate) async fn create_or_adopt(
    client: &GcpClient,
    service: crate::gcp::Service,
    collection_path: &str,
    items_field: &str,
    context: &KindContext,
    body: &serde_json::Value,
    adopt_query: &[(&str, String)],
) -> Result<serde_json::Value, KindError> {
    let existing = find_by_infra_key(
        client,
        service,
        collection_path,
        items_field,
        &infra_key(context),
    )
    .await?;
    let answer = match existing {
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

/// Finds, in a collection whose ids Google assigns, the object carrying this resource's
/// `infra-key` user label: what an interrupted create left behind. Pages through the list.
async fn find_by_infra_key(
    client: &GcpClient,
    service: crate::gcp::Service,
    collection_path: &str,
    items_field: &str,
    key: &str,
) -> Result<Option<serde_json::Value>, KindError> {
    let mut page_token = String::new();
    loop {
        let mut query = vec![("pageSize", "1000".to_string())];
        if !page_token.is_empty() {
            query.push(("pageToken", page_token.clone()));
        }
        let page = client
            .call(reqwest::Method::GET, service, collection_path, &query, None)
            .await?;
        let found = page[items_field]
            .as_array()
            .into_iter()
            .flatten()
            .find(|item| {
                item.pointer(&format!("/userLabels/{INFRA_KEY_LABEL}"))
                    .and_then(|value| value.as_str())
                    == Some(key)
            });
        if let Some(found) = found {
            return Ok(Some(found.clone()));
        }
        match page["nextPageToken"]
            .as_str()
            .filter(|token| !token.is_empty())
        {
            Some(token) => page_token = token.to_string(),
            None => return Ok(None),
        }
    }
}

/// Returns a configured label map with the `managed-by=infra` label added.
pub(crate) fn managed_labels(
    config: &Attributes,
    field: &str,
) -> std::collections::BTreeMap<String, Value> {
    let mut labels = config
        .get(field)
        .and_then(Value::as_map)
        .cloned()
        .unwrap_or_default();
    labels.insert(MANAGED_BY_LABEL.0.into(), Value::string(MANAGED_BY_LABEL.1));
    labels
}

/// Returns the label every object created by `infra` carries, so an interrupted create can be
/// adopted instead of duplicated.
pub const MANAGED_BY_LABEL: (&str, &str) = ("managed-by", "infra");
