//! The gate (ARCHITECTURE.md §5): run every step of a stage once per seed (a
//! *lineage*), compare the output tree digests, check them against the
//! pinned `output … sha256=` and the stage's snapshot, and unlock the next
//! stage only when every step is verified.
//!
//! Each step is one unit of the shared scheduler ([`crate::build::schedule`]):
//! it runs on every seed at once (each seed with its own needs' outputs, so
//! the lineages stay independent), then gets its [`Verdict`]. Only a
//! verified step releases what needs it; the others block their dependents
//! while independent steps keep going, so one run shows everything wrong.
//! Results come from the step receipts when the input digest is unchanged,
//! so verifying an unchanged stage runs nothing. Every stage reached gets a
//! stage receipt ([`stage`]); the first stage that is not verified ends the
//! run and the later ones stay locked. With a trust policy, a verified
//! stage also needs its snapshot signed as `chain/trust.kdl` requires
//! ([`crate::sign::check`]) before the next one unlocks.

pub mod reroot;
pub mod stage;

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use miette::Diagnostic;
use thiserror::Error;

use crate::build::{Build, BuildError, Outcome, request, schedule};
use crate::chain::{Chain, StageId, StepId};
use crate::chain::trust::Trust;
use crate::hash::Blake3;
use crate::plan::Plan;
use crate::sign::StageSignatures;
use crate::store::Store;
use crate::store::receipt::Receipt;
use crate::sign::snapshot::{self, Snapshot, SnapshotError};
pub use stage::{SeedEntry, SeedRun, StageReceipt, StepEntry, Verdict};

/// Why `verify` could not give verdicts.
#[derive(Debug, Error, Diagnostic)]
pub enum VerifyError {
    /// `--seeds` named a seed twice or an unknown one.
    #[error("`--seeds {given}`: {problem}")]
    #[diagnostic(code(bootstrap::verify::seeds), help("the chain's seeds are {names}"))]
    BadSeeds {
        /// The argument.
        given: String,
        /// What is wrong.
        problem: String,
        /// The declared seeds.
        names: String,
    },
    /// The stage's snapshot cannot be read.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Snapshot(#[from] SnapshotError),
    /// Running the steps failed (sandbox, store, fetch, seeds).
    #[error(transparent)]
    #[diagnostic(transparent)]
    Build(#[from] BuildError),
}

impl VerifyError {
    /// The exit code this error calls for.
    pub fn exit_code(&self) -> u8 {
        match self {
            VerifyError::Build(b) => b.exit_code(),
            _ => crate::exit::BAD_INPUT,
        }
    }
}

/// Told about each step of each lineage (progress bars).
pub trait Progress: Sync {
    /// A stage starts, with this many steps.
    fn stage(&self, name: &str, steps: usize);
    /// Step `step` settled on seed number `seed`: with its outcome when
    /// it was run or looked up, `None` when its stage's verdict stood
    /// without reading it (nor running it).
    fn settled(&self, seed: usize, step: &str, outcome: Option<&Outcome>);
}

/// A [`Progress`] that shows nothing.
pub struct Silent;

impl Progress for Silent {
    fn stage(&self, _: &str, _: usize) {}
    fn settled(&self, _: usize, _: &str, _: Option<&Outcome>) {}
}

/// Everything `verify` needs: one [`Build`] per seed (its lineage).
pub struct Verifier<'a> {
    /// The chain.
    pub chain: &'a Chain,
    /// Its plan.
    pub plan: &'a Plan<'a>,
    /// The open store.
    pub store: &'a Store,
    /// One build per seed, in the order compared.
    pub lineages: Vec<Build<'a>>,
    /// Steps at once (each runs on every seed at once).
    pub jobs: usize,
    /// The trust policy whose rules a verified stage's snapshot signatures
    /// must meet before the next stage unlocks; `None` checks none.
    pub trust: Option<&'a Trust>,
}

/// What one `verify` run decided.
#[derive(Debug, Clone)]
pub struct Report {
    /// The stages reached, in order, each with its receipt.
    pub stages: Vec<StageReceipt>,
    /// Stages up to the target that stayed locked.
    pub locked: Vec<String>,
    /// The signature checks of the verified stages, in order, when a trust
    /// policy was given; the last one is the first not met, if any.
    pub signatures: Vec<StageSignatures>,
}

impl Report {
    /// The verdict of the run: that of the first stage not verified.
    pub fn verdict(&self) -> Verdict {
        self.stages.iter().map(|s| s.verdict).find(|v| *v != Verdict::Verified).unwrap_or(Verdict::Verified)
    }

    /// The first verified stage whose signatures do not meet the rules.
    pub fn unsigned(&self) -> Option<&StageSignatures> {
        self.signatures.iter().find(|s| !s.met)
    }
}

/// A step's result on every seed.
#[derive(Clone)]
struct Unit {
    entry: StepEntry,
    outputs: Vec<Option<Blake3>>,
}

impl Verifier<'_> {
    /// Whether this is `verify --rebuild`, as the lineages' builds say: every
    /// stage's steps run again, and no verdict is taken from an earlier
    /// stage receipt.
    fn rebuild(&self) -> bool {
        self.lineages.iter().any(|l| l.rebuild)
    }

    /// Verifies the stages up to and including `target` in order, stopping
    /// at the first that is not verified.
    pub fn verify(&self, target: StageId, progress: &dyn Progress) -> Result<Report, VerifyError> {
        let chain = self.chain;
        // Outputs of verified steps, per seed.
        let verified: Mutex<HashMap<StepId, Vec<Blake3>>> = Mutex::default();
        let host = crate::machine::kernel();
        let mut report = Report { stages: Vec::new(), locked: Vec::new(), signatures: Vec::new() };
        // Read once, and only when some stage has a receipt to trust.
        let layers = OnceLock::new();
        let seeds: Vec<SeedEntry> =
            self.lineages.iter().map(|b| SeedEntry { name: b.seed.name.clone(), digest: b.seed.digest }).collect();
        for stage in chain.stage_ids().take_while(|&s| s <= target) {
            let name = &chain.stage(stage).name;
            if report.verdict() != Verdict::Verified || report.unsigned().is_some() {
                report.locked.push(name.clone());
                continue;
            }
            let definition = stage::stage_digest(chain, self.plan, stage);
            let pins = stage::pins_digest(chain, stage);
            let snap_digest = snapshot::file_digest(&chain.dir, name);
            // A rebuild judges every stage afresh: the last receipt is not even read.
            if !self.rebuild()
                && let Some(prev) = self.unchanged(name, &definition, &pins, &snap_digest, &seeds, &layers)
            {
                // Verified before under exactly these inputs: the verdicts
                // stand without reading a step receipt.
                if let Ok(mut v) = verified.lock() {
                    for step in &prev.steps {
                        if let Some(id) = chain.step_id(&step.step) {
                            v.insert(id, step.runs.iter().filter_map(|r| r.output).collect());
                        }
                    }
                }
                progress.stage(name, prev.steps.len());
                for step in &prev.steps {
                    for s in 0..self.lineages.len() {
                        progress.settled(s, &step.step, None);
                    }
                }
                report.stages.push(prev);
                self.check_signatures(&mut report, name, &definition);
                continue;
            }
            let snap = Snapshot::read(&chain.dir, name)?;
            let selection: Vec<StepId> = self.plan.in_stage(stage);
            progress.stage(name, selection.len());
            // The scheduler works on positions in `selection`, not on ids.
            let pos: HashMap<StepId, usize> = selection.iter().enumerate().map(|(p, &i)| (i, p)).collect();
            let needs: Vec<Vec<usize>> =
                selection.iter().map(|&i| chain.needs_of(i).iter().filter_map(|j| pos.get(j).copied()).collect()).collect();
            let done = schedule::run(
                &needs,
                self.jobs,
                |u: &Unit| u.entry.verdict == Verdict::Verified,
                |p, _| {
                    let id = selection[p];
                    let unit = self.unit(id, &verified, &host, snap.as_ref(), progress)?;
                    if unit.entry.verdict == Verdict::Verified
                        && let Ok(mut v) = verified.lock()
                    {
                        v.insert(id, unit.outputs.iter().flatten().copied().collect());
                    }
                    Ok::<Unit, BuildError>(unit)
                },
                |_, _| {},
            )?;
            let mut steps: Vec<StepEntry> = Vec::with_capacity(selection.len());
            for (p, u) in done.into_iter().enumerate() {
                let entry = match u {
                    Some(u) => u.entry,
                    None => {
                        let reasons = needs[p]
                            .iter()
                            .filter(|&&q| steps[q].verdict != Verdict::Verified)
                            .map(|&q| format!("needs `{}`, which is {}", steps[q].step, steps[q].verdict.as_str()))
                            .collect();
                        StepEntry { step: chain.step(selection[p]).name.clone(), verdict: Verdict::Blocked, reasons, runs: Vec::new() }
                    }
                };
                steps.push(entry);
            }
            let verdict = steps.iter().map(|s| s.verdict).max().unwrap_or(Verdict::Verified);
            let receipt = StageReceipt {
                format: stage::STAGE_RECEIPT_FORMAT.to_string(),
                stage: name.clone(),
                definition,
                verdict,
                pins,
                snapshot: snap_digest,
                seeds: seeds.clone(),
                steps,
                engine: format!("bootstrap {}", env!("CARGO_PKG_VERSION")),
                finished: SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO).as_secs(),
            };
            stage::write_receipt(self.store, &receipt).map_err(BuildError::from)?;
            report.stages.push(receipt);
            self.check_signatures(&mut report, name, &definition);
        }
        Ok(report)
    }

    /// With a trust policy that has rules, checks the signatures of the
    /// stage just reported, if it is verified. Signatures are checked on
    /// every run, never cached: a key can be revoked or a file replaced at
    /// any time.
    fn check_signatures(&self, report: &mut Report, stage: &str, definition: &Blake3) {
        let Some(trust) = self.trust.filter(|t| !t.rules.is_empty()) else { return };
        if report.verdict() == Verdict::Verified {
            report.signatures.push(crate::sign::check_stage(trust, &self.chain.dir, stage, definition));
        }
    }

    /// The stage's last receipt, when it is verified under exactly the
    /// current definition, pins, snapshot file and seeds, and every output
    /// layer it names is still in the store (later steps overlay them); its
    /// runs are then marked `cached`. Step receipts are not checked here:
    /// `snapshot` and `diff`, which read them, drop a stage receipt that
    /// names a missing one.
    fn unchanged(
        &self,
        stage: &str,
        definition: &Blake3,
        pins: &str,
        snap: &Option<String>,
        seeds: &[SeedEntry],
        layers: &OnceLock<Option<HashSet<Blake3>>>,
    ) -> Option<StageReceipt> {
        let loaded = stage::load(self.store, stage)?;
        let prev = &loaded.receipt;
        let same = prev.verdict == Verdict::Verified
            && prev.definition == *definition
            && prev.pins == pins
            && prev.snapshot == *snap
            && prev.seeds == seeds;
        if !same {
            return None;
        }
        if prev.steps.iter().any(|s| s.runs.len() != seeds.len() || s.runs.iter().any(|r| r.output.is_none())) {
            return None;
        }
        // When `layers/` is as it was when they were last all seen there,
        // none went; otherwise one read of it tells. Unreadable, it trusts
        // nothing: the steps run and report the problem.
        let now = stage::fingerprint(&crate::store::layers_dir(self.store.root()))?;
        if loaded.layers_seen != Some(now) {
            let present = layers.get_or_init(|| self.store.layer_names().ok()).as_ref()?;
            // Verified means the seeds agreed: one layer per step.
            if !prev.outputs().all(|(_, o)| present.contains(&o)) {
                return None;
            }
            stage::note_layers_seen(self.store, &loaded, now);
        }
        // Present is not enough: each layer must still hold what was
        // verified (a stat per entry; hashed again only when one changed),
        // and each step receipt must still be there. Otherwise the steps run
        // again, which moves a damaged layer aside and rebuilds it.
        use rayon::prelude::*;
        let intact = prev.steps.par_iter().all(|s| {
            s.runs.first().and_then(|r| r.output).is_some_and(|o| self.store.check_layer(&o) == crate::store::LayerState::Intact)
                && s.runs.iter().all(|r| self.store.receipt_bytes(&s.step, &r.seed, &r.input) == r.receipt_bytes && r.receipt_bytes > 0)
        });
        if !intact {
            return None;
        }
        let mut prev = loaded.receipt;
        for step in &mut prev.steps {
            for r in &mut step.runs {
                r.outcome = crate::build::OutcomeKind::Cached;
            }
        }
        Some(prev)
    }

    /// Runs step `id` on every seed at once and judges the results.
    fn unit(
        &self,
        id: StepId,
        verified: &Mutex<HashMap<StepId, Vec<Blake3>>>,
        host: &(String, String),
        snap: Option<&Snapshot>,
        progress: &dyn Progress,
    ) -> Result<Unit, BuildError> {
        let chain = self.chain;
        let step = chain.step(id);
        let per_seed_needs: Vec<Vec<(StepId, Blake3)>> = {
            let v = verified.lock().map_err(|_| crate::exec::ExecError::Internal("a verify thread panicked".into()))?;
            (0..self.lineages.len())
                .map(|s| chain.needs_of(id).iter().filter_map(|&j| v.get(&j).and_then(|o| o.get(s)).map(|d| (j, *d))).collect())
                .collect()
        };
        let results: Vec<Result<Outcome, BuildError>> = std::thread::scope(|scope| {
            let handles: Vec<_> = self
                .lineages
                .iter()
                .zip(&per_seed_needs)
                .enumerate()
                .map(|(s, (b, needs))| {
                    scope.spawn(move || {
                        let r = b.one(id, needs, host);
                        progress.settled(s, &step.name, r.as_ref().ok());
                        r
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|_| Err(crate::exec::ExecError::Internal("a verify thread panicked".into()).into())))
                .collect()
        });
        let mut outcomes = Vec::with_capacity(results.len());
        for r in results {
            outcomes.push(r?);
        }
        let runs: Vec<SeedRun> = self
            .lineages
            .iter()
            .zip(&outcomes)
            .filter_map(|(b, o)| {
                let r = o.receipt()?;
                Some(SeedRun {
                    seed: b.seed.name.clone(),
                    input: r.input,
                    output: r.output,
                    log: r.log,
                    outcome: o.kind(),
                    duration_ms: r.duration_ms,
                    earlier_output: r.earlier_output,
                    receipt_bytes: self.store.receipt_bytes(&step.name, &b.seed.name, &r.input),
                })
            })
            .collect();
        let outputs: Vec<Option<Blake3>> = outcomes.iter().map(Outcome::output).collect();
        let (verdict, reasons) = self.judge(id, &outcomes, snap);
        Ok(Unit { entry: StepEntry { step: step.name.clone(), verdict, reasons, runs }, outputs })
    }

    /// The verdict of a step from its outcome on every seed.
    fn judge(&self, id: StepId, outcomes: &[Outcome], snap: Option<&Snapshot>) -> (Verdict, Vec<String>) {
        let step = self.chain.step(id);
        let seed = |s: usize| &self.lineages[s].seed.name;
        let failed: Vec<String> = outcomes
            .iter()
            .enumerate()
            .filter_map(|(s, o)| match o {
                Outcome::Failed(r) => {
                    Some(format!("failed on `{}`: {}", seed(s), crate::build::describe(&r.status, crate::build::Commands::Unknown)))
                }
                _ => None,
            })
            .collect();
        if !failed.is_empty() {
            return (Verdict::Failed, failed);
        }
        // Before comparing seeds: a step that does not agree with itself
        // explains any disagreement between them.
        let unstable: Vec<String> = outcomes
            .iter()
            .enumerate()
            .filter_map(|(s, o)| {
                let r = o.receipt()?;
                let (now, before) = (r.output?, r.earlier_output?);
                (now != before).then(|| format!("`{}` gave {now}, and {before} when run before with the same inputs", seed(s)))
            })
            .collect();
        if !unstable.is_empty() {
            return (Verdict::Nondeterministic, unstable);
        }
        let outputs: Vec<Blake3> = outcomes.iter().filter_map(Outcome::output).collect();
        if outputs.windows(2).any(|w| w[0] != w[1]) {
            let reasons = outputs.iter().enumerate().map(|(s, d)| format!("`{}` gave {d}", seed(s))).collect();
            return (Verdict::Mismatch, reasons);
        }
        let Some(receipt) = outcomes.iter().find_map(Outcome::receipt) else {
            return (Verdict::Failed, vec!["no seed produced a receipt".into()]);
        };
        let mut reasons = pin_problems(step, receipt);
        if let (Some(snap), Some(tree)) = (snap, receipt.output)
            && let Some(pinned) = snap.step(&step.name)
            && pinned.tree != tree
        {
            reasons.push(format!(
                "snapshots/{}.kdl has {} but the seeds agreed on {tree}",
                self.chain.stage(step.stage).name,
                pinned.tree
            ));
        }
        if reasons.is_empty() { (Verdict::Verified, reasons) } else { (Verdict::Unexpected, reasons) }
    }
}

/// Each pinned `output … sha256=` the receipt's files do not match.
fn pin_problems(step: &crate::chain::model::Step, receipt: &Receipt) -> Vec<String> {
    let mut problems = Vec::new();
    for out in &step.outputs {
        let Some(pin) = &out.sha256 else { continue };
        let abs = request::output_path(step, &out.path);
        let rel = abs.trim_start_matches('/');
        match receipt.files.iter().find(|f| f.path == rel) {
            Some(f) if f.kind == crate::store::receipt::FileKind::File => {
                if f.sha256 != Some(*pin) {
                    let got = f.sha256.map(|s| s.hex()).unwrap_or_default();
                    problems.push(format!("output `{}` is pinned to sha256:{} but is sha256:{got}", out.path, pin.hex()));
                }
            }
            Some(f) => problems.push(format!("output `{}` is pinned to a sha256 but is a {}", out.path, f.kind.as_str())),
            None => problems.push(format!("output `{}` is pinned but was not captured", out.path)),
        }
    }
    problems
}
