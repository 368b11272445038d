//! `infra state list|show|rm|mv|pull|push|versions|restore`: reading and editing the state of
//! an environment, under its lock, with the same checks as every write (lineage, serial,
//! generation). None of them touches cloud resources.

use super::session::{Session, parse_duration};
use super::{GlobalArgs, Outcome};
use crate::state::{State, StateError};
use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use std::path::PathBuf;
use std::time::Duration;

/// Arguments of `infra state`.
#[derive(Debug, Args)]
pub struct StateArgs {
    #[command(subcommand)]
    pub command: StateCommand,
    /// How long to wait for the state lock.
    #[arg(long, global = true, default_value = "0s", value_parser = parse_duration)]
    pub lock_timeout: Duration,
}

/// The state subcommands.
#[derive(Debug, Subcommand)]
pub enum StateCommand {
    /// List the addresses in the state.
    List,
    /// Show one resource's recorded attributes.
    Show {
        address: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Forget resources (they stay in the cloud; infra stops managing them).
    Rm {
        #[arg(required = true)]
        addresses: Vec<String>,
    },
    /// Rename a resource's address (after renaming its block), so it is not re-created.
    Mv { from: String, to: String },
    /// Print the state document on stdout.
    Pull,
    /// Replace the state with a document; refuses another lineage or an older serial.
    Push {
        file: PathBuf,
        /// Push even across lineages or to an older serial.
        #[arg(long)]
        force: bool,
    },
    /// List the stored generations of the state (a versioned GCS bucket keeps them).
    Versions,
    /// Make an earlier generation the current state again (with the next serial).
    Restore { generation: i64 },
}

/// Refuses a target address that no configuration could produce (`module.m.kind.name`, with an
/// optional `["key"]` or `[0]`), so that `state mv` never writes an address plan cannot match.
fn check_address(address: &str) -> anyhow::Result<()> {
    let (path, index) = match address.split_once('[') {
        Some((path, index)) => (path, Some(index)),
        None => (address, None),
    };
    let identifier = |part: &str| {
        !part.is_empty()
            && part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    };
    let parts: Vec<&str> = path.split('.').collect();
    let modules_valid = parts.len() >= 2
        && parts.len().is_multiple_of(2)
        && parts.iter().all(|part| identifier(part))
        && parts[..parts.len() - 2]
            .chunks(2)
            .all(|pair| pair[0] == "module");
    let index_valid = index.is_none_or(|index| {
        index.strip_suffix(']').is_some_and(|inner| {
            inner.parse::<u64>().is_ok()
                || (inner.len() >= 2 && inner.starts_with('"') && inner.ends_with('"'))
        })
    });
    if modules_valid && index_valid {
        return Ok(());
    }
    bail!(
        "`{address}` is not a resource address\n  hint: addresses look like `secret.name`, `module.m.secret.name` or `secret.name[\"KEY\"]`"
    )
}

/// Runs `infra state …`.
pub async fn run_state(global: &GlobalArgs, args: StateArgs) -> anyhow::Result<Outcome> {
    let mut session = Session::open(global).await?;
    let operation = match &args.command {
        StateCommand::List
        | StateCommand::Show { .. }
        | StateCommand::Pull
        | StateCommand::Versions => "state read",
        _ => "state write",
    };
    session.lock(operation, args.lock_timeout).await?;
    // A write under way finishes even on an interrupt: the state is never left half-known.
    let _shield = (operation == "state write").then(|| super::interrupt().shield());
    // State commands are how a state is repaired, so they read it without the kind check;
    // `push --force` even replaces a state that can no longer be read.
    let existing = match (session.backend.read().await, &args.command) {
        (Ok(existing), _) => existing,
        (Err(StateError::Document(error)), StateCommand::Push { force: true, .. }) => {
            eprintln!("warning: the current state cannot be read; --force replaces it:\n{error}");
            None
        }
        (Err(error), _) => return Err(error.into()),
    };
    let env = session.configuration.env.name.clone();
    let location = session.backend.location();
    let require = |existing: Option<State>| {
        existing.with_context(|| {
            format!(
                "{location}: there is no state yet for `{env}`\n  hint: `infra apply --env {env}` creates it; `infra import` adds existing objects"
            )
        })
    };
    match args.command {
        StateCommand::List => {
            for resource in existing.map(|state| state.resources).unwrap_or_default() {
                outln!("{}", resource.address);
            }
        }
        StateCommand::Show { address, json } => {
            let state = require(existing)?;
            let resource = state
                .resource(&address)
                .ok_or_else(|| not_in_state(&state, &address, &location, &global.env))?;
            if json {
                outln!("{}", serde_json::to_string_pretty(resource)?);
            } else {
                outln!(
                    "# {}\n    kind = {:?}\n    id = {:?}",
                    resource.address,
                    resource.kind,
                    resource.id
                );
                for (field, value) in resource
                    .attributes
                    .iter()
                    .filter(|(field, _)| !crate::plan::render::is_hidden(field))
                {
                    outln!("    {field} = {value}");
                }
                if !resource.dependencies.is_empty() {
                    outln!("    depends on: {}", resource.dependencies.join(", "));
                }
            }
        }
        StateCommand::Rm { addresses } => {
            let mut state = require(existing)?;
            for address in &addresses {
                if state.resource(address).is_none() {
                    return Err(not_in_state(&state, address, &location, &global.env)
                        .context("nothing was removed"));
                }
            }
            for address in &addresses {
                state.remove(address);
            }
            state.serial += 1;
            session.backend.write(&state).await?;
            eprintln!(
                "Removed {} resource{} from the state; they still exist in the cloud.",
                addresses.len(),
                if addresses.len() == 1 { "" } else { "s" }
            );
        }
        StateCommand::Mv { from, to } => {
            check_address(&to)?;
            let mut state = require(existing)?;
            if state.resource(&from).is_none() {
                return Err(not_in_state(&state, &from, &location, &global.env)
                    .context("nothing was moved"));
            }
            if state.resource(&to).is_some() {
                bail!(
                    "{location}: `{to}` is already in the state\n  hint: `infra state rm --env {} {to}` first if it is the same object",
                    global.env
                );
            }
            let Some(mut resource) = state.remove(&from) else {
                bail!("{location}: no resource `{from}` in the state");
            };
            resource.address = to.clone();
            for other in &mut state.resources {
                for dependency in &mut other.dependencies {
                    if *dependency == from {
                        *dependency = to.clone();
                    }
                }
            }
            state.upsert(resource);
            state.serial += 1;
            session.backend.write(&state).await?;
            eprintln!("Moved {from} to {to}.");
        }
        StateCommand::Pull => {
            let state = require(existing)?;
            out!("{}", String::from_utf8_lossy(&state.to_bytes()));
        }
        StateCommand::Push { file, force } => {
            let bytes = std::fs::read(&file).map_err(|error| {
                anyhow::anyhow!(
                    "{}: cannot read it: {error}\n  hint: give the path of a state document, such as one `infra state pull --env {}` printed",
                    file.display(),
                    global.env
                )
            })?;
            let (mut pushed, edited) = State::from_bytes_allowing_edits(
                &bytes,
                &file.display().to_string(),
                &session.configuration.env.name,
            )?;
            if let Some(computed) = edited {
                if !force {
                    return Err(crate::state::model::StateDocumentError::Checksum {
                        location: file.display().to_string(),
                        recorded: pushed.checksum.clone(),
                        computed,
                    }
                    .into());
                }
                eprintln!(
                    "warning: {}: checksum mismatch: the file was edited by hand; --force pushes it with a recomputed checksum",
                    file.display()
                );
            }
            if let Some(current) = &existing {
                // A forced push of the same lineage still moves the serial forward, so a plan
                // saved against the state it replaces is refused as stale.
                if force && pushed.lineage == current.lineage && pushed.serial <= current.serial {
                    pushed.serial = current.serial + 1;
                }
                if pushed.lineage != current.lineage && !force {
                    bail!(
                        "{}: lineage {} is not this state's ({}): it belongs to another state\n  hint: pass --force if replacing it is really meant",
                        file.display(),
                        pushed.lineage,
                        current.lineage
                    );
                }
                if pushed.serial < current.serial && !force {
                    bail!(
                        "{}: serial {} is older than the current state's ({}): pushing it would undo later changes\n  hint: `infra state pull` the current state, or pass --force",
                        file.display(),
                        pushed.serial,
                        current.serial
                    );
                }
                if pushed.serial == current.serial && pushed != *current && !force {
                    bail!(
                        "{}: same serial ({}) as the current state but different content\n  hint: pass --force",
                        file.display(),
                        pushed.serial
                    );
                }
            }
            session.backend.write(&pushed).await?;
            eprintln!(
                "Pushed {} (serial {}) to {location}.",
                file.display(),
                pushed.serial
            );
        }
        StateCommand::Versions => {
            let versions = session.backend.versions().await?;
            if versions.is_empty() {
                outln!("No stored versions.");
            }
            for version in versions {
                outln!(
                    "{}  {}{}",
                    version.generation,
                    version.updated,
                    if version.current { "  (current)" } else { "" }
                );
            }
        }
        StateCommand::Restore { generation } => {
            let current = require(existing)?;
            let mut restored = session.backend.read_version(generation).await?;
            if restored.lineage != current.lineage {
                bail!(
                    "generation {generation} has lineage {}, not this state's ({})",
                    restored.lineage,
                    current.lineage
                );
            }
            let serial = restored.serial;
            restored.serial = current.serial + 1;
            session.backend.write(&restored).await?;
            eprintln!(
                "Restored generation {generation} (serial {serial}) as serial {}. Run `infra plan --env {}` to see what differs from the cloud.",
                restored.serial, global.env
            );
        }
    }
    session.close().await;
    Ok(Outcome::Success)
}

/// Says an address is not in the state, with the closest addresses that are.
fn not_in_state(state: &State, address: &str, location: &str, env: &str) -> anyhow::Error {
    let similar = state.similar_addresses(address);
    let hint = match similar.as_slice() {
        [] => format!("`infra state list --env {env}` lists the addresses"),
        [only] => format!("did you mean `{only}`?"),
        several => format!(
            "did you mean one of {}?",
            several
                .iter()
                .map(|address| format!("`{address}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    anyhow::anyhow!("{location}: no resource `{address}` in the state\n  hint: {hint}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_checked_before_a_move() {
        for good in [
            "secret.a",
            "module.m.secret.a",
            "module.m.module.n.cloud_run_service.api",
            "secret.a[\"KEY\"]",
            "secret.a[3]",
        ] {
            assert!(check_address(good).is_ok(), "{good}");
        }
        for bad in [
            "secret",
            "not an address",
            "secret.a[\"KEY",
            "mod.m.secret.a",
            "secret..a",
            "secret.a[]",
        ] {
            assert!(check_address(bad).is_err(), "{bad}");
        }
    }
}
