//! Proto3 JSON's default-value omission, applied to what `infra` wants so that it compares with
//! what Google answers: Google leaves out zero, false, the empty string and the empty list
//! (<https://protobuf.dev/programming-guides/json/>), so a configured `xPos = 0` and an answer
//! without `xPos` are the same document.

use serde_json::Value as Json;

/// Returns `document` without the fields proto3 JSON would leave out. Empty objects stay: a set
/// but empty message is not a default (`{"automatic": {}}` is a choice).
pub fn omit_defaults(document: &Json) -> Json {
    match document {
        Json::Object(fields) => Json::Object(
            fields
                .iter()
                .filter(|(_, value)| !is_default(value))
                .map(|(key, value)| (key.clone(), omit_defaults(value)))
                .collect(),
        ),
        Json::Array(items) => Json::Array(items.iter().map(omit_defaults).collect()),
        other => other.clone(),
    }
}

fn is_default(value: &Json) -> bool {
    match value {
        Json::Null => true,
        Json::Bool(flag) => !flag,
        Json::Number(number) => number.as_f64() == Some(0.0),
        Json::String(text) => text.is_empty(),
        Json::Array(items) => items.is_empty(),
        Json::Object(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_are_left_out_at_every_depth_but_empty_messages_stay() {
        let document = json!({
            "tiles": [{"xPos": 0, "yPos": 4, "widget": {"title": ""}}],
            "filters": [],
            "enabled": false,
            "automatic": {},
        });
        assert_eq!(
            omit_defaults(&document),
            json!({"tiles": [{"yPos": 4, "widget": {}}], "automatic": {}})
        );
    }
}
