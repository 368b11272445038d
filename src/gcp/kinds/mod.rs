//! The resource kinds and their registry. A kind is one file implementing `Kind`: its schema,
//! how its live object reads and normalizes for comparison, and how it is created, updated and
//! deleted. The planner and executor only ever see this trait.

mod alert_policy;
mod budget;
mod channel_names;
mod cloud_run_service;
mod iam_binding;
mod iam_member;
mod iam_policy;
pub mod limits;
mod monitoring_dashboard;
mod notification_channel;
mod ownership;
mod secret;
pub mod server_filled;
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
pub use iam_policy::{ParentWrites, PolicyConfirmation, confirm_policy_writes};
pub use limits::{Bound, OrderedPair};
pub use monitoring_dashboard::MonitoringDashboardKind;
pub use notification_channel::NotificationChannelKind;
pub use ownership::{
    ENV_LABEL, INFRA_KEY_LABEL, KEY_ROLE_LABEL, LINEAGE_LABEL, MANAGED_BY_LABEL, is_pending_id,
    label_value,
};
pub(crate) use ownership::{check_owner, create_or_adopt, keyed_user_labels, managed_labels};
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
    /// The object exists but did not reach the state asked for within its window (a Cloud
    /// Run rollout whose revisions were still refused their secrets).
    #[error("{message}\n  hint: {hint}")]
    Unsettled { message: String, hint: String },
}

impl KindError {
    /// Returns true when this error, returned by a kind's `create`, proves that the create made
    /// nothing: Google refused the create's POST itself with a verdict on the request (400
    /// invalid, 401/403 denied, 404 no parent, 412 precondition, …), so nothing was written;
    /// and `create_checked` returns such an answer only after any earlier attempt whose answer
    /// was lost was looked up and found absent. Not proof: 408 (the server stopped waiting for
    /// the request), 409 (an object, or a concurrent change, is already there), 429 (a "later",
    /// not a verdict), 5xx and lost answers (they may have committed), a kind's own error,
    /// and the refusal of any other request (an adopting PATCH refused: the object exists).
    pub fn proves_nothing_created(&self) -> bool {
        match self {
            KindError::Gcp(GcpError::Api { method, code, .. }) => {
                method == "POST" && (400..500).contains(code) && ![408, 409, 429].contains(code)
            }
            _ => false,
        }
    }
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

    /// Returns the numeric limits of the fields (the API's `int32` formats, documented ranges),
    /// checked by `limits::check_limits` before any API call.
    fn bounds(&self) -> &'static [Bound] {
        &[]
    }

    /// Returns the pairs of fields where the first may not exceed the second.
    fn ordered_pairs(&self) -> &'static [OrderedPair] {
        &[]
    }

    /// Returns the full resource name the configuration describes, when known at plan time.
    fn resource_id(&self, context: &KindContext, config: &Attributes) -> Option<String>;

    /// Returns whether a create must make its intent record (`status: creating`, the id) durable
    /// before the request: so for a kind whose interrupted create the next run could not find
    /// again, or (server-named kinds, `pending_id`) could find only in a list that may lag. Kinds whose create adopts the object found under its client-chosen name, or whose
    /// create is idempotent, answer false and skip a state write per create.
    fn needs_intent_record(&self) -> bool {
        true
    }

    /// Returns the id an intent record names when `resource_id` knows none (Google assigns
    /// the name): a placeholder (`ownership::pending_id`) telling the next run that a create
    /// may have made an object only a list can find. `None`: no intent record then.
    fn pending_id(&self, _context: &KindContext, _config: &Attributes) -> Option<String> {
        None
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

    /// Creates the object where an earlier run's intent record says a create may already have
    /// made it: a kind found again only by listing waits for the list to show it first.
    async fn create_after_interruption(
        &self,
        client: &GcpClient,
        context: &KindContext,
        config: &Attributes,
    ) -> Result<Created, KindError> {
        self.create(client, context, config).await
    }

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

    /// Returns the state-only field (a map) where the kind records work it defers until every
    /// resource depending on the object has been applied: a secret's previous versions retire
    /// only once the services naming the new one rolled out. A planned change in that field
    /// alone writes nothing to the object and changes nothing it exports; the executor calls
    /// `finish_deferred` after an apply phase that applied everything.
    fn deferred_field(&self) -> Option<&'static str> {
        None
    }

    /// Does the work recorded in `deferred_field` and returns the attributes without it.
    async fn finish_deferred(
        &self,
        _client: &GcpClient,
        resource: &StateResource,
    ) -> Result<Attributes, KindError> {
        Ok(resource.attributes.clone())
    }
}

/// Returns true when `resource` records deferred work (`Kind::deferred_field`) not yet done.
pub fn has_deferred_work(kind: &dyn Kind, resource: &StateResource) -> bool {
    kind.deferred_field()
        .and_then(|field| resource.attributes.get(field))
        .and_then(Value::as_map)
        .is_some_and(|work| !work.is_empty())
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

/// How many times a create whose answer was lost is looked up and sent again.
const CREATE_ATTEMPTS: u32 = 4;

/// How far the lookup of a create whose outcome is unknown can be trusted when it finds
/// nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lookup {
    /// Absence is proof, or a second create cannot make a second object: a read by the
    /// client-chosen name, or a collection where a create repeated under the same id is
    /// refused with 409 (secrets, service accounts, dashboards), which the kind then adopts.
    Settles,
    /// The lookup is a list, and lists lag a create (Secret Manager, IAM, Monitoring and
    /// Billing Budgets promise no read-after-write consistency for them): absence is believed
    /// only once the list has been polled for `GcpClient::list_lag`.
    Lags,
}

/// Sends a create (a POST) that may commit without its answer arriving: when the outcome is
/// unknown (a 5xx, a timeout, a cut connection), `find` looks the object up — by its id, its
/// ownership label or another durable identity — and only when it is absent is the create
/// sent again. Never sends a create twice blind, so a lost answer never makes a duplicate;
/// and when `find` reads a lagging list (`Lookup::Lags`), an empty answer is not taken for
/// absence until the list has had the time to show the object.
pub(crate) async fn create_checked<Find, Found>(
    client: &GcpClient,
    service: crate::gcp::Service,
    path: &str,
    query: &[(&str, String)],
    body: &serde_json::Value,
    lookup: Lookup,
    find: Find,
) -> Result<serde_json::Value, KindError>
where
    Find: Fn() -> Found,
    Found: std::future::Future<Output = Result<Option<serde_json::Value>, KindError>>,
{
    let mut attempt = 0;
    loop {
        attempt += 1;
        match client
            .call(reqwest::Method::POST, service, path, query, Some(body))
            .await
        {
            Ok(answer) => return Ok(answer),
            Err(error) if error.is_outcome_unknown() && attempt < CREATE_ATTEMPTS => {
                tracing::info!("{error}: the create may have committed; looking it up");
                tokio::time::sleep(client.retry_policy().delay(attempt)).await;
                let window = match lookup {
                    Lookup::Settles => std::time::Duration::ZERO,
                    Lookup::Lags => client.list_lag(),
                };
                if let Some(found) = find_within(window, &find).await? {
                    tracing::info!("the create had committed; using what it made");
                    return Ok(found);
                }
                tracing::info!("the create had not committed; sending it again");
            }
            Err(error) => return Err(error.into()),
        }
    }
}

/// The first and the longest pause between two looks of `find_within`.
const FIRST_LOOK_PAUSE: std::time::Duration = std::time::Duration::from_millis(250);
const LONGEST_LOOK_PAUSE: std::time::Duration = std::time::Duration::from_secs(5);

/// Looks with `find` until it finds the object or `window` has passed since the first look
/// (one look when `window` is zero), pausing longer each time: what an eventually consistent
/// list answers only proves absence once the list has had the time to converge.
pub(crate) async fn find_within<Find, Found>(
    window: std::time::Duration,
    find: &Find,
) -> Result<Option<serde_json::Value>, KindError>
where
    Find: Fn() -> Found,
    Found: std::future::Future<Output = Result<Option<serde_json::Value>, KindError>>,
{
    let deadline = tokio::time::Instant::now() + window;
    let mut pause = FIRST_LOOK_PAUSE;
    loop {
        if let Some(found) = find().await? {
            return Ok(Some(found));
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return Ok(None);
        }
        tracing::debug!("not listed yet; the list may lag the create: looking again");
        tokio::time::sleep(pause.min(deadline - now)).await;
        pause = (pause * 2).min(LONGEST_LOOK_PAUSE);
    }
}

/// Waits, before the create of an interrupted run is made again, until `find` shows what that
/// run made or `GcpClient::list_lag` has passed: an empty list right after the create is no
/// proof that it made nothing.
pub(crate) async fn wait_for_interrupted_create<Find, Found>(
    client: &GcpClient,
    context: &KindContext,
    find: &Find,
) -> Result<(), KindError>
where
    Find: Fn() -> Found,
    Found: std::future::Future<Output = Result<Option<serde_json::Value>, KindError>>,
{
    if find_within(client.list_lag(), find).await?.is_none() {
        tracing::info!(
            "{}: nothing listed of an interrupted create after {:?}; creating it",
            context.address,
            client.list_lag()
        );
    }
    Ok(())
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
    // An intent record's id is a placeholder: the name is known once the create is done.
    let name = prior
        .filter(|prior| prior.status == crate::state::ResourceStatus::Created)
        .map_or_else(Value::unknown, |prior| Value::string(&prior.id));
    Attributes::from([
        ("id".into(), name.clone()),
        ("name".into(), name),
        (
            "display_name".into(),
            config.get("display_name").cloned().unwrap_or_default(),
        ),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sensitive::{FingerprintKey, legacy_salted_fingerprint};

    #[test]
    fn only_a_refusal_of_the_create_post_itself_proves_nothing_was_created() {
        let answered = |method: &str, code: u16| {
            KindError::Gcp(GcpError::Api {
                method: method.into(),
                url: "https://monitoring.googleapis.com/v3/projects/p/alertPolicies".into(),
                code,
                status: String::new(),
                message: "refused".into(),
                details: Box::default(),
            })
        };
        for code in [400, 401, 403, 404, 412] {
            assert!(answered("POST", code).proves_nothing_created(), "{code}");
        }
        for code in [408, 409, 429, 500, 502, 503] {
            assert!(!answered("POST", code).proves_nothing_created(), "{code}");
        }
        // An adopting PATCH refused: the object exists.
        assert!(!answered("PATCH", 400).proves_nothing_created());
        let lost = KindError::Gcp(GcpError::OutcomeUnknown(Box::new(GcpError::Transport {
            method: "POST".into(),
            url: "u".into(),
            message: "reset".into(),
        })));
        assert!(!lost.proves_nothing_created());
        assert!(!KindError::Invalid("bad".into()).proves_nothing_created());
    }

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
