//! Makes a plan: refreshes every object in state concurrently, walks the block graph to
//! evaluate the configuration, compares desired with live attributes per resource, and decides
//! create / update (with its mask) / replace / delete / no-op, reporting drift on the way.
//! Instance evaluation is shared with the executor, which re-evaluates with applied values.

use super::diff::{changed_paths, is_ignored};
use super::model::*;
use crate::config::error::{ConfigError, Diagnostic, DiagnosticCode};
use crate::config::eval::{BlockValue, EvalScope, Evaluator, Values};
use crate::config::reads::Read;
use crate::config::source::Span;
use crate::config::{
    BlockId, Configuration, Lifecycle, ModuleInstance, ResourceBlock, instance_address,
};
use crate::gcp::GcpClient;
use crate::gcp::kinds::{self, Kind, KindContext};
use crate::graph::{DependencyGraph, block_graph};
use crate::progress::{NoProgress, Progress};
use crate::sensitive::{FingerprintKey, LEGACY_SALT_ATTRIBUTE};
use crate::state::{ResourceStatus, State, StateResource};
use crate::value::{Attributes, Value};
use futures::stream::{self, StreamExt};
use sha2::{Digest, Sha256};
use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

/// How to plan.
#[derive(Debug, Clone)]
pub struct PlanOptions {
    pub parallelism: usize,
    pub refresh: bool,
    pub destroy: bool,
    pub replace: Vec<String>,
    /// Plan even when the configuration declares no resource but the state holds some (which
    /// destroys them all); without it such a plan is refused.
    pub allow_empty_config: bool,
    /// The environment's fingerprint key; `None` when it does not exist yet (secret values of
    /// a first plan are then known only after apply).
    pub fingerprint_key: Option<Arc<FingerprintKey>>,
}

impl Default for PlanOptions {
    fn default() -> Self {
        Self {
            parallelism: 32,
            refresh: true,
            destroy: false,
            replace: Vec::new(),
            allow_empty_config: false,
            fingerprint_key: None,
        }
    }
}

/// Why no plan could be made.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("refreshing state failed:\n{}", .0.join("\n"))]
    Refresh(Vec<String>),
    #[error("{0}")]
    Refused(String),
    /// A plan that would be dangerous by accident: what is wrong, and how to mean it.
    #[error("{message}\n  hint: {hint}")]
    Unsafe { message: String, hint: String },
}

/// One evaluated resource instance.
pub struct InstanceConfig {
    pub address: String,
    /// The resource instances its configuration read (and `depends_on` names).
    pub dependencies: BTreeSet<String>,
    pub block: BlockId,
    pub key: Option<String>,
    pub kind: &'static dyn Kind,
    pub config: Attributes,
    pub lifecycle: Lifecycle,
    pub span: Span,
}

/// Returns the context a kind sees for one resource: the environment, the state's lineage, the
/// fingerprint key, and the salt an older build recorded beside the resource's fingerprints.
pub fn kind_context(
    configuration: &Configuration,
    address: &str,
    lineage: &str,
    fingerprint_key: Option<&Arc<FingerprintKey>>,
    prior: Option<&StateResource>,
) -> KindContext {
    KindContext {
        address: address.to_string(),
        project: configuration.env.project.clone(),
        region: configuration.env.region.clone(),
        env_name: configuration.env.name.clone(),
        lineage: lineage.to_string(),
        fingerprint_key: fingerprint_key.cloned(),
        legacy_salt: prior
            .and_then(|prior| prior.attributes.get(LEGACY_SALT_ATTRIBUTE))
            .and_then(Value::as_str)
            .map(String::from),
    }
}

/// Evaluates a resource block into its instances (one, or one per `for_each` key).
pub fn evaluate_instances(
    configuration: &Configuration,
    module: &ModuleInstance,
    block: &ResourceBlock,
    values: &Values,
) -> Result<Vec<InstanceConfig>, Vec<Diagnostic>> {
    let (keys, key_dependencies) =
        evaluate_keys_with(&Evaluator::new(configuration, values), module, block)?;
    let mut instances = Vec::new();
    let mut diagnostics = Vec::new();
    for (key, each_value) in &keys {
        match evaluate_instance_with(
            &Evaluator::new(configuration, values),
            module,
            block,
            key.as_deref(),
            each_value,
            &key_dependencies,
        ) {
            Ok(instance) => instances.push(instance),
            Err(found) => diagnostics.extend(found),
        }
    }
    if diagnostics.is_empty() {
        Ok(instances)
    } else {
        Err(diagnostics)
    }
}

/// Evaluates a resource block's `for_each` into its instances' keys and `each.value`s: one
/// keyless instance when it has none.
pub fn evaluate_keys(
    configuration: &Configuration,
    module: &ModuleInstance,
    block: &ResourceBlock,
    values: &Values,
) -> Result<InstanceKeys, Vec<Diagnostic>> {
    evaluate_keys_with(&Evaluator::new(configuration, values), module, block).map(|(keys, _)| keys)
}

/// A block's instances' keys and `each.value`s (one keyless instance without `for_each`).
pub type InstanceKeys = Vec<(Option<String>, Value)>;

/// The instances a block's `for_each` read: every instance of the block depends on them, as
/// on what its own attributes read (so destroy deletes it first, and `--target` brings them).
type KeyDependencies = BTreeSet<String>;

/// Evaluates a block's `for_each` like `evaluate_keys`, with `evaluator` (which may record
/// what it reads); returns the keys and the instances the `for_each` read.
fn evaluate_keys_with(
    evaluator: &Evaluator<'_>,
    module: &ModuleInstance,
    block: &ResourceBlock,
) -> Result<(InstanceKeys, KeyDependencies), Vec<Diagnostic>> {
    let env_scope = module.name.is_empty();
    let mut key_dependencies = KeyDependencies::new();
    let keys: InstanceKeys = match &block.for_each {
        None => vec![(None, Value::Null)],
        Some(expression) => {
            let value = evaluator
                .value(
                    expression,
                    EvalScope {
                        module,
                        env_scope,
                        each: None,
                    },
                )
                .map_err(|diagnostic| vec![diagnostic])?;
            key_dependencies = evaluator.take_touched();
            let invalid = |message: String| {
                vec![
                    Diagnostic::new(DiagnosticCode::InvalidValue, expression.span(), message)
                        .with_hint(
                            "for_each takes a map, or a list of strings, known at plan time",
                        ),
                ]
            };
            if value.contains_unknown() {
                return Err(invalid(format!(
                    "{}: for_each depends on values known only after apply; it must be known at plan time",
                    instance_address(&module.name, &block.kind, &block.name, None)
                )));
            }
            match value {
                Value::Map(entries) => entries
                    .into_iter()
                    .map(|(key, value)| (Some(key), value))
                    .collect(),
                Value::List(items) => {
                    let mut keys = Vec::new();
                    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
                    let mut duplicates = Vec::new();
                    for (position, item) in items.into_iter().enumerate() {
                        let Some(key) = item.to_interpolation() else {
                            return Err(invalid("for_each over a list needs strings".into()));
                        };
                        // A repeated item (or two that become the same key) would silently
                        // collapse into one instance.
                        if let Some(first) = seen.insert(key.clone(), position) {
                            duplicates.push(
                                Diagnostic::new(
                                    DiagnosticCode::Duplicate,
                                    expression.span(),
                                    format!(
                                        "{}: for_each has the key {key:?} twice (items {first} and {position} of the list)",
                                        instance_address(&module.name, &block.kind, &block.name, None)
                                    ),
                                )
                                .with_hint("each item becomes one instance's key: remove the repeated item"),
                            );
                            continue;
                        }
                        keys.push((Some(key), item));
                    }
                    if !duplicates.is_empty() {
                        return Err(duplicates);
                    }
                    keys
                }
                other => {
                    return Err(invalid(format!(
                        "for_each must be a map or a list of strings (got {})",
                        other.type_name()
                    )));
                }
            }
        }
    };
    Ok((keys, key_dependencies))
}

/// Evaluates one instance of a resource block (`key` and `each_value` from `evaluate_keys`)
/// with the values known so far. Its dependencies are what its attributes read and its
/// `depends_on`, without what the block's `for_each` read (`evaluate_instances` adds that).
pub fn evaluate_instance(
    configuration: &Configuration,
    module: &ModuleInstance,
    block: &ResourceBlock,
    key: Option<&str>,
    each_value: &Value,
    values: &Values,
) -> Result<InstanceConfig, Vec<Diagnostic>> {
    let evaluator = Evaluator::new(configuration, values);
    evaluate_instance_with(
        &evaluator,
        module,
        block,
        key,
        each_value,
        &KeyDependencies::new(),
    )
}

/// Evaluates one instance like `evaluate_instance`, with a fresh `evaluator` (which may record
/// what it reads), depending also on `key_dependencies` (what the block's `for_each` read).
fn evaluate_instance_with(
    evaluator: &Evaluator<'_>,
    module: &ModuleInstance,
    block: &ResourceBlock,
    key: Option<&str>,
    each_value: &Value,
    key_dependencies: &KeyDependencies,
) -> Result<InstanceConfig, Vec<Diagnostic>> {
    let kind = kinds::find(&block.kind).ok_or_else(|| {
        vec![Diagnostic::new(
            DiagnosticCode::UnknownKind,
            &block.span,
            format!("unknown kind {}", block.kind),
        )]
    })?;
    let mut diagnostics = Vec::new();
    let address = instance_address(&module.name, &block.kind, &block.name, key);
    let scope = EvalScope {
        module,
        env_scope: module.name.is_empty(),
        each: key.map(|key| (key, each_value)),
    };
    let mut config = Attributes::new();
    for (field, expression) in &block.attributes {
        match evaluator.value(expression, scope) {
            Ok(Value::Null) => {}
            Ok(value) => {
                let spec = kind.fields().iter().find(|spec| spec.name == field);
                if let Some(spec) = spec.filter(|spec| !spec.field_type.accepts(&value)) {
                    diagnostics.push(
                        Diagnostic::new(
                            DiagnosticCode::InvalidValue,
                            expression.span(),
                            format!(
                                "{address}: `{field}` must be a {} (got {})",
                                spec.field_type.describe(),
                                value.type_name()
                            ),
                        )
                        .with_hint(format!(
                            "the fields of `{}` and their types: docs/kinds.md",
                            block.kind
                        )),
                    );
                }
                config.insert(field.clone(), value);
            }
            Err(diagnostic) => diagnostics.push(diagnostic),
        }
    }
    diagnostics.extend(crate::config::kind_diagnostics(
        kind, &address, block, &config,
    ));
    let mut dependencies = evaluator.take_touched();
    dependencies.extend(key_dependencies.iter().cloned());
    add_depends_on(&mut dependencies, module, block, evaluator.values);
    dependencies.remove(&address);
    if !diagnostics.is_empty() {
        return Err(diagnostics);
    }
    Ok(InstanceConfig {
        dependencies,
        address,
        block: BlockId::Resource {
            module: module.name.clone(),
            kind: block.kind.clone(),
            name: block.name.clone(),
        },
        key: key.map(String::from),
        kind,
        config,
        lifecycle: block.lifecycle.clone(),
        span: block.span.clone(),
    })
}

/// Adds the instances a block's `depends_on` names to `dependencies` (every instance of a
/// `for_each` block).
fn add_depends_on(
    dependencies: &mut BTreeSet<String>,
    module: &ModuleInstance,
    block: &ResourceBlock,
    values: &Values,
) {
    for (target, _) in &block.depends_on {
        if let Some((kind_name, name)) = target.split_once('.') {
            let key = (module.name.clone(), kind_name.to_string(), name.to_string());
            match values.resources.get(&key) {
                Some(BlockValue::Each(each)) => dependencies.extend(each.keys().map(|each_key| {
                    instance_address(&module.name, kind_name, name, Some(each_key))
                })),
                _ => {
                    dependencies.insert(instance_address(&module.name, kind_name, name, None));
                }
            }
        }
    }
}

/// Stores a block's instances' exported attributes where references find them.
pub fn record_block(
    values: &mut Values,
    block: &BlockId,
    is_each: bool,
    exported: BTreeMap<Option<String>, Attributes>,
) {
    let BlockId::Resource { module, kind, name } = block else {
        return;
    };
    let value = if is_each {
        BlockValue::Each(
            exported
                .into_iter()
                .filter_map(|(key, attributes)| key.map(|key| (key, Value::Map(attributes))))
                .collect(),
        )
    } else {
        BlockValue::Single(
            exported
                .into_values()
                .next()
                .map(Value::Map)
                .unwrap_or_default(),
        )
    };
    values
        .resources
        .insert((module.clone(), kind.clone(), name.clone()), value);
}

/// Stores one applied instance's exported attributes where references find them, beside the
/// instances of its block stored before.
pub fn record_instance(
    values: &mut Values,
    block: &BlockId,
    key: Option<&str>,
    exported: Attributes,
) {
    let BlockId::Resource { module, kind, name } = block else {
        return;
    };
    let slot = (module.clone(), kind.clone(), name.clone());
    match key {
        None => {
            values
                .resources
                .insert(slot, BlockValue::Single(Value::Map(exported)));
        }
        Some(key) => {
            let entry = values
                .resources
                .entry(slot)
                .or_insert_with(|| BlockValue::Each(BTreeMap::new()));
            match entry {
                BlockValue::Each(instances) => {
                    instances.insert(key.to_string(), Value::Map(exported));
                }
                BlockValue::Single(_) => {
                    *entry =
                        BlockValue::Each(BTreeMap::from([(key.to_string(), Value::Map(exported))]));
                }
            }
        }
    }
}

/// Evaluates an input or output block and stores its value.
pub fn evaluate_value_block(
    configuration: &Configuration,
    block: &BlockId,
    values: &mut Values,
) -> Result<(), Diagnostic> {
    let module = configuration
        .modules
        .iter()
        .find(|module| module.name == block.module());
    let Some(module) = module else { return Ok(()) };
    let root = &configuration.modules[0];
    let evaluator = Evaluator::new(configuration, values);
    match block {
        BlockId::Input { name, .. } => {
            let Some(input) = module.inputs.get(name) else {
                return Ok(());
            };
            let value = match module.arguments.get(name) {
                Some(argument) => evaluator.value(
                    argument,
                    EvalScope {
                        module: root,
                        env_scope: true,
                        each: None,
                    },
                )?,
                None => match &input.default {
                    Some(default) => evaluator.value(
                        default,
                        EvalScope {
                            module,
                            env_scope: false,
                            each: None,
                        },
                    )?,
                    None => Value::Null,
                },
            };
            if !input.input_type.accepts(&value) {
                let span = module
                    .arguments
                    .get(name)
                    .map_or(&input.span, |argument| argument.span());
                return Err(Diagnostic::new(
                    DiagnosticCode::InvalidValue,
                    span,
                    format!(
                        "module `{}` input `{name}` must be a {:?} (got {})",
                        module.name,
                        input.input_type,
                        value.type_name()
                    )
                    .to_lowercase(),
                )
                .with_hint(format!("the input is declared at {}", input.span)));
            }
            let sources = evaluator.take_touched();
            let key = (module.name.clone(), name.clone());
            values.input_sources.insert(key.clone(), sources);
            values.inputs.insert(key, value);
        }
        BlockId::Output { name, .. } => {
            let Some(output) = module.outputs.get(name) else {
                return Ok(());
            };
            let value = evaluator.value(
                &output.value,
                EvalScope {
                    module,
                    env_scope: module.name.is_empty(),
                    each: None,
                },
            )?;
            let sources = evaluator.take_touched();
            let key = (module.name.clone(), name.clone());
            values.output_sources.insert(key.clone(), sources);
            values.outputs.insert(key, value);
        }
        BlockId::Resource { .. } => {}
    }
    Ok(())
}

/// What a plan says of a replace or delete that deletion protection will stop.
const DELETION_GUARD_REASON: &str =
    "deletion_protection is on: apply will refuse until it is set false and applied";

/// Who claims what inside other resources: claim key to (address, exclusive, where declared).
type Claims = BTreeMap<String, Vec<(String, bool, Span)>>;

/// Returns an error for every exclusive claim that shares its key with another claim.
fn conflicting_claims(claims: &Claims) -> Vec<Diagnostic> {
    let mut diagnostics = Vec::new();
    for (key, claimants) in claims {
        if claimants.len() < 2 {
            continue;
        }
        for (address, _, span) in claimants.iter().filter(|(_, exclusive, _)| *exclusive) {
            let others: Vec<&str> = claimants
                .iter()
                .filter(|(other, ..)| other != address)
                .map(|(other, ..)| other.as_str())
                .collect();
            diagnostics.push(
                Diagnostic::new(
                    DiagnosticCode::InvalidValue,
                    span,
                    format!("{address} is authoritative for {key}, but {} also manage{} it", others.join(", "), if others.len() == 1 { "s" } else { "" }),
                )
                .with_hint("each would undo the other on every apply: keep the iam_binding and list the members there, or use only iam_member"),
            );
        }
    }
    diagnostics
}

/// Returns the output address used in plans and state: `name` or `module.m.name`.
pub fn output_address(module: &str, name: &str) -> String {
    if module.is_empty() {
        name.to_string()
    } else {
        format!("module.{module}.{name}")
    }
}

/// Refreshes the live objects of every resource in state, at most `parallelism` at a time.
pub async fn refresh(
    state: &State,
    client: &GcpClient,
    parallelism: usize,
) -> Result<BTreeMap<String, Option<Attributes>>, PlanError> {
    refresh_with_progress(state, client, parallelism, &NoProgress).await
}

/// Reads live objects like `refresh`, reporting each read to `progress`.
pub async fn refresh_with_progress(
    state: &State,
    client: &GcpClient,
    parallelism: usize,
    progress: &dyn Progress,
) -> Result<BTreeMap<String, Option<Attributes>>, PlanError> {
    let reads = state.resources.iter().map(|resource| async move {
        let kind = kinds::find(&resource.kind).ok_or_else(|| {
            format!(
                "{}: state holds kind `{}`, which this build does not know",
                resource.address, resource.kind
            )
        })?;
        kind.read(client, &resource.id, Some(resource))
            .await
            .map(|live| {
                progress.refreshed(&resource.address);
                (resource.address.clone(), live)
            })
            .map_err(|error| format!("{}: {error}", resource.address))
    });
    let results: Vec<Result<(String, Option<Attributes>), String>> = stream::iter(reads)
        .buffer_unordered(parallelism.max(1))
        .collect()
        .await;
    let mut live = BTreeMap::new();
    let mut errors = Vec::new();
    for result in results {
        match result {
            Ok((address, attributes)) => {
                live.insert(address, attributes);
            }
            Err(message) => errors.push(message),
        }
    }
    errors.sort();
    if errors.is_empty() {
        Ok(live)
    } else {
        Err(PlanError::Refresh(errors))
    }
}

/// Makes the plan for a configuration against a state.
pub async fn make_plan(
    configuration: &Configuration,
    state: &State,
    client: &GcpClient,
    options: &PlanOptions,
) -> Result<Plan, PlanError> {
    make_plan_with_progress(configuration, state, client, options, &NoProgress).await
}

/// Makes the plan like `make_plan`, reporting the refresh to `progress`.
pub async fn make_plan_with_progress(
    configuration: &Configuration,
    state: &State,
    client: &GcpClient,
    options: &PlanOptions,
    progress: &dyn Progress,
) -> Result<Plan, PlanError> {
    let refreshed = refresh_for_plan(configuration, state, client, options, progress).await?;
    plan_refreshed(
        configuration,
        state,
        &refreshed,
        options,
        CheckedConfiguration::default(),
    )
}

/// What a plan is made from once the objects in state were read: the block graph and the live
/// attributes of every resource.
pub struct Refreshed {
    graph: DependencyGraph<BlockId>,
    live: BTreeMap<String, Option<Attributes>>,
}

/// The first half of `make_plan`: checks the block graph, refuses an emptied configuration, and
/// reads every object in state (unless `options.refresh` is off). It needs no fingerprint key,
/// so a caller may read the key meanwhile and pass it to `plan_refreshed`.
pub async fn refresh_for_plan(
    configuration: &Configuration,
    state: &State,
    client: &GcpClient,
    options: &PlanOptions,
    progress: &dyn Progress,
) -> Result<Refreshed, PlanError> {
    let graph = block_graph(configuration)?;
    // Before refreshing: no need to read anything to refuse.
    refuse_empty_configuration(configuration, state, options)?;
    // Without a refresh nothing is live: every resource is compared with its recorded
    // attributes, which the planner reads from the state itself (no copy of them all).
    let live = if options.refresh {
        progress.refresh_started(state.resources.len());
        let live = refresh_with_progress(state, client, options.parallelism, progress).await;
        progress.refresh_finished();
        live?
    } else {
        BTreeMap::new()
    };
    Ok(Refreshed { graph, live })
}

/// The second half of `make_plan`: evaluates the configuration and compares it with what
/// `refresh_for_plan` read, fingerprinting secret values with `options.fingerprint_key`, and
/// taking over what the check of this very configuration already evaluated (see
/// `CheckedConfiguration`; the default when there was no check).
pub fn plan_refreshed(
    configuration: &Configuration,
    state: &State,
    refreshed: &Refreshed,
    options: &PlanOptions,
    checked: CheckedConfiguration,
) -> Result<Plan, PlanError> {
    plan_with_live_checked(
        configuration,
        state,
        &refreshed.graph,
        &refreshed.live,
        options,
        checked,
    )
}

/// Returns an error for each `ignore_changes` entry that names no field of the resource: a typo
/// there would silently ignore nothing.
fn unknown_ignored_fields(instance: &InstanceConfig, change: &ResourceChange) -> Vec<Diagnostic> {
    if instance.lifecycle.ignore_changes.is_empty() {
        return Vec::new();
    }
    let mut known: Vec<&str> = instance
        .kind
        .fields()
        .iter()
        .map(|spec| spec.name)
        .collect();
    if let Some(after) = &change.after {
        known.extend(after.keys().map(String::as_str));
    }
    known.sort_unstable();
    known.dedup();
    instance
        .lifecycle
        .ignore_changes
        .iter()
        .filter(|entry| {
            let root = entry.split(['.', '[']).next().unwrap_or_default();
            !known.contains(&root)
        })
        .map(|entry| {
            let suggestion = crate::config::load::closest(entry, known.iter().copied())
                .map(|field| format!("did you mean `{field}`? "))
                .unwrap_or_default();
            Diagnostic::new(
                DiagnosticCode::InvalidValue,
                &instance.span,
                format!(
                    "{}: lifecycle.ignore_changes names `{entry}`, which is not a field of {}",
                    instance.address,
                    instance.kind.name()
                ),
            )
            .with_hint(format!("{suggestion}fields: {}", known.join(", ")))
        })
        .collect()
}

/// Refuses a plan that would destroy everything in state because the configuration declares
/// nothing (an emptied or truncated env.toml), unless destroying is what was asked for.
fn refuse_empty_configuration(
    configuration: &Configuration,
    state: &State,
    options: &PlanOptions,
) -> Result<(), PlanError> {
    let declared = configuration
        .modules
        .iter()
        .map(|module| module.resources.len())
        .sum::<usize>();
    if declared > 0 || state.resources.is_empty() || options.destroy || options.allow_empty_config {
        return Ok(());
    }
    let env = &configuration.env.name;
    let count = state.resources.len();
    Err(PlanError::Unsafe {
        message: format!(
            "{}:1:1: error: the configuration declares no resources, but the state of `{env}` holds {count}: this plan would destroy {}",
            configuration.env.file.display_path,
            if count == 1 { "it" } else { "all of them" }
        ),
        hint: format!(
            "if the file lost its blocks, restore it; to destroy everything run `infra destroy --env {env}`; to apply an empty configuration on purpose pass --allow-empty-config"
        ),
    })
}

/// Refuses a `--replace` address that names no resource of the plan (configuration or state).
fn check_replace_addresses(
    changes: &[ResourceChange],
    options: &PlanOptions,
    env: &str,
) -> Result<(), PlanError> {
    let known: Vec<&str> = changes
        .iter()
        .map(|change| change.address.as_str())
        .collect();
    let unknown: Vec<&String> = options
        .replace
        .iter()
        .filter(|address| !known.contains(&address.as_str()))
        .collect();
    let Some(first) = unknown.first() else {
        return Ok(());
    };
    let suggestion = crate::config::load::closest(first, known.iter().copied());
    Err(PlanError::Unsafe {
        message: format!(
            "--replace {}: no resource with {} address in the configuration or the state of `{env}`",
            unknown
                .iter()
                .map(|address| address.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            if unknown.len() == 1 { "this" } else { "these" }
        ),
        hint: match suggestion {
            Some(suggestion) => {
                format!("did you mean `{suggestion}`? (`infra state list` shows the addresses)")
            }
            None if known.is_empty() => "this environment has no resources yet".into(),
            None => format!(
                "addresses look like {}; `infra state list` shows them",
                known.iter().take(3).copied().collect::<Vec<_>>().join(", ")
            ),
        },
    })
}

/// Makes the plan from already refreshed live attributes (pure: no I/O beyond `file()`).
pub fn plan_with_live(
    configuration: &Configuration,
    state: &State,
    graph: &DependencyGraph<BlockId>,
    live: &BTreeMap<String, Option<Attributes>>,
    options: &PlanOptions,
) -> Result<Plan, PlanError> {
    plan_with_live_checked(
        configuration,
        state,
        graph,
        live,
        options,
        CheckedConfiguration::default(),
    )
}

/// Makes the plan like `plan_with_live`, taking the instances `checked` (the check of this
/// very configuration) already evaluated instead of evaluating them again.
pub fn plan_with_live_checked(
    configuration: &Configuration,
    state: &State,
    graph: &DependencyGraph<BlockId>,
    live: &BTreeMap<String, Option<Attributes>>,
    options: &PlanOptions,
    mut checked: CheckedConfiguration,
) -> Result<Plan, PlanError> {
    refuse_empty_configuration(configuration, state, options)?;
    let Walked {
        mut changes,
        mut drift,
        values,
        named_objects,
        evaluated_again,
    } = walk(
        configuration,
        state,
        graph,
        live,
        options,
        Purpose::Plan,
        &mut checked,
    )?;
    if evaluated_again > 0 {
        tracing::debug!(
            "{evaluated_again} instances read values other than the check found, so were evaluated again"
        );
    }
    let mut diagnostics = Vec::new();
    // Only asked whether it holds an address: hashing beats comparing addresses that share
    // long prefixes.
    let configured: HashSet<&str> = changes
        .iter()
        .map(|change| change.address.as_str())
        .collect();
    let mut orphans = Vec::new();
    for resource in &state.resources {
        if configured.contains(resource.address.as_str()) {
            continue;
        }
        // A block renamed without `state mv`: deleting the old address would destroy the very
        // object the new one names.
        if !options.destroy
            && let Some((address, span)) =
                named_objects.get(&(resource.kind.clone(), resource.id.clone()))
        {
            diagnostics.push(
                Diagnostic::new(
                    DiagnosticCode::Duplicate,
                    span,
                    format!(
                        "{address} names {} `{}`, which the state holds as {}: this plan would delete it as {} and leave {address} without it",
                        resource.kind, resource.id, resource.address, resource.address
                    ),
                )
                .with_hint(format!(
                    "if the block was renamed, move its state: `infra state mv --env {} '{}' '{address}'`",
                    configuration.env.name, resource.address
                )),
            );
            continue;
        }
        let live_attributes = match live.get(&resource.address) {
            Some(None) => None,
            Some(Some(attributes)) => Some(attributes.clone()),
            None => Some(resource.attributes.clone()),
        };
        let sensitive = kinds::find(&resource.kind)
            .map(sensitive_fields)
            .unwrap_or_default();
        orphans.push(ResourceChange {
            address: resource.address.clone(),
            kind: resource.kind.clone(),
            action: Action::Delete,
            id: Some(resource.id.clone()),
            reason: Some(if live_attributes.is_none() {
                "already gone; removed from state".into()
            } else if kinds::find(&resource.kind)
                .is_some_and(|kind| kind.deletion_guard(resource).is_some())
            {
                DELETION_GUARD_REASON.into()
            } else {
                "no longer in the configuration".into()
            }),
            before: Some(live_attributes.unwrap_or_else(|| resource.attributes.clone())),
            after: None,
            changed: Vec::new(),
            replace_paths: Vec::new(),
            update_mask: Vec::new(),
            sensitive,
            dependencies: resource.dependencies.clone(),
        });
    }
    if !diagnostics.is_empty() {
        return Err(PlanError::Config(ConfigError { diagnostics }));
    }
    changes.extend(orphans);
    // An older build's salt never travels into a plan: it would let a plan file confirm guesses.
    for change in &mut changes {
        for attributes in [&mut change.before, &mut change.after]
            .into_iter()
            .flatten()
        {
            attributes.remove(LEGACY_SALT_ATTRIBUTE);
        }
    }
    changes.sort_by(|left, right| left.address.cmp(&right.address));
    check_replace_addresses(&changes, options, &configuration.env.name)?;
    drift.sort_by(|left: &Drift, right: &Drift| left.address.cmp(&right.address));
    let outputs = plan_outputs(configuration, state, &values, options.destroy);
    Ok(Plan {
        format: PLAN_FORMAT,
        env: configuration.env.name.clone(),
        lineage: state.lineage.clone(),
        serial: state.serial,
        config_digest: config_digest(configuration),
        destroy: options.destroy,
        refresh_only: false,
        targets: Vec::new(),
        changes,
        drift,
        outputs,
    })
}

/// Checks the configuration as a plan from nothing would: every block evaluated against an
/// empty state, and every error such a plan reports (expressions, types, each kind's limits,
/// for_each keys, two addresses naming one object, conflicting claims, `ignore_changes`) —
/// without keeping the changes or building the plan. Pure: no I/O beyond `file()`. Returns
/// what the plan that follows can take over from it.
pub fn check_configuration(
    configuration: &Configuration,
    graph: &DependencyGraph<BlockId>,
) -> Result<CheckedConfiguration, PlanError> {
    let empty = State::new(&configuration.env.name);
    let mut checked = CheckedConfiguration::default();
    walk(
        configuration,
        &empty,
        graph,
        &BTreeMap::new(),
        &PlanOptions::default(),
        Purpose::Check,
        &mut checked,
    )?;
    Ok(checked)
}

/// What the check of a configuration leaves for the plan that follows: every evaluated
/// instance, so that the plan evaluates none a second time. A resource block that reads no
/// resource, directly or through module inputs and outputs, evaluates the same against any
/// state: the plan takes its instances as they are. An instance that reads resources comes
/// with what it read (`reads.rs`); the plan takes it where every read finds the same value
/// again (a secret's name, known before it exists), and evaluates it again where one does not
/// (an attribute known only once applied). Valid only with the configuration it was checked
/// from.
#[derive(Default)]
pub struct CheckedConfiguration {
    instances: BTreeMap<BlockId, Vec<InstanceConfig>>,
    dependent: BTreeMap<BlockId, CheckedBlock>,
}

/// A checked block that reads resources: what its `for_each` read, and its instances.
struct CheckedBlock {
    key_reads: Vec<Read>,
    instances: Vec<CheckedInstance>,
}

/// A checked instance of a block that reads resources, with what evaluating it read (`None`
/// when it read a whole block through `[*]`: such reads are not kept, and the instance is
/// evaluated again).
struct CheckedInstance {
    instance: InstanceConfig,
    each_value: Value,
    reads: Option<Vec<Read>>,
}

/// An instance evaluated while checking, and what it read (see `CheckedInstance`).
struct Recorded {
    each_value: Value,
    reads: Option<Vec<Read>>,
}

/// A block's instances evaluated while checking, with what its `for_each` read and what each
/// instance read (in the instances' order).
struct RecordedBlock {
    instances: Vec<InstanceConfig>,
    key_reads: Vec<Read>,
    recorded: Vec<Recorded>,
}

/// Evaluates a block's instances like `evaluate_instances`, recording what its `for_each`
/// and each instance read, for the plan that follows the check.
fn evaluate_instances_recorded(
    configuration: &Configuration,
    module: &ModuleInstance,
    block: &ResourceBlock,
    values: &Values,
) -> Result<RecordedBlock, Vec<Diagnostic>> {
    let key_evaluator = Evaluator::recording(configuration, values);
    let (keys, key_dependencies) = evaluate_keys_with(&key_evaluator, module, block)?;
    let key_reads = key_evaluator.take_reads();
    let mut instances = Vec::with_capacity(keys.len());
    let mut recorded = Vec::with_capacity(keys.len());
    let mut diagnostics = Vec::new();
    for (key, each_value) in keys {
        let evaluator = Evaluator::recording(configuration, values);
        match evaluate_instance_with(
            &evaluator,
            module,
            block,
            key.as_deref(),
            &each_value,
            &key_dependencies,
        ) {
            Ok(instance) => {
                instances.push(instance);
                // A splat's value holds every instance of its block: kept for each reader, an
                // N-instance block reading an M-instance one would hold N × M values through
                // the lock and the refresh, to save no more than the replay costs.
                let reads = evaluator.take_reads();
                let reads = (!reads.iter().any(Read::reads_every_instance)).then_some(reads);
                recorded.push(Recorded { each_value, reads });
            }
            Err(found) => diagnostics.extend(found),
        }
    }
    if diagnostics.is_empty() {
        Ok(RecordedBlock {
            instances,
            key_reads,
            recorded,
        })
    } else {
        Err(diagnostics)
    }
}

/// Returns a checked block's instances for the plan: each one taken over when its reads find
/// the same values in `values`, evaluated again when not; the whole block evaluated again when
/// its `for_each` read something else.
fn take_over_instances(
    configuration: &Configuration,
    module: &ModuleInstance,
    block: &ResourceBlock,
    values: &Values,
    checked: CheckedBlock,
    evaluated_again: &mut usize,
) -> Result<Vec<InstanceConfig>, Vec<Diagnostic>> {
    let mut key_dependencies = KeyDependencies::new();
    if !checked
        .key_reads
        .iter()
        .all(|read| read.replay(values, &mut key_dependencies))
    {
        *evaluated_again += checked.instances.len();
        return evaluate_instances(configuration, module, block, values);
    }
    let mut instances = Vec::with_capacity(checked.instances.len());
    let mut diagnostics = Vec::new();
    for checked in checked.instances {
        if reads_the_same(&checked, module, block, values, &key_dependencies) {
            instances.push(checked.instance);
            continue;
        }
        *evaluated_again += 1;
        match evaluate_instance_with(
            &Evaluator::new(configuration, values),
            module,
            block,
            checked.instance.key.as_deref(),
            &checked.each_value,
            &key_dependencies,
        ) {
            Ok(instance) => instances.push(instance),
            Err(found) => diagnostics.extend(found),
        }
    }
    if diagnostics.is_empty() {
        Ok(instances)
    } else {
        Err(diagnostics)
    }
}

/// Returns true when evaluating a checked instance again with `values` would read what it
/// read, so compute the same configuration and depend on the same instances (with
/// `key_dependencies`, what its block's `for_each` read in the replay).
fn reads_the_same(
    checked: &CheckedInstance,
    module: &ModuleInstance,
    block: &ResourceBlock,
    values: &Values,
    key_dependencies: &KeyDependencies,
) -> bool {
    let Some(reads) = &checked.reads else {
        return false;
    };
    let mut dependencies = key_dependencies.clone();
    if !reads
        .iter()
        .all(|read| read.replay(values, &mut dependencies))
    {
        return false;
    }
    add_depends_on(&mut dependencies, module, block, values);
    dependencies.remove(&checked.instance.address);
    dependencies == checked.instance.dependencies
}

/// What a walk over the blocks is for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Purpose {
    /// Make the plan.
    Plan,
    /// Only find the configuration's errors: no change is kept.
    Check,
}

/// What a walk over the blocks found.
struct Walked {
    /// The change of every configured instance (none when only checking).
    changes: Vec<ResourceChange>,
    drift: Vec<Drift>,
    values: Values,
    /// The cloud object each instance names, where known: (kind, id) to (address, place).
    named_objects: HashMap<(String, String), (String, Span)>,
    /// How many instances the check had evaluated that read something else now, so were
    /// evaluated again.
    evaluated_again: usize,
}

/// Walks the blocks in dependency order, evaluating and diffing each instance, and stops at
/// the first configuration errors.
fn walk(
    configuration: &Configuration,
    state: &State,
    graph: &DependencyGraph<BlockId>,
    live: &BTreeMap<String, Option<Attributes>>,
    options: &PlanOptions,
    purpose: Purpose,
    // Checking: receives every evaluated instance. Planning: the instances the check left,
    // taken instead of evaluating them again where they would evaluate the same.
    checked: &mut CheckedConfiguration,
) -> Result<Walked, PlanError> {
    let order = graph
        .topological_order()
        .map_err(|_| PlanError::Refused("dependency cycle".into()))?;
    let mut values = Values::default();
    let mut diagnostics = Vec::new();
    let mut changes: Vec<ResourceChange> = Vec::new();
    let mut drift = Vec::new();
    let mut claims = Claims::new();
    // Only looked up, never listed: hashing beats comparing ids that share long prefixes
    // (`projects/P/secrets/…`) at every level of a tree, twice per instance.
    let mut planned_ids: HashMap<String, Action> = HashMap::new();
    // The cloud object each instance names, where its name is known now: two addresses naming
    // one object would share (and, deleting either, destroy) it.
    let mut named_objects: HashMap<(String, String), (String, Span)> = HashMap::new();
    // A block whose dependency already failed is skipped: its own errors would only repeat.
    let mut failed: BTreeSet<BlockId> = BTreeSet::new();
    // The blocks whose value depends on no resource (so on no state), in dependency order.
    let mut stateless: BTreeSet<BlockId> = BTreeSet::new();
    let mut evaluated_again = 0;
    for block in &order {
        let dependencies = graph.dependencies(block);
        if purpose == Purpose::Check
            && dependencies.iter().all(|dependency| {
                !matches!(dependency, BlockId::Resource { .. }) && stateless.contains(dependency)
            })
        {
            stateless.insert(block.clone());
        }
        if dependencies
            .iter()
            .any(|dependency| failed.contains(dependency))
        {
            failed.insert(block.clone());
            continue;
        }
        let BlockId::Resource { module, kind, name } = block else {
            if let Err(diagnostic) = evaluate_value_block(configuration, block, &mut values) {
                diagnostics.push(diagnostic);
                failed.insert(block.clone());
            }
            continue;
        };
        let Some(module_instance) = configuration
            .modules
            .iter()
            .find(|candidate| &candidate.name == module)
        else {
            continue;
        };
        let Some(resource_block) = module_instance.resource(kind, name) else {
            continue;
        };
        let keep = purpose == Purpose::Check;
        let is_stateless = stateless.contains(block);
        let mut key_reads = Vec::new();
        let mut recorded = Vec::new();
        let evaluated = if let Some(instances) = checked.instances.remove(block) {
            Ok(instances)
        } else if let Some(dependent) = checked.dependent.remove(block) {
            take_over_instances(
                configuration,
                module_instance,
                resource_block,
                &values,
                dependent,
                &mut evaluated_again,
            )
        } else if keep && !is_stateless {
            evaluate_instances_recorded(configuration, module_instance, resource_block, &values)
                .map(|block| {
                    key_reads = block.key_reads;
                    recorded = block.recorded;
                    block.instances
                })
        } else {
            evaluate_instances(configuration, module_instance, resource_block, &values)
        };
        let instances = match evaluated {
            Ok(instances) => instances,
            Err(found) => {
                diagnostics.extend(found);
                failed.insert(block.clone());
                continue;
            }
        };
        let mut recorded = recorded.into_iter();
        let mut kept = Vec::new();
        let mut kept_dependent = Vec::new();
        // Only what another block reads is recorded: exported attributes of a block nothing
        // references would be computed and kept for nothing (most blocks are leaves).
        let referenced = !graph.dependents(block).is_empty();
        let mut exported = BTreeMap::new();
        // Each instance is dropped once planned (unless kept for the plan after a check): its
        // evaluated configuration is not kept alongside the changes of every other instance.
        for owned in instances {
            let instance = &owned;
            for (key, exclusive) in instance.kind.claims(&instance.config) {
                claims.entry(key).or_default().push((
                    instance.address.clone(),
                    exclusive,
                    instance.span.clone(),
                ));
            }
            let prior = state.resource(&instance.address);
            let context = kind_context(
                configuration,
                &instance.address,
                &state.lineage,
                options.fingerprint_key.as_ref(),
                prior,
            );
            let resource_id = instance.kind.resource_id(&context, &instance.config);
            if let Some(id) = &resource_id {
                match named_objects.entry((instance.kind.name().to_string(), id.clone())) {
                    Entry::Occupied(other) => {
                        let (kind_name, id) = other.key();
                        let (other_address, other_span) = other.get();
                        diagnostics.push(
                            Diagnostic::new(
                                DiagnosticCode::Duplicate,
                                &instance.span,
                                format!(
                                    "{} and {other_address} (at {other_span}) name the same {kind_name} `{id}`",
                                    instance.address
                                ),
                            )
                            .with_hint("each would overwrite the other, and deleting either destroys both: give each its own name, or keep one block"),
                        );
                    }
                    Entry::Vacant(vacant) => {
                        vacant.insert((instance.address.clone(), instance.span.clone()));
                    }
                }
            }
            match plan_instance(
                instance,
                prior,
                live.get(&instance.address),
                &context,
                options,
                &planned_ids,
                &mut drift,
            ) {
                Ok(mut change) => {
                    change.id = resource_id.or_else(|| prior.map(|prior| prior.id.clone()));
                    diagnostics.extend(unknown_ignored_fields(instance, &change));
                    if let Some(id) = &change.id {
                        planned_ids.insert(id.clone(), change.action);
                    }
                    if referenced {
                        // A change only in deferred bookkeeping writes nothing to the object.
                        let deferred_only = change.action == Action::Update
                            && instance.kind.deferred_field().is_some_and(|field| {
                                change
                                    .changed
                                    .iter()
                                    .all(|path| super::diff::top_field(path) == field)
                            });
                        let changing = change.action != Action::NoOp && !deferred_only;
                        exported.insert(
                            instance.key.clone(),
                            instance
                                .kind
                                .exported(&context, &instance.config, prior, changing),
                        );
                    }
                    change.dependencies = instance.dependencies.iter().cloned().collect();
                    if options.destroy {
                        change = destroy_change(change, prior);
                    }
                    if let Some(prior) =
                        prior.filter(|_| matches!(change.action, Action::Replace | Action::Delete))
                        && instance.kind.deletion_guard(prior).is_some()
                    {
                        change.reason = Some(DELETION_GUARD_REASON.into());
                    }
                    if matches!(change.action, Action::Replace | Action::Delete)
                        && instance.lifecycle.prevent_destroy
                    {
                        diagnostics.push(
                            Diagnostic::new(
                                DiagnosticCode::InvalidValue,
                                &instance.span,
                                format!("{}: the plan would destroy it, but lifecycle.prevent_destroy is set", instance.address),
                            )
                            .with_hint("remove prevent_destroy first if destroying it is really meant"),
                        );
                    }
                    if purpose == Purpose::Plan {
                        changes.push(change);
                    }
                }
                Err(diagnostic) => diagnostics.push(diagnostic),
            }
            if keep && is_stateless {
                kept.push(owned);
            } else if let Some(Recorded { each_value, reads }) = recorded.next() {
                kept_dependent.push(CheckedInstance {
                    instance: owned,
                    each_value,
                    reads,
                });
            }
        }
        if keep && is_stateless {
            checked.instances.insert(block.clone(), kept);
        } else if keep {
            checked.dependent.insert(
                block.clone(),
                CheckedBlock {
                    key_reads,
                    instances: kept_dependent,
                },
            );
        }
        if !referenced {
            continue;
        }
        record_block(
            &mut values,
            block,
            resource_block.for_each.is_some(),
            exported,
        );
    }
    diagnostics.extend(conflicting_claims(&claims));
    if !diagnostics.is_empty() {
        return Err(PlanError::Config(ConfigError { diagnostics }));
    }
    Ok(Walked {
        changes,
        drift,
        values,
        named_objects,
        evaluated_again,
    })
}

fn sensitive_fields(kind: &dyn Kind) -> Vec<String> {
    kind.fields()
        .iter()
        .filter(|spec| spec.sensitive)
        .map(|spec| spec.name.to_string())
        .collect()
}

fn destroy_change(mut change: ResourceChange, prior: Option<&StateResource>) -> ResourceChange {
    match prior {
        Some(prior) => {
            change.action = Action::Delete;
            change.before = change.before.or_else(|| Some(prior.attributes.clone()));
            change.after = None;
            change.reason = None;
            change.changed.clear();
            change.replace_paths.clear();
            change.update_mask.clear();
        }
        None => {
            change.action = Action::NoOp;
            change.after = None;
        }
    }
    change
}

/// Decides one instance's change; its `id` is left for the caller, which knows the
/// instance's resource id already.
fn plan_instance(
    instance: &InstanceConfig,
    prior: Option<&StateResource>,
    live: Option<&Option<Attributes>>,
    context: &KindContext,
    options: &PlanOptions,
    planned_ids: &HashMap<String, Action>,
    drift: &mut Vec<Drift>,
) -> Result<ResourceChange, Diagnostic> {
    let kind = instance.kind;
    let desired = kind
        .desired(context, &instance.config, prior)
        .map_err(|error| {
            Diagnostic::new(
                DiagnosticCode::InvalidValue,
                &instance.span,
                format!("{}: {error}", instance.address),
            )
        })?;
    let mut change = ResourceChange {
        address: instance.address.clone(),
        kind: kind.name().to_string(),
        action: Action::NoOp,
        id: None,
        reason: None,
        before: None,
        after: None,
        changed: Vec::new(),
        replace_paths: Vec::new(),
        update_mask: Vec::new(),
        sensitive: sensitive_fields(kind),
        dependencies: Vec::new(),
    };
    let live_attributes = match (prior, live) {
        (None, _) => None,
        // An intent record whose object never came to be: created now, and no drift.
        (Some(prior), Some(None)) if prior.status == ResourceStatus::Creating => None,
        (Some(_), Some(None)) => {
            drift.push(Drift {
                address: instance.address.clone(),
                kind: "deleted".into(),
                paths: Vec::new(),
            });
            None
        }
        (Some(prior), Some(Some(attributes)))
            if prior.status == ResourceStatus::Creating && !owned_here(context, attributes) =>
        {
            // Only an intent was recorded, and the object at that id is not this state's: it
            // is not ours to update; creating it meets the owner check and stops there.
            None
        }
        (Some(prior), Some(Some(attributes))) => {
            let paths = changed_paths(&prior_comparable(&desired, &prior.attributes), attributes);
            if !paths.is_empty() && prior.status == ResourceStatus::Created {
                drift.push(Drift {
                    address: instance.address.clone(),
                    kind: "changed".into(),
                    paths,
                });
            }
            Some(attributes)
        }
        (Some(prior), None) => Some(&prior.attributes),
    };
    let Some(live_attributes) = live_attributes else {
        change.action = Action::Create;
        change.reason = prior.map(|prior| {
            if prior.status == ResourceStatus::Creating
                && crate::gcp::kinds::is_pending_id(&prior.id)
            {
                // Google names the object: only a list finds it, and apply looks there first.
                "an interrupted create may have made it: apply looks for it first".into()
            } else if prior.status == ResourceStatus::Creating {
                "an interrupted create never made it".into()
            } else {
                "deleted outside infra".into()
            }
        });
        change.after = Some(desired);
        return Ok(change);
    };
    let changed: Vec<String> = changed_paths(&desired, live_attributes)
        .into_iter()
        .filter(|path| !is_ignored(path, &instance.lifecycle.ignore_changes))
        .collect();
    change.before = Some(live_attributes.clone());
    change.after = Some(desired);
    let force_new: Vec<String> = changed
        .iter()
        .filter(|path| {
            kind.fields()
                .iter()
                .any(|spec| spec.force_new && spec.name == super::diff::top_field(path))
        })
        .cloned()
        .collect();
    change.changed = changed.clone();
    let container_recreated = kind
        .container(&instance.config)
        .and_then(|container| planned_ids.get(&container))
        .is_some_and(|action| matches!(action, Action::Create | Action::Replace));
    if options.replace.contains(&instance.address) {
        change.action = Action::Replace;
        change.reason = Some("replacement requested with --replace".into());
    } else if !force_new.is_empty() {
        change.action = Action::Replace;
        change.replace_paths = force_new;
    } else if container_recreated {
        change.action = Action::Create;
        change.reason = Some("the resource it lives in is being created".into());
    } else if !changed.is_empty() {
        change.action = Action::Update;
        change.update_mask = kind.update_mask(&changed);
    }
    Ok(change)
}

/// Returns true when a live object's ownership labels (for kinds that have `labels`) name
/// this environment and state; kinds without labels cannot tell, and pass.
fn owned_here(context: &KindContext, live: &Attributes) -> bool {
    let Some(labels) = live.get("labels").and_then(Value::as_map) else {
        return true;
    };
    let label = |key: &str| labels.get(key).and_then(Value::as_str);
    label(kinds::ENV_LABEL) == Some(kinds::label_value(&context.env_name).as_str())
        && label(kinds::LINEAGE_LABEL) == Some(kinds::label_value(&context.lineage).as_str())
}

/// The prior attributes restricted to what the configuration compares, for drift detection.
fn prior_comparable(desired: &Attributes, prior: &Attributes) -> Attributes {
    desired
        .keys()
        .filter_map(|field| prior.get(field).map(|value| (field.clone(), value.clone())))
        .collect()
}

fn plan_outputs(
    configuration: &Configuration,
    state: &State,
    values: &Values,
    destroy: bool,
) -> BTreeMap<String, OutputChange> {
    let mut outputs = BTreeMap::new();
    for module in &configuration.modules {
        for (name, declaration) in &module.outputs {
            let address = output_address(&module.name, name);
            let before = state
                .outputs
                .get(&address)
                .map(|output| output.value.clone());
            let after = if destroy {
                None
            } else {
                values
                    .outputs
                    .get(&(module.name.clone(), name.clone()))
                    .cloned()
            };
            let action = match (&before, &after) {
                (None, Some(_)) => Action::Create,
                (Some(_), None) => Action::Delete,
                (Some(old), Some(new)) if old != new => Action::Update,
                _ => Action::NoOp,
            };
            outputs.insert(
                address,
                OutputChange {
                    action,
                    before,
                    after,
                    sensitive: declaration.sensitive,
                },
            );
        }
    }
    for (address, output) in &state.outputs {
        outputs
            .entry(address.clone())
            .or_insert_with(|| OutputChange {
                action: Action::Delete,
                before: Some(output.value.clone()),
                after: None,
                sensitive: output.sensitive,
            });
    }
    outputs
}

/// Returns the SHA-256 over every configuration file's path and text.
pub fn config_digest(configuration: &Configuration) -> String {
    let mut hasher = Sha256::new();
    let mut files: Vec<_> = configuration.files.iter().collect();
    files.sort_by(|left, right| left.display_path.cmp(&right.display_path));
    for file in files {
        hasher.update(file.display_path.as_bytes());
        hasher.update([0]);
        hasher.update(file.text.as_bytes());
        hasher.update([0]);
    }
    format!("sha256:{}", hex::encode(hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::ResourceStatus;

    const HEADER: &str = "[env]\nname = \"t\"\nproject = \"p\"\nregion = \"r\"\n";

    /// Loads `body` (after the [env] header) and plans it against `state` without refreshing.
    fn plan(body: &str, state: &State, options: &PlanOptions) -> Result<Plan, PlanError> {
        let root = tempfile::tempdir().expect("tempdir");
        let path = root.path().join("envs/t/env.toml");
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, format!("{HEADER}{body}")).expect("write");
        let configuration = crate::config::load(root.path(), "t").expect("loads");
        let graph = block_graph(&configuration).expect("graph");
        let live = state
            .resources
            .iter()
            .map(|resource| (resource.address.clone(), Some(resource.attributes.clone())))
            .collect();
        plan_with_live(&configuration, state, &graph, &live, options)
    }

    fn messages(result: Result<Plan, PlanError>) -> String {
        match result {
            Ok(_) => panic!("the plan was expected to fail"),
            Err(error) => error.to_string(),
        }
    }

    fn state_with_secret(address: &str) -> State {
        let mut state = State::new("t");
        state.resources.push(StateResource {
            address: address.into(),
            kind: "secret".into(),
            id: "projects/p/secrets/S".into(),
            status: ResourceStatus::Created,
            attributes: Attributes::new(),
            dependencies: Vec::new(),
        });
        state
    }

    /// Loads `body` and runs the configuration check on it.
    fn check(body: &str) -> Result<(), PlanError> {
        let root = tempfile::tempdir().expect("tempdir");
        let path = root.path().join("envs/t/env.toml");
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, format!("{HEADER}{body}")).expect("write");
        let configuration = crate::config::load(root.path(), "t").expect("loads");
        let graph = block_graph(&configuration).expect("graph");
        check_configuration(&configuration, &graph).map(drop)
    }

    #[test]
    fn a_plan_taking_over_the_check_s_instances_is_the_plan_made_without_them() {
        let body = "[vars]\nids = [\"a\", \"b\"]\n[resource.secret.s]\nfor_each = \"${var.ids}\"\nsecret_id = \"s-${each.key}\"\nlabels = { team = \"core\" }\n[resource.iam_member.m]\nparent = \"${secret.s[\\\"a\\\"].name}\"\nrole = \"roles/viewer\"\nmember = \"user:x@y.z\"\n";
        let root = tempfile::tempdir().expect("tempdir");
        let path = root.path().join("envs/t/env.toml");
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, format!("{HEADER}{body}")).expect("write");
        let configuration = crate::config::load(root.path(), "t").expect("loads");
        let graph = block_graph(&configuration).expect("graph");
        let checked = check_configuration(&configuration, &graph).expect("valid");
        let block = |kind: &str, name: &str| BlockId::Resource {
            module: String::new(),
            kind: kind.into(),
            name: name.into(),
        };
        // The secrets read only a variable; the member reads a secret, so depends on state.
        assert_eq!(
            checked.instances.keys().cloned().collect::<Vec<_>>(),
            vec![block("secret", "s")]
        );
        let mut state = State::new("t");
        state.upsert(StateResource {
            address: "secret.s[\"a\"]".into(),
            kind: "secret".into(),
            id: "projects/p/secrets/s-a".into(),
            status: ResourceStatus::Created,
            attributes: Attributes::from([("secret_id".to_string(), Value::string("s-a"))]),
            dependencies: Vec::new(),
        });
        let options = PlanOptions::default();
        let live = BTreeMap::new();
        let taken =
            plan_with_live_checked(&configuration, &state, &graph, &live, &options, checked)
                .expect("plans");
        let fresh = plan_with_live(&configuration, &state, &graph, &live, &options).expect("plans");
        assert_eq!(taken.changes.len(), 3);
        assert_eq!(
            serde_json::to_string(&taken).expect("json"),
            serde_json::to_string(&fresh).expect("json")
        );
    }

    /// Loads `body` (after the [env] header) into a fresh project, keeping its directory.
    fn load(body: &str) -> (tempfile::TempDir, Configuration, DependencyGraph<BlockId>) {
        let root = tempfile::tempdir().expect("tempdir");
        let path = root.path().join("envs/t/env.toml");
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, format!("{HEADER}{body}")).expect("write");
        let configuration = crate::config::load(root.path(), "t").expect("loads");
        let graph = block_graph(&configuration).expect("graph");
        (root, configuration, graph)
    }

    /// Returns `state` with every change of `plan` recorded as applied (each secret at
    /// version 3), as an apply of it would leave it.
    fn applied(plan: &Plan, mut state: State) -> State {
        for change in &plan.changes {
            let mut attributes = change.after.clone().unwrap_or_default();
            if change.kind == "secret" {
                attributes.insert("version".into(), Value::string("3"));
            }
            state.upsert(StateResource {
                address: change.address.clone(),
                kind: change.kind.clone(),
                id: change.id.clone().unwrap_or_default(),
                status: ResourceStatus::Created,
                attributes,
                dependencies: change.dependencies.clone(),
            });
        }
        state
    }

    #[test]
    fn the_plan_evaluates_again_only_the_instances_that_read_a_value_the_check_did_not_know() {
        // The members read a secret: the names are known before the secrets exist, so the
        // check's evaluation holds; a version is known only once applied, so `m_version`
        // must be evaluated again, and must see it; `m_splat` reads every secret.
        let body = "[vars]\nids = [\"a\", \"b\"]\n[resource.secret.s]\nfor_each = \"${var.ids}\"\nsecret_id = \"s-${each.key}\"\n[resource.iam_member.m_name]\nfor_each = \"${var.ids}\"\nparent = \"${secret.s[each.key].name}\"\nrole = \"roles/viewer\"\nmember = \"user:x@y.z\"\n[resource.iam_member.m_version]\nparent = \"${secret.s[\\\"a\\\"].name}\"\nrole = \"roles/viewer\"\nmember = \"user:v${secret.s[\\\"b\\\"].version}@y.z\"\n[resource.iam_member.m_splat]\nparent = \"${secret.s[\\\"a\\\"].name}\"\nrole = \"roles/viewer\"\nmember = \"user:${join(\\\"-\\\", secret.s[*].secret_id)}@y.z\"\n";
        let (_root, configuration, graph) = load(body);
        let options = PlanOptions::default();
        let live = BTreeMap::new();
        let empty = State::new("t");
        let first = plan_with_live(&configuration, &empty, &graph, &live, &options).expect("plans");
        let state = applied(&first, empty);
        let mut checked = check_configuration(&configuration, &graph).expect("valid");
        assert_eq!(
            checked.dependent.len(),
            3,
            "the member blocks read a secret"
        );
        let walked = walk(
            &configuration,
            &state,
            &graph,
            &live,
            &options,
            Purpose::Plan,
            &mut checked,
        )
        .map_err(|error| error.to_string())
        .expect("plans");
        // `m_version` read a value the check did not know; `m_splat` read a whole block,
        // which is not kept.
        assert_eq!(walked.evaluated_again, 2);
        let member = walked
            .changes
            .iter()
            .find(|change| change.address == "iam_member.m_version")
            .and_then(|change| change.after.as_ref())
            .and_then(|after| after.get("member"))
            .cloned();
        assert_eq!(member, Some(Value::string("user:v3@y.z")));
        let checked = check_configuration(&configuration, &graph).expect("valid");
        let taken =
            plan_with_live_checked(&configuration, &state, &graph, &live, &options, checked)
                .expect("plans");
        let fresh = plan_with_live(&configuration, &state, &graph, &live, &options).expect("plans");
        assert_eq!(
            serde_json::to_string(&taken).expect("json"),
            serde_json::to_string(&fresh).expect("json")
        );
    }

    #[test]
    fn an_instance_depends_on_what_its_for_each_read() {
        // The members' keys come from the secrets: destroy must delete a member before the
        // secrets its for_each read, so each member lists them, with or without the check.
        let body = "[vars]\nids = [\"a\", \"b\"]\n[resource.secret.s]\nfor_each = \"${var.ids}\"\nsecret_id = \"s-${each.key}\"\n[resource.iam_member.m]\nfor_each = \"${zipmap(secret.s[*].secret_id, secret.s[*].secret_id)}\"\nparent = \"projects/p/secrets/${each.value}\"\nrole = \"roles/viewer\"\nmember = \"user:x@y.z\"\n";
        let (_root, configuration, graph) = load(body);
        let options = PlanOptions::default();
        let live = BTreeMap::new();
        let empty = State::new("t");
        let first = plan_with_live(&configuration, &empty, &graph, &live, &options).expect("plans");
        let secrets = vec!["secret.s[\"a\"]".to_string(), "secret.s[\"b\"]".to_string()];
        let member = |plan: &Plan, key: &str| {
            plan.changes
                .iter()
                .find(|change| change.address == format!("iam_member.m[\"s-{key}\"]"))
                .map(|change| change.dependencies.clone())
        };
        assert_eq!(member(&first, "a"), Some(secrets.clone()));
        assert_eq!(member(&first, "b"), Some(secrets.clone()));
        let state = applied(&first, empty);
        let checked = check_configuration(&configuration, &graph).expect("valid");
        let taken =
            plan_with_live_checked(&configuration, &state, &graph, &live, &options, checked)
                .expect("plans");
        assert_eq!(member(&taken, "a"), Some(secrets));
        let fresh = plan_with_live(&configuration, &state, &graph, &live, &options).expect("plans");
        assert_eq!(
            serde_json::to_string(&taken).expect("json"),
            serde_json::to_string(&fresh).expect("json")
        );
    }

    #[test]
    fn an_instance_whose_read_now_fails_is_evaluated_again_and_reports_the_error() {
        // The check sees the secret's version as unknown, and an attribute of an unknown is
        // unknown; once applied, the version is a string, which has no attributes: the plan
        // must evaluate the member again and fail as a plan without the check fails.
        let body = "[resource.secret.s]\nsecret_id = \"s\"\n[resource.iam_member.m]\nparent = \"${secret.s.name}\"\nrole = \"roles/viewer\"\nmember = \"user:${secret.s.version.nothing}@y.z\"\n";
        let (_root, configuration, graph) = load(body);
        let options = PlanOptions::default();
        let live = BTreeMap::new();
        let empty = State::new("t");
        let first = plan_with_live(&configuration, &empty, &graph, &live, &options).expect("plans");
        let state = applied(&first, empty);
        let checked = check_configuration(&configuration, &graph).expect("valid");
        let taken =
            plan_with_live_checked(&configuration, &state, &graph, &live, &options, checked);
        let fresh = plan_with_live(&configuration, &state, &graph, &live, &options);
        assert_eq!(messages(taken), messages(fresh));
    }

    #[test]
    fn the_check_reports_exactly_what_a_plan_from_nothing_reports() {
        for body in [
            // Two addresses naming one object, and a for_each key given twice.
            "[resource.secret.a]\nsecret_id = \"S\"\n[resource.secret.b]\nsecret_id = \"S\"\n[resource.secret.c]\nfor_each = [\"x\", \"x\"]\nsecret_id = \"c-${each.key}\"\n",
            // A type error, and an ignore_changes entry naming no field.
            "[vars]\ntext = \"not a map\"\n[resource.secret.a]\nsecret_id = \"A\"\nlabels = \"${var.text}\"\n[resource.secret.b]\nsecret_id = \"B\"\nlifecycle = { ignore_changes = [\"lables\"] }\n",
            // A reference to an attribute the referenced resource does not have.
            "[resource.secret.a]\nsecret_id = \"A\"\n[resource.secret.b]\nsecret_id = \"${secret.a.nothing}\"\n",
        ] {
            let planned = messages(plan(body, &State::new("t"), &PlanOptions::default()));
            let checked = check(body).expect_err("the check fails too").to_string();
            assert_eq!(checked, planned, "{body}");
        }
    }

    #[test]
    fn the_check_passes_a_valid_configuration_and_a_plan_still_reads_references() {
        let body = "[resource.secret.a]\nsecret_id = \"A\"\n[resource.secret.b]\nsecret_id = \"${secret.a.secret_id}-b\"\n[resource.secret.leaf]\nsecret_id = \"L\"\n";
        check(body).expect("a valid configuration passes the check");
        let planned = plan(body, &State::new("t"), &PlanOptions::default()).expect("plans");
        let after = |address: &str| {
            planned
                .change(address)
                .and_then(|change| change.after.as_ref())
                .and_then(|after| after.get("secret_id"))
                .cloned()
        };
        assert_eq!(after("secret.b"), Some(Value::string("A-b")));
        assert_eq!(after("secret.leaf"), Some(Value::string("L")));
    }

    #[test]
    fn a_repeated_for_each_item_is_an_error_naming_the_block_and_the_key() {
        let error = messages(plan(
            "[resource.secret.s]\nfor_each = [\"a\", \"b\", \"a\"]\nsecret_id = \"s-${each.key}\"\n",
            &State::new("t"),
            &PlanOptions::default(),
        ));
        assert!(
            error.contains("envs/t/env.toml:6:12")
                && error.contains("secret.s: for_each has the key \"a\" twice (items 0 and 2"),
            "{error}"
        );
    }

    #[test]
    fn two_blocks_naming_one_secret_are_an_error_naming_both_places() {
        let error = messages(plan(
            "[resource.secret.a]\nsecret_id = \"S\"\n[resource.secret.b]\nsecret_id = \"S\"\n",
            &State::new("t"),
            &PlanOptions::default(),
        ));
        assert!(
            error.contains(
                "envs/t/env.toml:7:18: error[duplicate]: secret.b and secret.a (at envs/t/env.toml:5:18) name the same secret `projects/p/secrets/S`"
            ),
            "{error}"
        );
    }

    #[test]
    fn names_known_only_after_apply_skip_the_same_object_check() {
        let body = "[resource.secret.base]\nsecret_id = \"base\"\n[resource.secret.a]\nsecret_id = \"${secret.base.version}\"\n[resource.secret.b]\nsecret_id = \"${secret.base.version}\"\n";
        assert!(plan(body, &State::new("t"), &PlanOptions::default()).is_ok());
    }

    #[test]
    fn a_renamed_block_whose_old_address_would_delete_its_object_is_refused() {
        let state = state_with_secret("secret.old");
        let error = messages(plan(
            "[resource.secret.new]\nsecret_id = \"S\"\n",
            &state,
            &PlanOptions::default(),
        ));
        assert!(
            error.contains("envs/t/env.toml:5:18: error[duplicate]: secret.new names secret `projects/p/secrets/S`, which the state holds as secret.old")
                && error.contains("infra state mv --env t 'secret.old' 'secret.new'"),
            "{error}"
        );
        let destroy = PlanOptions {
            destroy: true,
            ..PlanOptions::default()
        };
        assert!(
            plan(
                "[resource.secret.new]\nsecret_id = \"S\"\n",
                &state,
                &destroy
            )
            .is_ok()
        );
    }

    #[test]
    fn an_empty_configuration_over_a_non_empty_state_is_refused_unless_asked_for() {
        let state = state_with_secret("secret.s");
        let error = messages(plan("", &state, &PlanOptions::default()));
        assert!(
            error.starts_with("envs/t/env.toml:1:1: error: the configuration declares no resources, but the state of `t` holds 1")
                && error.contains("--allow-empty-config"),
            "{error}"
        );
        let allowed = PlanOptions {
            allow_empty_config: true,
            ..PlanOptions::default()
        };
        let destroy = PlanOptions {
            destroy: true,
            ..PlanOptions::default()
        };
        for options in [allowed, destroy] {
            let planned = plan("", &state, &options).expect("asked for");
            assert_eq!(planned.changes[0].action, Action::Delete);
        }
        assert!(plan("", &State::new("t"), &PlanOptions::default()).is_ok());
    }

    #[test]
    fn a_replace_address_that_matches_nothing_is_refused_with_the_closest() {
        let options = PlanOptions {
            replace: vec!["secret.sx".into()],
            ..PlanOptions::default()
        };
        let error = messages(plan(
            "[resource.secret.s]\nsecret_id = \"S\"\n",
            &State::new("t"),
            &options,
        ));
        assert!(
            error.contains("--replace secret.sx: no resource with this address")
                && error.contains("did you mean `secret.s`?"),
            "{error}"
        );
        let orphan = PlanOptions {
            replace: vec!["secret.old".into()],
            ..PlanOptions::default()
        };
        assert!(
            plan(
                "[resource.secret.s]\nsecret_id = \"T\"\n",
                &state_with_secret("secret.old"),
                &orphan
            )
            .is_ok(),
            "an address only in state is a resource too"
        );
    }

    #[test]
    fn an_ignore_changes_entry_that_names_no_field_is_an_error() {
        let body = "[resource.secret.s]\nsecret_id = \"S\"\nlifecycle = { ignore_changes = [\"lables\", \"labels.team\"] }\n";
        let error = messages(plan(body, &State::new("t"), &PlanOptions::default()));
        assert!(
            error.contains("ignore_changes names `lables`")
                && error.contains("did you mean `labels`?")
                && !error.contains("`labels.team`"),
            "{error}"
        );
    }

    #[test]
    fn an_intent_s_object_is_ours_only_with_this_state_s_labels() {
        let context = KindContext {
            address: "secret.a".into(),
            project: "p".into(),
            region: "r".into(),
            env_name: "test".into(),
            lineage: "l-1".into(),
            fingerprint_key: None,
            legacy_salt: None,
        };
        let labelled = |env: &str, lineage: &str| {
            Attributes::from([(
                "labels".to_string(),
                Value::Map(BTreeMap::from([
                    (kinds::ENV_LABEL.to_string(), Value::string(env)),
                    (kinds::LINEAGE_LABEL.to_string(), Value::string(lineage)),
                ])),
            )])
        };
        assert!(owned_here(&context, &labelled("test", "l-1")));
        assert!(!owned_here(&context, &labelled("test", "l-2")));
        assert!(!owned_here(&context, &labelled("prod", "l-1")));
        assert!(!owned_here(
            &context,
            &Attributes::from([("labels".to_string(), Value::Map(BTreeMap::new()))])
        ));
        // Kinds without labels (service accounts, IAM) cannot tell.
        assert!(owned_here(&context, &Attributes::new()));
    }
}
