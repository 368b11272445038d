//! Renders a plan for people, in Terraform's idiom: `+ ~ - -/+` per resource, changed paths
//! with old → new values, secrets as `(sensitive value)`, unknowns as `(known after apply)`,
//! drift first and a closing counts line. Color is decoration only: symbols always appear.

use super::model::{Action, Drift, Plan, ResourceChange};
use crate::value::{Attributes, Value};
use std::fmt::Write;

/// Whether to color the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColorChoice {
    Always,
    Never,
}

impl ColorChoice {
    /// Returns `Always` when stdout is a terminal and `NO_COLOR` is unset.
    pub fn detect(stream_is_terminal: bool) -> Self {
        let disabled = std::env::var_os("NO_COLOR").is_some_and(|value| !value.is_empty());
        if stream_is_terminal && !disabled {
            ColorChoice::Always
        } else {
            ColorChoice::Never
        }
    }
}

struct Painter {
    color: ColorChoice,
}

impl Painter {
    fn paint(&self, action: Action, text: &str) -> String {
        if self.color == ColorChoice::Never {
            return text.to_string();
        }
        let code = match action {
            Action::Create => "32",
            Action::Update => "33",
            Action::Delete => "31",
            Action::Replace => "35",
            Action::NoOp => return text.to_string(),
        };
        format!("\x1b[{code}m{text}\x1b[0m")
    }

    fn bold(&self, text: &str) -> String {
        if self.color == ColorChoice::Never {
            text.to_string()
        } else {
            format!("\x1b[1m{text}\x1b[0m")
        }
    }
}

/// Renders the whole plan.
pub fn render_plan(plan: &Plan, color: ColorChoice) -> String {
    let painter = Painter { color };
    let mut out = String::new();
    if !plan.drift.is_empty() {
        let _ = writeln!(
            out,
            "{}\n",
            painter.bold("Objects have changed outside of infra:")
        );
        for drift in &plan.drift {
            render_drift(&mut out, drift);
        }
        out.push('\n');
    }
    let actionable: Vec<&ResourceChange> = plan
        .changes
        .iter()
        .filter(|change| change.action != Action::NoOp)
        .collect();
    let output_changes: Vec<_> = plan
        .outputs
        .iter()
        .filter(|(_, output)| output.action != Action::NoOp)
        .collect();
    if actionable.is_empty() && output_changes.is_empty() {
        out.push_str(&painter.bold("No changes."));
        out.push_str(" Your infrastructure matches the configuration.\n");
        return out;
    }
    if !actionable.is_empty() {
        out.push_str("infra will perform the following actions:\n\n");
        for change in actionable {
            render_change(&mut out, change, &painter);
            out.push('\n');
        }
    }
    if !output_changes.is_empty() {
        out.push_str("Changes to Outputs:\n");
        for (address, output) in output_changes {
            let symbol = painter.paint(output.action, output.action.symbol());
            let shown = |value: &Option<Value>| match value {
                _ if output.sensitive => "(sensitive value)".to_string(),
                Some(value) => value.to_string(),
                None => "null".to_string(),
            };
            match output.action {
                Action::Create => {
                    let _ = writeln!(out, "  {symbol} {address} = {}", shown(&output.after));
                }
                Action::Delete => {
                    let _ = writeln!(out, "  {symbol} {address} = {}", shown(&output.before));
                }
                _ => {
                    let _ = writeln!(
                        out,
                        "  {symbol} {address} = {} -> {}",
                        shown(&output.before),
                        shown(&output.after)
                    );
                }
            }
        }
        out.push('\n');
    }
    let (add, change, destroy) = plan.counts();
    let _ = writeln!(
        out,
        "{} {add} to add, {change} to change, {destroy} to destroy.",
        painter.bold("Plan:")
    );
    out
}

fn render_drift(out: &mut String, drift: &Drift) {
    match drift.kind.as_str() {
        "deleted" => {
            let _ = writeln!(out, "  # {} has been deleted", drift.address);
        }
        _ => {
            let _ = writeln!(
                out,
                "  # {} has changed: {}",
                drift.address,
                drift.paths.join(", ")
            );
        }
    }
}

fn describe(change: &ResourceChange) -> String {
    let what = match change.action {
        Action::Create => "will be created",
        Action::Update => "will be updated in-place",
        Action::Replace => "must be replaced",
        Action::Delete => "will be destroyed",
        Action::NoOp => "is unchanged",
    };
    match &change.reason {
        Some(reason) => format!("{what} ({reason})"),
        None => what.to_string(),
    }
}

/// Attributes that exist for bookkeeping and never appear in plans.
fn is_hidden(field: &str) -> bool {
    field.ends_with("_salt")
}

fn render_change(out: &mut String, change: &ResourceChange, painter: &Painter) {
    let symbol = painter.paint(change.action, change.action.symbol());
    let _ = writeln!(out, "  # {} {}", change.address, describe(change));
    let _ = writeln!(out, "  {symbol} {} {{", change.address);
    if let Some(id) = &change.id
        && change.action != Action::Create
    {
        let _ = writeln!(out, "        id = {id:?}");
    }
    let empty = Attributes::new();
    let before = change.before.as_ref().unwrap_or(&empty);
    let after = change.after.as_ref().unwrap_or(&empty);
    let width = after
        .keys()
        .chain(before.keys())
        .filter(|field| !is_hidden(field))
        .map(String::len)
        .max()
        .unwrap_or(0);
    match change.action {
        Action::Create => {
            for (field, value) in after.iter().filter(|(field, _)| !is_hidden(field)) {
                render_value(out, painter, Action::Create, field, width, value, 6);
            }
        }
        Action::Delete => {
            for (field, value) in before.iter().filter(|(field, _)| !is_hidden(field)) {
                render_value(out, painter, Action::Delete, field, width, value, 6);
            }
        }
        Action::Update | Action::Replace | Action::NoOp => {
            let width = after
                .keys()
                .filter(|field| {
                    change
                        .changed
                        .iter()
                        .any(|path| path.split('.').next() == Some(field.as_str()))
                })
                .map(String::len)
                .max()
                .unwrap_or(0);
            for (field, wanted) in after.iter().filter(|(field, _)| !is_hidden(field)) {
                let paths: Vec<&String> = change
                    .changed
                    .iter()
                    .filter(|path| path.split('.').next() == Some(field.as_str()))
                    .collect();
                if paths.is_empty() {
                    continue;
                }
                let forces = change
                    .replace_paths
                    .iter()
                    .any(|path| path.split('.').next() == Some(field.as_str()));
                let note = if forces {
                    painter.paint(Action::Replace, " # forces replacement")
                } else {
                    String::new()
                };
                let current = before.get(field).unwrap_or(&Value::Null);
                match (current, wanted) {
                    (Value::Map(old), Value::Map(new)) => {
                        let _ = writeln!(
                            out,
                            "      {} {field:<width$} = {{{note}",
                            painter.paint(Action::Update, "~")
                        );
                        for path in paths {
                            let key = path.split_once('.').map_or("", |(_, key)| key);
                            match (old.get(key), new.get(key)) {
                                (None, Some(added)) => {
                                    let _ = writeln!(
                                        out,
                                        "          {} {key:?} = {added}",
                                        painter.paint(Action::Create, "+")
                                    );
                                }
                                (Some(removed), None) => {
                                    let _ = writeln!(
                                        out,
                                        "          {} {key:?} = {removed}",
                                        painter.paint(Action::Delete, "-")
                                    );
                                }
                                (Some(old), Some(new)) => {
                                    let _ = writeln!(
                                        out,
                                        "          {} {key:?} = {old} -> {new}",
                                        painter.paint(Action::Update, "~")
                                    );
                                }
                                (None, None) => {}
                            }
                        }
                        let _ = writeln!(out, "        }}");
                    }
                    _ => {
                        let shown = |value: &Value| {
                            if change.sensitive.contains(field) {
                                "(sensitive value)".to_string()
                            } else {
                                value.to_string()
                            }
                        };
                        let _ = writeln!(
                            out,
                            "      {} {field:<width$} = {} -> {}{note}",
                            painter.paint(Action::Update, "~"),
                            shown(current),
                            shown(wanted)
                        );
                    }
                }
            }
        }
    }
    let _ = writeln!(out, "    }}");
}

fn render_value(
    out: &mut String,
    painter: &Painter,
    action: Action,
    field: &str,
    width: usize,
    value: &Value,
    indent: usize,
) {
    let symbol = painter.paint(action, action.symbol());
    let pad = " ".repeat(indent);
    match value {
        Value::Map(entries) if !entries.is_empty() => {
            let _ = writeln!(out, "{pad}{symbol} {field:<width$} = {{");
            let inner = entries
                .keys()
                .map(|key| format!("{key:?}").len())
                .max()
                .unwrap_or(0);
            for (key, item) in entries {
                let quoted = format!("{key:?}");
                let _ = writeln!(out, "{pad}    {symbol} {quoted:<inner$} = {item}");
            }
            let _ = writeln!(out, "{pad}  }}");
        }
        _ => {
            let _ = writeln!(out, "{pad}{symbol} {field:<width$} = {value}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::model::{OutputChange, PLAN_FORMAT};
    use std::collections::BTreeMap;

    fn plan(changes: Vec<ResourceChange>) -> Plan {
        Plan {
            format: PLAN_FORMAT,
            env: "local".into(),
            lineage: "l".into(),
            serial: 1,
            config_digest: "d".into(),
            salt: "s".into(),
            destroy: false,
            changes,
            drift: vec![],
            outputs: BTreeMap::new(),
        }
    }

    fn change(
        action: Action,
        before: Option<Attributes>,
        after: Option<Attributes>,
        changed: &[&str],
    ) -> ResourceChange {
        ResourceChange {
            address: "secret.api_key".into(),
            kind: "secret".into(),
            action,
            id: Some("projects/p/secrets/API_KEY".into()),
            reason: None,
            before,
            after,
            changed: changed.iter().map(|path| path.to_string()).collect(),
            replace_paths: vec![],
            update_mask: vec![],
            sensitive: vec!["value".into()],
            dependencies: vec![],
        }
    }

    fn attributes(labels: &[(&str, &str)], value: &str) -> Attributes {
        Attributes::from([
            (
                "labels".into(),
                Value::Map(
                    labels
                        .iter()
                        .map(|(k, v)| (k.to_string(), Value::string(*v)))
                        .collect(),
                ),
            ),
            ("secret_id".into(), Value::string("API_KEY")),
            ("value".into(), Value::sensitive(value)),
            ("value_salt".into(), Value::string("never-shown")),
        ])
    }

    #[test]
    fn create_renders_every_attribute_with_secrets_masked() {
        let text = render_plan(
            &plan(vec![change(
                Action::Create,
                None,
                Some(attributes(&[("env", "dev")], "sha256:1")),
                &[],
            )]),
            ColorChoice::Never,
        );
        insta::assert_snapshot!(text);
    }

    #[test]
    fn update_renders_changed_paths_only() {
        let before = attributes(&[("env", "dev"), ("old", "x")], "sha256:1");
        let after = attributes(&[("env", "prod")], "sha256:2");
        let text = render_plan(
            &plan(vec![change(
                Action::Update,
                Some(before),
                Some(after),
                &["labels.env", "labels.old", "value"],
            )]),
            ColorChoice::Never,
        );
        insta::assert_snapshot!(text);
    }

    #[test]
    fn no_changes_says_so() {
        let mut empty = plan(vec![]);
        empty.outputs.insert(
            "x".into(),
            OutputChange {
                action: Action::NoOp,
                before: None,
                after: None,
                sensitive: false,
            },
        );
        assert!(render_plan(&empty, ColorChoice::Never).starts_with("No changes."));
    }
}
