//! What `build` can fail with, each a diagnostic with a code and a help
//! line, and the exit code each calls for (ARCHITECTURE.md §5).

use std::path::PathBuf;

use miette::{Diagnostic, SourceSpan};
use thiserror::Error;

use crate::chain::diag::Src;
use crate::exit;
use crate::exec::ExecError;
use crate::fetch::FetchErrors;
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
    Missing(Box<super::inputs::MissingInputs>),
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
