//! Bad-input corpus: state files, plan files and lock files that are damaged, foreign or hand-edited.

use super::{Case, run_table};
use crate::support::TestEnv;

/// The cases of this table.
pub fn cases() -> Vec<Case> {
    vec![]
}

#[test]
fn state_files_bad_inputs() {
    run_table(&TestEnv::with_emulator, &cases());
}
