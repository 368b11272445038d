//! `infra output [NAME]`: output values from the state on stdout, for people, as JSON, or raw.

use super::session::{Session, parse_duration};
use super::{GlobalArgs, Outcome};
use anyhow::bail;
use clap::Args;
use std::time::Duration;

/// Arguments of `infra output`.
#[derive(Debug, Args)]
pub struct OutputArgs {
    /// One output (`name`, or `module.m.name`); all when omitted.
    pub name: Option<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// Print a string output without quotes, for scripts.
    #[arg(long)]
    pub raw: bool,
    /// How long to wait for the state lock.
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    pub lock_timeout: Duration,
}

/// Runs `infra output`.
pub async fn run_output(global: &GlobalArgs, args: OutputArgs) -> anyhow::Result<Outcome> {
    let mut session = Session::open(global).await?;
    let state = session.lock_and_read("output", args.lock_timeout).await?;
    if let Some(name) = &args.name {
        let Some(output) = state.outputs.get(name) else {
            let known: Vec<&str> = state.outputs.keys().map(String::as_str).collect();
            bail!(
                "no output `{name}` in the state of `{}`\n  hint: outputs: {}",
                global.env,
                if known.is_empty() {
                    "none (run apply first)".into()
                } else {
                    known.join(", ")
                }
            );
        };
        match (&output.value, args.raw, args.json) {
            (value, _, true) => outln!("{}", serde_json::to_string_pretty(&value.to_json())?),
            (crate::value::Value::String(text), true, _) => outln!("{text}"),
            (value, _, _) => outln!("{value}"),
        }
        return Ok(Outcome::Success);
    }
    if args.json {
        let all: serde_json::Map<String, serde_json::Value> = state
            .outputs
            .iter()
            .map(|(name, output)| (name.clone(), serde_json::json!({"value": output.value.to_json(), "sensitive": output.sensitive})))
            .collect();
        outln!("{}", serde_json::to_string_pretty(&all)?);
        return Ok(Outcome::Success);
    }
    for (name, output) in &state.outputs {
        let shown = if output.sensitive {
            "(sensitive value)".to_string()
        } else {
            output.value.to_string()
        };
        outln!("{name} = {shown}");
    }
    Ok(Outcome::Success)
}
