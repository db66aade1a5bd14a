//! Building: running a set of steps on one seed, in dependency order,
//! independent steps in parallel, reusing cached results (ARCHITECTURE.md §4).
//!
//! Sits between [`crate::plan`] (which steps, in which order) and
//! [`crate::exec`] (run one request): [`request`] turns each step into a
//! [`crate::exec::StepRequest`] and its input digest, [`seed`] makes the
//! seed's root ready ([`inputs`] seeds and sources together, listing all
//! that is missing), and [`Build::run`] schedules. After every run a
//! receipt is written ([`crate::store::receipt`]); a step whose input
//! digest has a succeeded receipt and whose output layer is in the store is
//! taken from the cache. A failed step blocks what needs it, but
//! independent steps still run, so one build shows everything that fails.

pub mod error;
pub mod inputs;
pub mod request;
pub mod schedule;
pub mod seed;

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::chain::{Chain, Pin, StepId};
use crate::fetch::Fetched;
use crate::exec::{Executor, LogSink, SourceInput, Status, StepRequest};
use crate::hash::{Blake3, Sha256};
use crate::plan::Plan;
use crate::store::LayerState;
use crate::store::Store;
use crate::store::receipt::{FileRecord, NeedRef, RECEIPT_FORMAT, Receipt, RunStatus, SeedRef, SourceRef};

pub use error::{BuildError, MissingInputs, StepFailed, StepsFailed};
pub use inputs::{Inputs, Wanted};
pub use seed::{SeedArg, SeedRoot};

/// What a source is, as mounted: its content identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Content {
    /// The file itself, by its sha256.
    File(Sha256),
    /// A layer (an unpacked archive or a git checkout), by its tree digest.
    Tree(Blake3),
}

/// A source as the build found it in the store, ready to mount.
#[derive(Debug, Clone)]
pub struct ReadySource {
    /// What it is: this, not where it came from, enters the input digest.
    pub content: Content,
    /// How it is mounted.
    pub input: SourceInput,
    /// Which pin its content matched.
    pub pin: Pin,
    /// The sha256 of the file, or of the archive a layer came from, when known.
    pub sha256: Option<Sha256>,
    /// Where its bytes came from.
    pub from: String,
}

impl ReadySource {
    /// The source `fetch` made available; `None` when it reported neither a
    /// layer nor a file.
    pub fn of(store: &Store, f: &Fetched) -> Option<ReadySource> {
        let (content, input) = match (f.layer, f.sha256) {
            (Some(layer), _) => (Content::Tree(layer), SourceInput::Tree(store.layer_path(&layer))),
            (None, Some(sha)) => (Content::File(sha), SourceInput::File(store.source_path(&sha))),
            (None, None) => return None,
        };
        Some(ReadySource { content, input, pin: f.pin, sha256: f.sha256, from: f.from.clone() })
    }

    /// `file` or `tree`, as in receipts and the input digest.
    pub fn placement(&self) -> &'static str {
        match self.content {
            Content::File(_) => "file",
            Content::Tree(_) => "tree",
        }
    }

    /// The content identity as the input digest holds it: `sha256:…` of a
    /// file, `blake3:…` of a tree.
    pub fn identity(&self) -> String {
        match self.content {
            Content::File(sha) => sha.to_string(),
            Content::Tree(layer) => layer.to_string(),
        }
    }

    /// The layer, for a tree.
    pub fn layer(&self) -> Option<Blake3> {
        match self.content {
            Content::File(_) => None,
            Content::Tree(layer) => Some(layer),
        }
    }
}

/// What happened to one step.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// It ran and succeeded.
    Built(Box<Receipt>),
    /// Its input digest had a succeeded receipt; not run.
    Cached(Box<Receipt>),
    /// It ran and failed.
    Failed(Box<Receipt>),
    /// Not run: these needs failed or were blocked.
    Blocked(Vec<String>),
}

/// What happened to a step, without its receipt: as reports, stage
/// receipts and JSON documents name it (`built`, `cached`, `failed`,
/// `blocked`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutcomeKind {
    /// It ran and succeeded.
    Built,
    /// Its result was already in the store.
    Cached,
    /// It ran and failed.
    Failed,
    /// It could not run.
    Blocked,
}

impl OutcomeKind {
    /// The word.
    pub fn as_str(self) -> &'static str {
        match self {
            OutcomeKind::Built => "built",
            OutcomeKind::Cached => "cached",
            OutcomeKind::Failed => "failed",
            OutcomeKind::Blocked => "blocked",
        }
    }
}

impl Outcome {
    /// Which of the four it is.
    pub fn kind(&self) -> OutcomeKind {
        match self {
            Outcome::Built(_) => OutcomeKind::Built,
            Outcome::Cached(_) => OutcomeKind::Cached,
            Outcome::Failed(_) => OutcomeKind::Failed,
            Outcome::Blocked(_) => OutcomeKind::Blocked,
        }
    }

    /// `built`, `cached`, `failed` or `blocked`, as in reports.
    pub fn as_str(&self) -> &'static str {
        self.kind().as_str()
    }

    /// The receipt, unless blocked.
    pub fn receipt(&self) -> Option<&Receipt> {
        match self {
            Outcome::Built(r) | Outcome::Cached(r) | Outcome::Failed(r) => Some(r),
            Outcome::Blocked(_) => None,
        }
    }

    /// The output layer's digest, when the step succeeded.
    pub fn output(&self) -> Option<Blake3> {
        match self {
            Outcome::Built(r) | Outcome::Cached(r) => r.output,
            _ => None,
        }
    }
}

/// Told about steps as they start and settle (the command line shows them).
pub trait Events: Sync {
    /// Step `step` starts running (not called for cached steps).
    fn started(&self, step: &str);
    /// Step `step` is settled.
    fn settled(&self, step: &str, outcome: &Outcome);
    /// A chunk of a running step's log.
    fn log(&self, step: &str, bytes: &[u8]);
}

/// [`Events`] that go nowhere.
pub struct Silent;

impl Events for Silent {
    fn started(&self, _: &str) {}
    fn settled(&self, _: &str, _: &Outcome) {}
    fn log(&self, _: &str, _: &[u8]) {}
}

/// Everything one build needs.
pub struct Build<'a> {
    /// The chain.
    pub chain: &'a Chain,
    /// Its plan (definition digests).
    pub plan: &'a Plan<'a>,
    /// The open store.
    pub store: &'a Store,
    /// The backend.
    pub executor: &'a dyn Executor,
    /// The seed.
    pub seed: &'a SeedRoot,
    /// Every source the steps use, by name, present in the store.
    pub sources: BTreeMap<String, ReadySource>,
    /// How many steps at once.
    pub jobs: usize,
    /// Progress.
    pub events: &'a dyn Events,
    /// The variations this lineage runs under (`verify`'s second lineage
    /// takes the chain's `vary`; otherwise none).
    pub vary: Vec<crate::chain::model::Variation>,
    /// Run every step even when its input digest has a result
    /// (`verify --rebuild`); the receipt then records that result's output.
    pub rebuild: bool,
}

struct Echo<'e> {
    step: &'e str,
    events: &'e dyn Events,
}

impl LogSink for Echo<'_> {
    fn write(&self, bytes: &[u8]) {
        self.events.log(self.step, bytes);
    }
}

impl Build<'_> {
    /// Runs `selection` (steps in execution order, closed under needs) and
    /// returns each step's outcome in that order. `Err` only when the build
    /// could not go on (the sandbox or the store failed); steps that fail
    /// are outcomes, not errors.
    pub fn run(&self, selection: &[StepId]) -> Result<Vec<(StepId, Outcome)>, BuildError> {
        // The scheduler works on positions in `selection`, not on ids.
        let pos: BTreeMap<StepId, usize> = selection.iter().enumerate().map(|(p, &i)| (i, p)).collect();
        let needs: Vec<Vec<usize>> =
            selection.iter().map(|&i| self.chain.needs_of(i).iter().filter_map(|j| pos.get(j).copied()).collect()).collect();
        let host = crate::machine::kernel();
        let done = schedule::run(
            &needs,
            self.jobs,
            |o: &Outcome| o.output().is_some(),
            |p, inputs| {
                let id = selection[p];
                let outputs: Vec<(StepId, Blake3)> = self.chain.needs_of(id)
                    .iter()
                    .zip(inputs.iter().filter_map(Outcome::output))
                    .map(|(&j, o)| (j, o))
                    .collect();
                self.one(id, &outputs, &host)
            },
            |p, o| self.events.settled(&self.chain.step(selection[p]).name, o),
        )?;
        // Whatever never started waits on a need that failed or was blocked.
        let mut outcomes: Vec<Outcome> = Vec::with_capacity(selection.len());
        for (p, o) in done.into_iter().enumerate() {
            let o = o.unwrap_or_else(|| {
                let by = needs[p]
                    .iter()
                    .filter(|&&q| outcomes.get(q).and_then(Outcome::output).is_none())
                    .map(|&q| self.chain.step(selection[q]).name.clone())
                    .collect();
                let o = Outcome::Blocked(by);
                self.events.settled(&self.chain.step(selection[p]).name, &o);
                o
            });
            outcomes.push(o);
        }
        Ok(selection.iter().copied().zip(outcomes).collect())
    }

    /// Runs one step (or takes it from the cache) and writes its receipt.
    pub(crate) fn one(&self, id: StepId, needs: &[(StepId, Blake3)], host: &(String, String)) -> Result<Outcome, BuildError> {
        let chain = self.chain;
        let step = chain.step(id);
        let mut sources = Vec::new();
        let mut source_refs = Vec::new();
        let mut keyed: Vec<(&str, String, &str)> = Vec::new();
        for &k in chain.source_ids_of(id) {
            let name = &chain.source_by_id(k).name;
            let Some(ready) = self.sources.get(name) else {
                return Err(crate::exec::ExecError::Internal(format!("source `{name}` was not made ready")).into());
            };
            sources.push((name.clone(), ready.input.clone()));
            keyed.push((name.as_str(), ready.identity(), ready.placement()));
            source_refs.push(SourceRef {
                name: name.clone(),
                pin: ready.pin,
                placement: ready.placement().to_string(),
                sha256: ready.sha256,
                layer: ready.layer(),
                from: ready.from.clone(),
            });
        }
        // An interpreted script's file, by the sha256 of its text, like a
        // file source; stored only if the step runs.
        let script = request::script_file(chain, id).map(|text| (text, crate::hash::hash_bytes(text.as_bytes()).sha256));
        if let Some((_, sha)) = &script {
            sources.push((request::SCRIPT_SOURCE.to_string(), SourceInput::File(self.store.source_path(sha))));
            keyed.push((request::SCRIPT_SOURCE, sha.to_string(), "file"));
        }
        let layers = needs.iter().map(|(_, d)| self.store.layer_path(d)).collect();
        let mut req: StepRequest = request::request(chain, id, &self.seed.root, sources, layers, &self.vary);
        req.lineage = self.seed.name.clone();
        req.fresh = self.rebuild;
        let named: Vec<(&str, Blake3)> = needs.iter().map(|(j, d)| (chain.step(*j).name.as_str(), *d)).collect();
        keyed.sort();
        let key = request::InputKey {
            arch: &chain.decl.arch,
            name: &step.name,
            root: step.root.as_str(),
            seed: &self.seed.digest,
            sources: &keyed,
            needs: &named,
        };
        let input = request::input_digest(&key, &req);
        let mut earlier_output = None;
        if let Some(r) = self.store.read_receipt(&step.name, &self.seed.name, &input)
            && r.status == RunStatus::Succeeded
            && let Some(layer) = r.output
        {
            if self.rebuild {
                // Run again all the same; the new receipt says what it was.
                earlier_output = Some(layer);
            } else {
                // A cached result counts only while its layer holds what was recorded.
                match self.store.check_layer(&layer) {
                    LayerState::Intact => return Ok(Outcome::Cached(Box::new(r))),
                    LayerState::Missing => {}
                    _ => match self.store.quarantine_if_damaged(&layer)? {
                        LayerState::Intact => return Ok(Outcome::Cached(Box::new(r))),
                        LayerState::Missing => {}
                        damaged => eprintln!(
                            "warning: the output of `{}` on `{}` ({layer}) is {}; it is moved aside and the step runs again",
                            step.name,
                            self.seed.name,
                            damaged.describe()
                        ),
                    },
                }
            }
        }
        if let Some((text, sha)) = &script {
            let stored = self.store.put_source_bytes(text.as_bytes())?;
            debug_assert_eq!(&stored, sha);
        }
        self.events.started(&step.name);
        let echo = Echo { step: &step.name, events: self.events };
        let result = self.executor.run(&req, self.store, &echo)?;
        let status = match result.status {
            Status::Succeeded => RunStatus::Succeeded,
            Status::Exited { index, code } => RunStatus::Exited { command: index, code },
            Status::Signaled { index, signal } => RunStatus::Signaled { command: index, signal },
            Status::TimedOut => RunStatus::TimedOut { after_secs: req.timeout.as_secs() },
            Status::LowOnSpace { min_free } => RunStatus::LowOnSpace { min_free },
            Status::ScratchFull { limit } => RunStatus::ScratchFull { limit },
            Status::BadOutput { path, reason } => RunStatus::BadOutput { path, reason },
        };
        let (output, files) = match &result.layer {
            Some((digest, tree)) => (Some(*digest), FileRecord::of(tree)),
            None => (None, Vec::new()),
        };
        let receipt = Receipt {
            format: RECEIPT_FORMAT.to_string(),
            step: step.name.clone(),
            stage: chain.stage(step.stage).name.clone(),
            seed: SeedRef { name: self.seed.name.clone(), digest: self.seed.digest, origin: self.seed.origin.clone() },
            input,
            definition: self.plan.digest(id),
            sources: source_refs,
            needs: named.iter().map(|(n, d)| NeedRef { step: n.to_string(), output: *d }).collect(),
            status,
            output,
            files,
            log: result.log,
            duration_ms: u64::try_from(result.duration.as_millis()).unwrap_or(u64::MAX),
            backend: self.executor.name().to_string(),
            container_engine: self.executor.container_engine().map(str::to_string),
            earlier_output,
            machine: crate::machine::id(),
            engine: format!("bootstrap {}", env!("CARGO_PKG_VERSION")),
            kernel: host.0.clone(),
            arch: host.1.clone(),
            finished: SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO).as_secs(),
        };
        self.store.write_receipt(&receipt)?;
        Ok(if receipt.status == RunStatus::Succeeded {
            Outcome::Built(Box::new(receipt))
        } else {
            Outcome::Failed(Box::new(receipt))
        })
    }
}

/// What a step runs, for [`describe`].
#[derive(Debug, Clone, Copy)]
pub enum Commands {
    /// A script.
    Script,
    /// This many `run` lines.
    Run(usize),
    /// Not known here.
    Unknown,
}

/// Says what a run did, for messages: `command 2 of 3 exited with code 1`.
pub fn describe(status: &RunStatus, commands: Commands) -> String {
    let which = |c: usize| match commands {
        Commands::Script => "its script".to_string(),
        Commands::Run(n) => format!("command {} of {n}", c + 1),
        Commands::Unknown => format!("command {}", c + 1),
    };
    match status {
        RunStatus::Succeeded => "succeeded".into(),
        RunStatus::Exited { command, code } => format!("{} exited with code {code}", which(*command)),
        RunStatus::Signaled { command, signal } => format!("{} was killed by signal {signal}", which(*command)),
        RunStatus::TimedOut { after_secs } => {
            format!("it ran past its timeout of {} and was killed with everything it started", seconds(*after_secs))
        }
        RunStatus::BadOutput { path, reason } => format!("declared output `{path}`: {reason}"),
        RunStatus::ScratchFull { limit } => format!(
            "it was killed with everything it started after writing more than {} over its inputs (--max-scratch-size)",
            crate::store::human_size(*limit)
        ),
        RunStatus::LowOnSpace { min_free } => format!(
            "it was killed with everything it started when the state directory's disk fell below {} free (--min-free-space)",
            crate::store::human_size(*min_free)
        ),
    }
}

/// `90` → `1m30s`.
fn seconds(mut s: u64) -> String {
    let mut out = String::new();
    for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60)] {
        if s >= size {
            out.push_str(&format!("{}{unit}", s / size));
            s %= size;
        }
    }
    if s > 0 || out.is_empty() {
        out.push_str(&format!("{s}s"));
    }
    out
}
