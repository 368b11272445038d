//! `infra validate`: the configuration checks every command makes first (see
//! `session::load_configuration`), without reading state or calling an API; it also says
//! which Google APIs the environment calls, with the command that enables them (a fresh
//! project has them disabled, and each call then answers 403 SERVICE_DISABLED).

use super::session::load_configuration;
use super::{GlobalArgs, Outcome};
use crate::config::{BackendSettings, Configuration};
use crate::gcp::quotas::services_for_kind;
use clap::Args;
use std::collections::BTreeSet;

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
    let services = required_services(&configuration);
    if !services.is_empty() {
        eprintln!(
            "It calls these Google APIs in project {project}; enable them once (done already: nothing happens):\n  gcloud services enable {} --project {project}",
            services.into_iter().collect::<Vec<_>>().join(" "),
            project = configuration.env.project,
        );
    }
    Ok(Outcome::Success)
}

/// Returns the APIs the environment's resources and state backend call.
pub fn required_services(configuration: &Configuration) -> BTreeSet<&'static str> {
    let mut services: BTreeSet<&'static str> = configuration
        .modules
        .iter()
        .flat_map(|module| module.resources.iter())
        .flat_map(|resource| services_for_kind(&resource.kind).iter().copied())
        .collect();
    if matches!(configuration.env.backend, BackendSettings::Gcs { .. }) {
        services.insert("storage.googleapis.com");
    }
    services
}
