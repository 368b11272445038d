//! `infra graph`: the resources and their dependencies as Graphviz DOT or Mermaid — the whole
//! configuration (from the state, no API reads), only a fresh plan's changes (`--changes`), or
//! a saved plan (`--plan FILE`). Drawing lives in `plan/change_graph.rs`.

use super::session::{Session, parse_duration};
use super::{GlobalArgs, Outcome};
use crate::plan::change_graph::ChangeGraph;
use crate::plan::{PlanOptions, make_plan};
use anyhow::Context;
use clap::{Args, ValueEnum};
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

/// The drawing language.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum GraphFormat {
    /// Graphviz: `infra graph | dot -Tsvg > graph.svg`.
    #[default]
    Dot,
    /// Mermaid, as GitHub renders it in Markdown.
    Mermaid,
}

/// Arguments of `infra graph`.
#[derive(Debug, Args)]
pub struct GraphArgs {
    /// The drawing language.
    #[arg(long, value_enum, default_value_t)]
    pub format: GraphFormat,
    /// Draw only what a plan changes, with what the changes depend on (reads live objects).
    #[arg(long)]
    pub changes: bool,
    /// Draw a saved plan (`infra plan --out FILE`) instead of planning.
    #[arg(long, value_name = "FILE")]
    pub plan: Option<PathBuf>,
    /// How long to wait for the state lock.
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    pub lock_timeout: Duration,
}

/// Runs `infra graph`.
pub async fn run_graph(global: &GlobalArgs, args: GraphArgs) -> anyhow::Result<Outcome> {
    let plan = match &args.plan {
        Some(path) => super::session::read_plan_file(path, &global.env)?,
        None => {
            let mut session = Session::open(global).await?;
            let state = session.lock_and_read("graph", args.lock_timeout).await?;
            // Without the key, no secret value could be confirmed unchanged.
            let fingerprint_key = session.read_fingerprint_key(&state).await?;
            let options = PlanOptions {
                refresh: args.changes,
                fingerprint_key,
                // Drawing changes nothing, so an empty configuration is no danger here.
                allow_empty_config: true,
                ..PlanOptions::default()
            };
            let plan = make_plan(&session.configuration, &state, &session.client, &options).await?;
            session.close().await;
            plan
        }
    };
    let graph = if args.changes {
        ChangeGraph::of_changes(&plan)
    } else {
        ChangeGraph::of_plan(&plan)
    };
    let text = match args.format {
        GraphFormat::Dot => graph.to_dot(),
        GraphFormat::Mermaid => graph.to_mermaid(),
    };
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .context("writing the graph to stdout")?;
    Ok(Outcome::Success)
}
