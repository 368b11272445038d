//! Configuration diagnostics: each names its place (`file:line:col`) and, where the user can fix
//! it, a hint. Loading collects all of them before failing.

use super::source::Span;
use std::fmt;

/// One configuration problem.
#[derive(Debug, Clone)]
pub struct Diagnostic {
    pub code: DiagnosticCode,
    pub span: Option<Span>,
    pub message: String,
    pub hint: Option<String>,
}

/// What kind of problem a diagnostic reports; tests and `--json` output match on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiagnosticCode {
    Syntax,
    MissingFile,
    UnknownKind,
    UnknownField,
    MissingField,
    InvalidValue,
    /// A number outside what its API field takes.
    OutOfRange,
    /// Two things that must be distinct are not: `for_each` keys, the cloud objects addresses name.
    Duplicate,
    UnknownReference,
    Cycle,
    MissingInput,
    Expression,
}

impl DiagnosticCode {
    /// Returns the stable name printed in brackets.
    pub fn name(self) -> &'static str {
        match self {
            DiagnosticCode::Syntax => "syntax",
            DiagnosticCode::MissingFile => "missing-file",
            DiagnosticCode::UnknownKind => "unknown-kind",
            DiagnosticCode::UnknownField => "unknown-field",
            DiagnosticCode::MissingField => "missing-field",
            DiagnosticCode::InvalidValue => "invalid-value",
            DiagnosticCode::OutOfRange => "out-of-range",
            DiagnosticCode::Duplicate => "duplicate",
            DiagnosticCode::UnknownReference => "unknown-reference",
            DiagnosticCode::Cycle => "cycle",
            DiagnosticCode::MissingInput => "missing-input",
            DiagnosticCode::Expression => "expression",
        }
    }
}

impl Diagnostic {
    /// Creates a diagnostic at a place.
    pub fn new(code: DiagnosticCode, span: &Span, message: impl Into<String>) -> Self {
        Self {
            code,
            span: Some(span.clone()),
            message: message.into(),
            hint: None,
        }
    }

    /// Creates a diagnostic with no place in a file.
    pub fn unplaced(code: DiagnosticCode, message: impl Into<String>) -> Self {
        Self {
            code,
            span: None,
            message: message.into(),
            hint: None,
        }
    }

    /// Adds a hint telling the user how to fix the problem.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(span) = &self.span {
            write!(formatter, "{span}: ")?;
        }
        write!(formatter, "error[{}]: {}", self.code.name(), self.message)?;
        if let Some(hint) = &self.hint {
            write!(formatter, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

/// All the problems found in a configuration.
#[derive(Debug, Clone, thiserror::Error)]
pub struct ConfigError {
    pub diagnostics: Vec<Diagnostic>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (position, diagnostic) in self.diagnostics.iter().enumerate() {
            if position > 0 {
                writeln!(formatter)?;
            }
            write!(formatter, "{diagnostic}")?;
        }
        let count = self.diagnostics.len();
        write!(
            formatter,
            "\n{count} configuration error{}",
            if count == 1 { "" } else { "s" }
        )
    }
}

impl From<Diagnostic> for ConfigError {
    fn from(diagnostic: Diagnostic) -> Self {
        Self {
            diagnostics: vec![diagnostic],
        }
    }
}
