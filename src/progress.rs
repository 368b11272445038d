//! What refresh and apply report while they run: a trait the planner and the executor call,
//! so that they stay free of terminals. The command line implements it (cli/progress.rs) as a
//! live display on a terminal or one line per event in CI logs; `NoProgress` reports nothing.

use crate::plan::Action;

/// Receives events as refresh and apply run; called from many tasks at once.
pub trait Progress: Send + Sync {
    /// Refreshing begins: `total` live objects are read.
    fn refresh_started(&self, _total: usize) {}
    /// One live object was read.
    fn refreshed(&self, _address: &str) {}
    /// Refreshing ended.
    fn refresh_finished(&self) {}
    /// An operation on one resource begins (after waiting for its turn).
    fn operation_started(&self, _address: &str, _action: Action) {}
    /// That operation ended, with the error when it failed.
    fn operation_finished(&self, _address: &str, _action: Action, _error: Option<&str>) {}
}

/// Reports nothing (library callers, tests).
pub struct NoProgress;

impl Progress for NoProgress {}
