//! What `build` can fail with, each a diagnostic with a code and a help
//! line, and the exit code each calls for (ARCHITECTURE.md §5).

use std::path::PathBuf;

use miette::{Diagnostic, SourceSpan};
use thiserror::Error;

use crate::chain::diag::Src;
use crate::exit;
use crate::exec::ExecError;
use crate::fetch::{FetchErrors, SourceError};
use crate::unpack::UnpackError;
use crate::store::StoreError;

/// Why a build did not run or did not finish.
#[derive(Debug, Error, Diagnostic)]
pub enum BuildError {
    /// `--seed` named a seed the chain does not declare.
    #[error("`--seed {name}`: the chain declares no seed `{name}`")]
    #[diagnostic(code(bootstrap::seed::unknown))]
    UnknownSeed {
        /// The name given.
        name: String,
        /// A close name, or the seeds.
        #[help]
        help: String,
    },
    /// One seed given two locations.
    #[error("`--seed {name}=…` is given more than once")]
    #[diagnostic(code(bootstrap::seed::twice), help("give each seed one location"))]
    SeedTwice {
        /// The seed.
        name: String,
    },
    /// Several `--seed NAME` picks on `build`.
    #[error("`build` runs on one seed, but {names} were picked")]
    #[diagnostic(code(bootstrap::seed::several), help("pick one with `--seed NAME`; `bootstrap verify` runs on all of them"))]
    SeveralPicks {
        /// The picked seeds.
        names: String,
    },
    /// No seed can be run on.
    #[error("no seed is available to run on: none has a `rootfs` in the chain and none was given with `--seed NAME=PATH`")]
    #[diagnostic(code(bootstrap::seed::none), help("give one: `--seed NAME=DIR` or `--seed NAME=TARBALL`; the chain's seeds are {names}"))]
    NoSeed {
        /// The chain's seeds.
        names: String,
    },
    /// The seed has neither a rootfs in the chain nor a location given.
    #[error("seed `{name}` has no `{field}` in the chain and no location was given")]
    #[diagnostic(code(bootstrap::seed::unavailable), help("{help}"))]
    SeedUnavailable {
        /// The seed.
        name: String,
        /// What the backend would take from the chain: `rootfs` or `image`.
        field: &'static str,
        /// How to give one.
        help: String,
        /// The chain file.
        #[source_code]
        src: Src,
        /// The seed's declaration.
        #[label("declared here without `{field}`")]
        span: SourceSpan,
    },
    /// The location given for a seed cannot be used.
    #[error("seed `{name}`: cannot use `{}`: {reason}", path.display())]
    #[diagnostic(code(bootstrap::seed::path), help("`--seed NAME=PATH` takes a root filesystem directory or a tarball (.tar, .tar.gz, .tar.xz, .tar.bz2)"))]
    SeedPath {
        /// The seed.
        name: String,
        /// The path given.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The image given for a seed is not in the engine.
    #[error("seed `{name}`: the engine has no image `{reference}`")]
    #[diagnostic(
        code(bootstrap::seed::image),
        help("nothing is pulled: load it into the engine first (`docker pull`, or `bootstrap seed import {name} ROOTFS.tar` for a root filesystem tarball)")
    )]
    SeedImage {
        /// The seed.
        name: String,
        /// The reference.
        reference: String,
    },
    /// The seed's tarball was refused or damaged.
    #[error("seed `{name}`: {error}")]
    #[diagnostic(code(bootstrap::seed::unpack))]
    SeedUnpack {
        /// The seed.
        name: String,
        /// What went wrong.
        error: UnpackError,
        /// The inner error's help line.
        #[help]
        help: Option<String>,
    },
    /// Sources (or the seed's rootfs) could not be fetched.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Fetch(#[from] FetchErrors),
    /// The sandbox could not be run.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Exec(#[from] ExecError),
    /// The store failed.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Store(#[from] StoreError),
    /// Steps ran and failed.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Failed(#[from] StepsFailed),
    /// Seeds and sources the run could not have, all of them.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Missing(Box<MissingInputs>),
}

impl BuildError {
    /// The exit code this error calls for.
    pub fn exit_code(&self) -> u8 {
        match self {
            BuildError::SeedUnavailable { .. } | BuildError::SeedImage { .. } | BuildError::NoSeed { .. } => exit::BLOCKED,
            BuildError::Fetch(f) => f.exit_code(),
            BuildError::Missing(m) => m.exit_code(),
            BuildError::Store(StoreError::Busy { .. }) => exit::BLOCKED,
            BuildError::Failed(_) => exit::STEP_FAILED,
            BuildError::Exec(crate::exec::ExecError::Interrupted) => exit::INTERRUPTED,
            _ => exit::BAD_INPUT,
        }
    }
}

/// One step that ran and failed.
#[derive(Debug, Error, Diagnostic)]
#[error("step `{step}` failed on seed `{seed}`: {what}")]
#[diagnostic(code(bootstrap::build::step_failed))]
pub struct StepFailed {
    /// The step.
    pub step: String,
    /// The seed.
    pub seed: String,
    /// What happened (`command 2 of 3 exited with code 1`).
    pub what: String,
    /// The chain file.
    #[source_code]
    pub src: Src,
    /// The step's declaration.
    #[label("this step")]
    pub span: SourceSpan,
    /// The log's last lines and where the whole log is.
    #[help]
    pub help: String,
}

/// Every step that failed in one build, and what that left undone.
#[derive(Debug, Error, Diagnostic)]
#[error("{} step(s) failed, {} blocked behind them", failures.len(), blocked.len())]
#[diagnostic(code(bootstrap::build::failed))]
pub struct StepsFailed {
    /// One per failed step (`main` renders each).
    pub failures: Vec<StepFailed>,
    /// Steps not run because something they need failed.
    pub blocked: Vec<String>,
}

/// Every input a run could not have, reported together. Holds at least one
/// problem.
#[derive(Debug, Error)]
#[error("{}", self.summary())]
pub struct MissingInputs {
    /// Seeds that cannot be run on: no location, or one that does not work.
    pub seeds: Vec<BuildError>,
    /// Sources (and seeds' rootfs tarballs) that no place gave.
    pub sources: Vec<SourceError>,
    /// How many seeds were asked for, and how many are ready.
    pub seeds_wanted: usize,
    /// How many are ready.
    pub seeds_ready: usize,
    /// How many the run needs.
    pub at_least: usize,
    /// How many sources the run needs.
    pub sources_total: usize,
}

impl Diagnostic for MissingInputs {
    fn code<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        Some(Box::new("bootstrap::inputs::missing"))
    }

    fn help<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        Some(Box::new(REMEMBER_HELP))
    }

    fn related<'a>(&'a self) -> Option<Box<dyn Iterator<Item = &'a dyn Diagnostic> + 'a>> {
        let seeds = self.seeds.iter().map(|d| d as &dyn Diagnostic);
        Some(Box::new(seeds.chain(self.sources.iter().map(|d| d as &dyn Diagnostic))))
    }
}

/// What to do once each problem's own help is followed.
pub const REMEMBER_HELP: &str =
    "supply each as its help says, then run again; `bootstrap seed add NAME PATH` and `bootstrap distfiles add DIR` remember them for later runs";

impl MissingInputs {
    fn summary(&self) -> String {
        let mut parts = Vec::new();
        let not_ready = self.seeds_wanted - self.seeds_ready;
        if not_ready > 0 {
            let mut s = format!("{not_ready} of {} seed{} cannot be run on", self.seeds_wanted, plural(self.seeds_wanted));
            if self.seeds_ready < self.at_least {
                s.push_str(&format!(" (this run needs {})", self.at_least));
            }
            parts.push(s);
        }
        let rootfs = self.sources.iter().filter(|e| e.name().is_some_and(|n| n.starts_with(SEED_SOURCE))).count();
        let missing = self.sources.len() - rootfs;
        if missing > 0 {
            parts.push(format!("{missing} of {} source{} could not be had", self.sources_total, plural(self.sources_total)));
        }
        format!("{}; nothing was run", parts.join(" and "))
    }

    /// The exit code (ARCHITECTURE.md §5): 2 when some place gave bytes that match
    /// no pin (a tampered mirror is a verification failure whatever else is
    /// missing), 3 when something is not available, else 1 (a location or
    /// download that does not work).
    pub fn exit_code(&self) -> u8 {
        let codes: Vec<u8> = self.sources.iter().map(SourceError::exit_code).chain(self.seeds.iter().map(BuildError::exit_code)).collect();
        [exit::VERIFICATION_FAILED, exit::BLOCKED].into_iter().find(|c| codes.contains(c)).unwrap_or(exit::BAD_INPUT)
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// The name prefix of a seed's rootfs tarball, fetched as a source.
pub const SEED_SOURCE: &str = "seed:";

