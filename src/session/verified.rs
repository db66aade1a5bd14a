//! A stage verified under its current definition, with every output still
//! the bytes verified: what `snapshot`, `export` and `attest` hand on.

use crate::hash::Blake3;
use crate::chain::Chain;
use crate::exit;
use crate::plan::{Plan, UnknownTarget};
use crate::store::receipt::Receipt;
use crate::store::{Store, StoreError};
use crate::verify::stage::{self, StageReceipt, Verdict};

use super::Session;

/// Why a stage's verified outputs cannot be handed on (snapshotted,
/// exported, attested).
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum StageRefused {
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
    /// The snapshot file could not be written.
    #[error("cannot write {path}: {message}")]
    #[diagnostic(code(bootstrap::snapshot::write), help("check that the chain directory is writable"))]
    Write {
        /// The file.
        path: String,
        /// What failed.
        message: String,
    },
    /// The stage is not in the chain.
    #[error(transparent)]
    #[diagnostic(transparent)]
    UnknownTarget(#[from] UnknownTarget),
    /// The store failed.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Store(#[from] StoreError),
}

impl StageRefused {
    /// The exit code: 3 for a stage not verified (yet), 2 for outputs
    /// changed since they were verified, 1 for the rest.
    pub fn exit_code(&self) -> u8 {
        match self {
            StageRefused::NotVerified { .. } | StageRefused::ReceiptMissing { .. } => exit::BLOCKED,
            StageRefused::LayerDamaged { .. } => exit::VERIFICATION_FAILED,
            StageRefused::Store(StoreError::Busy { .. }) => exit::BLOCKED,
            StageRefused::Write { .. } | StageRefused::UnknownTarget(_) | StageRefused::Store(_) => exit::BAD_INPUT,
        }
    }
}

/// A stage verified under its current definition: its receipt and the
/// step receipts of its first seed's lineage, in execution order (verified
/// means every seed gave the same outputs).
pub struct VerifiedStage {
    /// The stage receipt.
    pub receipt: StageReceipt,
    /// The stage's definition digest now (equal to the receipt's).
    pub definition: Blake3,
    /// One step receipt per step, each with an output.
    pub steps: Vec<Receipt>,
}

impl Session {
    /// Reads what the last `verify` of the stage recorded, refusing (exit 3)
    /// unless it verified the stage as it is defined now and every output is
    /// still the bytes verified. A stage receipt that names a step receipt or
    /// layer no longer intact in the store is dropped.
    pub fn verified_stage(&self, chain: &Chain, stage_name: &str, store: &Store) -> Result<VerifiedStage, StageRefused> {
        let plan = Plan::new(chain);
        let stage_id = crate::plan::stage_target(chain, stage_name)?;
        let definition = stage::stage_digest(chain, &plan, stage_id);
        let refused = |state: &str| StageRefused::NotVerified { stage: stage_name.to_string(), state: state.to_string() };
        let receipt = stage::read_receipt(store.root(), stage_name).ok_or_else(|| refused("never verified"))?;
        if !super::state::made_under(&receipt, &definition) {
            return Err(refused("its definition changed since it was verified"));
        }
        if receipt.verdict != Verdict::Verified {
            return Err(refused(&format!("its last verification said {}", receipt.verdict.as_str())));
        }
        let mut steps = Vec::new();
        for entry in &receipt.steps {
            let run = entry.runs.first().ok_or_else(|| refused("a step has no run"))?;
            let Some(r) = store.read_receipt(&entry.step, &run.seed, &run.input) else {
                // The stage receipt names something gone: it no longer holds.
                stage::forget(store, stage_name)?;
                return Err(StageRefused::ReceiptMissing {
                    step: entry.step.clone(),
                    seed: run.seed.clone(),
                    stage: stage_name.to_string(),
                });
            };
            let Some(layer) = r.output else {
                return Err(refused("a step has no output"));
            };
            // Verified then is not verified now if the bytes changed since.
            let state = store.check_layer(&layer);
            if state != crate::store::LayerState::Intact {
                stage::forget(store, stage_name)?;
                return Err(StageRefused::LayerDamaged {
                    step: entry.step.clone(),
                    layer,
                    state: state.describe(),
                    stage: stage_name.to_string(),
                });
            }
            steps.push(r);
        }
        Ok(VerifiedStage { receipt, definition, steps })
}
}
