//! Whether this machine reproduced a stage's snapshot: what `sign
//! --require-reproduced` asks before a signature vouches for it.

use crate::hash::Blake3;
use crate::store::{LayerState, Store};
use crate::verify::stage::{self, Verdict};

use super::Session;

/// Why this machine has not reproduced a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotReproduced {
    /// No verification of the stage is recorded here.
    NeverVerified {
        /// The stage.
        stage: String,
    },
    /// The last one was of another definition of the stage.
    OtherDefinition {
        /// The stage.
        stage: String,
    },
    /// The last one did not verify.
    Said(Verdict),
    /// The last one compared against another version of the snapshot.
    OtherSnapshot {
        /// The stage.
        stage: String,
    },
    /// The last one ran before the snapshot existed.
    NoSnapshotThen {
        /// The stage.
        stage: String,
    },
    /// A verified output changed since.
    Damaged {
        /// The step.
        step: String,
        /// Its output as verified.
        layer: Blake3,
        /// What it is now.
        state: LayerState,
    },
    /// The machine has no id, so receipts cannot say where they were made.
    NoMachineId,
    /// A step's receipt was made on another machine (or by an engine that
    /// recorded none).
    RanElsewhere {
        /// The stage.
        stage: String,
        /// The step.
        step: String,
        /// The seed.
        seed: String,
    },
}

impl std::fmt::Display for NotReproduced {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotReproduced::NeverVerified { stage } => write!(f, "it never verified `{stage}`"),
            NotReproduced::OtherDefinition { stage } => write!(f, "its last verification of `{stage}` was of another definition"),
            NotReproduced::Said(v) => write!(f, "its last verification said {}", v.as_str()),
            NotReproduced::OtherSnapshot { stage } => write!(f, "it last verified against another version of snapshots/{stage}.kdl"),
            NotReproduced::NoSnapshotThen { stage } => {
                write!(f, "it last verified before snapshots/{stage}.kdl existed, so nothing was compared with it")
            }
            NotReproduced::Damaged { step, layer, state } => {
                write!(f, "the output of step `{step}` ({layer}) is {} since it was verified", state.describe())
            }
            NotReproduced::NoMachineId => write!(f, "this machine has no /etc/machine-id, so its receipts cannot say they were made here"),
            NotReproduced::RanElsewhere { stage, step, seed } => write!(
                f,
                "step `{step}` on `{seed}` did not run on this machine (its receipt was made elsewhere, or by an engine that did not record machines); `bootstrap verify {stage} --rebuild` runs every step here"
            ),
        }
    }
}

impl Session {
    /// Whether this machine's last verification of `stage` (defined as
    /// `definition` today) compared every seed against exactly the snapshot
    /// whose BLAKE3 is `snap` (`blake3:<hex>`), every output is still the
    /// bytes verified, and every step ran on this machine, not in a state
    /// directory made elsewhere.
    pub fn reproduced_here(&self, store: &Store, stage: &str, definition: &Blake3, snap: &str) -> Result<(), NotReproduced> {
        let name = || stage.to_string();
        let receipt = stage::read_receipt(store.root(), stage).ok_or_else(|| NotReproduced::NeverVerified { stage: name() })?;
        if !super::state::made_under(&receipt, definition) {
            return Err(NotReproduced::OtherDefinition { stage: name() });
        }
        if receipt.verdict != Verdict::Verified {
            return Err(NotReproduced::Said(receipt.verdict));
        }
        match receipt.snapshot.as_deref() {
            Some(s) if s == snap => {}
            Some(_) => return Err(NotReproduced::OtherSnapshot { stage: name() }),
            None => return Err(NotReproduced::NoSnapshotThen { stage: name() }),
        }
        if let Some((step, layer, state)) = receipt.first_damaged(|o| store.check_layer(o)) {
            return Err(NotReproduced::Damaged { step: step.to_string(), layer, state });
        }
        let here = crate::machine::id().ok_or(NotReproduced::NoMachineId)?;
        for entry in &receipt.steps {
            for run in &entry.runs {
                let made_here = store.read_receipt(&entry.step, &run.seed, &run.input).is_some_and(|r| r.machine.as_deref() == Some(here.as_str()));
                if !made_here {
                    return Err(NotReproduced::RanElsewhere { stage: name(), step: entry.step.clone(), seed: run.seed.clone() });
                }
            }
        }
        Ok(())
    }
}
