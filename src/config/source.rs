//! Owns configuration source text and the spanned TOML tree read from it, so that every later
//! error can name `file:line:col`. It does not interpret keys; `load.rs` does.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use toml::de::{DeTable, DeValue};

/// One configuration file's text, with its path as the user should see it.
#[derive(Debug)]
pub struct SourceFile {
    pub display_path: String,
    pub path: PathBuf,
    pub text: String,
    line_starts: Vec<usize>,
}

impl SourceFile {
    /// Creates a source file from its text.
    pub fn new(path: &Path, display_path: String, text: String) -> Arc<Self> {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(offset, _)| offset + 1))
            .collect();
        Arc::new(Self {
            display_path,
            path: path.to_path_buf(),
            text,
            line_starts,
        })
    }

    /// Returns the 1-based line and column of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let line_index = match self.line_starts.binary_search(&offset) {
            Ok(index) => index,
            Err(index) => index.saturating_sub(1),
        };
        let line_start = self.line_starts[line_index];
        let column = self
            .text
            .get(line_start..offset.min(self.text.len()))
            .map_or(1, |prefix| prefix.chars().count() + 1);
        (line_index + 1, column)
    }
}

/// A byte range in a source file.
#[derive(Clone)]
pub struct Span {
    pub file: Arc<SourceFile>,
    pub start: usize,
    pub end: usize,
}

impl Span {
    /// Returns a span inside this one, shifted by `offset` bytes and `length` long.
    pub fn sub(&self, offset: usize, length: usize) -> Span {
        let start = (self.start + offset).min(self.end);
        Span {
            file: self.file.clone(),
            start,
            end: (start + length).min(self.end.max(start)),
        }
    }
}

impl fmt::Display for Span {
    /// Formats as `file:line:col`.
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (line, column) = self.file.line_col(self.start);
        write!(formatter, "{}:{line}:{column}", self.file.display_path)
    }
}

impl fmt::Debug for Span {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{self}")
    }
}

/// A TOML value with the span it came from; tables keep their keys' spans.
#[derive(Clone, Debug)]
pub struct Node {
    pub kind: NodeKind,
    pub span: Span,
}

/// The shape of a TOML value.
#[derive(Clone, Debug)]
pub enum NodeKind {
    String(String),
    Integer(i64),
    Float(f64),
    Bool(bool),
    Datetime(String),
    Array(Vec<Node>),
    Table(BTreeMap<String, Entry>),
}

/// A table entry: the key's span and the value.
#[derive(Clone, Debug)]
pub struct Entry {
    pub key_span: Span,
    pub node: Node,
}

impl Node {
    /// Returns the TOML type name, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self.kind {
            NodeKind::String(_) => "string",
            NodeKind::Integer(_) => "integer",
            NodeKind::Float(_) => "float",
            NodeKind::Bool(_) => "boolean",
            NodeKind::Datetime(_) => "datetime",
            NodeKind::Array(_) => "array",
            NodeKind::Table(_) => "table",
        }
    }

    /// Returns the table's entries, if this is a table.
    pub fn as_table(&self) -> Option<&BTreeMap<String, Entry>> {
        match &self.kind {
            NodeKind::Table(entries) => Some(entries),
            _ => None,
        }
    }

    /// Returns the string, if this is a string.
    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            NodeKind::String(text) => Some(text),
            _ => None,
        }
    }
}

/// A TOML syntax error at a place.
#[derive(Debug)]
pub struct SyntaxError {
    pub span: Span,
    pub message: String,
    pub hint: Option<String>,
}

/// Parses a file's text into a spanned tree, or returns every syntax error found.
pub fn parse_toml(file: &Arc<SourceFile>) -> Result<Node, Vec<SyntaxError>> {
    let (root, errors) = DeTable::parse_recoverable(&file.text);
    if !errors.is_empty() {
        return Err(errors
            .iter()
            .map(|error| {
                let range = error.span().unwrap_or(0..0);
                SyntaxError {
                    span: Span {
                        file: file.clone(),
                        start: range.start,
                        end: range.end,
                    },
                    message: format!("invalid TOML: {}", error.message().trim()),
                    hint: Some("the TOML syntax: https://toml.io/en/v1.0.0".into()),
                }
            })
            .collect());
    }
    let span = root.span();
    let mut errors = Vec::new();
    let kind = convert_table(file, root.get_ref(), &mut errors);
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Node {
        kind,
        span: Span {
            file: file.clone(),
            start: span.start,
            end: span.end,
        },
    })
}

fn convert_table(
    file: &Arc<SourceFile>,
    table: &DeTable<'_>,
    errors: &mut Vec<SyntaxError>,
) -> NodeKind {
    let entries = table
        .iter()
        .map(|(key, value)| {
            let key_range = key.span();
            let entry = Entry {
                key_span: Span {
                    file: file.clone(),
                    start: key_range.start,
                    end: key_range.end,
                },
                node: convert_value(file, value, errors),
            };
            (key.get_ref().to_string(), entry)
        })
        .collect();
    NodeKind::Table(entries)
}

fn convert_value(
    file: &Arc<SourceFile>,
    value: &toml::Spanned<DeValue<'_>>,
    errors: &mut Vec<SyntaxError>,
) -> Node {
    let range = value.span();
    let span = Span {
        file: file.clone(),
        start: range.start,
        end: range.end,
    };
    let kind = match value.get_ref() {
        DeValue::String(text) => NodeKind::String(text.to_string()),
        DeValue::Integer(integer) => {
            let written = integer.as_str().replace('_', "");
            let digits = written
                .trim_start_matches("0x")
                .trim_start_matches("0o")
                .trim_start_matches("0b");
            // An integer that does not fit is an error at its place, never clamped: a clamped
            // i64::MAX would be planned and sent as if the user had written it.
            match i64::from_str_radix(digits, integer.radix()) {
                Ok(number) => NodeKind::Integer(number),
                Err(_) => {
                    errors.push(SyntaxError {
                        span: span.clone(),
                        message: format!(
                            "the integer {written} does not fit in 64 bits (from {} to {})",
                            i64::MIN,
                            i64::MAX
                        ),
                        hint: Some(
                            "write a smaller number; the field's own limits are usually much lower"
                                .into(),
                        ),
                    });
                    NodeKind::Integer(0)
                }
            }
        }
        DeValue::Float(float) => {
            NodeKind::Float(float.as_str().replace('_', "").parse().unwrap_or(f64::NAN))
        }
        DeValue::Boolean(flag) => NodeKind::Bool(*flag),
        DeValue::Datetime(datetime) => NodeKind::Datetime(datetime.to_string()),
        DeValue::Array(items) => NodeKind::Array(
            items
                .iter()
                .map(|item| convert_value(file, item, errors))
                .collect(),
        ),
        DeValue::Table(table) => convert_table(file, table, errors),
    };
    Node { kind, span }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(text: &str) -> Arc<SourceFile> {
        SourceFile::new(Path::new("env.toml"), "envs/x/env.toml".into(), text.into())
    }

    #[test]
    fn spans_point_at_line_and_column() {
        let file = source("[env]\nname = \"x\"\n  count = 3\n");
        let root = parse_toml(&file).expect("valid");
        let env = &root.as_table().expect("table")["env"].node;
        let count = &env.as_table().expect("table")["count"];
        assert_eq!(count.key_span.to_string(), "envs/x/env.toml:3:3");
        assert!(matches!(count.node.kind, NodeKind::Integer(3)));
    }

    #[test]
    fn an_integer_beyond_64_bits_is_an_error_at_its_place_not_clamped() {
        let file = source("[env]\nname = \"x\"\ncount = 99999999999999999999\nsmall = -3\n");
        let errors = parse_toml(&file).expect_err("overflow");
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].span.to_string(), "envs/x/env.toml:3:9");
        assert!(
            errors[0].message.contains("does not fit in 64 bits"),
            "{errors:?}"
        );
        let file = source("a = 9223372036854775807\nb = -9223372036854775808\n");
        assert!(parse_toml(&file).is_ok());
    }

    #[test]
    fn syntax_errors_carry_a_place() {
        let file = source("[env]\nname = \n");
        let errors = parse_toml(&file).expect_err("invalid");
        assert!(
            errors[0].span.to_string().starts_with("envs/x/env.toml:2:"),
            "{:?}",
            errors[0]
        );
    }
}
