//! Dependency graphs on petgraph: the block graph built from configuration references, cycle
//! detection that names the cycle in order, deterministic topological order, and the bounded
//! concurrent walk apply uses (a failed node skips its dependents, never its siblings).

use crate::config::error::{ConfigError, Diagnostic, DiagnosticCode};
use crate::config::load::{Scope, block_span, referenced_block};
use crate::config::{BlockId, Configuration};
use futures::stream::{FuturesUnordered, StreamExt};
use petgraph::Direction;
use petgraph::graph::{DiGraph, NodeIndex};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Display;
use std::future::Future;

/// A directed graph where an edge runs from a node to what it depends on.
#[derive(Debug, Clone)]
pub struct DependencyGraph<N: Ord + Clone> {
    graph: DiGraph<N, ()>,
    index: BTreeMap<N, NodeIndex>,
}

/// How a walk ended for each node.
#[derive(Debug, Default)]
pub struct WalkReport<N, E> {
    pub succeeded: Vec<N>,
    pub failed: Vec<(N, E)>,
    /// Nodes not run because something they depend on failed.
    pub skipped: Vec<N>,
}

impl<N: Ord + Clone + Display> Default for DependencyGraph<N> {
    fn default() -> Self {
        Self {
            graph: DiGraph::new(),
            index: BTreeMap::new(),
        }
    }
}

impl<N: Ord + Clone + Display> DependencyGraph<N> {
    /// Adds a node (once).
    pub fn add_node(&mut self, node: N) -> NodeIndex {
        if let Some(index) = self.index.get(&node) {
            return *index;
        }
        let index = self.graph.add_node(node.clone());
        self.index.insert(node, index);
        index
    }

    /// Records that `dependent` depends on `dependency`.
    pub fn add_dependency(&mut self, dependent: N, dependency: N) {
        let from = self.add_node(dependent);
        let to = self.add_node(dependency);
        if !self.graph.contains_edge(from, to) {
            self.graph.add_edge(from, to, ());
        }
    }

    /// Returns what a node depends on directly, sorted.
    pub fn dependencies(&self, node: &N) -> Vec<N> {
        self.neighbors(node, Direction::Outgoing)
    }

    /// Returns what depends on a node directly, sorted.
    pub fn dependents(&self, node: &N) -> Vec<N> {
        self.neighbors(node, Direction::Incoming)
    }

    fn neighbors(&self, node: &N, direction: Direction) -> Vec<N> {
        let Some(index) = self.index.get(node) else {
            return Vec::new();
        };
        let mut found: Vec<N> = self
            .graph
            .neighbors_directed(*index, direction)
            .map(|neighbor| self.graph[neighbor].clone())
            .collect();
        found.sort();
        found.dedup();
        found
    }

    /// Returns one cycle, in order and closed (`a, b, a`), if the graph has any.
    pub fn find_cycle(&self) -> Option<Vec<N>> {
        let components = petgraph::algo::tarjan_scc(&self.graph);
        let mut cycles: Vec<Vec<N>> = Vec::new();
        for component in components {
            let self_loop =
                component.len() == 1 && self.graph.contains_edge(component[0], component[0]);
            if component.len() < 2 && !self_loop {
                continue;
            }
            let members: BTreeSet<NodeIndex> = component.iter().copied().collect();
            let start = *component.iter().min_by_key(|index| &self.graph[**index])?;
            // Walk from the smallest member, always to the smallest unvisited member in the
            // component, until the walk returns to a visited node: that closes a cycle.
            let mut path = vec![start];
            loop {
                let current = *path.last()?;
                let mut next: Vec<NodeIndex> = self
                    .graph
                    .neighbors(current)
                    .filter(|neighbor| members.contains(neighbor))
                    .collect();
                next.sort_by(|left, right| self.graph[*left].cmp(&self.graph[*right]));
                let target = next.first().copied()?;
                if let Some(position) = path.iter().position(|visited| *visited == target) {
                    let mut cycle: Vec<N> = path[position..]
                        .iter()
                        .map(|index| self.graph[*index].clone())
                        .collect();
                    cycle.push(self.graph[target].clone());
                    cycles.push(cycle);
                    break;
                }
                path.push(target);
            }
        }
        cycles.sort();
        cycles.into_iter().next()
    }

    /// Returns the nodes so that every node comes after what it depends on; ties sorted.
    pub fn topological_order(&self) -> Result<Vec<N>, Vec<N>> {
        if let Some(cycle) = self.find_cycle() {
            return Err(cycle);
        }
        let mut remaining: BTreeMap<&N, usize> = self
            .index
            .keys()
            .map(|node| (node, self.dependencies(node).len()))
            .collect();
        let mut ready: BTreeSet<N> = remaining
            .iter()
            .filter(|(_, count)| **count == 0)
            .map(|(node, _)| (*node).clone())
            .collect();
        let mut order = Vec::with_capacity(self.index.len());
        while let Some(node) = ready.pop_first() {
            for dependent in self.dependents(&node) {
                if let Some(count) = remaining.get_mut(&dependent) {
                    *count -= 1;
                    if *count == 0 {
                        ready.insert(dependent);
                    }
                }
            }
            order.push(node);
        }
        Ok(order)
    }

    /// Runs `visit` on every node once its dependencies succeeded (or, `reverse`, once its
    /// dependents did), at most `parallelism` at a time. A failure skips everything that waits
    /// on the failed node; independent nodes carry on.
    pub async fn walk<E, F, Fut>(
        &self,
        parallelism: usize,
        reverse: bool,
        visit: F,
    ) -> WalkReport<N, E>
    where
        F: Fn(N) -> Fut,
        Fut: Future<Output = Result<(), E>>,
    {
        let upstream = |node: &N| {
            if reverse {
                self.dependents(node)
            } else {
                self.dependencies(node)
            }
        };
        let downstream = |node: &N| {
            if reverse {
                self.dependencies(node)
            } else {
                self.dependents(node)
            }
        };
        let mut waiting: BTreeMap<N, usize> = self
            .index
            .keys()
            .map(|node| (node.clone(), upstream(node).len()))
            .collect();
        let mut ready: BTreeSet<N> = waiting
            .iter()
            .filter(|(_, count)| **count == 0)
            .map(|(node, _)| node.clone())
            .collect();
        let mut report = WalkReport {
            succeeded: Vec::new(),
            failed: Vec::new(),
            skipped: Vec::new(),
        };
        let mut blocked: BTreeSet<N> = BTreeSet::new();
        let mut running = FuturesUnordered::new();
        let parallelism = parallelism.max(1);
        loop {
            while running.len() < parallelism {
                let Some(node) = ready.pop_first() else { break };
                let future = visit(node.clone());
                running.push(async move { (node, future.await) });
            }
            let Some((node, outcome)) = running.next().await else {
                break;
            };
            match outcome {
                Ok(()) => {
                    for next in downstream(&node) {
                        if let Some(count) = waiting.get_mut(&next) {
                            *count -= 1;
                            if *count == 0 && !blocked.contains(&next) {
                                ready.insert(next);
                            }
                        }
                    }
                    report.succeeded.push(node);
                }
                Err(error) => {
                    let mut stack = downstream(&node);
                    while let Some(next) = stack.pop() {
                        if blocked.insert(next.clone()) {
                            stack.extend(downstream(&next));
                        }
                    }
                    report.failed.push((node, error));
                }
            }
        }
        report.skipped = blocked.into_iter().collect();
        report
    }
}

/// Builds the graph of blocks (resources, module inputs, module outputs) from references and
/// `depends_on`; a cycle is a configuration error naming its blocks in order.
pub fn block_graph(configuration: &Configuration) -> Result<DependencyGraph<BlockId>, ConfigError> {
    let mut graph = DependencyGraph::default();
    let root = &configuration.modules[0];
    for module in &configuration.modules {
        let env_scope = module.name.is_empty();
        for resource in &module.resources {
            let id = BlockId::Resource {
                module: module.name.clone(),
                kind: resource.kind.clone(),
                name: resource.name.clone(),
            };
            graph.add_node(id.clone());
            let scope = Scope {
                module,
                each: resource.for_each.is_some(),
                env_scope,
            };
            for value in resource.for_each.iter().chain(resource.attributes.values()) {
                for traversal in value.traversals() {
                    if let Some(target) = referenced_block(configuration, &scope, traversal) {
                        graph.add_dependency(id.clone(), target);
                    }
                }
            }
            for (target, _) in &resource.depends_on {
                if let Some((kind, name)) = target.split_once('.') {
                    graph.add_dependency(
                        id.clone(),
                        BlockId::Resource {
                            module: module.name.clone(),
                            kind: kind.into(),
                            name: name.into(),
                        },
                    );
                }
            }
        }
        for (name, input) in &module.inputs {
            let id = BlockId::Input {
                module: module.name.clone(),
                name: name.clone(),
            };
            graph.add_node(id.clone());
            let (value, scope) = match module.arguments.get(name) {
                Some(argument) => (
                    Some(argument),
                    Scope {
                        module: root,
                        each: false,
                        env_scope: true,
                    },
                ),
                None => (
                    input.default.as_ref(),
                    Scope {
                        module,
                        each: false,
                        env_scope,
                    },
                ),
            };
            for traversal in value.into_iter().flat_map(|value| value.traversals()) {
                if let Some(target) = referenced_block(configuration, &scope, traversal) {
                    graph.add_dependency(id.clone(), target);
                }
            }
        }
        for (name, output) in &module.outputs {
            let id = BlockId::Output {
                module: module.name.clone(),
                name: name.clone(),
            };
            graph.add_node(id.clone());
            let scope = Scope {
                module,
                each: false,
                env_scope,
            };
            for traversal in output.value.traversals() {
                if let Some(target) = referenced_block(configuration, &scope, traversal) {
                    graph.add_dependency(id.clone(), target);
                }
            }
        }
    }
    if let Some(cycle) = graph.find_cycle() {
        let path: Vec<String> = cycle.iter().map(ToString::to_string).collect();
        let message = format!("dependency cycle: {}", path.join(" → "));
        let diagnostic = match block_span(configuration, &cycle[0]) {
            Some(span) => Diagnostic::new(DiagnosticCode::Cycle, &span, message),
            None => Diagnostic::unplaced(DiagnosticCode::Cycle, message),
        };
        return Err(diagnostic
            .with_hint("break the cycle: one of these references (or depends_on) must go")
            .into());
    }
    Ok(graph)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn graph(edges: &[(&'static str, &'static str)]) -> DependencyGraph<&'static str> {
        let mut graph = DependencyGraph::default();
        for (dependent, dependency) in edges {
            graph.add_dependency(*dependent, *dependency);
        }
        graph
    }

    #[test]
    fn topological_order_puts_dependencies_first() {
        let graph = graph(&[("c", "b"), ("b", "a"), ("d", "a")]);
        assert_eq!(
            graph.topological_order().expect("acyclic"),
            vec!["a", "b", "c", "d"]
        );
    }

    #[test]
    fn a_cycle_is_named_in_order() {
        let graph = graph(&[("a", "b"), ("b", "c"), ("c", "a"), ("d", "a")]);
        assert_eq!(graph.find_cycle().expect("cycle"), vec!["a", "b", "c", "a"]);
        assert!(graph.topological_order().is_err());
    }

    #[test]
    fn a_self_reference_is_a_cycle() {
        assert_eq!(
            graph(&[("a", "a")]).find_cycle().expect("cycle"),
            vec!["a", "a"]
        );
    }

    #[tokio::test]
    async fn walk_respects_order_and_bound() {
        let graph = graph(&[("b", "a"), ("c", "a"), ("d", "b"), ("d", "c"), ("e", "x")]);
        let order = Mutex::new(Vec::new());
        let running = AtomicUsize::new(0);
        let peak = AtomicUsize::new(0);
        let report = graph
            .walk(2, false, |node| {
                let (order, running, peak) = (&order, &running, &peak);
                async move {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    tokio::task::yield_now().await;
                    order.lock().expect("lock").push(node);
                    running.fetch_sub(1, Ordering::SeqCst);
                    Ok::<(), ()>(())
                }
            })
            .await;
        let order = order.into_inner().expect("lock");
        let position = |name| {
            order
                .iter()
                .position(|node| *node == name)
                .expect("visited")
        };
        assert!(
            position("a") < position("b")
                && position("b") < position("d")
                && position("c") < position("d")
        );
        assert_eq!(report.succeeded.len(), 6);
        assert!(peak.load(Ordering::SeqCst) <= 2);
        assert_eq!(
            peak.load(Ordering::SeqCst),
            2,
            "independent nodes ran together"
        );
    }

    #[tokio::test]
    async fn a_failure_skips_dependents_but_not_siblings() {
        let graph = graph(&[("b", "a"), ("c", "b"), ("y", "x")]);
        let report = graph
            .walk(4, false, |node| async move {
                if node == "a" { Err("boom") } else { Ok(()) }
            })
            .await;
        assert_eq!(report.failed, vec![("a", "boom")]);
        assert_eq!(report.skipped, vec!["b", "c"]);
        let mut succeeded = report.succeeded.clone();
        succeeded.sort();
        assert_eq!(succeeded, vec!["x", "y"]);
    }

    #[tokio::test]
    async fn reverse_walk_runs_dependents_first() {
        let graph = graph(&[("b", "a")]);
        let order = Mutex::new(Vec::new());
        graph
            .walk(4, true, |node| {
                let order = &order;
                async move {
                    order.lock().expect("lock").push(node);
                    Ok::<(), ()>(())
                }
            })
            .await;
        assert_eq!(order.into_inner().expect("lock"), vec!["b", "a"]);
    }
}
