//! The `${…}` expression language: parsing strings into templates, and templates into
//! references, literals and function calls. Evaluation lives in `eval.rs`.
//!
//! Grammar (deliberately small):
//! ```text
//! template   := ( text | "$${" | "${" expression "}" )*
//! expression := primary ( "." name | "." "*" | "[" expression "]" | "[" "*" "]" )*
//! primary    := string | number | "true" | "false" | "null" | name | name "(" args ")" | "(" expression ")"
//! string     := '"' … '"' | "'" … "'"
//! ```

use super::error::{Diagnostic, DiagnosticCode};
use super::source::{Node, NodeKind, Span};
use crate::value::Value;
use std::collections::BTreeMap;

/// A configuration value before evaluation: TOML structure with templates in its strings.
#[derive(Clone, Debug)]
pub enum ValueExpr {
    Literal(Value, Span),
    Template(Vec<TemplatePart>, Span),
    List(Vec<ValueExpr>, Span),
    Map(BTreeMap<String, ValueExpr>, Span),
}

/// A piece of a string template.
#[derive(Clone, Debug)]
pub enum TemplatePart {
    Text(String),
    Interpolation(Expression),
}

/// An expression inside `${…}`.
#[derive(Clone, Debug)]
pub struct Expression {
    pub kind: ExpressionKind,
    pub span: Span,
}

/// The shape of an expression.
#[derive(Clone, Debug)]
pub enum ExpressionKind {
    Literal(Value),
    Traversal(Traversal),
    Call {
        function: String,
        arguments: Vec<Expression>,
    },
}

/// A reference such as `secret.beta[each.key].name`: a root name and the steps after it.
#[derive(Clone, Debug)]
pub struct Traversal {
    pub root: String,
    pub steps: Vec<Step>,
    pub span: Span,
}

/// One step of a traversal.
#[derive(Clone, Debug)]
pub enum Step {
    Attribute(String),
    Index(Box<Expression>),
    Splat,
}

impl Traversal {
    /// Returns the attribute names of the leading `.name` steps.
    pub fn leading_attributes(&self) -> Vec<&str> {
        self.steps
            .iter()
            .map_while(|step| match step {
                Step::Attribute(name) => Some(name.as_str()),
                _ => None,
            })
            .collect()
    }

    /// Returns the reference as written, for messages.
    pub fn describe(&self) -> String {
        let mut text = self.root.clone();
        for step in &self.steps {
            match step {
                Step::Attribute(name) => {
                    text.push('.');
                    text.push_str(name);
                }
                Step::Index(_) => text.push_str("[…]"),
                Step::Splat => text.push_str("[*]"),
            }
        }
        text
    }
}

impl ValueExpr {
    /// Builds a value expression from a TOML node, parsing every template in it.
    pub fn from_node(node: &Node, diagnostics: &mut Vec<Diagnostic>) -> ValueExpr {
        let span = node.span.clone();
        match &node.kind {
            NodeKind::String(text) => match parse_template(text, &span) {
                Ok(parts) => {
                    if parts
                        .iter()
                        .all(|part| matches!(part, TemplatePart::Text(_)))
                    {
                        let text: String = parts
                            .into_iter()
                            .map(|part| match part {
                                TemplatePart::Text(text) => text,
                                TemplatePart::Interpolation(_) => String::new(),
                            })
                            .collect();
                        ValueExpr::Literal(Value::String(text), span)
                    } else {
                        ValueExpr::Template(parts, span)
                    }
                }
                Err(diagnostic) => {
                    diagnostics.push(diagnostic);
                    ValueExpr::Literal(Value::Null, span)
                }
            },
            NodeKind::Integer(number) => ValueExpr::Literal(Value::Integer(*number), span),
            NodeKind::Float(number) => ValueExpr::Literal(Value::Float(*number), span),
            NodeKind::Bool(flag) => ValueExpr::Literal(Value::Bool(*flag), span),
            NodeKind::Datetime(text) => ValueExpr::Literal(Value::String(text.clone()), span),
            NodeKind::Array(items) => ValueExpr::List(
                items
                    .iter()
                    .map(|item| ValueExpr::from_node(item, diagnostics))
                    .collect(),
                span,
            ),
            NodeKind::Table(entries) => ValueExpr::Map(
                entries
                    .iter()
                    .map(|(key, entry)| {
                        (key.clone(), ValueExpr::from_node(&entry.node, diagnostics))
                    })
                    .collect(),
                span,
            ),
        }
    }

    /// Returns where this value was written.
    pub fn span(&self) -> &Span {
        match self {
            ValueExpr::Literal(_, span)
            | ValueExpr::Template(_, span)
            | ValueExpr::List(_, span)
            | ValueExpr::Map(_, span) => span,
        }
    }

    /// Returns every reference this value makes, in source order.
    pub fn traversals(&self) -> Vec<&Traversal> {
        let mut found = Vec::new();
        self.collect_traversals(&mut found);
        found
    }

    fn collect_traversals<'a>(&'a self, found: &mut Vec<&'a Traversal>) {
        match self {
            ValueExpr::Literal(..) => {}
            ValueExpr::Template(parts, _) => {
                for part in parts {
                    if let TemplatePart::Interpolation(expression) = part {
                        expression.collect_traversals(found);
                    }
                }
            }
            ValueExpr::List(items, _) => {
                items.iter().for_each(|item| item.collect_traversals(found))
            }
            ValueExpr::Map(entries, _) => entries
                .values()
                .for_each(|item| item.collect_traversals(found)),
        }
    }

    /// Returns the literal value if this holds no template.
    pub fn as_literal(&self) -> Option<Value> {
        match self {
            ValueExpr::Literal(value, _) => Some(value.clone()),
            ValueExpr::Template(..) => None,
            ValueExpr::List(items, _) => items
                .iter()
                .map(ValueExpr::as_literal)
                .collect::<Option<Vec<_>>>()
                .map(Value::List),
            ValueExpr::Map(entries, _) => entries
                .iter()
                .map(|(key, item)| item.as_literal().map(|value| (key.clone(), value)))
                .collect::<Option<BTreeMap<_, _>>>()
                .map(Value::Map),
        }
    }
}

impl Expression {
    /// Returns every reference this expression makes, nested ones included, in source order.
    pub fn traversals(&self) -> Vec<&Traversal> {
        let mut found = Vec::new();
        self.collect_traversals(&mut found);
        found
    }

    fn collect_traversals<'a>(&'a self, found: &mut Vec<&'a Traversal>) {
        match &self.kind {
            ExpressionKind::Literal(_) => {}
            ExpressionKind::Traversal(traversal) => {
                found.push(traversal);
                for step in &traversal.steps {
                    if let Step::Index(index) = step {
                        index.collect_traversals(found);
                    }
                }
            }
            ExpressionKind::Call { arguments, .. } => arguments
                .iter()
                .for_each(|argument| argument.collect_traversals(found)),
        }
    }
}

/// Splits a string into text and `${…}` interpolations. `span` covers the TOML string,
/// quotes included; positions inside it are approximate when the string has escapes.
pub fn parse_template(text: &str, span: &Span) -> Result<Vec<TemplatePart>, Diagnostic> {
    // The string's content starts after its opening quote (one or three characters).
    let quote_width = span.file.text.get(span.start..).map_or(1, |rest| {
        if rest.starts_with("\"\"\"") || rest.starts_with("'''") {
            3
        } else {
            1
        }
    });
    let mut parts = Vec::new();
    let mut literal = String::new();
    let mut position = 0;
    while position < text.len() {
        let rest = &text[position..];
        if rest.starts_with("$${") {
            literal.push_str("${");
            position += 3;
        } else if rest.starts_with("${") {
            if !literal.is_empty() {
                parts.push(TemplatePart::Text(std::mem::take(&mut literal)));
            }
            let start = position + 2;
            let mut parser = Parser {
                text,
                position: start,
                span,
                base: quote_width,
            };
            let expression = parser.expression()?;
            parser.skip_whitespace();
            if !parser.eat('}') {
                return Err(parser.error("expected `}` to close `${`"));
            }
            parts.push(TemplatePart::Interpolation(expression));
            position = parser.position;
        } else {
            let character = rest.chars().next().unwrap_or_default();
            literal.push(character);
            position += character.len_utf8();
        }
    }
    if !literal.is_empty() || parts.is_empty() {
        parts.push(TemplatePart::Text(literal));
    }
    Ok(parts)
}

struct Parser<'a> {
    text: &'a str,
    position: usize,
    span: &'a Span,
    base: usize,
}

impl Parser<'_> {
    fn span_from(&self, start: usize) -> Span {
        self.span.sub(
            self.base + start,
            self.position.saturating_sub(start).max(1),
        )
    }

    fn error(&self, message: &str) -> Diagnostic {
        let found = self.text[self.position..]
            .chars()
            .next()
            .map_or("end of string".to_string(), |c| format!("`{c}`"));
        Diagnostic::new(DiagnosticCode::Expression, &self.span.sub(self.base + self.position, 1), format!("{message}, found {found}"))
            .with_hint("expressions look like `${var.name}`, `${secret.beta[each.key].name}` or `${lower(env.name)}`; write `$${` for a literal `${`")
    }

    fn peek(&self) -> Option<char> {
        self.text[self.position..].chars().next()
    }

    fn eat(&mut self, expected: char) -> bool {
        if self.peek() == Some(expected) {
            self.position += expected.len_utf8();
            true
        } else {
            false
        }
    }

    fn skip_whitespace(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.position += 1;
        }
    }

    fn name(&mut self) -> Option<String> {
        let start = self.position;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            self.position += 1;
        }
        (self.position > start).then(|| self.text[start..self.position].to_string())
    }

    fn expression(&mut self) -> Result<Expression, Diagnostic> {
        self.skip_whitespace();
        let start = self.position;
        let mut expression = self.primary()?;
        loop {
            self.skip_whitespace();
            let step = if self.eat('.') {
                if self.eat('*') {
                    Step::Splat
                } else {
                    Step::Attribute(
                        self.name()
                            .ok_or_else(|| self.error("expected an attribute name after `.`"))?,
                    )
                }
            } else if self.eat('[') {
                self.skip_whitespace();
                let step = if self.eat('*') {
                    Step::Splat
                } else {
                    Step::Index(Box::new(self.expression()?))
                };
                self.skip_whitespace();
                if !self.eat(']') {
                    return Err(self.error("expected `]`"));
                }
                step
            } else {
                break;
            };
            match &mut expression.kind {
                ExpressionKind::Traversal(traversal) => traversal.steps.push(step),
                _ => return Err(self.error("only references can be indexed")),
            }
            expression.span = self.span_from(start);
            if let ExpressionKind::Traversal(traversal) = &mut expression.kind {
                traversal.span = expression.span.clone();
            }
        }
        Ok(expression)
    }

    fn primary(&mut self) -> Result<Expression, Diagnostic> {
        let start = self.position;
        match self.peek() {
            Some(quote @ ('"' | '\'')) => {
                self.position += 1;
                let mut value = String::new();
                loop {
                    match self.peek() {
                        None => return Err(self.error("unterminated string")),
                        Some(c) if c == quote => {
                            self.position += 1;
                            break;
                        }
                        Some('\\') => {
                            self.position += 1;
                            let escaped = self
                                .peek()
                                .ok_or_else(|| self.error("unterminated string"))?;
                            self.position += escaped.len_utf8();
                            value.push(match escaped {
                                'n' => '\n',
                                't' => '\t',
                                other => other,
                            });
                        }
                        Some(c) => {
                            value.push(c);
                            self.position += c.len_utf8();
                        }
                    }
                }
                Ok(Expression {
                    kind: ExpressionKind::Literal(Value::String(value)),
                    span: self.span_from(start),
                })
            }
            Some(c) if c.is_ascii_digit() || c == '-' => {
                self.position += 1;
                while self.peek().is_some_and(|c| c.is_ascii_digit() || c == '.') {
                    self.position += 1;
                }
                let literal = &self.text[start..self.position];
                let value = if let Ok(integer) = literal.parse::<i64>() {
                    Value::Integer(integer)
                } else if !literal.contains('.') && literal.len() > 1 {
                    // Digits alone that do not parse as i64 overflow it: an error, never a
                    // silently rounded float.
                    return Err(Diagnostic::new(
                        DiagnosticCode::Expression,
                        &self.span.sub(self.base + start, literal.len()),
                        format!(
                            "the integer {literal} does not fit in 64 bits (from {} to {})",
                            i64::MIN,
                            i64::MAX
                        ),
                    )
                    .with_hint(
                        "write a smaller number; the field's own limits are usually much lower",
                    ));
                } else if let Ok(float) = literal.parse::<f64>() {
                    Value::Float(float)
                } else {
                    self.position = start;
                    return Err(self.error("malformed number"));
                };
                Ok(Expression {
                    kind: ExpressionKind::Literal(value),
                    span: self.span_from(start),
                })
            }
            Some('(') => {
                self.position += 1;
                let inner = self.expression()?;
                self.skip_whitespace();
                if !self.eat(')') {
                    return Err(self.error("expected `)`"));
                }
                Ok(inner)
            }
            _ => {
                let name = self.name().ok_or_else(|| {
                    self.error("expected a reference, a string, a number or a function call")
                })?;
                let literal = match name.as_str() {
                    "true" => Some(Value::Bool(true)),
                    "false" => Some(Value::Bool(false)),
                    "null" => Some(Value::Null),
                    _ => None,
                };
                if let Some(value) = literal {
                    return Ok(Expression {
                        kind: ExpressionKind::Literal(value),
                        span: self.span_from(start),
                    });
                }
                self.skip_whitespace();
                if self.eat('(') {
                    let mut arguments = Vec::new();
                    self.skip_whitespace();
                    if !self.eat(')') {
                        loop {
                            arguments.push(self.expression()?);
                            self.skip_whitespace();
                            if self.eat(')') {
                                break;
                            }
                            if !self.eat(',') {
                                return Err(self.error("expected `,` or `)` in the argument list"));
                            }
                        }
                    }
                    return Ok(Expression {
                        kind: ExpressionKind::Call {
                            function: name,
                            arguments,
                        },
                        span: self.span_from(start),
                    });
                }
                let span = self.span_from(start);
                Ok(Expression {
                    kind: ExpressionKind::Traversal(Traversal {
                        root: name,
                        steps: Vec::new(),
                        span: span.clone(),
                    }),
                    span,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::source::SourceFile;
    use std::path::Path;

    fn span_of(text: &str) -> Span {
        let file = SourceFile::new(
            Path::new("m.toml"),
            "m.toml".into(),
            format!("x = \"{text}\"\n"),
        );
        Span {
            file,
            start: 4,
            end: 6 + text.len(),
        }
    }

    fn parse(text: &str) -> Result<Vec<TemplatePart>, Diagnostic> {
        parse_template(text, &span_of(text))
    }

    #[test]
    fn an_integer_literal_beyond_64_bits_is_an_error_not_a_float() {
        let error = parse("${lower(99999999999999999999)}").expect_err("overflow");
        assert!(
            error
                .message
                .contains("99999999999999999999 does not fit in 64 bits"),
            "{error}"
        );
        assert!(error.hint.is_some());
        assert!(parse("${lower(9223372036854775807)}").is_ok());
        assert!(parse("${lower(1.5)}").is_ok());
    }

    #[test]
    fn plain_text_is_one_part() {
        let parts = parse("hello").expect("parses");
        assert!(matches!(&parts[..], [TemplatePart::Text(text)] if text == "hello"));
    }

    #[test]
    fn traversal_with_index_and_attribute() {
        let parts = parse("${secret.beta[each.key].name}").expect("parses");
        let [TemplatePart::Interpolation(expression)] = &parts[..] else {
            panic!("one interpolation")
        };
        let ExpressionKind::Traversal(traversal) = &expression.kind else {
            panic!("traversal")
        };
        assert_eq!(traversal.root, "secret");
        assert_eq!(traversal.steps.len(), 3);
        assert!(matches!(&traversal.steps[2], Step::Attribute(name) if name == "name"));
    }

    #[test]
    fn mixed_text_calls_and_escapes() {
        let parts = parse("a-${lower(env.name)}-$${literal}").expect("parses");
        assert_eq!(parts.len(), 3);
        assert!(matches!(&parts[2], TemplatePart::Text(text) if text == "-${literal}"));
        let TemplatePart::Interpolation(call) = &parts[1] else {
            panic!()
        };
        assert!(
            matches!(&call.kind, ExpressionKind::Call { function, arguments } if function == "lower" && arguments.len() == 1)
        );
    }

    #[test]
    fn splat_and_string_arguments() {
        let parts = parse("${join(',', secret.beta[*].name)}").expect("parses");
        let TemplatePart::Interpolation(call) = &parts[0] else {
            panic!()
        };
        let ExpressionKind::Call { arguments, .. } = &call.kind else {
            panic!()
        };
        assert!(
            matches!(&arguments[0].kind, ExpressionKind::Literal(Value::String(s)) if s == ",")
        );
        let ExpressionKind::Traversal(traversal) = &arguments[1].kind else {
            panic!()
        };
        assert!(matches!(traversal.steps[1], Step::Splat));
    }

    #[test]
    fn unclosed_interpolation_names_the_column() {
        let error = parse("${var.x").expect_err("fails");
        assert_eq!(error.code, DiagnosticCode::Expression);
        assert!(error.to_string().starts_with("m.toml:1:"), "{error}");
        assert!(error.message.contains("expected `}`"), "{error}");
    }
}
