//! The executor: runs each resource instance as soon as the instances it references are
//! applied (the order is `schedule.rs`'s), at most `parallelism` at a time, re-evaluates it
//! with the attributes its dependencies really got, checks that against the plan, performs the
//! planned action through its kind, and persists state by group commit: every change is
//! recorded in memory at once, and one writer persists the latest snapshot whenever its
//! previous write finished (paced to one write start per `WRITE_INTERVAL` unless an operation
//! waits for it, and never sooner than the backend takes one: Cloud Storage, one write per
//! second per object, gets one write per second holding every change since the last). A create whose kind cannot find an interrupted create again waits for the
//! write that holds its intent record (recorded before any operation starts when the plan knows
//! its id, so that the first write holds them all); it holds no API-call permit meanwhile, and does not count
//! towards the `parallelism` instances in progress. Deletes run last,
//! in reverse dependency order. A failure skips what depends on it, never its siblings.

use crate::config::eval::Values;
use crate::config::{BlockId, Configuration};
use crate::gcp::GcpClient;
use crate::gcp::kinds::{self, KindContext, KindError};
use crate::graph::DependencyGraph;
use crate::plan::diff::changed_paths;
use crate::plan::model::{Action, Plan, ResourceChange};
use crate::plan::planner::{
    InstanceConfig, evaluate_instance, evaluate_keys, evaluate_value_block, kind_context,
    output_address, record_block, record_instance,
};
use crate::progress::{NoProgress, Progress};
use crate::schedule::{BlockTurn, InstanceSchedule, InstanceTurn};
use crate::sensitive::FingerprintKey;
use crate::state::{ResourceStatus, State, StateOutput, StateResource};
use crate::value::Attributes;
use futures::stream::{FuturesUnordered, StreamExt};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, Semaphore, watch};

/// The shortest time between the starts of two state writes that no operation waits for. A
/// write to Cloud Storage takes a round trip of about this much anyway; a local write takes a
/// millisecond, and without a pause the writer would spend the cores on whole-state snapshots.
/// Changes made meanwhile are in the next write; a crash loses at most this much of the record
/// of objects that can be found again by name (those that could not wait for their write).
const WRITE_INTERVAL: Duration = Duration::from_millis(50);

/// How many times its document's assembly (a copy and a hash of the whole state) passes
/// between the starts of two writes nobody waits for: the writer takes at most about a fifth
/// of a core on a large state, however long the apply.
const WRITE_CPU_SHARE: u32 = 4;

/// Where state goes while applying: called with every new version of the state, serialized
/// as `State::to_bytes` would (the writer keeps each resource serialized since it changed, so
/// a write costs a copy and a hash of the document, not a copy and serialization of every
/// resource).
#[async_trait::async_trait]
pub trait StateSink: Sync {
    /// Persists the state document; an error stops further changes.
    async fn persist(&self, document: Vec<u8>) -> Result<(), String>;

    /// Returns when the backend takes the next write (`None`: now). The writer gathers the
    /// changes recorded until then into that write, rather than have the write wait inside
    /// `persist` holding an older snapshot (Cloud Storage allows one write per second per
    /// object; local files any rate).
    fn next_write_at(&self) -> Option<Instant> {
        None
    }
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
    /// Why the state could not be saved, when its last write failed: the returned state holds
    /// changes the backend does not.
    pub unsaved: Option<String>,
}

struct Executor<'a> {
    configuration: &'a Configuration,
    plan: &'a Plan,
    client: &'a GcpClient,
    sink: &'a dyn StateSink,
    journal: Mutex<Journal>,
    /// Signalled when a change is recorded or the apply is done.
    recorded: Notify,
    /// How many operations wait for a write to make their change durable.
    waiting: AtomicUsize,
    /// Signalled when an operation starts waiting for a write, or the apply is done.
    awaited: Notify,
    /// Creates waiting for their intent record's write: they do not count towards the
    /// instances in progress, so others start meanwhile.
    writing_intents: AtomicUsize,
    /// Signalled when a create starts waiting for its intent record's write.
    intent_waiting: Notify,
    /// The intent records written at the start for the planned creates whose id the plan
    /// knows, by address: the id and the change's version. A create whose id is still that one
    /// needs no write of its own; those never begun are dropped at the end.
    planned_intents: Mutex<BTreeMap<String, (String, u64)>>,
    /// The state was never written (a first apply): its lineage labels what this apply
    /// creates, so it is durable before the first create — in the write that holds the
    /// planned intents, since Cloud Storage would make a second write wait a second.
    new_state: bool,
    /// What the writer has made durable so far.
    durable: watch::Sender<Durability>,
    values: Mutex<Values>,
    report: Mutex<ApplyReport>,
    operations: Semaphore,
    stop: &'a AtomicBool,
    fingerprint_key: Option<Arc<FingerprintKey>>,
    progress: &'a dyn Progress,
}

/// One instance's create, update or replace: reported started when it first gets an API-call
/// permit, and keeping its latest permit until its end is reported, so that no more than
/// `parallelism` operations show as running at once.
struct Operation<'e> {
    address: &'e str,
    action: Action,
    permit: Option<tokio::sync::SemaphorePermit<'e>>,
    started: bool,
}

/// The state as changed so far, and how many changes it holds.
struct Journal {
    /// The state around its resources (its own `resources` stay empty while applying).
    frame: State,
    /// Each resource, and it serialized (`StateResource::to_bytes`), by address: a map, as
    /// creates arrive in any order and a sorted list would shift on every one of them.
    resources: BTreeMap<String, (StateResource, Arc<[u8]>)>,
    /// Counts the changes recorded; a write covers every change up to the version it snapshots.
    version: u64,
    /// No more changes will be recorded: the writer stops once the last is durable.
    finished: bool,
}

/// A change to the state, recorded in the journal.
enum Change {
    Upsert(StateResource),
    Remove(String),
    Outputs(BTreeMap<String, StateOutput>),
    /// Nothing changes, but the state is to be written (a new state, before its first create).
    Persist,
}

/// How far the writer got.
#[derive(Debug, Clone, Default)]
struct Durability {
    version: u64,
    failure: Option<String>,
}

/// Applies a plan. `stop` is set on interrupt: running operations finish and are recorded,
/// nothing new starts. `fingerprint_key` must be the environment's key whenever the plan
/// writes a secret value (`gcp::fingerprint_key::ensure_key`); fingerprints recorded in an
/// older form are rewritten with it, even for resources with nothing else to do.
#[allow(clippy::too_many_arguments)]
pub async fn apply(
    configuration: &Configuration,
    plan: &Plan,
    state: State,
    client: &GcpClient,
    sink: &dyn StateSink,
    parallelism: usize,
    stop: &AtomicBool,
    fingerprint_key: Option<Arc<FingerprintKey>>,
) -> (State, ApplyReport) {
    apply_with_progress(
        configuration,
        plan,
        state,
        client,
        sink,
        parallelism,
        stop,
        fingerprint_key,
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
    fingerprint_key: Option<Arc<FingerprintKey>>,
    progress: &dyn Progress,
) -> (State, ApplyReport) {
    let new_state = state.serial == 0;
    let executor = Executor {
        configuration,
        plan,
        client,
        sink,
        journal: Mutex::new(Journal {
            resources: state
                .resources
                .iter()
                .map(|resource| {
                    (
                        resource.address.clone(),
                        (resource.clone(), resource.to_bytes().into()),
                    )
                })
                .collect(),
            frame: State {
                resources: Vec::new(),
                ..state
            },
            version: 0,
            finished: false,
        }),
        recorded: Notify::new(),
        waiting: AtomicUsize::new(0),
        awaited: Notify::new(),
        writing_intents: AtomicUsize::new(0),
        intent_waiting: Notify::new(),
        planned_intents: Mutex::default(),
        new_state,
        durable: watch::Sender::new(Durability::default()),
        values: Mutex::new(Values::default()),
        report: Mutex::new(ApplyReport::default()),
        operations: Semaphore::new(parallelism.max(1)),
        stop,
        fingerprint_key,
        progress,
    };
    let work = async {
        executor.run(parallelism).await;
        // IAM reads lag writes: the apply ends once its policy writes show, so that the plan
        // made next does not see its grants as missing. Every write is recorded already, so
        // an interrupt (or the overall bound) ends the wait at once, and the state is saved
        // and the lock released as after any interrupt.
        crate::gcp::kinds::confirm_policy_writes(stop).await;
        executor.lock_journal().finished = true;
        executor.recorded.notify_one();
        executor.awaited.notify_one();
    };
    let ((), ()) = futures::join!(work, executor.write_continuously());
    let journal = executor
        .journal
        .into_inner()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let state = State {
        resources: journal
            .resources
            .into_values()
            .map(|(resource, _)| resource)
            .collect(),
        ..journal.frame
    };
    let mut report = executor
        .report
        .into_inner()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    report.interrupted = stop.load(Ordering::SeqCst);
    report.unsaved = executor.durable.borrow().failure.clone();
    (state, report)
}

impl Executor<'_> {
    async fn run(&self, parallelism: usize) {
        if !self.plan.destroy {
            self.record_planned_intents();
            if self.new_state {
                let version = self.record(Change::Persist);
                if let Err(message) = self.durable(version).await {
                    self.lock_report().errors.push(format!(
                        "writing the new state before the first change: {message}"
                    ));
                    return;
                }
            }
            match InstanceSchedule::new(self.configuration) {
                Ok(schedule) => {
                    self.apply_phase(schedule, parallelism).await;
                    self.deferred_phase(parallelism).await;
                }
                Err(error) => self.lock_report().errors.push(error.to_string()),
            }
            self.drop_unused_intents();
        }
        self.delete_phase(parallelism).await;
        self.record_outputs();
    }

    /// Records, before any operation starts, the intent record of every planned create whose
    /// kind needs one and whose id the plan already knows (a client-chosen name built from
    /// values known at plan time), so that the first write holds them all. Cloud Storage takes
    /// one write per second: written as each create comes, the intents of creates spread over
    /// several seconds would each wait up to a second for their turn. An intent whose create
    /// then never starts is harmless — the next run reads the id, finds nothing, and plans the
    /// create as before ("an interrupted create never made it") — and is dropped at the end.
    fn record_planned_intents(&self) {
        let mut planned = Vec::new();
        for change in &self.plan.changes {
            let Some(id) = &change.id else {
                continue;
            };
            if change.action != Action::Create
                || !kinds::find(&change.kind).is_some_and(|kind| kind.needs_intent_record())
            {
                continue;
            }
            let intent = StateResource {
                address: change.address.clone(),
                kind: change.kind.clone(),
                id: id.clone(),
                status: ResourceStatus::Creating,
                attributes: Attributes::new(),
                dependencies: change.dependencies.clone(),
            };
            // An earlier run's record (its own intent) stays as it is, and its create records
            // one as before.
            if self.lock_journal().resources.contains_key(&change.address) {
                continue;
            }
            planned.push((change.address.clone(), id.clone(), intent));
        }
        let mut intents = self
            .planned_intents
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for (address, id, intent) in planned {
            let version = self.record(Change::Upsert(intent));
            intents.insert(address, (id, version));
        }
    }

    /// Drops the intent records written at the start whose create never began (skipped after
    /// a failure, interrupted, not evaluated): nothing was sent for them, and no earlier
    /// record was there (those addresses got none at the start).
    fn drop_unused_intents(&self) {
        let unused = std::mem::take(
            &mut *self
                .planned_intents
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        );
        for (address, (id, _)) in unused {
            if self
                .prior(&address)
                .is_some_and(|prior| prior.status == ResourceStatus::Creating && prior.id == id)
            {
                self.record(Change::Remove(address));
            }
        }
    }

    /// Creates and updates instance by instance, each as soon as the instances it references
    /// are applied and recorded, at most `parallelism` at a time besides the creates waiting
    /// for their intent record's write: a failure skips what references the failed instance,
    /// or its whole block.
    async fn apply_phase(&self, mut schedule: InstanceSchedule<'_>, parallelism: usize) {
        let mut running = FuturesUnordered::new();
        loop {
            while let Some(turn) = schedule.next_block() {
                self.visit_block(&mut schedule, turn);
            }
            while running.len() < parallelism.max(1) + self.writing_intents.load(Ordering::SeqCst) {
                let Some(turn) = schedule.next_instance() else {
                    break;
                };
                match self.evaluate_turn(&schedule, turn) {
                    Ok(instance) => running.push(async move {
                        let outcome = self.apply_instance_reported(&instance).await;
                        (turn, instance, outcome)
                    }),
                    Err(message) => {
                        self.lock_report().errors.push(message);
                        schedule.instance_ended(turn, false);
                    }
                }
            }
            if schedule.has_ready_block() {
                continue;
            }
            let ended = tokio::select! {
                biased;
                ended = running.next() => ended,
                // A create began waiting for a write: its place goes to the next instance.
                () = self.intent_waiting.notified() => continue,
            };
            let Some((turn, instance, outcome)) = ended else {
                break;
            };
            match outcome {
                Ok(exported) => {
                    record_instance(
                        &mut self.lock_values(),
                        &instance.block,
                        instance.key.as_deref(),
                        exported,
                    );
                    schedule.instance_ended(turn, true);
                }
                Err(message) => {
                    self.lock_report()
                        .errors
                        .push(format!("{}: {message}", instance.address));
                    schedule.instance_ended(turn, false);
                }
            }
        }
        let mut report = self.lock_report();
        report.skipped.extend(schedule.skipped());
        let unended = schedule.unended();
        if !unended.is_empty() && !self.stop.load(Ordering::SeqCst) {
            report.errors.push(format!(
                "internal: the apply ended before {} did; run `infra plan` to see what is left",
                unended.join(", ")
            ));
        }
    }

    /// Evaluates an input or output block, or a resource block's `for_each` into the
    /// instances the schedule then hands out one by one.
    fn visit_block(&self, schedule: &mut InstanceSchedule<'_>, turn: BlockTurn) {
        let block = schedule.block(turn).clone();
        if !matches!(block, BlockId::Resource { .. }) {
            let evaluated =
                evaluate_value_block(self.configuration, &block, &mut self.lock_values());
            if let Err(diagnostic) = &evaluated {
                self.lock_report().errors.push(diagnostic.to_string());
            }
            schedule.block_ended(turn, evaluated.is_ok());
            return;
        }
        let Some((module, resource)) = schedule.resource(turn) else {
            self.lock_report()
                .errors
                .push(format!("{block}: not in the configuration"));
            schedule.block_ended(turn, false);
            return;
        };
        let keys = {
            let mut values = self.lock_values();
            let keys = evaluate_keys(self.configuration, module, resource, &values);
            if resource.for_each.is_some() {
                // Instances are recorded one by one as they are applied; a block without any
                // is an empty map to whatever reads it whole.
                record_block(&mut values, &block, true, BTreeMap::new());
            }
            keys
        };
        match keys {
            Ok(keys) => schedule.expand(turn, keys),
            Err(diagnostics) => {
                self.lock_report().errors.push(joined(&diagnostics));
                schedule.block_ended(turn, false);
            }
        }
    }

    /// Evaluates one instance with the values its references really got.
    fn evaluate_turn(
        &self,
        schedule: &InstanceSchedule<'_>,
        turn: InstanceTurn,
    ) -> Result<InstanceConfig, String> {
        let view = schedule
            .instance(turn)
            .ok_or("internal: an instance of no resource block")?;
        let values = self.lock_values();
        evaluate_instance(
            self.configuration,
            view.module,
            view.resource,
            view.key,
            view.each_value,
            &values,
        )
        .map_err(|diagnostics| format!("{}: {}", view.address, joined(&diagnostics)))
    }

    fn lock_report(&self) -> std::sync::MutexGuard<'_, ApplyReport> {
        self.report
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn lock_journal(&self) -> std::sync::MutexGuard<'_, Journal> {
        self.journal
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn prior(&self, address: &str) -> Option<StateResource> {
        self.lock_journal()
            .resources
            .get(address)
            .map(|(resource, _)| resource.clone())
    }

    fn lock_values(&self) -> std::sync::MutexGuard<'_, Values> {
        self.values
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records a change in memory and returns its version; the writer persists it soon, in a
    /// write that may cover many changes.
    fn record(&self, change: Change) -> u64 {
        // Serialized before the journal is locked: the lock is held for map updates only.
        let serialized: Option<Arc<[u8]>> = match &change {
            Change::Upsert(resource) => Some(resource.to_bytes().into()),
            Change::Remove(_) | Change::Outputs(_) | Change::Persist => None,
        };
        let version = {
            let mut journal = self.lock_journal();
            match change {
                Change::Upsert(resource) => {
                    let serialized = serialized.unwrap_or_else(|| resource.to_bytes().into());
                    journal
                        .resources
                        .insert(resource.address.clone(), (resource, serialized));
                }
                Change::Remove(address) => {
                    journal.resources.remove(&address);
                }
                Change::Outputs(outputs) => journal.frame.outputs = outputs,
                Change::Persist => {}
            }
            journal.version += 1;
            journal.version
        };
        self.recorded.notify_one();
        version
    }

    /// Waits until the change of `version` is durable; the writer writes at once for it.
    async fn durable(&self, version: u64) -> Result<(), String> {
        let mut watching = self.durable.subscribe();
        self.waiting.fetch_add(1, Ordering::SeqCst);
        self.awaited.notify_one();
        let reached = watching
            .wait_for(|durable| durable.version >= version || durable.failure.is_some())
            .await
            .map(|reached| reached.failure.clone())
            .map_err(|error| error.to_string());
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        match reached? {
            Some(failure) => Err(format!("the state could not be saved: {failure}")),
            None => Ok(()),
        }
    }

    /// Waits, when nobody needs a write now, until `WRITE_INTERVAL` has passed since the last
    /// write started, or `WRITE_CPU_SHARE` times its document's assembly (for large states): a
    /// fast backend (local files) would otherwise assemble, hash and write the whole state
    /// again after every few changes, taking the cores the operations need, and an apply of N
    /// resources would spend time in N × its duration on it. An operation waiting for
    /// durability, or the end of the apply, cuts it short.
    async fn pace(&self, last_write: Option<(Instant, Duration)>) {
        let Some(due) = last_write
            .map(|(started, assembly)| started + WRITE_INTERVAL.max(assembly * WRITE_CPU_SHARE))
        else {
            return;
        };
        if self.waiting.load(Ordering::SeqCst) > 0 || self.lock_journal().finished {
            return;
        }
        tokio::select! {
            () = tokio::time::sleep_until(due.into()) => {}
            () = self.awaited.notified() => {}
        }
    }

    /// The one writer: whenever changes are recorded past what is durable, persists a snapshot
    /// of the latest state with the next serial. Writes are sequential, so a backend guarding
    /// each write with the generation of the last never races itself. A failed write stops
    /// writing (and starting operations); the caller keeps the unsaved state.
    async fn write_continuously(&self) {
        let mut written = 0;
        let mut last_write = None;
        loop {
            self.pace(last_write).await;
            let (pending, finished) = {
                let journal = self.lock_journal();
                (journal.version > written, journal.finished)
            };
            if !pending {
                if finished {
                    return;
                }
                self.recorded.notified().await;
                continue;
            }
            // Something is to be written: once the backend takes it, not cut short by a
            // waiting operation (Cloud Storage would refuse it, 429), with every change made
            // meanwhile.
            if let Some(allowed) = self.sink.next_write_at() {
                tokio::time::sleep_until(allowed.into()).await;
            }
            let snapshot = {
                let mut journal = self.lock_journal();
                if journal.version > written {
                    journal.frame.serial += 1;
                    // The document around the resources, and the resources as serialized:
                    // shared, not copied, under the lock.
                    let frame = journal.frame.clone();
                    let resources: Vec<Arc<[u8]>> = journal
                        .resources
                        .values()
                        .map(|(_, serialized)| serialized.clone())
                        .collect();
                    Some((frame, resources, journal.version))
                } else if journal.finished {
                    return;
                } else {
                    None
                }
            };
            let Some((frame, resources, version)) = snapshot else {
                self.recorded.notified().await;
                continue;
            };
            let started = Instant::now();
            let document = frame.to_bytes_around(&resources);
            drop(resources);
            last_write = Some((started, started.elapsed()));
            match self.sink.persist(document).await {
                Ok(()) => {
                    written = version;
                    self.durable
                        .send_modify(|durable| durable.version = version);
                }
                Err(message) => {
                    self.lock_report()
                        .errors
                        .push(format!("the state could not be saved: {message}"));
                    self.durable
                        .send_modify(|durable| durable.failure = Some(message));
                    return;
                }
            }
        }
    }

    /// Refuses to start an operation after an interrupt or a failed state write.
    fn may_start(&self) -> Result<(), String> {
        if self.stop.load(Ordering::SeqCst) {
            return Err("not started: interrupted".into());
        }
        if self.durable.borrow().failure.is_some() {
            return Err("not started: the state could not be saved".into());
        }
        Ok(())
    }

    async fn permit(&self) -> Result<tokio::sync::SemaphorePermit<'_>, String> {
        let permit = self
            .operations
            .acquire()
            .await
            .map_err(|error| error.to_string())?;
        self.may_start()?;
        Ok(permit)
    }

    /// Gives `operation` an API-call permit, reporting it started the first time.
    async fn take_turn<'e>(&'e self, operation: &mut Operation<'e>) -> Result<(), String> {
        let permit = self.permit().await?;
        if !operation.started {
            operation.started = true;
            self.progress
                .operation_started(operation.address, operation.action);
        }
        operation.permit = Some(permit);
        Ok(())
    }

    /// Performs one instance's planned action, reporting its end to `progress` (its start is
    /// reported once it gets its first permit, inside) before its permit is returned.
    async fn apply_instance_reported(
        &self,
        instance: &InstanceConfig,
    ) -> Result<Attributes, String> {
        let action = self
            .plan
            .change(&instance.address)
            .map_or(Action::NoOp, |change| change.action);
        let mut operation = Operation {
            address: &instance.address,
            action,
            permit: None,
            started: false,
        };
        let result = self.apply_instance(instance, &mut operation).await;
        if !matches!(action, Action::NoOp | Action::Delete) {
            self.progress.operation_finished(
                &instance.address,
                action,
                result.as_ref().err().map(String::as_str),
            );
        }
        drop(operation);
        result
    }

    /// Performs one instance's planned action and returns its exported attributes.
    async fn apply_instance<'e>(
        &'e self,
        instance: &'e InstanceConfig,
        operation: &mut Operation<'e>,
    ) -> Result<Attributes, String> {
        let change = self.plan.change(&instance.address).ok_or_else(|| {
            format!("not in the plan: the configuration changed since planning; run `infra plan --env {}` again", self.configuration.env.name)
        })?;
        let prior = self.prior(&instance.address);
        let context = self.context(&instance.address, prior.as_ref());
        if change.action == Action::NoOp
            && let Some(prior) = &prior
        {
            let rewritten = self.with_current_fingerprints(instance, prior.clone());
            if &rewritten != prior {
                self.record(Change::Upsert(rewritten));
            }
        }
        if matches!(change.action, Action::NoOp | Action::Delete) {
            let prior = match prior {
                Some(prior) if prior.status == ResourceStatus::Creating => {
                    Some(self.settle_intent(instance, prior).await?)
                }
                other => other,
            };
            return Ok(instance
                .kind
                .exported(&context, &instance.config, prior.as_ref(), false));
        }
        self.check_against_plan(instance, change, &context, prior.as_ref())?;
        let kind = instance.kind;
        let dependencies = change.dependencies.clone();
        let resource = match change.action {
            Action::Update => {
                let prior = prior.ok_or("nothing in state to update")?;
                self.take_turn(operation).await?;
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
                    // An update succeeded: the object exists, whatever an intent record said.
                    status: ResourceStatus::Created,
                    ..prior
                }
            }
            Action::Create | Action::Replace => {
                if change.action == Action::Replace
                    && let Some(prior) = &prior
                {
                    self.take_turn(operation).await?;
                    kind.delete(self.client, prior)
                        .await
                        .map_err(|error| error.to_string())?;
                    operation.permit = None;
                    self.record(Change::Remove(prior.address.clone()));
                    self.lock_report().destroyed += 1;
                }
                let fresh_context = if change.action == Action::Replace {
                    self.context(&instance.address, None)
                } else {
                    context.clone()
                };
                let interrupted = change.action == Action::Create
                    && prior
                        .as_ref()
                        .is_some_and(|prior| prior.status == ResourceStatus::Creating);
                self.create(
                    instance,
                    &fresh_context,
                    dependencies,
                    operation,
                    interrupted,
                )
                .await?
            }
            Action::NoOp | Action::Delete => unreachable_action(change.action)?,
        };
        let resource = self.with_current_fingerprints(instance, resource);
        let exported = kind.exported(&context, &instance.config, Some(&resource), false);
        self.record(Change::Upsert(resource));
        Ok(exported)
    }

    /// Returns the context a kind sees for one resource in this run.
    fn context(&self, address: &str, prior: Option<&StateResource>) -> KindContext {
        let lineage = self.lock_journal().frame.lineage.clone();
        kind_context(
            self.configuration,
            address,
            &lineage,
            self.fingerprint_key.as_ref(),
            prior,
        )
    }

    /// Returns the resource with its fingerprints in the current keyed form (older ones were
    /// confirmed against the configuration while planning), and an older build's salt dropped.
    /// Never fails: what was just written must be recorded, and a fingerprint left in the older
    /// form is still verified and rewritten by a later apply.
    fn with_current_fingerprints(
        &self,
        instance: &InstanceConfig,
        mut resource: StateResource,
    ) -> StateResource {
        if self.fingerprint_key.is_none() {
            return resource;
        }
        let context = self.context(&instance.address, Some(&resource));
        match instance
            .kind
            .refingerprint(&context, &instance.config, &resource)
        {
            Ok(Some(attributes)) => resource.attributes = attributes,
            Ok(None) => {}
            Err(error) => tracing::warn!(
                "{}: fingerprints left in their older form: {error}",
                instance.address
            ),
        }
        resource
    }

    /// Resolves an intent record the plan left alone (a create interrupted earlier, whose object
    /// now matches the configuration): reads the object and records it as created. An object
    /// that never came to be is planned as a create instead, so it does not reach here.
    async fn settle_intent(
        &self,
        instance: &InstanceConfig,
        prior: StateResource,
    ) -> Result<StateResource, String> {
        let permit = self.permit().await?;
        let live = instance
            .kind
            .read(self.client, &prior.id, Some(&prior))
            .await
            .map_err(|error| error.to_string())?;
        drop(permit);
        let Some(live) = live else {
            return Ok(prior);
        };
        let mut attributes = prior.attributes.clone();
        attributes.extend(live);
        let settled = StateResource {
            status: ResourceStatus::Created,
            attributes,
            ..prior
        };
        let recorded = settled.clone();
        self.record(Change::Upsert(recorded));
        Ok(settled)
    }

    async fn create<'e>(
        &'e self,
        instance: &InstanceConfig,
        context: &KindContext,
        dependencies: Vec<String>,
        operation: &mut Operation<'e>,
        interrupted: bool,
    ) -> Result<StateResource, String> {
        let kind = instance.kind;
        let mut pending = false;
        // The intent comes first, durable before the request, for kinds that could not find the
        // object again: if the process dies mid-create, the next run finds this record, reads
        // the object by id, and adopts it. No permit is held while the write happens.
        if kind.needs_intent_record()
            && let Some(id) = kind
                .resource_id(context, &instance.config)
                .or_else(|| kind.pending_id(context, &instance.config))
        {
            self.may_start()?;
            pending = kinds::is_pending_id(&id);
            // Written at the start with the id the plan knew: this create needs no write of
            // its own once that one is durable (at once, but for the first creates).
            let planned = self
                .planned_intents
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .remove(&instance.address)
                .filter(|(planned_id, _)| *planned_id == id)
                .map(|(_, version)| version);
            let version = match planned {
                Some(version) => version,
                None => self.record(Change::Upsert(StateResource {
                    address: instance.address.clone(),
                    kind: kind.name().to_string(),
                    id,
                    status: ResourceStatus::Creating,
                    attributes: Attributes::new(),
                    dependencies: dependencies.clone(),
                })),
            };
            if self.durable.borrow().version < version {
                self.writing_intents.fetch_add(1, Ordering::SeqCst);
                self.intent_waiting.notify_one();
                let written = self.durable(version).await;
                self.writing_intents.fetch_sub(1, Ordering::SeqCst);
                written?;
            }
        }
        self.take_turn(operation).await?;
        // After an interrupted create, what that run made may be too new to be listed: a kind
        // found again only by listing waits for the list before it creates.
        let outcome = if interrupted {
            kind.create_after_interruption(self.client, context, &instance.config)
                .await
        } else {
            kind.create(self.client, context, &instance.config).await
        };
        let created = match outcome {
            Ok(created) => created,
            Err(error @ KindError::Conflict { .. }) => {
                // Refused: the object at this id belongs to someone else and nothing was
                // created. Left in place, the intent would make the next run read it as ours.
                operation.permit = None;
                let version = self.record(Change::Remove(instance.address.clone()));
                self.durable(version).await?;
                return Err(error.to_string());
            }
            Err(error) if pending && error.proves_nothing_created() => {
                // Google refused the create itself (a 400, a 403): nothing was made. Left in
                // place, the pending record would make every later run wait the list lag for
                // an object that cannot exist. A client-named kind's record stays: its create
                // may be several requests, and its record costs one read, not a wait.
                operation.permit = None;
                let version = self.record(Change::Remove(instance.address.clone()));
                self.durable(version).await?;
                return Err(error.to_string());
            }
            Err(error) => return Err(error.to_string()),
        };
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
        // As the planner did: with the prior, so a fingerprint the plan kept is kept here too.
        let desired = instance
            .kind
            .desired(context, &instance.config, prior)
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

    /// Finishes the work kinds defer until everything depending on their objects has been
    /// applied (`Kind::deferred_field`): a secret's previous versions retire only now, once the
    /// Cloud Run services naming the new version rolled out — disabled earlier, a new instance
    /// of a revision still serving could not start. Only after an apply phase that applied
    /// everything: a failure, a skip, an interrupt or a narrowed (`--target`) plan may leave a
    /// dependent on the old version, so the work stays recorded in state, and the next plan
    /// shows it as an update that the next full apply finishes.
    async fn deferred_phase(&self, parallelism: usize) {
        if self.stop.load(Ordering::SeqCst) || !self.plan.targets.is_empty() {
            return;
        }
        {
            let report = self.lock_report();
            if !report.errors.is_empty() || !report.skipped.is_empty() {
                return;
            }
        }
        let pending: Vec<(StateResource, &'static dyn kinds::Kind)> = self
            .lock_journal()
            .resources
            .values()
            .filter(|(resource, _)| {
                self.plan
                    .change(&resource.address)
                    .is_some_and(|change| change.action != Action::Delete)
            })
            .filter_map(|(resource, _)| {
                let kind = kinds::find(&resource.kind)?;
                kinds::has_deferred_work(kind, resource).then(|| (resource.clone(), kind))
            })
            .collect();
        let failures: Vec<String> = futures::stream::iter(pending)
            .map(|(resource, kind)| async move {
                let permit = self.permit().await?;
                let attributes = kind
                    .finish_deferred(self.client, &resource)
                    .await
                    .map_err(|error| format!("{}: {error}", resource.address))?;
                drop(permit);
                self.record(Change::Upsert(StateResource {
                    attributes,
                    ..resource
                }));
                Ok::<(), String>(())
            })
            .buffer_unordered(parallelism.max(1))
            .filter_map(|result| async move { result.err() })
            .collect()
            .await;
        self.lock_report().errors.extend(failures);
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
                .prior(&change.address)
                .map(|resource| resource.dependencies)
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
        let Some(prior) = self.prior(&address) else {
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
        let permit = self.permit().await?;
        self.progress.operation_started(&address, Action::Delete);
        kind.delete(self.client, &prior)
            .await
            .map_err(|error| error.to_string())?;
        drop(permit);
        self.lock_report().destroyed += 1;
        self.record(Change::Remove(address));
        Ok(())
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

    fn record_outputs(&self) {
        // A targeted apply may leave untargeted objects uncreated: outputs stay as they were.
        if !self.plan.targets.is_empty() {
            return;
        }
        let outputs = self.evaluated_outputs();
        let unchanged = self.lock_journal().frame.outputs == outputs;
        if !unchanged {
            self.record(Change::Outputs(outputs));
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

/// Joins diagnostics into one message, one per line.
fn joined(diagnostics: &[crate::config::Diagnostic]) -> String {
    diagnostics
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

fn unreachable_action(action: Action) -> Result<StateResource, String> {
    Err(format!("internal: action {action:?} reached the executor"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emulator::realism::{FaultOptions, RealismOptions};
    use crate::emulator::{self, EmulatorOptions, RunningEmulator};
    use crate::gcp::Authentication;
    use crate::gcp::fingerprint_key::ensure_key;
    use crate::plan::{PlanOptions, make_plan};
    use std::net::{Ipv4Addr, SocketAddr};
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    const HEADER: &str = "[env]\nname = \"t\"\nproject = \"p\"\nregion = \"us-central1\"\n";

    /// `secret.a` per key, `iam_member.b` per key naming `secret.a[each.key]`, and `secret.all`
    /// reading `secret.a` whole through a splat.
    fn body(values: &str) -> String {
        format!(
            "[vars]\nvalues = {{ {values} }}\n\n\
             [resource.secret.a]\nfor_each = \"${{var.values}}\"\nsecret_id = \"a-${{each.key}}\"\n\
             value = \"v\"\nlabels = {{ v = \"${{each.value}}\" }}\n\n\
             [resource.iam_member.b]\nfor_each = \"${{var.values}}\"\nparent = \"${{secret.a[each.key].name}}\"\n\
             role = \"roles/secretmanager.secretAccessor\"\n\
             member = \"serviceAccount:reader@p.iam.gserviceaccount.com\"\n\n\
             [resource.secret.all]\nsecret_id = \"all\"\nvalue = \"${{join(',', secret.a[*].name)}}\"\n"
        )
    }

    struct Project {
        _root: tempfile::TempDir,
        configuration: Configuration,
    }

    fn project(body: &str) -> Project {
        let root = tempfile::tempdir().expect("tempdir");
        let path = root.path().join("envs/t/env.toml");
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, format!("{HEADER}{body}")).expect("write");
        let configuration = crate::config::load(root.path(), "t").expect("loads");
        Project {
            _root: root,
            configuration,
        }
    }

    /// Keeps nothing: these tests look at the order of operations, not at the state.
    struct NoSink;

    #[async_trait::async_trait]
    impl StateSink for NoSink {
        async fn persist(&self, _document: Vec<u8>) -> Result<(), String> {
            Ok(())
        }
    }

    /// Keeps, of every write, the addresses recorded as intents (a create not yet known to
    /// have happened), after a pause as long as a write to a faraway bucket takes.
    #[derive(Default)]
    struct SlowIntentSink {
        intents: Mutex<Vec<Vec<String>>>,
    }

    #[async_trait::async_trait]
    impl StateSink for SlowIntentSink {
        async fn persist(&self, document: Vec<u8>) -> Result<(), String> {
            let state =
                State::from_bytes(&document, "test", "t").map_err(|error| error.to_string())?;
            let intents = state
                .resources
                .iter()
                .filter(|resource| resource.status == ResourceStatus::Creating)
                .map(|resource| resource.address.clone())
                .collect();
            self.intents
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .push(intents);
            tokio::time::sleep(Duration::from_millis(300)).await;
            Ok(())
        }
    }

    /// Keeps the last document written.
    #[derive(Default)]
    struct LastDocument(Mutex<Vec<u8>>);

    #[async_trait::async_trait]
    impl StateSink for LastDocument {
        async fn persist(&self, document: Vec<u8>) -> Result<(), String> {
            *self
                .0
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()) = document;
            Ok(())
        }
    }

    /// Records operations as they start and end, and how many ran at once at most.
    #[derive(Default)]
    struct Recorder {
        events: Mutex<Vec<String>>,
        running: Mutex<std::collections::BTreeSet<String>>,
        peak: AtomicUsize,
    }

    impl Progress for Recorder {
        fn operation_started(&self, address: &str, _action: Action) {
            let mut running = self
                .running
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            running.insert(address.to_string());
            self.peak.fetch_max(running.len(), Ordering::SeqCst);
            self.push(format!("started {address}"));
        }

        // An operation refused before it started (it no longer matches the plan) ends too.
        fn operation_finished(&self, address: &str, _action: Action, error: Option<&str>) {
            self.running
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .remove(address);
            let verb = if error.is_some() {
                "failed"
            } else {
                "finished"
            };
            self.push(format!("{verb} {address}"));
        }
    }

    impl Recorder {
        fn push(&self, event: String) {
            self.events
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .push(event);
        }

        fn position(&self, event: &str) -> usize {
            let events = self
                .events
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            events
                .iter()
                .position(|recorded| recorded == event)
                .unwrap_or_else(|| panic!("no `{event}` in {events:#?}"))
        }
    }

    async fn start_emulator(
        latency: Duration,
        faults: FaultOptions,
    ) -> (RunningEmulator, GcpClient) {
        let options = EmulatorOptions {
            latency,
            realism: RealismOptions {
                faults,
                ..RealismOptions::off()
            },
            ..EmulatorOptions::default()
        };
        let running = emulator::start(options, SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
            .await
            .expect("emulator");
        let client =
            GcpClient::new(Some(running.base_url()), Authentication::None).expect("client");
        (running, client)
    }

    /// Plans `planned` from an empty state, then applies that plan with `applied` (the same
    /// configuration, unless a test changes it between plan and apply).
    async fn plan_and_apply(
        client: &GcpClient,
        planned: &Configuration,
        applied: &Configuration,
        parallelism: usize,
        progress: &dyn Progress,
    ) -> ApplyReport {
        plan_and_apply_to(&NoSink, client, planned, applied, parallelism, progress).await
    }

    /// Plans and applies like `plan_and_apply`, persisting state to `sink`.
    async fn plan_and_apply_to(
        sink: &dyn StateSink,
        client: &GcpClient,
        planned: &Configuration,
        applied: &Configuration,
        parallelism: usize,
        progress: &dyn Progress,
    ) -> ApplyReport {
        let fingerprint_key = Arc::new(ensure_key(client, "p", "t").await.expect("key"));
        let options = PlanOptions {
            fingerprint_key: Some(fingerprint_key.clone()),
            ..PlanOptions::default()
        };
        let empty = State::new("t");
        let plan = make_plan(planned, &empty, client, &options)
            .await
            .expect("plan");
        let (_, report) = apply_with_progress(
            applied,
            &plan,
            empty,
            client,
            sink,
            parallelism,
            &AtomicBool::new(false),
            Some(fingerprint_key),
            progress,
        )
        .await;
        report
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_instance_starts_once_the_instance_it_names_is_applied_and_a_splat_waits_for_all() {
        // Only secret.a["slow"]'s version is slow to answer: two seconds, against milliseconds
        // for everything else, so b["fast"] ends long before a["slow"] unless it waits for it.
        let faults = FaultOptions {
            slow_rate: 1.0,
            slow: Duration::from_secs(2),
            only: "secrets/a-slow:addVersion".into(),
            ..FaultOptions::default()
        };
        let (_emulator, client) = start_emulator(Duration::ZERO, faults).await;
        let project = project(&body("fast = \"1\", slow = \"1\""));
        let recorder = Recorder::default();
        let report = plan_and_apply(
            &client,
            &project.configuration,
            &project.configuration,
            10,
            &recorder,
        )
        .await;
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        let slow_done = recorder.position(r#"finished secret.a["slow"]"#);
        assert!(
            recorder.position(r#"finished iam_member.b["fast"]"#) < slow_done,
            "b[fast] waited for a[slow]"
        );
        assert!(recorder.position(r#"started iam_member.b["slow"]"#) > slow_done);
        assert!(
            recorder.position("started secret.all") > slow_done,
            "a splat waits for every instance"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_instance_skips_what_names_it_and_what_reads_its_block_whole_only() {
        let (_emulator, client) = start_emulator(Duration::ZERO, FaultOptions::default()).await;
        let planned = project(&body("good = \"1\", bad = \"1\""));
        // The label of a["bad"] changed after planning: it refuses to apply.
        let applied = project(&body("good = \"1\", bad = \"2\""));
        let recorder = Recorder::default();
        let report = plan_and_apply(
            &client,
            &planned.configuration,
            &applied.configuration,
            10,
            &recorder,
        )
        .await;
        assert_eq!(report.errors.len(), 1, "{:?}", report.errors);
        assert!(
            report.errors[0].starts_with(r#"secret.a["bad"]: now differs from the plan at labels"#),
            "{:?}",
            report.errors
        );
        assert_eq!(report.skipped, vec![r#"iam_member.b["bad"]"#, "secret.all"]);
        recorder.position(r#"finished iam_member.b["good"]"#);
        assert_eq!(report.added, 2, "a[good] and b[good]");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn planned_intents_share_the_first_write_and_one_never_begun_is_dropped() {
        // Both members' ids are known at plan time (their secrets' names are chosen here), so
        // the first write holds both intents before any create; iam_member.b["bad"] is then
        // skipped (its secret refuses to apply) and its intent must not outlive the apply.
        let (_emulator, client) = start_emulator(Duration::ZERO, FaultOptions::default()).await;
        let planned = project(&body("good = \"1\", bad = \"1\""));
        let applied = project(&body("good = \"1\", bad = \"2\""));
        let sink = SlowIntentSink::default();
        let report = plan_and_apply_to(
            &sink,
            &client,
            &planned.configuration,
            &applied.configuration,
            10,
            &NoProgress,
        )
        .await;
        assert_eq!(report.skipped, vec![r#"iam_member.b["bad"]"#, "secret.all"]);
        let writes = sink
            .intents
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        assert_eq!(
            writes.first(),
            Some(&vec![
                r#"iam_member.b["bad"]"#.to_string(),
                r#"iam_member.b["good"]"#.to_string(),
            ]),
            "the first write holds every planned intent: {writes:?}"
        );
        assert_eq!(
            writes.last(),
            Some(&Vec::new()),
            "the created member's intent became its record, the skipped one's is gone: {writes:?}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_create_waiting_for_its_intent_record_leaves_its_place_to_the_next_instance() {
        // Service accounts get an intent record before their create. Each write takes 300 ms,
        // each create a second. At parallelism 1 the second account's intent is recorded while
        // the first waits for its own write, and so written while the first is still creating;
        // had the first kept its place, the second would only begin once the first was done.
        let faults = FaultOptions {
            slow_rate: 1.0,
            slow: Duration::from_secs(1),
            only: "POST /v1/projects/p/serviceAccounts".into(),
            ..FaultOptions::default()
        };
        let (_emulator, client) = start_emulator(Duration::ZERO, faults).await;
        let project = project(
            "[resource.service_account.sa]\nfor_each = [\"first\", \"second\"]\naccount_id = \"sa-${each.key}\"\n",
        );
        let sink = SlowIntentSink::default();
        let recorder = Recorder::default();
        let report = plan_and_apply_to(
            &sink,
            &client,
            &project.configuration,
            &project.configuration,
            1,
            &recorder,
        )
        .await;
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        assert_eq!(report.added, 2);
        let writes = sink
            .intents
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        let both = vec![
            r#"service_account.sa["first"]"#.to_string(),
            r#"service_account.sa["second"]"#.to_string(),
        ];
        assert!(
            writes.contains(&both),
            "no write held both intents: {writes:?}"
        );
        assert_eq!(
            recorder.peak.load(Ordering::SeqCst),
            1,
            "one create at a time, as the parallelism says"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_document_written_from_kept_serializations_is_the_state_s_own() {
        let (_emulator, client) = start_emulator(Duration::ZERO, FaultOptions::default()).await;
        let project = project(&format!(
            "{}\n[output.names]\nvalue = \"${{secret.a[*].name}}\"\n",
            body("x = \"1\", y = \"2\"")
        ));
        let fingerprint_key = Arc::new(ensure_key(&client, "p", "t").await.expect("key"));
        let options = PlanOptions {
            fingerprint_key: Some(fingerprint_key.clone()),
            ..PlanOptions::default()
        };
        // A state that already holds a resource the configuration no longer has: deleted.
        let mut prior = State::new("t");
        let stale = StateResource {
            address: "secret.gone".into(),
            kind: "secret".into(),
            id: "projects/p/secrets/gone".into(),
            status: ResourceStatus::Created,
            attributes: Attributes::new(),
            dependencies: Vec::new(),
        };
        prior.upsert(stale);
        let plan = make_plan(&project.configuration, &prior, &client, &options)
            .await
            .expect("plan");
        let sink = LastDocument::default();
        let (state, report) = apply(
            &project.configuration,
            &plan,
            prior,
            &client,
            &sink,
            4,
            &AtomicBool::new(false),
            Some(fingerprint_key),
        )
        .await;
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        assert_eq!((report.added, report.destroyed), (5, 1));
        let written = sink
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        assert_eq!(
            String::from_utf8_lossy(&written),
            String::from_utf8_lossy(&state.to_bytes()),
            "what was written is the state returned, byte for byte"
        );
        assert!(!state.outputs.is_empty(), "the outputs are in it");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn no_more_operations_run_at_once_than_the_parallelism() {
        let (_emulator, client) =
            start_emulator(Duration::from_millis(20), FaultOptions::default()).await;
        let keys: Vec<String> = (0..6).map(|index| format!("k{index} = \"1\"")).collect();
        let project = project(&body(&keys.join(", ")));
        let recorder = Recorder::default();
        let report = plan_and_apply(
            &client,
            &project.configuration,
            &project.configuration,
            2,
            &recorder,
        )
        .await;
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        assert_eq!(report.added, 13);
        assert_eq!(recorder.peak.load(Ordering::SeqCst), 2);
    }
}
