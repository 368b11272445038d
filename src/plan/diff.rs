//! Structural comparison of desired and live attributes. Maps are compared key by key (a
//! removed key is a change like any other); lists are aligned with `similar`, so an inserted
//! dashboard tile is one added element rather than every later tile changing. Each difference
//! names its path (`dashboard.mosaicLayout.tiles[3].xPos`) with the values on both sides.

use crate::value::{Attributes, Value};
use similar::{Algorithm, DiffOp, capture_diff_slices};

/// One difference: the path, and the value before and after (`None` when absent).
#[derive(Debug, Clone, PartialEq)]
pub struct Difference {
    pub path: String,
    pub before: Option<Value>,
    pub after: Option<Value>,
}

/// Returns the paths where `desired` and `live` differ, over the keys `desired` sets.
pub fn changed_paths(desired: &Attributes, live: &Attributes) -> Vec<String> {
    differences(desired, live)
        .into_iter()
        .map(|difference| difference.path)
        .collect()
}

/// Returns the differences between `live` (before) and `desired` (after), over the keys
/// `desired` sets.
pub fn differences(desired: &Attributes, live: &Attributes) -> Vec<Difference> {
    let mut found = Vec::new();
    for (field, wanted) in desired {
        compare(
            field,
            wanted,
            live.get(field).unwrap_or(&Value::Null),
            &mut found,
        );
    }
    found
}

fn present(value: &Value) -> Option<Value> {
    (!matches!(value, Value::Null)).then(|| value.clone())
}

fn compare(path: &str, wanted: &Value, actual: &Value, found: &mut Vec<Difference>) {
    match (wanted, actual) {
        _ if wanted.is_unknown() => found.push(Difference {
            path: path.to_string(),
            before: present(actual),
            after: Some(wanted.clone()),
        }),
        (Value::Map(wanted_entries), Value::Map(actual_entries)) => {
            let keys: std::collections::BTreeSet<&String> =
                wanted_entries.keys().chain(actual_entries.keys()).collect();
            for key in keys {
                compare(
                    &format!("{path}.{key}"),
                    wanted_entries.get(key).unwrap_or(&Value::Null),
                    actual_entries.get(key).unwrap_or(&Value::Null),
                    found,
                );
            }
        }
        (Value::Map(entries), Value::Null) | (Value::Null, Value::Map(entries))
            if entries.is_empty() => {}
        (Value::List(items), Value::Null) | (Value::Null, Value::List(items))
            if items.is_empty() => {}
        (Value::List(wanted_items), Value::List(actual_items)) if wanted_items != actual_items => {
            compare_lists(path, wanted_items, actual_items, found);
        }
        _ if wanted != actual => found.push(Difference {
            path: path.to_string(),
            before: present(actual),
            after: present(wanted),
        }),
        _ => {}
    }
}

fn compare_lists(path: &str, wanted: &[Value], actual: &[Value], found: &mut Vec<Difference>) {
    let key = |value: &Value| serde_json::to_string(value).unwrap_or_default();
    let old: Vec<String> = actual.iter().map(key).collect();
    let new: Vec<String> = wanted.iter().map(key).collect();
    for operation in capture_diff_slices(Algorithm::Myers, &old, &new) {
        match operation {
            DiffOp::Equal { .. } => {}
            DiffOp::Delete {
                old_index, old_len, ..
            } => removed(path, actual, old_index, old_len, found),
            DiffOp::Insert {
                new_index, new_len, ..
            } => added(path, wanted, new_index, new_len, found),
            DiffOp::Replace {
                old_index,
                old_len,
                new_index,
                new_len,
            } => {
                // Pair the replaced elements in order and compare them field by field; the rest
                // were added or removed.
                let paired = old_len.min(new_len);
                for offset in 0..paired {
                    compare(
                        &format!("{path}[{}]", new_index + offset),
                        &wanted[new_index + offset],
                        &actual[old_index + offset],
                        found,
                    );
                }
                removed(path, actual, old_index + paired, old_len - paired, found);
                added(path, wanted, new_index + paired, new_len - paired, found);
            }
        }
    }
}

fn removed(path: &str, items: &[Value], start: usize, count: usize, found: &mut Vec<Difference>) {
    for (index, item) in items.iter().enumerate().skip(start).take(count) {
        found.push(Difference {
            path: format!("{path}[{index}]"),
            before: Some(item.clone()),
            after: None,
        });
    }
}

fn added(path: &str, items: &[Value], start: usize, count: usize, found: &mut Vec<Difference>) {
    for (index, item) in items.iter().enumerate().skip(start).take(count) {
        found.push(Difference {
            path: format!("{path}[{index}]"),
            before: None,
            after: Some(item.clone()),
        });
    }
}

/// Returns the top-level field a path starts with.
pub fn top_field(path: &str) -> &str {
    path.split(['.', '[']).next().unwrap_or(path)
}

/// Returns true when `path` is covered by an `ignore_changes` entry (itself or a parent).
pub fn is_ignored(path: &str, ignore_changes: &[String]) -> bool {
    ignore_changes.iter().any(|ignored| {
        path == ignored
            || path
                .strip_prefix(ignored.as_str())
                .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn labels(pairs: &[(&str, &str)]) -> Value {
        Value::Map(
            pairs
                .iter()
                .map(|(key, value)| (key.to_string(), Value::string(*value)))
                .collect::<BTreeMap<_, _>>(),
        )
    }

    fn json(text: &str) -> Value {
        Value::from_json(&serde_json::from_str(text).expect("json"))
    }

    #[test]
    fn map_keys_are_compared_one_by_one() {
        let desired =
            Attributes::from([("labels".into(), labels(&[("env", "prod"), ("app", "x")]))]);
        let live = Attributes::from([(
            "labels".into(),
            labels(&[("env", "dev"), ("owner", "me"), ("app", "x")]),
        )]);
        assert_eq!(
            changed_paths(&desired, &live),
            vec!["labels.env", "labels.owner"]
        );
        let removed = &differences(&desired, &live)[1];
        assert_eq!(
            (removed.before.clone(), removed.after.clone()),
            (Some(Value::string("me")), None)
        );
    }

    #[test]
    fn equal_values_and_empty_collections_do_not_differ() {
        let desired = Attributes::from([
            ("annotations".into(), labels(&[])),
            ("id".into(), Value::string("a")),
            ("tags".into(), Value::List(vec![])),
        ]);
        let live = Attributes::from([("id".into(), Value::string("a"))]);
        assert!(changed_paths(&desired, &live).is_empty());
    }

    #[test]
    fn unknown_always_differs_and_sensitive_compares_fingerprints() {
        let desired = Attributes::from([
            ("version".into(), Value::unknown()),
            ("value".into(), Value::sensitive("sha256:1")),
        ]);
        let live = Attributes::from([
            ("version".into(), Value::string("v1")),
            ("value".into(), Value::sensitive("sha256:2")),
        ]);
        assert_eq!(changed_paths(&desired, &live), vec!["value", "version"]);
    }

    #[test]
    fn a_moved_tile_is_its_changed_fields() {
        let live = Attributes::from([(
            "dashboard".into(),
            json(r#"{"tiles": [{"x": 0, "w": {"title": "a"}}, {"x": 6, "w": {"title": "b"}}]}"#),
        )]);
        let desired = Attributes::from([(
            "dashboard".into(),
            json(r#"{"tiles": [{"x": 0, "w": {"title": "a"}}, {"x": 12, "w": {"title": "b"}}]}"#),
        )]);
        let found = differences(&desired, &live);
        assert_eq!(found.len(), 1);
        assert_eq!(
            found[0],
            Difference {
                path: "dashboard.tiles[1].x".into(),
                before: Some(Value::Integer(6)),
                after: Some(Value::Integer(12))
            }
        );
    }

    #[test]
    fn an_inserted_element_does_not_shift_the_rest() {
        let live = Attributes::from([("tiles".into(), json(r#"["a", "b", "c"]"#))]);
        let desired = Attributes::from([("tiles".into(), json(r#"["a", "new", "b", "c"]"#))]);
        let found = differences(&desired, &live);
        assert_eq!(
            found,
            vec![Difference {
                path: "tiles[1]".into(),
                before: None,
                after: Some(Value::string("new"))
            }]
        );
        let removed = differences(&live, &desired);
        assert_eq!(
            removed,
            vec![Difference {
                path: "tiles[1]".into(),
                before: Some(Value::string("new")),
                after: None
            }]
        );
    }

    #[test]
    fn ignore_changes_covers_children() {
        assert!(is_ignored("labels.owner", &["labels".into()]));
        assert!(is_ignored("labels.owner", &["labels.owner".into()]));
        assert!(is_ignored("conditions[0].name", &["conditions".into()]));
        assert!(!is_ignored("labels_x", &["labels".into()]));
        assert_eq!(top_field("conditions[0].x"), "conditions");
    }
}
