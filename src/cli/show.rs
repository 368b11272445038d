//! `infra show [FILE]`: the state's resources and outputs, or a saved plan, for people or as
//! JSON. Neither ever holds a secret value.

use super::session::{Session, parse_duration, read_plan_file};
use super::{GlobalArgs, Outcome};
use crate::plan::render::ColorChoice;
use clap::Args;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

/// Arguments of `infra show`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// A saved plan file to show instead of the state.
    pub plan_file: Option<PathBuf>,
    #[command(flatten)]
    pub view: super::plan_output::PlanViewArgs,
    /// How long to wait for the state lock.
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    pub lock_timeout: Duration,
}

/// Runs `infra show`.
pub async fn run_show(global: &GlobalArgs, args: ShowArgs) -> anyhow::Result<Outcome> {
    if let Some(path) = &args.plan_file {
        let plan = read_plan_file(path, &global.env)?;
        super::plan_output::print_plan(
            &plan,
            &args.view,
            ColorChoice::detect(std::io::stdout().is_terminal()),
        )?;
        return Ok(Outcome::Success);
    }
    let mut session = Session::open(global).await?;
    let state = session.lock_and_read("show", args.lock_timeout).await?;
    if args.view.markdown || args.view.format != super::plan_output::JsonFormat::Infra {
        anyhow::bail!(
            "--markdown and --format terraform show a plan, not the state\n  hint: save a plan with `infra plan --out FILE` and run `infra show --markdown FILE`"
        );
    }
    if args.view.json {
        outln!("{}", serde_json::to_string_pretty(&state)?);
        return Ok(Outcome::Success);
    }
    if state.resources.is_empty() {
        outln!("The state of `{}` is empty.", state.env);
        return Ok(Outcome::Success);
    }
    for resource in &state.resources {
        let status = if resource.status == crate::state::ResourceStatus::Creating {
            " (creation interrupted)"
        } else {
            ""
        };
        outln!("# {}{status}", resource.address);
        outln!("    id = {:?}", resource.id);
        for (field, value) in resource
            .attributes
            .iter()
            .filter(|(field, _)| !crate::plan::render::is_hidden(field))
        {
            outln!("    {field} = {value}");
        }
        outln!();
    }
    if !state.outputs.is_empty() {
        outln!("Outputs:");
        for (name, output) in &state.outputs {
            let shown = if output.sensitive {
                "(sensitive value)".to_string()
            } else {
                output.value.to_string()
            };
            outln!("    {name} = {shown}");
        }
    }
    Ok(Outcome::Success)
}
