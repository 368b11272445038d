//! `infra force-unlock ID`: removes a lock left by a run that died, by the id its error message
//! names; asks first unless `--force`.

use super::session::Session;
use super::{GlobalArgs, Outcome};
use anyhow::bail;
use clap::Args;
use std::io::{BufRead, IsTerminal, Write};

/// Arguments of `infra force-unlock`.
#[derive(Debug, Args)]
pub struct ForceUnlockArgs {
    /// The lock id, as the "state locked" error shows it.
    pub id: String,
    /// Do not ask for confirmation.
    #[arg(long)]
    pub force: bool,
}

/// Runs `infra force-unlock`.
pub async fn run_force_unlock(
    global: &GlobalArgs,
    args: ForceUnlockArgs,
) -> anyhow::Result<Outcome> {
    let session = Session::open(global).await?;
    let holder = session.backend.holder().await?;
    let Some(holder) = holder else {
        bail!(
            "the state of `{}` is not locked ({})\n  hint: nothing to unlock: the next command takes the lock itself",
            global.env,
            session.backend.location()
        );
    };
    if holder.id != args.id {
        bail!(
            "the lock on `{}` has id {}, not {} — it may have been released and taken again\n  hint: check who holds it before unlocking: {} since {} for `{}`",
            global.env,
            holder.id,
            args.id,
            holder.who,
            holder.created,
            holder.operation
        );
    }
    if !args.force {
        if !std::io::stdin().is_terminal() {
            bail!(
                "refusing to unlock without confirmation: stdin is not a terminal\n  hint: pass --force once you are sure the holder is dead"
            );
        }
        eprint!(
            "Remove the lock held by {} since {} for `{}`? Only 'yes' will be accepted: ",
            holder.who, holder.created, holder.operation
        );
        std::io::stderr().flush().ok();
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        if answer.trim() != "yes" {
            bail!("cancelled: the lock is untouched");
        }
    }
    session.backend.force_unlock(&args.id).await?;
    eprintln!(
        "Unlocked the state of `{}` (lock {} of {}).",
        global.env, args.id, holder.who
    );
    Ok(Outcome::Success)
}
