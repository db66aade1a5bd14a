//! `bootstrap build STEP|STAGE [--seed NAME]`: run a target and everything
//! it needs on one seed with the local backend, reusing cached results; no
//! comparison between seeds (that is `verify`).
//!
//! Steps settle on stderr as they go (`-q` silences them, `-v` also streams
//! every step's log, each line prefixed with the step's name); stdout gets
//! the table of outcomes, or the JSON document of docs/json.md.

use std::io::Write;

use serde::Serialize;

use super::{Context, write_json};
use super::Error;
use crate::build::{self, BuildError, Events, Outcome, StepFailed, StepsFailed, seed};
use crate::session::Run;
use crate::chain::{Chain, StepId};
use crate::hash::Blake3;
use crate::plan::Plan;
use crate::store::{LockMode, Store};
use crate::store::receipt::RunStatus;

/// Arguments of `build`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The step or stage to build (with everything it needs).
    pub target: String,
    /// NAME picks the seed to run on (default: the first declared seed given a location, else the first with a rootfs, or an image with --backend oci); NAME=PATH|IMAGE also says where it is; repeatable.
    #[arg(long = "seed", value_name = "NAME[=PATH]")]
    pub seeds: Vec<String>,
}

/// How many lines of a failed step's log the error shows.
pub(crate) const LOG_TAIL: usize = 15;

/// Progress on stderr, and `-v` log streaming with a per-step line buffer.
pub(crate) struct Progress {
    show: bool,
    stream: bool,
    echo: super::echo::LineEcho,
}

impl Progress {
    /// As the global flags ask: lines unless `-q` or `--json`, logs with `-v`.
    pub(crate) fn new(cx: &Context) -> Progress {
        Progress { show: cx.verbosity >= 0 && !cx.json, stream: cx.verbosity > 0, echo: Default::default() }
    }
}

impl Events for Progress {
    fn started(&self, step: &str) {
        if self.show {
            eprintln!("  running  {step}");
        }
    }
    fn settled(&self, step: &str, outcome: &Outcome) {
        if self.stream {
            self.echo.finish(step, |l| eprintln!("{l}"));
        }
        if self.show {
            // Failures stand out among the progress lines.
            let word = match outcome {
                Outcome::Failed(_) => "FAILED",
                o => o.as_str(),
            };
            eprintln!("  {word:8} {step}");
        }
    }
    fn log(&self, step: &str, bytes: &[u8]) {
        if self.stream {
            self.echo.push(step, bytes, |l| eprintln!("{l}"));
        }
    }
}

/// One step in the JSON report (docs/json.md).
#[derive(Serialize)]
struct StepReport<'a> {
    step: &'a str,
    stage: &'a str,
    outcome: &'static str,
    input: Option<Blake3>,
    output: Option<Blake3>,
    log: Option<Blake3>,
    status: Option<&'a RunStatus>,
    duration_ms: Option<u64>,
    blocked_by: Vec<String>,
}

/// The JSON document of `build`.
#[derive(Serialize)]
struct Report<'a> {
    ok: bool,
    target: &'a str,
    seed: SeedReport<'a>,
    steps: Vec<StepReport<'a>>,
}

#[derive(Serialize)]
struct SeedReport<'a> {
    name: &'a str,
    digest: crate::hash::SeedId,
    origin: &'a str,
}

/// The failure diagnostic of a step: what happened and its log's last lines.
fn failure(chain: &Chain, store: &Store, id: StepId, receipt: &crate::store::receipt::Receipt) -> StepFailed {
    let step = chain.step(id);
    let commands = match &step.command {
        crate::chain::Command::Run(argvs) => build::Commands::Run(argvs.len()),
        crate::chain::Command::Script { .. } | crate::chain::Command::Interpreted { .. } => build::Commands::Script,
    };
    let log_path = store.log_path(&receipt.log);
    let tail = store.log_tail(&receipt.log, LOG_TAIL);
    let help = if tail.is_empty() {
        format!("the step wrote nothing to its log ({})", log_path.display())
    } else {
        let shown: Vec<String> = tail.iter().map(|l| format!("  | {l}")).collect();
        format!("the last lines of its log:\n{}\nthe whole log: {}", shown.join("\n"), log_path.display())
    };
    let file = &chain.files[step.file];
    StepFailed {
        step: step.name.clone(),
        seed: receipt.seed.name.clone(),
        what: build::describe(&receipt.status, commands),
        src: miette::NamedSource::new(&file.path, file.text.clone()),
        span: step.span.into(),
        help,
    }
}

/// Runs `build`.
pub fn run(cx: &Context, args: &Args, out: &mut dyn Write) -> Result<(), Error> {
    let chain = cx.load()?;
    let plan = Plan::new(&chain);
    let selection = plan.select(Some(&args.target))?;
    let seed_args = cx.seed_args(&chain, &[]);
    seed::check_args(&chain, &seed_args)?;
    let backend = cx.backend()?;
    // No seed to pick: every declared one is listed with what to give.
    let ids: Vec<usize> = match seed::choose(&chain, &seed_args, &backend) {
        Ok(id) => vec![id],
        Err(BuildError::NoSeed { .. }) => (0..chain.seeds.len()).collect(),
        Err(e) => return Err(e.into()),
    };
    let store = cx.open_store(LockMode::Exclusive)?;
    let bars = super::fetch::Bars::new(cx);
    let wanted = build::Wanted { chain: &chain, seeds: &ids, seed_args: &seed_args, at_least: 1, selection: &selection };
    let inputs = cx.session.ready(&wanted, &store, &bars, &backend)?;
    super::fetch::warn(&inputs.fetched, false);
    let (seed, sources) = (inputs.seeds.into_iter().next().ok_or_else(|| BuildError::NoSeed { names: String::new() })?, inputs.sources);
    if seed.skipped > 0 && cx.verbosity > 0 {
        eprintln!("seed `{}`: {} device file(s), fifo(s) or socket(s) left out (the sandbox has its own /dev)", seed.name, seed.skipped);
    }
    let progress = Progress::new(cx);
    let run = Run { chain: &chain, plan: &plan, store: &store, executor: backend.executor(), rebuild: false };
    let outcomes = cx.session.build(run, &seed, sources, &progress, &selection)?;

    let failures: Vec<StepFailed> = outcomes
        .iter()
        .filter_map(|(id, o)| match o {
            Outcome::Failed(r) => Some(failure(&chain, &store, *id, r)),
            _ => None,
        })
        .collect();
    let blocked: Vec<String> =
        outcomes.iter().filter(|(_, o)| matches!(o, Outcome::Blocked(_))).map(|(id, _)| chain.step(*id).name.clone()).collect();
    if cx.json {
        let steps = outcomes
            .iter()
            .map(|(id, o)| {
                let step = chain.step(*id);
                let r = o.receipt();
                StepReport {
                    step: &step.name,
                    stage: &chain.stage(step.stage).name,
                    outcome: o.as_str(),
                    input: r.map(|r| r.input),
                    output: r.and_then(|r| r.output),
                    log: r.map(|r| r.log),
                    status: r.map(|r| &r.status),
                    duration_ms: r.map(|r| r.duration_ms),
                    blocked_by: if let Outcome::Blocked(by) = o { by.clone() } else { Vec::new() },
                }
            })
            .collect();
        let report = Report {
            ok: failures.is_empty(),
            target: &args.target,
            seed: SeedReport { name: &seed.name, digest: seed.digest, origin: &seed.origin },
            steps,
        };
        write_json(out, &report)?;
    } else if cx.verbosity >= 0 {
        write_table(&chain, &seed, &outcomes, out).map_err(Error::Output)?;
    }
    if failures.is_empty() { Ok(()) } else { Err(BuildError::Failed(StepsFailed { failures, blocked }).into()) }
}

fn write_table(chain: &Chain, seed: &build::SeedRoot, outcomes: &[(StepId, Outcome)], out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(out, "seed `{}` ({}), from {}", seed.name, seed.digest, seed.origin)?;
    let w = outcomes.iter().map(|(id, _)| chain.step(*id).name.len()).max().unwrap_or(4);
    let mut counts = [0usize; 4];
    for (id, o) in outcomes {
        let step = chain.step(*id);
        let stage = &chain.stage(step.stage).name;
        let (k, word, detail) = match o {
            Outcome::Built(r) => (0, "built", format!("{}  {:.1}s", short(r.output), r.duration_ms as f64 / 1000.0)),
            Outcome::Cached(r) => (1, "cached", short(r.output)),
            Outcome::Failed(r) => (2, "failed", build::describe(&r.status, build::Commands::Unknown)),
            Outcome::Blocked(by) => (3, "blocked", format!("needs {}", by.join(", "))),
        };
        counts[k] += 1;
        writeln!(out, "  {word:8} {:<w$}  {stage:8} {detail}", step.name)?;
    }
    writeln!(
        out,
        "{} step(s): {} built, {} from cache, {} failed, {} blocked",
        outcomes.len(),
        counts[0],
        counts[1],
        counts[2],
        counts[3]
    )
}

fn short(d: Option<Blake3>) -> String {
    d.map_or_else(String::new, |d| format!("blake3:{}…", d.short()))
}
