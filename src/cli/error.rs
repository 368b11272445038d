//! The one error edge of the command line (after jj's `command_error.rs`): every failure
//! becomes a `CommandError` of a kind (usage, config, user, broken pipe, interrupted,
//! internal) with hints as data, is rendered here once — the cause chain without repeats,
//! hints as `  hint: …` lines — and picks the exit code. Commands build errors; they never
//! print them.

use crate::config::ConfigError;
use std::fmt;
use std::io::Write;
use std::process::ExitCode;

/// What went wrong, as far as the exit code and the rendering care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The command line itself: an unknown flag, a bad value, a missing argument.
    Usage,
    /// The configuration (all its diagnostics, each with its own hint).
    Config,
    /// Anything else the user can act on: state, plan files, API answers, locks.
    User,
    /// stdout was closed by its reader (`| head`): not an error at all.
    BrokenPipe,
    /// SIGINT or SIGTERM stopped the command.
    Interrupted,
    /// A bug or an environment failure infra cannot explain.
    Internal,
}

/// An error of a kind, with hints the renderer prints after it.
#[derive(Debug)]
pub struct CommandError {
    pub kind: ErrorKind,
    pub error: anyhow::Error,
    pub hints: Vec<String>,
}

impl CommandError {
    /// Returns an error of `kind` saying `message`.
    pub fn new(kind: ErrorKind, message: impl fmt::Display) -> Self {
        Self {
            kind,
            error: anyhow::anyhow!("{message}"),
            hints: Vec::new(),
        }
    }

    /// Adds a hint (rendered as `  hint: …`).
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hints.push(hint.into());
        self
    }

    /// Returns the exit code for this kind: 0 for a closed stdout, 1 for everything else (2
    /// is reserved for "changes present").
    pub fn exit_code(&self) -> ExitCode {
        match self.kind {
            ErrorKind::BrokenPipe => ExitCode::SUCCESS,
            _ => ExitCode::from(1),
        }
    }

    /// Classifies any error a command returned: a `CommandError` keeps its kind, a closed
    /// pipe anywhere in the chain is a broken pipe, a configuration error is a config error.
    pub fn from_anyhow(error: anyhow::Error) -> Self {
        let error = match error.downcast::<CommandError>() {
            Ok(command_error) => return command_error,
            Err(error) => error,
        };
        let kind = if is_broken_pipe(&error) {
            ErrorKind::BrokenPipe
        } else if error.chain().any(|cause| cause.is::<ConfigError>()) || is_diagnostic(&error) {
            ErrorKind::Config
        } else {
            ErrorKind::User
        };
        Self {
            kind,
            error,
            hints: Vec::new(),
        }
    }

    /// Renders the error for stderr: empty for a broken pipe.
    pub fn render(&self) -> String {
        if self.kind == ErrorKind::BrokenPipe {
            return String::new();
        }
        if self.kind == ErrorKind::Config {
            // Diagnostics carry their hints in place, one per problem.
            return render_chain(&self.error, None);
        }
        let mut hints = Vec::new();
        let body = render_chain(&self.error, Some(&mut hints));
        for hint in &self.hints {
            if !hints.contains(hint) {
                hints.push(hint.clone());
            }
        }
        let mut text = if body.starts_with("error") {
            body
        } else {
            format!("error: {body}")
        };
        for hint in hints {
            text.push_str("\n  hint: ");
            text.push_str(&hint);
        }
        text
    }
}

impl fmt::Display for CommandError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{:#}", self.error)
    }
}

impl std::error::Error for CommandError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.error.source()
    }
}

/// Prints `error` on stderr and returns the exit code it calls for.
pub fn report(error: anyhow::Error) -> ExitCode {
    let error = CommandError::from_anyhow(error);
    let text = error.render();
    if !text.is_empty() {
        let _ = writeln!(std::io::stderr().lock(), "{text}");
    }
    error.exit_code()
}

/// Returns whether a closed pipe caused the error (ripgrep's way: anywhere in the chain).
pub fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Returns whether the text is a configuration diagnostic (`envs/x.toml:3:1: error[…]`),
/// which carries its hints in place.
fn is_diagnostic(error: &anyhow::Error) -> bool {
    let text = error.to_string();
    text.starts_with("error[")
        || text.contains(": error[")
        || text.starts_with("envs/")
        || text.starts_with("modules/")
}

/// Joins the cause chain with `: `, leaving out a cause whose text its parent already shows
/// (a `"{location}: {source}"` message that also has a `source`), and moves `hint:` lines
/// into `hints` when given.
fn render_chain(error: &anyhow::Error, mut hints: Option<&mut Vec<String>>) -> String {
    let mut text = String::new();
    for cause in error.chain() {
        let mut lines = Vec::new();
        for line in cause.to_string().lines() {
            match line.trim_start().strip_prefix("hint:") {
                Some(hint) if let Some(hints) = hints.as_deref_mut() => {
                    let hint = hint.trim().to_string();
                    if !hints.contains(&hint) {
                        hints.push(hint);
                    }
                }
                _ => lines.push(line.to_string()),
            }
        }
        let message = lines.join("\n");
        let message = message.trim();
        if message.is_empty() || text.contains(message) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(message);
    }
    text
}

/// Turns a clap error into the exit code: help and version go to stdout and exit 0, every
/// usage error is rendered with hints on stderr and exits 1 (2 means "changes present").
pub fn report_usage(error: clap::Error, arguments: &[String]) -> ExitCode {
    use clap::error::ErrorKind as ClapKind;
    match error.kind() {
        ClapKind::DisplayHelp | ClapKind::DisplayVersion => {
            let text = error.render().to_string();
            // A closed stdout (`infra --help | head -1`) is not an error.
            let _ = std::io::stdout().lock().write_all(text.as_bytes());
            ExitCode::SUCCESS
        }
        _ => {
            let rendered = render_usage(&error, arguments);
            let _ = writeln!(std::io::stderr().lock(), "{rendered}");
            ExitCode::from(1)
        }
    }
}

/// Returns the command the arguments name (`infra state rm`), for the `--help` hint.
fn command_path(arguments: &[String]) -> String {
    use clap::CommandFactory;
    let mut command = super::Cli::command();
    let mut path = vec!["infra".to_string()];
    for argument in arguments.iter().skip(1) {
        if argument.starts_with('-') {
            continue;
        }
        let Some(sub) = command.find_subcommand(argument).cloned() else {
            continue;
        };
        path.push(argument.clone());
        command = sub;
    }
    path.join(" ")
}

fn render_usage(error: &clap::Error, arguments: &[String]) -> String {
    let clap_text = error.render().to_string();
    let mut message = Vec::new();
    let mut hints = Vec::new();
    let mut usage: Option<String> = None;
    for line in clap_text.lines() {
        let trimmed = line.trim();
        if let Some(tip) = trimmed.strip_prefix("tip:") {
            hints.push(tip.trim().to_string());
        } else if let Some(rest) = trimmed.strip_prefix("Usage:") {
            usage = Some(rest.trim().to_string());
        } else if trimmed.starts_with("For more information") {
        } else if usage.is_none() || !trimmed.is_empty() {
            message.push(line.to_string());
        }
    }
    while message.last().is_some_and(|line| line.trim().is_empty()) {
        message.pop();
    }
    if let Some(single_dash) = arguments
        .iter()
        .skip(1)
        .take_while(|argument| *argument != "--")
        .find(|argument| {
            argument.len() > 2
                && argument.starts_with('-')
                && !argument.starts_with("--")
                && argument[1..2].chars().all(|c| c.is_ascii_alphabetic())
        })
    {
        hints.push(format!(
            "infra's long options take two dashes: `-{single_dash}`"
        ));
    }
    for (variable, flag) in [
        ("INFRA_LOG", "--log-level"),
        ("INFRA_ENV", "--env"),
        ("INFRA_ROOT", "--root"),
    ] {
        if clap_text.contains(flag)
            && let Ok(value) = std::env::var(variable)
        {
            hints.push(format!(
                "{variable} is set to `{value}` and stands in for {flag}: fix or unset it"
            ));
        }
    }
    let command = command_path(arguments);
    if error.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
        message = vec![format!(
            "error: `{command}` needs a command\n\n{}",
            clap_text.trim_end()
        )];
        usage = None;
    }
    if let Some(usage) = &usage {
        message.push(format!("\nUsage: {usage}"));
    }
    hints.push(format!("`{command} --help` lists what it takes"));
    let mut text = message.join("\n");
    if !text.starts_with("error") {
        text = format!("error: {text}");
    }
    for hint in hints {
        text.push_str("\n  hint: ");
        text.push_str(&hint);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("state/x.json: {source}")]
    struct Located {
        source: std::io::Error,
    }

    #[test]
    fn a_cause_the_parent_already_shows_is_printed_once() {
        let io = std::io::Error::from_raw_os_error(21);
        let error = anyhow::Error::new(Located { source: io }).context("reading the state");
        let rendered = CommandError::from_anyhow(error).render();
        assert_eq!(rendered.matches("os error 21").count(), 1, "{rendered}");
        assert!(rendered.starts_with("error: reading the state: state/x.json: "));
    }

    #[test]
    fn hints_are_collected_after_the_message() {
        let error = anyhow::anyhow!("state locked\n  hint: wait for it").context("planning");
        let rendered = CommandError::from_anyhow(error).render();
        assert_eq!(
            rendered,
            "error: planning: state locked\n  hint: wait for it"
        );
        let typed = CommandError::new(ErrorKind::User, "no such output")
            .hint("outputs: a, b")
            .render();
        assert_eq!(typed, "error: no such output\n  hint: outputs: a, b");
    }

    #[test]
    fn a_closed_pipe_anywhere_in_the_chain_exits_quietly() {
        let error = anyhow::Error::new(std::io::Error::from(std::io::ErrorKind::BrokenPipe))
            .context("writing the plan");
        let classified = CommandError::from_anyhow(error);
        assert_eq!(classified.kind, ErrorKind::BrokenPipe);
        assert_eq!(classified.render(), "");
        assert_eq!(classified.exit_code(), ExitCode::SUCCESS);
    }
}
