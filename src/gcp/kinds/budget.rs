//! The `budget` kind: a Cloud Billing budget (`billingAccounts/{id}/budgets/{id}`): an amount,
//! threshold rules on current or forecasted spend, a filter of projects (by number, as the API
//! wants them), and where notifications go. Updates send the mask of what changed with the
//! etag read just before; a change of billing account replaces the budget.
//!
//! Budgets carry no labels, so a budget's durable identity is a marker at the end of its
//! display name, ` [infra:KEY]` (a digest of environment, address and the state's lineage,
//! as labelled kinds carry both their key and the lineage): a create whose answer
//! was lost, or a run killed after the create, finds its budget by the marker and adopts it
//! instead of making a second one. Reads strip the marker, so plans compare the configured
//! display name.

use super::{
    Bound, Created, FieldSpec, FieldType, Kind, KindContext, KindError, Lookup,
    assigned_name_exports, create_checked, delete_if_exists, get_if_exists, string_attribute,
};
use crate::gcp::{GcpClient, Service};
use crate::state::StateResource;
use crate::value::{Attributes, Value};
use async_trait::async_trait;
use reqwest::Method;
use serde_json::{Value as Json, json};
use std::collections::BTreeMap;

/// Cloud Billing budgets.
pub struct BudgetKind;

/// The amount is `Money.units` (int64) and must be positive; `thresholdPercent` is a
/// non-negative double.
static BOUNDS: [Bound; 2] = [
    Bound::new(
        "amount",
        1,
        i64::MAX,
        "a budget's amount is a positive number of whole currency units",
    ),
    Bound::new(
        "threshold_rules[].percent",
        0,
        i64::MAX,
        "billingbudgets.v1 ThresholdRule.thresholdPercent is a non-negative number, 1.0 = 100%",
    ),
];

static FIELDS: [FieldSpec; 10] = [
    FieldSpec::optional("billing_account", FieldType::String)
        .required()
        .force_new(),
    FieldSpec::optional("display_name", FieldType::String).required(),
    FieldSpec::optional("amount", FieldType::Integer).required(),
    FieldSpec::optional("currency", FieldType::String),
    FieldSpec::optional("threshold_rules", FieldType::Any),
    FieldSpec::optional("projects", FieldType::StringList),
    FieldSpec::optional("calendar_period", FieldType::String),
    FieldSpec::optional("notification_channels", FieldType::StringList),
    FieldSpec::optional("pubsub_topic", FieldType::String),
    FieldSpec::optional("disable_default_iam_recipients", FieldType::Bool),
];

// No currency is assumed: a budget that sets none is sent without `currencyCode`, and Google
// fills in the billing account's ("`currency_code` is optional. If specified when creating a
// budget, it must match the currency of the billing account … The `currency_code` is provided
// on output", billingbudgets.v1 BudgetAmount.specifiedAmount). So the comparison leaves the
// currency out unless the configuration sets it: the server-filled value never shows as a
// change.

/// Google's limit on a budget's display name.
const MAX_DISPLAY_NAME_CHARS: usize = 60;

/// Returns the marker a budget's display name ends with: this resource's durable identity.
fn identity_marker(context: &KindContext) -> String {
    marker_of(
        &super::ownership::infra_key(context),
        &super::ownership::label_value(&context.lineage),
    )
}

/// Returns the identity marker of an `infra-key` in the state of `lineage` (its label value):
/// 8 hex digits of a digest of both. The lineage is in it because a budget carries nothing
/// else to tell whose it is: another state with the same environment name and address (or
/// this state recreated) marks its budgets apart, so neither adopts nor deletes the other's.
fn marker_of(key: &str, lineage: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = hex::encode(Sha256::digest(format!("{key}#{lineage}")));
    format!(" [infra:{}]", &digest[..8])
}

/// Returns a live display name without infra's identity marker.
fn strip_marker(display_name: &str) -> &str {
    match display_name.rfind(" [infra:") {
        Some(start) if display_name.ends_with(']') => &display_name[..start],
        _ => display_name,
    }
}

/// Adds what to do to Google's refusal of a budget whose currency is not its billing
/// account's (create) or its own (update).
fn explain_currency(error: KindError, account: &str) -> KindError {
    match &error {
        KindError::Gcp(gcp)
            if gcp.code() == Some(400)
                && gcp.to_string().to_ascii_lowercase().contains("currency") =>
        {
            KindError::Conflict {
                message: gcp.to_string(),
                hint: format!(
                    "leave `currency` out to budget in the billing account's currency, or set it to that currency: `gcloud billing accounts describe {account} --format='value(currencyCode)'`"
                ),
            }
        }
        _ => error,
    }
}

impl BudgetKind {
    fn threshold_rules(config: &Attributes) -> Value {
        let rules = match config.get("threshold_rules") {
            Some(Value::List(rules)) => rules.clone(),
            _ => Vec::new(),
        };
        Value::List(
            rules
                .iter()
                .map(|rule| {
                    let table = rule.as_map().cloned().unwrap_or_default();
                    let percent = match table.get("percent") {
                        Some(Value::Integer(whole)) => Value::Float(*whole as f64),
                        Some(other) => other.clone(),
                        None => Value::Null,
                    };
                    let basis = table
                        .get("basis")
                        .cloned()
                        .unwrap_or(Value::string("current"));
                    Value::Map(BTreeMap::from([
                        ("basis".into(), basis),
                        ("percent".into(), percent),
                    ]))
                })
                .collect(),
        )
    }

    fn body(desired: &Attributes, marker: &str) -> Json {
        let text = |field: &str| {
            desired
                .get(field)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let rules: Vec<Json> = match desired.get("threshold_rules") {
            Some(Value::List(rules)) => rules
                .iter()
                .map(|rule| {
                    let table = rule.as_map().cloned().unwrap_or_default();
                    let basis = match table.get("basis").and_then(Value::as_str) {
                        Some("forecasted") => "FORECASTED_SPEND",
                        _ => "CURRENT_SPEND",
                    };
                    json!({"thresholdPercent": table.get("percent").map(Value::to_json), "spendBasis": basis})
                })
                .collect(),
            _ => Vec::new(),
        };
        let mut notifications = json!({
            "monitoringNotificationChannels": desired.get("notification_channels").map(Value::to_json),
            "disableDefaultIamRecipients": desired.get("disable_default_iam_recipients").map(Value::to_json),
        });
        if let Some(topic) = desired.get("pubsub_topic").and_then(Value::as_str) {
            notifications["pubsubTopic"] = json!(topic);
            notifications["schemaVersion"] = json!("1.0");
        }
        let mut money = json!({"units": text("amount")});
        if !text("currency").is_empty() {
            money["currencyCode"] = json!(text("currency"));
        }
        json!({
            "displayName": format!("{}{marker}", text("display_name")),
            "amount": {"specifiedAmount": money},
            "thresholdRules": rules,
            "budgetFilter": {
                "projects": desired.get("projects").map(Value::to_json),
                "calendarPeriod": text("calendar_period"),
                "creditTypesTreatment": "INCLUDE_ALL_CREDITS",
            },
            "notificationsRule": notifications,
        })
    }

    /// Returns the comparable attributes of a live budget, its channel names spelled as
    /// `known_channels` (the configuration's or state's) spell them.
    fn normalize(live: &Json, known_channels: &[Value]) -> Attributes {
        let money = &live["amount"]["specifiedAmount"];
        let units = money["units"]
            .as_str()
            .map(String::from)
            .or_else(|| money["units"].as_i64().map(|units| units.to_string()))
            .unwrap_or_default();
        let rules: Vec<Value> = live["thresholdRules"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|rule| {
                let basis = if rule["spendBasis"] == "FORECASTED_SPEND" {
                    "forecasted"
                } else {
                    "current"
                };
                Value::Map(BTreeMap::from([
                    ("basis".into(), Value::string(basis)),
                    (
                        "percent".into(),
                        Value::Float(rule["thresholdPercent"].as_f64().unwrap_or(0.0)),
                    ),
                ]))
            })
            .collect();
        let mut projects: Vec<Value> = live["budgetFilter"]["projects"]
            .as_array()
            .into_iter()
            .flatten()
            .map(Value::from_json)
            .collect();
        projects.sort_by_key(ToString::to_string);
        let mut attributes = Attributes::from([
            (
                "display_name".into(),
                Value::string(strip_marker(
                    live["displayName"].as_str().unwrap_or_default(),
                )),
            ),
            ("amount".into(), Value::string(units)),
            ("currency".into(), Value::from_json(&money["currencyCode"])),
            ("threshold_rules".into(), Value::List(rules)),
            ("projects".into(), Value::List(projects)),
            (
                "calendar_period".into(),
                Value::string(
                    live["budgetFilter"]["calendarPeriod"]
                        .as_str()
                        .unwrap_or("MONTH"),
                ),
            ),
            (
                "notification_channels".into(),
                // Budgets live in no project: a channel named in a form the configuration does
                // not know stays as answered.
                super::channel_names::spelled_as_configured(
                    &Value::from_json(
                        live.pointer("/notificationsRule/monitoringNotificationChannels")
                            .unwrap_or(&json!([])),
                    ),
                    known_channels,
                    None,
                ),
            ),
            (
                "disable_default_iam_recipients".into(),
                Value::Bool(
                    live.pointer("/notificationsRule/disableDefaultIamRecipients")
                        .and_then(Json::as_bool)
                        .unwrap_or(false),
                ),
            ),
            ("name".into(), Value::from_json(&live["name"])),
        ]);
        if let Some(topic) = live.pointer("/notificationsRule/pubsubTopic") {
            attributes.insert("pubsub_topic".into(), Value::from_json(topic));
        }
        if let Some(account) = live["name"]
            .as_str()
            .and_then(|name| name.split('/').nth(1))
        {
            attributes.insert("billing_account".into(), Value::string(account));
        }
        attributes
    }

    /// Finds the budget of the billing account whose display name ends with `marker`,
    /// paging through the account's budgets.
    async fn find_by_marker(
        client: &GcpClient,
        collection: &str,
        marker: &str,
    ) -> Result<Option<Json>, KindError> {
        let mut page_token = String::new();
        loop {
            let mut query = vec![("pageSize", "100".to_string())];
            if !page_token.is_empty() {
                query.push(("pageToken", page_token.clone()));
            }
            let page = client
                .call(
                    Method::GET,
                    Service::BillingBudgets,
                    collection,
                    &query,
                    None,
                )
                .await?;
            let found = page["budgets"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|budget| {
                    budget["displayName"]
                        .as_str()
                        .is_some_and(|name| name.ends_with(marker))
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

    async fn etag(client: &GcpClient, id: &str) -> Result<Json, KindError> {
        let current = client
            .call(
                Method::GET,
                Service::BillingBudgets,
                &format!("v1/{id}"),
                &[],
                None,
            )
            .await?;
        Ok(current["etag"].clone())
    }

    /// Creates the budget `body` describes, or adopts the one an interrupted create made (found
    /// by `find_ours`, its identity marker), by a PATCH of `body`.
    async fn create_or_adopt_budget<Find, Found>(
        client: &GcpClient,
        collection: &str,
        body: &Json,
        find_ours: Find,
    ) -> Result<Json, KindError>
    where
        Find: Fn() -> Found,
        Found: std::future::Future<Output = Result<Option<Json>, KindError>>,
    {
        match find_ours().await? {
            Some(found) => {
                let name = found["name"].as_str().unwrap_or_default().to_string();
                tracing::info!("adopting {name}, created by an interrupted run");
                let mut patch = body.clone();
                patch["etag"] = found["etag"].clone();
                Ok(client
                    .call(
                        Method::PATCH,
                        Service::BillingBudgets,
                        &format!("v1/{name}"),
                        &[(
                            "updateMask",
                            "displayName,amount,thresholdRules,budgetFilter,notificationsRule"
                                .to_string(),
                        )],
                        Some(&patch),
                    )
                    .await?)
            }
            None => {
                create_checked(
                    client,
                    Service::BillingBudgets,
                    collection,
                    &[],
                    body,
                    // Budgets are found by listing them, and lists lag a create.
                    Lookup::Lags,
                    find_ours,
                )
                .await
            }
        }
    }
}

#[async_trait]
impl Kind for BudgetKind {
    fn name(&self) -> &'static str {
        "budget"
    }

    fn fields(&self) -> &'static [FieldSpec] {
        &FIELDS
    }

    fn bounds(&self) -> &'static [Bound] {
        &BOUNDS
    }

    fn check(&self, config: &Attributes) -> Vec<String> {
        let mut problems = Vec::new();
        if let Some(Value::String(name)) = config.get("display_name") {
            let room = MAX_DISPLAY_NAME_CHARS - " [infra:12345678]".len();
            if name.chars().count() > room {
                problems.push(format!(
                    "display_name {name:?} has {} characters; a budget's has at most {room} here (Google allows {MAX_DISPLAY_NAME_CHARS}, and infra adds its 17-character identity marker)\n  hint: shorten it",
                    name.chars().count()
                ));
            }
        }
        if let Some(Value::String(account)) = config.get("billing_account") {
            let parts: Vec<&str> = account.split('-').collect();
            let valid = parts.len() == 3
                && parts.iter().all(|part| {
                    part.len() == 6
                        && part
                            .chars()
                            .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase())
                });
            if !valid {
                problems.push(format!(
                    "billing_account {account:?} is not a billing account id (XXXXXX-XXXXXX-XXXXXX)\n  hint: `gcloud billing accounts list`; pass it with INFRA_VAR_billing_account"
                ));
            }
        }
        for project in config
            .get("projects")
            .and_then(|projects| match projects {
                Value::List(items) => Some(items),
                _ => None,
            })
            .into_iter()
            .flatten()
        {
            if let Value::String(project) = project
                && !project.strip_prefix("projects/").is_some_and(|number| {
                    !number.is_empty() && number.chars().all(|c| c.is_ascii_digit())
                })
            {
                problems.push(format!(
                        "projects: {project:?} — budgets filter projects by number (projects/123456789012)\n  hint: `gcloud projects describe PROJECT --format='value(projectNumber)'`; set project_number"
                    ));
            }
        }
        if let Some(Value::String(currency)) = config.get("currency")
            && (currency.len() != 3 || !currency.chars().all(|c| c.is_ascii_uppercase()))
        {
            problems.push(format!(
                "currency {currency:?} is not an ISO 4217 code (three capital letters, like EUR)\n  hint: leave it out to budget in the billing account's currency"
            ));
        }
        match config.get("threshold_rules") {
            None | Some(Value::Marker(_)) => {}
            Some(Value::List(rules)) => {
                for rule in rules {
                    let valid = rule.as_map().is_some_and(|table| {
                        matches!(
                            table.get("percent"),
                            Some(Value::Float(_) | Value::Integer(_))
                        ) && matches!(
                            table.get("basis").and_then(Value::as_str),
                            None | Some("current" | "forecasted")
                        ) && table.keys().all(|key| key == "percent" || key == "basis")
                    });
                    if !valid {
                        problems.push("threshold_rules: entries like { percent = 0.9, basis = \"forecasted\" } (basis: current or forecasted)".into());
                    }
                }
            }
            Some(_) => problems.push("threshold_rules: a list of { percent = 0.5 }".into()),
        }
        problems
    }

    fn resource_id(&self, _context: &KindContext, _config: &Attributes) -> Option<String> {
        None
    }

    fn pending_id(&self, context: &KindContext, config: &Attributes) -> Option<String> {
        let account = string_attribute(config, "billing_account").unwrap_or_default();
        let collection = format!("billingAccounts/{account}/budgets");
        Some(super::ownership::pending_id(&collection, context))
    }

    fn desired(
        &self,
        _context: &KindContext,
        config: &Attributes,
        _prior: Option<&StateResource>,
    ) -> Result<Attributes, KindError> {
        let mut projects = match config.get("projects") {
            Some(Value::List(projects)) => projects.clone(),
            _ => Vec::new(),
        };
        projects.sort_by_key(ToString::to_string);
        let amount = match config.get("amount") {
            Some(Value::Integer(units)) => Value::string(units.to_string()),
            Some(other) => other.clone(),
            None => Value::Null,
        };
        let mut desired = Attributes::from([
            (
                "billing_account".into(),
                config.get("billing_account").cloned().unwrap_or_default(),
            ),
            (
                "display_name".into(),
                config.get("display_name").cloned().unwrap_or_default(),
            ),
            ("amount".into(), amount),
            ("threshold_rules".into(), Self::threshold_rules(config)),
            ("projects".into(), Value::List(projects)),
            (
                "calendar_period".into(),
                config
                    .get("calendar_period")
                    .cloned()
                    .unwrap_or(Value::string("MONTH")),
            ),
            (
                "notification_channels".into(),
                config
                    .get("notification_channels")
                    .cloned()
                    .unwrap_or(Value::List(vec![])),
            ),
            (
                "disable_default_iam_recipients".into(),
                config
                    .get("disable_default_iam_recipients")
                    .cloned()
                    .unwrap_or(Value::Bool(false)),
            ),
        ]);
        if let Some(topic) = config.get("pubsub_topic") {
            desired.insert("pubsub_topic".into(), topic.clone());
        }
        if let Some(currency) = config.get("currency") {
            desired.insert("currency".into(), currency.clone());
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

    fn update_mask(&self, changed_fields: &[String]) -> Vec<String> {
        let mut mask = std::collections::BTreeSet::new();
        for field in changed_fields {
            mask.insert(match crate::plan::diff::top_field(field) {
                "display_name" => "displayName",
                "amount" | "currency" => "amount",
                "threshold_rules" => "thresholdRules",
                "projects" | "calendar_period" => "budgetFilter",
                "notification_channels" | "pubsub_topic" | "disable_default_iam_recipients" => {
                    "notificationsRule"
                }
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
        let known = super::channel_names::known_names(
            prior.and_then(|prior| prior.attributes.get("notification_channels")),
        );
        Ok(
            get_if_exists(client, Service::BillingBudgets, &format!("v1/{id}"))
                .await?
                .map(|live| Self::normalize(&live, &known)),
        )
    }

    async fn create(
        &self,
        client: &GcpClient,
        context: &KindContext,
        config: &Attributes,
    ) -> Result<Created, KindError> {
        let desired = self.desired(context, config, None)?;
        let account = string_attribute(config, "billing_account").unwrap_or_default();
        let collection = format!("v1/billingAccounts/{account}/budgets");
        let marker = identity_marker(context);
        let body = Self::body(&desired, &marker);
        let find_ours = || Self::find_by_marker(client, &collection, &marker);
        let live = Self::create_or_adopt_budget(client, &collection, &body, find_ours)
            .await
            .map_err(|error| explain_currency(error, account))?;
        let id = live["name"].as_str().unwrap_or_default().to_string();
        Ok(Created {
            id,
            attributes: Self::normalize(
                &live,
                &super::channel_names::known_names(desired.get("notification_channels")),
            ),
        })
    }

    async fn create_after_interruption(
        &self,
        client: &GcpClient,
        context: &KindContext,
        config: &Attributes,
    ) -> Result<Created, KindError> {
        let account = string_attribute(config, "billing_account").unwrap_or_default();
        let collection = format!("v1/billingAccounts/{account}/budgets");
        let marker = identity_marker(context);
        let find = || Self::find_by_marker(client, &collection, &marker);
        super::wait_for_interrupted_create(client, context, &find).await?;
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
        let desired = self.desired(context, config, Some(prior))?;
        let mask = self.update_mask(changed_fields);
        if mask.is_empty() {
            return Ok(prior.attributes.clone());
        }
        let mut body = Self::body(&desired, &identity_marker(context));
        let mut attempt = 0;
        loop {
            attempt += 1;
            body["etag"] = Self::etag(client, &prior.id).await?;
            match client
                .call(
                    Method::PATCH,
                    Service::BillingBudgets,
                    &format!("v1/{}", prior.id),
                    &[("updateMask", mask.join(","))],
                    Some(&body),
                )
                .await
            {
                Ok(live) => {
                    return Ok(Self::normalize(
                        &live,
                        &super::channel_names::known_names(desired.get("notification_channels")),
                    ));
                }
                // A repeat of a PATCH whose answer was lost carries a spent etag: read it again.
                Err(error) if error.is_concurrency_conflict() && attempt < 3 => {
                    tracing::debug!("budget changed since its etag was read: {error}");
                }
                Err(error) => {
                    let account = prior.id.split('/').nth(1).unwrap_or_default();
                    return Err(explain_currency(error.into(), account));
                }
            }
        }
    }

    async fn delete(&self, client: &GcpClient, prior: &StateResource) -> Result<(), KindError> {
        if let Some((collection, key, lineage)) = super::ownership::parse_pending_id(&prior.id) {
            // What an interrupted create may have made: found by its marker, which names this
            // state's lineage as well as the key, watched for in the lagging list.
            let collection = format!("v1/{collection}");
            let marker = marker_of(key, lineage);
            let find = || Self::find_by_marker(client, &collection, &marker);
            if let Some(found) = super::find_within(client.list_lag(), &find).await? {
                let name = found["name"].as_str().unwrap_or_default();
                tracing::info!("deleting {name}, made by an interrupted create");
                return delete_if_exists(
                    client,
                    Service::BillingBudgets,
                    &format!("v1/{name}"),
                    &[],
                )
                .await;
            }
            return Ok(());
        }
        delete_if_exists(
            client,
            Service::BillingBudgets,
            &format!("v1/{}", prior.id),
            &[],
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_amount_change_is_the_amount_mask_alone() {
        assert_eq!(
            BudgetKind.update_mask(&["amount".into()]),
            vec!["amount".to_string()]
        );
        assert_eq!(
            BudgetKind.update_mask(&["threshold_rules[2].percent".into(), "projects[0]".into()]),
            vec!["budgetFilter".to_string(), "thresholdRules".to_string()]
        );
    }

    #[test]
    fn the_identity_marker_is_stripped_on_read() {
        assert_eq!(
            strip_marker("Bayit+ staging monthly [infra:0a1b2c3d]"),
            "Bayit+ staging monthly"
        );
        assert_eq!(strip_marker("Made by hand"), "Made by hand");
        let live =
            json!({"displayName": "Cap [infra:0a1b2c3d]", "name": "billingAccounts/A/budgets/b"});
        assert_eq!(
            BudgetKind::normalize(&live, &[])["display_name"],
            Value::string("Cap")
        );
    }

    #[test]
    fn the_identity_marker_names_the_lineage_and_a_pending_delete_looks_for_this_states() {
        let ours = context();
        let other_state = KindContext {
            lineage: "another".into(),
            ..context()
        };
        // Same environment name and address, another state: another budget.
        assert_ne!(identity_marker(&ours), identity_marker(&other_state));
        assert_eq!(identity_marker(&ours).len(), " [infra:12345678]".len());
        // The pending record's delete looks for exactly the marker the create wrote.
        let id = super::super::ownership::pending_id("billingAccounts/A/budgets", &ours);
        let (_, key, lineage) = super::super::ownership::parse_pending_id(&id).expect("pending");
        assert_eq!(marker_of(key, lineage), identity_marker(&ours));
        assert_ne!(marker_of(key, lineage), identity_marker(&other_state));
    }

    fn context() -> KindContext {
        KindContext {
            address: "budget.monthly".into(),
            project: "p".into(),
            region: "r".into(),
            env_name: "test".into(),
            lineage: "l".into(),
            fingerprint_key: None,
            legacy_salt: None,
        }
    }

    fn config(extra: &[(&str, Value)]) -> Attributes {
        let mut config = Attributes::from([
            (
                "billing_account".into(),
                Value::string("012345-6789AB-CDEF01"),
            ),
            ("display_name".into(), Value::string("Monthly")),
            ("amount".into(), Value::Integer(500)),
        ]);
        for (field, value) in extra {
            config.insert(field.to_string(), value.clone());
        }
        config
    }

    #[test]
    fn an_unset_currency_is_left_to_the_billing_account_and_not_compared() {
        let desired = BudgetKind
            .desired(&context(), &config(&[]), None)
            .expect("desired");
        assert!(!desired.contains_key("currency"));
        let body = BudgetKind::body(&desired, " [infra:x]");
        assert_eq!(body["amount"]["specifiedAmount"], json!({"units": "500"}));
        // The server fills the account's currency in: no difference over the keys desired sets.
        let live = json!({"name": "billingAccounts/A/budgets/b", "displayName": "Monthly [infra:x]", "amount": {"specifiedAmount": {"units": "500", "currencyCode": "EUR"}}});
        let changed =
            crate::plan::diff::changed_paths(&desired, &BudgetKind::normalize(&live, &[]));
        assert!(
            !changed.iter().any(|path| path.starts_with("currency")),
            "{changed:?}"
        );
        let euros = BudgetKind
            .desired(
                &context(),
                &config(&[("currency", Value::string("EUR"))]),
                None,
            )
            .expect("desired");
        assert_eq!(
            BudgetKind::body(&euros, "")["amount"]["specifiedAmount"]["currencyCode"],
            "EUR"
        );
    }

    #[test]
    fn a_channel_answered_by_project_number_is_the_configured_channel() {
        let configured = "projects/proj-ops/notificationChannels/42";
        let live = json!({"name": "billingAccounts/A/budgets/b", "notificationsRule": {"monitoringNotificationChannels": ["projects/123456789012/notificationChannels/42"]}});
        assert_eq!(
            BudgetKind::normalize(&live, &[Value::string(configured)])["notification_channels"],
            Value::List(vec![Value::string(configured)])
        );
    }

    #[test]
    fn projects_must_be_numbers() {
        let config = Attributes::from([(
            "projects".into(),
            Value::List(vec![Value::string("projects/bytereview-prod")]),
        )]);
        assert_eq!(BudgetKind.check(&config).len(), 1);
    }
}
