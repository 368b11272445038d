//! What `apply` and `destroy` print on stdout when they succeed: Terraform's `Apply complete!`
//! line and the outputs, sensitive ones masked.

use crate::apply::ApplyReport;
use crate::state::State;
use anyhow::Context;
use std::fmt::Write as _;
use std::io::Write as _;

/// Prints the closing line and the outputs on stdout.
pub fn print_summary(verb: &str, report: &ApplyReport, state: &State) -> anyhow::Result<()> {
    let mut text = format!(
        "{verb} complete! Resources: {} added, {} changed, {} destroyed.\n",
        report.added, report.changed, report.destroyed
    );
    if !state.outputs.is_empty() {
        text.push_str("\nOutputs:\n\n");
        let width = state.outputs.keys().map(String::len).max().unwrap_or(0);
        for (name, output) in &state.outputs {
            let shown = if output.sensitive {
                "(sensitive value)".to_string()
            } else {
                output.value.to_string()
            };
            let _ = writeln!(text, "{name:<width$} = {shown}");
        }
    }
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .context("writing the apply summary to stdout")
}
