//! `--refresh-only`: a plan of only the differences between the state and the live objects
//! (drift), and what applying it does to the state — forget objects deleted outside infra,
//! record the live values of fields changed outside infra. No object is ever changed. Unlike
//! Terraform (#35117), a refresh-only plan with drift has changes (exit 2 with
//! `--detailed-exitcode`) and one without has none (exit 0).

use super::diff::top_field;
use super::model::{Action, Plan, ResourceChange};
use crate::state::State;
use std::collections::BTreeMap;
use std::fmt::Write;

/// Turns a full plan into the refresh-only plan of its drift: `Delete` (forget) for an object
/// deleted outside infra, `Update` from the state's attributes to the live ones otherwise.
pub fn refresh_only_plan(plan: Plan, state: &State) -> Plan {
    let changes = plan
        .drift
        .iter()
        .filter_map(|drift| {
            let prior = state.resource(&drift.address)?;
            let planned = plan.change(&drift.address);
            let live = planned.and_then(|change| change.before.clone());
            let (action, after, reason) = match (drift.kind.as_str(), live) {
                ("deleted", _) | (_, None) => (
                    Action::Delete,
                    None,
                    "deleted outside infra: forgotten by the state",
                ),
                (_, Some(live)) => {
                    let mut after = prior.attributes.clone();
                    for path in &drift.paths {
                        let field = top_field(path);
                        match live.get(field) {
                            Some(value) => {
                                after.insert(field.to_string(), value.clone());
                            }
                            None => {
                                after.remove(field);
                            }
                        }
                    }
                    (
                        Action::Update,
                        Some(after),
                        "changed outside infra: the state records the live value",
                    )
                }
            };
            Some(ResourceChange {
                address: drift.address.clone(),
                kind: prior.kind.clone(),
                action,
                id: Some(prior.id.clone()),
                reason: Some(reason.to_string()),
                before: Some(prior.attributes.clone()),
                after,
                changed: drift.paths.clone(),
                replace_paths: Vec::new(),
                update_mask: Vec::new(),
                sensitive: planned
                    .map(|change| change.sensitive.clone())
                    .unwrap_or_default(),
                dependencies: Vec::new(),
            })
        })
        .collect();
    Plan {
        refresh_only: true,
        changes,
        outputs: BTreeMap::new(),
        ..plan
    }
}

/// Applies a refresh-only plan to the state; returns how many resources were updated and
/// how many forgotten.
pub fn record_drift(plan: &Plan, state: &mut State) -> (usize, usize) {
    let mut updated = 0;
    let mut forgotten = 0;
    for change in &plan.changes {
        match (change.action, &change.after) {
            (Action::Delete, _) if state.remove(&change.address).is_some() => forgotten += 1,
            (Action::Delete, _) => {}
            (_, Some(after)) => {
                if let Some(mut resource) = state.resource(&change.address).cloned() {
                    resource.attributes = after.clone();
                    state.upsert(resource);
                    updated += 1;
                }
            }
            _ => {}
        }
    }
    (updated, forgotten)
}

/// Renders a refresh-only plan: the drift, and what applying it would record.
pub fn render_refresh_only(plan: &Plan, bold: &dyn Fn(&str) -> String) -> String {
    let mut out = String::new();
    if plan.changes.is_empty() {
        out.push_str(&bold("No changes."));
        out.push_str(" The state matches the live objects.\n");
        return out;
    }
    let _ = writeln!(out, "{}\n", bold("Objects have changed outside of infra:"));
    for change in &plan.changes {
        match change.action {
            Action::Delete => {
                let _ = writeln!(out, "  # {} has been deleted", change.address);
            }
            _ => {
                let _ = writeln!(
                    out,
                    "  # {} has changed: {}",
                    change.address,
                    change.changed.join(", ")
                );
            }
        }
    }
    let (updated, forgotten) = refresh_counts(plan);
    let _ = writeln!(
        out,
        "\nThis is a refresh-only plan: `infra apply --refresh-only` records these changes in the \
         state and changes no object.\n{} {updated} to update in the state, {forgotten} to forget.",
        bold("Refresh-only:")
    );
    out
}

/// Returns (to update in the state, to forget).
pub fn refresh_counts(plan: &Plan) -> (usize, usize) {
    let forgotten = plan
        .changes
        .iter()
        .filter(|change| change.action == Action::Delete)
        .count();
    (plan.changes.len() - forgotten, forgotten)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::model::Drift;
    use crate::state::{ResourceStatus, StateResource};
    use crate::value::{Attributes, Value};

    fn attributes(pairs: &[(&str, &str)]) -> Attributes {
        pairs
            .iter()
            .map(|(key, value)| (key.to_string(), Value::string(*value)))
            .collect()
    }

    fn resource(address: &str, pairs: &[(&str, &str)]) -> StateResource {
        StateResource {
            address: address.into(),
            kind: "secret".into(),
            id: format!("projects/p/secrets/{address}"),
            status: ResourceStatus::Created,
            attributes: attributes(pairs),
            dependencies: Vec::new(),
        }
    }

    fn change(address: &str, live: Option<Attributes>) -> ResourceChange {
        ResourceChange {
            address: address.into(),
            kind: "secret".into(),
            action: Action::Update,
            id: None,
            reason: None,
            before: live,
            after: None,
            changed: Vec::new(),
            replace_paths: Vec::new(),
            update_mask: Vec::new(),
            sensitive: Vec::new(),
            dependencies: Vec::new(),
        }
    }

    #[test]
    fn drift_becomes_state_updates_that_keep_bookkeeping_fields() {
        let mut state = State::new("test");
        state.upsert(resource(
            "secret.a",
            &[
                ("labels", "team-a"),
                ("value_salt", "salt"),
                ("secret_id", "A"),
            ],
        ));
        state.upsert(resource("secret.b", &[("secret_id", "B")]));
        state.upsert(resource("secret.c", &[("secret_id", "C")]));
        let plan = Plan {
            format: 1,
            env: "test".into(),
            lineage: state.lineage.clone(),
            serial: 1,
            config_digest: "d".into(),
            destroy: false,
            refresh_only: false,
            targets: Vec::new(),
            changes: vec![
                change(
                    "secret.a",
                    Some(attributes(&[("labels", "team-b"), ("secret_id", "A")])),
                ),
                change("secret.c", Some(attributes(&[("secret_id", "C")]))),
            ],
            drift: vec![
                Drift {
                    address: "secret.a".into(),
                    kind: "changed".into(),
                    paths: vec!["labels".into()],
                },
                Drift {
                    address: "secret.b".into(),
                    kind: "deleted".into(),
                    paths: Vec::new(),
                },
            ],
            outputs: BTreeMap::new(),
        };
        let refresh = refresh_only_plan(plan, &state);
        assert!(refresh.has_changes());
        assert_eq!(
            refresh
                .changes
                .iter()
                .map(|change| (change.address.as_str(), change.action))
                .collect::<Vec<_>>(),
            [("secret.a", Action::Update), ("secret.b", Action::Delete)]
        );
        assert_eq!(record_drift(&refresh, &mut state), (1, 1));
        assert!(state.resource("secret.b").is_none());
        assert_eq!(
            state
                .resource("secret.a")
                .map(|resource| &resource.attributes),
            Some(&attributes(&[
                ("labels", "team-b"),
                ("value_salt", "salt"),
                ("secret_id", "A")
            ]))
        );
        assert!(state.resource("secret.c").is_some(), "no drift, untouched");
        let text = render_refresh_only(&refresh, &|text| text.to_string());
        insta::assert_snapshot!(text);
    }

    #[test]
    fn no_drift_means_no_changes() {
        let state = State::new("test");
        let plan = Plan {
            format: 1,
            env: "test".into(),
            lineage: state.lineage.clone(),
            serial: 0,
            config_digest: "d".into(),
            destroy: false,
            refresh_only: false,
            targets: Vec::new(),
            changes: vec![change("secret.a", None)],
            drift: Vec::new(),
            outputs: BTreeMap::new(),
        };
        let refresh = refresh_only_plan(plan, &state);
        assert!(!refresh.has_changes());
        assert_eq!(
            render_refresh_only(&refresh, &|text| text.to_string()),
            "No changes. The state matches the live objects.\n"
        );
    }
}
