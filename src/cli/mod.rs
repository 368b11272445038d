//! The command line: one file per command; errors become exit codes here (0 success or no
//! changes, 1 error, 2 changes present with `--detailed-exitcode`).

mod apply;
mod apply_summary;
mod completions;
mod emulator;
mod force_unlock;
mod graph;
mod import;
mod output;
mod plan;
mod plan_output;
mod progress;
mod refresh;
mod session;
mod show;
mod state;
mod validate;

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

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
    #[arg(long, global = true, env = "INFRA_ENV", default_value = "local")]
    pub env: String,
    /// The project directory (holding envs/ and modules/); found upward from here by default.
    #[arg(long, global = true, env = "INFRA_ROOT")]
    pub root: Option<PathBuf>,
    /// Log filter for diagnostics on stderr (error, warn, info, debug, trace).
    #[arg(long, global = true, env = "INFRA_LOG", default_value = "warn")]
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

/// Runs the command line and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli.global.log_level);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(run(cli));
    match result {
        Ok(Outcome::Success) => ExitCode::SUCCESS,
        Ok(Outcome::ChangesPresent) => ExitCode::from(2),
        Err(error) => {
            eprintln!("{}", format_error(&error));
            ExitCode::from(1)
        }
    }
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

fn format_error(error: &anyhow::Error) -> String {
    let text = format!("{error:#}");
    if text.starts_with("error")
        || text.contains(": error[")
        || text.starts_with("envs/")
        || text.starts_with("modules/")
    {
        text
    } else {
        format!("error: {text}")
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
