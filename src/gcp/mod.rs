//! Talking to Google: the REST client core, typed errors, one file per resource kind, the
//! environment's fingerprint key in Secret Manager, and reads of secret versions by number.

pub mod client;
pub mod error;
pub mod fingerprint_key;
pub mod kinds;
pub mod operations;
pub mod proto3;
pub mod quotas;
pub mod secret_versions;

pub use client::{Authentication, GcpClient, QuotaRetry, Replay, RetryPolicy, Service};
pub use error::GcpError;
