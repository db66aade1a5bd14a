//! `bootstrap snapshot STAGE`: writes `snapshots/STAGE.kdl` from the step
//! receipts of the stage's last verification (format in
//! [`crate::sign::snapshot`]). Refused, exit 3, for a stage that is not
//! verified under its current definition.

use std::io::Write;

use super::{Context, write_json};
use super::Error;
use crate::chain::Chain;
use crate::plan::Plan;
use crate::store::receipt::Receipt;
use crate::store::{LockMode, Store};
use crate::verify::StageReceipt;
use crate::sign::snapshot::{self, Snapshot, SnapshotEntry, SnapshotStep};
use crate::verify::stage::{self, Verdict};

/// Arguments of `snapshot`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The stage (verified by `bootstrap verify STAGE`).
    pub stage: String,
}

/// Why a snapshot cannot be written.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum SnapshotRefused {
    /// The stage has no verified receipt under its current definition.
    #[error("stage `{stage}` is not verified under its current definition ({state})")]
    #[diagnostic(
        code(bootstrap::stage::not_verified),
        help("run `bootstrap verify {stage}` first; only verified outputs are snapshotted, exported or attested")
    )]
    NotVerified {
        /// The stage.
        stage: String,
        /// What its last receipt says.
        state: String,
    },
    /// A step receipt the stage receipt names is gone.
    #[error("the receipt of step `{step}` on seed `{seed}` is missing from the state directory")]
    #[diagnostic(code(bootstrap::stage::receipt_missing), help("run `bootstrap verify {stage}` again to recreate it"))]
    ReceiptMissing {
        /// The step.
        step: String,
        /// The seed.
        seed: String,
        /// Its stage.
        stage: String,
    },
    /// A layer the stage's verification produced no longer holds what was verified.
    #[error("the output of step `{step}` ({layer}) is {state}")]
    #[diagnostic(
        code(bootstrap::stage::layer_damaged),
        help("the state directory was changed after `verify` ran: do not use it; run `bootstrap verify {stage}` again, which moves the damaged layer aside and rebuilds it")
    )]
    LayerDamaged {
        /// The step.
        step: String,
        /// Its recorded output tree digest.
        layer: crate::hash::Blake3,
        /// What was found.
        state: String,
        /// Its stage.
        stage: String,
    },
    /// The file could not be written.
    #[error("cannot write {path}: {message}")]
    #[diagnostic(code(bootstrap::snapshot::write), help("check that the chain directory is writable"))]
    Write {
        /// The file.
        path: String,
        /// What failed.
        message: String,
    },
}

/// Writes `bytes` to `path` whole or not at all, readable by all (the
/// chain directory's files, not the store's).
pub(crate) fn write_atomic(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    crate::atomic::write(path, bytes, crate::atomic::SHARED)
}

/// A stage verified under its current definition: its receipt and the
/// step receipts of its first seed's lineage, in execution order (verified
/// means every seed gave the same outputs).
pub(crate) struct VerifiedStage {
    /// The stage receipt.
    pub receipt: StageReceipt,
    /// The stage's definition digest now (equal to the receipt's).
    pub definition: String,
    /// One step receipt per step, each with an output.
    pub steps: Vec<Receipt>,
}

/// Reads what the last `verify` of the stage recorded, refusing (exit 3)
/// unless it verified the stage as it is defined now. A stage receipt that
/// names a step receipt no longer in the store is dropped.
pub(crate) fn verified_stage(chain: &Chain, stage_name: &str, store: &Store) -> Result<VerifiedStage, Error> {
    let plan = Plan::new(chain);
    let stage_id = crate::plan::stage_target(chain, stage_name)?;
    let definition = stage::stage_digest(chain, &plan, stage_id);
    let refused = |state: &str| SnapshotRefused::NotVerified { stage: stage_name.to_string(), state: state.to_string() };
    let receipt = stage::read_receipt(store.root(), stage_name).ok_or_else(|| refused("never verified"))?;
    if receipt.definition != definition {
        return Err(Error::Snapshot(refused("its definition changed since it was verified")));
    }
    if receipt.verdict != Verdict::Verified {
        return Err(Error::Snapshot(refused(&format!("its last verification said {}", receipt.verdict.as_str()))));
    }
    let mut steps = Vec::new();
    for entry in &receipt.steps {
        let run = entry.runs.first().ok_or_else(|| refused("a step has no run"))?;
        let Some(r) = store.read_receipt(&entry.step, &run.seed, &run.input) else {
            // The stage receipt names something gone: it no longer holds.
            stage::forget(store, stage_name)?;
            return Err(Error::Snapshot(SnapshotRefused::ReceiptMissing {
                step: entry.step.clone(),
                seed: run.seed.clone(),
                stage: stage_name.to_string(),
            }));
        };
        let Some(layer) = r.output else {
            return Err(Error::Snapshot(refused("a step has no output")));
        };
        // Verified then is not verified now if the bytes changed since.
        let state = store.check_layer(&layer);
        if state != crate::store::LayerState::Intact {
            stage::forget(store, stage_name)?;
            return Err(Error::Snapshot(SnapshotRefused::LayerDamaged {
                step: entry.step.clone(),
                layer,
                state: state.describe(),
                stage: stage_name.to_string(),
            }));
        }
        steps.push(r);
    }
    Ok(VerifiedStage { receipt, definition, steps })
}

/// Runs `snapshot`.
pub fn run(cx: &Context, args: &Args, out: &mut dyn Write) -> Result<(), Error> {
    let chain = cx.load()?;
    let store = cx.open_store(LockMode::Exclusive)?;
    let verified = verified_stage(&chain, &args.stage, &store)?;
    let mut steps: Vec<SnapshotStep> = verified
        .steps
        .iter()
        .filter_map(|r| r.output.map(|tree| SnapshotStep { name: r.step.clone(), tree, entries: SnapshotEntry::of(&r.files) }))
        .collect();
    steps.sort_by(|a, b| a.name.cmp(&b.name));
    let snap = Snapshot { stage: args.stage.clone(), chain: chain.decl.name.clone(), definition: verified.definition, steps };
    let path = snapshot::path(&chain.dir, &args.stage);
    let text = snap.render();
    let unchanged = std::fs::read(&path).is_ok_and(|old| old == text.as_bytes());
    if !unchanged {
        write_atomic(&path, text.as_bytes())
            .map_err(|e| SnapshotRefused::Write { path: path.display().to_string(), message: e.to_string() })?;
    }
    let shown = format!("snapshots/{}.kdl", args.stage);
    if cx.json {
        write_json(out, &serde_json::json!({ "stage": args.stage, "path": shown, "changed": !unchanged, "steps": snap.steps.len() }))
    } else {
        let what = if unchanged { "unchanged" } else { "written" };
        writeln!(out, "{shown}: {what} ({} steps); sign it with `bootstrap sign {}`", snap.steps.len(), args.stage).map_err(Error::Output)
    }
}
