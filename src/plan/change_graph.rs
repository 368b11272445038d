//! The dependency graph of a plan's resources, drawn as Mermaid (for Markdown plans and
//! `infra graph --format mermaid`) or Graphviz DOT. It draws; it does not decide order, which
//! is `graph.rs`'s job. Addresses carry quotes and brackets (`secret.beta["BETA_MAX_USERS"]`),
//! so every label is escaped the way each language wants.

use super::model::{Action, Plan};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

/// Resources as nodes (with their planned action), dependencies as edges.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChangeGraph {
    /// Address → planned action.
    pub nodes: BTreeMap<String, Action>,
    /// (dependency, dependent): the dependency is created first.
    pub edges: BTreeSet<(String, String)>,
}

impl ChangeGraph {
    /// Returns the graph of every resource in the plan and its dependencies.
    pub fn of_plan(plan: &Plan) -> Self {
        let mut graph = ChangeGraph::default();
        for change in &plan.changes {
            graph.nodes.insert(change.address.clone(), change.action);
        }
        for change in &plan.changes {
            for dependency in &change.dependencies {
                if graph.nodes.contains_key(dependency) {
                    graph
                        .edges
                        .insert((dependency.clone(), change.address.clone()));
                }
            }
        }
        graph
    }

    /// Returns the graph of the changed resources and the resources they depend on directly
    /// (shown unchanged), which is what a reviewer needs to see the order of a change.
    pub fn of_changes(plan: &Plan) -> Self {
        let full = Self::of_plan(plan);
        let changed: BTreeSet<&String> = full
            .nodes
            .iter()
            .filter(|(_, action)| **action != Action::NoOp)
            .map(|(address, _)| address)
            .collect();
        let mut graph = ChangeGraph::default();
        for (dependency, dependent) in &full.edges {
            if changed.contains(dependent) {
                graph.edges.insert((dependency.clone(), dependent.clone()));
                for address in [dependency, dependent] {
                    graph.nodes.insert(address.clone(), full.nodes[address]);
                }
            }
        }
        for address in changed {
            graph.nodes.insert(address.clone(), full.nodes[address]);
        }
        graph
    }

    /// Renders a Mermaid flowchart, one class per action so GitHub colors it; the symbols stay
    /// in the labels so color never carries meaning alone.
    pub fn to_mermaid(&self) -> String {
        let identifiers = self.identifiers();
        let mut out = String::from("flowchart LR\n");
        for (address, action) in &self.nodes {
            let _ = writeln!(
                out,
                "  {}[\"{}\"]",
                identifiers[address],
                mermaid_label(&label(address, *action))
            );
        }
        for (dependency, dependent) in &self.edges {
            let _ = writeln!(
                out,
                "  {} --> {}",
                identifiers[dependency], identifiers[dependent]
            );
        }
        for (class, style) in CLASS_STYLES {
            let members: Vec<&str> = self
                .nodes
                .iter()
                .filter(|(_, action)| action_class(**action) == class)
                .map(|(address, _)| identifiers[address].as_str())
                .collect();
            if !members.is_empty() {
                let _ = writeln!(out, "  classDef {class} {style}");
                let _ = writeln!(out, "  class {} {class}", members.join(","));
            }
        }
        out
    }

    /// Renders a Graphviz digraph whose edges point from dependent to dependency, as
    /// `terraform graph` draws them.
    pub fn to_dot(&self) -> String {
        let mut out = String::from("digraph infra {\n  rankdir = \"RL\";\n");
        for (address, action) in &self.nodes {
            let _ = writeln!(
                out,
                "  \"{}\" [label = \"{}\"];",
                dot_escape(address),
                dot_escape(&label(address, *action))
            );
        }
        for (dependency, dependent) in &self.edges {
            let _ = writeln!(
                out,
                "  \"{}\" -> \"{}\";",
                dot_escape(dependent),
                dot_escape(dependency)
            );
        }
        out.push_str("}\n");
        out
    }

    /// Mermaid node identifiers: `r0`, `r1`, … in address order, since addresses themselves
    /// are not valid identifiers.
    fn identifiers(&self) -> BTreeMap<&String, String> {
        self.nodes
            .keys()
            .enumerate()
            .map(|(position, address)| (address, format!("r{position}")))
            .collect()
    }
}

const CLASS_STYLES: [(&str, &str); 5] = [
    ("create", "fill:#e6ffec,stroke:#1a7f37,color:#1f2328"),
    ("update", "fill:#fff8c5,stroke:#9a6700,color:#1f2328"),
    ("replace", "fill:#fbefff,stroke:#8250df,color:#1f2328"),
    ("delete", "fill:#ffebe9,stroke:#cf222e,color:#1f2328"),
    ("unchanged", "fill:#f6f8fa,stroke:#8c959f,color:#57606a"),
];

fn action_class(action: Action) -> &'static str {
    match action {
        Action::Create => "create",
        Action::Update => "update",
        Action::Replace => "replace",
        Action::Delete => "delete",
        Action::NoOp => "unchanged",
    }
}

fn label(address: &str, action: Action) -> String {
    match action {
        Action::NoOp => address.to_string(),
        _ => format!("{} {address}", action.symbol()),
    }
}

/// Escapes a label for a quoted Mermaid node: Mermaid has no backslash escapes (`\"` is a
/// parse error) and wants entity codes instead; `#` starts one, so it is escaped too.
pub fn mermaid_label(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '#' => escaped.push_str("#35;"),
            '"' => escaped.push_str("#quot;"),
            '<' => escaped.push_str("#lt;"),
            '>' => escaped.push_str("#gt;"),
            '`' => escaped.push_str("#96;"),
            other => escaped.push(other),
        }
    }
    escaped
}

fn dot_escape(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::model::ResourceChange;

    fn change(address: &str, action: Action, dependencies: &[&str]) -> ResourceChange {
        ResourceChange {
            address: address.into(),
            kind: address.split('.').next().unwrap_or_default().into(),
            action,
            id: None,
            reason: None,
            before: None,
            after: None,
            changed: Vec::new(),
            replace_paths: Vec::new(),
            update_mask: Vec::new(),
            sensitive: Vec::new(),
            dependencies: dependencies.iter().map(|text| text.to_string()).collect(),
        }
    }

    fn plan(changes: Vec<ResourceChange>) -> Plan {
        Plan {
            format: 1,
            env: "test".into(),
            lineage: "l".into(),
            serial: 1,
            config_digest: "d".into(),
            destroy: false,
            refresh_only: false,
            targets: Vec::new(),
            changes,
            drift: Vec::new(),
            outputs: BTreeMap::new(),
        }
    }

    #[test]
    fn mermaid_labels_use_entity_codes_never_backslashes() {
        let label = mermaid_label("secret.beta[\"BETA_MAX_USERS\"] #1 <b>");
        assert_eq!(
            label,
            "secret.beta[#quot;BETA_MAX_USERS#quot;] #35;1 #lt;b#gt;"
        );
        assert!(!label.contains('\\') && !label.contains('"'));
    }

    #[test]
    fn changes_graph_keeps_changed_resources_and_their_direct_dependencies() {
        let plan = plan(vec![
            change("service_account.run", Action::NoOp, &[]),
            change("secret.beta[\"A\"]", Action::Update, &[]),
            change(
                "iam_member.accessor[\"A\"]",
                Action::Create,
                &["secret.beta[\"A\"]", "service_account.run"],
            ),
            change("secret.other", Action::NoOp, &[]),
        ]);
        let graph = ChangeGraph::of_changes(&plan);
        assert_eq!(
            graph.nodes.keys().collect::<Vec<_>>(),
            [
                "iam_member.accessor[\"A\"]",
                "secret.beta[\"A\"]",
                "service_account.run"
            ]
        );
        insta::assert_snapshot!(graph.to_mermaid());
        insta::assert_snapshot!(graph.to_dot());
    }
}
