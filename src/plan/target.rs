//! `--target ADDRESS`: narrows a plan to the named resources and what they depend on
//! (transitively); for a destroy, to the named resources and what depends on them. Every other
//! change becomes a no-op, so apply's walk of the configuration still finds each resource in
//! the plan and leaves it alone. Output changes are dropped: they may read untargeted objects.

use super::model::{Action, Plan};
use std::collections::BTreeSet;

/// Why a target cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("--target {target}: no resource in this plan has this address{suggestion}")]
    Unknown { target: String, suggestion: String },
}

/// The warning Terraform prints for `-target`, in infra's words.
pub const TARGET_WARNING: &str = "Warning: resource targeting is in effect\n\n\
  This plan covers only the --target resources and what they depend on, so it may not show\n\
  every change the configuration asks for, and outputs are not updated. --target is for\n\
  exceptional situations, such as recovering from a mistake, not for routine use.\n";

/// Returns true when `target` names `address`: the same address, one of its instances
/// (`secret.beta` names `secret.beta["A"]`), or a module holding it (`module.beta_secrets`).
pub fn names(target: &str, address: &str) -> bool {
    address == target
        || address
            .strip_prefix(target)
            .is_some_and(|rest| rest.starts_with('[') || rest.starts_with('.'))
}

/// Narrows the plan to the targets; unchanged when `targets` is empty.
pub fn apply_targets(mut plan: Plan, targets: &[String]) -> Result<Plan, TargetError> {
    if targets.is_empty() {
        return Ok(plan);
    }
    for target in targets {
        if !plan
            .changes
            .iter()
            .any(|change| names(target, &change.address))
        {
            // Blocks (`secret.beta`) are targets too, not only their instances.
            let candidates: BTreeSet<&str> = plan
                .changes
                .iter()
                .flat_map(|change| {
                    let block = change.address.split('[').next().unwrap_or_default();
                    [change.address.as_str(), block]
                })
                .collect();
            let suggestion = crate::config::load::closest(target, candidates)
            .map(|address| format!("\n  hint: did you mean `{address}`? (`infra state list` lists the addresses)"))
            .unwrap_or_else(|| {
                "\n  hint: `infra state list` lists the addresses in the state".to_string()
            });
            return Err(TargetError::Unknown {
                target: target.clone(),
                suggestion,
            });
        }
    }
    let mut kept: BTreeSet<String> = plan
        .changes
        .iter()
        .filter(|change| targets.iter().any(|target| names(target, &change.address)))
        .map(|change| change.address.clone())
        .collect();
    // A destroy must remove what depends on a target first; anything else needs what the
    // target depends on.
    loop {
        let before = kept.len();
        for change in &plan.changes {
            let reaches = if plan.destroy {
                change
                    .dependencies
                    .iter()
                    .any(|dependency| kept.contains(dependency))
            } else {
                false
            };
            if reaches {
                kept.insert(change.address.clone());
            }
            if !plan.destroy && kept.contains(&change.address) {
                kept.extend(change.dependencies.iter().cloned());
            }
        }
        if kept.len() == before {
            break;
        }
    }
    for change in &mut plan.changes {
        if !kept.contains(&change.address) && change.action != Action::NoOp {
            change.action = Action::NoOp;
            change.reason = Some("not targeted".into());
            change.changed.clear();
            change.update_mask.clear();
            change.replace_paths.clear();
        }
    }
    plan.drift.retain(|drift| kept.contains(&drift.address));
    for output in plan.outputs.values_mut() {
        output.action = Action::NoOp;
        output.after = output.before.clone();
    }
    plan.targets = targets.to_vec();
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::model::ResourceChange;
    use std::collections::BTreeMap;

    fn change(address: &str, action: Action, dependencies: &[&str]) -> ResourceChange {
        ResourceChange {
            address: address.into(),
            kind: "secret".into(),
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

    fn plan(destroy: bool) -> Plan {
        Plan {
            format: 1,
            env: "test".into(),
            lineage: "l".into(),
            serial: 1,
            config_digest: "d".into(),
            destroy,
            refresh_only: false,
            targets: Vec::new(),
            changes: vec![
                change("service_account.run", Action::Create, &[]),
                change("secret.beta[\"A\"]", Action::Create, &[]),
                change("secret.beta[\"B\"]", Action::Create, &[]),
                change(
                    "module.app.iam_member.read[\"A\"]",
                    Action::Create,
                    &["secret.beta[\"A\"]", "service_account.run"],
                ),
            ],
            drift: Vec::new(),
            outputs: BTreeMap::new(),
        }
    }

    fn planned(plan: &Plan) -> Vec<&str> {
        plan.changes
            .iter()
            .filter(|change| change.action != Action::NoOp)
            .map(|change| change.address.as_str())
            .collect()
    }

    #[test]
    fn a_target_brings_its_dependencies_and_nothing_else() {
        let targeted =
            apply_targets(plan(false), &["module.app".into()]).expect("the target exists");
        assert_eq!(
            planned(&targeted),
            [
                "service_account.run",
                "secret.beta[\"A\"]",
                "module.app.iam_member.read[\"A\"]"
            ]
        );
        let instances =
            apply_targets(plan(false), &["secret.beta".into()]).expect("the target exists");
        assert_eq!(
            planned(&instances),
            ["secret.beta[\"A\"]", "secret.beta[\"B\"]"]
        );
    }

    #[test]
    fn a_destroy_target_brings_its_dependents() {
        let targeted =
            apply_targets(plan(true), &["secret.beta[\"A\"]".into()]).expect("the target exists");
        assert_eq!(
            planned(&targeted),
            ["secret.beta[\"A\"]", "module.app.iam_member.read[\"A\"]"]
        );
    }

    #[test]
    fn an_unknown_target_is_an_error_with_a_suggestion() {
        let error = apply_targets(plan(false), &["secret.betta".into()])
            .expect_err("no such address")
            .to_string();
        assert!(error.contains("--target secret.betta"), "{error}");
        assert!(error.contains("hint: did you mean"), "{error}");
        assert!(
            !names("secret.be", "secret.beta[\"A\"]"),
            "a prefix of a name is not a target"
        );
    }
}
