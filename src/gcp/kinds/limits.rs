//! The declared limits of a kind's fields, checked before any API call: numeric bounds at a path
//! (a field, or a place inside a table, a list, or a JSON document held in a string) and pairs
//! of fields where the first may not exceed the second. Kinds declare them as data (`Kind::bounds`,
//! `Kind::ordered_pairs`); the one checker here reads them. Shapes and types are checked
//! elsewhere: a value of the wrong type is skipped here, not reported twice.

use crate::value::{Attributes, Value};

/// The largest value of an API field whose discovery `format` is `int32`.
pub const INT32_MAX: i64 = i32::MAX as i64;

/// A numeric bound on the values at a path of a kind's configuration.
#[derive(Debug)]
pub struct Bound {
    /// Where: a field, then `.key` into a table (or a JSON document in a string); a segment
    /// ending in `[]` stands for every item of a list.
    pub path: &'static str,
    pub min: i64,
    pub max: i64,
    /// Where the limit comes from (an API field's format or documentation), for the hint.
    pub source: &'static str,
}

impl Bound {
    /// Declares that the values at `path` lie from `min` to `max`, per `source`.
    pub const fn new(path: &'static str, min: i64, max: i64, source: &'static str) -> Self {
        Self {
            path,
            min,
            max,
            source,
        }
    }
}

/// Two fields where the first may not exceed the second (`min_instances` ≤ `max_instances`).
#[derive(Debug)]
pub struct OrderedPair {
    pub lower: &'static str,
    pub upper: &'static str,
}

/// One broken limit, with the field it belongs to so the error can point at it.
#[derive(Debug, Clone, PartialEq)]
pub struct LimitProblem {
    /// The top-level field holding the offending value.
    pub field: String,
    /// The other field of a broken pair.
    pub other_field: Option<String>,
    pub message: String,
    pub hint: String,
}

/// Returns every broken bound and pair of a configuration; unknown values are skipped.
pub fn check_limits(
    bounds: &[Bound],
    pairs: &[OrderedPair],
    config: &Attributes,
) -> Vec<LimitProblem> {
    let mut problems = Vec::new();
    for bound in bounds {
        let segments: Vec<&str> = bound.path.split('.').collect();
        let mut found = Vec::new();
        collect_in(config, &segments, String::new(), &mut found);
        for (shown, value) in found {
            let Some(number) = number(&value) else {
                continue;
            };
            if number < bound.min as f64 || number > bound.max as f64 {
                problems.push(LimitProblem {
                    field: segments[0].trim_end_matches("[]").to_string(),
                    other_field: None,
                    message: format!(
                        "`{shown}` = {value} is out of range: it must be from {} to {}",
                        bound.min, bound.max
                    ),
                    hint: format!(
                        "use a value from {} to {} ({})",
                        bound.min, bound.max, bound.source
                    ),
                });
            }
        }
    }
    for pair in pairs {
        let (Some(lower), Some(upper)) = (
            config.get(pair.lower).and_then(number),
            config.get(pair.upper).and_then(number),
        ) else {
            continue;
        };
        if lower > upper {
            problems.push(LimitProblem {
                field: pair.lower.to_string(),
                other_field: Some(pair.upper.to_string()),
                message: format!(
                    "`{}` = {lower} is greater than `{}` = {upper}",
                    pair.lower, pair.upper
                ),
                hint: format!(
                    "{} may not exceed {}: lower the one or raise the other",
                    pair.lower, pair.upper
                ),
            });
        }
    }
    problems
}

/// Returns a known number as f64 (exact for every bound we declare, all within ±2^53).
fn number(value: &Value) -> Option<f64> {
    match value {
        Value::Integer(integer) => Some(*integer as f64),
        Value::Float(float) => Some(*float),
        _ => None,
    }
}

/// Collects the values at `segments` below `value`, with the path as the user would write it.
fn collect(value: &Value, segments: &[&str], shown: String, found: &mut Vec<(String, Value)>) {
    if segments.is_empty() {
        found.push((shown, value.clone()));
        return;
    }
    match value {
        Value::Map(table) => collect_in(table, segments, shown, found),
        // A JSON document written as a string (a dashboard) is checked like a table.
        Value::String(text) => {
            if let Ok(json) = serde_json::from_str::<serde_json::Value>(text)
                && let Value::Map(table) = Value::from_json(&json)
            {
                collect_in(&table, segments, shown, found);
            }
        }
        _ => {}
    }
}

/// Collects the values at `segments` below the entries of `table` (borrowed: checking a
/// configuration copies nothing but the values found).
fn collect_in(
    table: &Attributes,
    segments: &[&str],
    shown: String,
    found: &mut Vec<(String, Value)>,
) {
    let Some((segment, rest)) = segments.split_first() else {
        return;
    };
    let (key, each) = match segment.strip_suffix("[]") {
        Some(key) => (key, true),
        None => (*segment, false),
    };
    let Some(child) = table.get(key) else {
        return;
    };
    let shown = if shown.is_empty() {
        key.to_string()
    } else {
        format!("{shown}.{key}")
    };
    if !each {
        collect(child, rest, shown, found);
        return;
    }
    if let Value::List(items) = child {
        for (index, item) in items.iter().enumerate() {
            collect(item, rest, format!("{shown}[{index}]"), found);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    const BOUNDS: [Bound; 2] = [
        Bound::new("count", 0, INT32_MAX, "int32"),
        Bound::new("document.tiles[].width", 1, 48, "the grid"),
    ];
    const PAIRS: [OrderedPair; 1] = [OrderedPair {
        lower: "low",
        upper: "high",
    }];

    fn config(entries: &[(&str, Value)]) -> Attributes {
        entries
            .iter()
            .map(|(key, value)| (key.to_string(), value.clone()))
            .collect()
    }

    #[test]
    fn a_value_beyond_int32_is_reported_with_its_range() {
        let problems = check_limits(
            &BOUNDS,
            &PAIRS,
            &config(&[("count", Value::Integer(INT32_MAX + 1))]),
        );
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].field, "count");
        assert!(
            problems[0]
                .message
                .contains("`count` = 2147483648 is out of range: it must be from 0 to 2147483647"),
            "{problems:?}"
        );
        assert!(
            check_limits(
                &BOUNDS,
                &PAIRS,
                &config(&[("count", Value::Integer(INT32_MAX))])
            )
            .is_empty()
        );
    }

    #[test]
    fn bounds_reach_into_lists_and_json_strings() {
        let tiles = r#"{"tiles": [{"width": 4}, {"width": 0}, {"width": 49.5}]}"#;
        let problems = check_limits(
            &BOUNDS,
            &PAIRS,
            &config(&[("document", Value::string(tiles))]),
        );
        let messages: Vec<&str> = problems
            .iter()
            .map(|problem| problem.message.as_str())
            .collect();
        assert_eq!(messages.len(), 2, "{messages:?}");
        assert!(messages[0].starts_with("`document.tiles[1].width` = 0"));
        assert!(messages[1].starts_with("`document.tiles[2].width` = 49.5"));
        let table = Value::Map(BTreeMap::from([(
            "tiles".to_string(),
            Value::List(vec![Value::Map(BTreeMap::from([(
                "width".to_string(),
                Value::Integer(100),
            )]))]),
        )]));
        assert_eq!(
            check_limits(&BOUNDS, &PAIRS, &config(&[("document", table)])).len(),
            1
        );
    }

    #[test]
    fn a_lower_field_above_its_upper_is_reported_and_unknowns_are_skipped() {
        let problems = check_limits(
            &BOUNDS,
            &PAIRS,
            &config(&[("low", Value::Integer(5)), ("high", Value::Integer(2))]),
        );
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].other_field.as_deref(), Some("high"));
        assert!(
            check_limits(
                &BOUNDS,
                &PAIRS,
                &config(&[("low", Value::Integer(5)), ("high", Value::unknown())]),
            )
            .is_empty()
        );
        assert!(
            check_limits(
                &BOUNDS,
                &PAIRS,
                &config(&[("low", Value::Integer(2)), ("high", Value::Integer(2))]),
            )
            .is_empty()
        );
    }
}
