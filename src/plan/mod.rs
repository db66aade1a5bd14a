//! Planning: the needs DAG over a loaded chain, the execution order, what a
//! target transitively needs, and each step's definition digest.
//!
//! The order is deterministic: stage by stage (a need never points to a
//! later stage), and within a stage a topological order that prefers the
//! step declared first (file name order, then position in the file). The
//! same chain always gives the same order, whatever the hash seeds or
//! thread scheduling.

pub mod digest;

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use miette::Diagnostic;
use petgraph::graph::{DiGraph, NodeIndex};
use thiserror::Error;

use crate::chain::{Chain, StageId, StepId};
use crate::hash::Blake3;

pub use digest::{SANDBOX_CONTRACT_VERSION, definition_digest};

/// A target that names neither a stage nor a step.
#[derive(Debug, Error, Diagnostic)]
#[error("`{target}` is neither a stage nor a step of this chain")]
#[diagnostic(code(bootstrap::plan::unknown_target))]
pub struct UnknownTarget {
    /// The target as given.
    pub target: String,
    /// A close name, or the stages.
    #[help]
    pub help: String,
}

/// The needs graph of a chain with its order and digests.
#[derive(Debug)]
pub struct Plan<'c> {
    /// The chain planned.
    pub chain: &'c Chain,
    /// Edge `a → b` means step `a` needs step `b`; node `i` is the step
    /// whose [`StepId::index`] is `i`, and holds its id.
    pub graph: DiGraph<StepId, ()>,
    /// Every step, in execution order.
    pub order: Vec<StepId>,
    /// Definition digest per step, by [`StepId::index`] ([`Plan::digest`]).
    digests: Vec<Blake3>,
}

/// How many steps of a selection can run at once ([`Plan::width`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Width {
    /// The length of the longest chain of needs, in steps.
    pub levels: usize,
    /// The most steps of one level.
    pub widest: usize,
}

impl<'c> Plan<'c> {
    /// Plans the whole chain. The chain's invariants (acyclic, resolved)
    /// guarantee an order exists.
    pub fn new(chain: &'c Chain) -> Self {
        let n = chain.steps.len();
        let mut graph = DiGraph::with_capacity(n, n * 2);
        for i in chain.step_ids() {
            graph.add_node(i);
        }
        // Per step, by index: the steps that need it, and how many of its
        // needs are not yet ordered.
        let mut dependents: Vec<Vec<StepId>> = vec![Vec::new(); n];
        let mut pending: Vec<usize> = vec![0; n];
        for i in chain.step_ids() {
            for &j in chain.needs_of(i) {
                graph.add_edge(NodeIndex::new(i.index()), NodeIndex::new(j.index()), ());
                dependents[j.index()].push(i);
                pending[i.index()] += 1;
            }
        }
        // Kahn's algorithm, always taking the lowest ready id.
        let mut ready: BinaryHeap<Reverse<StepId>> = chain.step_ids().filter(|i| pending[i.index()] == 0).map(Reverse).collect();
        let mut order = Vec::with_capacity(n);
        while let Some(Reverse(i)) = ready.pop() {
            order.push(i);
            for &d in &dependents[i.index()] {
                pending[d.index()] -= 1;
                if pending[d.index()] == 0 {
                    ready.push(Reverse(d));
                }
            }
        }
        let mut digests = vec![Blake3([0; 32]); n];
        let mut buf = Vec::with_capacity(4096);
        for &i in &order {
            digests[i.index()] = definition_digest(chain, i, &digests, &mut buf);
        }
        Plan { chain, graph, order, digests }
    }

    /// How wide `selection` (a closed set of steps, as [`Plan::select`]
    /// gives) is: each step's level is one more than its deepest need's,
    /// and the steps of one level can all run at once. The number of
    /// levels, and the most steps any level holds: with S seeds, at most
    /// S times that many steps ever run at once (what a cluster can keep
    /// busy).
    pub fn width(&self, selection: &[StepId]) -> Width {
        let chain = self.chain;
        let mut level: std::collections::HashMap<StepId, usize> = std::collections::HashMap::new();
        // `selection` is in execution order: needs come first.
        for &i in selection {
            let l = chain.needs_of(i).iter().filter_map(|j| level.get(j)).max().map_or(0, |m| m + 1);
            level.insert(i, l);
        }
        let levels = level.values().max().map_or(0, |m| m + 1);
        let mut count = vec![0usize; levels];
        for &l in level.values() {
            count[l] += 1;
        }
        let widest = count.iter().copied().max().unwrap_or(0);
        Width { levels, widest }
    }

    /// The needs of `selection` (a closed set, in execution order) as edges
    /// `(need, step)`, each step's in the order written; with `reduce`,
    /// without an edge whose need the step also reaches through another of
    /// its needs (the transitive reduction: the same order of steps, far
    /// fewer lines to draw; a step's root still holds only its direct
    /// needs' layers, which the full list shows).
    pub fn edges(&self, selection: &[StepId], reduce: bool) -> Vec<(StepId, StepId)> {
        let chain = self.chain;
        // What each step reaches through its needs, built in execution order.
        let mut reach: std::collections::HashMap<StepId, std::collections::HashSet<StepId>> = std::collections::HashMap::new();
        let mut out = Vec::new();
        for &i in selection {
            let needs = chain.needs_of(i);
            for &n in needs {
                let implied = reduce && needs.iter().any(|&m| m != n && reach.get(&m).is_some_and(|r| r.contains(&n)));
                if !implied {
                    out.push((n, i));
                }
            }
            let mut r: std::collections::HashSet<StepId> = std::collections::HashSet::new();
            for &n in needs {
                r.insert(n);
                if let Some(rn) = reach.get(&n) {
                    r.extend(rn.iter().copied());
                }
            }
            reach.insert(i, r);
        }
        out
    }

    /// The steps to run for `target` (a stage or a step; `None` for the
    /// whole chain), with everything they transitively need, in execution
    /// order.
    pub fn select(&self, target: Option<&str>) -> Result<Vec<StepId>, UnknownTarget> {
        let chain = self.chain;
        let Some(target) = target else { return Ok(self.order.clone()) };
        let roots: Vec<StepId> = if let Some(stage) = chain.stage_id(target) {
            chain.steps_in(stage).collect()
        } else if let Some(step) = chain.step_id(target) {
            vec![step]
        } else {
            let names = chain.stages().iter().map(|s| s.name.as_str()).chain(chain.steps.iter().map(|s| s.name.as_str()));
            let help = crate::chain::diag::did_you_mean(target, names).unwrap_or_else(|| {
                let stages: Vec<&str> = chain.stages().iter().map(|s| s.name.as_str()).collect();
                format!("the stages are {}; `bootstrap check` lists them", stages.join(", "))
            });
            return Err(UnknownTarget { target: target.to_owned(), help });
        };
        let mut wanted = vec![false; chain.steps.len()];
        let mut stack = roots;
        while let Some(i) = stack.pop() {
            if std::mem::replace(&mut wanted[i.index()], true) {
                continue;
            }
            stack.extend(self.graph.neighbors(NodeIndex::new(i.index())).map(|n| self.graph[n]));
        }
        Ok(self.order.iter().copied().filter(|i| wanted[i.index()]).collect())
    }

    /// The definition digest of step `id`.
    pub fn digest(&self, id: StepId) -> Blake3 {
        self.digests[id.index()]
    }

    /// The steps of stages up to and including `last`, in execution order
    /// (what verifying or re-rooting through `last` runs).
    pub fn through(&self, last: StageId) -> Vec<StepId> {
        self.order.iter().copied().filter(|&i| self.chain.step(i).stage <= last).collect()
    }

    /// The steps of stage `stage`, in execution order.
    pub fn in_stage(&self, stage: StageId) -> Vec<StepId> {
        self.order.iter().copied().filter(|&i| self.chain.step(i).stage == stage).collect()
    }
}

/// The stage called `name`, for commands that take a stage (not a step): a
/// step's name points to its stage, anything else to a close stage name or
/// the list of stages.
pub fn stage_target(chain: &Chain, name: &str) -> Result<StageId, UnknownTarget> {
    chain.stage_id(name).ok_or_else(|| {
        let stages = || chain.stages().iter().map(|s| s.name.as_str());
        let help = match chain.step_id(name) {
            Some(i) => format!("`{name}` is a step; name its stage: `{}`", chain.stage(chain.step(i).stage).name),
            None => crate::chain::diag::did_you_mean(name, stages())
                .unwrap_or_else(|| format!("the stages are {}", stages().collect::<Vec<_>>().join(", "))),
        };
        UnknownTarget { target: name.to_string(), help }
    })
}

/// The sources the given steps mount, in declaration order, each once.
pub fn sources_of<'c>(chain: &'c Chain, steps: &[StepId]) -> Vec<&'c crate::chain::Source> {
    let mut used = vec![false; chain.sources.len()];
    for &i in steps {
        for &k in chain.source_ids_of(i) {
            used[k.index()] = true;
        }
    }
    chain.sources.iter().zip(used).filter(|(_, u)| *u).map(|(s, _)| s).collect()
}
