//! The errors commands end with that are theirs alone (a stage not
//! verified after `verify`, a refused `sign`, a bad `--tag`, `reroot` and
//! `diff` problems). They live apart from the commands so that
//! [`super::Error`], which wraps them, and the commands, which raise them,
//! both depend on this file and not on each other.

use std::collections::BTreeMap;

use crate::exit;
use crate::sign::key::KeyError;
use crate::verify::reroot::Convergence;
use crate::verify::{StageReceipt, Verdict};

/// The error a run ends with when a stage is not verified.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("stage `{stage}` is not verified: {what}{locked}")]
#[diagnostic(code(bootstrap::verify::not_verified))]
pub struct Unverified {
    /// The stage.
    pub stage: String,
    /// Its verdict.
    pub verdict: Verdict,
    /// Which steps, with which verdicts.
    pub what: String,
    /// `; stage1, stage2 stay locked`, or nothing.
    pub locked: String,
    /// What to do.
    #[help]
    pub help: String,
}

impl Unverified {
    pub(crate) fn new(stage: &StageReceipt, locked: &[String]) -> Self {
        let mut by: BTreeMap<Verdict, Vec<&str>> = BTreeMap::new();
        for s in &stage.steps {
            if s.verdict != Verdict::Verified {
                by.entry(s.verdict).or_default().push(&s.step);
            }
        }
        let what = by.iter().rev().map(|(v, steps)| format!("{} {}", v.as_str(), steps.join(", "))).collect::<Vec<_>>().join("; ");
        let help = match stage.verdict {
            Verdict::Mismatch => "the seeds produced different bytes: `bootstrap diff STEP` lists the files that differ".to_string(),
            Verdict::Nondeterministic => {
                "a step gave other bytes when run again with the same inputs: `bootstrap diff STEP` lists the files that differ between the two runs".to_string()
            }
            Verdict::Unexpected => {
                "every seed agreed on bytes that differ from a pinned sha256 or the stage's snapshot: check the pin against upstream, or re-snapshot if the change is intended".to_string()
            }
            Verdict::Failed => "a step failed on some seed: `bootstrap build STEP --seed NAME -v` reruns it with its log".to_string(),
            _ => "a step could not run because something it needs is not verified".to_string(),
        };
        Unverified {
            stage: stage.stage.clone(),
            verdict: stage.verdict,
            what,
            locked: match locked.len() {
                0 => String::new(),
                1 => format!("; {} stays locked", locked[0]),
                _ => format!("; {} stay locked", locked.join(", ")),
            },
            help,
        }
    }

    /// The exit code: 2 mismatch/unexpected, 4 failed, 3 blocked.
    pub fn exit_code(&self) -> u8 {
        self.verdict.exit_code()
    }
}

/// Why `sign` wrote nothing.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum SignRefused {
    /// There is no snapshot to sign.
    #[error("there is no snapshots/{stage}.kdl to sign")]
    #[diagnostic(code(bootstrap::sign::no_snapshot), help("run `bootstrap verify {stage}`, then `bootstrap snapshot {stage}`"))]
    NoSnapshot {
        /// The stage.
        stage: String,
    },
    /// The snapshot describes another definition of the stage.
    #[error("snapshots/{stage}.kdl was written for another definition of `{stage}` than the chain's current one")]
    #[diagnostic(
        code(bootstrap::sign::stale_snapshot),
        help("a signature would vouch for outputs of a stage that no longer exists: run `bootstrap verify {stage}` and `bootstrap snapshot {stage}` again")
    )]
    StaleSnapshot {
        /// The stage.
        stage: String,
    },
    /// `--require-reproduced`, and this machine did not verify this snapshot.
    #[error("this machine has not reproduced snapshots/{stage}.kdl: {why}")]
    #[diagnostic(
        code(bootstrap::sign::not_reproduced),
        help("run `bootstrap verify {stage} --no-signatures` here with the snapshot in place; sign once it says verified")
    )]
    NotReproduced {
        /// The stage.
        stage: String,
        /// What the state directory says.
        why: crate::session::NotReproduced,
    },
    /// The key is not one `trust.kdl` lists.
    #[error("the key {fingerprint} is not a signer in chain/trust.kdl")]
    #[diagnostic(
        code(bootstrap::sign::not_a_signer),
        help("a signature counts only from a listed signer: add `signer \"NAME\" role=\"…\" fingerprint=\"{fingerprint}\" cert=\"keys/NAME.asc\"` with your public certificate, reviewed like any change to the chain")
    )]
    NotASigner {
        /// The key's fingerprint.
        fingerprint: String,
    },
    /// The new signature would count zero.
    #[error("the signature would not count: {reason}")]
    #[diagnostic(
        code(bootstrap::sign::would_not_count),
        help("update your certificate in chain/{cert} (export it again after adding or renewing keys), or sign with the key it lists")
    )]
    WouldNotCount {
        /// Why.
        reason: String,
        /// The signer's certificate path under chain/.
        cert: String,
    },
    /// The key could not sign.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Key(#[from] KeyError),
    /// The signature file could not be written.
    #[error("cannot write {path}: {message}")]
    #[diagnostic(code(bootstrap::sign::write), help("check that the chain directory is writable"))]
    Write {
        /// The file.
        path: String,
        /// What failed.
        message: String,
    },
}

impl SignRefused {
    /// The exit code: 3 when something must be done first, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            SignRefused::NoSnapshot { .. } | SignRefused::StaleSnapshot { .. } | SignRefused::NotReproduced { .. } => exit::BLOCKED,
            _ => exit::BAD_INPUT,
        }
    }
}

/// A `--tag` that is not a valid image reference.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("`{tag}` is not an image reference NAME:TAG")]
#[diagnostic(
    code(bootstrap::export::tag),
    help("lowercase letters, digits and . _ - / in NAME, then `:` and a TAG of letters, digits, . _ - (up to 128), e.g. bootstrap/mini:stage0")
)]
pub struct BadTag {
    /// The value given.
    pub tag: String,
}

/// Why `reroot` could not start, or could not write.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum RerootError {
    /// `--seed` lacks a location.
    #[error("`--seed {given}` does not say where the seed is")]
    #[diagnostic(code(bootstrap::reroot::seed), help("write it as --seed NAME=DIR, --seed NAME=TARBALL or, on the OCI backend, --seed NAME=IMAGE"))]
    NoLocation {
        /// The argument.
        given: String,
    },
    /// `--replace` names no declared seed.
    #[error("`--replace {old}`: the chain declares no seed `{old}`")]
    #[diagnostic(code(bootstrap::reroot::replace), help("the chain's seeds are: {known}"))]
    UnknownOld {
        /// The name given.
        old: String,
        /// The declared seeds.
        known: String,
    },
    /// `--write` for a seed the chain already declares.
    #[error("the chain already declares a seed `{name}`; nothing to write")]
    #[diagnostic(code(bootstrap::reroot::declared), help("give the new seed a name of its own, or drop --write"))]
    AlreadyDeclared {
        /// The seed.
        name: String,
    },
    /// chain/chain.kdl could not be changed.
    #[error("cannot add the seed to chain/chain.kdl: {message}")]
    #[diagnostic(code(bootstrap::reroot::write), help("the file is unchanged; add the seed node by hand"))]
    Write {
        /// What failed.
        message: String,
    },
}

/// A run that did not converge everywhere.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("seed `{seed}` did not converge with the signed snapshots: {summary}")]
#[diagnostic(code(bootstrap::reroot::not_converged), help("{help}"))]
pub struct NotConverged {
    /// The new seed.
    pub seed: String,
    /// Per stage not converged, what it is.
    pub summary: String,
    /// The worst result.
    pub worst: Convergence,
    /// What to do.
    pub help: String,
}

/// Why there is nothing to compare.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum DiffError {
    /// No verification of the step's stage has run it on two seeds.
    #[error("step `{step}` has no outputs from two seeds to compare")]
    #[diagnostic(code(bootstrap::diff::nothing), help("run `bootstrap verify {stage}` first"))]
    Nothing {
        /// The step.
        step: String,
        /// Its stage.
        stage: String,
    },
    /// diffoscope is not installed.
    #[error("diffoscope is not installed")]
    #[diagnostic(code(bootstrap::diff::no_diffoscope), help("install it (Debian: `apt-get install diffoscope`), or leave out --diffoscope"))]
    NoDiffoscope,
    /// diffoscope failed on a pair of files.
    #[error("diffoscope failed on `{path}`: {message}")]
    #[diagnostic(code(bootstrap::diff::diffoscope_failed), help("run it by hand on the two files: {a} {b}"))]
    DiffoscopeFailed {
        /// The file's path in the output.
        path: String,
        /// What it said last, or how it ended.
        message: String,
        /// The two files.
        a: String,
        /// The second file.
        b: String,
    },
    /// The outputs differ (the listing is on stdout).
    #[error("the outputs of `{step}` differ in {count} place(s)")]
    #[diagnostic(code(bootstrap::diff::differ), help("the listing is above; between seeds, a seed's userland leaking into the output (paths, timestamps, tool versions) is the usual cause; between two runs of one seed, the time, randomness or an order that is not fixed"))]
    Differ {
        /// The step.
        step: String,
        /// How many differences.
        count: usize,
    },
}

