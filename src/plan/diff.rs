//! Structural comparison of desired and live attributes: the changed paths, with maps compared
//! key by key so that a removed key is a change like any other.

use crate::value::{Attributes, Value};

/// Returns the paths where `desired` and `live` differ, over the keys `desired` sets.
pub fn changed_paths(desired: &Attributes, live: &Attributes) -> Vec<String> {
    let mut paths = Vec::new();
    for (field, wanted) in desired {
        compare(
            field,
            wanted,
            live.get(field).unwrap_or(&Value::Null),
            &mut paths,
        );
    }
    paths
}

fn compare(path: &str, wanted: &Value, actual: &Value, paths: &mut Vec<String>) {
    match (wanted, actual) {
        (Value::Map(wanted_entries), Value::Map(actual_entries)) => {
            let keys: std::collections::BTreeSet<&String> =
                wanted_entries.keys().chain(actual_entries.keys()).collect();
            for key in keys {
                compare(
                    &format!("{path}.{key}"),
                    wanted_entries.get(key).unwrap_or(&Value::Null),
                    actual_entries.get(key).unwrap_or(&Value::Null),
                    paths,
                );
            }
        }
        (Value::Map(entries), Value::Null) | (Value::Null, Value::Map(entries))
            if entries.is_empty() => {}
        _ if wanted.is_unknown() => paths.push(path.to_string()),
        _ if wanted != actual => paths.push(path.to_string()),
        _ => {}
    }
}

/// Returns true when `path` is covered by an `ignore_changes` entry (itself or a parent).
pub fn is_ignored(path: &str, ignore_changes: &[String]) -> bool {
    ignore_changes
        .iter()
        .any(|ignored| path == ignored || path.starts_with(&format!("{ignored}.")))
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
    }

    #[test]
    fn equal_values_and_empty_maps_do_not_differ() {
        let desired = Attributes::from([
            ("annotations".into(), labels(&[])),
            ("id".into(), Value::string("a")),
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
    fn ignore_changes_covers_children() {
        assert!(is_ignored("labels.owner", &["labels".into()]));
        assert!(is_ignored("labels.owner", &["labels.owner".into()]));
        assert!(!is_ignored("labels_x", &["labels".into()]));
    }
}
