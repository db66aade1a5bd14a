//! `bootstrap graph [--format dot|json] [STAGE|STEP]`: the needs graph.
//!
//! In dot, steps are boxes grouped in one cluster per stage, and an edge
//! `a -> b` means "a's output goes into b" (b needs a), so the graph reads in
//! the direction the bytes flow. `--reduce` draws only the edges that are
//! not implied by others.

use std::io::Write;

use serde::Serialize;

use super::{Context, write_json};
use super::Error;
use crate::plan::Plan;

/// Output formats of `graph`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Format {
    /// Graphviz dot.
    Dot,
    /// JSON (docs/json.md).
    Json,
}

/// Arguments of `graph`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Output format (`--json` is the same as `--format json`).
    #[arg(long, value_enum, default_value = "dot")]
    pub format: Format,
    /// Leave out each need a step also reaches through another of its needs (the transitive reduction): the same order, far fewer edges (the whole real chain: 260 of 2,521), so that `dot` draws it in a moment.
    #[arg(long)]
    pub reduce: bool,
    /// Only this stage or step and what it transitively needs.
    pub target: Option<String>,
}

#[derive(Serialize)]
struct Node<'a> {
    name: &'a str,
    stage: &'a str,
    definition_digest: String,
}

#[derive(Serialize)]
struct Edge<'a> {
    from: &'a str,
    to: &'a str,
}

/// The JSON document of `graph`.
#[derive(Serialize)]
struct Report<'a> {
    chain: &'a str,
    stages: Vec<&'a str>,
    nodes: Vec<Node<'a>>,
    edges: Vec<Edge<'a>>,
}

fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Runs `graph`.
pub fn run(cx: &Context, args: &Args, out: &mut dyn Write) -> Result<(), Error> {
    let chain = cx.load()?;
    let plan = Plan::new(&chain);
    let selected = plan.select(args.target.as_deref())?;
    let stages: Vec<&str> = chain.stages().iter().map(|s| s.name.as_str()).collect();
    let nodes: Vec<Node<'_>> = selected
        .iter()
        .map(|&i| {
            let step = chain.step(i);
            Node { name: &step.name, stage: &chain.stage(step.stage).name, definition_digest: plan.digest(i).to_string() }
        })
        .collect();
    let edges: Vec<Edge<'_>> =
        plan.edges(&selected, args.reduce).into_iter().map(|(n, i)| Edge { from: &chain.step(n).name, to: &chain.step(i).name }).collect();
    let report = Report { chain: &chain.decl.name, stages, nodes, edges };
    if cx.json || matches!(args.format, Format::Json) {
        return write_json(out, &report);
    }
    write_dot(&report, out).map_err(Error::Output)
}

fn write_dot(r: &Report<'_>, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(out, "digraph {} {{", quote(r.chain))?;
    writeln!(out, "  rankdir=LR;")?;
    writeln!(out, "  node [shape=box];")?;
    for (i, stage) in r.stages.iter().enumerate() {
        let members: Vec<&Node<'_>> = r.nodes.iter().filter(|n| n.stage == *stage).collect();
        if members.is_empty() {
            continue;
        }
        writeln!(out, "  subgraph cluster_{i} {{")?;
        writeln!(out, "    label={};", quote(stage))?;
        for n in members {
            writeln!(out, "    {};", quote(n.name))?;
        }
        writeln!(out, "  }}")?;
    }
    for e in &r.edges {
        writeln!(out, "  {} -> {};", quote(e.from), quote(e.to))?;
    }
    writeln!(out, "}}")
}
