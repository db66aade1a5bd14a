//! Everything a command can fail with, and its exit code (ARCHITECTURE.md §5).
//! It wraps the errors of every layer and of the commands, so it lives with
//! the commands.

use miette::Diagnostic;
use thiserror::Error;

use crate::chain::ChainErrors;
use crate::exit;
use crate::plan::UnknownTarget;

/// Everything a command can fail with.
#[derive(Debug, Error, Diagnostic)]
pub enum Error {
    /// The chain did not load.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Chain(#[from] ChainErrors),

    /// A command named a stage or step that does not exist.
    #[error(transparent)]
    #[diagnostic(transparent)]
    UnknownTarget(#[from] UnknownTarget),

    /// A tree could not be hashed.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Hash(#[from] crate::hash::HashError),

    /// The state directory failed.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Store(#[from] crate::store::StoreError),

    /// Some sources could not be fetched.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Fetch(#[from] crate::fetch::FetchErrors),

    /// A build did not run or had failing steps.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Build(#[from] crate::build::BuildError),

    /// `verify` could not give verdicts.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Verify(#[from] crate::verify::VerifyError),

    /// `verify` gave verdicts, and a stage is not verified.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Unverified(super::refused::Unverified),

    /// A verified stage could not be handed on (`snapshot`, `export`, `attest`).
    #[error(transparent)]
    #[diagnostic(transparent)]
    Snapshot(#[from] crate::session::StageRefused),

    /// `sign` refused or failed.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Sign(Box<super::refused::SignRefused>),

    /// A stage's snapshot is not signed as `chain/trust.kdl` requires.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Unsigned(crate::session::Unsigned),

    /// A command that checks signatures found no `chain/trust.kdl`.
    #[error(transparent)]
    #[diagnostic(transparent)]
    NoTrust(crate::session::NoTrust),

    /// `export` could not write the image layout.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Export(crate::export::oci::LayoutError),

    /// `export --tag` is not an image reference.
    #[error(transparent)]
    #[diagnostic(transparent)]
    BadTag(super::refused::BadTag),

    /// `trace` found nothing.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Trace(crate::audit::trace::TraceError),

    /// `reroot` could not start or write.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Reroot(super::refused::RerootError),

    /// `reroot`: some stage did not converge.
    #[error(transparent)]
    #[diagnostic(transparent)]
    NotConverged(super::refused::NotConverged),

    /// `seed add|remove` or `distfiles add|remove` could not change the settings.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Settings(#[from] crate::chain::settings::SettingsError),

    /// `diff` found differences or had nothing to compare.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Diff(#[from] super::refused::DiffError),

    /// `store verify` found damaged objects (listed on stdout).
    #[error("the store has {count} damaged or stray object(s)")]
    #[diagnostic(
        code(bootstrap::store::corrupt),
        help("run `bootstrap store verify --remove` to delete them; `bootstrap fetch` and later runs recreate what is needed")
    )]
    StoreCorrupt {
        /// How many problems.
        count: usize,
    },

    /// Writing the command's output failed.
    #[error("cannot write output: {0}")]
    #[diagnostic(code(bootstrap::io::output), help("check the file or pipe that standard output goes to"))]
    Output(#[source] std::io::Error),
}

impl Error {
    /// The documented exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Chain(_) | Error::UnknownTarget(_) | Error::Output(_) | Error::Hash(_) => exit::BAD_INPUT,
            Error::Store(crate::store::StoreError::Busy { .. }) => exit::BLOCKED,
            Error::Store(_) => exit::BAD_INPUT,
            Error::Fetch(e) => e.exit_code(),
            Error::Build(e) => e.exit_code(),
            Error::Verify(e) => e.exit_code(),
            Error::Unverified(e) => e.exit_code(),
            Error::Snapshot(e) => e.exit_code(),
            Error::Diff(super::refused::DiffError::Differ { .. }) => exit::VERIFICATION_FAILED,
            Error::Diff(super::refused::DiffError::Nothing { .. }) => exit::BLOCKED,
            Error::Diff(_) => exit::BAD_INPUT,
            Error::StoreCorrupt { .. } => exit::VERIFICATION_FAILED,
            Error::Sign(e) => e.exit_code(),
            Error::Unsigned(_) => exit::VERIFICATION_FAILED,
            Error::NoTrust(_) => exit::BAD_INPUT,
            Error::Settings(_) => exit::BAD_INPUT,
            Error::Export(_) | Error::BadTag(_) | Error::Trace(_) | Error::Reroot(_) => exit::BAD_INPUT,
            Error::NotConverged(e) => e.worst.exit_code(),
        }
    }
}
