//! Comparison of objects Google fills in: a dashboard's charts and an alert policy's conditions
//! come back with fields the request left out (`targetAxis`, `minAlignmentPeriod`,
//! `chartOptions.mode`, …; terraform-provider-google issues #7242 and #16173). Those fields are
//! kept only where the configuration set them: a kind trims what it records after a create or an
//! update to the keys the configuration set, and what it reads to the keys state recorded. So a
//! key Google added is never compared, while a configured key the configuration dropped (still
//! recorded, still live) or the live object lost (still configured) remains a change. It does not
//! decide which fields are server-filled: each kind names them.

use crate::value::{Attributes, Value};

/// Returns `live` keeping, in every map, only the keys `shape` has, recursively; list elements
/// are trimmed by the element of `shape` at the same position, and elements past the end of
/// `shape` are kept whole (the provider's `removeComputedKeys` aligns lists the same way).
/// Where `shape` is not the same kind of container, `live` is kept as it is.
pub fn keep_keys_of(live: &Value, shape: &Value) -> Value {
    match (live, shape) {
        (Value::Map(live_entries), Value::Map(shape_entries)) => Value::Map(
            live_entries
                .iter()
                .filter_map(|(key, value)| {
                    shape_entries
                        .get(key)
                        .map(|shaped| (key.clone(), keep_keys_of(value, shaped)))
                })
                .collect(),
        ),
        (Value::List(live_items), Value::List(shape_items)) => Value::List(
            live_items
                .iter()
                .enumerate()
                .map(|(index, item)| match shape_items.get(index) {
                    Some(shaped) => keep_keys_of(item, shaped),
                    None => item.clone(),
                })
                .collect(),
        ),
        _ => live.clone(),
    }
}

/// Trims each server-filled `field` of `live` to the keys `configured` sets in it (the desired
/// attributes after a write, the recorded ones after a read). A field `configured` lacks, or
/// whose value is unknown, is left whole.
pub fn trim_server_filled(live: &mut Attributes, configured: &Attributes, fields: &[&str]) {
    for field in fields {
        let (Some(value), Some(shape)) = (live.get(*field), configured.get(*field)) else {
            continue;
        };
        if shape.contains_unknown() {
            continue;
        }
        let trimmed = keep_keys_of(value, shape);
        live.insert((*field).to_string(), trimmed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::diff::changed_paths;
    use serde_json::json;

    fn attributes(value: serde_json::Value) -> Attributes {
        match Value::from_json(&value) {
            Value::Map(entries) => entries.into_iter().collect(),
            _ => Attributes::new(),
        }
    }

    #[test]
    fn keys_the_shape_lacks_are_dropped_at_every_depth() {
        let live = Value::from_json(&json!({"chart": {"mode": "COLOR", "sets": [
            {"plotType": "LINE", "query": "q", "targetAxis": "Y1"},
            {"plotType": "LINE", "query": "r"}
        ]}, "extra": 1}));
        let shape = Value::from_json(&json!({"chart": {"sets": [{"query": "q"}]}}));
        assert_eq!(
            keep_keys_of(&live, &shape),
            Value::from_json(&json!({"chart": {"sets": [
                {"query": "q"},
                {"plotType": "LINE", "query": "r"}
            ]}}))
        );
    }

    #[test]
    fn a_server_added_key_is_no_change_and_a_dropped_configured_key_is() {
        let fields = ["dashboard"];
        let desired =
            attributes(json!({"dashboard": {"sets": [{"query": "q", "plotType": "STACKED_BAR"}]}}));
        let answered = attributes(json!({"dashboard": {"sets": [
            {"query": "q", "plotType": "STACKED_BAR", "targetAxis": "Y1", "minAlignmentPeriod": "60s"}
        ]}}));
        // What a create records: the answer trimmed to what was configured.
        let mut recorded = answered.clone();
        trim_server_filled(&mut recorded, &desired, &fields);
        assert!(changed_paths(&desired, &recorded).is_empty());
        // What the next plan reads: the live object trimmed to what state recorded.
        let mut read = answered.clone();
        trim_server_filled(&mut read, &recorded, &fields);
        assert!(changed_paths(&desired, &read).is_empty(), "{read:?}");
        // The configuration drops plotType: recorded and live, so it is a change.
        let dropped = attributes(json!({"dashboard": {"sets": [{"query": "q"}]}}));
        assert_eq!(
            changed_paths(&dropped, &read),
            vec!["dashboard.sets[0].plotType".to_string()]
        );
        // The live object lost plotType: still configured, so it is a change.
        let mut lost =
            attributes(json!({"dashboard": {"sets": [{"query": "q", "targetAxis": "Y1"}]}}));
        trim_server_filled(&mut lost, &recorded, &fields);
        assert_eq!(
            changed_paths(&desired, &lost),
            vec!["dashboard.sets[0].plotType".to_string()]
        );
    }

    #[test]
    fn fields_not_named_or_not_configured_are_left_whole() {
        let mut live = attributes(json!({"labels": {"a": "1", "b": "2"}, "dashboard": {"x": 1}}));
        let configured = attributes(json!({"labels": {"a": "1"}}));
        trim_server_filled(&mut live, &configured, &["dashboard"]);
        assert_eq!(
            live["labels"],
            Value::from_json(&json!({"a": "1", "b": "2"}))
        );
        assert_eq!(live["dashboard"], Value::from_json(&json!({"x": 1})));
    }
}
