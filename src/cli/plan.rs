//! `bootstrap plan [STAGE|STEP]`: the execution order, with each step's
//! needs and definition digest.

use std::io::Write;

use serde::Serialize;

use super::{Context, write_json};
use super::Error;
use crate::plan::Plan;

/// Arguments of `plan`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A stage or step; everything it transitively needs is included. Default: the whole chain.
    pub target: Option<String>,
}

/// One step of the plan (docs/json.md).
#[derive(Serialize)]
struct PlannedStep<'a> {
    stage: &'a str,
    step: &'a str,
    needs: Vec<&'a str>,
    sources: Vec<&'a str>,
    root: &'static str,
    unverified: bool,
    definition_digest: String,
}

/// The JSON document of `plan`.
#[derive(Serialize)]
struct Report<'a> {
    chain: &'a str,
    target: Option<&'a str>,
    steps: Vec<PlannedStep<'a>>,
    /// How many of them can run at once, per seed.
    width: crate::plan::Width,
    /// The chain's seeds: a verify runs each step once on each.
    seeds: usize,
}

/// Runs `plan`.
pub fn run(cx: &Context, args: &Args, out: &mut dyn Write) -> Result<(), Error> {
    let chain = cx.load()?;
    let plan = Plan::new(&chain);
    let selected = plan.select(args.target.as_deref())?;
    let steps: Vec<PlannedStep<'_>> = selected
        .iter()
        .map(|&i| {
            let s = chain.step(i);
            PlannedStep {
                stage: &chain.stage(s.stage).name,
                step: &s.name,
                needs: s.needs.iter().map(|n| n.name.as_str()).collect(),
                sources: s.sources.iter().map(|n| n.name.as_str()).collect(),
                root: s.root.as_str(),
                unverified: s.unverified,
                definition_digest: plan.digest(i).to_string(),
            }
        })
        .collect();
    let width = plan.width(&selected);
    let report = Report { chain: &chain.decl.name, target: args.target.as_deref(), steps, width, seeds: chain.seeds.len() };
    if cx.json {
        return write_json(out, &report);
    }
    write_human(&report, out).map_err(Error::Output)
}

fn write_human(r: &Report<'_>, out: &mut dyn Write) -> std::io::Result<()> {
    let what = r.target.map_or_else(|| format!("chain {}", r.chain), |t| format!("`{t}`"));
    writeln!(out, "plan for {what}: {} step(s) in execution order", r.steps.len())?;
    let num = r.steps.len().to_string().len().max(1);
    let stage_w = r.steps.iter().map(|s| s.stage.len()).max().unwrap_or(5).max(5);
    let step_w = r.steps.iter().map(|s| s.step.len()).max().unwrap_or(4).max(4);
    writeln!(out, "  {:>num$}  {:<stage_w$}  {:<step_w$}  {:<19}  needs", "#", "stage", "step", "definition")?;
    for (i, s) in r.steps.iter().enumerate() {
        let short = &s.definition_digest[..s.definition_digest.len().min(19)];
        let needs = if s.needs.is_empty() { "-".to_owned() } else { s.needs.join(", ") };
        let mark = if s.unverified { "  (unverified)" } else { "" };
        writeln!(out, "  {:>num$}  {:<stage_w$}  {:<step_w$}  {short:<19}  {needs}{mark}", i + 1, s.stage, s.step)?;
    }
    let w = r.width;
    writeln!(
        out,
        "at most {} step(s) can run at once per seed ({} level(s) of needs); verifying on {} seeds keeps at most {} worker(s) busy",
        w.widest,
        w.levels,
        r.seeds,
        w.widest * r.seeds
    )?;
    Ok(())
}
