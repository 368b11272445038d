//! `infra`: declarative provisioning for Google Cloud. The data path is
//! `config` → `graph` → `plan` → `apply`; only `state` and `gcp` do I/O, and `emulator`
//! stands in for Google when no cloud account is at hand.

pub mod apply;
pub mod cli;
pub mod config;
pub mod emulator;
pub mod gcp;
pub mod graph;
pub mod plan;
pub mod progress;
pub mod schedule;
pub mod sensitive;
pub mod state;
pub mod value;
