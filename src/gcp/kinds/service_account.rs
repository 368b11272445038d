//! The `service_account` kind: an IAM v1 service account. Its email is known at plan time
//! (`{account_id}@{project}.iam.gserviceaccount.com`), so grants to it plan without unknowns.
//! IAM reads are eventually consistent: right after its create a GET of the account may answer
//! 403 PERMISSION_DENIED or 404, so a create returns only once the account has been read back
//! several times in a row (the Terraform provider polls the same way, tolerating both). A 409
//! after this create's own answer was lost is recognised as that create's account when it is
//! (see `create`); policies naming it retry while IAM still refuses the new member
//! (`iam_policy::modify_policy`).

use super::{
    Created, FieldSpec, FieldType, Kind, KindContext, KindError, Lookup, create_checked,
    delete_if_exists, string_attribute,
};
use crate::gcp::{GcpClient, GcpError, Service};
use crate::state::{ResourceStatus, StateResource};
use crate::value::{Attributes, Value};
use async_trait::async_trait;
use reqwest::Method;
use serde_json::json;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// IAM service accounts (`projects/{project}/serviceAccounts/{email}`).
pub struct ServiceAccountKind;

static FIELDS: [FieldSpec; 4] = [
    FieldSpec::optional("account_id", FieldType::String)
        .required()
        .force_new(),
    FieldSpec::optional("project", FieldType::String).force_new(),
    FieldSpec::optional("display_name", FieldType::String),
    FieldSpec::optional("description", FieldType::String),
];

/// How long a new account may stay unreadable before the create fails.
const READABLE_WITHIN: Duration = Duration::from_secs(90);

/// How many good reads in a row prove a new account readable: one good read can come from a
/// replica that has it while the next comes from one that does not yet.
const GOOD_READS_IN_A_ROW: u32 = 3;

/// Returns true for the 403 IAM answers to a GET of a service account it does not know (yet):
/// "Permission 'iam.serviceAccounts.get' denied on resource (or it may not exist)" — the
/// provider's `IsForbiddenIamServiceAccountRetryableError`.
fn is_unknown_account(error: &GcpError) -> bool {
    match error {
        GcpError::Api {
            code: 403, message, ..
        } => message.contains("iam.serviceAccounts"),
        GcpError::OutcomeUnknown(inner) => is_unknown_account(inner),
        _ => false,
    }
}

/// Reads an account: `None` while IAM answers 404 or its unknown-account 403.
async fn get_if_known(
    client: &GcpClient,
    id: &str,
) -> Result<Option<serde_json::Value>, KindError> {
    match client
        .call(Method::GET, Service::Iam, &format!("v1/{id}"), &[], None)
        .await
    {
        Ok(live) => Ok(Some(live)),
        Err(error) if error.is_not_found() || is_unknown_account(&error) => Ok(None),
        Err(error) => Err(error.into()),
    }
}

impl ServiceAccountKind {
    /// Polls a just-created account until GETs find it `GOOD_READS_IN_A_ROW` times in a row,
    /// tolerating 404 and IAM's unknown-account 403 meanwhile; returns the last read.
    async fn wait_until_readable(
        client: &GcpClient,
        id: &str,
    ) -> Result<serde_json::Value, KindError> {
        let retry = client.retry_policy();
        let started = Instant::now();
        let mut failed_reads = 0;
        let mut good_reads = 0;
        loop {
            match get_if_known(client, id).await? {
                Some(live) => {
                    good_reads += 1;
                    if good_reads >= GOOD_READS_IN_A_ROW {
                        return Ok(live);
                    }
                }
                None => {
                    good_reads = 0;
                    failed_reads += 1;
                }
            }
            if started.elapsed() >= READABLE_WITHIN {
                return Err(GcpError::Timeout {
                    what: format!("{id}: created, but not readable {GOOD_READS_IN_A_ROW} times in a row (IAM answered 403 or 404)"),
                    seconds: READABLE_WITHIN.as_secs(),
                }
                .into());
            }
            let delay = if good_reads > 0 {
                retry.initial_delay
            } else {
                retry.delay(failed_reads)
            };
            tokio::time::sleep(delay).await;
        }
    }

    /// Returns true when a live account has the display name and description a create sent.
    fn matches_sent(live: &serde_json::Value, sent: &serde_json::Value) -> bool {
        // Google leaves empty fields out of its answers: missing reads as "".
        let text = |json: &serde_json::Value, field: &str| {
            json[field].as_str().unwrap_or_default().to_string()
        };
        ["displayName", "description"]
            .iter()
            .all(|field| text(live, field) == text(sent, field))
    }

    /// Refuses an existing account at the id a create wanted, naming how to take it over.
    fn not_ours(context: &KindContext, id: &str, why: &str) -> KindError {
        KindError::Conflict {
            message: format!(
                "{id} already exists and {why} (service accounts carry no ownership labels): not adopted"
            ),
            hint: format!(
                "if this environment should manage it: `infra import --env {} '{}' {id}`; otherwise change account_id",
                context.env_name, context.address
            ),
        }
    }

    fn project(context: &KindContext, config: &Attributes) -> String {
        string_attribute(config, "project")
            .unwrap_or(&context.project)
            .to_string()
    }

    fn email(context: &KindContext, config: &Attributes) -> Option<String> {
        let account_id = string_attribute(config, "account_id")?;
        Some(format!(
            "{account_id}@{}.iam.gserviceaccount.com",
            Self::project(context, config)
        ))
    }

    fn body(config: &Attributes) -> serde_json::Value {
        json!({
            "displayName": string_attribute(config, "display_name").unwrap_or_default(),
            "description": string_attribute(config, "description").unwrap_or_default(),
        })
    }
}

#[async_trait]
impl Kind for ServiceAccountKind {
    fn name(&self) -> &'static str {
        "service_account"
    }

    fn fields(&self) -> &'static [FieldSpec] {
        &FIELDS
    }

    fn check(&self, config: &Attributes) -> Vec<String> {
        let mut problems = Vec::new();
        if let Some(Value::String(account_id)) = config.get("account_id") {
            let valid = (6..=30).contains(&account_id.len())
                && account_id.starts_with(|c: char| c.is_ascii_lowercase())
                && !account_id.ends_with('-')
                && account_id
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
            if !valid {
                problems.push(format!("account_id {account_id:?}: 6 to 30 lowercase letters, digits or `-`, starting with a letter"));
            }
        }
        if let Some(Value::String(name)) = config.get("display_name")
            && name.len() > 100
        {
            problems.push("display_name: at most 100 bytes".into());
        }
        if let Some(Value::String(text)) = config.get("description")
            && text.len() > 256
        {
            problems.push("description: at most 256 bytes".into());
        }
        problems
    }

    fn resource_id(&self, context: &KindContext, config: &Attributes) -> Option<String> {
        let email = Self::email(context, config)?;
        Some(format!(
            "projects/{}/serviceAccounts/{email}",
            Self::project(context, config)
        ))
    }

    fn desired(
        &self,
        context: &KindContext,
        config: &Attributes,
        _prior: Option<&StateResource>,
    ) -> Result<Attributes, KindError> {
        Ok(Attributes::from([
            (
                "account_id".into(),
                config.get("account_id").cloned().unwrap_or_default(),
            ),
            (
                "project".into(),
                Value::string(Self::project(context, config)),
            ),
            (
                "display_name".into(),
                Value::string(string_attribute(config, "display_name").unwrap_or_default()),
            ),
            (
                "description".into(),
                Value::string(string_attribute(config, "description").unwrap_or_default()),
            ),
        ]))
    }

    fn exported(
        &self,
        context: &KindContext,
        config: &Attributes,
        prior: Option<&StateResource>,
        changing: bool,
    ) -> Attributes {
        let mut exported = self.desired(context, config, prior).unwrap_or_default();
        let email = Self::email(context, config);
        exported.insert(
            "email".into(),
            email.clone().map_or_else(Value::unknown, Value::String),
        );
        exported.insert(
            "member".into(),
            email.map_or_else(Value::unknown, |email| {
                Value::String(format!("serviceAccount:{email}"))
            }),
        );
        let id = self
            .resource_id(context, config)
            .map_or_else(Value::unknown, Value::String);
        exported.insert("name".into(), id.clone());
        exported.insert("id".into(), id);
        let unique_id = prior
            .filter(|_| !changing)
            .and_then(|prior| prior.attributes.get("unique_id"))
            .cloned();
        exported.insert("unique_id".into(), unique_id.unwrap_or_else(Value::unknown));
        exported
    }

    fn update_mask(&self, changed_fields: &[String]) -> Vec<String> {
        let mut mask = Vec::new();
        if changed_fields.iter().any(|field| field == "display_name") {
            mask.push("displayName".to_string());
        }
        if changed_fields.iter().any(|field| field == "description") {
            mask.push("description".to_string());
        }
        mask
    }

    async fn read(
        &self,
        client: &GcpClient,
        id: &str,
        prior: Option<&StateResource>,
    ) -> Result<Option<Attributes>, KindError> {
        let creating = prior.is_some_and(|prior| prior.status == ResourceStatus::Creating);
        let started = Instant::now();
        let mut attempt = 0;
        let live = loop {
            attempt += 1;
            match client
                .call(Method::GET, Service::Iam, &format!("v1/{id}"), &[], None)
                .await
            {
                Ok(live) => break live,
                Err(error) if error.is_not_found() => return Ok(None),
                // An interrupted create's account may be too new for IAM to know: its 403
                // means "not yet", not "forbidden", for as long as a create would wait.
                Err(error)
                    if creating
                        && is_unknown_account(&error)
                        && started.elapsed() < READABLE_WITHIN =>
                {
                    tokio::time::sleep(client.retry_policy().delay(attempt)).await;
                }
                Err(error) => return Err(error.into()),
            }
        };
        let text = |field: &str| live[field].as_str().unwrap_or_default().to_string();
        let email = text("email");
        Ok(Some(Attributes::from([
            (
                "account_id".into(),
                Value::string(email.split('@').next().unwrap_or_default()),
            ),
            ("project".into(), Value::string(text("projectId"))),
            ("display_name".into(), Value::string(text("displayName"))),
            ("description".into(), Value::string(text("description"))),
            ("email".into(), Value::string(email)),
            ("unique_id".into(), Value::string(text("uniqueId"))),
        ])))
    }

    async fn create(
        &self,
        client: &GcpClient,
        context: &KindContext,
        config: &Attributes,
    ) -> Result<Created, KindError> {
        let project = Self::project(context, config);
        let account_id = string_attribute(config, "account_id").unwrap_or_default();
        let body = json!({"accountId": account_id, "serviceAccount": Self::body(config)});
        let id = self
            .resource_id(context, config)
            .ok_or_else(|| KindError::Invalid("account_id is required".into()))?;
        // Looked up only after this run's own create may have committed (its answer was
        // lost): an account that is there now, with the display name and description just
        // sent, is that create's. IAM may not know it yet (403 or 404): then the create is
        // sent again, and its 409 is judged below.
        let answer_lost = AtomicBool::new(false);
        let find = || async {
            answer_lost.store(true, Ordering::SeqCst);
            let found = get_if_known(client, &id).await?;
            Ok(found.filter(|live| Self::matches_sent(live, &body["serviceAccount"])))
        };
        let created = create_checked(
            client,
            Service::Iam,
            &format!("v1/projects/{project}/serviceAccounts"),
            &[],
            &body,
            // A create repeated under the same account id is refused (409) and adopted.
            Lookup::Settles,
            find,
        )
        .await;
        let recognised = match created {
            Ok(_) => false,
            // A 409 right after this create's own answer was lost: the earlier attempt most
            // likely committed. Service accounts carry no ownership labels, so what makes the
            // account ours is what makes an intent record's object ours on the next run (the
            // record naming this id was durable before the first attempt): it is at this id,
            // and it says what this run sent. Checked below once IAM lets it be read.
            Err(KindError::Gcp(error))
                if error.code() == Some(409) && answer_lost.load(Ordering::SeqCst) =>
            {
                tracing::info!(
                    "{id}: 409 after a lost create answer; checking whether it is that create's account"
                );
                true
            }
            Err(KindError::Gcp(error)) if error.code() == Some(409) => {
                // Nothing says which state made this one, so it is never adopted here (an
                // interrupted create is found by its intent record).
                return Err(Self::not_ours(context, &id, "is not in this state"));
            }
            Err(error) => return Err(error),
        };
        let live = Self::wait_until_readable(client, &id).await?;
        if recognised && !Self::matches_sent(&live, &body["serviceAccount"]) {
            return Err(Self::not_ours(
                context,
                &id,
                "was made by someone else meanwhile (its display name or description differ from what this run sent)",
            ));
        }
        let mut attributes = self.desired(context, config, None)?;
        attributes.insert(
            "email".into(),
            Value::string(live["email"].as_str().unwrap_or_default()),
        );
        attributes.insert(
            "unique_id".into(),
            Value::string(live["uniqueId"].as_str().unwrap_or_default()),
        );
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
        let mask = self.update_mask(changed_fields);
        if !mask.is_empty() {
            let body = json!({"serviceAccount": Self::body(config), "updateMask": mask.join(",")});
            client
                .call(
                    Method::PATCH,
                    Service::Iam,
                    &format!("v1/{}", prior.id),
                    &[],
                    Some(&body),
                )
                .await?;
        }
        let mut attributes = self.desired(context, config, Some(prior))?;
        for carried in ["email", "unique_id"] {
            if let Some(value) = prior.attributes.get(carried) {
                attributes.insert(carried.into(), value.clone());
            }
        }
        Ok(attributes)
    }

    async fn delete(&self, client: &GcpClient, prior: &StateResource) -> Result<(), KindError> {
        delete_if_exists(client, Service::Iam, &format!("v1/{}", prior.id), &[]).await
    }
}
