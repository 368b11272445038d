//! `infra apply [FILE]` and `infra destroy`: plan (or load and re-check a saved plan), ask for
//! `yes` on a terminal, execute with state persisted as it goes, stop gracefully on Ctrl-C.

use super::plan::{PlanningArgs, plan_in_session};
use super::session::Session;
use super::{GlobalArgs, Outcome};
use crate::apply::{StateSink, apply_with_progress};
use crate::plan::file::{check_fresh, read_plan};
use crate::plan::planner::config_digest;
use crate::plan::render::render_plan;
use crate::plan::{Plan, PlanOptions, make_plan};
use crate::state::{Backend, State};
use anyhow::{Context, bail};
use clap::Args;
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

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
    async fn persist(&self, state: &State) -> Result<(), String> {
        self.backend
            .write(state)
            .await
            .map_err(|error| error.to_string())
    }
}

fn confirm(question: &str, auto_approve: bool) -> anyhow::Result<()> {
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
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .context("reading the answer")?;
    if answer.trim() != "yes" {
        bail!("cancelled: the answer was not `yes`; nothing was changed");
    }
    Ok(())
}

async fn execute(
    session: &Session,
    plan: &Plan,
    state: State,
    parallelism: usize,
) -> anyhow::Result<Outcome> {
    let stop = Arc::new(AtomicBool::new(false));
    let listener_stop = stop.clone();
    let listener = tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!(
                "\nInterrupt received: finishing the operations in flight and saving state; nothing new starts."
            );
            listener_stop.store(true, Ordering::SeqCst);
        }
    });
    let sink = BackendSink {
        backend: &session.backend,
    };
    let progress = super::progress::for_stderr();
    let (state, report) = apply_with_progress(
        &session.configuration,
        plan,
        state,
        &session.client,
        &sink,
        parallelism,
        &stop,
        progress.as_ref(),
    )
    .await;
    listener.abort();
    for error in &report.errors {
        eprintln!("error: {error}");
    }
    if !report.skipped.is_empty() {
        eprintln!(
            "skipped because something they depend on failed: {}",
            report.skipped.join(", ")
        );
    }
    let verb = if plan.destroy { "Destroy" } else { "Apply" };
    if report.interrupted {
        bail!(
            "{verb} interrupted: {} added, {} changed, {} destroyed before stopping; state is saved — run the command again to finish",
            report.added,
            report.changed,
            report.destroyed
        );
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
    super::apply_summary::print_summary(verb, &report, &state)?;
    Ok(Outcome::Success)
}

/// Runs `infra apply`.
pub async fn run_apply(global: &GlobalArgs, args: ApplyArgs) -> anyhow::Result<Outcome> {
    let mut session = Session::open(global).await?;
    let parallelism = usize::from(args.planning.parallelism);
    if let Some(path) = &args.plan_file {
        let saved = read_plan(path)?;
        // A plan made before any state existed carries the lineage the new state will have.
        let state = session
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
            salt: Some(saved.salt.clone()),
            destroy: saved.destroy,
            // The saved plan was reviewed as made; emptying the configuration since then
            // changes its digest, which `check_fresh` refuses.
            allow_empty_config: true,
            ..args.planning.options(saved.destroy)
        };
        let current = make_plan(&session.configuration, &state, &session.client, &options).await?;
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
            eprintln!("No changes. Nothing to apply.");
            return Ok(Outcome::Success);
        }
        if saved.refresh_only {
            return super::refresh::record_refresh(&session, &saved, state).await;
        }
        return execute(&session, &saved, state, parallelism).await;
    }
    let (state, plan) = plan_in_session(&mut session, &args.planning, "apply").await?;
    print!("{}", render_plan(&plan, args.planning.color()));
    if !plan.has_changes() {
        return Ok(Outcome::Success);
    }
    confirm(
        &format!(
            "\nDo you want to perform these actions in `{}`?",
            global.env
        ),
        args.auto_approve,
    )?;
    if plan.refresh_only {
        return super::refresh::record_refresh(&session, &plan, state).await;
    }
    execute(&session, &plan, state, parallelism).await
}

/// Runs `infra destroy`.
pub async fn run_destroy(global: &GlobalArgs, args: DestroyArgs) -> anyhow::Result<Outcome> {
    let mut session = Session::open(global).await?;
    let (state, plan) = plan_in_session(&mut session, &args.planning, "destroy").await?;
    print!("{}", render_plan(&plan, args.planning.color()));
    if !plan.has_changes() {
        return Ok(Outcome::Success);
    }
    confirm(
        &format!(
            "\nDo you really want to destroy everything `{}` manages?",
            global.env
        ),
        args.auto_approve,
    )?;
    execute(
        &session,
        &plan,
        state,
        usize::from(args.planning.parallelism),
    )
    .await
}
