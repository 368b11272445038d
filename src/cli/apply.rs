//! `infra apply [FILE]` and `infra destroy`: plan (or load and re-check a saved plan), ask for
//! `yes` on a terminal, execute with state persisted as it goes, stop gracefully on Ctrl-C.

use super::plan::{PlanningArgs, plan_in_session, writes_secrets};
use super::session::{Session, read_plan_file};
use super::{CommandError, ErrorKind, GlobalArgs, Outcome};
use crate::apply::{StateSink, apply_with_progress};
use crate::plan::file::check_fresh;
use crate::plan::planner::config_digest;
use crate::plan::render::render_plan;
use crate::plan::{Plan, PlanOptions};
use crate::progress::NoProgress;
use crate::sensitive::{FingerprintKey, LEGACY_SALT_ATTRIBUTE, LEGACY_SCHEME, parse_keyed};
use crate::state::{Backend, ResourceStatus, State};
use crate::value::{Marker, Value};
use anyhow::{Context, bail};
use clap::Args;
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;

/// Arguments of `infra apply`.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// A plan saved with `infra plan --out FILE`: apply exactly it, or refuse if stale.
    pub plan_file: Option<PathBuf>,
    #[command(flatten)]
    pub planning: PlanningArgs,
    /// Apply without asking for confirmation.
    #[arg(long)]
    pub auto_approve: bool,
}

/// Arguments of `infra destroy`.
#[derive(Debug, Args)]
pub struct DestroyArgs {
    #[command(flatten)]
    pub planning: PlanningArgs,
    /// Destroy without asking for confirmation.
    #[arg(long)]
    pub auto_approve: bool,
}

struct BackendSink<'a> {
    backend: &'a Backend,
}

#[async_trait::async_trait]
impl StateSink for BackendSink<'_> {
    async fn persist(&self, document: Vec<u8>) -> Result<(), String> {
        self.backend
            .write_bytes(document)
            .await
            .map_err(|error| error.to_string())
    }

    fn next_write_at(&self) -> Option<std::time::Instant> {
        self.backend.next_write_at()
    }
}

/// Asks for `yes` on the terminal. The answer is read on a thread of its own so that an
/// interrupt at the prompt cancels the command (and releases the lock) at once.
async fn confirm(question: &str, auto_approve: bool) -> anyhow::Result<()> {
    if auto_approve {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        bail!(
            "refusing to change infrastructure without confirmation: stdin is not a terminal\n  hint: review the plan, then pass --auto-approve (or apply a saved plan file)"
        );
    }
    eprint!("{question}\n  Only 'yes' will be accepted.\n\n  Enter a value: ");
    std::io::stderr().flush().ok();
    let (sender, receiver) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let mut answer = String::new();
        let read = std::io::stdin().lock().read_line(&mut answer);
        let _ = sender.send(read.map(|_| answer));
    });
    let answer = receiver
        .await
        .context("reading the answer")?
        .context("reading the answer")?;
    if answer.trim() != "yes" {
        bail!("cancelled: the answer was not `yes`; nothing was changed");
    }
    Ok(())
}

/// Returns true when state holds fingerprints in an older form — salted SHA-256 with the salt
/// beside them (an older build), or keyed under an older version of `key` (a rotation): apply
/// rewrites them under the current key even when nothing else changes.
fn has_outdated_fingerprints(state: &State, key: Option<&FingerprintKey>) -> bool {
    let outdated = |text: &str| match parse_keyed(text) {
        Some((version, _)) => key.is_some_and(|key| key.id() != version),
        None => text.starts_with(&format!("{LEGACY_SCHEME}:")) || text.starts_with("generated:"),
    };
    fn any_sensitive(value: &Value, test: &dyn Fn(&str) -> bool) -> bool {
        match value {
            Value::Marker(Marker::Sensitive(text)) => test(text),
            Value::Map(entries) => entries.values().any(|item| any_sensitive(item, test)),
            Value::List(items) => items.iter().any(|item| any_sensitive(item, test)),
            _ => false,
        }
    }
    state.resources.iter().any(|resource| {
        resource.attributes.contains_key(LEGACY_SALT_ATTRIBUTE)
            || resource
                .attributes
                .values()
                .any(|value| any_sensitive(value, &outdated))
    })
}

/// What `apply` says when it runs only to record creates an interrupted run made.
const SETTLING: &str =
    "Recording creates an interrupted apply made: their objects exist as configured.";

/// Returns true when state holds intent records (creates an interrupted run began). A plan with
/// no changes found their objects made as configured (one missing is planned as a create):
/// apply records them as created, or the records would stay for every later run to read.
fn has_intent_records(state: &State) -> bool {
    state
        .resources
        .iter()
        .any(|resource| resource.status == ResourceStatus::Creating)
}

/// What `apply` says when it runs only to rewrite outdated fingerprints.
const REWRITING: &str =
    "Rewriting secret fingerprints recorded in an older form (an older build or key version).";

async fn execute(
    session: &Session,
    plan: &Plan,
    state: State,
    parallelism: usize,
    fingerprint_key: Option<Arc<FingerprintKey>>,
) -> anyhow::Result<Outcome> {
    let fingerprint_key = if writes_secrets(plan)
        || (!plan.destroy && has_outdated_fingerprints(&state, fingerprint_key.as_deref()))
    {
        Some(session.ensure_fingerprint_key(fingerprint_key).await?)
    } else {
        fingerprint_key
    };
    // A new state's lineage labels every object this apply creates: the apply persists it
    // before its first create (`apply::apply`), so the next run adopts (rather than refuses)
    // what an interrupted first apply created.
    let interrupt = super::interrupt();
    // From here an interrupt lets the operations in flight finish and be recorded.
    let _shield = interrupt.shield();
    let stop = interrupt.stop_flag();
    eprintln!(
        "{} `{}`… (an interrupt lets the operations in flight finish and saves them)",
        if plan.destroy {
            "Destroying"
        } else {
            "Applying the changes to"
        },
        session.configuration.env.name
    );
    let sink = BackendSink {
        backend: &session.backend,
    };
    let progress = super::progress::for_stderr();
    let (final_state, report) = apply_with_progress(
        &session.configuration,
        plan,
        state,
        &session.client,
        &sink,
        parallelism,
        &stop,
        fingerprint_key,
        progress.as_ref(),
    )
    .await;
    for error in &report.errors {
        eprintln!("error: {error}");
    }
    if let Some(failure) = &report.unsaved {
        let location = session.backend.location();
        let saved = crate::state::local::write_errored_state(&final_state).map_err(|error| {
            anyhow::anyhow!(
                "{location}: the state could not be saved ({failure}), and neither could a copy in the working directory: {error}\n  hint: the objects this run made are not recorded; `infra import` them"
            )
        })?;
        bail!(
            "{location}: the final state could not be saved: {failure}\n  it was written to {} instead\n  hint: once the backend works again: `infra state push --env {} {}`",
            saved.display(),
            final_state.env,
            saved.display()
        );
    }
    if !report.skipped.is_empty() {
        eprintln!(
            "skipped because something they depend on failed: {}",
            report.skipped.join(", ")
        );
    }
    let verb = if plan.destroy { "Destroy" } else { "Apply" };
    if report.interrupted {
        return Err(CommandError::new(
            ErrorKind::Interrupted,
            format!(
                "{verb} interrupted: {} added, {} changed, {} destroyed before stopping; the state is saved and the lock released",
                report.added, report.changed, report.destroyed
            ),
        )
        .hint(format!(
            "run `infra {} --env {}` again to finish",
            if plan.destroy { "destroy" } else { "apply" },
            session.configuration.env.name
        ))
        .into());
    }
    if !report.errors.is_empty() {
        bail!(
            "{verb} failed: {} error(s); {} added, {} changed, {} destroyed — what succeeded is in the state",
            report.errors.len(),
            report.added,
            report.changed,
            report.destroyed
        );
    }
    super::apply_summary::print_summary(verb, &report, &final_state)?;
    Ok(Outcome::Success)
}

/// Runs `infra apply`.
pub async fn run_apply(global: &GlobalArgs, args: ApplyArgs) -> anyhow::Result<Outcome> {
    // A bad plan file is refused before anything is opened or locked.
    let saved = args
        .plan_file
        .as_deref()
        .map(|path| read_plan_file(path, &global.env).map(|plan| (path, plan)))
        .transpose()?;
    let mut session = Session::open_for_planning(global).await?;
    let parallelism = usize::from(args.planning.parallelism);
    if let Some((path, saved)) = saved {
        // A plan made before any state existed carries the lineage the new state will have.
        let mut state = session
            .lock_and_read_existing("apply", args.planning.lock_timeout)
            .await?
            .unwrap_or_else(|| State {
                lineage: saved.lineage.clone(),
                ..State::new(&session.configuration.env.name)
            });
        check_fresh(
            path,
            &saved,
            &session.configuration.env.name,
            &state,
            &config_digest(&session.configuration),
        )?;
        let options = PlanOptions {
            destroy: saved.destroy,
            // The saved plan was reviewed as made; emptying the configuration since then
            // changes its digest, which `check_fresh` refuses.
            allow_empty_config: true,
            ..args.planning.options(saved.destroy)
        };
        let (current, fingerprint_key) = session.plan(&mut state, options, &NoProgress).await?;
        let current = crate::plan::target::apply_targets(current, &saved.targets)?;
        let current = if saved.refresh_only {
            crate::plan::refresh_only::refresh_only_plan(current, &state)
        } else {
            current
        };
        if current.changes != saved.changes {
            let differing: Vec<&str> = current
                .changes
                .iter()
                .filter(|change| saved.change(&change.address) != Some(*change))
                .map(|change| change.address.as_str())
                .chain(
                    saved
                        .changes
                        .iter()
                        .filter(|change| current.change(&change.address).is_none())
                        .map(|change| change.address.as_str()),
                )
                .collect();
            bail!(
                "{}: the plan is stale: live infrastructure changed since it was made ({})\n  hint: run `infra plan --env {} --out {}` again",
                path.display(),
                differing.join(", "),
                global.env,
                path.display()
            );
        }
        if !saved.has_changes() {
            if has_outdated_fingerprints(&state, fingerprint_key.as_deref()) {
                eprintln!("No changes. {REWRITING}");
                return execute(&session, &saved, state, parallelism, fingerprint_key).await;
            }
            if has_intent_records(&state) && !saved.destroy && !saved.refresh_only {
                eprintln!("No changes. {SETTLING}");
                return execute(&session, &saved, state, parallelism, fingerprint_key).await;
            }
            eprintln!("No changes. Nothing to apply.");
            return Ok(Outcome::Success);
        }
        if saved.refresh_only {
            return super::refresh::record_refresh(&session, &saved, state).await;
        }
        return execute(&session, &saved, state, parallelism, fingerprint_key).await;
    }
    let (state, plan, fingerprint_key) =
        plan_in_session(&mut session, &args.planning, "apply").await?;
    out!("{}", render_plan(&plan, args.planning.color()));
    if !plan.has_changes() {
        // Nothing changes in the cloud, but state still holds guessable fingerprints: rewrite
        // them now (no confirmation: only state and infra's own key are written).
        if has_outdated_fingerprints(&state, fingerprint_key.as_deref()) {
            eprintln!("{REWRITING}");
            return execute(&session, &plan, state, parallelism, fingerprint_key).await;
        }
        if has_intent_records(&state) && !plan.refresh_only {
            eprintln!("{SETTLING}");
            return execute(&session, &plan, state, parallelism, fingerprint_key).await;
        }
        return Ok(Outcome::Success);
    }
    confirm(
        &format!(
            "\nDo you want to perform these actions in `{}`?",
            global.env
        ),
        args.auto_approve,
    )
    .await?;
    if plan.refresh_only {
        return super::refresh::record_refresh(&session, &plan, state).await;
    }
    execute(&session, &plan, state, parallelism, fingerprint_key).await
}

/// Runs `infra destroy`.
pub async fn run_destroy(global: &GlobalArgs, args: DestroyArgs) -> anyhow::Result<Outcome> {
    let mut session = Session::open_for_planning(global).await?;
    let (state, plan, fingerprint_key) =
        plan_in_session(&mut session, &args.planning, "destroy").await?;
    out!("{}", render_plan(&plan, args.planning.color()));
    if !plan.has_changes() {
        return Ok(Outcome::Success);
    }
    confirm(
        &format!(
            "\nDo you really want to destroy everything `{}` manages?",
            global.env
        ),
        args.auto_approve,
    )
    .await?;
    execute(
        &session,
        &plan,
        state,
        usize::from(args.planning.parallelism),
        fingerprint_key,
    )
    .await
}
