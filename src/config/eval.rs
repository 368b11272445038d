//! Evaluates expressions against the values known so far: variables, module inputs and
//! outputs, and the attributes of resources already planned or applied. Unknown values flow
//! through (a string built from one is unknown). The only I/O is `file()`, relative to the
//! module's directory.

use super::error::{Diagnostic, DiagnosticCode};
use super::expr::{Expression, ExpressionKind, Step, TemplatePart, Traversal, ValueExpr};
use super::model::{Configuration, ModuleInstance};
use super::reads::{
    Pick, Read, ReadSource, ResolvedStep, StepError, StepRef, read_source, take_step,
};
use crate::value::Value;
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

/// What a resource block evaluates to: one object, or one per `for_each` key.
#[derive(Debug, Clone)]
pub enum BlockValue {
    Single(Value),
    Each(BTreeMap<String, Value>),
}

/// The values known so far while walking the block graph.
#[derive(Debug, Default)]
pub struct Values {
    pub inputs: BTreeMap<(String, String), Value>,
    pub outputs: BTreeMap<(String, String), Value>,
    pub resources: BTreeMap<(String, String, String), BlockValue>,
    /// The resource instances each input and output was computed from.
    pub input_sources: BTreeMap<(String, String), BTreeSet<String>>,
    pub output_sources: BTreeMap<(String, String), BTreeSet<String>>,
}

/// Where an expression is evaluated.
#[derive(Clone, Copy)]
pub struct EvalScope<'a> {
    pub module: &'a ModuleInstance,
    pub env_scope: bool,
    pub each: Option<(&'a str, &'a Value)>,
}

/// Evaluates configuration expressions, recording which resource instances they read.
pub struct Evaluator<'a> {
    pub configuration: &'a Configuration,
    pub values: &'a Values,
    touched: RefCell<BTreeSet<String>>,
    /// What references read from other blocks' values, when recording (see `reads.rs`).
    reads: Option<RefCell<Vec<Read>>>,
}

impl<'a> Evaluator<'a> {
    /// Creates an evaluator over the values known so far.
    pub fn new(configuration: &'a Configuration, values: &'a Values) -> Self {
        Self {
            configuration,
            values,
            touched: RefCell::default(),
            reads: None,
        }
    }

    /// Creates an evaluator like `new` that records every value it reads from other blocks
    /// (`take_reads`), so a later walk can tell whether evaluating again would differ.
    pub fn recording(configuration: &'a Configuration, values: &'a Values) -> Self {
        Self {
            reads: Some(RefCell::default()),
            ..Self::new(configuration, values)
        }
    }

    /// Returns (and forgets) what was read since the last call; nothing when not recording.
    pub fn take_reads(&self) -> Vec<Read> {
        self.reads
            .as_ref()
            .map(|reads| std::mem::take(&mut *reads.borrow_mut()))
            .unwrap_or_default()
    }

    /// Returns (and forgets) the addresses of the resource instances read since the last call.
    pub fn take_touched(&self) -> BTreeSet<String> {
        std::mem::take(&mut self.touched.borrow_mut())
    }

    /// Returns the key an index expression picks a `for_each` instance by, exactly as a
    /// reference `kind.name[INDEX]` looks it up; `None` when it has no known value.
    pub fn index_key(&self, index: &Expression, scope: EvalScope<'_>) -> Option<String> {
        let key = self.expression(index, scope).ok()?;
        if key.is_unknown() {
            return None;
        }
        Some(key.to_interpolation().unwrap_or_default())
    }

    /// Evaluates a configuration value.
    pub fn value(&self, expression: &ValueExpr, scope: EvalScope<'_>) -> Result<Value, Diagnostic> {
        match expression {
            ValueExpr::Literal(value, _) => Ok(value.clone()),
            ValueExpr::List(items, _) => items
                .iter()
                .map(|item| self.value(item, scope))
                .collect::<Result<_, _>>()
                .map(Value::List),
            ValueExpr::Map(entries, _) => entries
                .iter()
                .map(|(key, item)| Ok((key.clone(), self.value(item, scope)?)))
                .collect::<Result<_, _>>()
                .map(Value::Map),
            ValueExpr::Template(parts, _) => {
                if let [TemplatePart::Interpolation(expression)] = &parts[..] {
                    return self.expression(expression, scope);
                }
                let mut text = String::new();
                for part in parts {
                    match part {
                        TemplatePart::Text(literal) => text.push_str(literal),
                        TemplatePart::Interpolation(expression) => {
                            let value = self.expression(expression, scope)?;
                            if value.contains_unknown() {
                                return Ok(Value::unknown());
                            }
                            match value.to_interpolation() {
                                Some(piece) => text.push_str(&piece),
                                None => {
                                    return Err(error(
                                        expression,
                                        format!("cannot put a {} into a string", value.type_name()),
                                    )
                                    .with_hint("interpolate a single attribute, or use join()"));
                                }
                            }
                        }
                    }
                }
                Ok(Value::String(text))
            }
        }
    }

    fn expression(
        &self,
        expression: &Expression,
        scope: EvalScope<'_>,
    ) -> Result<Value, Diagnostic> {
        match &expression.kind {
            ExpressionKind::Literal(value) => Ok(value.clone()),
            ExpressionKind::Traversal(traversal) => self.traversal(traversal, scope),
            ExpressionKind::Call {
                function,
                arguments,
            } => {
                let values = arguments
                    .iter()
                    .map(|argument| self.expression(argument, scope))
                    .collect::<Result<Vec<_>, _>>()?;
                if !knowable(function, &values) {
                    return Ok(Value::unknown());
                }
                call(function, &values, scope.module, expression)
            }
        }
    }

    fn traversal(&self, traversal: &Traversal, scope: EvalScope<'_>) -> Result<Value, Diagnostic> {
        let module_name = scope.module.name.clone();
        let attribute = |index: usize| match traversal.steps.get(index) {
            Some(Step::Attribute(name)) => Some(name.clone()),
            _ => None,
        };
        let missing = || {
            Diagnostic::new(
                DiagnosticCode::UnknownReference,
                &traversal.span,
                format!("`{}` has no value here", traversal.describe()),
            )
        };
        let (base, rest, source): (Value, usize, Option<ReadSource>) = match traversal.root.as_str()
        {
            "var" => {
                let name = attribute(0).ok_or_else(missing)?;
                (
                    self.configuration
                        .vars
                        .get(&name)
                        .cloned()
                        .ok_or_else(missing)?,
                    1,
                    None,
                )
            }
            "env" => {
                let env = &self.configuration.env;
                let value = match attribute(0).as_deref() {
                    Some("name") => Value::string(&env.name),
                    Some("project") => Value::string(&env.project),
                    Some("region") => Value::string(&env.region),
                    Some("project_number") => env
                        .project_number
                        .clone()
                        .map_or(Value::Null, Value::String),
                    _ => return Err(missing()),
                };
                (value, 1, None)
            }
            "each" => {
                let (key, value) = scope.each.ok_or_else(missing)?;
                match attribute(0).as_deref() {
                    Some("key") => (Value::string(key), 1, None),
                    Some("value") => (value.clone(), 1, None),
                    _ => return Err(missing()),
                }
            }
            "input" => {
                let source = ReadSource::Input(module_name, attribute(0).ok_or_else(missing)?);
                (self.read(&source).ok_or_else(missing)?, 1, Some(source))
            }
            "module" => {
                let source = ReadSource::Output(
                    attribute(0).ok_or_else(missing)?,
                    attribute(1).ok_or_else(missing)?,
                );
                (self.read(&source).ok_or_else(missing)?, 2, Some(source))
            }
            kind => {
                let name = attribute(0).ok_or_else(missing)?;
                let block = self
                    .values
                    .resources
                    .get(&(module_name.clone(), kind.to_string(), name.clone()))
                    .ok_or_else(missing)?;
                let (pick, rest) = match block {
                    BlockValue::Single(_) => (Pick::Single, 1),
                    BlockValue::Each(instances) => match traversal.steps.get(1) {
                        Some(Step::Index(index)) => {
                            let key = self.expression(index, scope)?;
                            if key.is_unknown() {
                                (Pick::UnknownKey, 2)
                            } else {
                                let key = key.to_interpolation().unwrap_or_default();
                                if !instances.contains_key(&key) {
                                    return Err(Diagnostic::new(
                                        DiagnosticCode::UnknownReference,
                                        &traversal.span,
                                        format!("{kind}.{name} has no instance [{key:?}]"),
                                    )
                                    .with_hint(format!(
                                        "its keys: {}",
                                        instances.keys().cloned().collect::<Vec<_>>().join(", ")
                                    )));
                                }
                                (Pick::Key(key), 2)
                            }
                        }
                        Some(Step::Splat) => (Pick::All, 1),
                        _ => {
                            return Err(Diagnostic::new(
                                DiagnosticCode::Expression,
                                &traversal.span,
                                format!(
                                    "{kind}.{name} uses for_each: pick an instance with [KEY] or all with [*]"
                                ),
                            )
                            .with_hint(format!(
                                "like ${{{kind}.{name}[\"KEY\"].name}} or ${{{kind}.{name}[*].name}}"
                            )));
                        }
                    },
                };
                let unknown_key = pick == Pick::UnknownKey;
                let source = ReadSource::Resource {
                    module: module_name,
                    kind: kind.to_string(),
                    name,
                    pick,
                };
                let base = self.read(&source).ok_or_else(missing)?;
                if unknown_key {
                    self.record(source, Vec::new(), &base);
                    return Ok(base);
                }
                (base, rest, Some(source))
            }
        };
        let mut current = base;
        let mut splatted = false;
        let mut resolved = Vec::new();
        let recording = source.is_some() && self.reads.is_some();
        for step in &traversal.steps[rest..] {
            let index;
            let step = match step {
                Step::Splat => StepRef::Splat,
                Step::Attribute(name) => StepRef::Attribute(name),
                Step::Index(expression) => {
                    index = self.expression(expression, scope)?;
                    StepRef::Index(&index)
                }
            };
            current = take_step(current, step, &mut splatted)
                .map_err(|error| step_diagnostic(error, step, traversal))?;
            if recording {
                resolved.push(step.to_owned());
            }
        }
        if let Some(source) = source {
            self.record(source, resolved, &current);
        }
        Ok(current)
    }

    /// Returns the base value `source` names, noting the resource instances it comes from.
    fn read(&self, source: &ReadSource) -> Option<Value> {
        read_source(self.values, source, &mut self.touched.borrow_mut())
    }

    /// Records what a reference read, when recording.
    fn record(&self, source: ReadSource, steps: Vec<ResolvedStep>, value: &Value) {
        if let Some(reads) = &self.reads {
            reads.borrow_mut().push(Read {
                source,
                steps,
                value: value.clone(),
            });
        }
    }
}

/// Returns the error a step that could not be taken reports, at the reference.
fn step_diagnostic(error: StepError, step: StepRef<'_>, traversal: &Traversal) -> Diagnostic {
    let name = match step {
        StepRef::Attribute(name) => name,
        _ => "",
    };
    match error {
        StepError::Missing => Diagnostic::new(
            DiagnosticCode::UnknownReference,
            &traversal.span,
            format!("`{}` has no value here", traversal.describe()),
        ),
        StepError::NoAttribute { attributes } => Diagnostic::new(
            DiagnosticCode::UnknownReference,
            &traversal.span,
            format!("`{}`: no attribute `{name}`", traversal.describe()),
        )
        .with_hint(format!("attributes: {}", attributes.join(", "))),
        StepError::NotAnObject(type_name) => Diagnostic::new(
            DiagnosticCode::Expression,
            &traversal.span,
            format!(
                "`{}`: a {type_name} has no attribute `{name}`",
                traversal.describe()
            ),
        ),
    }
}

/// Returns whether `function` can be evaluated over `arguments` holding values not known
/// before apply: `zipmap` and `merge` keep an unknown value in its place (a secret's new
/// `version` in a map of several) so that the rest of the map stays known, as long as the keys
/// and the maps themselves are known; every other function needs all of its arguments.
fn knowable(function: &str, arguments: &[Value]) -> bool {
    match function {
        "zipmap" => {
            arguments
                .first()
                .is_none_or(|keys| !keys.contains_unknown())
                && arguments.iter().all(|argument| !argument.is_unknown())
        }
        "merge" => arguments.iter().all(|argument| !argument.is_unknown()),
        _ => !arguments.iter().any(Value::contains_unknown),
    }
}

fn error(expression: &Expression, message: String) -> Diagnostic {
    Diagnostic::new(DiagnosticCode::Expression, &expression.span, message)
        .with_hint("the functions and what they take: docs/config.md, section Expressions")
}

fn call(
    function: &str,
    arguments: &[Value],
    module: &ModuleInstance,
    expression: &Expression,
) -> Result<Value, Diagnostic> {
    let arity = |count: usize| {
        if arguments.len() == count {
            Ok(())
        } else {
            Err(error(
                expression,
                format!(
                    "{function}() takes {count} argument{}, got {}",
                    if count == 1 { "" } else { "s" },
                    arguments.len()
                ),
            ))
        }
    };
    let text_argument = |position: usize| {
        arguments[position]
            .as_str()
            .map(String::from)
            .ok_or_else(|| {
                error(
                    expression,
                    format!(
                        "{function}(): argument {} must be a string (got {})",
                        position + 1,
                        arguments[position].type_name()
                    ),
                )
            })
    };
    match function {
        "file" => {
            arity(1)?;
            let relative = text_argument(0)?;
            let path = module.directory.join(&relative);
            std::fs::read_to_string(&path)
                .map(Value::String)
                .map_err(|io_error| {
                    error(
                        expression,
                        format!("file({relative:?}): {}: {io_error}", path.display()),
                    )
                })
        }
        "json" => {
            arity(1)?;
            let text = text_argument(0)?;
            serde_json::from_str::<serde_json::Value>(&text)
                .map(|json| Value::from_json(&json))
                .map_err(|parse_error| {
                    error(expression, format!("json(): not valid JSON: {parse_error}"))
                })
        }
        "jsonencode" => {
            arity(1)?;
            Ok(Value::String(
                serde_json::to_string(&arguments[0].to_json()).unwrap_or_default(),
            ))
        }
        "join" => {
            arity(2)?;
            let separator = text_argument(0)?;
            match &arguments[1] {
                Value::List(items) => {
                    let pieces = items
                        .iter()
                        .map(|item| {
                            item.to_interpolation().ok_or_else(|| {
                                error(expression, "join(): the list must hold strings".into())
                            })
                        })
                        .collect::<Result<Vec<_>, _>>()?;
                    Ok(Value::String(pieces.join(&separator)))
                }
                other => Err(error(
                    expression,
                    format!(
                        "join(): the second argument must be a list (got {})",
                        other.type_name()
                    ),
                )),
            }
        }
        "if" => {
            arity(3)?;
            match &arguments[0] {
                Value::Bool(condition) => Ok(arguments[if *condition { 1 } else { 2 }].clone()),
                other => Err(error(
                    expression,
                    format!(
                        "if(): the condition must be a bool (got {})",
                        other.type_name()
                    ),
                )),
            }
        }
        "zipmap" => {
            arity(2)?;
            match (&arguments[0], &arguments[1]) {
                (Value::List(keys), Value::List(values)) if keys.len() == values.len() => {
                    let mut map = BTreeMap::new();
                    for (key, value) in keys.iter().zip(values) {
                        let Some(key) = key.to_interpolation() else {
                            return Err(error(expression, "zipmap(): keys must be strings".into()));
                        };
                        // A repeated key would silently keep only the last value.
                        if map.insert(key.clone(), value.clone()).is_some() {
                            return Err(error(
                                expression,
                                format!("zipmap(): the key {key:?} appears more than once"),
                            ));
                        }
                    }
                    Ok(Value::Map(map))
                }
                (Value::List(keys), Value::List(values)) => Err(error(
                    expression,
                    format!("zipmap(): {} keys but {} values", keys.len(), values.len()),
                )),
                _ => Err(error(expression, "zipmap() takes two lists".into())),
            }
        }
        "merge" => {
            let mut merged = BTreeMap::new();
            for argument in arguments {
                match argument {
                    Value::Map(entries) => merged.extend(entries.clone()),
                    other => {
                        return Err(error(
                            expression,
                            format!("merge() takes maps (got {})", other.type_name()),
                        ));
                    }
                }
            }
            Ok(Value::Map(merged))
        }
        "lower" => {
            arity(1)?;
            Ok(Value::String(text_argument(0)?.to_lowercase()))
        }
        "upper" => {
            arity(1)?;
            Ok(Value::String(text_argument(0)?.to_uppercase()))
        }
        other => Err(error(expression, format!("unknown function `{other}`"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load;

    #[test]
    fn zipmap_and_merge_keep_an_unknown_value_in_its_place() {
        let keys = Value::List(vec![Value::string("a"), Value::string("b")]);
        let values = Value::List(vec![Value::string("1"), Value::unknown()]);
        assert!(knowable("zipmap", &[keys.clone(), values.clone()]));
        assert!(
            !knowable("zipmap", &[values.clone(), keys.clone()]),
            "unknown keys"
        );
        assert!(!knowable("zipmap", &[keys.clone(), Value::unknown()]));
        let partly = Value::Map(BTreeMap::from([("b".to_string(), Value::unknown())]));
        assert!(knowable("merge", &[partly.clone(), partly.clone()]));
        assert!(!knowable("merge", &[partly.clone(), Value::unknown()]));
        assert!(!knowable("join", &[Value::string(","), values]));
    }

    fn configuration(resources: &str) -> (tempfile::TempDir, Configuration) {
        let root = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(root.path().join("envs/t")).expect("mkdir");
        std::fs::write(root.path().join("envs/t/data.json"), r#"{"tiles": [1, 2]}"#)
            .expect("write");
        let text = format!(
            "[env]\nname = \"t\"\nproject = \"p\"\nregion = \"r\"\n[vars]\nmembers = [\"a\", \"b\"]\n{resources}"
        );
        std::fs::write(root.path().join("envs/t/env.toml"), text).expect("write");
        let configuration = load(root.path(), "t").expect("valid");
        (root, configuration)
    }

    fn attribute(
        configuration: &Configuration,
        values: &Values,
        field: &str,
    ) -> Result<Value, Diagnostic> {
        let module = &configuration.modules[0];
        let expression = &module.resources[0].attributes[field];
        Evaluator::new(configuration, values).value(
            expression,
            EvalScope {
                module,
                env_scope: true,
                each: None,
            },
        )
    }

    #[test]
    fn functions_and_whole_value_interpolation() {
        let (_root, configuration) = configuration(
            "[resource.secret.s]\nsecret_id = \"${upper(env.name)}-${join('+', var.members)}\"\nvalue = \"${jsonencode(json(file('data.json')))}\"\nlabels = \"${json(file('data.json'))}\"\n",
        );
        let values = Values::default();
        assert_eq!(
            attribute(&configuration, &values, "secret_id").expect("ok"),
            Value::string("T-a+b")
        );
        assert_eq!(
            attribute(&configuration, &values, "value").expect("ok"),
            Value::string(r#"{"tiles":[1,2]}"#)
        );
        assert!(matches!(
            attribute(&configuration, &values, "labels").expect("ok"),
            Value::Map(_)
        ));
    }

    #[test]
    fn unknown_values_flow_through_strings_and_record_what_was_read() {
        let (_root, configuration) = configuration(
            "[resource.secret.s]\nsecret_id = \"x-${secret.t[\\\"k\\\"].version}\"\n[resource.secret.t]\nfor_each = \"${var.members}\"\nsecret_id = \"T\"\n",
        );
        let mut values = Values::default();
        let instance = Value::Map(BTreeMap::from([("version".to_string(), Value::unknown())]));
        values.resources.insert(
            (String::new(), "secret".into(), "t".into()),
            BlockValue::Each(BTreeMap::from([("k".into(), instance)])),
        );
        let module = &configuration.modules[0];
        let evaluator = Evaluator::new(&configuration, &values);
        let value = evaluator
            .value(
                &module.resource("secret", "s").expect("s").attributes["secret_id"],
                EvalScope {
                    module,
                    env_scope: true,
                    each: None,
                },
            )
            .expect("evaluates");
        assert!(value.is_unknown());
        assert_eq!(
            evaluator.take_touched().into_iter().collect::<Vec<_>>(),
            vec![r#"secret.t["k"]"#.to_string()]
        );
    }

    #[test]
    fn a_missing_file_is_an_error_at_the_call() {
        let (_root, configuration) =
            configuration("[resource.secret.s]\nsecret_id = \"${file('nope.json')}\"\n");
        let error =
            attribute(&configuration, &Values::default(), "secret_id").expect_err("missing");
        assert!(error.to_string().contains("envs/t/env.toml:8:"), "{error}");
        assert!(error.message.contains("file(\"nope.json\")"), "{error}");
    }
}
