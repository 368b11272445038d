//! Saved plan files (`plan --out FILE`, `apply FILE`): the JSON plan, which holds fingerprints
//! instead of secret values, written atomically with mode 0600; and the staleness checks
//! `apply FILE` makes.

use super::model::{PLAN_FORMAT, Plan};
use crate::state::State;
use std::path::Path;

/// Why a saved plan cannot be applied.
#[derive(Debug, thiserror::Error)]
pub enum PlanFileError {
    #[error(
        "{path}: {message}\n  hint: apply a file `infra plan --env ENV --out {path}` wrote, or run `infra apply` without one"
    )]
    Unreadable { path: String, message: String },
    #[error(
        "{path}: {message}\n  hint: run `infra plan --env {env} --out {path}` again and apply the new plan"
    )]
    Stale {
        path: String,
        env: String,
        message: String,
    },
}

/// Writes a plan file atomically.
pub fn write_plan(path: &Path, plan: &Plan) -> std::io::Result<()> {
    let mut bytes = serde_json::to_vec_pretty(plan).map_err(std::io::Error::other)?;
    bytes.push(b'\n');
    crate::state::local::remove_stale_temporaries(path);
    crate::state::local::write_atomically(path, &bytes)
}

/// Reads a plan file.
pub fn read_plan(path: &Path) -> Result<Plan, PlanFileError> {
    let unreadable = |message: String| PlanFileError::Unreadable {
        path: path.display().to_string(),
        message,
    };
    let bytes = std::fs::read(path).map_err(|error| unreadable(error.to_string()))?;
    let plan: Plan = serde_json::from_slice(&bytes)
        .map_err(|error| unreadable(format!("not an infra plan file: {error}")))?;
    if plan.format != PLAN_FORMAT {
        return Err(unreadable(format!(
            "plan format {} is not the one this build reads ({PLAN_FORMAT})",
            plan.format
        )));
    }
    Ok(plan)
}

/// Checks that a saved plan still applies to this environment, state and configuration.
pub fn check_fresh(
    path: &Path,
    plan: &Plan,
    env: &str,
    state: &State,
    config_digest: &str,
) -> Result<(), PlanFileError> {
    let stale = |message: String| PlanFileError::Stale {
        path: path.display().to_string(),
        env: env.to_string(),
        message,
    };
    if plan.env != env {
        return Err(stale(format!(
            "the plan is for environment `{}`, not `{env}`",
            plan.env
        )));
    }
    if plan.lineage != state.lineage {
        return Err(stale(format!(
            "the plan was made against another state (lineage {}, the state's is {})",
            plan.lineage, state.lineage
        )));
    }
    if plan.serial != state.serial {
        return Err(stale(format!(
            "the state changed since the plan was made (serial {} then, {} now): another apply ran in between",
            plan.serial, state.serial
        )));
    }
    if plan.config_digest != config_digest {
        return Err(stale(
            "the configuration changed since the plan was made".into(),
        ));
    }
    Ok(())
}
