//! `infra apply --refresh-only`: records a refresh-only plan's drift in the state (live values
//! of fields changed outside infra, objects deleted outside infra forgotten) and changes no
//! object. The plan itself is made in `plan.rs`; the state edit is `plan/refresh_only.rs`.

use super::Outcome;
use super::session::Session;
use crate::plan::Plan;
use crate::plan::refresh_only::record_drift;
use crate::state::State;
use anyhow::Context;
use std::io::Write;

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
    let mut stdout = std::io::stdout().lock();
    writeln!(
        stdout,
        "Apply complete! State updated: {updated} resource{} refreshed, {forgotten} forgotten; no object was changed.",
        if updated == 1 { "" } else { "s" }
    )
    .and_then(|()| stdout.flush())
    .context("writing to stdout")?;
    Ok(Outcome::Success)
}
