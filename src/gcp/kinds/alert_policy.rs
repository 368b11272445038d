//! The `alert_policy` kind: a Cloud Monitoring v3 alert policy. Conditions, documentation and
//! the alert strategy are written in the API's own JSON shape (camelCase, as in Google's
//! reference); the server's condition names are dropped before comparing, and conditions and
//! the alert strategy, which Google fills in, are compared over the keys the configuration sets
//! (`server_filled.rs`). Updates always send an `updateMask` of what changed — without one
//! Google replaces the whole policy.

use super::server_filled::trim_server_filled;
use super::{
    Created, FieldSpec, FieldType, Kind, KindContext, KindError, assigned_name_exports,
    create_or_adopt, delete_if_exists, get_if_exists, keyed_user_labels, string_attribute,
};
use crate::gcp::{GcpClient, Service};
use crate::state::StateResource;
use crate::value::{Attributes, Value};
use async_trait::async_trait;
use reqwest::Method;
use serde_json::Value as Json;
use std::collections::BTreeMap;

/// Cloud Monitoring alert policies (`projects/{project}/alertPolicies/{id}`).
pub struct AlertPolicyKind;

static FIELDS: [FieldSpec; 10] = [
    FieldSpec::optional("display_name", FieldType::String).required(),
    FieldSpec::optional("conditions", FieldType::Any).required(),
    FieldSpec::optional("combiner", FieldType::String),
    FieldSpec::optional("notification_channels", FieldType::StringList),
    FieldSpec::optional("severity", FieldType::String),
    FieldSpec::optional("documentation", FieldType::Any),
    FieldSpec::optional("alert_strategy", FieldType::Any),
    FieldSpec::optional("enabled", FieldType::Bool),
    FieldSpec::optional("user_labels", FieldType::StringMap),
    FieldSpec::optional("project", FieldType::String).force_new(),
];

/// The attributes Google fills in beyond what was sent: compared over the configured keys.
const SERVER_FILLED: [&str; 2] = ["conditions", "alert_strategy"];

/// Config field to API field, for bodies and update masks.
const API_FIELDS: [(&str, &str); 9] = [
    ("display_name", "displayName"),
    ("conditions", "conditions"),
    ("combiner", "combiner"),
    ("notification_channels", "notificationChannels"),
    ("severity", "severity"),
    ("documentation", "documentation"),
    ("alert_strategy", "alertStrategy"),
    ("enabled", "enabled"),
    ("user_labels", "userLabels"),
];

impl AlertPolicyKind {
    fn project(context: &KindContext, config: &Attributes) -> String {
        string_attribute(config, "project")
            .unwrap_or(&context.project)
            .to_string()
    }

    fn without_condition_names(conditions: &Value) -> Value {
        match conditions {
            Value::List(items) => Value::List(
                items
                    .iter()
                    .map(|item| match item {
                        Value::Map(fields) => Value::Map(
                            fields
                                .iter()
                                .filter(|(key, _)| key.as_str() != "name")
                                .map(|(k, v)| (k.clone(), v.clone()))
                                .collect(),
                        ),
                        other => other.clone(),
                    })
                    .collect(),
            ),
            other => other.clone(),
        }
    }

    fn body(desired: &Attributes) -> Json {
        let mut body = serde_json::Map::new();
        for (field, api) in API_FIELDS {
            if let Some(value) = desired.get(field) {
                body.insert(api.to_string(), value.to_json());
            }
        }
        Json::Object(body)
    }

    /// Returns the comparable attributes of a live policy in `project`, its channel names
    /// spelled as `known_channels` (the configuration's or state's) spell them.
    fn normalize(live: &Json, project: &str, known_channels: &[Value]) -> Attributes {
        let mut attributes = Attributes::new();
        for (field, api) in API_FIELDS {
            if let Some(value) = live.get(api).filter(|value| !value.is_null()) {
                attributes.insert(field.to_string(), Value::from_json(value));
            }
        }
        if let Some(conditions) = attributes.get("conditions").cloned() {
            attributes.insert(
                "conditions".into(),
                Self::without_condition_names(&conditions),
            );
        }
        // Channel names come back with the project number; state keeps the project id.
        if let Some(channels) = attributes.get("notification_channels").cloned() {
            attributes.insert(
                "notification_channels".into(),
                super::channel_names::spelled_as_configured(
                    &channels,
                    known_channels,
                    Some(project),
                ),
            );
        }
        attributes
    }

    fn our_name(project: &str, live: &Json) -> String {
        let id = live["name"]
            .as_str()
            .unwrap_or_default()
            .rsplit('/')
            .next()
            .unwrap_or_default();
        format!("projects/{project}/alertPolicies/{id}")
    }
}

#[async_trait]
impl Kind for AlertPolicyKind {
    fn name(&self) -> &'static str {
        "alert_policy"
    }

    fn fields(&self) -> &'static [FieldSpec] {
        &FIELDS
    }

    fn check(&self, config: &Attributes) -> Vec<String> {
        let mut problems = Vec::new();
        match config.get("conditions") {
            Some(Value::List(items)) if (1..=6).contains(&items.len()) => {
                if items
                    .iter()
                    .any(|item| !matches!(item, Value::Map(_) | Value::Marker(_)))
                {
                    problems.push("conditions: each condition is a table in the API's shape ({ displayName, conditionThreshold = {…} })".into());
                }
            }
            Some(Value::Marker(_)) | None => {}
            Some(_) => problems.push("conditions: a list of 1 to 6 conditions".into()),
        }
        if let Some(Value::String(combiner)) = config.get("combiner")
            && !["AND", "OR", "AND_WITH_MATCHING_RESOURCE"].contains(&combiner.as_str())
        {
            problems.push(format!(
                "combiner {combiner:?}: AND, OR or AND_WITH_MATCHING_RESOURCE"
            ));
        }
        if let Some(Value::String(severity)) = config.get("severity")
            && !["CRITICAL", "ERROR", "WARNING"].contains(&severity.as_str())
        {
            problems.push(format!("severity {severity:?}: CRITICAL, ERROR or WARNING"));
        }
        problems
    }

    fn resource_id(&self, _context: &KindContext, _config: &Attributes) -> Option<String> {
        None
    }

    fn pending_id(&self, context: &KindContext, config: &Attributes) -> Option<String> {
        let collection = format!("projects/{}/alertPolicies", Self::project(context, config));
        Some(super::ownership::pending_id(&collection, context))
    }

    fn desired(
        &self,
        context: &KindContext,
        config: &Attributes,
        _prior: Option<&StateResource>,
    ) -> Result<Attributes, KindError> {
        let user_labels = keyed_user_labels(context, config);
        let mut desired = Attributes::from([
            (
                "display_name".into(),
                config.get("display_name").cloned().unwrap_or_default(),
            ),
            (
                "conditions".into(),
                Self::without_condition_names(
                    config.get("conditions").unwrap_or(&Value::List(vec![])),
                ),
            ),
            (
                "combiner".into(),
                config
                    .get("combiner")
                    .cloned()
                    .unwrap_or(Value::string("OR")),
            ),
            (
                "notification_channels".into(),
                config
                    .get("notification_channels")
                    .cloned()
                    .unwrap_or(Value::List(vec![])),
            ),
            (
                "enabled".into(),
                config.get("enabled").cloned().unwrap_or(Value::Bool(true)),
            ),
            ("user_labels".into(), Value::Map(user_labels)),
        ]);
        for optional in ["severity", "alert_strategy"] {
            if let Some(value) = config.get(optional) {
                desired.insert(optional.into(), value.clone());
            }
        }
        if let Some(Value::Map(documentation)) = config.get("documentation") {
            let mut documentation: BTreeMap<String, Value> = documentation.clone();
            documentation
                .entry("mimeType".into())
                .or_insert(Value::string("text/markdown"));
            desired.insert("documentation".into(), Value::Map(documentation));
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
            let top = crate::plan::diff::top_field(field);
            if let Some((_, api)) = API_FIELDS.iter().find(|(name, _)| *name == top) {
                mask.insert(*api);
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
        if super::is_pending_id(id) {
            return Ok(None);
        }
        let project = id.split('/').nth(1).unwrap_or_default();
        Ok(
            get_if_exists(client, Service::Monitoring, &format!("v3/{id}"))
                .await?
                .map(|live| {
                    let known = super::channel_names::known_names(
                        prior.and_then(|prior| prior.attributes.get("notification_channels")),
                    );
                    let mut attributes = Self::normalize(&live, project, &known);
                    if let Some(prior) = prior {
                        trim_server_filled(&mut attributes, &prior.attributes, &SERVER_FILLED);
                    }
                    attributes
                }),
        )
    }

    async fn create(
        &self,
        client: &GcpClient,
        context: &KindContext,
        config: &Attributes,
    ) -> Result<Created, KindError> {
        let desired = self.desired(context, config, None)?;
        let project = Self::project(context, config);
        let collection = format!("v3/projects/{project}/alertPolicies");
        let body = Self::body(&desired);
        let live = create_or_adopt(
            client,
            Service::Monitoring,
            &collection,
            "alertPolicies",
            context,
            &body,
            &[],
        )
        .await?;
        let mut attributes = Self::normalize(
            &live,
            &project,
            &super::channel_names::known_names(desired.get("notification_channels")),
        );
        trim_server_filled(&mut attributes, &desired, &SERVER_FILLED);
        Ok(Created {
            id: Self::our_name(&project, &live),
            attributes,
        })
    }

    async fn create_after_interruption(
        &self,
        client: &GcpClient,
        context: &KindContext,
        config: &Attributes,
    ) -> Result<Created, KindError> {
        let collection = format!(
            "v3/projects/{}/alertPolicies",
            Self::project(context, config)
        );
        super::ownership::wait_until_listed(
            client,
            Service::Monitoring,
            &collection,
            "alertPolicies",
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
        let desired = self.desired(context, config, Some(prior))?;
        let mask = self.update_mask(changed_fields);
        let project = Self::project(context, config);
        if mask.is_empty() {
            return Ok(prior.attributes.clone());
        }
        let live = client
            .call(
                Method::PATCH,
                Service::Monitoring,
                &format!("v3/{}", prior.id),
                &[("updateMask", mask.join(","))],
                Some(&Self::body(&desired)),
            )
            .await?;
        let mut attributes = Self::normalize(
            &live,
            &project,
            &super::channel_names::known_names(desired.get("notification_channels")),
        );
        trim_server_filled(&mut attributes, &desired, &SERVER_FILLED);
        Ok(attributes)
    }

    async fn delete(&self, client: &GcpClient, prior: &StateResource) -> Result<(), KindError> {
        if super::is_pending_id(&prior.id) {
            return super::ownership::delete_pending(
                client,
                Service::Monitoring,
                "v3",
                "alertPolicies",
                &prior.id,
            )
            .await;
        }
        delete_if_exists(
            client,
            Service::Monitoring,
            &format!("v3/{}", prior.id),
            &[],
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn server_condition_names_are_not_compared() {
        let live = json!({"displayName": "x", "conditions": [{"name": "projects/1/alertPolicies/a/conditions/b", "displayName": "c"}], "combiner": "OR", "enabled": true});
        let normalized = AlertPolicyKind::normalize(&live, "p", &[]);
        assert_eq!(
            normalized["conditions"].to_string(),
            r#"[{displayName = "c"}]"#
        );
    }

    #[test]
    fn condition_fields_google_fills_are_no_change_but_a_dropped_configured_one_is() {
        let context = KindContext {
            address: "module.monitoring.alert_policy.errors".into(),
            project: "p".into(),
            region: "r".into(),
            env_name: "staging".into(),
            lineage: "lineage".into(),
            fingerprint_key: None,
            legacy_salt: None,
        };
        let config = |promql: Json| {
            Attributes::from([
                ("display_name".into(), Value::string("errors")),
                (
                    "conditions".into(),
                    Value::from_json(
                        &json!([{"displayName": "5xx", "conditionPrometheusQueryLanguage": promql}]),
                    ),
                ),
            ])
        };
        let configured = json!({"query": "sum(rate(x[5m])) > 1", "duration": "60s"});
        let desired = AlertPolicyKind
            .desired(&context, &config(configured.clone()), None)
            .expect("desired");
        let mut answer = AlertPolicyKind::body(&desired);
        answer["name"] = json!("projects/1/alertPolicies/a");
        answer["conditions"][0]["name"] = json!("projects/1/alertPolicies/a/conditions/c");
        answer["conditions"][0]["conditionPrometheusQueryLanguage"]["evaluationInterval"] =
            json!("30s");
        let mut recorded = AlertPolicyKind::normalize(&answer, "p", &[]);
        trim_server_filled(&mut recorded, &desired, &SERVER_FILLED);
        let mut read = AlertPolicyKind::normalize(&answer, "p", &[]);
        trim_server_filled(&mut read, &recorded, &SERVER_FILLED);
        assert!(
            crate::plan::diff::changed_paths(&desired, &read).is_empty(),
            "{read:?}"
        );
        assert!(
            !crate::plan::diff::changed_paths(
                &desired,
                &AlertPolicyKind::normalize(&answer, "p", &[])
            )
            .is_empty()
        );
        let dropped = AlertPolicyKind
            .desired(
                &context,
                &config(json!({"query": "sum(rate(x[5m])) > 1"})),
                None,
            )
            .expect("desired");
        assert_eq!(
            crate::plan::diff::changed_paths(&dropped, &read),
            vec!["conditions[0].conditionPrometheusQueryLanguage.duration".to_string()]
        );
    }

    #[test]
    fn masks_use_api_field_names() {
        let mask = AlertPolicyKind.update_mask(&[
            "conditions[0].conditionThreshold.thresholdValue".into(),
            "user_labels.team".into(),
        ]);
        assert_eq!(
            mask,
            vec!["conditions".to_string(), "userLabels".to_string()]
        );
    }
}
