//! Integration tests: the real `infra` binary against the emulator, in throw-away projects.

mod bundled;
mod cloud_run;
mod config_errors;
mod config_guards;
mod corpus;
mod credentials;
mod emulator_api;
mod fingerprints;
mod identity;
mod interrupts;
mod kill_trials;
mod lost_answers;
mod monitoring;
mod realism;
mod secrets;
mod sensitive;
mod state_backends;
mod storage_api;
mod support;
