//! Bad-input corpus: configuration files: env.toml and module.toml, each problem `validate` must catch.

use super::{Case, run_table};
use crate::support::TestEnv;

/// The cases of this table.
pub fn cases() -> Vec<Case> {
    vec![]
}

#[test]
fn config_bad_inputs() {
    run_table(&TestEnv::with_emulator, &cases());
}
