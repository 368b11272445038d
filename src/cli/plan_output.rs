//! How `plan` and `show PLANFILE` print a plan: for people (colored when asked), as infra's
//! JSON, as Terraform's JSON plan representation, or as Markdown for a pull request (also
//! appended to `$GITHUB_STEP_SUMMARY` when GitHub Actions sets it).

use crate::plan::Plan;
use crate::plan::markdown::{GITHUB_COMMENT_LIMIT, render_markdown};
use crate::plan::render::{ColorChoice, render_plan};
use crate::plan::terraform_json::terraform_plan_json;
use anyhow::Context;
use clap::{Args, ValueEnum};
use std::io::Write;

/// The shape of `--json`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum JsonFormat {
    /// infra's own plan format (docs/plan-json.md), the one plan files hold.
    #[default]
    Infra,
    /// Terraform's JSON plan representation (`terraform show -json`), for OPA/conftest
    /// policies and other tools written for Terraform.
    Terraform,
}

/// How to print a plan.
#[derive(Debug, Args, Clone)]
pub struct PlanViewArgs {
    /// Print the plan as JSON on stdout (format: docs/plan-json.md).
    #[arg(long)]
    pub json: bool,
    /// The JSON shape with --json: infra's own, or Terraform's plan representation.
    #[arg(long, value_enum, default_value_t, requires = "json")]
    pub format: JsonFormat,
    /// Print the plan as GitHub Markdown (tables, a Mermaid graph, collapsible diffs) for a
    /// pull-request comment; also appended to $GITHUB_STEP_SUMMARY when that is set.
    #[arg(long, conflicts_with = "json")]
    pub markdown: bool,
}

/// Prints the plan on stdout the way `view` asks.
pub fn print_plan(plan: &Plan, view: &PlanViewArgs, color: ColorChoice) -> anyhow::Result<()> {
    let text = if view.markdown {
        let markdown = render_markdown(plan, GITHUB_COMMENT_LIMIT);
        append_step_summary(&markdown)?;
        markdown
    } else if view.json {
        let json = match view.format {
            JsonFormat::Infra => serde_json::to_string_pretty(plan)?,
            JsonFormat::Terraform => serde_json::to_string_pretty(&terraform_plan_json(plan))?,
        };
        format!("{json}\n")
    } else {
        render_plan(plan, color)
    };
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .context("writing the plan to stdout")
}

fn append_step_summary(markdown: &str) -> anyhow::Result<()> {
    let Some(path) = std::env::var_os("GITHUB_STEP_SUMMARY").filter(|path| !path.is_empty()) else {
        return Ok(());
    };
    let path = std::path::PathBuf::from(path);
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut file| file.write_all(format!("{markdown}\n").as_bytes()))
        .with_context(|| {
            format!(
                "appending the plan to $GITHUB_STEP_SUMMARY ({})\n  hint: unset GITHUB_STEP_SUMMARY outside GitHub Actions",
                path.display()
            )
        })
}
