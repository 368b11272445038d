//! Talking to Google: the REST client core, typed errors, and one file per resource kind.

pub mod client;
pub mod error;
pub mod kinds;
pub mod operations;
pub mod proto3;

pub use client::{GcpClient, RetryPolicy, Service};
pub use error::GcpError;
