//! Renders a plan for people, in Terraform's idiom: `+ ~ - -/+` per resource, changed paths
//! with old → new values, secrets as `(sensitive value)`, unknowns as `(known after apply)`,
//! drift first and a closing counts line. Color is decoration only: symbols always appear.

use super::diff::{Difference, differences, top_field};
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
    /// Returns `Always` when stdout is a terminal (or `CLICOLOR_FORCE` is set, as CI logs
    /// that render color want) and `NO_COLOR` is unset.
    pub fn detect(stream_is_terminal: bool) -> Self {
        let disabled = std::env::var_os("NO_COLOR").is_some_and(|value| !value.is_empty());
        let forced = std::env::var_os("CLICOLOR_FORCE")
            .is_some_and(|value| value != "0" && !value.is_empty());
        if (stream_is_terminal || forced) && !disabled {
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
    if plan.refresh_only {
        return super::refresh_only::render_refresh_only(plan, &|text| painter.bold(text));
    }
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

/// Renders one resource's change without color, as the plan shows it (for Markdown details).
pub fn render_change_plain(change: &ResourceChange) -> String {
    let mut out = String::new();
    render_change(
        &mut out,
        change,
        &Painter {
            color: ColorChoice::Never,
        },
    );
    out
}

/// Attributes that exist for bookkeeping and never appear in plans.
pub fn is_hidden(field: &str) -> bool {
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
            render_differences(out, change, before, after, painter);
        }
    }
    let _ = writeln!(out, "    }}");
}

/// Renders the changed paths of an update or replace: a scalar field on one line, a structured
/// one as its changed paths (map keys quoted), long strings as a word diff.
fn render_differences(
    out: &mut String,
    change: &ResourceChange,
    before: &Attributes,
    after: &Attributes,
    painter: &Painter,
) {
    let changed: std::collections::BTreeSet<&str> =
        change.changed.iter().map(String::as_str).collect();
    let found: Vec<Difference> = differences(after, before)
        .into_iter()
        .filter(|difference| changed.contains(difference.path.as_str()))
        .collect();
    let fields: Vec<&str> = {
        let mut fields: Vec<&str> = found
            .iter()
            .map(|difference| top_field(&difference.path))
            .filter(|field| !is_hidden(field))
            .collect();
        fields.dedup();
        fields
    };
    let width = fields.iter().map(|field| field.len()).max().unwrap_or(0);
    let sensitive = |field: &str| change.sensitive.iter().any(|name| name == field);
    let shown = |field: &str, value: &Option<Value>| match value {
        _ if sensitive(field) => "(sensitive value)".to_string(),
        Some(value) => value.to_string(),
        None => "null".to_string(),
    };
    for field in fields {
        let forces = change
            .replace_paths
            .iter()
            .any(|path| top_field(path) == field);
        let note = if forces {
            painter.paint(Action::Replace, " # forces replacement")
        } else {
            String::new()
        };
        let here: Vec<&Difference> = found
            .iter()
            .filter(|difference| top_field(&difference.path) == field)
            .collect();
        if let [only] = here.as_slice()
            && only.path == field
        {
            let _ = writeln!(
                out,
                "      {} {field:<width$} = {}{note}",
                painter.paint(Action::Update, "~"),
                describe_change(&shown(field, &only.before), &shown(field, &only.after))
            );
            continue;
        }
        let _ = writeln!(
            out,
            "      {} {field:<width$} {{{note}",
            painter.paint(Action::Update, "~")
        );
        for difference in here {
            let relative = difference.path[field.len()..].trim_start_matches('.');
            let label = if relative
                .chars()
                .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
            {
                format!("{relative:?}")
            } else {
                relative.to_string()
            };
            let (symbol, text) = match (&difference.before, &difference.after) {
                (None, after) => (Action::Create, shown(field, after)),
                (before, None) => (Action::Delete, shown(field, before)),
                (before, after) => (
                    Action::Update,
                    describe_change(&shown(field, before), &shown(field, after)),
                ),
            };
            let _ = writeln!(
                out,
                "          {} {label} = {text}",
                painter.paint(symbol, symbol.symbol())
            );
        }
        let _ = writeln!(out, "        }}");
    }
}

/// Shows `old -> new`; long strings as a word diff (`[-removed-]{+added+}`) so a changed
/// PromQL threshold does not hide in two long lines.
fn describe_change(old: &str, new: &str) -> String {
    if old.len() + new.len() < 120 || !old.starts_with('"') || !new.starts_with('"') {
        return format!("{old} -> {new}");
    }
    let diff = similar::TextDiff::from_words(old, new);
    let mut text = String::new();
    for change in diff.iter_all_changes() {
        match change.tag() {
            similar::ChangeTag::Equal => text.push_str(change.value()),
            similar::ChangeTag::Delete => text.push_str(&format!("[-{}-]", change.value())),
            similar::ChangeTag::Insert => text.push_str(&format!("{{+{}+}}", change.value())),
        }
    }
    text
}

/// Shows a value inline, or, when it is long and structured (a dashboard, a list of
/// conditions), as indented JSON so that it reads line by line.
fn long_form(value: &Value, indent: usize) -> String {
    let inline = value.to_string();
    if inline.len() <= 100
        || !matches!(value, Value::Map(_) | Value::List(_))
        || value.contains_unknown()
    {
        return inline;
    }
    let pretty = serde_json::to_string_pretty(&value.to_json()).unwrap_or(inline);
    let pad = " ".repeat(indent + 2);
    pretty
        .lines()
        .enumerate()
        .map(|(index, line)| {
            if index == 0 {
                line.to_string()
            } else {
                format!("\n{pad}{line}")
            }
        })
        .collect()
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
                let _ = writeln!(
                    out,
                    "{pad}    {symbol} {quoted:<inner$} = {}",
                    long_form(item, indent + 6)
                );
            }
            let _ = writeln!(out, "{pad}  }}");
        }
        _ => {
            let _ = writeln!(
                out,
                "{pad}{symbol} {field:<width$} = {}",
                long_form(value, indent + 2)
            );
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
            destroy: false,
            refresh_only: false,
            targets: Vec::new(),
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
