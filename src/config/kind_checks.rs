//! Turns a kind's own rules (`Kind::check`) and its declared limits (`Kind::bounds`,
//! `Kind::ordered_pairs`) on one resource block's values into diagnostics: a limit points at the
//! field's value, a pair names both places. Used by loading (literal values) and planning
//! (evaluated values), so `validate` reports both without I/O.

use super::error::{Diagnostic, DiagnosticCode};
use super::model::ResourceBlock;
use crate::gcp::kinds::{Kind, limits};
use crate::value::Attributes;

/// Returns every broken rule and limit of `config`, the values of `block` at `address`.
pub(crate) fn kind_diagnostics(
    kind: &dyn Kind,
    address: &str,
    block: &ResourceBlock,
    config: &Attributes,
) -> Vec<Diagnostic> {
    let mut diagnostics = Vec::new();
    for problem in kind.check(config) {
        // Kinds write their hint, when they have a better one, after the message.
        let (message, hint) = match problem.split_once("\n  hint: ") {
            Some((message, hint)) => (message.to_string(), hint.to_string()),
            None => (
                problem.clone(),
                format!(
                    "the fields of `{}` and their rules: docs/kinds.md",
                    kind.name()
                ),
            ),
        };
        diagnostics.push(
            Diagnostic::new(
                DiagnosticCode::InvalidValue,
                &block.span,
                format!("{address}: {message}"),
            )
            .with_hint(hint),
        );
    }
    for problem in limits::check_limits(kind.bounds(), kind.ordered_pairs(), config) {
        let span = block
            .attributes
            .get(&problem.field)
            .map_or(&block.span, |value| value.span());
        let mut message = format!("{address}: {}", problem.message);
        if let Some(other) = problem
            .other_field
            .as_ref()
            .and_then(|field| block.attributes.get(field))
        {
            message.push_str(&format!(" (set at {})", other.span()));
        }
        let code = if problem.other_field.is_some() {
            DiagnosticCode::InvalidValue
        } else {
            DiagnosticCode::OutOfRange
        };
        diagnostics.push(Diagnostic::new(code, span, message).with_hint(problem.hint));
    }
    diagnostics
}
