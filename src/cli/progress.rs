//! How refresh and apply show progress on stderr: on a terminal, a live indicatif display (a
//! refresh counter, then one spinner per running operation with its elapsed time, "Still
//! creating… [20s elapsed]" while Cloud Run rolls out); elsewhere (CI logs), one plain line
//! per operation as it starts and as it ends, in the order they happen.

use crate::plan::Action;
use crate::progress::Progress;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Returns the display for stderr: live on a terminal, plain lines otherwise.
pub fn for_stderr() -> Box<dyn Progress> {
    if std::io::stderr().is_terminal() {
        Box::new(LiveProgress::new())
    } else {
        Box::new(LineProgress::default())
    }
}

/// Verbs per action: while running, when done, and the noun for "… complete".
fn words(action: Action) -> (&'static str, &'static str, &'static str) {
    match action {
        Action::Create => ("Creating", "creating", "Creation"),
        Action::Update => ("Modifying", "modifying", "Modifications"),
        Action::Replace => ("Replacing", "replacing", "Replacement"),
        Action::Delete => ("Destroying", "destroying", "Destruction"),
        Action::NoOp => ("Reading", "reading", "Read"),
    }
}

fn ended_line(address: &str, action: Action, elapsed: Duration, error: Option<&str>) -> String {
    let (_, _, noun) = words(action);
    let seconds = elapsed.as_secs_f64();
    match error {
        None => format!("{address}: {noun} complete after {seconds:.1}s"),
        Some(_) => format!("{address}: {noun} failed after {seconds:.1}s"),
    }
}

/// One line per event, for logs.
#[derive(Default)]
pub struct LineProgress {
    started: Mutex<BTreeMap<String, Instant>>,
}

impl Progress for LineProgress {
    fn operation_started(&self, address: &str, action: Action) {
        self.started
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(address.to_string(), Instant::now());
        eprintln!("{address}: {}…", words(action).0);
    }

    fn operation_finished(&self, address: &str, action: Action, error: Option<&str>) {
        let started = self
            .started
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(address);
        let elapsed = started.map_or(Duration::ZERO, |started| started.elapsed());
        eprintln!("{}", ended_line(address, action, elapsed, error));
    }
}

/// The live display for a terminal.
pub struct LiveProgress {
    bars: MultiProgress,
    refresh: Mutex<Option<(ProgressBar, Instant)>>,
    running: Mutex<BTreeMap<String, ProgressBar>>,
}

impl LiveProgress {
    fn new() -> Self {
        Self {
            bars: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            refresh: Mutex::new(None),
            running: Mutex::new(BTreeMap::new()),
        }
    }
}

impl Progress for LiveProgress {
    fn refresh_started(&self, total: usize) {
        let bar = self.bars.add(ProgressBar::new(total as u64));
        bar.set_style(
            ProgressStyle::with_template("Refreshing {pos}/{len} {wide_bar} [{elapsed}]")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.enable_steady_tick(Duration::from_millis(200));
        *self
            .refresh
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some((bar, Instant::now()));
    }

    fn refreshed(&self, _address: &str) {
        if let Some((bar, _)) = self
            .refresh
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .as_ref()
        {
            bar.inc(1);
        }
    }

    fn refresh_finished(&self) {
        if let Some((bar, started)) = self
            .refresh
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take()
        {
            bar.finish_and_clear();
            let _ = self.bars.println(format!(
                "Refreshed {} objects in {:.1}s",
                bar.position(),
                started.elapsed().as_secs_f64()
            ));
        }
    }

    fn operation_started(&self, address: &str, action: Action) {
        let bar = self.bars.add(ProgressBar::new_spinner());
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg} [{elapsed} elapsed]")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_message(format!("{address}: Still {}…", words(action).1));
        bar.enable_steady_tick(Duration::from_millis(120));
        self.running
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(address.to_string(), bar);
    }

    fn operation_finished(&self, address: &str, action: Action, error: Option<&str>) {
        let bar = self
            .running
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(address);
        let elapsed = bar.as_ref().map_or(Duration::ZERO, ProgressBar::elapsed);
        if let Some(bar) = bar {
            bar.finish_and_clear();
            self.bars.remove(&bar);
        }
        let _ = self
            .bars
            .println(ended_line(address, action, elapsed, error));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn end_lines_name_the_address_the_action_and_the_time() {
        assert_eq!(
            ended_line(
                "secret.a",
                Action::Create,
                Duration::from_millis(1250),
                None
            ),
            "secret.a: Creation complete after 1.2s"
        );
        assert_eq!(
            ended_line(
                "secret.a",
                Action::Delete,
                Duration::from_secs(3),
                Some("403")
            ),
            "secret.a: Destruction failed after 3.0s"
        );
    }
}
