//! `infra completions SHELL`, `infra man` and `infra version`: what a packager or a new user
//! installs around the binary. The completion scripts and the man page are generated from the
//! same clap definitions as `--help`, so they cannot fall behind it.

use super::{Cli, Outcome};
use anyhow::Context;
use clap::{Args, CommandFactory};
use clap_complete::Shell;
use std::io::Write;

/// The version line: the crate's version and the commit it was built from.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("INFRA_COMMIT"),
    ")"
);

/// Arguments of `infra completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell: bash, zsh, fish, powershell or elvish.
    #[arg(value_enum)]
    pub shell: Shell,
}

/// Prints the completion script for a shell on stdout.
pub fn run_completions(args: CompletionsArgs) -> anyhow::Result<Outcome> {
    let mut command = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command, "infra", &mut script);
    write_stdout(&script, "the completion script")
}

/// Prints the man page (roff) on stdout: `infra man > infra.1`.
pub fn run_man() -> anyhow::Result<Outcome> {
    let mut page = Vec::new();
    clap_mangen::Man::new(Cli::command())
        .render(&mut page)
        .context("rendering the man page")?;
    write_stdout(&page, "the man page")
}

/// Prints `infra VERSION (commit …)`.
pub fn run_version() -> anyhow::Result<Outcome> {
    write_stdout(format!("infra {VERSION}\n").as_bytes(), "the version")
}

fn write_stdout(bytes: &[u8], what: &str) -> anyhow::Result<Outcome> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(bytes)
        .and_then(|()| stdout.flush())
        .with_context(|| format!("writing {what} to stdout"))?;
    Ok(Outcome::Success)
}
