//! The values that configuration expressions evaluate to and that plans compare: JSON-like data
//! plus `Unknown` (known only after apply) and `Sensitive` (a fingerprint standing in for a
//! secret). Conversion to and from API JSON lives here; evaluation does not.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// A configuration or plan value.
#[derive(Clone, Debug, PartialEq, Serialize, Default)]
#[serde(untagged)]
pub enum Value {
    #[default]
    Null,
    Bool(bool),
    Integer(i64),
    Float(f64),
    String(String),
    List(Vec<Value>),
    /// Unknown and Sensitive serialize as one-key maps with reserved keys, so they survive a
    /// round trip through a plan file (see docs/plan-json.md).
    Marker(Marker),
    Map(BTreeMap<String, Value>),
}

/// A value that is not plain data.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Marker {
    /// Known only after apply.
    #[serde(rename = "(known after apply)")]
    Unknown(bool),
    /// A secret, represented by its keyed fingerprint (see `sensitive.rs`).
    #[serde(rename = "(sensitive)")]
    Sensitive(String),
}

impl Value {
    /// Returns the value that is known only after apply.
    pub fn unknown() -> Self {
        Value::Marker(Marker::Unknown(true))
    }

    /// Returns a sensitive value represented by its fingerprint.
    pub fn sensitive(fingerprint: impl Into<String>) -> Self {
        Value::Marker(Marker::Sensitive(fingerprint.into()))
    }

    /// Returns a string value.
    pub fn string(text: impl Into<String>) -> Self {
        Value::String(text.into())
    }

    /// Returns true when this value, or anything inside it, is unknown.
    pub fn contains_unknown(&self) -> bool {
        match self {
            Value::Marker(Marker::Unknown(_)) => true,
            Value::List(items) => items.iter().any(Value::contains_unknown),
            Value::Map(entries) => entries.values().any(Value::contains_unknown),
            _ => false,
        }
    }

    /// Returns true for `Unknown`.
    pub fn is_unknown(&self) -> bool {
        matches!(self, Value::Marker(Marker::Unknown(_)))
    }

    /// Returns the string inside, if this is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(text) => Some(text),
            _ => None,
        }
    }

    /// Returns the map inside, if this is a map.
    pub fn as_map(&self) -> Option<&BTreeMap<String, Value>> {
        match self {
            Value::Map(entries) => Some(entries),
            _ => None,
        }
    }

    /// Returns the name of this value's type, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "bool",
            Value::Integer(_) => "integer",
            Value::Float(_) => "float",
            Value::String(_) => "string",
            Value::List(_) => "list",
            Value::Map(_) => "map",
            Value::Marker(Marker::Unknown(_)) => "unknown",
            Value::Marker(Marker::Sensitive(_)) => "sensitive",
        }
    }

    /// Renders a scalar for string interpolation; `None` for lists, maps and markers.
    pub fn to_interpolation(&self) -> Option<String> {
        match self {
            Value::Null => Some(String::new()),
            Value::Bool(flag) => Some(flag.to_string()),
            Value::Integer(number) => Some(number.to_string()),
            Value::Float(number) => Some(number.to_string()),
            Value::String(text) => Some(text.clone()),
            _ => None,
        }
    }

    /// Converts API JSON into a value.
    pub fn from_json(json: &serde_json::Value) -> Self {
        match json {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(flag) => Value::Bool(*flag),
            serde_json::Value::Number(number) => number
                .as_i64()
                .map(Value::Integer)
                .unwrap_or_else(|| Value::Float(number.as_f64().unwrap_or_default())),
            serde_json::Value::String(text) => Value::String(text.clone()),
            serde_json::Value::Array(items) => {
                Value::List(items.iter().map(Value::from_json).collect())
            }
            serde_json::Value::Object(entries) => Value::Map(
                entries
                    .iter()
                    .map(|(key, item)| (key.clone(), Value::from_json(item)))
                    .collect(),
            ),
        }
    }

    /// Converts into API JSON; markers become null (callers check `contains_unknown` first).
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Value::Null | Value::Marker(_) => serde_json::Value::Null,
            Value::Bool(flag) => serde_json::Value::Bool(*flag),
            Value::Integer(number) => serde_json::Value::from(*number),
            Value::Float(number) => serde_json::Value::from(*number),
            Value::String(text) => serde_json::Value::String(text.clone()),
            Value::List(items) => {
                serde_json::Value::Array(items.iter().map(Value::to_json).collect())
            }
            Value::Map(entries) => serde_json::Value::Object(
                entries
                    .iter()
                    .map(|(key, item)| (key.clone(), item.to_json()))
                    .collect(),
            ),
        }
    }
}

impl fmt::Display for Value {
    /// Renders the value the way plans show it: strings quoted, maps and lists inline.
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => formatter.write_str("null"),
            Value::Bool(flag) => write!(formatter, "{flag}"),
            Value::Integer(number) => write!(formatter, "{number}"),
            Value::Float(number) => write!(formatter, "{number}"),
            Value::String(text) => write!(formatter, "{text:?}"),
            Value::Marker(Marker::Unknown(_)) => formatter.write_str("(known after apply)"),
            Value::Marker(Marker::Sensitive(_)) => formatter.write_str("(sensitive value)"),
            Value::List(items) => {
                formatter.write_str("[")?;
                for (position, item) in items.iter().enumerate() {
                    if position > 0 {
                        formatter.write_str(", ")?;
                    }
                    write!(formatter, "{item}")?;
                }
                formatter.write_str("]")
            }
            Value::Map(entries) => {
                formatter.write_str("{")?;
                for (position, (key, item)) in entries.iter().enumerate() {
                    if position > 0 {
                        formatter.write_str(", ")?;
                    }
                    write!(formatter, "{key} = {item}")?;
                }
                formatter.write_str("}")
            }
        }
    }
}

/// Attributes of one resource: field name to value, sorted for deterministic output.
pub type Attributes = BTreeMap<String, Value>;

/// Reads a value in one pass. Serde's `untagged` would buffer every value and try each variant
/// in turn, which dominates loading a large state; this visitor decides from the JSON type, and
/// a one-key map whose key is a marker's name is that marker (as `untagged` would find).
impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> serde::de::Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        Value::deserialize(deserializer)
    }

    fn visit_bool<E>(self, flag: bool) -> Result<Value, E> {
        Ok(Value::Bool(flag))
    }

    fn visit_i64<E>(self, number: i64) -> Result<Value, E> {
        Ok(Value::Integer(number))
    }

    fn visit_u64<E>(self, number: u64) -> Result<Value, E> {
        Ok(i64::try_from(number).map_or(Value::Float(number as f64), Value::Integer))
    }

    fn visit_f64<E>(self, number: f64) -> Result<Value, E> {
        Ok(Value::Float(number))
    }

    fn visit_str<E>(self, text: &str) -> Result<Value, E> {
        Ok(Value::String(text.to_string()))
    }

    fn visit_string<E>(self, text: String) -> Result<Value, E> {
        Ok(Value::String(text))
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut sequence: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(sequence.size_hint().unwrap_or(0).min(4096));
        while let Some(item) = sequence.next_element()? {
            items.push(item);
        }
        Ok(Value::List(items))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut entries = BTreeMap::new();
        while let Some((key, value)) = map.next_entry::<String, Value>()? {
            entries.insert(key, value);
        }
        if entries.len() == 1 {
            let marker = match entries.first_key_value() {
                Some((key, Value::Bool(flag))) if key == "(known after apply)" => {
                    Some(Marker::Unknown(*flag))
                }
                Some((key, Value::String(fingerprint))) if key == "(sensitive)" => {
                    Some(Marker::Sensitive(fingerprint.clone()))
                }
                _ => None,
            };
            if let Some(marker) = marker {
                return Ok(Value::Marker(marker));
            }
        }
        Ok(Value::Map(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_round_trip_through_json() {
        let mut attributes = Attributes::new();
        attributes.insert("version".into(), Value::unknown());
        attributes.insert("value".into(), Value::sensitive("sha256:ab"));
        attributes.insert(
            "labels".into(),
            Value::Map(BTreeMap::from([("a".into(), Value::string("b"))])),
        );
        let text = serde_json::to_string(&attributes).expect("serializes");
        assert_eq!(
            text,
            r#"{"labels":{"a":"b"},"value":{"(sensitive)":"sha256:ab"},"version":{"(known after apply)":true}}"#
        );
        let back: Attributes = serde_json::from_str(&text).expect("parses");
        assert_eq!(back, attributes);
    }

    #[test]
    fn every_json_type_reads_as_its_value() {
        let text = r#"[null, true, -3, 18446744073709551615, 1.5, "x", [1], {"(sensitive)": 1}, {"(sensitive)": "f", "b": 2}, {"(known after apply)": false}]"#;
        let read: Value = serde_json::from_str(text).expect("parses");
        let map = |entries: &[(&str, Value)]| {
            Value::Map(
                entries
                    .iter()
                    .map(|(key, value)| (key.to_string(), value.clone()))
                    .collect(),
            )
        };
        assert_eq!(
            read,
            Value::List(vec![
                Value::Null,
                Value::Bool(true),
                Value::Integer(-3),
                Value::Float(u64::MAX as f64),
                Value::Float(1.5),
                Value::string("x"),
                Value::List(vec![Value::Integer(1)]),
                // Not a marker: a fingerprint is a string.
                map(&[("(sensitive)", Value::Integer(1))]),
                map(&[
                    ("(sensitive)", Value::string("f")),
                    ("b", Value::Integer(2))
                ]),
                Value::Marker(Marker::Unknown(false)),
            ])
        );
    }

    #[test]
    fn display_masks_sensitive_and_unknown() {
        assert_eq!(
            Value::sensitive("sha256:x").to_string(),
            "(sensitive value)"
        );
        assert_eq!(Value::unknown().to_string(), "(known after apply)");
        assert!(Value::List(vec![Value::unknown()]).contains_unknown());
    }
}
