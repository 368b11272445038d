//! The command line: one file per command; errors become exit codes in `error.rs` (0 success
//! or no changes, 1 error — usage errors included, 2 changes present with
//! `--detailed-exitcode`); signals become cancellation in `interrupt.rs`.

#[macro_use]
mod stdout;

mod apply;
mod apply_summary;
mod completions;
mod emulator;
mod error;
mod force_unlock;
mod graph;
mod import;
mod interrupt;
mod output;
mod plan;
mod plan_output;
mod progress;
mod refresh;
mod session;
mod show;
mod state;
mod validate;

pub use error::{CommandError, ErrorKind};
pub use interrupt::Interrupt;

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::OnceLock;

/// Declarative infrastructure for Google Cloud: plan, apply and track Cloud Run, Secret Manager,
/// IAM, Monitoring and Billing resources, with a bundled emulator for offline work.
#[derive(Debug, Parser)]
#[command(name = "infra", version = completions::VERSION, about, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, Args, Clone)]
pub struct GlobalArgs {
    /// The environment: a directory under envs/ (local runs on the embedded emulator).
    #[arg(long, global = true, env = "INFRA_ENV", default_value = "local", value_parser = parse_env_name)]
    pub env: String,
    /// The project directory (holding envs/ and modules/); found upward from here by default.
    #[arg(long, global = true, env = "INFRA_ROOT")]
    pub root: Option<PathBuf>,
    /// Log filter for diagnostics on stderr (error, warn, info, debug, trace).
    #[arg(long, global = true, env = "INFRA_LOG", default_value = "warn", value_parser = parse_log_filter)]
    pub log_level: String,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check the configuration without reading state or calling any API.
    Validate(validate::ValidateArgs),
    /// Show what apply would change, after reading the live objects.
    Plan(plan::PlanArgs),
    /// Make the changes: from a fresh plan (asks for `yes`) or a saved plan file.
    Apply(apply::ApplyArgs),
    /// Delete everything this environment manages.
    Destroy(apply::DestroyArgs),
    /// Show the state, or a saved plan file.
    Show(show::ShowArgs),
    /// Print output values from the state.
    Output(output::OutputArgs),
    /// Read and edit the state (list, show, rm, mv, pull, push, versions, restore).
    State(state::StateArgs),
    /// Adopt an existing cloud object into the state under a configured address.
    Import(import::ImportArgs),
    /// Remove a lock left by a run that died.
    ForceUnlock(force_unlock::ForceUnlockArgs),
    /// Serve the local emulator of the Google APIs infra calls.
    Emulator(emulator::EmulatorArgs),
    /// Draw the resources and their dependencies (Graphviz DOT or Mermaid).
    Graph(graph::GraphArgs),
    /// Print a shell completion script (bash, zsh, fish, powershell).
    Completions(completions::CompletionsArgs),
    /// Print the man page (roff): `infra man > infra.1`.
    Man,
    /// Print the version and the commit infra was built from.
    Version,
}

/// Outcomes that are not errors but have their own exit code.
pub enum Outcome {
    Success,
    ChangesPresent,
}

/// Returns the process's interrupt: one per process, as signals are.
pub fn interrupt() -> &'static Interrupt {
    static INTERRUPT: OnceLock<Interrupt> = OnceLock::new();
    INTERRUPT.get_or_init(Interrupt::new)
}

/// Runs the command line and returns the process exit code.
pub fn main() -> ExitCode {
    let arguments: Vec<String> = std::env::args().collect();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(usage) => return error::report_usage(usage, &arguments),
    };
    init_logging(&cli.global.log_level);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            return error::report(
                CommandError::new(
                    ErrorKind::Internal,
                    format!("cannot start the async runtime: {error}"),
                )
                .into(),
            );
        }
    };
    let result = runtime.block_on(async {
        let interrupt = interrupt();
        interrupt.listen().map_err(|error| {
            CommandError::new(
                ErrorKind::Internal,
                format!("cannot listen for SIGINT and SIGTERM: {error}"),
            )
        })?;
        // The emulator serves until interrupted: for it an interrupt is the normal end.
        if matches!(cli.command, Command::Emulator(_)) {
            return run(cli).await;
        }
        // Dropping the command's future on an interrupt drops its session, which releases the
        // lock; phases that must finish (apply's operations) hold a shield meanwhile.
        tokio::select! {
            biased;
            result = run(cli) => result,
            () = interrupt.cancelled() => Err(interrupted_error()),
        }
    });
    let code = match result {
        Ok(Outcome::Success) => ExitCode::SUCCESS,
        Ok(Outcome::ChangesPresent) => ExitCode::from(2),
        Err(error) => error::report(error),
    };
    // A prompt's reader thread may still wait for a line; nothing else is left to finish.
    runtime.shutdown_background();
    code
}

fn interrupted_error() -> anyhow::Error {
    CommandError::new(
        ErrorKind::Interrupted,
        "interrupted: stopped before changing anything; no state lock is left held",
    )
    .hint("run the command again when ready")
    .into()
}

async fn run(cli: Cli) -> anyhow::Result<Outcome> {
    let global = cli.global;
    match cli.command {
        Command::Validate(args) => validate::run_validate(&global, args).await,
        Command::Plan(args) => plan::run_plan(&global, args).await,
        Command::Apply(args) => apply::run_apply(&global, args).await,
        Command::Destroy(args) => apply::run_destroy(&global, args).await,
        Command::Show(args) => show::run_show(&global, args).await,
        Command::Output(args) => output::run_output(&global, args).await,
        Command::State(args) => state::run_state(&global, args).await,
        Command::Import(args) => import::run_import(&global, args).await,
        Command::ForceUnlock(args) => force_unlock::run_force_unlock(&global, args).await,
        Command::Emulator(args) => emulator::run_emulator(args).await,
        Command::Graph(args) => graph::run_graph(&global, args).await,
        Command::Completions(args) => completions::run_completions(args),
        Command::Man => completions::run_man(),
        Command::Version => completions::run_version(),
    }
}

/// Accepts an environment name: a directory name under envs/, never a path.
fn parse_env_name(text: &str) -> Result<String, String> {
    let valid = !text.is_empty()
        && !text.starts_with('.')
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
    if valid {
        Ok(text.to_string())
    } else {
        Err(format!(
            "`{text}` is not an environment name: use a directory name under envs/ (letters, digits, `-`, `_`), not a path"
        ))
    }
}

/// Accepts a log filter: levels, or `target=level` directives, comma-separated.
fn parse_log_filter(text: &str) -> Result<String, String> {
    const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];
    let valid_directive = |directive: &str| {
        let level = directive.rsplit('=').next().unwrap_or_default();
        (LEVELS.contains(&directive) || directive.contains('='))
            && LEVELS.contains(&level.to_ascii_lowercase().as_str())
    };
    if text.split(',').all(valid_directive) && tracing_subscriber::EnvFilter::try_new(text).is_ok()
    {
        Ok(text.to_string())
    } else {
        Err(format!(
            "`{text}` is not a log filter: use error, warn, info, debug or trace, or target=level directives"
        ))
    }
}

fn init_logging(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_filters_are_levels_or_directives() {
        assert!(parse_log_filter("debug").is_ok());
        assert!(parse_log_filter("warn,infra=trace").is_ok());
        assert!(parse_log_filter("garbage").is_err());
        assert!(parse_log_filter("infra=loud").is_err());
    }

    #[test]
    fn environment_names_are_not_paths() {
        assert!(parse_env_name("staging").is_ok());
        assert!(parse_env_name("eu-west_1").is_ok());
        for bad in ["../x", "/etc", "", "a/b", ".hidden"] {
            assert!(parse_env_name(bad).is_err(), "{bad}");
        }
    }
}
