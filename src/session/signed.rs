//! Whether a stage may be handed on as far as signatures go: with rules in
//! `chain/trust.kdl`, its snapshot must meet them.

use crate::hash::Blake3;
use crate::chain::ChainErrors;
use crate::sign::{StageSignatures, check_stage};

use super::Session;

/// A stage whose snapshot is not signed as `trust.kdl` requires.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("stage `{stage}` is not signed as chain/trust.kdl requires: {shortfall}")]
#[diagnostic(code(bootstrap::sign::rule_not_met))]
pub struct Unsigned {
    /// The stage.
    pub stage: String,
    /// What is missing ("1 of 2 maintainers: alice signed; bob did not").
    pub shortfall: String,
    /// What to do.
    #[help]
    pub help: String,
}

impl Unsigned {
    /// The error for a stage whose rules are not met; `None` when they are.
    pub fn of(sigs: &StageSignatures) -> Option<Unsigned> {
        let shortfall = sigs.shortfall()?;
        let stage = &sigs.stage;
        let help = if sigs.problem.is_some() {
            format!("run `bootstrap verify {stage} --no-signatures`, `bootstrap snapshot {stage}`, then have the signers run `bootstrap sign {stage} --key FILE`")
        } else {
            format!("each missing signer runs `bootstrap sign {stage} --key FILE` and commits the .asc file; `--no-signatures` on verify checks builds alone")
        };
        Some(Unsigned { stage: stage.clone(), shortfall, help })
    }
}

/// `chain/trust.kdl`, which this command cannot do without.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("there is no chain/trust.kdl to check signatures against")]
#[diagnostic(
    code(bootstrap::sign::no_trust),
    help("write chain/trust.kdl with the signers and rules: trust {{ signer \"alice\" role=\"maintainer\" fingerprint=\"…\" cert=\"keys/alice.asc\"; require role=\"maintainer\" count=1 }}")
)]
pub struct NoTrust;

/// How a stage's signatures stand for handing it on.
#[derive(Debug)]
pub enum Signatures {
    /// `chain/trust.kdl` has no rules (or there is none): nothing to meet.
    NoRules,
    /// Not checked, as asked (`--no-signatures`); `rules` says whether
    /// there were rules that went unchecked.
    Skipped {
        /// Whether `chain/trust.kdl` has rules.
        rules: bool,
    },
    /// Every rule is met.
    Met(StageSignatures),
    /// A rule is not met.
    Unmet(Unsigned),
}

impl Session {
    /// The stage's signatures checked against `chain/trust.kdl`'s rules,
    /// met or not; `None` when it has no rules.
    pub fn signatures(&self, stage: &str, definition: &Blake3) -> Result<Option<StageSignatures>, ChainErrors> {
        let Some(trust) = self.rules()? else { return Ok(None) };
        Ok(Some(check_stage(&trust, &self.dir, stage, definition)))
    }

    /// For handing a stage's outputs on (`export`, `attest`): with rules,
    /// the snapshot must meet them, unless `skip`. The policy is loaded
    /// (and so checked) either way: a malformed `trust.kdl` is an error
    /// even when signatures are skipped.
    pub fn require_signed(&self, stage: &str, definition: &Blake3, skip: bool) -> Result<Signatures, ChainErrors> {
        if skip {
            return Ok(Signatures::Skipped { rules: self.rules()?.is_some() });
        }
        Ok(match self.signatures(stage, definition)? {
            None => Signatures::NoRules,
            Some(sigs) => match Unsigned::of(&sigs) {
                Some(u) => Signatures::Unmet(u),
                None => Signatures::Met(sigs),
            },
        })
    }
}
