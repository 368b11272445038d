//! The executor: walks the block graph with bounded concurrency, re-evaluates each resource
//! with the attributes its dependencies really got, checks that against the plan, performs the
//! planned action through its kind, and persists state after every change (an intent record
//! before each create, so an interrupted run adopts instead of duplicating). Deletes run last,
//! in reverse dependency order. A failure skips what depends on it, never its siblings.

use crate::config::eval::Values;
use crate::config::{BlockId, Configuration};
use crate::gcp::GcpClient;
use crate::gcp::kinds::{self, KindContext};
use crate::graph::{DependencyGraph, block_graph};
use crate::plan::diff::changed_paths;
use crate::plan::model::{Action, Plan, ResourceChange};
use crate::plan::planner::{
    InstanceConfig, evaluate_instances, evaluate_value_block, kind_context, output_address,
    record_block, resource_salt,
};
use crate::progress::{NoProgress, Progress};
use crate::state::{ResourceStatus, State, StateOutput, StateResource};
use crate::value::Attributes;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::Semaphore;

/// Where state goes while applying: called with every new version of the state.
#[async_trait::async_trait]
pub trait StateSink: Sync {
    /// Persists the state; an error stops further changes.
    async fn persist(&self, state: &State) -> Result<(), String>;
}

/// How the apply ended.
#[derive(Debug, Default)]
pub struct ApplyReport {
    pub added: usize,
    pub changed: usize,
    pub destroyed: usize,
    pub errors: Vec<String>,
    pub skipped: Vec<String>,
    pub interrupted: bool,
}

struct Executor<'a> {
    configuration: &'a Configuration,
    plan: &'a Plan,
    client: &'a GcpClient,
    sink: &'a dyn StateSink,
    state: Mutex<State>,
    values: Mutex<Values>,
    report: Mutex<ApplyReport>,
    operations: Semaphore,
    writer: tokio::sync::Mutex<()>,
    stop: &'a AtomicBool,
    progress: &'a dyn Progress,
}

/// Applies a plan. `stop` is set on interrupt: running operations finish and are recorded,
/// nothing new starts.
pub async fn apply(
    configuration: &Configuration,
    plan: &Plan,
    state: State,
    client: &GcpClient,
    sink: &dyn StateSink,
    parallelism: usize,
    stop: &AtomicBool,
) -> (State, ApplyReport) {
    apply_with_progress(
        configuration,
        plan,
        state,
        client,
        sink,
        parallelism,
        stop,
        &NoProgress,
    )
    .await
}

/// Applies a plan like `apply`, reporting each operation's start and end to `progress`.
#[allow(clippy::too_many_arguments)]
pub async fn apply_with_progress(
    configuration: &Configuration,
    plan: &Plan,
    state: State,
    client: &GcpClient,
    sink: &dyn StateSink,
    parallelism: usize,
    stop: &AtomicBool,
    progress: &dyn Progress,
) -> (State, ApplyReport) {
    let executor = Executor {
        configuration,
        plan,
        client,
        sink,
        state: Mutex::new(state),
        values: Mutex::new(Values::default()),
        report: Mutex::new(ApplyReport::default()),
        operations: Semaphore::new(parallelism.max(1)),
        writer: tokio::sync::Mutex::new(()),
        stop,
        progress,
    };
    if !plan.destroy {
        match block_graph(configuration) {
            Ok(graph) => {
                let walk = graph
                    .walk(parallelism.max(1), false, |block| executor.visit(block))
                    .await;
                let mut report = executor.lock_report();
                report
                    .skipped
                    .extend(walk.skipped.iter().map(ToString::to_string));
            }
            Err(error) => executor.lock_report().errors.push(error.to_string()),
        }
    }
    executor.delete_phase(parallelism).await;
    executor.record_outputs().await;
    let state = executor
        .state
        .into_inner()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut report = executor
        .report
        .into_inner()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    report.interrupted = stop.load(Ordering::SeqCst);
    (state, report)
}

impl Executor<'_> {
    fn lock_report(&self) -> std::sync::MutexGuard<'_, ApplyReport> {
        self.report
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn lock_state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn lock_values(&self) -> std::sync::MutexGuard<'_, Values> {
        self.values
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Changes the state and persists it with the next serial. Writes are serialized (and so
    /// ordered): a backend guarding each write with the generation of the last never races itself.
    async fn mutate_state(&self, change: impl FnOnce(&mut State)) -> Result<(), String> {
        let _writing = self.writer.lock().await;
        let snapshot = {
            let mut state = self.lock_state();
            change(&mut state);
            state.serial += 1;
            state.clone()
        };
        self.sink.persist(&snapshot).await
    }

    async fn visit(&self, block: BlockId) -> Result<(), String> {
        if !matches!(block, BlockId::Resource { .. }) {
            let mut values = self.lock_values();
            return evaluate_value_block(self.configuration, &block, &mut values)
                .map_err(|diagnostic| diagnostic.to_string());
        }
        let BlockId::Resource { module, kind, name } = &block else {
            return Ok(());
        };
        let module_instance = self
            .configuration
            .modules
            .iter()
            .find(|candidate| &candidate.name == module)
            .ok_or("module vanished")?;
        let resource_block = module_instance
            .resource(kind, name)
            .ok_or("resource vanished")?;
        let instances = {
            let values = self.lock_values();
            evaluate_instances(self.configuration, module_instance, resource_block, &values)
                .map_err(|diagnostics| {
                    diagnostics
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("\n")
                })?
        };
        let outcomes = futures::future::join_all(
            instances
                .iter()
                .map(|instance| self.apply_instance_reported(instance)),
        )
        .await;
        let mut exported = BTreeMap::new();
        let mut failed = false;
        for (instance, outcome) in instances.iter().zip(outcomes) {
            match outcome {
                Ok(attributes) => {
                    exported.insert(instance.key.clone(), attributes);
                }
                Err(message) => {
                    failed = true;
                    self.lock_report()
                        .errors
                        .push(format!("{}: {message}", instance.address));
                }
            }
        }
        record_block(
            &mut self.lock_values(),
            &block,
            resource_block.for_each.is_some(),
            exported,
        );
        if failed {
            Err(format!("{block} failed"))
        } else {
            Ok(())
        }
    }

    /// Performs one instance's planned action, reporting its end to `progress` (its start is
    /// reported once it gets its turn, inside).
    async fn apply_instance_reported(
        &self,
        instance: &InstanceConfig,
    ) -> Result<Attributes, String> {
        let action = self
            .plan
            .change(&instance.address)
            .map_or(Action::NoOp, |change| change.action);
        let result = self.apply_instance(instance).await;
        if !matches!(action, Action::NoOp | Action::Delete) {
            self.progress.operation_finished(
                &instance.address,
                action,
                result.as_ref().err().map(String::as_str),
            );
        }
        result
    }

    /// Performs one instance's planned action and returns its exported attributes.
    async fn apply_instance(&self, instance: &InstanceConfig) -> Result<Attributes, String> {
        let change = self.plan.change(&instance.address).ok_or_else(|| {
            format!("not in the plan: the configuration changed since planning; run `infra plan --env {}` again", self.configuration.env.name)
        })?;
        let prior = self.lock_state().resource(&instance.address).cloned();
        let context = kind_context(
            self.configuration,
            &instance.address,
            resource_salt(&self.plan.salt, &instance.address, prior.as_ref()),
        );
        if matches!(change.action, Action::NoOp | Action::Delete) {
            return Ok(instance
                .kind
                .exported(&context, &instance.config, prior.as_ref(), false));
        }
        self.check_against_plan(instance, change, &context, prior.as_ref())?;
        let _permit = self
            .operations
            .acquire()
            .await
            .map_err(|error| error.to_string())?;
        if self.stop.load(Ordering::SeqCst) {
            return Err("not started: interrupted".into());
        }
        self.progress
            .operation_started(&instance.address, change.action);
        let kind = instance.kind;
        let dependencies = change.dependencies.clone();
        let resource = match change.action {
            Action::Update => {
                let prior = prior.ok_or("nothing in state to update")?;
                let attributes = kind
                    .update(
                        self.client,
                        &context,
                        &instance.config,
                        &prior,
                        &change.changed,
                    )
                    .await
                    .map_err(|error| error.to_string())?;
                self.lock_report().changed += 1;
                StateResource {
                    attributes,
                    dependencies,
                    ..prior
                }
            }
            Action::Create | Action::Replace => {
                if change.action == Action::Replace
                    && let Some(prior) = &prior
                {
                    kind.delete(self.client, prior)
                        .await
                        .map_err(|error| error.to_string())?;
                    self.mutate_state(|state| {
                        state.remove(&prior.address);
                    })
                    .await?;
                    self.lock_report().destroyed += 1;
                }
                let fresh_context = if change.action == Action::Replace {
                    kind_context(
                        self.configuration,
                        &instance.address,
                        resource_salt(&self.plan.salt, &instance.address, None),
                    )
                } else {
                    context.clone()
                };
                self.create(instance, &fresh_context, dependencies, prior.as_ref())
                    .await?
            }
            Action::NoOp | Action::Delete => unreachable_action(change.action)?,
        };
        let exported = kind.exported(&context, &instance.config, Some(&resource), false);
        self.mutate_state(|state| state.upsert(resource)).await?;
        Ok(exported)
    }

    async fn create(
        &self,
        instance: &InstanceConfig,
        context: &KindContext,
        dependencies: Vec<String>,
        prior: Option<&StateResource>,
    ) -> Result<StateResource, String> {
        let kind = instance.kind;
        // The intent comes first: if the process dies mid-create, the next run finds this record,
        // reads the object by id, and adopts it.
        if let Some(id) = kind.resource_id(context, &instance.config) {
            let mut attributes = prior
                .map(|prior| prior.attributes.clone())
                .unwrap_or_default();
            attributes.insert(
                "value_salt".into(),
                crate::value::Value::string(context.salt.clone()),
            );
            attributes.retain(|field, _| field == "value_salt");
            self.mutate_state(|state| {
                state.upsert(StateResource {
                    address: instance.address.clone(),
                    kind: kind.name().to_string(),
                    id,
                    status: ResourceStatus::Creating,
                    attributes,
                    dependencies: dependencies.clone(),
                })
            })
            .await?;
        }
        let created = kind
            .create(self.client, context, &instance.config)
            .await
            .map_err(|error| error.to_string())?;
        self.lock_report().added += 1;
        Ok(StateResource {
            address: instance.address.clone(),
            kind: kind.name().to_string(),
            id: created.id,
            status: ResourceStatus::Created,
            attributes: created.attributes,
            dependencies,
        })
    }

    /// Refuses to act when the configuration now evaluates to something other than what was
    /// planned (an environment variable changed, a file changed).
    fn check_against_plan(
        &self,
        instance: &InstanceConfig,
        change: &ResourceChange,
        context: &KindContext,
        prior: Option<&StateResource>,
    ) -> Result<(), String> {
        let Some(planned) = &change.after else {
            return Ok(());
        };
        let prior_for_desired = if change.action == Action::Replace {
            None
        } else {
            prior
        };
        let desired = instance
            .kind
            .desired(context, &instance.config, prior_for_desired)
            .map_err(|error| error.to_string())?;
        let known: Attributes = planned
            .iter()
            .filter(|(_, value)| !value.contains_unknown())
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let differing = changed_paths(&known, &desired);
        if differing.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "now differs from the plan at {}; run `infra plan --env {}` again",
                differing.join(", "),
                self.configuration.env.name
            ))
        }
    }

    async fn delete_phase(&self, parallelism: usize) {
        let deletions: Vec<&ResourceChange> = self
            .plan
            .changes
            .iter()
            .filter(|change| change.action == Action::Delete)
            .collect();
        if deletions.is_empty() {
            return;
        }
        let mut graph: DependencyGraph<String> = DependencyGraph::default();
        let deleting: std::collections::BTreeSet<&str> = deletions
            .iter()
            .map(|change| change.address.as_str())
            .collect();
        for change in &deletions {
            graph.add_node(change.address.clone());
            let recorded = self
                .lock_state()
                .resource(&change.address)
                .map(|resource| resource.dependencies.clone())
                .unwrap_or_default();
            for dependency in recorded.iter().chain(change.dependencies.iter()) {
                if deleting.contains(dependency.as_str()) && dependency != &change.address {
                    graph.add_dependency(change.address.clone(), dependency.clone());
                }
            }
        }
        let walk = graph
            .walk(parallelism, true, |address| async move {
                let result = self.delete_one(address.clone()).await;
                if !matches!(&result, Err(message) if message.starts_with("not started")) {
                    self.progress.operation_finished(
                        &address,
                        Action::Delete,
                        result.as_ref().err().map(String::as_str),
                    );
                }
                result
            })
            .await;
        let mut report = self.lock_report();
        for (address, message) in walk.failed {
            report.errors.push(format!("{address}: {message}"));
        }
        report.skipped.extend(walk.skipped);
    }

    async fn delete_one(&self, address: String) -> Result<(), String> {
        let Some(prior) = self.lock_state().resource(&address).cloned() else {
            return Ok(());
        };
        if let Some(block) = self.configuration_block(&address)
            && block.lifecycle.prevent_destroy
        {
            return Err(
                "lifecycle.prevent_destroy is set; remove it to destroy this resource".into(),
            );
        }
        let kind = kinds::find(&prior.kind)
            .ok_or_else(|| format!("unknown kind `{}` in state", prior.kind))?;
        let _permit = self
            .operations
            .acquire()
            .await
            .map_err(|error| error.to_string())?;
        if self.stop.load(Ordering::SeqCst) {
            return Err("not started: interrupted".into());
        }
        self.progress.operation_started(&address, Action::Delete);
        kind.delete(self.client, &prior)
            .await
            .map_err(|error| error.to_string())?;
        self.lock_report().destroyed += 1;
        self.mutate_state(|state| {
            state.remove(&address);
        })
        .await
    }

    fn configuration_block(&self, address: &str) -> Option<&crate::config::ResourceBlock> {
        self.configuration
            .modules
            .iter()
            .flat_map(|module| module.resources.iter().map(move |block| (module, block)))
            .find_map(|(module, block)| {
                let base =
                    crate::config::instance_address(&module.name, &block.kind, &block.name, None);
                (address == base || address.starts_with(&format!("{base}["))).then_some(block)
            })
    }

    async fn record_outputs(&self) {
        // A targeted apply may leave untargeted objects uncreated: outputs stay as they were.
        if !self.plan.targets.is_empty() {
            return;
        }
        let outputs = self.evaluated_outputs();
        let unchanged = self.lock_state().outputs == outputs;
        if !unchanged && let Err(message) = self.mutate_state(|state| state.outputs = outputs).await
        {
            self.lock_report().errors.push(message);
        }
    }

    fn evaluated_outputs(&self) -> BTreeMap<String, StateOutput> {
        let values = self.lock_values();
        let mut outputs = BTreeMap::new();
        if !self.plan.destroy {
            for module in &self.configuration.modules {
                for (name, declaration) in &module.outputs {
                    if let Some(value) = values.outputs.get(&(module.name.clone(), name.clone())) {
                        outputs.insert(
                            output_address(&module.name, name),
                            StateOutput {
                                value: value.clone(),
                                sensitive: declaration.sensitive,
                            },
                        );
                    }
                }
            }
        }
        outputs
    }
}

fn unreachable_action(action: Action) -> Result<StateResource, String> {
    Err(format!("internal: action {action:?} reached the executor"))
}
