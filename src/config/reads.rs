//! What an evaluation reads from the values of other blocks (module inputs and outputs, the
//! exported attributes of resource instances), recorded so that a later walk over other values
//! can tell whether evaluating again would read exactly the same. Evaluation is a pure function
//! of what it reads — the only I/O, `file()`, reads the same files — so an evaluation whose every
//! read gives the same answer again computes the same result. Evaluating lives in `eval.rs`;
//! this file owns the shared lookups and the replay.

use super::eval::{BlockValue, Values};
use super::model::instance_address;
use crate::value::{Marker, Value};
use std::borrow::Cow;
use std::collections::BTreeSet;

/// Where a reference finds its base value among the values of other blocks.
#[derive(Debug, Clone, PartialEq)]
pub enum ReadSource {
    /// A module input: (module, input).
    Input(String, String),
    /// A module output: (module, output).
    Output(String, String),
    /// A resource block (module, kind, name), and which of its instances.
    Resource {
        module: String,
        kind: String,
        name: String,
        pick: Pick,
    },
}

/// Which instances of a resource block a reference reads.
#[derive(Debug, Clone, PartialEq)]
pub enum Pick {
    /// The one instance of a block without `for_each`.
    Single,
    /// One `for_each` instance, by its key.
    Key(String),
    /// A `for_each` instance whose key is not known yet: the value is unknown, and every
    /// instance may be the one.
    UnknownKey,
    /// Every instance (`[*]`), in key order.
    All,
}

/// One step of a reference after its base, its index already evaluated.
#[derive(Debug, Clone, PartialEq)]
pub enum ResolvedStep {
    Attribute(String),
    Index(Value),
    Splat,
}

/// A step as evaluation takes it, borrowing what a `ResolvedStep` owns.
#[derive(Clone, Copy)]
pub enum StepRef<'a> {
    Attribute(&'a str),
    Index(&'a Value),
    Splat,
}

/// Why a step could not be taken.
pub enum StepError {
    /// Nothing at that index, or nothing there to index.
    Missing,
    /// A map without the attribute, and the attributes it has.
    NoAttribute { attributes: Vec<String> },
    /// A value that has no attributes at all, and its type.
    NotAnObject(&'static str),
}

/// One answer an evaluation got from the values of other blocks: where it looked, and what it
/// found there.
#[derive(Debug, Clone)]
pub struct Read {
    pub source: ReadSource,
    pub steps: Vec<ResolvedStep>,
    pub value: Value,
}

impl Read {
    /// Returns true when reading again from `values` finds the value found before, adding the
    /// resource instances that value comes from to `touched` (as evaluating adds them).
    pub fn replay(&self, values: &Values, touched: &mut BTreeSet<String>) -> bool {
        let Some(base) = source_value(values, &self.source, touched) else {
            return false;
        };
        // Without a splat every step picks a part of what is there: follow references and
        // compare, copying nothing (an instance's whole exported map, for one attribute).
        if !self.steps.contains(&ResolvedStep::Splat) {
            let mut current: &Value = &base;
            for step in &self.steps {
                match step_within(current, step.as_ref()) {
                    Ok(next) => current = next,
                    Err(_) => return false,
                }
            }
            return identical(current, &self.value);
        }
        let mut current = base.into_owned();
        let mut splatted = false;
        for step in &self.steps {
            match take_step(current, step.as_ref(), &mut splatted) {
                Ok(next) => current = next,
                Err(_) => return false,
            }
        }
        identical(&current, &self.value)
    }

    /// Returns true when this read took every instance of a block (`[*]`): its value grows
    /// with that block, and replaying it costs what evaluating again does.
    pub fn reads_every_instance(&self) -> bool {
        matches!(
            self.source,
            ReadSource::Resource {
                pick: Pick::All,
                ..
            }
        )
    }
}

/// Returns true when two values are the same to anything evaluation does with them: floats
/// compare by their bits, as `0.0` and `-0.0` interpolate differently although `==`.
fn identical(left: &Value, right: &Value) -> bool {
    match (left, right) {
        (Value::Float(left), Value::Float(right)) => left.to_bits() == right.to_bits(),
        (Value::List(left), Value::List(right)) => {
            left.len() == right.len()
                && left
                    .iter()
                    .zip(right)
                    .all(|(left, right)| identical(left, right))
        }
        (Value::Map(left), Value::Map(right)) => {
            left.len() == right.len()
                && left
                    .iter()
                    .zip(right)
                    .all(|((left_key, left), (right_key, right))| {
                        left_key == right_key && identical(left, right)
                    })
        }
        _ => left == right,
    }
}

impl ResolvedStep {
    /// Returns the step borrowed, as `take_step` takes it.
    pub fn as_ref(&self) -> StepRef<'_> {
        match self {
            ResolvedStep::Attribute(name) => StepRef::Attribute(name),
            ResolvedStep::Index(key) => StepRef::Index(key),
            ResolvedStep::Splat => StepRef::Splat,
        }
    }
}

impl StepRef<'_> {
    /// Returns the step owned, to record it.
    pub fn to_owned(self) -> ResolvedStep {
        match self {
            StepRef::Attribute(name) => ResolvedStep::Attribute(name.to_string()),
            StepRef::Index(key) => ResolvedStep::Index(key.clone()),
            StepRef::Splat => ResolvedStep::Splat,
        }
    }
}

/// Returns the base value `source` names in `values`, adding the resource instances it comes
/// from to `touched`; `None` when `values` holds nothing there (or a block of another shape).
pub fn read_source(
    values: &Values,
    source: &ReadSource,
    touched: &mut BTreeSet<String>,
) -> Option<Value> {
    source_value(values, source, touched).map(Cow::into_owned)
}

/// Returns what `read_source` returns, borrowed from `values` where it is there as it is.
fn source_value<'v>(
    values: &'v Values,
    source: &ReadSource,
    touched: &mut BTreeSet<String>,
) -> Option<Cow<'v, Value>> {
    match source {
        ReadSource::Input(module, name) => {
            let key = (module.clone(), name.clone());
            if let Some(sources) = values.input_sources.get(&key) {
                touched.extend(sources.iter().cloned());
            }
            values.inputs.get(&key).map(Cow::Borrowed)
        }
        ReadSource::Output(module, name) => {
            let key = (module.clone(), name.clone());
            if let Some(sources) = values.output_sources.get(&key) {
                touched.extend(sources.iter().cloned());
            }
            values.outputs.get(&key).map(Cow::Borrowed)
        }
        ReadSource::Resource {
            module,
            kind,
            name,
            pick,
        } => {
            let block = values
                .resources
                .get(&(module.clone(), kind.clone(), name.clone()))?;
            match (block, pick) {
                (BlockValue::Single(value), Pick::Single) => {
                    touched.insert(instance_address(module, kind, name, None));
                    Some(Cow::Borrowed(value))
                }
                (BlockValue::Each(instances), Pick::Key(key)) => {
                    let value = instances.get(key)?;
                    touched.insert(instance_address(module, kind, name, Some(key)));
                    Some(Cow::Borrowed(value))
                }
                (BlockValue::Each(instances), Pick::UnknownKey | Pick::All) => {
                    touched.extend(
                        instances
                            .keys()
                            .map(|key| instance_address(module, kind, name, Some(key))),
                    );
                    Some(Cow::Owned(match pick {
                        Pick::All => Value::List(instances.values().cloned().collect()),
                        _ => Value::unknown(),
                    }))
                }
                _ => None,
            }
        }
    }
}

/// Takes one step from `current`: an attribute (of every item, once a `[*]` came before,
/// which `splatted` remembers), an index, or a splat. Anything unknown stays unknown.
pub fn take_step(
    current: Value,
    step: StepRef<'_>,
    splatted: &mut bool,
) -> Result<Value, StepError> {
    match step {
        StepRef::Splat => {
            *splatted = true;
            Ok(current)
        }
        StepRef::Attribute(name) if *splatted => match current {
            Value::List(items) => items
                .iter()
                .map(|item| lookup(item, name).cloned())
                .collect::<Result<_, _>>()
                .map(Value::List),
            other => lookup(&other, name).cloned(),
        },
        step => step_within(&current, step).cloned(),
    }
}

/// The value every step into something unknown finds.
static UNKNOWN: Value = Value::Marker(Marker::Unknown(true));

/// Takes one attribute or index step within `current`, borrowing what it finds (a splat takes
/// nothing within: it is `take_step`'s).
fn step_within<'v>(current: &'v Value, step: StepRef<'_>) -> Result<&'v Value, StepError> {
    match step {
        StepRef::Splat => Ok(current),
        StepRef::Attribute(name) => lookup(current, name),
        StepRef::Index(key) => {
            if key.is_unknown() || current.is_unknown() {
                return Ok(&UNKNOWN);
            }
            match (current, key) {
                (Value::List(items), Value::Integer(position)) => usize::try_from(*position)
                    .ok()
                    .and_then(|position| items.get(position))
                    .ok_or(StepError::Missing),
                (Value::Map(entries), key) => entries
                    .get(&key.to_interpolation().unwrap_or_default())
                    .ok_or(StepError::Missing),
                _ => Err(StepError::Missing),
            }
        }
    }
}

fn lookup<'v>(value: &'v Value, name: &str) -> Result<&'v Value, StepError> {
    match value {
        Value::Marker(_) => Ok(&UNKNOWN),
        Value::Map(entries) => entries.get(name).ok_or_else(|| StepError::NoAttribute {
            attributes: entries.keys().cloned().collect(),
        }),
        other => Err(StepError::NotAnObject(other.type_name())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn values_with_secrets(names: &[(&str, &str)]) -> Values {
        let mut values = Values::default();
        values.resources.insert(
            (String::new(), "secret".into(), "many".into()),
            BlockValue::Each(
                names
                    .iter()
                    .map(|(key, version)| {
                        (
                            key.to_string(),
                            Value::Map(BTreeMap::from([
                                ("name".to_string(), Value::string(format!("secrets/{key}"))),
                                ("version".to_string(), Value::string(*version)),
                            ])),
                        )
                    })
                    .collect(),
            ),
        );
        values
    }

    fn read(pick: Pick, steps: Vec<ResolvedStep>, value: Value) -> Read {
        Read {
            source: ReadSource::Resource {
                module: String::new(),
                kind: "secret".into(),
                name: "many".into(),
                pick,
            },
            steps,
            value,
        }
    }

    #[test]
    fn a_read_of_one_attribute_holds_while_another_attribute_changes() {
        let name = read(
            Pick::Key("a".into()),
            vec![ResolvedStep::Attribute("name".into())],
            Value::string("secrets/a"),
        );
        let mut touched = BTreeSet::new();
        assert!(name.replay(&values_with_secrets(&[("a", "7")]), &mut touched));
        assert_eq!(touched, BTreeSet::from(["secret.many[\"a\"]".to_string()]));
        let version = read(
            Pick::Key("a".into()),
            vec![ResolvedStep::Attribute("version".into())],
            Value::string("6"),
        );
        assert!(!version.replay(&values_with_secrets(&[("a", "7")]), &mut touched));
    }

    #[test]
    fn a_float_read_holds_only_for_the_same_bits() {
        let mut values = Values::default();
        values
            .inputs
            .insert((String::new(), "ratio".into()), Value::Float(-0.0));
        let read = Read {
            source: ReadSource::Input(String::new(), "ratio".into()),
            steps: Vec::new(),
            value: Value::Float(0.0),
        };
        // Equal by `==`, but "${input.ratio}" would read "0" in one and "-0" in the other.
        assert!(!read.replay(&values, &mut BTreeSet::new()));
        values
            .inputs
            .insert((String::new(), "ratio".into()), Value::Float(0.0));
        assert!(read.replay(&values, &mut BTreeSet::new()));
    }

    #[test]
    fn a_read_fails_when_its_instance_is_gone_or_the_splat_changed() {
        let values = values_with_secrets(&[("b", "1")]);
        let mut touched = BTreeSet::new();
        let gone = read(Pick::Key("a".into()), Vec::new(), Value::Null);
        assert!(!gone.replay(&values, &mut touched));
        let names = read(
            Pick::All,
            vec![ResolvedStep::Splat, ResolvedStep::Attribute("name".into())],
            Value::List(vec![Value::string("secrets/a")]),
        );
        assert!(!names.replay(&values, &mut touched));
        let names = read(
            Pick::All,
            vec![ResolvedStep::Splat, ResolvedStep::Attribute("name".into())],
            Value::List(vec![Value::string("secrets/b")]),
        );
        assert!(names.replay(&values, &mut touched));
    }
}
