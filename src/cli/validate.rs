//! `infra validate`: the configuration checks every command makes first (see
//! `session::load_configuration`), without reading state or calling an API.

use super::session::load_configuration;
use super::{GlobalArgs, Outcome};
use clap::Args;

/// Arguments of `infra validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {}

/// Runs `infra validate`.
pub async fn run_validate(global: &GlobalArgs, _args: ValidateArgs) -> anyhow::Result<Outcome> {
    let configuration = load_configuration(global)?;
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
