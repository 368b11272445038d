//! Request validation against Google's discovery documents: unknown fields, wrong JSON types
//! and invalid enum values are refused with Google's INVALID_ARGUMENT wording. The documents are
//! embedded, so the emulator and the API description cannot drift apart.

use super::error::ApiError;
use serde_json::Value as Json;
use std::sync::OnceLock;

/// An API whose discovery document is embedded.
#[derive(Debug, Clone, Copy)]
pub enum Api {
    SecretManager,
    Iam,
    ResourceManager,
    Run,
    MonitoringV1,
    MonitoringV3,
    BillingBudgets,
    /// Cloud Storage JSON v1: served by its own handler, described here for its method list.
    Storage,
}

fn document(api: Api) -> &'static Json {
    static SECRET_MANAGER: OnceLock<Json> = OnceLock::new();
    static IAM: OnceLock<Json> = OnceLock::new();
    static RESOURCE_MANAGER: OnceLock<Json> = OnceLock::new();
    static RUN: OnceLock<Json> = OnceLock::new();
    static MONITORING_V1: OnceLock<Json> = OnceLock::new();
    static MONITORING_V3: OnceLock<Json> = OnceLock::new();
    static BILLING_BUDGETS: OnceLock<Json> = OnceLock::new();
    static STORAGE: OnceLock<Json> = OnceLock::new();
    let parse = |text: &str| serde_json::from_str(text).unwrap_or(Json::Null);
    match api {
        Api::SecretManager => {
            SECRET_MANAGER.get_or_init(|| parse(include_str!("discovery/secretmanager.v1.json")))
        }
        Api::Iam => IAM.get_or_init(|| parse(include_str!("discovery/iam.v1.json"))),
        Api::Run => RUN.get_or_init(|| parse(include_str!("discovery/run.v2.json"))),
        Api::MonitoringV1 => {
            MONITORING_V1.get_or_init(|| parse(include_str!("discovery/monitoring.v1.json")))
        }
        Api::MonitoringV3 => {
            MONITORING_V3.get_or_init(|| parse(include_str!("discovery/monitoring.v3.json")))
        }
        Api::BillingBudgets => {
            BILLING_BUDGETS.get_or_init(|| parse(include_str!("discovery/billingbudgets.v1.json")))
        }
        Api::Storage => STORAGE.get_or_init(|| parse(include_str!("discovery/storage.v1.json"))),
        Api::ResourceManager => RESOURCE_MANAGER
            .get_or_init(|| parse(include_str!("discovery/cloudresourcemanager.v3.json"))),
    }
}

impl Api {
    /// Every API served through the discovery-driven dispatcher (Cloud Storage has its own).
    pub const ALL: [Api; 7] = [
        Api::SecretManager,
        Api::Iam,
        Api::ResourceManager,
        Api::Run,
        Api::MonitoringV1,
        Api::MonitoringV3,
        Api::BillingBudgets,
    ];

    /// Returns the name this API's document gives a shared IAM schema (`SetIamPolicyRequest`
    /// is `GoogleIamV1SetIamPolicyRequest` in Cloud Run's).
    pub fn iam_schema(self, base: &str) -> String {
        match self {
            Api::Run => format!("GoogleIamV1{base}"),
            _ => base.to_string(),
        }
    }
}

/// Checks `body` against schema `schema` of `api`; `root` names the body in messages.
pub fn validate(api: Api, schema: &str, root: &str, body: &Json) -> Result<(), ApiError> {
    let schemas = &document(api)["schemas"];
    if schemas[schema].is_null() {
        return Err(ApiError::internal(format!(
            "emulator: {api:?} has no schema {schema}"
        )));
    }
    check_object(api, schemas, schema, root, body).map_err(ApiError::invalid_argument)
}

/// Returns true when the schema marks `field` output only.
pub fn is_output_only(api: Api, schema: &str, field: &str) -> bool {
    let property = &document(api)["schemas"][schema]["properties"][field];
    property["readOnly"] == true
        || property["description"]
            .as_str()
            .is_some_and(|text| text.starts_with("Output only"))
}

/// Returns the names of a schema's properties.
pub fn properties(api: Api, schema: &str) -> Vec<String> {
    document(api)["schemas"][schema]["properties"]
        .as_object()
        .map(|properties| properties.keys().cloned().collect())
        .unwrap_or_default()
}

fn check_object(
    api: Api,
    schemas: &Json,
    schema: &str,
    path: &str,
    value: &Json,
) -> Result<(), String> {
    let Some(object) = value.as_object() else {
        return Err(format!(
            "Invalid value at '{path}' (type.googleapis.com/{schema}), {value}"
        ));
    };
    let properties = &schemas[schema]["properties"];
    for (key, item) in object {
        let property = &properties[key.as_str()];
        if property.is_null() {
            return Err(format!(
                "Invalid JSON payload received. Unknown name \"{key}\" at '{path}': Cannot find field."
            ));
        }
        check_property(
            api,
            schemas,
            property,
            &format!("{path}.{}", snake_case(key)),
            item,
        )?;
    }
    Ok(())
}

fn check_property(
    api: Api,
    schemas: &Json,
    property: &Json,
    path: &str,
    value: &Json,
) -> Result<(), String> {
    if value.is_null() {
        return Ok(());
    }
    if let Some(reference) = property["$ref"].as_str() {
        return check_object(api, schemas, reference, path, value);
    }
    let mismatch = |expected: &str| Err(format!("Invalid value at '{path}' ({expected}), {value}"));
    match property["type"].as_str().unwrap_or("any") {
        "string" => {
            let is_int64 = matches!(property["format"].as_str(), Some("int64" | "uint64"));
            match value {
                Json::String(text) => {
                    if let Some(allowed) = property["enum"].as_array()
                        && !allowed.iter().any(|candidate| candidate == text)
                    {
                        return Err(format!("Invalid value at '{path}' (enum), \"{text}\""));
                    }
                    if is_int64 && text.parse::<i128>().is_err() {
                        return mismatch("TYPE_INT64");
                    }
                    Ok(())
                }
                // proto3 JSON: int64 may arrive as a number; enums may arrive as their number.
                Json::Number(_) if is_int64 => Ok(()),
                Json::Number(number) if property["enum"].is_array() => {
                    let names = property["enum"]
                        .as_array()
                        .map(Vec::as_slice)
                        .unwrap_or_default();
                    match number.as_i64() {
                        Some(number) if super::proto_enums::name(api, names, number).is_some() => {
                            Ok(())
                        }
                        _ => mismatch("enum"),
                    }
                }
                _ => mismatch("TYPE_STRING"),
            }
        }
        "integer" | "number" => match value {
            Json::Number(_) => Ok(()),
            Json::String(text) if text.parse::<f64>().is_ok() => Ok(()),
            _ => mismatch("TYPE_INT32"),
        },
        "boolean" => {
            if value.is_boolean() {
                Ok(())
            } else {
                mismatch("TYPE_BOOL")
            }
        }
        "array" => match value.as_array() {
            Some(items) => {
                for (position, item) in items.iter().enumerate() {
                    check_property(
                        api,
                        schemas,
                        &property["items"],
                        &format!("{path}[{position}]"),
                        item,
                    )?;
                }
                Ok(())
            }
            None => mismatch("TYPE_ARRAY"),
        },
        "object" => match value.as_object() {
            Some(entries) => {
                let values = &property["additionalProperties"];
                if values.is_null() {
                    return Ok(());
                }
                for (key, item) in entries {
                    check_property(api, schemas, values, &format!("{path}[{key}]"), item)?;
                }
                Ok(())
            }
            None => mismatch("TYPE_MESSAGE"),
        },
        _ => Ok(()),
    }
}

/// Returns true when the camelCase field-mask `path` (`template.scaling.maxInstanceCount`,
/// `labels.env`) names a field of `schema`: each step must be a property of the message the
/// previous step reached; a map field takes one more step, its key; a repeated or scalar field
/// ends the path (<https://google.aip.dev/161>: no traversal through repeated fields).
pub fn mask_path_exists(api: Api, schema: &str, path: &str) -> bool {
    let schemas = &document(api)["schemas"];
    let mut current = &schemas[schema];
    let mut parts = path.split('.').peekable();
    while let Some(part) = parts.next() {
        let property = &current["properties"][part];
        if property.is_null() {
            return false;
        }
        let (reference, map_values) = match &property["additionalProperties"] {
            Json::Null => (&property["$ref"], None),
            values => (&Json::Null, Some(values)),
        };
        if let Some(values) = map_values {
            // The next step is a key; past it, only a message value can be entered.
            if parts.next().is_none() {
                return true;
            }
            match values["$ref"].as_str() {
                Some(name) if parts.peek().is_some() => current = &schemas[name],
                _ => return parts.peek().is_none(),
            }
            continue;
        }
        match reference.as_str() {
            Some(name) => current = &schemas[name],
            None => return parts.peek().is_none(),
        }
    }
    true
}

/// Returns true when `api`'s document defines schema `schema`.
pub fn has_schema(api: Api, schema: &str) -> bool {
    document(api)["schemas"][schema].is_object()
}

/// Returns every schema of `api`'s document, by name.
pub fn schemas(api: Api) -> impl Iterator<Item = (&'static String, &'static Json)> {
    document(api)["schemas"].as_object().into_iter().flatten()
}

/// Returns a schema's properties.
pub fn schema_properties(api: Api, schema: &str) -> Option<&'static serde_json::Map<String, Json>> {
    document(api)["schemas"][schema]["properties"].as_object()
}

/// A method of an API, as its discovery document describes it.
#[derive(Debug, Clone)]
pub struct Method {
    pub api: Api,
    /// The method's id (`secretmanager.projects.secrets.addVersion`).
    pub id: String,
    /// The request body's schema, when the method takes one.
    pub request: Option<String>,
    /// The answer's schema, when the method returns one.
    pub response: Option<String>,
    /// The HTTP method.
    pub http_method: String,
    /// The path template (`v1/projects/{projectsId}/secrets/{secretsId}:addVersion`).
    pub path: String,
    /// The query and path parameters the method defines.
    pub parameters: Vec<String>,
}

fn methods() -> &'static [Method] {
    static METHODS: OnceLock<Vec<Method>> = OnceLock::new();
    METHODS.get_or_init(|| {
        let mut found = Vec::new();
        for api in Api::ALL.into_iter().chain([Api::Storage]) {
            collect_methods(api, document(api), &mut found);
        }
        found
    })
}

fn collect_methods(api: Api, resource: &Json, found: &mut Vec<Method>) {
    if let Some(methods) = resource["methods"].as_object() {
        for method in methods.values() {
            let path = method["flatPath"]
                .as_str()
                .or_else(|| method["path"].as_str())
                .unwrap_or_default();
            found.push(Method {
                api,
                id: method["id"].as_str().unwrap_or_default().to_string(),
                request: method["request"]["$ref"].as_str().map(str::to_string),
                response: method["response"]["$ref"].as_str().map(str::to_string),
                http_method: method["httpMethod"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                path: path.to_string(),
                parameters: method["parameters"]
                    .as_object()
                    .map(|parameters| parameters.keys().cloned().collect())
                    .unwrap_or_default(),
            });
        }
    }
    if let Some(resources) = resource["resources"].as_object() {
        for child in resources.values() {
            collect_methods(api, child, found);
        }
    }
}

/// Finds the discovery method a request designates (`path` without its leading slash, version
/// included), so that an unserved method can be named in a 501 and its schemas applied.
pub fn find_method(http_method: &str, path: &str) -> Option<&'static Method> {
    methods().iter().find(|method| {
        !matches!(method.api, Api::Storage)
            && method.http_method == http_method
            && path_matches(&method.path, path)
    })
}

/// Finds a method by its discovery id.
pub fn method_by_id(id: &str) -> Option<&'static Method> {
    methods().iter().find(|method| method.id == id)
}

/// Finds the Cloud Storage method a request designates (`path` after `storage/v1/`, still
/// percent-encoded, so an object name is one segment).
pub fn find_storage_method(http_method: &str, path: &str) -> Option<&'static Method> {
    methods().iter().find(|method| {
        matches!(method.api, Api::Storage)
            && method.http_method == http_method
            && path_matches(&method.path, path)
    })
}

/// Returns the variables of `template` as `path` fills them (`path` must match it).
pub fn path_variables(template: &str, path: &str) -> std::collections::BTreeMap<String, String> {
    let mut variables = std::collections::BTreeMap::new();
    for (pattern, segment) in template.split('/').zip(path.split('/')) {
        if let (Some(open), Some(close)) = (pattern.find('{'), pattern.find('}'))
            && open < close
        {
            let (prefix, suffix) = (&pattern[..open], &pattern[close + 1..]);
            let name = pattern[open + 1..close].trim_start_matches('+');
            if segment.len() >= prefix.len() + suffix.len() {
                variables.insert(
                    name.to_string(),
                    segment[prefix.len()..segment.len() - suffix.len()].to_string(),
                );
            }
        }
    }
    variables
}

/// Matches a discovery path template: each `{variable}` stands for one segment without `:` (so
/// that `{secretsId}` does not swallow a custom verb).
pub fn path_matches(template: &str, path: &str) -> bool {
    // Segment by segment without collecting: every request is matched against every method
    // of its HTTP verb, so this runs hundreds of times per request.
    let mut patterns = template.split('/');
    let mut segments = path.split('/');
    loop {
        match (patterns.next(), segments.next()) {
            (None, None) => return true,
            (Some(pattern), Some(segment)) if segment_matches(pattern, segment) => {}
            _ => return false,
        }
    }
}

/// Returns true when one path segment fills one template segment (`{var}`, with any literal
/// prefix or suffix such as `:addVersion`; a variable never takes a `:`).
fn segment_matches(pattern: &str, segment: &str) -> bool {
    match (pattern.find('{'), pattern.find('}')) {
        (Some(open), Some(close)) if open < close => {
            let (prefix, suffix) = (&pattern[..open], &pattern[close + 1..]);
            segment.len() > prefix.len() + suffix.len()
                && segment.starts_with(prefix)
                && segment.ends_with(suffix)
                && !segment[prefix.len()..segment.len() - suffix.len()].contains(':')
        }
        _ => pattern == segment,
    }
}

/// Returns a camelCase JSON name in the snake_case Google's error messages use.
pub fn snake_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for character in name.chars() {
        if character.is_ascii_uppercase() {
            out.push('_');
            out.push(character.to_ascii_lowercase());
        } else {
            out.push(character);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn mask_paths_walk_messages_and_maps_but_not_lists() {
        let service = "GoogleCloudRunV2Service";
        assert!(mask_path_exists(
            Api::Run,
            service,
            "template.scaling.maxInstanceCount"
        ));
        assert!(mask_path_exists(Api::Run, service, "labels.env"));
        assert!(mask_path_exists(Api::Run, service, "template.containers"));
        assert!(!mask_path_exists(Api::Run, service, "template.nonexistent"));
        assert!(!mask_path_exists(
            Api::Run,
            service,
            "template.containers.image"
        ));
        assert!(!mask_path_exists(Api::Run, service, "labels.env.more"));
        assert!(!mask_path_exists(Api::Run, service, "ingress.deeper"));
    }

    #[test]
    fn unknown_fields_are_refused_with_googles_wording() {
        let error = validate(
            Api::SecretManager,
            "Secret",
            "secret",
            &json!({"replication": {"automatic": {}}, "labelz": {}}),
        )
        .expect_err("unknown");
        assert_eq!(error.status, "INVALID_ARGUMENT");
        assert_eq!(
            error.message,
            "Invalid JSON payload received. Unknown name \"labelz\" at 'secret': Cannot find field."
        );
    }

    #[test]
    fn nested_unknown_fields_are_found() {
        let error = validate(
            Api::SecretManager,
            "Secret",
            "secret",
            &json!({"replication": {"automatic": {"bogus": 1}}}),
        )
        .expect_err("nested");
        assert!(
            error.message.contains("at 'secret.replication.automatic'"),
            "{}",
            error.message
        );
    }

    #[test]
    fn types_and_maps_are_checked() {
        assert!(
            validate(
                Api::SecretManager,
                "Secret",
                "secret",
                &json!({"labels": {"a": "b"}})
            )
            .is_ok()
        );
        assert!(
            validate(
                Api::SecretManager,
                "Secret",
                "secret",
                &json!({"labels": {"a": 1}})
            )
            .is_err()
        );
        assert!(
            validate(
                Api::SecretManager,
                "Secret",
                "secret",
                &json!({"labels": "a"})
            )
            .is_err()
        );
        assert!(
            validate(
                Api::SecretManager,
                "Policy",
                "policy",
                &json!({"version": 3, "bindings": [{"role": "r", "members": ["m"]}]})
            )
            .is_ok()
        );
    }

    #[test]
    fn every_schema_the_emulator_names_exists() {
        for (api, schema) in [
            (Api::SecretManager, "Secret".to_string()),
            (Api::SecretManager, "AddSecretVersionRequest".to_string()),
            (Api::SecretManager, "EnableSecretVersionRequest".to_string()),
            (Api::Iam, "CreateServiceAccountRequest".to_string()),
            (Api::Iam, "PatchServiceAccountRequest".to_string()),
            (Api::ResourceManager, "GetIamPolicyRequest".to_string()),
            (Api::Run, "GoogleCloudRunV2Service".to_string()),
            (Api::MonitoringV1, "Dashboard".to_string()),
            (Api::MonitoringV3, "AlertPolicy".to_string()),
            (Api::MonitoringV3, "NotificationChannel".to_string()),
            (
                Api::BillingBudgets,
                "GoogleCloudBillingBudgetsV1Budget".to_string(),
            ),
        ]
        .into_iter()
        .chain(
            [Api::SecretManager, Api::Iam, Api::ResourceManager, Api::Run]
                .map(|api| (api, api.iam_schema("SetIamPolicyRequest"))),
        ) {
            assert!(
                validate(api, &schema, "x", &serde_json::json!({})).is_ok(),
                "{api:?} {schema}"
            );
        }
    }

    #[test]
    fn requests_find_their_discovery_method() {
        let method = find_method("POST", "v1/projects/p/secrets/s:addVersion").expect("found");
        assert_eq!(method.id, "secretmanager.projects.secrets.addVersion");
        assert_eq!(method.request.as_deref(), Some("AddSecretVersionRequest"));
        let method = find_method("GET", "v1/projects/p/secrets/s").expect("found");
        assert_eq!(method.id, "secretmanager.projects.secrets.get");
        let method =
            find_method("GET", "v2/projects/p/locations/l/services/s/revisions").expect("found");
        assert_eq!(method.id, "run.projects.locations.services.revisions.list");
        assert!(find_method("GET", "v1/nothing/here").is_none());
        let variables = path_variables(
            "v1/projects/{projectsId}/secrets/{secretsId}:addVersion",
            "v1/projects/p/secrets/s:addVersion",
        );
        assert_eq!(variables["projectsId"], "p");
        assert_eq!(variables["secretsId"], "s");
    }

    #[test]
    fn output_only_fields_are_known() {
        assert!(is_output_only(Api::SecretManager, "Secret", "createTime"));
        assert!(!is_output_only(Api::SecretManager, "Secret", "labels"));
        assert!(properties(Api::SecretManager, "Secret").contains(&"versionAliases".to_string()));
    }
}
