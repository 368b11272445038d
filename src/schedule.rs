//! The order apply runs resource instances in: an instance waits only for the instances it
//! references, not for their whole blocks. A reference `kind.name[INDEX]` into a `for_each`
//! block, whose INDEX reads nothing but `each`, `var`, `env`, literals and functions, names one
//! instance: INDEX is evaluated with the dependent instance's own `each`. Every other reference
//! (a splat, one in `for_each`, `depends_on`, an index computed from another resource, a module
//! input or output) waits for the whole block, and a whole block is done when all its instances
//! are. A failure skips exactly what waits on the failed instance or block.
//!
//! A state machine without I/O or evaluation of attributes: the executor evaluates and applies
//! what `next_block` and `next_instance` hand out and reports how each ended. Every step costs
//! O(log N) per edge, and an instance has edges only to what it references.

use crate::config::eval::{EvalScope, Evaluator, Values};
use crate::config::expr::{Expression, Step};
use crate::config::load::{Scope, referenced_block};
use crate::config::{
    BlockId, ConfigError, Configuration, ModuleInstance, ResourceBlock, instance_address,
};
use crate::graph::block_graph;
use crate::value::Value;
use std::collections::{BTreeMap, BTreeSet};

/// Which blocks and instances may run now, given how the ones before them ended.
pub struct InstanceSchedule<'a> {
    configuration: &'a Configuration,
    blocks: Vec<BlockNode<'a>>,
    instances: Vec<InstanceNode>,
    ready_blocks: BTreeSet<usize>,
    ready_instances: BTreeSet<usize>,
    /// Instances waiting for an instance of a block whose keys are not known yet, by the block
    /// and the key they reference.
    awaiting_expansion: BTreeMap<(usize, String), Vec<usize>>,
    skipped: BTreeSet<String>,
}

/// A block handed out by `next_block`: evaluate it (an input or output) or its `for_each`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockTurn(usize);

/// An instance handed out by `next_instance`: evaluate and apply it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InstanceTurn(usize);

/// What the executor needs to evaluate one instance.
pub struct InstanceView<'s> {
    pub module: &'s ModuleInstance,
    pub resource: &'s ResourceBlock,
    pub block: &'s BlockId,
    pub key: Option<&'s str>,
    pub each_value: &'s Value,
    pub address: &'s str,
}

struct BlockNode<'a> {
    id: BlockId,
    resource: Option<(&'a ModuleInstance, &'a ResourceBlock)>,
    /// References that pick one instance of another block, resolved per instance.
    keyed: Vec<KeyedReference<'a>>,
    /// Whole blocks this one still waits for.
    waiting_for: usize,
    /// What waits for this whole block.
    waiters: Vec<Waiter>,
    state: BlockState,
    /// Its instances by key, once its `for_each` is evaluated.
    instances: BTreeMap<Option<String>, usize>,
    expanded: bool,
    unfinished: usize,
    any_failed: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BlockState {
    Waiting,
    Ready,
    Handed,
    Succeeded,
    Failed,
}

struct KeyedReference<'a> {
    target: usize,
    index: &'a Expression,
}

#[derive(Debug, Clone, Copy)]
enum Waiter {
    Block(usize),
    Instance(usize),
}

struct InstanceNode {
    block: usize,
    key: Option<String>,
    each_value: Value,
    address: String,
    waiting_for: usize,
    /// Instances that reference this one.
    waiters: Vec<usize>,
    state: InstanceState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InstanceState {
    Waiting,
    Ready,
    Handed,
    Succeeded,
    Failed,
}

/// Something ended; processed from a work list so that long chains of skips need no recursion.
enum Ended {
    Block(usize, bool),
    Instance(usize, bool),
}

impl<'a> InstanceSchedule<'a> {
    /// Builds the schedule of a configuration; a dependency cycle is the block graph's error.
    pub fn new(configuration: &'a Configuration) -> Result<Self, ConfigError> {
        let graph = block_graph(configuration)?;
        let order = graph.topological_order().unwrap_or_default();
        let index: BTreeMap<&BlockId, usize> = order
            .iter()
            .enumerate()
            .map(|(position, id)| (id, position))
            .collect();
        let mut blocks: Vec<BlockNode<'a>> = order
            .iter()
            .map(|id| BlockNode {
                id: id.clone(),
                resource: resource_of(configuration, id),
                keyed: Vec::new(),
                waiting_for: 0,
                waiters: Vec::new(),
                state: BlockState::Waiting,
                instances: BTreeMap::new(),
                expanded: false,
                unfinished: 0,
                any_failed: false,
            })
            .collect();
        for (position, id) in order.iter().enumerate() {
            let (keyed, keyed_only) = match blocks[position].resource {
                Some((module, resource)) => keyed_references(configuration, module, resource),
                None => (Vec::new(), BTreeSet::new()),
            };
            for dependency in graph.dependencies(id) {
                if keyed_only.contains(&dependency) {
                    continue;
                }
                let Some(&target) = index.get(&dependency) else {
                    continue;
                };
                blocks[target].waiters.push(Waiter::Block(position));
                blocks[position].waiting_for += 1;
            }
            blocks[position].keyed = keyed
                .into_iter()
                .filter(|(target, _)| keyed_only.contains(target))
                .filter_map(|(target, index_expression)| {
                    Some(KeyedReference {
                        target: *index.get(&target)?,
                        index: index_expression,
                    })
                })
                .collect();
        }
        let ready_blocks = blocks
            .iter_mut()
            .enumerate()
            .filter(|(_, block)| block.waiting_for == 0)
            .map(|(position, block)| {
                block.state = BlockState::Ready;
                position
            })
            .collect();
        Ok(Self {
            configuration,
            blocks,
            instances: Vec::new(),
            ready_blocks,
            ready_instances: BTreeSet::new(),
            awaiting_expansion: BTreeMap::new(),
            skipped: BTreeSet::new(),
        })
    }

    /// Hands out a block whose dependencies are all done, if there is one.
    pub fn next_block(&mut self) -> Option<BlockTurn> {
        let position = self.ready_blocks.pop_first()?;
        self.blocks[position].state = BlockState::Handed;
        Some(BlockTurn(position))
    }

    /// Returns whether a block is ready to be handed out.
    pub fn has_ready_block(&self) -> bool {
        !self.ready_blocks.is_empty()
    }

    /// Returns the block of a turn.
    pub fn block(&self, turn: BlockTurn) -> &BlockId {
        &self.blocks[turn.0].id
    }

    /// Returns the module and resource block of a turn, for a resource block.
    pub fn resource(&self, turn: BlockTurn) -> Option<(&'a ModuleInstance, &'a ResourceBlock)> {
        self.blocks[turn.0].resource
    }

    /// Records how an input or output block (or a resource block whose `for_each` could not
    /// be evaluated) ended.
    pub fn block_ended(&mut self, turn: BlockTurn, succeeded: bool) {
        self.process(Ended::Block(turn.0, succeeded));
    }

    /// Records a resource block's instances (its `for_each` keys and `each.value`s) and works
    /// out which instances each of them waits for. A block without instances is done at once.
    pub fn expand(&mut self, turn: BlockTurn, keys: Vec<(Option<String>, Value)>) {
        let position = turn.0;
        let Some((module, resource)) = self.blocks[position].resource else {
            self.process(Ended::Block(position, true));
            return;
        };
        let first = self.instances.len();
        for (key, each_value) in keys {
            let address =
                instance_address(&module.name, &resource.kind, &resource.name, key.as_deref());
            let instance = self.instances.len();
            self.blocks[position]
                .instances
                .insert(key.clone(), instance);
            self.instances.push(InstanceNode {
                block: position,
                key,
                each_value,
                address,
                waiting_for: 0,
                waiters: Vec::new(),
                state: InstanceState::Waiting,
            });
        }
        let created = self.instances.len() - first;
        self.blocks[position].expanded = true;
        self.blocks[position].unfinished = created;
        // Instances that referenced a key of this block before its keys were known: a key it
        // does not have is left to evaluation, which names it.
        let pending: Vec<(usize, String)> = self
            .awaiting_expansion
            .range((position, String::new())..(position + 1, String::new()))
            .map(|(slot, _)| slot.clone())
            .collect();
        let mut ended = Vec::new();
        for slot in pending {
            let waiters = self.awaiting_expansion.remove(&slot).unwrap_or_default();
            match self.blocks[position].instances.get(&Some(slot.1)) {
                Some(&instance) => self.instances[instance].waiters.extend(waiters),
                None => ended.extend(waiters),
            }
        }
        for waiter in ended {
            self.satisfy(Waiter::Instance(waiter));
        }
        let no_values = Values::default();
        let evaluator = Evaluator::new(self.configuration, &no_values);
        let env_scope = module.name.is_empty();
        for instance in first..first + created {
            let mut instance_keys: BTreeSet<(usize, Option<String>)> = BTreeSet::new();
            for reference in &self.blocks[position].keyed {
                let node = &self.instances[instance];
                let scope = EvalScope {
                    module,
                    env_scope,
                    each: node.key.as_deref().map(|key| (key, &node.each_value)),
                };
                instance_keys.insert((
                    reference.target,
                    evaluator.index_key(reference.index, scope),
                ));
            }
            let mut skip = false;
            for (target, key) in instance_keys {
                match self.wait_for(instance, target, key) {
                    Wait::Done => {}
                    Wait::Registered => self.instances[instance].waiting_for += 1,
                    Wait::Failed => skip = true,
                }
            }
            if skip {
                self.skipped
                    .insert(self.instances[instance].address.clone());
                self.process(Ended::Instance(instance, false));
            } else if self.instances[instance].waiting_for == 0 {
                self.instances[instance].state = InstanceState::Ready;
                self.ready_instances.insert(instance);
            }
        }
        if created == 0 {
            self.process(Ended::Block(position, true));
        }
    }

    /// Hands out an instance whose references are all applied, if there is one.
    pub fn next_instance(&mut self) -> Option<InstanceTurn> {
        let instance = self.ready_instances.pop_first()?;
        self.instances[instance].state = InstanceState::Handed;
        Some(InstanceTurn(instance))
    }

    /// Returns what evaluating an instance takes.
    pub fn instance(&self, turn: InstanceTurn) -> Option<InstanceView<'_>> {
        let node = &self.instances[turn.0];
        let block = &self.blocks[node.block];
        let (module, resource) = block.resource?;
        Some(InstanceView {
            module,
            resource,
            block: &block.id,
            key: node.key.as_deref(),
            each_value: &node.each_value,
            address: &node.address,
        })
    }

    /// Records how an instance ended.
    pub fn instance_ended(&mut self, turn: InstanceTurn, succeeded: bool) {
        self.process(Ended::Instance(turn.0, succeeded));
    }

    /// Returns what was skipped because something it waits for failed: instance addresses
    /// where an instance waited for one instance, block names where a block waited for a
    /// whole block. Sorted.
    pub fn skipped(&self) -> Vec<String> {
        self.skipped.iter().cloned().collect()
    }

    /// Returns the blocks that have not ended, by name. Empty once every block and instance
    /// handed out has ended; anything left is a defect of the schedule, which the executor
    /// reports rather than letting an apply end with work silently undone.
    pub fn unended(&self) -> Vec<String> {
        self.blocks
            .iter()
            .filter(|block| !matches!(block.state, BlockState::Succeeded | BlockState::Failed))
            .map(|block| block.id.to_string())
            .collect()
    }

    /// Registers `instance` as waiting for instance `key` of block `target` (the whole block
    /// when the key is not known).
    fn wait_for(&mut self, instance: usize, target: usize, key: Option<String>) -> Wait {
        let block = &mut self.blocks[target];
        let Some(key) = key else {
            return match block.state {
                BlockState::Succeeded => Wait::Done,
                BlockState::Failed => Wait::Failed,
                _ => {
                    block.waiters.push(Waiter::Instance(instance));
                    Wait::Registered
                }
            };
        };
        if !block.expanded {
            match block.state {
                BlockState::Failed => return Wait::Failed,
                // Done without instances of its own (not a resource block): nothing to wait for.
                BlockState::Succeeded => return Wait::Done,
                _ => {}
            }
            self.awaiting_expansion
                .entry((target, key))
                .or_default()
                .push(instance);
            return Wait::Registered;
        }
        let Some(&referenced) = block.instances.get(&Some(key)) else {
            return Wait::Done;
        };
        match self.instances[referenced].state {
            InstanceState::Succeeded => Wait::Done,
            InstanceState::Failed => Wait::Failed,
            _ => {
                self.instances[referenced].waiters.push(instance);
                Wait::Registered
            }
        }
    }

    fn satisfy(&mut self, waiter: Waiter) {
        match waiter {
            Waiter::Block(position) => {
                let block = &mut self.blocks[position];
                if block.state == BlockState::Waiting {
                    block.waiting_for -= 1;
                    if block.waiting_for == 0 {
                        block.state = BlockState::Ready;
                        self.ready_blocks.insert(position);
                    }
                }
            }
            Waiter::Instance(instance) => {
                let node = &mut self.instances[instance];
                if node.state == InstanceState::Waiting {
                    node.waiting_for -= 1;
                    if node.waiting_for == 0 {
                        node.state = InstanceState::Ready;
                        self.ready_instances.insert(instance);
                    }
                }
            }
        }
    }

    fn process(&mut self, first: Ended) {
        let mut work = vec![first];
        while let Some(ended) = work.pop() {
            match ended {
                Ended::Instance(instance, succeeded) => {
                    let node = &mut self.instances[instance];
                    if matches!(node.state, InstanceState::Succeeded | InstanceState::Failed) {
                        continue;
                    }
                    node.state = if succeeded {
                        InstanceState::Succeeded
                    } else {
                        InstanceState::Failed
                    };
                    for waiter in std::mem::take(&mut node.waiters) {
                        if succeeded {
                            self.satisfy(Waiter::Instance(waiter));
                        } else if self.instances[waiter].state == InstanceState::Waiting {
                            self.skipped.insert(self.instances[waiter].address.clone());
                            work.push(Ended::Instance(waiter, false));
                        }
                    }
                    let position = self.instances[instance].block;
                    let block = &mut self.blocks[position];
                    block.unfinished -= 1;
                    block.any_failed |= !succeeded;
                    if block.unfinished == 0 {
                        work.push(Ended::Block(position, !block.any_failed));
                    }
                }
                Ended::Block(position, succeeded) => {
                    let block = &mut self.blocks[position];
                    if matches!(block.state, BlockState::Succeeded | BlockState::Failed) {
                        continue;
                    }
                    block.state = if succeeded {
                        BlockState::Succeeded
                    } else {
                        BlockState::Failed
                    };
                    for waiter in std::mem::take(&mut block.waiters) {
                        if succeeded {
                            self.satisfy(waiter);
                            continue;
                        }
                        match waiter {
                            Waiter::Block(dependent)
                                if self.blocks[dependent].state == BlockState::Waiting =>
                            {
                                self.skipped.insert(self.blocks[dependent].id.to_string());
                                work.push(Ended::Block(dependent, false));
                            }
                            Waiter::Instance(dependent)
                                if self.instances[dependent].state == InstanceState::Waiting =>
                            {
                                self.skipped
                                    .insert(self.instances[dependent].address.clone());
                                work.push(Ended::Instance(dependent, false));
                            }
                            _ => {}
                        }
                    }
                    if !self.blocks[position].expanded {
                        // Never expanded: what waited for one of its instances waits in vain.
                        let pending: Vec<(usize, String)> = self
                            .awaiting_expansion
                            .range((position, String::new())..(position + 1, String::new()))
                            .map(|(slot, _)| slot.clone())
                            .collect();
                        for slot in pending {
                            for waiter in self.awaiting_expansion.remove(&slot).unwrap_or_default()
                            {
                                if self.instances[waiter].state == InstanceState::Waiting {
                                    self.skipped.insert(self.instances[waiter].address.clone());
                                    work.push(Ended::Instance(waiter, false));
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

enum Wait {
    Done,
    Registered,
    Failed,
}

fn resource_of<'a>(
    configuration: &'a Configuration,
    id: &BlockId,
) -> Option<(&'a ModuleInstance, &'a ResourceBlock)> {
    let BlockId::Resource { module, kind, name } = id else {
        return None;
    };
    let module = configuration
        .modules
        .iter()
        .find(|candidate| &candidate.name == module)?;
    Some((module, module.resource(kind, name)?))
}

/// Returns a resource block's references that pick one instance of a `for_each` block by an
/// index computed from `each`, `var`, `env` and literals alone, and the blocks referenced
/// only that way (every other reference waits for its whole block).
fn keyed_references<'a>(
    configuration: &Configuration,
    module: &ModuleInstance,
    resource: &'a ResourceBlock,
) -> (Vec<(BlockId, &'a Expression)>, BTreeSet<BlockId>) {
    let scope = Scope {
        module,
        each: resource.for_each.is_some(),
        env_scope: module.name.is_empty(),
    };
    let mut keyed = Vec::new();
    let mut whole: BTreeSet<BlockId> = BTreeSet::new();
    for traversal in resource
        .for_each
        .iter()
        .flat_map(|value| value.traversals())
    {
        whole.extend(referenced_block(configuration, &scope, traversal));
    }
    for (target, _) in &resource.depends_on {
        if let Some((kind, name)) = target.split_once('.') {
            whole.insert(BlockId::Resource {
                module: module.name.clone(),
                kind: kind.into(),
                name: name.into(),
            });
        }
    }
    for traversal in resource
        .attributes
        .values()
        .flat_map(|value| value.traversals())
    {
        let Some(target) = referenced_block(configuration, &scope, traversal) else {
            continue;
        };
        let picks_one = match (&target, traversal.steps.get(1)) {
            (BlockId::Resource { kind, name, .. }, Some(Step::Index(index))) => {
                module
                    .resource(kind, name)
                    .is_some_and(|block| block.for_each.is_some())
                    && index
                        .traversals()
                        .iter()
                        .all(|inner| matches!(inner.root.as_str(), "each" | "var" | "env"))
            }
            _ => false,
        };
        match (picks_one, traversal.steps.get(1)) {
            (true, Some(Step::Index(index))) => keyed.push((target, &**index)),
            _ => {
                whole.insert(target);
            }
        }
    }
    let keyed_only = keyed
        .iter()
        .map(|(target, _)| target.clone())
        .filter(|target| !whole.contains(target))
        .collect();
    (keyed, keyed_only)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::planner::evaluate_keys;

    const HEADER: &str = "[env]\nname = \"t\"\nproject = \"p\"\nregion = \"r\"\n[vars]\nkeys = [\"x\", \"y\"]\nindex = \"y\"\n";

    const MEMBER: &str = "role = \"roles/secretmanager.secretAccessor\"\nmember = \"serviceAccount:r@p.iam.gserviceaccount.com\"\n";

    fn configuration(body: &str) -> (tempfile::TempDir, Configuration) {
        let root = tempfile::tempdir().expect("tempdir");
        let path = root.path().join("envs/t/env.toml");
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, format!("{HEADER}{body}")).expect("write");
        let configuration = crate::config::load(root.path(), "t").expect("loads");
        (root, configuration)
    }

    /// Hands out every block (each `for_each` evaluated against no applied values) and returns
    /// the addresses of the instances ready now.
    fn expand_all(schedule: &mut InstanceSchedule<'_>, configuration: &Configuration) {
        while let Some(turn) = schedule.next_block() {
            match schedule.resource(turn) {
                Some((module, resource)) => {
                    let keys = evaluate_keys(configuration, module, resource, &Values::default())
                        .expect("keys");
                    schedule.expand(turn, keys);
                }
                None => schedule.block_ended(turn, true),
            }
        }
    }

    /// Takes every instance ready now, by address.
    fn take_ready(schedule: &mut InstanceSchedule<'_>) -> BTreeMap<String, InstanceTurn> {
        let mut ready = BTreeMap::new();
        while let Some(turn) = schedule.next_instance() {
            let address = schedule
                .instance(turn)
                .expect("instance")
                .address
                .to_string();
            ready.insert(address, turn);
        }
        ready
    }

    fn names(ready: &BTreeMap<String, InstanceTurn>) -> Vec<&str> {
        ready.keys().map(String::as_str).collect()
    }

    #[test]
    fn an_instance_waits_for_the_instance_its_index_names_only() {
        let (_root, configuration) = configuration(&format!(
            "[resource.secret.a]\nfor_each = \"${{var.keys}}\"\nsecret_id = \"a-${{each.key}}\"\n\
             [resource.iam_member.b]\nfor_each = \"${{var.keys}}\"\nparent = \"${{secret.a[each.key].name}}\"\n{MEMBER}\
             [resource.iam_member.c]\nparent = \"${{secret.a[var.index].name}}\"\n{MEMBER}"
        ));
        let mut schedule = InstanceSchedule::new(&configuration).expect("schedule");
        expand_all(&mut schedule, &configuration);
        let first = take_ready(&mut schedule);
        assert_eq!(names(&first), vec![r#"secret.a["x"]"#, r#"secret.a["y"]"#]);
        assert_eq!(
            schedule.unended(),
            vec!["secret.a", "iam_member.b", "iam_member.c"],
            "nothing ended yet"
        );
        schedule.instance_ended(first[r#"secret.a["x"]"#], true);
        assert_eq!(
            names(&take_ready(&mut schedule)),
            vec![r#"iam_member.b["x"]"#],
            "b[x] starts while a[y] still runs; c names a[y] through var.index"
        );
        schedule.instance_ended(first[r#"secret.a["y"]"#], true);
        assert_eq!(
            names(&take_ready(&mut schedule)),
            vec![r#"iam_member.b["y"]"#, "iam_member.c"]
        );
    }

    #[test]
    fn a_splat_an_index_read_from_a_resource_and_depends_on_wait_for_the_whole_block() {
        let (_root, configuration) = configuration(&format!(
            "[resource.secret.a]\nfor_each = \"${{var.keys}}\"\nsecret_id = \"a-${{each.key}}\"\n\
             [resource.secret.pick]\nsecret_id = \"y\"\n\
             [resource.secret.all]\nsecret_id = \"all\"\nvalue = \"${{join(',', secret.a[*].name)}}\"\n\
             [resource.iam_member.computed]\nparent = \"${{secret.a[secret.pick.secret_id].name}}\"\n{MEMBER}\
             [resource.iam_member.after]\nfor_each = \"${{var.keys}}\"\nparent = \"p-${{each.key}}\"\ndepends_on = [\"secret.a\"]\n{MEMBER}"
        ));
        let mut schedule = InstanceSchedule::new(&configuration).expect("schedule");
        expand_all(&mut schedule, &configuration);
        let first = take_ready(&mut schedule);
        assert_eq!(
            names(&first),
            vec![r#"secret.a["x"]"#, r#"secret.a["y"]"#, "secret.pick"]
        );
        schedule.instance_ended(first["secret.pick"], true);
        schedule.instance_ended(first[r#"secret.a["y"]"#], true);
        expand_all(&mut schedule, &configuration);
        assert!(
            take_ready(&mut schedule).is_empty(),
            "nothing reading secret.a whole starts before a[x] is done"
        );
        schedule.instance_ended(first[r#"secret.a["x"]"#], true);
        expand_all(&mut schedule, &configuration);
        assert_eq!(
            names(&take_ready(&mut schedule)),
            vec![
                r#"iam_member.after["x"]"#,
                r#"iam_member.after["y"]"#,
                "iam_member.computed",
                "secret.all"
            ]
        );
    }

    #[test]
    fn a_failed_instance_skips_only_what_names_it_and_what_reads_its_block_whole() {
        let (_root, configuration) = configuration(&format!(
            "[resource.secret.a]\nfor_each = \"${{var.keys}}\"\nsecret_id = \"a-${{each.key}}\"\n\
             [resource.iam_member.b]\nfor_each = \"${{var.keys}}\"\nparent = \"${{secret.a[each.key].name}}\"\n{MEMBER}\
             [resource.secret.all]\nsecret_id = \"all\"\nvalue = \"${{join(',', secret.a[*].name)}}\"\n\
             [resource.secret.after_all]\nsecret_id = \"${{secret.all.secret_id}}-2\"\n\
             [output.names]\nvalue = \"${{iam_member.b[*].parent}}\"\n"
        ));
        let mut schedule = InstanceSchedule::new(&configuration).expect("schedule");
        expand_all(&mut schedule, &configuration);
        let first = take_ready(&mut schedule);
        schedule.instance_ended(first[r#"secret.a["x"]"#], false);
        schedule.instance_ended(first[r#"secret.a["y"]"#], true);
        expand_all(&mut schedule, &configuration);
        let second = take_ready(&mut schedule);
        assert_eq!(names(&second), vec![r#"iam_member.b["y"]"#]);
        schedule.instance_ended(second[r#"iam_member.b["y"]"#], true);
        expand_all(&mut schedule, &configuration);
        assert!(take_ready(&mut schedule).is_empty());
        assert_eq!(schedule.unended(), Vec::<String>::new(), "everything ended");
        assert_eq!(
            schedule.skipped(),
            vec![
                "iam_member.b[\"x\"]",
                "output.names",
                "secret.after_all",
                "secret.all"
            ]
        );
    }

    #[test]
    fn an_instance_named_before_its_block_is_expanded_waits_for_that_instance() {
        // secret.a's keys come from secret.keys, so iam_member.b is expanded first.
        let (_root, configuration) = configuration(&format!(
            "[resource.secret.keys]\nsecret_id = \"keys\"\nlabels = {{ x = \"1\", y = \"1\" }}\n\
             [resource.secret.a]\nfor_each = \"${{secret.keys.labels}}\"\nsecret_id = \"a-${{each.key}}\"\n\
             [resource.iam_member.b]\nfor_each = \"${{var.keys}}\"\nparent = \"${{secret.a[each.key].name}}\"\n{MEMBER}"
        ));
        let mut schedule = InstanceSchedule::new(&configuration).expect("schedule");
        expand_all(&mut schedule, &configuration);
        let first = take_ready(&mut schedule);
        assert_eq!(names(&first), vec!["secret.keys"], "b waits for a's keys");
        schedule.instance_ended(first["secret.keys"], true);
        let turn = schedule.next_block().expect("secret.a is ready");
        assert_eq!(schedule.block(turn).to_string(), "secret.a");
        schedule.expand(
            turn,
            vec![
                (Some("x".into()), Value::string("1")),
                (Some("y".into()), Value::string("1")),
            ],
        );
        let second = take_ready(&mut schedule);
        assert_eq!(names(&second), vec![r#"secret.a["x"]"#, r#"secret.a["y"]"#]);
        schedule.instance_ended(second[r#"secret.a["y"]"#], true);
        assert_eq!(
            names(&take_ready(&mut schedule)),
            vec![r#"iam_member.b["y"]"#]
        );
    }

    #[test]
    fn a_block_whose_keys_fail_skips_the_instances_waiting_for_them() {
        let (_root, configuration) = configuration(&format!(
            "[resource.secret.keys]\nsecret_id = \"keys\"\nlabels = {{ x = \"1\" }}\n\
             [resource.secret.a]\nfor_each = \"${{secret.keys.labels}}\"\nsecret_id = \"a-${{each.key}}\"\n\
             [resource.iam_member.b]\nfor_each = \"${{var.keys}}\"\nparent = \"${{secret.a[each.key].name}}\"\n{MEMBER}"
        ));
        let mut schedule = InstanceSchedule::new(&configuration).expect("schedule");
        expand_all(&mut schedule, &configuration);
        let first = take_ready(&mut schedule);
        schedule.instance_ended(first["secret.keys"], true);
        let turn = schedule.next_block().expect("secret.a is ready");
        // Its for_each did not evaluate: no instance of it will ever exist.
        schedule.block_ended(turn, false);
        assert!(take_ready(&mut schedule).is_empty());
        assert!(schedule.next_block().is_none());
        assert_eq!(
            schedule.skipped(),
            vec![r#"iam_member.b["x"]"#, r#"iam_member.b["y"]"#]
        );
    }
}
