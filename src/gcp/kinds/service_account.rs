//! The `service_account` kind: an IAM v1 service account. Its email is known at plan time
//! (`{account_id}@{project}.iam.gserviceaccount.com`), so grants to it plan without unknowns.
//! A create returns only once the account is readable (IAM is eventually consistent: the
//! Terraform provider polls the same way); policies naming it retry while IAM still refuses
//! the new member (`iam_policy::modify_policy`).

use super::{
    Created, FieldSpec, FieldType, Kind, KindContext, KindError, Lookup, create_checked,
    delete_if_exists, get_if_exists, string_attribute,
};
use crate::gcp::{GcpClient, Service};
use crate::state::StateResource;
use crate::value::{Attributes, Value};
use async_trait::async_trait;
use reqwest::Method;
use serde_json::json;

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
const READABLE_WITHIN: std::time::Duration = std::time::Duration::from_secs(90);

impl ServiceAccountKind {
    /// Polls a just-created account until a GET finds it.
    async fn wait_until_readable(client: &GcpClient, id: &str) -> Result<(), KindError> {
        let started = std::time::Instant::now();
        let mut attempt = 0;
        loop {
            attempt += 1;
            if get_if_exists(client, Service::Iam, &format!("v1/{id}"))
                .await?
                .is_some()
            {
                return Ok(());
            }
            if started.elapsed() >= READABLE_WITHIN {
                return Err(crate::gcp::GcpError::Timeout {
                    what: format!("{id}: created, but not readable"),
                    seconds: READABLE_WITHIN.as_secs(),
                }
                .into());
            }
            tokio::time::sleep(client.retry_policy().delay(attempt)).await;
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
        _prior: Option<&StateResource>,
    ) -> Result<Option<Attributes>, KindError> {
        let live = match client
            .call(Method::GET, Service::Iam, &format!("v1/{id}"), &[], None)
            .await
        {
            Ok(live) => live,
            Err(error) if error.is_not_found() => return Ok(None),
            Err(error) => return Err(error.into()),
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
        // Looked up only after this run's own create may have committed: an account that is
        // there now, with the display name and description just sent, is that create's.
        let find = || async {
            let found = get_if_exists(client, Service::Iam, &format!("v1/{id}")).await?;
            // Google leaves empty fields out of its answers: missing reads as "".
            let text = |json: &serde_json::Value, field: &str| {
                json[field].as_str().unwrap_or_default().to_string()
            };
            Ok(found.filter(|live| {
                ["displayName", "description"]
                    .iter()
                    .all(|field| text(live, field) == text(&body["serviceAccount"], field))
            }))
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
        let live = match created {
            Ok(live) => live,
            Err(KindError::Gcp(error)) if error.code() == Some(409) => {
                // Service accounts carry no labels: nothing says which state made this one, so
                // it is never adopted here (an interrupted create is found by its intent record).
                let id = self.resource_id(context, config).unwrap_or_default();
                return Err(KindError::Conflict {
                    message: format!(
                        "{id} already exists and is not in this state (service accounts carry no ownership labels): not adopted"
                    ),
                    hint: format!(
                        "if this environment should manage it: `infra import --env {} '{}' {id}`; otherwise change account_id",
                        context.env_name, context.address
                    ),
                });
            }
            Err(error) => return Err(error),
        };
        Self::wait_until_readable(client, &id).await?;
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
