//! Rules that span files: unique names, resolvable references, stage order,
//! no cycles, at least two seeds. Runs on the items of every file after each
//! file was parsed on its own, and builds the [`Chain`] when nothing is wrong.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use miette::{LabeledSpan, SourceSpan};
use petgraph::algo::tarjan_scc;
use petgraph::graph::{DiGraph, NodeIndex};

use super::diag::{ChainDiagnostic as D, Elsewhere, Src, did_you_mean};
use super::model::{Chain, ChainDecl, ChainFile, Seed, Source, SourceId, Span, Step, StepId};

/// Everything the loader gathered from all files.
pub(crate) struct Gathered {
    pub files: Vec<ChainFile>,
    pub srcs: Vec<Src>,
    pub main_file: usize,
    pub decl: ChainDecl,
    pub seeds: Vec<Seed>,
    pub sources: Vec<Source>,
    pub steps: Vec<Step>,
}

/// Where something is: file index and span.
#[derive(Clone, Copy)]
struct At {
    file: usize,
    span: Span,
}

/// What kind of name a duplicate is of.
#[derive(Clone, Copy)]
enum Kind {
    Seed,
    Source,
    Step,
}

fn duplicate(srcs: &[Src], kind: Kind, name: &str, again: At, first: At) -> D {
    let src = srcs[again.file].clone();
    let span: SourceSpan = again.span.into();
    let (first_here, elsewhere) = if first.file == again.file {
        (Some(first.span.into()), Vec::new())
    } else {
        let e = Elsewhere {
            message: format!("`{name}` is first declared in {}", srcs[first.file].name()),
            src: srcs[first.file].clone(),
            span: first.span.into(),
            label: "first declared here".to_owned(),
        };
        (None, vec![e])
    };
    let name = name.to_owned();
    match kind {
        Kind::Seed => D::DuplicateSeed { src, span, first: first_here, elsewhere, name },
        Kind::Source => D::DuplicateSource { src, span, first: first_here, elsewhere, name },
        Kind::Step => D::DuplicateStep { src, span, first: first_here, elsewhere, name },
    }
}

/// Indexes names, reporting every later declaration of a name already seen.
fn index<'a>(
    srcs: &[Src],
    kind: Kind,
    items: impl Iterator<Item = (&'a str, At)>,
    diags: &mut Vec<D>,
) -> BTreeMap<String, usize> {
    let mut map = BTreeMap::new();
    let mut at: HashMap<&str, At> = HashMap::new();
    for (i, (name, here)) in items.enumerate() {
        if let Some(&first) = at.get(name) {
            diags.push(duplicate(srcs, kind, name, here, first));
        } else {
            at.insert(name, here);
            map.insert(name.to_owned(), i);
        }
    }
    map
}

/// Checks every cross-file rule; returns the chain when all hold.
pub(crate) fn validate(g: Gathered, diags: &mut Vec<D>) -> Option<Chain> {
    let srcs = &g.srcs;
    let main = g.main_file;

    let mut stage_at: HashMap<&str, Span> = HashMap::new();
    for stage in &g.decl.stages {
        if let Some(first) = stage_at.get(stage.name.as_str()) {
            diags.push(D::DuplicateStage {
                src: srcs[main].clone(),
                span: stage.span.into(),
                first: (*first).into(),
                name: stage.name.clone(),
            });
        } else {
            stage_at.insert(&stage.name, stage.span);
        }
    }

    let seed_index = index(srcs, Kind::Seed, g.seeds.iter().map(|s| (s.name.as_str(), At { file: s.file, span: s.span })), diags);
    if seed_index.len() < 2 {
        diags.push(D::TooFewSeeds { src: srcs[main].clone(), span: g.decl.span.into(), count: seed_index.len() });
    }
    let source_index: BTreeMap<String, SourceId> =
        index(srcs, Kind::Source, g.sources.iter().map(|s| (s.name.as_str(), At { file: s.file, span: s.span })), diags)
            .into_iter()
            .map(|(name, i)| (name, SourceId(i)))
            .collect();
    let step_index: BTreeMap<String, StepId> =
        index(srcs, Kind::Step, g.steps.iter().map(|s| (s.name.as_str(), At { file: s.file, span: s.span })), diags)
            .into_iter()
            .map(|(name, i)| (name, StepId(i)))
            .collect();
    // `build`, `plan`, `fetch`, `graph` and `audit` take a stage or a step
    // by name: one name must not mean both.
    for step in g.steps.iter().filter(|s| stage_at.contains_key(s.name.as_str())) {
        diags.push(D::StepNamedLikeStage { src: srcs[step.file].clone(), span: step.span.into(), name: step.name.clone() });
    }

    // References, and the needs graph over the edges that are allowed.
    let mut graph: DiGraph<StepId, Span> = DiGraph::with_capacity(g.steps.len(), g.steps.len() * 2);
    for i in 0..g.steps.len() {
        graph.add_node(StepId(i));
    }
    let mut need_ids: Vec<Vec<StepId>> = Vec::with_capacity(g.steps.len());
    let mut source_ids: Vec<Vec<SourceId>> = Vec::with_capacity(g.steps.len());
    for (i, step) in g.steps.iter().enumerate() {
        let src = &srcs[step.file];
        let mut ids = Vec::with_capacity(step.sources.len());
        for used in &step.sources {
            if let Some(&k) = source_index.get(&used.name) {
                ids.push(k);
            } else {
                let help = did_you_mean(&used.name, source_index.keys().map(String::as_str)).unwrap_or_else(|| {
                    format!("declare it: source \"{}\" {{ url \"…\"; sha256 \"…\" }} in chain/sources.kdl or a stage file", used.name)
                });
                diags.push(D::UnknownSource {
                    src: src.clone(),
                    span: used.span.into(),
                    step: step.name.clone(),
                    name: used.name.clone(),
                    help,
                });
            }
        }
        source_ids.push(ids);
        let mut ids = Vec::with_capacity(step.needs.len());
        for need in &step.needs {
            let Some(&j) = step_index.get(&need.name) else {
                let help = did_you_mean(&need.name, step_index.keys().map(String::as_str))
                    .unwrap_or_else(|| "`needs` names a step declared in this or an earlier stage".to_owned());
                diags.push(D::UnknownNeed {
                    src: src.clone(),
                    span: need.span.into(),
                    step: step.name.clone(),
                    name: need.name.clone(),
                    help,
                });
                continue;
            };
            let needed = &g.steps[j.index()];
            if needed.stage > step.stage {
                diags.push(D::LaterStageNeed {
                    src: src.clone(),
                    span: need.span.into(),
                    declared: vec![Elsewhere {
                        message: format!("`{}` is declared in {}", needed.name, srcs[needed.file].name()),
                        src: srcs[needed.file].clone(),
                        span: needed.span.into(),
                        label: format!("in {}", g.decl.stages[needed.stage.index()].name),
                    }],
                    step: step.name.clone(),
                    stage: g.decl.stages[step.stage.index()].name.clone(),
                    name: need.name.clone(),
                    need_stage: g.decl.stages[needed.stage.index()].name.clone(),
                });
                continue;
            }
            graph.add_edge(NodeIndex::new(i), NodeIndex::new(j.index()), need.span);
            ids.push(j);
        }
        need_ids.push(ids);
    }
    cycles(&graph, &g.steps, srcs, diags);

    if !diags.is_empty() {
        return None;
    }
    Some(Chain {
        dir: std::path::PathBuf::new(),
        files: g.files,
        decl: g.decl,
        main_file: main,
        seeds: g.seeds,
        sources: g.sources,
        steps: g.steps,
        step_index,
        source_index,
        need_ids,
        source_ids,
    })
}

/// Reports each strongly connected set of steps (and each self-need) once.
fn cycles(graph: &DiGraph<StepId, Span>, steps: &[Step], srcs: &[Src], diags: &mut Vec<D>) {
    let mut sccs: Vec<Vec<NodeIndex>> = tarjan_scc(graph)
        .into_iter()
        .filter(|c| c.len() > 1 || graph.contains_edge(c[0], c[0]))
        .collect();
    for c in &mut sccs {
        c.sort();
    }
    sccs.sort();
    for members in sccs {
        let set: HashSet<NodeIndex> = members.iter().copied().collect();
        let start = members[0];
        let path = cycle_through(graph, start, &set);
        let path_text = path
            .iter()
            .chain(std::iter::once(&start))
            .map(|n| steps[n.index()].name.as_str())
            .collect::<Vec<_>>()
            .join(" → ");
        let file = steps[start.index()].file;
        let mut spans = Vec::new();
        let mut elsewhere = Vec::new();
        for &m in &members {
            let step = &steps[m.index()];
            for edge in graph.edges(m) {
                use petgraph::visit::EdgeRef;
                if !set.contains(&edge.target()) {
                    continue;
                }
                let label = format!("`{}` needs `{}`", step.name, steps[edge.target().index()].name);
                let span: SourceSpan = (*edge.weight()).into();
                if step.file == file {
                    spans.push(LabeledSpan::new_with_span(Some(label), span));
                } else {
                    elsewhere.push(Elsewhere {
                        message: format!("`{}` in {} is part of the cycle", step.name, srcs[step.file].name()),
                        src: srcs[step.file].clone(),
                        span,
                        label,
                    });
                }
            }
        }
        spans.sort_by_key(|s| s.offset());
        diags.push(D::Cycle { src: srcs[file].clone(), spans, elsewhere, path: path_text });
    }
}

/// The shortest path from `start` back to itself inside `set` (without the
/// final return to `start`).
fn cycle_through(graph: &DiGraph<StepId, Span>, start: NodeIndex, set: &HashSet<NodeIndex>) -> Vec<NodeIndex> {
    let mut prev: HashMap<NodeIndex, NodeIndex> = HashMap::new();
    let mut queue = VecDeque::from([start]);
    let mut seen = HashSet::from([start]);
    while let Some(n) = queue.pop_front() {
        let mut next: Vec<NodeIndex> = graph.neighbors(n).filter(|t| set.contains(t)).collect();
        next.sort();
        for t in next {
            if t == start {
                let mut path = vec![n];
                let mut cur = n;
                while cur != start {
                    cur = prev[&cur];
                    path.push(cur);
                }
                path.reverse();
                // `path` starts at `start` and ends at `n`, which needs `start`.
                return path;
            }
            if seen.insert(t) {
                prev.insert(t, n);
                queue.push_back(t);
            }
        }
    }
    vec![start]
}
