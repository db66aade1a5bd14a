//! `bootstrap verify-signatures STAGE`: checks only the signatures of the
//! stage's snapshot against `chain/trust.kdl`, without building anything
//! or reading the state directory: the auditor's check. Exit 0 when every
//! rule is met, 2 when one is not (with what is missing).
//!
//! The report format is shared with `verify` and `sign` ([`write_block`]).

use std::io::Write;

use super::{Context, write_json};
use super::Error;
use crate::chain::trust::{self, Trust};
use crate::plan::Plan;
use crate::sign::{StageSignatures, check_stage};

/// Arguments of `verify-signatures`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The stage whose snapshot's signatures to check.
    pub stage: String,
}

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

/// Loads the trust policy, which must exist.
pub(crate) fn require_trust(cx: &Context) -> Result<Trust, Error> {
    trust::load(&cx.dir)?.ok_or(Error::NoTrust(NoTrust))
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

/// For commands that hand a stage's outputs on (`export`, `attest`): with
/// rules in `chain/trust.kdl`, the stage's snapshot must meet them (exit 2
/// otherwise), unless `skip` (`--no-signatures`, said on stderr). The check
/// made, if any.
pub(crate) fn require_signed(cx: &Context, stage: &str, definition: &str, skip: bool) -> Result<Option<StageSignatures>, Error> {
    if skip {
        // Loaded all the same: a malformed trust.kdl is an error either way.
        let rules = trust::load(&cx.dir)?.is_some_and(|t| !t.rules.is_empty());
        if rules && cx.verbosity >= 0 {
            eprintln!("warning: signatures are NOT checked (--no-signatures): `{stage}` is handed on whatever chain/trust.kdl requires");
        }
        return Ok(None);
    }
    let Some(sigs) = signatures(cx, stage, definition)? else { return Ok(None) };
    match Unsigned::of(&sigs) {
        Some(u) => Err(Error::Unsigned(u)),
        None => Ok(Some(sigs)),
    }
}

/// The stage's signatures checked against `chain/trust.kdl`'s rules, met
/// or not; `None` when it has no rules.
pub(crate) fn signatures(cx: &Context, stage: &str, definition: &str) -> Result<Option<StageSignatures>, Error> {
    let Some(trust) = trust::load(&cx.dir)?.filter(|t| !t.rules.is_empty()) else { return Ok(None) };
    Ok(Some(check_stage(&trust, &cx.dir, stage, definition)))
}
