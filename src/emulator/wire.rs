//! Google's wire rules for the JSON APIs, applied to every request and answer by the server so
//! that no API can get them wrong: enums arrive as names or as proto numbers (the numbers of the
//! `.proto` definitions, per API, from `proto_enums.rs`, not positions in the discovery list)
//! and leave as names, or as numbers when the client asked
//! `$alt=json;enum-encoding=int`; answers follow proto3 JSON (int64 as strings; zero, false, empty
//! string, empty list and empty map left out unless the field has explicit presence, listed in
//! `discovery/presence.json`). See <https://protobuf.dev/programming-guides/json/>.

use super::discovery::{self, Api};
use super::error::ApiError;
use super::proto_enums;
use serde_json::Value as Json;
use std::collections::BTreeMap;
use std::sync::OnceLock;

fn presence_table() -> &'static BTreeMap<String, Vec<String>> {
    static TABLE: OnceLock<BTreeMap<String, Vec<String>>> = OnceLock::new();
    TABLE.get_or_init(|| {
        serde_json::from_str(include_str!("discovery/presence.json")).unwrap_or_default()
    })
}

/// The discovery schema name an `Any`'s `@type` URL designates in `api`'s document
/// (`type.googleapis.com/google.cloud.run.v2.Service` is `GoogleCloudRunV2Service` in Run's).
fn any_schema(api: Api, type_url: &str) -> Option<String> {
    let full = type_url.rsplit('/').next()?;
    let (package, message) = full.rsplit_once('.')?;
    let prefixed: String = package
        .split('.')
        .map(|part| {
            let mut characters = part.chars();
            characters
                .next()
                .map(|first| first.to_ascii_uppercase().to_string() + characters.as_str())
                .unwrap_or_default()
        })
        .collect::<String>()
        + message;
    [prefixed, message.to_string()]
        .into_iter()
        .find(|candidate| discovery::has_schema(api, candidate))
}

fn has_presence(schema: &str, field: &str) -> bool {
    let table = presence_table();
    table.iter().any(|(message, fields)| {
        (schema == message
            || schema.ends_with(&format!("V1{message}"))
            || schema.ends_with(&format!("V2{message}")))
            && fields.iter().any(|known| known == field)
    })
}

/// Rewrites a request body of schema `schema` so that handlers see enum names only: a proto
/// number becomes its name; a number the enum does not define is refused as Google refuses it.
pub fn decode_request(api: Api, schema: &str, body: &mut Json) -> Result<(), ApiError> {
    decode_message(
        api,
        schema,
        body,
        discovery::snake_case(schema).trim_start_matches('_'),
    )
    .map_err(ApiError::invalid_argument)
}

fn decode_message(api: Api, schema: &str, value: &mut Json, path: &str) -> Result<(), String> {
    let Some(object) = value.as_object_mut() else {
        return Ok(());
    };
    if let Some(type_url) = object
        .get("@type")
        .and_then(Json::as_str)
        .map(str::to_string)
        && let Some(inner) = any_schema(api, &type_url)
        && inner != schema
    {
        return decode_message(api, &inner, value, path);
    }
    let properties = discovery::schema_properties(api, schema);
    // "Parsers accept both the lowerCamelCase name (or the one specified by the json_name
    // option) and the original proto field name" (proto3 JSON mapping): `display_name` is read
    // as `displayName`. Map keys are not field names and are left alone.
    if let Some(properties) = properties
        && object.keys().any(|key| key.contains('_'))
    {
        let fields = std::mem::take(object);
        for (key, item) in fields {
            let camel = super::collection::camel_case(&key);
            let renamed = if !properties.contains_key(&key) && properties.contains_key(&camel) {
                camel
            } else {
                key
            };
            if object.contains_key(&renamed) {
                return Err(format!(
                    "Invalid JSON payload received. Duplicate field \"{renamed}\" at '{path}'."
                ));
            }
            object.insert(renamed, item);
        }
    }
    for (key, item) in object.iter_mut() {
        let Some(property) = properties.and_then(|properties| properties.get(key)) else {
            continue;
        };
        decode_property(
            api,
            property,
            item,
            &format!("{path}.{}", discovery::snake_case(key)),
        )?;
    }
    Ok(())
}

fn decode_property(api: Api, property: &Json, value: &mut Json, path: &str) -> Result<(), String> {
    if let Some(reference) = property["$ref"].as_str() {
        return decode_message(api, reference, value, path);
    }
    if let Some(names) = property["enum"].as_array() {
        if let Some(number) = value.as_i64() {
            match proto_enums::name(api, names, number) {
                Some(name) => *value = Json::String(name),
                None => return Err(format!("Invalid value at '{path}' (enum), {number}")),
            }
        }
        return Ok(());
    }
    match property["type"].as_str() {
        Some("array") => {
            if let Some(items) = value.as_array_mut() {
                for (position, item) in items.iter_mut().enumerate() {
                    decode_property(
                        api,
                        &property["items"],
                        item,
                        &format!("{path}[{position}]"),
                    )?;
                }
            }
        }
        Some("object") => {
            let values = &property["additionalProperties"];
            if values["type"] == "any" {
                if let Some(type_url) = value["@type"].as_str().map(str::to_string)
                    && let Some(inner) = any_schema(api, &type_url)
                {
                    decode_message(api, &inner, value, path)?;
                }
            } else if !values.is_null()
                && let Some(entries) = value.as_object_mut()
            {
                for (key, item) in entries.iter_mut() {
                    decode_property(api, values, item, &format!("{path}[{key}]"))?;
                }
            }
        }
        _ => {}
    }
    Ok(())
}

/// Rewrites an answer of schema `schema` as proto3 JSON: defaults left out, int64 as strings,
/// enums as names or (`int_enums`) numbers.
pub fn encode_answer(api: Api, schema: &str, body: &mut Json, int_enums: bool) {
    encode_message(api, schema, body, int_enums);
}

fn encode_message(api: Api, schema: &str, value: &mut Json, int_enums: bool) {
    if let Some(type_url) = value["@type"].as_str().map(str::to_string)
        && let Some(inner) = any_schema(api, &type_url)
        && inner != schema
    {
        return encode_message(api, &inner, value, int_enums);
    }
    let Some(object) = value.as_object_mut() else {
        return;
    };
    let properties = discovery::schema_properties(api, schema);
    let mut dropped = Vec::new();
    for (key, item) in object.iter_mut() {
        let Some(property) = properties.and_then(|properties| properties.get(key)) else {
            continue;
        };
        if encode_property(api, property, item, int_enums) && !has_presence(schema, key) {
            dropped.push(key.clone());
        }
    }
    for key in dropped {
        object.remove(&key);
    }
}

/// Encodes one field's value; returns true when it holds its default and is to be left out.
fn encode_property(api: Api, property: &Json, value: &mut Json, int_enums: bool) -> bool {
    if value.is_null() {
        return true;
    }
    if let Some(reference) = property["$ref"].as_str() {
        encode_message(api, reference, value, int_enums);
        return false;
    }
    if let Some(names) = property["enum"].as_array() {
        let number = match &*value {
            Json::String(name) => proto_enums::number(api, names, name),
            Json::Number(number) => number.as_i64(),
            _ => None,
        };
        if number == Some(0) {
            return true;
        }
        if int_enums && let Some(number) = number {
            *value = Json::from(number);
        }
        return false;
    }
    match property["type"].as_str() {
        Some("array") => match value.as_array_mut() {
            Some(items) if items.is_empty() => true,
            Some(items) => {
                for item in items.iter_mut() {
                    encode_property(api, &property["items"], item, int_enums);
                }
                false
            }
            None => false,
        },
        Some("object") => {
            let values = &property["additionalProperties"];
            if values["type"] == "any" {
                if let Some(type_url) = value["@type"].as_str().map(str::to_string)
                    && let Some(inner) = any_schema(api, &type_url)
                {
                    encode_message(api, &inner, value, int_enums);
                }
                return false;
            }
            match value.as_object_mut() {
                Some(entries) if entries.is_empty() => true,
                Some(entries) if !values.is_null() => {
                    for item in entries.values_mut() {
                        encode_property(api, values, item, int_enums);
                    }
                    false
                }
                _ => false,
            }
        }
        Some("string") => {
            let is_int64 = matches!(property["format"].as_str(), Some("int64" | "uint64"));
            if is_int64 && let Json::Number(number) = &*value {
                *value = Json::String(number.to_string());
            }
            match &*value {
                Json::String(text) => text.is_empty() || (is_int64 && text == "0"),
                _ => false,
            }
        }
        Some("integer" | "number") => value.as_f64() == Some(0.0),
        Some("boolean") => *value == Json::Bool(false),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn enum_numbers_are_the_proto_numbers_not_discovery_positions() {
        // run.v2 lists LaunchStage as UNSPECIFIED, UNIMPLEMENTED, PRELAUNCH, EARLY_ACCESS, …;
        // google/api/launch_stage.proto numbers EARLY_ACCESS 1 and UNIMPLEMENTED 6.
        let names: Vec<Json> = [
            "LAUNCH_STAGE_UNSPECIFIED",
            "UNIMPLEMENTED",
            "PRELAUNCH",
            "EARLY_ACCESS",
            "ALPHA",
            "BETA",
            "GA",
            "DEPRECATED",
        ]
        .map(Json::from)
        .to_vec();
        assert_eq!(
            proto_enums::number(Api::Run, &names, "EARLY_ACCESS"),
            Some(1)
        );
        assert_eq!(
            proto_enums::number(Api::Run, &names, "UNIMPLEMENTED"),
            Some(6)
        );
        assert_eq!(
            proto_enums::name(Api::Run, &names, 4).as_deref(),
            Some("GA")
        );
    }

    #[test]
    fn requests_may_carry_enum_numbers() {
        let mut body = json!({"launchStage": 4, "ingress": 2});
        decode_request(Api::Run, "GoogleCloudRunV2Service", &mut body).expect("numbers");
        assert_eq!(
            body,
            json!({"launchStage": "GA", "ingress": "INGRESS_TRAFFIC_INTERNAL_ONLY"})
        );
        let mut body = json!({"ingress": 99});
        let error = decode_request(Api::Run, "GoogleCloudRunV2Service", &mut body)
            .expect_err("undefined number");
        assert!(error.message.contains("ingress"), "{}", error.message);
    }

    #[test]
    fn answers_follow_proto3_json() {
        let mut body = json!({
            "name": "n", "description": "", "generation": 3, "reconciling": false,
            "labels": {}, "ingress": "INGRESS_TRAFFIC_ALL", "launchStage": "LAUNCH_STAGE_UNSPECIFIED",
            "template": {"containers": [], "maxInstanceRequestConcurrency": 0},
        });
        encode_answer(Api::Run, "GoogleCloudRunV2Service", &mut body, false);
        assert_eq!(
            body,
            json!({"name": "n", "generation": "3", "ingress": "INGRESS_TRAFFIC_ALL", "template": {}})
        );
        encode_answer(Api::Run, "GoogleCloudRunV2Service", &mut body, true);
        assert_eq!(body["ingress"], json!(1));
    }

    #[test]
    fn fields_with_presence_keep_their_default() {
        let mut body = json!({"displayName": "d", "enabled": false});
        encode_answer(Api::MonitoringV3, "AlertPolicy", &mut body, false);
        assert_eq!(body, json!({"displayName": "d", "enabled": false}));
    }

    #[test]
    fn operations_encode_their_typed_response() {
        let mut body = json!({"name": "o", "done": true, "response": {
            "@type": "type.googleapis.com/google.cloud.run.v2.Service",
            "name": "s", "ingress": "INGRESS_TRAFFIC_ALL", "reconciling": false}});
        encode_answer(Api::Run, "GoogleLongrunningOperation", &mut body, true);
        assert_eq!(body["response"]["ingress"], json!(1));
        assert!(body["response"].get("reconciling").is_none());
    }
}
