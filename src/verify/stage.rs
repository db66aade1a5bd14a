//! Stage definitions and stage receipts (ARCHITECTURE.md §4): what a stage's gate
//! decided, under which definition.
//!
//! The *stage definition digest* is `blake3:` of fields (encoded as for the
//! definition digest, see [`crate::plan::digest`]): `format` =
//! `bootstrap-stage-v1`, `stage` = its name, `step-count`, then per step of
//! the stage, sorted by name, `step` and `definition` (the step's definition
//! digest, which covers its needs' definitions in earlier stages). A stage
//! verified under one definition is *stale* once its digest changes.
//!
//! The stage receipt is `receipts/stages/<stage>.json`, replaced (atomically)
//! by every `verify` that reaches the stage. Its binary twin in
//! `cache/stages/<stage>.bin` is only a cache for the cached `verify`: it is
//! used while the JSON file keeps the [`Fingerprint`] it was written for,
//! and also remembers when all the stage's layers were last seen (see
//! [`Loaded`]). Deleting it costs one parse of the JSON.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::chain::{Chain, StageId};
use crate::hash::Blake3;
use crate::plan::Plan;
use crate::plan::digest::Canon;
use crate::store::{LayerState, Store, StoreError};

/// The `format` of stage receipts.
pub const STAGE_RECEIPT_FORMAT: &str = "bootstrap-stage-receipt-v1";

/// The definition digest of stage `stage`.
pub fn stage_digest(chain: &Chain, plan: &Plan<'_>, stage: StageId) -> Blake3 {
    let mut steps: Vec<(&str, String)> =
        chain.steps_in(stage).map(|i| (chain.step(i).name.as_str(), plan.digest(i).to_string())).collect();
    steps.sort();
    let mut buf = Vec::new();
    let mut c = Canon(&mut buf);
    c.field("format", b"bootstrap-stage-v1");
    c.field("stage", chain.stage(stage).name.as_bytes());
    c.number("step-count", steps.len() as u64);
    for (name, digest) in steps {
        c.field("step", name.as_bytes());
        c.field("definition", digest.as_bytes());
    }
    Blake3(*blake3::hash(&buf).as_bytes())
}

/// Digest of every pinned `output … sha256=` of the stage's steps (they are
/// not part of definition digests, yet change verdicts): fields `format` =
/// `bootstrap-pins-v1`, then per step sorted by name `step`, and per pinned
/// output in order `output` and `sha256`.
pub fn pins_digest(chain: &Chain, stage: StageId) -> String {
    let mut steps: Vec<&crate::chain::model::Step> = chain.steps.iter().filter(|s| s.stage == stage).collect();
    steps.sort_by(|a, b| a.name.cmp(&b.name));
    let mut buf = Vec::new();
    let mut c = Canon(&mut buf);
    c.field("format", b"bootstrap-pins-v1");
    for step in steps {
        c.field("step", step.name.as_bytes());
        for o in &step.outputs {
            if let Some(sha) = &o.sha256 {
                c.field("output", o.path.as_bytes());
                c.field("sha256", sha.hex().as_bytes());
            }
        }
    }
    format!("blake3:{}", blake3::hash(&buf).to_hex())
}

/// A step's verdict (ARCHITECTURE.md §5), worst last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Every seed gave the same output, matching every pin and the snapshot.
    Verified,
    /// Not run: a need is not verified.
    Blocked,
    /// A command failed or timed out on some seed.
    Failed,
    /// The seeds agreed on something other than what was pinned or snapshotted.
    Unexpected,
    /// The seeds disagree.
    Mismatch,
    /// Run again (`verify --rebuild`) with the same inputs, some seed gave
    /// other bytes than before.
    Nondeterministic,
}

impl Verdict {
    /// The word used in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Verified => "verified",
            Verdict::Blocked => "blocked",
            Verdict::Failed => "failed",
            Verdict::Unexpected => "unexpected",
            Verdict::Mismatch => "mismatch",
            Verdict::Nondeterministic => "nondeterministic",
        }
    }

    /// The exit code of a run that stops on a stage with this verdict.
    pub fn exit_code(self) -> u8 {
        use crate::exit;
        match self {
            Verdict::Verified => exit::OK,
            Verdict::Blocked => exit::BLOCKED,
            Verdict::Failed => exit::STEP_FAILED,
            Verdict::Unexpected | Verdict::Mismatch | Verdict::Nondeterministic => exit::VERIFICATION_FAILED,
        }
    }
}

/// One seed's run of one step, as the stage receipt records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeedRun {
    /// The seed.
    pub seed: String,
    /// The step's input digest on this seed (names its step receipt).
    pub input: Blake3,
    /// The output tree digest, when the step succeeded.
    pub output: Option<Blake3>,
    /// The log.
    pub log: Blake3,
    /// `built` (ran now) or `cached`; `failed`.
    pub outcome: crate::build::OutcomeKind,
    /// Wall time of the run that made the receipt.
    pub duration_ms: u64,
    /// With `verify --rebuild`, the output the same inputs gave before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub earlier_output: Option<Blake3>,
    /// The size of the step receipt file, so a cached `verify` notices one
    /// cut short without parsing it (0 where it is unknown).
    #[serde(default)]
    pub receipt_bytes: u64,
}

/// One step of a stage receipt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepEntry {
    /// The step.
    pub step: String,
    /// Its verdict.
    pub verdict: Verdict,
    /// Why it is not verified (pins, snapshot, failures, blocking needs).
    pub reasons: Vec<String>,
    /// One per seed that ran it (none when blocked).
    pub runs: Vec<SeedRun>,
}

/// A seed as the stage receipt records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeedEntry {
    /// The seed's name.
    pub name: String,
    /// Its identity (tree digest or image ID).
    pub digest: crate::hash::SeedId,
}

/// What `verify` decided for one stage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageReceipt {
    /// Always [`STAGE_RECEIPT_FORMAT`].
    pub format: String,
    /// The stage.
    pub stage: String,
    /// Its definition digest at the time.
    pub definition: Blake3,
    /// The worst step verdict (`verified` only when every step is).
    pub verdict: Verdict,
    /// Digest of the stage's pinned output hashes ([`pins_digest`]).
    pub pins: String,
    /// BLAKE3 of `snapshots/STAGE.kdl` as it was, if there was one.
    pub snapshot: Option<String>,
    /// The seeds compared.
    pub seeds: Vec<SeedEntry>,
    /// Every step of the stage, in execution order.
    pub steps: Vec<StepEntry>,
    /// `bootstrap <version>`.
    pub engine: String,
    /// When, seconds since the Unix epoch.
    pub finished: u64,
}

impl StageReceipt {
    /// The entry of `step`.
    pub fn step(&self, step: &str) -> Option<&StepEntry> {
        self.steps.iter().find(|s| s.step == step)
    }

    /// Each step's output layer, as its first seed made it (verified means
    /// every seed made the same), for the steps that have one.
    pub fn outputs(&self) -> impl Iterator<Item = (&str, Blake3)> {
        self.steps.iter().filter_map(|s| s.runs.first().and_then(|r| r.output).map(|o| (s.step.as_str(), o)))
    }

    /// The first step whose output layer no longer holds what was verified,
    /// as `check` finds it (`Store::check_layer`, or the unlocked reader's).
    pub fn first_damaged(&self, check: impl Fn(&Blake3) -> LayerState) -> Option<(&str, Blake3, LayerState)> {
        self.outputs().find_map(|(step, o)| Some((step, o, check(&o))).filter(|(_, _, s)| *s != LayerState::Intact))
    }
}

/// Drops the receipt of `stage` (when an object it names is gone), so the
/// next `verify` recomputes the stage from its step receipts.
pub fn forget(store: &Store, stage: &str) -> Result<(), StoreError> {
    let _ = std::fs::remove_file(twin_path(store.root(), stage));
    let path = receipt_path(store.root(), stage);
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(StoreError::Io { path, source: e }),
        _ => Ok(()),
    }
}

/// Where the receipt of `stage` lives.
pub fn receipt_path(store_root: &std::path::Path, stage: &str) -> PathBuf {
    crate::store::stage_receipt_path(store_root, stage)
}

/// Writes a stage receipt (temp file, fsync, rename), and its binary twin
/// in `cache/stages/` (see [`read_receipt`]).
pub fn write_receipt(store: &Store, r: &StageReceipt) -> Result<(), StoreError> {
    let path = receipt_path(store.root(), &r.stage);
    // Compact: a cached `verify` of a large chain reads these.
    let mut bytes = serde_json::to_vec(r).map_err(|e| StoreError::Io { path: path.clone(), source: e.into() })?;
    bytes.push(b'\n');
    store.write_atomic(&path, &bytes)?;
    write_twin(store, r, None);
    Ok(())
}

/// Writes the binary twin of the receipt just written or read, noting
/// `layers_seen` (see [`Loaded`]). Only a cache, written after the JSON it
/// mirrors: without it (or after a crash between the two) the JSON is
/// parsed, so failing to write it is no error.
fn write_twin(store: &Store, r: &StageReceipt, layers_seen: Option<Fingerprint>) {
    if let Some(key) = fingerprint(&receipt_path(store.root(), &r.stage))
        && let Ok(twin) = postcard::to_stdvec(&(TWIN_FORMAT, key, layers_seen, r))
    {
        let _ = store.write_atomic(&twin_path(store.root(), &r.stage), &twin);
    }
}

/// What identifies one version of a file or directory without reading it:
/// device, inode, size, and modification and change times. Receipts are
/// replaced by rename, so a new version is a new inode written at a new
/// time; an edit in place changes the times (the change time cannot be set
/// back); adding or removing an entry of a directory changes both times.
pub type Fingerprint = [u64; 7];

/// The [`Fingerprint`] of `path`, if it can be read.
pub fn fingerprint(path: &std::path::Path) -> Option<Fingerprint> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some([m.dev(), m.ino(), m.size(), m.mtime() as u64, m.mtime_nsec() as u64, m.ctime() as u64, m.ctime_nsec() as u64])
}

/// The first field of a binary twin: which layout of [`StageReceipt`] it
/// holds. postcard carries no field names, so a twin written by a build
/// whose types differ must not be read as this one's (2: outcomes and file
/// kinds became enums; 3: definition digests became `Blake3`). The twin is
/// only a cache: a mismatch reads the JSON.
const TWIN_FORMAT: u64 = 0xb007_57a9_0000_0003;

/// The binary twin of a stage receipt: the [`fingerprint`] of the JSON file
/// it mirrors, the `layers_seen` of [`Loaded`], then the receipt in postcard
/// with digests as raw bytes.
fn twin_path(state: &std::path::Path, stage: &str) -> PathBuf {
    crate::store::stage_twin_path(state, stage)
}

/// The last receipt of `stage` under the state directory `state`, if any
/// readable one (reading needs no lock: receipts are replaced by rename).
/// The JSON is the record; its binary twin is used only when it was
/// written for exactly this version of the JSON file (a stat, where reading
/// and parsing the JSON of a 1,000-step stage takes milliseconds).
pub fn read_receipt(state: &std::path::Path, stage: &str) -> Option<StageReceipt> {
    read(state, stage).map(|l| l.receipt)
}

/// A stage receipt as `verify` loads it, with what its twin remembers.
pub struct Loaded {
    /// The receipt.
    pub receipt: StageReceipt,
    /// The fingerprint of the store's `layers/` directory when every output
    /// layer this receipt names was last seen there: while `layers/` keeps
    /// that fingerprint, no layer was added or removed since.
    pub layers_seen: Option<Fingerprint>,
    from_twin: bool,
}

/// [`read_receipt`] for `verify`, which holds the store lock: when the
/// binary twin was missing or stale, it is written anew for the next run.
pub fn load(store: &Store, stage: &str) -> Option<Loaded> {
    let loaded = read(store.root(), stage)?;
    if !loaded.from_twin {
        write_twin(store, &loaded.receipt, None);
    }
    Some(loaded)
}

/// Notes in the twin that every layer of `loaded` was present while
/// `layers/` had the fingerprint `seen`. As git does for its index, nothing
/// is noted while `layers/` changed less than two seconds ago: a removal in
/// the same clock tick would leave the times as they were.
pub fn note_layers_seen(store: &Store, loaded: &Loaded, seen: Fingerprint) {
    let ns = |s: u64, n: u64| i128::from(s) * 1_000_000_000 + i128::from(n);
    let changed = ns(seen[3], seen[4]).max(ns(seen[5], seen[6]));
    if loaded.layers_seen != Some(seen) && crate::store::settled(changed) {
        write_twin(store, &loaded.receipt, Some(seen));
    }
}

fn read(state: &std::path::Path, stage: &str) -> Option<Loaded> {
    let path = receipt_path(state, stage);
    let key = fingerprint(&path)?;
    let twin = std::fs::read(twin_path(state, stage)).ok().and_then(|t| {
        let (format, k, seen, r): (u64, Fingerprint, Option<Fingerprint>, StageReceipt) = postcard::from_bytes(&t).ok()?;
        (format == TWIN_FORMAT && k == key).then_some((r, seen))
    });
    let loaded = match twin {
        Some((receipt, layers_seen)) => Loaded { receipt, layers_seen, from_twin: true },
        None => Loaded { receipt: serde_json::from_slice(&std::fs::read(&path).ok()?).ok()?, layers_seen: None, from_twin: false },
    };
    (loaded.receipt.format == STAGE_RECEIPT_FORMAT && loaded.receipt.stage == stage).then_some(loaded)
}
