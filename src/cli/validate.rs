//! `infra validate`: loads the configuration, builds the graph and evaluates every expression
//! against an empty state, all without reading state or calling an API.

use super::session::load_configuration;
use super::{GlobalArgs, Outcome};
use crate::graph::block_graph;
use crate::plan::PlanOptions;
use crate::plan::planner::plan_with_live;
use crate::state::State;
use clap::Args;
use std::collections::BTreeMap;

/// Arguments of `infra validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {}

/// Runs `infra validate`.
pub async fn run_validate(global: &GlobalArgs, _args: ValidateArgs) -> anyhow::Result<Outcome> {
    let configuration = load_configuration(global)?;
    let graph = block_graph(&configuration)?;
    let empty = State::new(&configuration.env.name);
    plan_with_live(
        &configuration,
        &empty,
        &graph,
        &BTreeMap::new(),
        &PlanOptions::default(),
    )?;
    let resources: usize = configuration
        .modules
        .iter()
        .map(|module| module.resources.len())
        .sum();
    eprintln!(
        "Success! The configuration of `{}` is valid ({} module{}, {resources} resource block{}).",
        configuration.env.name,
        configuration.modules.len() - 1,
        if configuration.modules.len() == 2 {
            ""
        } else {
            "s"
        },
        if resources == 1 { "" } else { "s" }
    );
    Ok(Outcome::Success)
}
