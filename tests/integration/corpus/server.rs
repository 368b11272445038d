//! Bad-input corpus: answers from a misbehaving endpoint: HTML 502 pages, truncated JSON, wrong content types, huge or slow bodies.

use super::{Case, run_table};
use crate::support::TestEnv;

/// The cases of this table.
pub fn cases() -> Vec<Case> {
    vec![]
}

#[test]
fn server_bad_inputs() {
    run_table(&TestEnv::with_emulator, &cases());
}
