//! `infra apply --refresh-only`: records a refresh-only plan's drift in the state (live values
//! of fields changed outside infra, objects deleted outside infra forgotten) and changes no
//! object. The plan itself is made in `plan.rs`; the state edit is `plan/refresh_only.rs`.

use super::Outcome;
use super::session::Session;
use crate::plan::Plan;
use crate::plan::refresh_only::record_drift;
use crate::state::State;
use anyhow::Context;

/// Writes the drift of a refresh-only plan into the state with the next serial.
pub async fn record_refresh(
    session: &Session,
    plan: &Plan,
    mut state: State,
) -> anyhow::Result<Outcome> {
    let (updated, forgotten) = record_drift(plan, &mut state);
    state.serial += 1;
    session
        .backend
        .write(&state)
        .await
        .with_context(|| format!("recording the drift in {}", session.backend.location()))?;
    eprintln!(
        "Apply complete! State updated: {updated} resource{} refreshed, {forgotten} forgotten; no object was changed.",
        if updated == 1 { "" } else { "s" }
    );
    Ok(Outcome::Success)
}
