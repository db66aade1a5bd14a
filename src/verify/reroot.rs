//! Re-rooting: a new seed's lineage compared with the signed snapshots
//! (`bootstrap reroot`).
//!
//! The packager's seed runs every step of the chain on its own lineage (its
//! own earlier outputs, as `verify` runs each seed). Each stage is then
//! *converged* when every step's output tree equals the snapshot's and the
//! snapshot is signed as `chain/trust.kdl` requires; *diverged* when some
//! step's output differs (with the files that differ), *failed* when a step
//! failed or could not run, *unsigned* when the trees agree but the
//! snapshot is not signed enough, and *no snapshot* when there is nothing
//! to compare with.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::build::Outcome;
use crate::chain::{Chain, StageId, StepId};
use crate::hash::Blake3;
use crate::sign::StageSignatures;
use crate::store::receipt::FileRecord;
use crate::sign::snapshot::{Snapshot, SnapshotEntry};

/// A stage's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Convergence {
    /// Every step gave the snapshot's tree, and the snapshot is signed enough.
    Converged,
    /// The trees agree but the snapshot is not signed as required.
    Unsigned,
    /// There is no snapshot of the stage to compare with.
    NoSnapshot,
    /// Some step gave another tree than the snapshot's.
    Diverged,
    /// Some step failed or was blocked.
    Failed,
}

impl Convergence {
    /// The word in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Convergence::Converged => "converged",
            Convergence::Unsigned => "unsigned",
            Convergence::NoSnapshot => "no snapshot",
            Convergence::Diverged => "diverged",
            Convergence::Failed => "failed",
        }
    }

    /// The exit code a run ending with this (worst) result calls for.
    pub fn exit_code(self) -> u8 {
        use crate::exit;
        match self {
            Convergence::Converged => exit::OK,
            Convergence::Unsigned | Convergence::Diverged => exit::VERIFICATION_FAILED,
            Convergence::NoSnapshot => exit::BLOCKED,
            Convergence::Failed => exit::STEP_FAILED,
        }
    }
}

/// A file that differs between the new lineage and the snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileDiff {
    /// The path in the layer.
    pub path: String,
    /// In the snapshot (`file sha256:…`, `symlink → …`), if there.
    pub snapshot: Option<String>,
    /// On the new seed, if there.
    pub here: Option<String>,
}

/// One step compared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepCompare {
    /// The step.
    pub step: String,
    /// `built`, `cached`, `failed` or `blocked` on the new seed.
    pub outcome: crate::build::OutcomeKind,
    /// Its output tree on the new seed.
    pub output: Option<Blake3>,
    /// The snapshot's tree for it, if the snapshot has the step.
    pub snapshot: Option<Blake3>,
    /// Whether the two trees are equal.
    pub agrees: bool,
    /// The files that differ, when they are not.
    pub differences: Vec<FileDiff>,
}

/// One stage compared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StageCompare {
    /// The stage.
    pub stage: String,
    /// Its result.
    pub result: Convergence,
    /// The snapshot's signatures, checked (none without rules).
    pub signatures: Option<StageSignatures>,
    /// Its steps, in execution order.
    pub steps: Vec<StepCompare>,
}

fn describe_record(f: &FileRecord) -> Option<String> {
    match f.kind.as_str() {
        "file" => Some(format!("file sha256:{}", f.sha256.map(|s| s.hex()).unwrap_or_default())),
        "symlink" => Some(format!("symlink → {}", f.target.as_deref().unwrap_or(""))),
        _ => None,
    }
}

fn describe_entry(e: &SnapshotEntry) -> (String, String) {
    match e {
        SnapshotEntry::File(p, sha) => (p.clone(), format!("file sha256:{sha}")),
        SnapshotEntry::Symlink(p, t) => (p.clone(), format!("symlink → {t}")),
    }
}

/// The files that differ between a receipt's list and the snapshot's.
fn differences(files: &[FileRecord], entries: &[SnapshotEntry]) -> Vec<FileDiff> {
    let here: BTreeMap<String, String> = files.iter().filter_map(|f| describe_record(f).map(|d| (f.path.clone(), d))).collect();
    let there: BTreeMap<String, String> = entries.iter().map(describe_entry).collect();
    let mut paths: Vec<&String> = here.keys().chain(there.keys()).collect();
    paths.sort();
    paths.dedup();
    paths
        .into_iter()
        .filter(|p| here.get(*p) != there.get(*p))
        .map(|p| FileDiff { path: p.clone(), snapshot: there.get(p).cloned(), here: here.get(p).cloned() })
        .collect()
}

/// Compares the new lineage's outcomes for the steps of stage `stage`
/// with its snapshot and signatures (`None`: the chain has no rules).
pub fn compare_stage(
    chain: &Chain,
    stage: StageId,
    outcomes: &[(StepId, Outcome)],
    snapshot: Option<&Snapshot>,
    signatures: Option<StageSignatures>,
) -> StageCompare {
    let mut steps = Vec::new();
    for (id, o) in outcomes.iter().filter(|(id, _)| chain.step(*id).stage == stage) {
        let name = &chain.step(*id).name;
        let pinned = snapshot.and_then(|s| s.step(name));
        let output = o.output();
        let agrees = pinned.is_some_and(|p| Some(p.tree) == output);
        let differences = match (o.receipt(), pinned) {
            (Some(r), Some(p)) if !agrees && output.is_some() => differences(&r.files, &p.entries),
            _ => Vec::new(),
        };
        steps.push(StepCompare { step: name.clone(), outcome: o.kind(), output, snapshot: pinned.map(|p| p.tree), agrees, differences });
    }
    let result = if steps.iter().any(|s| matches!(s.outcome, crate::build::OutcomeKind::Failed | crate::build::OutcomeKind::Blocked)) {
        Convergence::Failed
    } else if snapshot.is_none() {
        Convergence::NoSnapshot
    } else if steps.iter().any(|s| !s.agrees) {
        Convergence::Diverged
    } else if signatures.as_ref().is_some_and(|g| !g.met) {
        Convergence::Unsigned
    } else {
        Convergence::Converged
    };
    StageCompare { stage: chain.stage(stage).name.clone(), result, signatures, steps }
}
