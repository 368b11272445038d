//! Converts a plan into Terraform's JSON plan representation (`terraform show -json PLANFILE`,
//! format_version 1.2) so that tools written for it — OPA/conftest policies, PR-comment
//! parsers, cost estimators — read infra plans. Unknown values become `null` with `true` in
//! `after_unknown`; secrets become `null` with `true` in `*_sensitive` (infra never holds the
//! value, only a fingerprint). Terraform's `configuration`, `prior_state` and `variables`
//! sections have no infra counterpart and are left out (docs/plan-json.md).

use super::model::{Action, Plan, ResourceChange};
use super::render::is_hidden;
use crate::value::{Attributes, Marker, Value};
use serde_json::{Map, Value as Json, json};

/// The version of Terraform's JSON output format this follows.
pub const TERRAFORM_FORMAT_VERSION: &str = "1.2";

/// The provider name written on every resource: infra's own Google client.
const PROVIDER_NAME: &str = "infra/google";

/// Returns the plan in Terraform's JSON plan representation.
pub fn terraform_plan_json(plan: &Plan) -> Json {
    // A refresh-only plan changes no object: its changes are the drift, as in Terraform.
    let resource_changes: Vec<Json> = if plan.refresh_only {
        Vec::new()
    } else {
        plan.changes.iter().map(resource_change).collect()
    };
    let resource_drift: Vec<Json> = plan
        .drift
        .iter()
        .map(|drift| {
            let recorded = plan
                .change(&drift.address)
                .filter(|_| plan.refresh_only)
                .and_then(|change| change.before.as_ref());
            let refreshed = plan.change(&drift.address).and_then(|change| {
                if plan.refresh_only {
                    change.after.as_ref()
                } else {
                    change.before.as_ref()
                }
            });
            let mut entry = address_fields(&drift.address, plan.change(&drift.address));
            let (actions, after) = match drift.kind.as_str() {
                "deleted" => (vec!["delete"], None),
                _ => (vec!["update"], refreshed),
            };
            entry.insert(
                "change".into(),
                json!({
                    "actions": actions,
                    // A full plan keeps the refreshed object only; a refresh-only plan also
                    // keeps the state's last-applied one.
                    "before": recorded.map_or(Json::Null, |attributes| known_values(attributes, &[])),
                    "after": after.map_or(Json::Null, |attributes| known_values(attributes, &[])),
                    "after_unknown": after.map_or(json!({}), unknown_shape),
                    "before_sensitive": recorded.map_or(Json::Bool(false), |attributes| sensitive_shape(attributes, &[])),
                    "after_sensitive": after.map_or(Json::Bool(false), |attributes| sensitive_shape(attributes, &[])),
                }),
            );
            entry.insert(
                "infra_drift_paths".into(),
                Json::from(drift.paths.clone()),
            );
            Json::Object(entry)
        })
        .collect();
    let output_changes: Map<String, Json> = plan
        .outputs
        .iter()
        .map(|(name, output)| {
            let shown = |value: &Option<Value>| match value {
                _ if output.sensitive => Json::Null,
                Some(value) => known_value(value),
                None => Json::Null,
            };
            let unknown = output
                .after
                .as_ref()
                .map_or(Json::Bool(false), value_unknown);
            (
                name.clone(),
                json!({
                    "actions": actions(output.action),
                    "before": shown(&output.before),
                    "after": shown(&output.after),
                    "after_unknown": unknown,
                    "before_sensitive": output.sensitive && output.before.is_some(),
                    "after_sensitive": output.sensitive && output.after.is_some(),
                }),
            )
        })
        .collect();
    let planned_resources: Vec<Json> = plan
        .changes
        .iter()
        .filter(|change| change.action != Action::Delete)
        .filter_map(|change| {
            let after = change.after.as_ref()?;
            let mut entry = address_fields(&change.address, Some(change));
            entry.insert("values".into(), known_values(after, &change.sensitive));
            entry.insert(
                "sensitive_values".into(),
                match sensitive_shape(after, &change.sensitive) {
                    Json::Bool(false) => json!({}),
                    shape => shape,
                },
            );
            Some(Json::Object(entry))
        })
        .collect();
    let planned_outputs: Map<String, Json> = plan
        .outputs
        .iter()
        .filter(|(_, output)| output.action != Action::Delete)
        .map(|(name, output)| {
            let mut entry = Map::new();
            entry.insert("sensitive".into(), Json::Bool(output.sensitive));
            if let Some(value) = output
                .after
                .as_ref()
                .filter(|value| !output.sensitive && !value.contains_unknown())
            {
                entry.insert("value".into(), known_value(value));
            }
            (name.clone(), Json::Object(entry))
        })
        .collect();
    json!({
        "format_version": TERRAFORM_FORMAT_VERSION,
        "infra_plan": {
            "env": plan.env,
            "lineage": plan.lineage,
            "serial": plan.serial,
            "destroy": plan.destroy,
        },
        "planned_values": {
            "outputs": planned_outputs,
            "root_module": { "resources": planned_resources },
        },
        "resource_drift": resource_drift,
        "resource_changes": resource_changes,
        "output_changes": output_changes,
        "applyable": plan.has_changes(),
        "complete": true,
        "errored": false,
    })
}

fn resource_change(change: &ResourceChange) -> Json {
    let mut entry = address_fields(&change.address, Some(change));
    let sensitive = &change.sensitive;
    let mut body = Map::new();
    body.insert("actions".into(), actions(change.action));
    body.insert(
        "before".into(),
        change
            .before
            .as_ref()
            .map_or(Json::Null, |before| known_values(before, sensitive)),
    );
    body.insert(
        "after".into(),
        change
            .after
            .as_ref()
            .map_or(Json::Null, |after| known_values(after, sensitive)),
    );
    body.insert(
        "after_unknown".into(),
        change.after.as_ref().map_or(json!({}), unknown_shape),
    );
    body.insert(
        "before_sensitive".into(),
        change.before.as_ref().map_or(Json::Bool(false), |before| {
            sensitive_shape(before, sensitive)
        }),
    );
    body.insert(
        "after_sensitive".into(),
        change
            .after
            .as_ref()
            .map_or(Json::Bool(false), |after| sensitive_shape(after, sensitive)),
    );
    if !change.replace_paths.is_empty() {
        body.insert(
            "replace_paths".into(),
            Json::Array(
                change
                    .replace_paths
                    .iter()
                    .map(|path| Json::Array(path.split('.').map(Json::from).collect()))
                    .collect(),
            ),
        );
    }
    entry.insert("change".into(), Json::Object(body));
    if change.action == Action::Replace {
        let reason = if change.replace_paths.is_empty() {
            "replace_by_request"
        } else {
            "replace_because_cannot_update"
        };
        entry.insert("action_reason".into(), Json::from(reason));
    }
    Json::Object(entry)
}

/// Terraform's action lists; a replace deletes first, as infra does.
fn actions(action: Action) -> Json {
    json!(match action {
        Action::NoOp => vec!["no-op"],
        Action::Create => vec!["create"],
        Action::Update => vec!["update"],
        Action::Replace => vec!["delete", "create"],
        Action::Delete => vec!["delete"],
    })
}

/// The fields naming a resource: `address`, `module_address` (only inside a module), `mode`,
/// `type`, `name`, `index` (only for `for_each`/`count` instances) and `provider_name`.
fn address_fields(address: &str, change: Option<&ResourceChange>) -> Map<String, Json> {
    let parsed = ParsedAddress::parse(address);
    let mut fields = Map::new();
    fields.insert("address".into(), Json::from(address));
    if let Some(module) = &parsed.module_address {
        fields.insert("module_address".into(), Json::from(module.as_str()));
    }
    fields.insert("mode".into(), Json::from("managed"));
    let kind = change.map_or(parsed.kind.clone(), |change| change.kind.clone());
    fields.insert("type".into(), Json::from(kind));
    fields.insert("name".into(), Json::from(parsed.name.as_str()));
    if let Some(index) = parsed.index {
        fields.insert("index".into(), index);
    }
    fields.insert("provider_name".into(), Json::from(PROVIDER_NAME));
    fields
}

/// An address split the way Terraform's JSON names it.
#[derive(Debug, PartialEq)]
struct ParsedAddress {
    module_address: Option<String>,
    kind: String,
    name: String,
    index: Option<Json>,
}

impl ParsedAddress {
    /// Parses `module.a["k"].module.b.kind.name["key"]`; quoted keys may hold dots and
    /// brackets, so the split respects quotes.
    fn parse(address: &str) -> Self {
        let segments = split_segments(address);
        let mut position = 0;
        let mut modules = Vec::new();
        while position + 2 < segments.len() && segments[position].0 == "module" {
            modules.push(segments[position..position + 2].to_vec());
            position += 2;
        }
        let kind = segments
            .get(position)
            .map(|segment| segment.0.clone())
            .unwrap_or_default();
        let (name, index) = segments
            .get(position + 1)
            .map(|segment| (segment.0.clone(), segment.1.clone()))
            .unwrap_or_default();
        let module_address = (!modules.is_empty()).then(|| {
            modules
                .iter()
                .map(|pair| {
                    format!(
                        "module.{}{}",
                        pair[1].0,
                        pair[1].1.clone().unwrap_or_default()
                    )
                })
                .collect::<Vec<_>>()
                .join(".")
        });
        let index = index.map(|text| {
            let inner = &text[1..text.len() - 1];
            match inner.parse::<i64>() {
                Ok(number) => Json::from(number),
                Err(_) => serde_json::from_str::<Json>(inner)
                    .unwrap_or_else(|_| Json::from(inner.trim_matches('"'))),
            }
        });
        ParsedAddress {
            module_address,
            kind,
            name,
            index,
        }
    }
}

/// Splits at dots outside brackets: each segment's name and its `[…]` suffix, if any.
fn split_segments(address: &str) -> Vec<(String, Option<String>)> {
    let mut segments = Vec::new();
    let mut name = String::new();
    let mut index = String::new();
    let mut in_brackets = false;
    let mut in_quotes = false;
    let mut escaped = false;
    for character in address.chars() {
        if in_brackets {
            index.push(character);
            if in_quotes {
                if escaped {
                    escaped = false;
                } else if character == '\\' {
                    escaped = true;
                } else if character == '"' {
                    in_quotes = false;
                }
            } else if character == '"' {
                in_quotes = true;
            } else if character == ']' {
                in_brackets = false;
            }
            continue;
        }
        match character {
            '[' => {
                in_brackets = true;
                index.push(character);
            }
            '.' => {
                segments.push((
                    std::mem::take(&mut name),
                    (!index.is_empty()).then(|| std::mem::take(&mut index)),
                ));
            }
            other => name.push(other),
        }
    }
    segments.push((name, (!index.is_empty()).then_some(index)));
    segments
}

/// The attributes as JSON with unknowns and secrets as `null`, bookkeeping fields left out.
fn known_values(attributes: &Attributes, sensitive: &[String]) -> Json {
    Json::Object(
        attributes
            .iter()
            .filter(|(field, _)| !is_hidden(field))
            .map(|(field, value)| {
                let shown = if sensitive.contains(field) {
                    Json::Null
                } else {
                    known_value(value)
                };
                (field.clone(), shown)
            })
            .collect(),
    )
}

fn known_value(value: &Value) -> Json {
    match value {
        Value::Marker(_) => Json::Null,
        Value::List(items) => Json::Array(items.iter().map(known_value).collect()),
        Value::Map(entries) => Json::Object(
            entries
                .iter()
                .map(|(key, item)| (key.clone(), known_value(item)))
                .collect(),
        ),
        other => other.to_json(),
    }
}

/// Terraform's `after_unknown`: an object with `true` at unknown leaves (known object keys
/// left out, list elements kept as `false`).
fn unknown_shape(attributes: &Attributes) -> Json {
    Json::Object(
        attributes
            .iter()
            .filter(|(field, _)| !is_hidden(field))
            .filter_map(|(field, value)| {
                let shape = value_unknown(value);
                (shape != Json::Bool(false)).then(|| (field.clone(), shape))
            })
            .collect(),
    )
}

fn value_unknown(value: &Value) -> Json {
    marker_shape(value, &|value| {
        matches!(value, Value::Marker(Marker::Unknown(_)))
    })
}

/// Terraform's `*_sensitive`: the same shape, `true` where the value is a secret.
fn sensitive_shape(attributes: &Attributes, sensitive: &[String]) -> Json {
    Json::Object(
        attributes
            .iter()
            .filter(|(field, _)| !is_hidden(field))
            .filter_map(|(field, value)| {
                let shape = if sensitive.contains(field) {
                    Json::Bool(true)
                } else {
                    marker_shape(value, &|value| {
                        matches!(value, Value::Marker(Marker::Sensitive(_)))
                    })
                };
                (shape != Json::Bool(false)).then(|| (field.clone(), shape))
            })
            .collect(),
    )
}

fn marker_shape(value: &Value, is_marked: &dyn Fn(&Value) -> bool) -> Json {
    if is_marked(value) {
        return Json::Bool(true);
    }
    match value {
        Value::List(items) if items.iter().any(|item| contains(item, is_marked)) => Json::Array(
            items
                .iter()
                .map(|item| marker_shape(item, is_marked))
                .collect(),
        ),
        Value::Map(entries) if entries.values().any(|item| contains(item, is_marked)) => {
            Json::Object(
                entries
                    .iter()
                    .filter(|(_, item)| contains(item, is_marked))
                    .map(|(key, item)| (key.clone(), marker_shape(item, is_marked)))
                    .collect(),
            )
        }
        _ => Json::Bool(false),
    }
}

fn contains(value: &Value, is_marked: &dyn Fn(&Value) -> bool) -> bool {
    is_marked(value)
        || match value {
            Value::List(items) => items.iter().any(|item| contains(item, is_marked)),
            Value::Map(entries) => entries.values().any(|item| contains(item, is_marked)),
            _ => false,
        }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::model::{Drift, OutputChange};
    use std::collections::BTreeMap;

    fn attributes(pairs: &[(&str, Value)]) -> Attributes {
        pairs
            .iter()
            .map(|(key, value)| (key.to_string(), value.clone()))
            .collect()
    }

    #[test]
    fn addresses_split_into_module_type_name_and_index() {
        let parsed =
            ParsedAddress::parse("module.beta_secrets.iam_member.accessor[\"BETA.MAX[1]\"]");
        assert_eq!(
            parsed,
            ParsedAddress {
                module_address: Some("module.beta_secrets".into()),
                kind: "iam_member".into(),
                name: "accessor".into(),
                index: Some(Json::from("BETA.MAX[1]")),
            }
        );
        let counted = ParsedAddress::parse("module.a[\"x\"].module.b.secret.s[2]");
        assert_eq!(
            counted.module_address.as_deref(),
            Some("module.a[\"x\"].module.b")
        );
        assert_eq!(counted.index, Some(Json::from(2)));
        let plain = ParsedAddress::parse("secret.slack_token");
        assert_eq!(
            (plain.kind.as_str(), plain.name.as_str()),
            ("secret", "slack_token")
        );
        assert_eq!((plain.module_address, plain.index), (None, None));
    }

    #[test]
    fn replace_unknown_and_sensitive_follow_terraforms_shapes() {
        let change = ResourceChange {
            address: "module.run.cloud_run_service.api".into(),
            kind: "cloud_run_service".into(),
            action: Action::Replace,
            id: Some("projects/p/locations/r/services/api".into()),
            reason: None,
            before: Some(attributes(&[
                ("region", Value::string("us-east1")),
                ("token", Value::sensitive("old-fingerprint")),
                ("uri", Value::string("https://api")),
                ("token_salt", Value::string("salt")),
            ])),
            after: Some(attributes(&[
                ("region", Value::string("us-central1")),
                ("token", Value::sensitive("new-fingerprint")),
                ("uri", Value::unknown()),
                (
                    "env",
                    Value::List(vec![Value::string("A"), Value::unknown()]),
                ),
            ])),
            changed: vec!["region".into(), "uri".into()],
            replace_paths: vec!["region".into()],
            update_mask: Vec::new(),
            sensitive: vec!["token".into()],
            dependencies: Vec::new(),
        };
        let plan = Plan {
            format: 1,
            env: "prod".into(),
            lineage: "lineage".into(),
            serial: 7,
            config_digest: "digest".into(),
            destroy: false,
            refresh_only: false,
            targets: Vec::new(),
            changes: vec![change],
            drift: vec![Drift {
                address: "module.run.cloud_run_service.api".into(),
                kind: "changed".into(),
                paths: vec!["region".into()],
            }],
            outputs: BTreeMap::from([(
                "url".to_string(),
                OutputChange {
                    action: Action::Update,
                    before: Some(Value::string("https://api")),
                    after: Some(Value::unknown()),
                    sensitive: false,
                },
            )]),
        };
        let json = terraform_plan_json(&plan);
        let text = serde_json::to_string(&json).unwrap_or_default();
        assert!(
            !text.contains("fingerprint") && !text.contains("token_salt"),
            "{text}"
        );
        insta::assert_snapshot!(serde_json::to_string_pretty(&json).unwrap_or_default());
    }
}
