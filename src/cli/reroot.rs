//! `bootstrap reroot --seed NAME=ROOTFS|IMAGE [--replace OLD] [--write] [STAGE]`:
//! the packager's check. Runs every stage up to STAGE (default: the last)
//! on the new seed's own lineage, compares every step with the signed
//! snapshots ([`crate::verify::reroot`]) and reports per stage converged or
//! diverged, with the files that differ. Exit 0 only when every stage
//! converged; `--write` then adds the seed to `chain/chain.kdl` (in place
//! of OLD with `--replace`), changing nothing else in the file.

use std::io::Write;

use super::{Context, write_json};
use super::Error;
use super::refused::{NotConverged, RerootError};
use crate::build::{SeedArg, seed};
use crate::session::Run;
use crate::chain::model::{Seed, Span};
use crate::plan::Plan;
use crate::store::LockMode;
use crate::verify::reroot::{Convergence, StageCompare, compare_stage};
use crate::sign::snapshot::Snapshot;

/// Arguments of `reroot`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Compare stages up to this one [default: the last].
    pub stage: Option<String>,
    /// The new seed: NAME=DIR or NAME=TARBALL (local backend), NAME=IMAGE (oci).
    #[arg(long = "seed", value_name = "NAME=ROOTFS|IMAGE")]
    pub seed: String,
    /// The declared seed the new one replaces (with --write).
    #[arg(long, value_name = "OLD")]
    pub replace: Option<String>,
    /// When every stage converged, add the seed to chain/chain.kdl (replacing OLD).
    #[arg(long)]
    pub write: bool,
}

/// The seed node `--write` adds.
fn seed_node(name: &str, root: &seed::SeedRoot, location: &std::path::Path, replaced: Option<&str>) -> Result<String, String> {
    let was = replaced.map(|o| format!(" in place of `{o}`")).unwrap_or_default();
    let mut node = format!(
        "seed \"{name}\" {{\n    description \"added by `bootstrap reroot`{was}: every stage converged with the signed snapshots; root {}\"\n",
        root.digest
    );
    match &root.root {
        crate::exec::Root::Image(_) => node.push_str(&format!("    image \"{}\"\n", root.origin.trim_start_matches("image "))),
        _ if location.is_file() => {
            let abs = std::fs::canonicalize(location).map_err(|e| format!("{}: {e}", location.display()))?;
            let bytes = std::fs::read(&abs).map_err(|e| format!("{}: {e}", abs.display()))?;
            let sha = crate::hash::to_hex(&<sha2::Sha256 as sha2::Digest>::digest(&bytes));
            node.push_str(&format!("    rootfs \"file://{}\" sha256=\"{sha}\"\n", abs.display()));
        }
        // A directory has no pinned form: it is given with --seed each time.
        _ => {}
    }
    node.push_str("}\n");
    Ok(node)
}

/// Runs `reroot`.
pub fn run(cx: &Context, args: &Args, out: &mut dyn Write) -> Result<(), Error> {
    let chain = cx.load()?;
    let arg = SeedArg::parse(&args.seed);
    let SeedArg::Locate(name, location) = arg.clone() else {
        return Err(Error::Reroot(RerootError::NoLocation { given: args.seed.clone() }));
    };
    let known = || chain.seeds.iter().map(|s| format!("`{}`", s.name)).collect::<Vec<_>>().join(", ");
    if let Some(old) = &args.replace
        && !chain.seeds.iter().any(|s| &s.name == old)
    {
        return Err(Error::Reroot(RerootError::UnknownOld { old: old.clone(), known: known() }));
    }
    let declared = chain.seeds.iter().any(|s| s.name == name);
    if args.write && declared {
        return Err(Error::Reroot(RerootError::AlreadyDeclared { name }));
    }
    // The new seed joins the chain in memory, so that it is resolved and
    // run exactly as a declared one.
    let mut rerooted = chain.clone();
    if !declared {
        rerooted.seeds.push(Seed { name: name.clone(), description: None, image: None, rootfs: None, file: chain.main_file, span: Span { offset: 0, len: 0 } });
    }
    let seed_id = rerooted.seeds.iter().position(|s| s.name == name).unwrap_or(0);
    let plan = Plan::new(&rerooted);
    let target = match &args.stage {
        Some(s) => crate::plan::stage_target(&rerooted, s)?,
        None => rerooted.last_stage(),
    };
    let backend = cx.backend()?;
    let store = cx.open_store(LockMode::Exclusive)?;
    let bars = super::fetch::Bars::new(cx);
    let selection = plan.through(target);
    let wanted = crate::build::Wanted { chain: &rerooted, seeds: &[seed_id], seed_args: std::slice::from_ref(&arg), at_least: 1, selection: &selection };
    let inputs = cx.session.ready(&wanted, &store, &bars, &backend)?;
    super::fetch::warn(&inputs.fetched, false);
    let sources = inputs.sources;
    let Some(root) = inputs.seeds.into_iter().next() else {
        return Err(Error::Reroot(RerootError::NoLocation { given: args.seed.clone() }));
    };
    let progress = super::build::Progress::new(cx);
    let run = Run { chain: &rerooted, plan: &plan, store: &store, executor: backend.executor(), rebuild: false };
    let outcomes = cx.session.build(run, &root, sources, &progress, &selection)?;
    let trust = cx.session.rules()?;
    let mut stages: Vec<StageCompare> = Vec::new();
    for i in rerooted.stage_ids().take_while(|&i| i <= target) {
        let stage = &rerooted.stage(i).name;
        let snap = Snapshot::read(&chain.dir, stage).map_err(crate::verify::VerifyError::from)?;
        let definition = crate::verify::stage::stage_digest(&rerooted, &plan, i);
        let sigs = trust.as_ref().map(|t| crate::sign::check_stage(t, &chain.dir, stage, &definition));
        stages.push(compare_stage(&rerooted, i, &outcomes, snap.as_ref(), sigs));
    }
    let worst = stages.iter().map(|s| s.result).max().unwrap_or(Convergence::Converged);
    if cx.json {
        write_json(out, &serde_json::json!({ "seed": { "name": root.name, "digest": root.digest, "origin": root.origin }, "converged": worst == Convergence::Converged, "stages": stages }))?;
    } else if cx.verbosity >= 0 {
        write_report(&root, &stages, out).map_err(Error::Output)?;
    }
    if worst != Convergence::Converged {
        let summary = stages
            .iter()
            .filter(|s| s.result != Convergence::Converged)
            .map(|s| {
                let differ: Vec<&str> = s.steps.iter().filter(|x| !x.agrees).map(|x| x.step.as_str()).collect();
                match s.result {
                    Convergence::Diverged | Convergence::Failed => format!("{} {} ({})", s.stage, s.result.as_str(), differ.join(", ")),
                    _ => format!("{} {}", s.stage, s.result.as_str()),
                }
            })
            .collect::<Vec<_>>()
            .join(", ");
        let help = match worst {
            Convergence::Diverged => "the seed leaks into the outputs of the steps listed: `bootstrap diff` on a verify with both seeds shows the bytes; chain/chain.kdl is unchanged",
            Convergence::Failed => "a step failed on the new seed: `bootstrap build STEP --seed NAME=… -v` shows its log",
            Convergence::NoSnapshot => "there is nothing to compare with: the maintainers must verify, snapshot and sign these stages first",
            _ => "the outputs agree but the snapshots are not signed as chain/trust.kdl requires: `bootstrap verify-signatures STAGE` says what is missing",
        };
        return Err(Error::NotConverged(NotConverged { seed: name, summary, worst, help: help.to_string() }));
    }
    if args.write {
        let node = seed_node(&name, &root, &location, args.replace.as_deref()).map_err(|message| Error::Reroot(RerootError::Write { message }))?;
        let path = chain.dir.join("chain/chain.kdl");
        let text = std::fs::read_to_string(&path).map_err(|e| Error::Reroot(RerootError::Write { message: e.to_string() }))?;
        let new = crate::chain::edit::put_seed(&text, &node, args.replace.as_deref()).map_err(|message| Error::Reroot(RerootError::Write { message }))?;
        crate::atomic::write(&path, new.as_bytes(), crate::atomic::SHARED).map_err(|e| Error::Reroot(RerootError::Write { message: e.to_string() }))?;
        // The chain must still load; otherwise the old file comes back.
        if let Err(e) = cx.load() {
            let _ = crate::atomic::write(&path, text.as_bytes(), crate::atomic::SHARED);
            return Err(e);
        }
        if cx.verbosity >= 0 && !cx.json {
            let what = args.replace.as_ref().map_or_else(|| "added to".to_string(), |o| format!("put in place of `{o}` in"));
            writeln!(out, "seed `{name}` {what} chain/chain.kdl").map_err(Error::Output)?;
        }
    }
    Ok(())
}

fn write_report(root: &seed::SeedRoot, stages: &[StageCompare], out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(out, "seed `{}` ({}), from {}", root.name, root.digest, root.origin)?;
    for s in stages {
        let signed = match &s.signatures {
            None => " (chain/trust.kdl has no rule: the snapshot is not required to be signed)".to_string(),
            Some(g) if g.met => " (snapshot signed as required)".to_string(),
            Some(g) => format!(" (snapshot NOT signed as required: {})", g.shortfall().unwrap_or_default()),
        };
        writeln!(out, "{}: {}{signed}", s.stage, s.result.as_str())?;
        for st in &s.steps {
            let detail = match (st.agrees, st.snapshot, st.output) {
                (true, _, Some(o)) => format!("{o}, as in the snapshot"),
                (_, None, _) if s.result != Convergence::NoSnapshot => format!("not in snapshots/{}.kdl", s.stage),
                (_, None, _) => String::new(),
                (false, Some(p), Some(o)) => format!("{o}, the snapshot has {p}"),
                (_, _, None) => String::new(),
            };
            writeln!(out, "  {:<10} {:<20} {detail}", if st.agrees { "same" } else if st.output.is_some() && st.snapshot.is_some() { "DIFFERS" } else { st.outcome.as_str() }, st.step)?;
            for d in &st.differences {
                writeln!(out, "      {}: snapshot {}, here {}", d.path, d.snapshot.as_deref().unwrap_or("(absent)"), d.here.as_deref().unwrap_or("(absent)"))?;
            }
        }
    }
    let ok = stages.iter().filter(|s| s.result == Convergence::Converged).count();
    writeln!(out, "{ok} of {} stage(s) converged", stages.len())
}
