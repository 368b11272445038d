//! `infra plan`: refresh, diff, render (human or `--json`), optionally save (`--out`), and
//! report through the exit code with `--detailed-exitcode`.

use super::session::{Session, parse_duration};
use super::{GlobalArgs, Outcome};
use crate::plan::model::Action;
use crate::plan::render::ColorChoice;
use crate::plan::{Plan, PlanOptions};
use crate::sensitive::FingerprintKey;
use anyhow::Context;
use clap::Args;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// `--color`: when to color the plan.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorMode {
    #[default]
    Auto,
    Always,
    Never,
}

/// Options shared by the commands that plan (plan, apply, destroy).
#[derive(Debug, Args, Clone)]
pub struct PlanningArgs {
    /// How many API calls may run at once.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub parallelism: u16,
    /// How long to wait for the state lock (like 0s, 30s, 2m).
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    pub lock_timeout: Duration,
    /// Read live objects before planning; --refresh=false trusts the state.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub refresh: bool,
    /// Only compare the state with the live objects: the plan lists drift (exit 2 with
    /// --detailed-exitcode when there is some), and apply records it in the state without
    /// changing any object.
    #[arg(long, conflicts_with_all = ["replace", "refresh"])]
    pub refresh_only: bool,
    /// Plan only this resource (or module, or every instance of a block) and what it depends
    /// on; for exceptional situations, not routine use (repeatable).
    #[arg(long, value_name = "ADDRESS")]
    pub target: Vec<String>,
    /// Plan to replace this resource even if nothing changed (repeatable).
    #[arg(long, value_name = "ADDRESS")]
    pub replace: Vec<String>,
    /// Never color the output (NO_COLOR and a non-terminal stdout do the same).
    #[arg(long)]
    pub no_color: bool,
    /// When to color the plan: auto (a terminal, unless NO_COLOR is set; CLICOLOR_FORCE
    /// forces it, for CI logs), always or never.
    #[arg(long, value_enum, default_value_t, value_name = "WHEN")]
    pub color: ColorMode,
    /// Plan even though the configuration declares no resources while the state holds some
    /// (every one of them is destroyed); refused without it.
    #[arg(long)]
    pub allow_empty_config: bool,
}

impl PlanningArgs {
    /// Returns the plan options these flags ask for.
    pub fn options(&self, destroy: bool) -> PlanOptions {
        PlanOptions {
            parallelism: usize::from(self.parallelism),
            refresh: self.refresh,
            destroy,
            replace: self.replace.clone(),
            allow_empty_config: self.allow_empty_config,
            fingerprint_key: None,
        }
    }

    /// Returns the color choice for stdout.
    pub fn color(&self) -> ColorChoice {
        match (self.no_color, self.color) {
            (true, _) | (false, ColorMode::Never) => ColorChoice::Never,
            (false, ColorMode::Always) => ColorChoice::Always,
            (false, ColorMode::Auto) => ColorChoice::detect(std::io::stdout().is_terminal()),
        }
    }
}

/// Arguments of `infra plan`.
#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub planning: PlanningArgs,
    /// Exit 0 when there are no changes, 1 on error, 2 when there are changes.
    #[arg(long)]
    pub detailed_exitcode: bool,
    /// Save the plan to this file for `infra apply FILE` (it holds no secret values).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub view: super::plan_output::PlanViewArgs,
    /// Plan to destroy everything instead.
    #[arg(long)]
    pub destroy: bool,
}

/// Returns true when the plan writes a secret value (a resource with sensitive fields is
/// created, updated or replaced): the fingerprint key must exist first.
pub(crate) fn writes_secrets(plan: &Plan) -> bool {
    !plan.destroy
        && plan.changes.iter().any(|change| {
            !change.sensitive.is_empty()
                && matches!(
                    change.action,
                    Action::Create | Action::Update | Action::Replace
                )
        })
}

/// Makes a plan inside a session locked for `operation` (plan, apply, destroy); returns the
/// state, the plan, and the fingerprint key it read (`None` before the first apply made one).
pub async fn plan_in_session(
    session: &mut Session,
    planning: &PlanningArgs,
    operation: &str,
) -> anyhow::Result<(crate::state::State, Plan, Option<Arc<FingerprintKey>>)> {
    let destroy = operation == "destroy";
    if destroy && planning.refresh_only {
        anyhow::bail!(
            "--refresh-only cannot destroy\n  hint: `infra apply --refresh-only` records drift in the state"
        );
    }
    let mut state = session
        .lock_and_read_for_planning(operation, planning.lock_timeout)
        .await?;
    // With --refresh=false nothing is read: saying so would be untrue (Terraform is silent too).
    if planning.refresh {
        eprintln!(
            "Refreshing {} resource{} of `{}`…",
            state.resources.len(),
            if state.resources.len() == 1 { "" } else { "s" },
            session.configuration.env.name
        );
    }
    let progress = super::progress::for_stderr();
    let (plan, fingerprint_key) = session
        .plan(&mut state, planning.options(destroy), progress.as_ref())
        .await?;
    if fingerprint_key.is_none() && writes_secrets(&plan) {
        let env = &session.configuration.env;
        eprintln!(
            "Secret values are fingerprinted once apply has created the environment's key {} (docs/state.md).",
            crate::gcp::fingerprint_key::key_secret_name(&env.project, &env.name)
        );
    }
    let plan = crate::plan::target::apply_targets(plan, &planning.target)?;
    if !planning.target.is_empty() {
        eprintln!("\n{}", crate::plan::target::TARGET_WARNING);
    }
    let plan = if planning.refresh_only {
        crate::plan::refresh_only::refresh_only_plan(plan, &state)
    } else {
        plan
    };
    Ok((state, plan, fingerprint_key))
}

/// Runs `infra plan`.
pub async fn run_plan(global: &GlobalArgs, args: PlanArgs) -> anyhow::Result<Outcome> {
    let mut session = Session::open_for_planning(global).await?;
    let operation = if args.destroy { "destroy" } else { "plan" };
    let (state, plan, _) = plan_in_session(&mut session, &args.planning, operation).await?;
    super::plan_output::print_plan(&plan, &args.view, args.planning.color())?;
    if let Some(path) = &args.out {
        crate::plan::file::write_plan(path, &plan)
            .with_context(|| {
                format!(
                    "--out {}: cannot write the plan\n  hint: give --out a file path where a file can be created",
                    path.display()
                )
            })?;
        eprintln!(
            "Saved the plan to {}. Apply exactly it with: infra apply --env {} {}",
            path.display(),
            global.env,
            path.display()
        );
    }
    let outcome = if args.detailed_exitcode && plan.has_changes() {
        Outcome::ChangesPresent
    } else {
        Outcome::Success
    };
    // The process ends after this: freeing a large plan and state value by value takes longer
    // than rendering them (an eighth of a 10,000-resource plan), and the OS takes the memory
    // back at once. The session (and its lock) is still closed as usual.
    std::mem::forget(plan);
    std::mem::forget(state);
    Ok(outcome)
}
