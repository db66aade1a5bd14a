//! `bootstrap verify-signatures STAGE`: checks only the signatures of the
//! stage's snapshot against `chain/trust.kdl`, without building anything
//! or reading the state directory: the auditor's check. Exit 0 when every
//! rule is met, 2 when one is not (with what is missing).
//!
//! The report format is shared with `verify` and `sign` ([`write_block`]).

use std::io::Write;

use super::{Context, write_json};
use super::Error;
use crate::chain::trust::Trust;
use crate::plan::Plan;
use crate::session::{NoTrust, Signatures, Unsigned};
use crate::sign::{StageSignatures, check_stage};

/// Arguments of `verify-signatures`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The stage whose snapshot's signatures to check.
    pub stage: String,
}

/// Loads the trust policy, which must exist.
pub(crate) fn require_trust(cx: &Context) -> Result<Trust, Error> {
    cx.session.trust()?.ok_or(Error::NoTrust(NoTrust))
}

/// Runs `verify-signatures`.
pub fn run(cx: &Context, args: &Args, out: &mut dyn Write) -> Result<(), Error> {
    let chain = cx.load()?;
    let plan = Plan::new(&chain);
    let stage = crate::plan::stage_target(&chain, &args.stage)?;
    let trust = require_trust(cx)?;
    let definition = crate::verify::stage::stage_digest(&chain, &plan, stage);
    let sigs = check_stage(&trust, &chain.dir, &args.stage, &definition);
    if cx.json {
        write_json(out, &sigs)?;
    } else {
        write_block(&sigs, out).map_err(Error::Output)?;
        let verdict = match sigs.shortfall() {
            None if trust.rules.is_empty() => format!("{}: chain/trust.kdl has no `require` rule, so nothing is required", args.stage),
            None => format!("{}: signed as chain/trust.kdl requires", args.stage),
            Some(s) => format!("{}: rule not met: {s}", args.stage),
        };
        writeln!(out, "{verdict}").map_err(Error::Output)?;
    }
    match Unsigned::of(&sigs) {
        Some(u) => Err(Error::Unsigned(u)),
        None => Ok(()),
    }
}

/// The signatures and rules of one stage, as `verify`, `sign` and
/// `verify-signatures` print them.
pub(crate) fn write_block(sigs: &StageSignatures, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(out, "{} signatures:", sigs.stage)?;
    if let Some(p) = &sigs.problem {
        writeln!(out, "  problem: {p}")?;
    }
    if sigs.signatures.is_empty() && sigs.problem.is_none() {
        writeln!(out, "  none in snapshots/signatures/{}/", sigs.stage)?;
    }
    let w = sigs.signatures.iter().map(|s| s.signer.as_deref().unwrap_or("?").len()).max().unwrap_or(0);
    for s in &sigs.signatures {
        let name = s.file.rsplit('/').next().unwrap_or(&s.file);
        let index = if s.index > 1 { format!(" #{}", s.index) } else { String::new() };
        let verdict = if s.counted { "counted" } else { "rejected" };
        writeln!(out, "  {:<w$}  {verdict:<8}  {name}{index}", s.signer.as_deref().unwrap_or("?"))?;
        if let Some(r) = &s.reason {
            writeln!(out, "      {r}")?;
        }
    }
    for r in &sigs.rules {
        writeln!(out, "  rule {:<7}  {}", if r.met { "met" } else { "NOT MET" }, r.describe())?;
    }
    Ok(())
}

/// For commands that hand a stage's outputs on (`export`, `attest`): the
/// session's [`crate::session::Session::require_signed`], with a warning
/// on stderr when rules go unchecked; exit 2 when a rule is not met. The
/// check made, if any.
pub(crate) fn require_signed(cx: &Context, stage: &str, definition: &crate::hash::Blake3, skip: bool) -> Result<Option<StageSignatures>, Error> {
    match cx.session.require_signed(stage, definition, skip)? {
        Signatures::Skipped { rules } => {
            if rules && cx.verbosity >= 0 {
                eprintln!("warning: signatures are NOT checked (--no-signatures): `{stage}` is handed on whatever chain/trust.kdl requires");
            }
            Ok(None)
        }
        Signatures::NoRules => Ok(None),
        Signatures::Met(sigs) => Ok(Some(sigs)),
        Signatures::Unmet(u) => Err(Error::Unsigned(u)),
    }
}
