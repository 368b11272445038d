//! Conformance suite: drives `infra emulator` through Google's official client libraries (the
//! Rust `google-cloud-*` crates, REST transport, anonymous credentials) and, for APIs without a
//! usable official Rust REST client, through plain REST as their discovery documents describe
//! it. Every test asserts Google's documented behaviour, with the document cited beside it.

mod budgets;
mod iam;
mod monitoring;
mod projects;
mod quotas;
mod run;
mod secretmanager;
mod storage;
mod support;
mod wire;
