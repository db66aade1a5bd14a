//! `bootstrap verify STAGE`: the gate. Runs every step of every stage up
//! to STAGE on each seed (from cache where nothing changed), compares, and
//! stops at the first stage that is not verified; the later ones stay
//! locked. Prints a table per stage and a summary line (or `--json`, see
//! docs/json.md); progress bars per seed on stderr when it is a terminal,
//! plain progress lines ([`super::lines`]) when it is not.

use std::io::{IsTerminal, Write};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use super::{Context, write_json};
use super::Error;
use super::refused::Unverified;
use crate::build::{BuildError, Events, Outcome, SeedArg, SeedRoot, Wanted, seed};
use crate::session::Run;
use crate::plan::Plan;
use crate::store::LockMode;
use crate::verify::{Report, StageReceipt, Verdict, VerifyError};

/// Arguments of `verify`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The stage to verify (every earlier stage is verified first).
    pub stage: String,
    /// The seeds to compare, comma-separated [default: every declared seed].
    #[arg(long, value_name = "A,B,…", value_delimiter = ',')]
    pub seeds: Vec<String>,
    /// Where a seed is: NAME=DIR or NAME=TARBALL (local backend), NAME=IMAGE (oci); repeatable.
    #[arg(long = "seed", value_name = "NAME=PATH|IMAGE")]
    pub seed_paths: Vec<String>,
    /// Do not check snapshot signatures against chain/trust.kdl (builds and compares only; said in the report).
    #[arg(long)]
    pub no_signatures: bool,
    /// Run every step of every stage up to STAGE again on every seed, cached results or not (sources and seeds are kept); a step that gives other bytes than before is `nondeterministic`.
    #[arg(long)]
    pub rebuild: bool,
}

/// Per-seed progress bars (or lines) and `-v` log streaming.
struct Bars {
    multi: MultiProgress,
    bars: Vec<ProgressBar>,
    /// The seeds' names, by index.
    seeds: Vec<String>,
    lines: super::lines::Lines,
    stream: bool,
    echo: super::echo::LineEcho,
}

impl crate::verify::Progress for Bars {
    fn stage(&self, name: &str, steps: usize) {
        for b in &self.bars {
            b.set_message(name.to_string());
            b.inc_length(steps as u64);
        }
    }
    fn settled(&self, seed: usize, step: &str, outcome: Option<&Outcome>) {
        if let Some(b) = self.bars.get(seed) {
            b.inc(1);
        }
        // Cached steps never started: only what ran gets a line.
        if let (Some(o), Some(name)) = (outcome, self.seeds.get(seed))
            && !matches!(o, Outcome::Cached(_))
        {
            let word = if matches!(o, Outcome::Failed(_)) { "FAILED" } else { o.as_str() };
            self.lines.settled(&format!("{step} on {name}"), word);
        }
    }
}

/// The events of one lineage: `-v` log lines, prefixed `[step@seed]`, and
/// progress lines when stderr is not a terminal.
struct Lineage<'b> {
    seed: String,
    bars: &'b Bars,
}

impl Events for Lineage<'_> {
    fn started(&self, step: &str) {
        self.bars.lines.started(&format!("{step} on {}", self.seed));
    }
    fn settled(&self, step: &str, _: &Outcome) {
        if self.bars.stream {
            self.bars.echo.finish(&format!("{step}@{}", self.seed), |l| drop(self.bars.multi.println(l)));
        }
    }
    fn log(&self, step: &str, bytes: &[u8]) {
        if self.bars.stream {
            self.bars.echo.push(&format!("{step}@{}", self.seed), bytes, |l| drop(self.bars.multi.println(l)));
        }
    }
}

/// The seeds to compare, by index, from `--seeds` or all declared.
fn chosen(chain: &crate::chain::Chain, args: &Args) -> Result<Vec<usize>, VerifyError> {
    let names = || chain.seeds.iter().map(|s| format!("`{}`", s.name)).collect::<Vec<_>>().join(", ");
    if args.seeds.is_empty() {
        return Ok((0..chain.seeds.len()).collect());
    }
    let mut ids = Vec::new();
    for name in &args.seeds {
        let bad = |problem: String| VerifyError::BadSeeds { given: args.seeds.join(","), problem, names: names() };
        let id = chain.seeds.iter().position(|s| &s.name == name).ok_or_else(|| bad(format!("no seed `{name}`")))?;
        if ids.contains(&id) {
            return Err(bad(format!("`{name}` is named twice")));
        }
        ids.push(id);
    }
    Ok(ids)
}

/// Runs `verify`.
pub fn run(cx: &Context, args: &Args, out: &mut dyn Write) -> Result<(), Error> {
    let chain = cx.load()?;
    let plan = Plan::new(&chain);
    let target = crate::plan::stage_target(&chain, &args.stage)?;
    // Loaded (and so checked) even when signatures are skipped.
    let trust = cx.session.rules()?;
    let skipped = args.no_signatures && trust.is_some();
    if skipped && cx.verbosity >= 0 {
        eprintln!("warning: signatures are NOT checked (--no-signatures): chain/trust.kdl's rules are ignored for this run");
    }
    let seed_args: Vec<SeedArg> = cx.seed_args(&chain, &args.seed_paths);
    seed::check_args(&chain, &seed_args)?;
    let ids = chosen(&chain, args).map_err(Error::from)?;
    let backend = cx.backend()?;
    let store = cx.open_store(LockMode::Exclusive)?;
    let fetch_bars = super::fetch::Bars::new(cx);
    let selection = plan.through(target);
    // Verify compares: it needs two seeds, and every source, or says at
    // once all that is missing.
    let wanted = Wanted { chain: &chain, seeds: &ids, seed_args: &seed_args, at_least: 2, selection: &selection };
    let inputs = cx.session.ready(&wanted, &store, &fetch_bars, &backend)?;
    super::fetch::warn(&inputs.fetched, false);
    if cx.verbosity >= 0 {
        for e in &inputs.without {
            if let BuildError::SeedUnavailable { name, field, .. } = e {
                eprintln!("warning: comparing without seed `{name}`: no `{field}` in the chain and no `--seed {name}=…` (nor `bootstrap seed add`)");
            }
        }
    }
    let (seeds, sources) = (inputs.seeds, inputs.sources);
    let terminal = std::io::stderr().is_terminal();
    let show = terminal && cx.verbosity >= 0;
    let multi = MultiProgress::with_draw_target(if show { ProgressDrawTarget::stderr() } else { ProgressDrawTarget::hidden() });
    let style = ProgressStyle::with_template("{prefix:>12} {bar:30} {pos}/{len} steps  {msg}").unwrap_or_else(|_| ProgressStyle::default_bar());
    let bars = Bars {
        bars: seeds
            .iter()
            .map(|s| {
                let b = multi.add(ProgressBar::new(0).with_style(style.clone()));
                b.set_prefix(s.name.clone());
                b
            })
            .collect(),
        multi,
        seeds: seeds.iter().map(|s| s.name.clone()).collect(),
        lines: super::lines::Lines::new(!terminal && cx.verbosity >= 0 && !cx.json),
        stream: cx.verbosity > 0,
        echo: Default::default(),
    };
    let events: Vec<Lineage> = seeds.iter().map(|s| Lineage { seed: s.name.clone(), bars: &bars }).collect();
    let events: Vec<&dyn crate::build::Events> = events.iter().map(|e| e as &dyn crate::build::Events).collect();
    let run = Run { chain: &chain, plan: &plan, store: &store, executor: backend.executor(), rebuild: args.rebuild };
    let gate = if args.no_signatures { None } else { trust.as_ref() };
    let report = bars.lines.beating(|| cx.session.verify(run, target, &seeds, &sources, &events, &bars, gate)).map_err(Error::from)?;
    for b in &bars.bars {
        b.finish_and_clear();
    }
    let checked = match (&trust, skipped) {
        (None, _) => Signatures::NoRules,
        (Some(_), true) => Signatures::Skipped,
        (Some(_), false) => Signatures::Checked,
    };
    if cx.json {
        write_json(out, &JsonReport::new(&args.stage, &report, checked))?;
    } else if cx.verbosity >= 0 {
        write_report(&report, &seeds, checked, &store, out).map_err(Error::Output)?;
    }
    let verdict = report.verdict();
    if verdict == Verdict::Verified {
        return match report.unsigned().and_then(crate::session::Unsigned::of) {
            Some(u) => Err(Error::Unsigned(u)),
            None => Ok(()),
        };
    }
    let Some(stage) = report.stages.iter().find(|s| s.verdict != Verdict::Verified) else { return Ok(()) };
    Err(Error::Unverified(Unverified::new(stage, &report.locked)))
}

fn short(d: &Option<crate::hash::Blake3>) -> String {
    d.map_or_else(|| "-".to_string(), |d| d.short())
}

/// Whether this run checked signatures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
enum Signatures {
    /// chain/trust.kdl has rules and they were checked.
    Checked,
    /// chain/trust.kdl has rules and `--no-signatures` skipped them.
    Skipped,
    /// There is no chain/trust.kdl, or it has no rule.
    NoRules,
}

fn write_report(
    report: &Report,
    seeds: &[SeedRoot],
    checked: Signatures,
    store: &crate::store::Store,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    for stage in &report.stages {
        let names: Vec<&str> = stage.seeds.iter().map(|s| s.name.as_str()).collect();
        writeln!(out, "{}: {} on {}", stage.stage, stage.verdict.as_str(), names.join(", "))?;
        let w = stage.steps.iter().map(|s| s.step.len()).max().unwrap_or(4).max(4);
        write!(out, "  {:<w$}  {:<10}", "step", "verdict")?;
        for s in seeds {
            write!(out, "  {:<12}", s.name)?;
        }
        writeln!(out, "  time")?;
        for step in &stage.steps {
            write!(out, "  {:<w$}  {:<10}", step.step, step.verdict.as_str())?;
            for s in seeds {
                let run = step.runs.iter().find(|r| r.seed == s.name);
                write!(out, "  {:<12}", run.map_or_else(|| "-".to_string(), |r| short(&r.output)))?;
            }
            let ran: Vec<&crate::verify::SeedRun> = step.runs.iter().filter(|r| r.outcome != crate::build::OutcomeKind::Cached).collect();
            let time = if step.runs.is_empty() {
                "-".to_string()
            } else if ran.is_empty() {
                "cached".to_string()
            } else {
                format!("{:.1}s", ran.iter().map(|r| r.duration_ms).max().unwrap_or(0) as f64 / 1000.0)
            };
            writeln!(out, "  {time}")?;
            for reason in &step.reasons {
                writeln!(out, "      {reason}")?;
            }
            // A failure is read from its log: show where it is and how it ends, per seed.
            for run in step.runs.iter().filter(|r| r.outcome == crate::build::OutcomeKind::Failed) {
                let tail = store.log_tail(&run.log, super::build::LOG_TAIL);
                let path = store.log_path(&run.log);
                if tail.is_empty() {
                    writeln!(out, "      log on `{}` is empty: {}", run.seed, path.display())?;
                    continue;
                }
                writeln!(out, "      last lines of the log on `{}`:", run.seed)?;
                for l in &tail {
                    writeln!(out, "        | {l}")?;
                }
                writeln!(out, "      whole log: {}", path.display())?;
            }
        }
        if let Some(sigs) = report.signatures.iter().find(|s| s.stage == stage.stage) {
            super::verify_signatures::write_block(sigs, out)?;
        }
    }
    let why_locked = match report.unsigned() {
        Some(u) => format!("{} is not signed as chain/trust.kdl requires", u.stage),
        None => "an earlier stage is not verified".to_string(),
    };
    for l in &report.locked {
        writeln!(out, "{l}: locked ({why_locked})")?;
    }
    let summary: Vec<String> = report
        .stages
        .iter()
        .map(|s| {
            let bad = s.steps.iter().filter(|x| x.verdict != Verdict::Verified).count();
            let unsigned = report.signatures.iter().any(|g| g.stage == s.stage && !g.met);
            if bad == 0 && unsigned {
                format!("{} verified but not signed ({} steps)", s.stage, s.steps.len())
            } else if bad == 0 {
                format!("{} verified ({} steps)", s.stage, s.steps.len())
            } else {
                format!("{} {} ({bad} of {} steps not verified)", s.stage, s.verdict.as_str(), s.steps.len())
            }
        })
        .chain(report.locked.iter().map(|l| format!("{l} locked")))
        .collect();
    writeln!(out, "{}", summary.join(" · "))?;
    if checked == Signatures::Skipped {
        writeln!(out, "SIGNATURES NOT CHECKED (--no-signatures): this run says nothing about chain/trust.kdl's rules")?;
    }
    Ok(())
}

/// The JSON document of `verify` (docs/json.md).
#[derive(Serialize)]
struct JsonReport<'a> {
    ok: bool,
    target: &'a str,
    verdict: Verdict,
    stages: &'a [StageReceipt],
    locked: &'a [String],
    signatures_checked: Signatures,
    signatures: &'a [crate::sign::StageSignatures],
}

impl<'a> JsonReport<'a> {
    fn new(target: &'a str, r: &'a Report, checked: Signatures) -> Self {
        JsonReport {
            ok: r.verdict() == Verdict::Verified && r.unsigned().is_none(),
            target,
            verdict: r.verdict(),
            stages: &r.stages,
            locked: &r.locked,
            signatures_checked: checked,
            signatures: &r.signatures,
        }
    }
}
