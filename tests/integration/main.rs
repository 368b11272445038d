//! Integration tests: the real `infra` binary against the emulator, in throw-away projects.

mod bundled;
mod ci_reports;
mod cloud_run;
mod config_errors;
mod config_guards;
mod corpus;
mod credentials;
mod emulator_api;
mod fingerprints;
mod identity;
mod instance_order;
mod interrupts;
mod kill_trials;
mod lagging_lists;
mod lost_answers;
mod monitoring;
mod packaging;
mod progress;
mod realism;
mod refresh_only;
mod secrets;
mod sensitive;
mod state_backends;
mod storage_api;
mod support;
mod target_graph;
