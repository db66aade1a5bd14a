//! [`StageState`]: what a stage's last verification said and whether it
//! still holds, whether its snapshot is signed as required, and whether an
//! earlier stage keeps it locked. `status` shows it; the gate and the
//! commands that hand stages on ask the same questions here.

use crate::chain::Chain;
use crate::chain::trust::Trust;
use crate::hash::Blake3;
use crate::plan::Plan;
use crate::sign::StageSignatures;
use crate::store::LayerState;
use crate::verify::stage::{self, StageReceipt, Verdict};

use super::Session;

/// What a stage's last verification says today.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verification {
    /// No verification reached it.
    NeverRun,
    /// Verified under another definition than today's (it says what).
    Stale(Verdict),
    /// Verified, but the bytes of a step's output changed since.
    Damaged {
        /// The step.
        step: String,
        /// Its output as verified.
        layer: Blake3,
        /// What the layer is now.
        state: LayerState,
    },
    /// The last verification's verdict, under today's definition.
    Is(Verdict),
}

impl Verification {
    /// Verified under today's definition, with every output intact.
    pub fn verified(&self) -> bool {
        *self == Verification::Is(Verdict::Verified)
    }

    /// As `status` words it.
    pub fn describe(&self) -> String {
        match self {
            Verification::NeverRun => "never run".to_string(),
            Verification::Stale(v) => format!("stale (was {})", v.as_str()),
            Verification::Damaged { .. } => "damaged (run verify)".to_string(),
            Verification::Is(v) => v.as_str().to_string(),
        }
    }
}

/// Why a stage verified on its own is still locked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Locked {
    /// This earlier stage is not verified.
    NotVerified(String),
    /// This earlier stage's snapshot is not signed as the rules require.
    NotSigned(String),
}

impl std::fmt::Display for Locked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Locked::NotVerified(s) => write!(f, "{s} is not verified"),
            Locked::NotSigned(s) => write!(f, "{s} is not signed"),
        }
    }
}

/// One stage, as the state directory and the chain directory say today.
#[derive(Debug, Clone)]
pub struct StageState {
    /// The stage.
    pub stage: String,
    /// Its definition digest today.
    pub definition: Blake3,
    /// Its last stage receipt.
    pub receipt: Option<StageReceipt>,
    /// What that receipt means today.
    pub verification: Verification,
    /// Its snapshot's signatures against the rules; `None` without rules.
    pub signatures: Option<StageSignatures>,
    /// Whether `snapshots/STAGE.kdl` exists.
    pub snapshot: bool,
    /// How many signature files it has.
    pub signature_files: usize,
    /// The earlier stage that keeps it locked, if any (the gate).
    pub locked: Option<Locked>,
}

impl StageState {
    /// Whether its snapshot's signatures meet the rules (`None`: no rules).
    pub fn signed(&self) -> Option<bool> {
        self.signatures.as_ref().map(|s| s.met)
    }
}

/// Whether `receipt` was made under the definition the stage has today
/// (`definition`): what it says is about the stage as it is.
pub fn made_under(receipt: &StageReceipt, definition: &Blake3) -> bool {
    receipt.definition == *definition
}

/// What `receipt` means for a stage whose definition is `definition`
/// today; `check` tells what a layer is now.
pub fn verification(receipt: Option<&StageReceipt>, definition: &Blake3, check: impl Fn(&Blake3) -> LayerState) -> Verification {
    match receipt {
        None => Verification::NeverRun,
        Some(r) if !made_under(r, definition) => Verification::Stale(r.verdict),
        Some(r) if r.verdict == Verdict::Verified => match r.first_damaged(check) {
            Some((step, layer, state)) => Verification::Damaged { step: step.to_string(), layer, state },
            None => Verification::Is(Verdict::Verified),
        },
        Some(r) => Verification::Is(r.verdict),
    }
}

impl Session {
    /// Every stage of `chain`, in order, with the gate applied: a stage is
    /// locked behind the first earlier one that is not verified, or whose
    /// snapshot does not meet `trust`'s rules. Reads receipts without the
    /// store lock (they are replaced by rename, never edited in place).
    pub fn stage_states(&self, chain: &Chain, plan: &Plan<'_>, trust: Option<&Trust>) -> Vec<StageState> {
        let trust = trust.filter(|t| !t.rules.is_empty());
        let mut blocker: Option<Locked> = None;
        let mut states = Vec::new();
        for (i, s) in chain.stage_ids().zip(chain.stages()) {
            let receipt = stage::read_receipt(&self.state, &s.name);
            let definition = stage::stage_digest(chain, plan, i);
            let verification = verification(receipt.as_ref(), &definition, |o| crate::store::check_layer_unlocked(&self.state, o));
            let signatures = trust.map(|t| crate::sign::check_stage(t, &chain.dir, &s.name, &definition));
            let mut state = StageState {
                stage: s.name.clone(),
                definition,
                receipt,
                verification,
                signature_files: crate::sign::check::signature_files(&chain.dir, &s.name).len(),
                snapshot: crate::sign::snapshot::path(&chain.dir, &s.name).is_file(),
                signatures,
                locked: None,
            };
            match &blocker {
                Some(b) => state.locked = Some(b.clone()),
                None if !state.verification.verified() => blocker = Some(Locked::NotVerified(s.name.clone())),
                None if state.signed() == Some(false) => blocker = Some(Locked::NotSigned(s.name.clone())),
                None => {}
            }
            states.push(state);
        }
        states
    }
}
