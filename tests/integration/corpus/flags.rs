//! Bad-input corpus: command-line flags, arguments and environment variables.

use super::{Case, run_table};
use crate::support::TestEnv;

/// The cases of this table.
pub fn cases() -> Vec<Case> {
    vec![]
}

#[test]
fn flags_bad_inputs() {
    run_table(&TestEnv::with_emulator, &cases());
}
