//! Evaluates expressions against the values known so far: variables, module inputs and
//! outputs, and the attributes of resources already planned or applied. Unknown values flow
//! through (a string built from one is unknown). The only I/O is `file()`, relative to the
//! module's directory.

use super::error::{Diagnostic, DiagnosticCode};
use super::expr::{Expression, ExpressionKind, Step, TemplatePart, Traversal, ValueExpr};
use super::model::{Configuration, ModuleInstance, instance_address};
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
}

impl<'a> Evaluator<'a> {
    /// Creates an evaluator over the values known so far.
    pub fn new(configuration: &'a Configuration, values: &'a Values) -> Self {
        Self {
            configuration,
            values,
            touched: RefCell::default(),
        }
    }

    /// Returns (and forgets) the addresses of the resource instances read since the last call.
    pub fn take_touched(&self) -> BTreeSet<String> {
        std::mem::take(&mut self.touched.borrow_mut())
    }

    fn touch(&self, addresses: impl IntoIterator<Item = String>) {
        self.touched.borrow_mut().extend(addresses);
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
                if values.iter().any(Value::contains_unknown) {
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
        let (base, rest): (Value, usize) = match traversal.root.as_str() {
            "var" => {
                let name = attribute(0).ok_or_else(missing)?;
                (
                    self.configuration
                        .vars
                        .get(&name)
                        .cloned()
                        .ok_or_else(missing)?,
                    1,
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
                (value, 1)
            }
            "each" => {
                let (key, value) = scope.each.ok_or_else(missing)?;
                match attribute(0).as_deref() {
                    Some("key") => (Value::string(key), 1),
                    Some("value") => (value.clone(), 1),
                    _ => return Err(missing()),
                }
            }
            "input" => {
                let key = (module_name.clone(), attribute(0).ok_or_else(missing)?);
                self.touch(
                    self.values
                        .input_sources
                        .get(&key)
                        .cloned()
                        .unwrap_or_default(),
                );
                (
                    self.values.inputs.get(&key).cloned().ok_or_else(missing)?,
                    1,
                )
            }
            "module" => {
                let key = (
                    attribute(0).ok_or_else(missing)?,
                    attribute(1).ok_or_else(missing)?,
                );
                self.touch(
                    self.values
                        .output_sources
                        .get(&key)
                        .cloned()
                        .unwrap_or_default(),
                );
                (
                    self.values.outputs.get(&key).cloned().ok_or_else(missing)?,
                    2,
                )
            }
            kind => {
                let name = attribute(0).ok_or_else(missing)?;
                match self
                    .values
                    .resources
                    .get(&(module_name.clone(), kind.to_string(), name.clone()))
                    .ok_or_else(missing)?
                {
                    BlockValue::Single(value) => {
                        self.touch([instance_address(&module_name, kind, &name, None)]);
                        (value.clone(), 1)
                    }
                    BlockValue::Each(instances) => match traversal.steps.get(1) {
                        Some(Step::Index(index)) => {
                            let key = self.expression(index, scope)?;
                            if key.is_unknown() {
                                self.touch(instances.keys().map(|key| {
                                    instance_address(&module_name, kind, &name, Some(key))
                                }));
                                return Ok(Value::unknown());
                            }
                            let key = key.to_interpolation().unwrap_or_default();
                            let instance = instances.get(&key).ok_or_else(|| {
                                Diagnostic::new(
                                    DiagnosticCode::UnknownReference,
                                    &traversal.span,
                                    format!("{kind}.{name} has no instance [{key:?}]"),
                                )
                                .with_hint(format!(
                                    "its keys: {}",
                                    instances.keys().cloned().collect::<Vec<_>>().join(", ")
                                ))
                            })?;
                            self.touch([instance_address(&module_name, kind, &name, Some(&key))]);
                            (instance.clone(), 2)
                        }
                        Some(Step::Splat) => {
                            self.touch(
                                instances.keys().map(|key| {
                                    instance_address(&module_name, kind, &name, Some(key))
                                }),
                            );
                            (Value::List(instances.values().cloned().collect()), 1)
                        }
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
                }
            }
        };
        let mut current = base;
        let mut splatted = rest > 0 && matches!(traversal.steps.get(rest - 1), Some(Step::Splat));
        for step in &traversal.steps[rest..] {
            current = match step {
                Step::Splat => {
                    splatted = true;
                    current
                }
                Step::Attribute(name) if splatted => match current {
                    Value::List(items) => Value::List(
                        items
                            .iter()
                            .map(|item| lookup(item, name, traversal))
                            .collect::<Result<_, _>>()?,
                    ),
                    other => lookup(&other, name, traversal)?,
                },
                Step::Attribute(name) => lookup(&current, name, traversal)?,
                Step::Index(index) => {
                    let key = self.expression(index, scope)?;
                    if key.is_unknown() || current.is_unknown() {
                        Value::unknown()
                    } else {
                        match (&current, &key) {
                            (Value::List(items), Value::Integer(position)) => {
                                items.get(*position as usize).cloned().ok_or_else(missing)?
                            }
                            (Value::Map(entries), key) => entries
                                .get(&key.to_interpolation().unwrap_or_default())
                                .cloned()
                                .ok_or_else(missing)?,
                            _ => return Err(missing()),
                        }
                    }
                }
            };
        }
        Ok(current)
    }
}

fn lookup(value: &Value, name: &str, traversal: &Traversal) -> Result<Value, Diagnostic> {
    match value {
        Value::Marker(_) => Ok(Value::unknown()),
        Value::Map(entries) => entries.get(name).cloned().ok_or_else(|| {
            Diagnostic::new(
                DiagnosticCode::UnknownReference,
                &traversal.span,
                format!("`{}`: no attribute `{name}`", traversal.describe()),
            )
            .with_hint(format!(
                "attributes: {}",
                entries.keys().cloned().collect::<Vec<_>>().join(", ")
            ))
        }),
        other => Err(Diagnostic::new(
            DiagnosticCode::Expression,
            &traversal.span,
            format!(
                "`{}`: a {} has no attribute `{name}`",
                traversal.describe(),
                other.type_name()
            ),
        )),
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
