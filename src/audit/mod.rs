//! The auditor's view: what the last `verify` of each stage recorded, read
//! back from the state directory, for `audit` ([`report`]) and `trace`
//! ([`trace`]).
//!
//! [`History`] joins the stage receipts (`receipts/stages/STAGE.json`) with
//! the step receipts they name, one per step and seed. Nothing is run and
//! nothing is written: a stage never verified simply has no history.


pub mod report;
pub mod trace;

use std::collections::HashMap;

use crate::chain::{Chain, StageId};
use crate::plan::Plan;
use crate::store::Store;
use crate::store::receipt::Receipt;
use crate::verify::stage::{self, StageReceipt, StepEntry};

/// The recorded verification of every stage, with its step receipts.
pub struct History<'c> {
    /// The chain.
    pub chain: &'c Chain,
    /// Its plan (execution order, definition digests).
    pub plan: Plan<'c>,
    /// Per stage (by [`StageId::index`]): its last receipt, if any.
    stages: Vec<Option<StageReceipt>>,
    /// Per stage (by [`StageId::index`]): whether that receipt was made
    /// under the current definition.
    current: Vec<bool>,
    /// Step receipts by (step, seed).
    receipts: HashMap<(String, String), Receipt>,
}

impl<'c> History<'c> {
    /// Reads every stage receipt and the step receipts it names.
    pub fn load(chain: &'c Chain, store: &Store) -> History<'c> {
        let plan = Plan::new(chain);
        let mut stages = Vec::new();
        let mut current = Vec::new();
        let mut receipts = HashMap::new();
        for (i, s) in chain.stage_ids().zip(chain.stages()) {
            let r = stage::read_receipt(store.root(), &s.name);
            current.push(r.as_ref().is_some_and(|r| crate::session::state::made_under(r, &stage::stage_digest(chain, &plan, i))));
            for step in r.iter().flat_map(|r| &r.steps) {
                for run in &step.runs {
                    if let Some(rec) = store.read_receipt(&step.step, &run.seed, &run.input) {
                        receipts.insert((step.step.clone(), run.seed.clone()), rec);
                    }
                }
            }
            stages.push(r);
        }
        History { chain, plan, stages, current, receipts }
    }

    /// The receipt of `step` on `seed`, as the last verification recorded it.
    pub fn receipt(&self, step: &str, seed: &str) -> Option<&Receipt> {
        self.receipts.get(&(step.to_string(), seed.to_string()))
    }

    /// The stage receipt entry of `step`, with its stage.
    pub fn entry(&self, step: &str) -> Option<(StageId, &StepEntry)> {
        let stage = self.chain.step(self.chain.step_id(step)?).stage;
        self.stage_receipt(stage)?.step(step).map(|e| (stage, e))
    }

    /// The last receipt of stage `stage`, if any.
    pub fn stage_receipt(&self, stage: StageId) -> Option<&StageReceipt> {
        self.stages[stage.index()].as_ref()
    }

    /// Whether the last receipt of stage `stage` was made under its current
    /// definition (`false` without one).
    pub fn current(&self, stage: StageId) -> bool {
        self.current[stage.index()]
    }

    /// The seeds the stage was compared on (first is the first lineage).
    pub fn seeds_of(&self, stage: StageId) -> Vec<String> {
        self.stage_receipt(stage).map(|r| r.seeds.iter().map(|s| s.name.clone()).collect()).unwrap_or_default()
    }
}
