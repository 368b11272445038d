//! `infra import ADDRESS ID`: adopts an existing object into state under a configured address,
//! reading it through its kind, so that the next plan shows no changes when the configuration
//! matches what is live.

use super::session::{Session, parse_duration};
use super::{GlobalArgs, Outcome};
use crate::gcp::kinds;
use crate::graph::block_graph;
use crate::plan::PlanOptions;
use crate::plan::planner::{kind_context, plan_with_live};
use crate::state::{ResourceStatus, StateResource};
use anyhow::{Context, bail};
use clap::Args;
use std::collections::BTreeMap;
use std::time::Duration;

/// Arguments of `infra import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The address in the configuration (`module.m.secret.x["KEY"]`).
    pub address: String,
    /// The object's id, as state records it (`projects/P/secrets/S`, …).
    pub id: String,
    /// How long to wait for the state lock.
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    pub lock_timeout: Duration,
}

/// Runs `infra import`.
pub async fn run_import(global: &GlobalArgs, args: ImportArgs) -> anyhow::Result<Outcome> {
    let mut session = Session::open(global).await?;
    let mut state = session.lock_and_read("import", args.lock_timeout).await?;
    if state.resource(&args.address).is_some() {
        bail!(
            "`{}` is already managed (in the state)\n  hint: `infra state rm --env {} '{}'` first to import another object there",
            args.address,
            global.env,
            args.address
        );
    }
    let configuration = &session.configuration;
    let graph = block_graph(configuration)?;
    let recorded = state
        .resources
        .iter()
        .map(|resource| (resource.address.clone(), Some(resource.attributes.clone())))
        .collect::<BTreeMap<_, _>>();
    let plan = plan_with_live(
        configuration,
        &state,
        &graph,
        &recorded,
        &PlanOptions {
            refresh: false,
            ..PlanOptions::default()
        },
    )?;
    let change = plan.change(&args.address).with_context(|| {
        format!("`{}` is not in the configuration of `{}`\n  hint: write its resource block first; `infra plan` lists the addresses", args.address, global.env)
    })?;
    let kind =
        kinds::find(&change.kind).with_context(|| format!("unknown kind {}", change.kind))?;
    // Importing a kind with secrets fingerprints them: the key must exist.
    let fingerprint_key = if kind.fields().iter().any(|field| field.sensitive) {
        Some(session.ensure_fingerprint_key(None).await?)
    } else {
        None
    };
    let context = kind_context(
        configuration,
        &args.address,
        &state.lineage,
        fingerprint_key.as_ref(),
        None,
    );
    let attributes = kind
        .import(&session.client, &context, &args.id)
        .await?
        .with_context(|| {
            format!(
                "{}: no {} with id `{}` exists",
                args.address, change.kind, args.id
            )
        })?;
    state.upsert(StateResource {
        address: args.address.clone(),
        kind: change.kind.clone(),
        id: args.id.clone(),
        status: ResourceStatus::Created,
        attributes,
        dependencies: change.dependencies.clone(),
    });
    state.serial += 1;
    let shield = super::interrupt().shield();
    session.backend.write(&state).await?;
    drop(shield);
    session.close().await;
    eprintln!(
        "Imported {} as {}. Run `infra plan --env {}` to see how it differs from the configuration.",
        args.id, args.address, global.env
    );
    Ok(Outcome::Success)
}
