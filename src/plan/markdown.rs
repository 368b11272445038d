//! Renders a plan as GitHub-flavoured Markdown for pull-request comments and job summaries: a
//! summary line with the counts and the detailed exit code, drift apart, one table per action,
//! a Mermaid graph of the changed resources, and each change's diff in a `<details>` block.
//! Secrets appear as `(sensitive value)`, as in the terminal plan; the text fits GitHub's
//! comment limit by dropping details last-first with a note. It does not post anything.

use super::change_graph::ChangeGraph;
use super::model::{Action, Plan, ResourceChange};
use super::render::render_change_plain;
use crate::value::Value;
use std::fmt::Write;

/// GitHub's limit on the body of an issue or pull-request comment, in characters.
pub const GITHUB_COMMENT_LIMIT: usize = 65_536;

/// Renders the plan as Markdown no longer than `limit` bytes (so no more characters either).
pub fn render_markdown(plan: &Plan, limit: usize) -> String {
    let head = render_head(plan);
    let graph = render_graph(plan);
    let details: Vec<String> = plan
        .changes
        .iter()
        .filter(|change| change.action != Action::NoOp && !plan.refresh_only)
        .map(render_details)
        .collect();
    let full_length = head.len() + graph.len() + details.iter().map(String::len).sum::<usize>();
    if full_length <= limit {
        return format!("{head}{graph}{}", details.concat());
    }
    // Details go first (the tables already name every change), then the graph; the head is
    // cut only when a plan's tables alone exceed the limit.
    let note = |omitted: &str| {
        format!(
            "\n> [!NOTE]\n> Truncated to fit GitHub's {GITHUB_COMMENT_LIMIT}-character comment \
             limit: {omitted} left out. Run `infra show PLANFILE` for the whole plan.\n"
        )
    };
    let reserve =
        note("the details of 99999 changes and the graph and the end of the tables").len();
    let mut out = head.clone();
    let with_graph = out.len() + graph.len() + reserve <= limit;
    if with_graph {
        out.push_str(&graph);
    }
    let mut kept = 0;
    for block in &details {
        if out.len() + block.len() + reserve > limit {
            break;
        }
        out.push_str(block);
        kept += 1;
    }
    let mut omitted = Vec::new();
    if kept < details.len() {
        omitted.push(format!("the details of {} changes", details.len() - kept));
    }
    if !with_graph {
        omitted.push("the graph".to_string());
    }
    if out.len() + reserve > limit {
        let mut cut = limit.saturating_sub(reserve);
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
        omitted.push("the end of the tables".to_string());
    }
    out.push_str(&note(&omitted.join(" and ")));
    out
}

fn render_head(plan: &Plan) -> String {
    let mut out = String::new();
    let title = if plan.destroy { "destroy plan" } else { "plan" };
    let _ = writeln!(out, "### infra {title} for `{}`\n", plan.env);
    let (add, change, destroy) = plan.counts();
    let exit_code = if plan.has_changes() { 2 } else { 0 };
    if plan.refresh_only {
        let (updated, forgotten) = super::refresh_only::refresh_counts(plan);
        if plan.has_changes() {
            let _ = writeln!(
                out,
                "**Refresh-only: {updated} to update in the state, {forgotten} to forget.** \
                 Applying with `--refresh-only` changes no object. Detailed exit code: \
                 `{exit_code}` (drift present).\n"
            );
        } else {
            let _ = writeln!(
                out,
                "**No drift.** The state matches the live objects. Detailed exit code: `{exit_code}`.\n"
            );
        }
    } else if plan.has_changes() {
        let _ = writeln!(
            out,
            "**Plan: {add} to add, {change} to change, {destroy} to destroy.** \
             Detailed exit code: `{exit_code}` (changes present).\n"
        );
    } else {
        let _ = writeln!(
            out,
            "**No changes.** Your infrastructure matches the configuration. \
             Detailed exit code: `{exit_code}`.\n"
        );
    }
    if !plan.targets.is_empty() {
        let _ = writeln!(
            out,
            "> [!WARNING]\n> Resource targeting is in effect ({}): this plan may not show every \
             change the configuration asks for.\n",
            code_list(&plan.targets)
        );
    }
    if !plan.drift.is_empty() {
        out.push_str("#### Drift: objects changed outside of infra\n\n");
        out.push_str("| Address | Drift |\n| --- | --- |\n");
        for drift in &plan.drift {
            let what = match drift.kind.as_str() {
                "deleted" => "deleted".to_string(),
                _ => format!("changed: {}", code_list(&drift.paths)),
            };
            let _ = writeln!(out, "| {} | {} |", code(&drift.address), what);
        }
        out.push('\n');
    }
    for (action, heading) in [
        (Action::Create, "`+` Create"),
        (Action::Update, "`~` Update in place"),
        (Action::Replace, "`-/+` Replace"),
        (Action::Delete, "`-` Destroy"),
    ] {
        let changes: Vec<&ResourceChange> = plan
            .changes
            .iter()
            .filter(|change| change.action == action && !plan.refresh_only)
            .collect();
        if changes.is_empty() {
            continue;
        }
        let _ = writeln!(out, "#### {heading} ({})\n", changes.len());
        out.push_str("| Address | Kind | What changes |\n| --- | --- | --- |\n");
        for change in changes {
            let _ = writeln!(
                out,
                "| {} | {} | {} |",
                code(&change.address),
                code(&change.kind),
                what_changes(change)
            );
        }
        out.push('\n');
    }
    let outputs: Vec<_> = plan
        .outputs
        .iter()
        .filter(|(_, output)| output.action != Action::NoOp)
        .collect();
    if !outputs.is_empty() {
        out.push_str("#### Outputs\n\n| Output | Change |\n| --- | --- |\n");
        for (name, output) in outputs {
            let shown = |value: &Option<Value>| match value {
                _ if output.sensitive => "(sensitive value)".to_string(),
                Some(value) => value.to_string(),
                None => "null".to_string(),
            };
            let text = match output.action {
                Action::Create => format!("`+` {}", code(&shown(&output.after))),
                Action::Delete => format!("`-` {}", code(&shown(&output.before))),
                _ => format!(
                    "`~` {} → {}",
                    code(&shown(&output.before)),
                    code(&shown(&output.after))
                ),
            };
            let _ = writeln!(out, "| {} | {text} |", code(name));
        }
        out.push('\n');
    }
    out
}

fn render_graph(plan: &Plan) -> String {
    let graph = ChangeGraph::of_changes(plan);
    if graph.nodes.is_empty() {
        return String::new();
    }
    format!(
        "<details><summary>Graph of the changes and what they depend on</summary>\n\n\
         ```mermaid\n{}```\n\n</details>\n\n",
        graph.to_mermaid()
    )
}

fn render_details(change: &ResourceChange) -> String {
    let body = render_change_plain(change);
    let fence = fence_for(&body);
    format!(
        "<details><summary><code>{}</code> {}</summary>\n\n{fence}diff\n{body}{fence}\n\n</details>\n\n",
        html_escape(change.action.symbol()),
        html_escape(&change.address),
    )
}

/// Says what changes in one table cell: the changed fields, what forces a replacement, and
/// the reason when there is one.
fn what_changes(change: &ResourceChange) -> String {
    let mut parts = Vec::new();
    match change.action {
        Action::Create => parts.push("new".to_string()),
        Action::Delete => parts.push("removed".to_string()),
        _ => {
            let mut fields: Vec<&str> = change
                .changed
                .iter()
                .map(|path| super::diff::top_field(path))
                .filter(|field| !super::render::is_hidden(field))
                .collect();
            fields.dedup();
            if !fields.is_empty() {
                parts.push(code_list(&fields));
            }
            if !change.replace_paths.is_empty() {
                parts.push(format!(
                    "forces replacement: {}",
                    code_list(&change.replace_paths)
                ));
            }
        }
    }
    if let Some(reason) = &change.reason {
        parts.push(format!("({})", escape_cell(reason)));
    }
    parts.join("; ")
}

fn code_list<T: AsRef<str>>(items: &[T]) -> String {
    items
        .iter()
        .map(|item| code(item.as_ref()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Writes text as inline code inside a table cell: a fence longer than any run of backticks
/// inside, and pipes escaped because GitHub splits cells on them even inside code.
fn code(text: &str) -> String {
    let longest = longest_backtick_run(text);
    let ticks = "`".repeat(longest + 1);
    let padding = if longest > 0 { " " } else { "" };
    format!(
        "{ticks}{padding}{}{padding}{ticks}",
        text.replace('|', "\\|")
    )
}

fn escape_cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Returns a code fence longer than any run of backticks in `body`.
fn fence_for(body: &str) -> String {
    "`".repeat(longest_backtick_run(body).max(2) + 1)
}

fn longest_backtick_run(text: &str) -> usize {
    text.split(|character| character != '`')
        .map(str::len)
        .max()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::model::{Drift, OutputChange};
    use crate::value::Attributes;
    use std::collections::BTreeMap;

    fn change(
        address: &str,
        action: Action,
        before: &[(&str, Value)],
        after: &[(&str, Value)],
    ) -> ResourceChange {
        let attributes = |pairs: &[(&str, Value)]| -> Option<Attributes> {
            (!pairs.is_empty()).then(|| {
                pairs
                    .iter()
                    .map(|(key, value)| (key.to_string(), value.clone()))
                    .collect()
            })
        };
        let changed = after
            .iter()
            .filter(|(key, value)| before.iter().all(|(old, was)| old != key || was != value))
            .map(|(key, _)| key.to_string())
            .collect();
        ResourceChange {
            address: address.into(),
            kind: address.rsplit('.').nth(1).unwrap_or_default().into(),
            action,
            id: None,
            reason: None,
            before: attributes(before),
            after: attributes(after),
            changed,
            replace_paths: Vec::new(),
            update_mask: Vec::new(),
            sensitive: Vec::new(),
            dependencies: Vec::new(),
        }
    }

    fn sample_plan() -> Plan {
        let mut secret = change(
            "module.beta_secrets.secret.beta[\"BETA_MAX_USERS\"]",
            Action::Update,
            &[
                ("secret_id", Value::string("BETA_MAX_USERS")),
                ("value", Value::sensitive("fingerprint-old")),
            ],
            &[
                ("secret_id", Value::string("BETA_MAX_USERS")),
                ("value", Value::sensitive("fingerprint-new")),
            ],
        );
        secret.sensitive = vec!["value".into()];
        let mut accessor = change(
            "module.beta_secrets.iam_member.accessor[\"BETA_MAX_USERS\"]",
            Action::Create,
            &[],
            &[("role", Value::string("roles/secretmanager.secretAccessor"))],
        );
        accessor.dependencies = vec![
            "module.beta_secrets.secret.beta[\"BETA_MAX_USERS\"]".into(),
            "service_account.run".into(),
        ];
        Plan {
            format: 1,
            env: "local".into(),
            lineage: "l".into(),
            serial: 3,
            config_digest: "d".into(),
            destroy: false,
            refresh_only: false,
            targets: Vec::new(),
            changes: vec![
                accessor,
                secret,
                change(
                    "service_account.run",
                    Action::NoOp,
                    &[("account_id", Value::string("run"))],
                    &[("account_id", Value::string("run"))],
                ),
            ],
            drift: vec![Drift {
                address: "secret.slack_token".into(),
                kind: "changed".into(),
                paths: vec!["labels.team".into()],
            }],
            outputs: BTreeMap::from([(
                "token".to_string(),
                OutputChange {
                    action: Action::Update,
                    before: Some(Value::string("old")),
                    after: Some(Value::string("new")),
                    sensitive: true,
                },
            )]),
        }
    }

    #[test]
    fn markdown_plan_has_tables_graph_and_masked_details() {
        let text = render_markdown(&sample_plan(), GITHUB_COMMENT_LIMIT);
        assert!(!text.contains("fingerprint"), "{text}");
        assert!(
            !text.contains("\"new\""),
            "a sensitive output leaked: {text}"
        );
        insta::assert_snapshot!(text);
    }

    #[test]
    fn markdown_without_changes_says_exit_code_zero() {
        let mut plan = sample_plan();
        plan.changes.retain(|change| change.action == Action::NoOp);
        plan.outputs.clear();
        plan.drift.clear();
        let text = render_markdown(&plan, GITHUB_COMMENT_LIMIT);
        assert!(text.contains("**No changes.**"), "{text}");
        assert!(text.contains("Detailed exit code: `0`"), "{text}");
        assert!(!text.contains("mermaid"), "{text}");
    }

    #[test]
    fn markdown_over_the_limit_drops_details_with_a_note() {
        let mut plan = sample_plan();
        for number in 0..400 {
            plan.changes.push(change(
                &format!("secret.filler[\"{number:03}\"]"),
                Action::Create,
                &[],
                &[("secret_id", Value::string("x".repeat(200)))],
            ));
        }
        let text = render_markdown(&plan, GITHUB_COMMENT_LIMIT);
        assert!(text.len() <= GITHUB_COMMENT_LIMIT, "{}", text.len());
        assert!(text.contains("Truncated to fit GitHub's 65536-character"));
        assert!(
            text.contains("secret.filler[\"399\"]"),
            "the tables stay whole"
        );
        let tiny = render_markdown(&plan, 2_000);
        assert!(tiny.len() <= 2_000, "{}", tiny.len());
        assert!(tiny.contains("the end of the tables"), "{tiny}");
    }

    #[test]
    fn code_spans_survive_backticks_and_pipes() {
        assert_eq!(code("a|b"), "`a\\|b`");
        assert_eq!(code("x `y` z"), "`` x `y` z ``");
        assert_eq!(fence_for("```inner```"), "````");
    }
}
