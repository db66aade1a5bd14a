//! A run's inputs, its seeds and its sources, made ready together. What
//! cannot be had is gathered, not reported one thing at a time: every seed
//! without a usable location and every source no place gave end up in one
//! [`MissingInputs`], so one run tells a user everything to supply.

use std::collections::BTreeMap;

use miette::Diagnostic;
use thiserror::Error;

use super::error::BuildError;
use super::seed::{self, SeedArg, SeedRoot};
use super::ReadySource;
use crate::chain::Chain;
use crate::exec::{Backend, ExecError};
use crate::fetch::{self, Fetched, FetchOptions, Progress, SourceError};
use crate::store::Store;

/// What a run needs.
pub struct Wanted<'a> {
    /// The chain.
    pub chain: &'a Chain,
    /// The seeds to make ready, by index in `chain.seeds`.
    pub seeds: &'a [usize],
    /// The `--seed` arguments, remembered locations included.
    pub seed_args: &'a [SeedArg],
    /// How many of those seeds the run needs (`verify` compares two).
    pub at_least: usize,
    /// The steps whose sources are needed.
    pub selection: &'a [usize],
}

/// Everything ready: each seed ready to run on, each source in the store.
pub struct Inputs {
    /// The seeds made ready, in the order asked for.
    pub seeds: Vec<SeedRoot>,
    /// Seeds declared without a location and given none, which the run can
    /// do without (there are `at_least` others); a command warns of them.
    pub without: Vec<BuildError>,
    /// The sources, by name.
    pub sources: BTreeMap<String, ReadySource>,
    /// What fetching did, for its warnings.
    pub fetched: Vec<Fetched>,
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
        use crate::exit;
        let codes: Vec<u8> = self.sources.iter().map(SourceError::exit_code).chain(self.seeds.iter().map(BuildError::exit_code)).collect();
        [exit::VERIFICATION_FAILED, exit::BLOCKED].into_iter().find(|c| codes.contains(c)).unwrap_or(exit::BAD_INPUT)
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// The name prefix of a seed's rootfs tarball, fetched as a source.
pub const SEED_SOURCE: &str = "seed:";

/// Makes every seed and source ready, or says at once everything that is
/// missing. A seed merely without a location is tolerated while
/// `at_least` others are ready; anything else missing stops the run.
pub fn gather(w: &Wanted, store: &Store, opts: &FetchOptions, progress: &dyn Progress, backend: &Backend) -> Result<Inputs, BuildError> {
    let mut seeds = Vec::new();
    let mut without = Vec::new();
    let mut seed_problems = Vec::new();
    let mut source_problems = Vec::new();
    for &id in w.seeds {
        match seed::resolve(w.chain, id, w.seed_args, store, opts, progress, backend) {
            Ok(s) => seeds.push(s),
            Err(e @ BuildError::SeedUnavailable { .. }) => without.push(e),
            Err(BuildError::Fetch(f)) => source_problems.extend(f.errors),
            Err(e @ (BuildError::SeedPath { .. } | BuildError::SeedImage { .. } | BuildError::SeedUnpack { .. })) => seed_problems.push(e),
            Err(e) => return Err(e),
        }
    }
    let wanted = crate::plan::sources_of(w.chain, w.selection);
    let fetched = match fetch::fetch(w.chain, &wanted, store, opts, progress) {
        Ok(f) => f,
        Err(f) => {
            // A store failure is not a missing input: it stops everything.
            if f.errors.iter().any(|e| matches!(e, SourceError::Store(_))) {
                return Err(BuildError::Fetch(f));
            }
            source_problems.extend(f.errors);
            f.fetched
        }
    };
    if !source_problems.is_empty() || !seed_problems.is_empty() || seeds.len() < w.at_least {
        // Seeds without a location are listed too: the user supplies
        // everything in one go.
        seed_problems.splice(0..0, without);
        return Err(BuildError::Missing(Box::new(MissingInputs {
            seeds: seed_problems,
            sources: source_problems,
            seeds_wanted: w.seeds.len(),
            seeds_ready: seeds.len(),
            at_least: w.at_least,
            sources_total: wanted.len(),
        })));
    }
    let mut sources = BTreeMap::new();
    for f in &fetched {
        let r = ReadySource::of(store, f)
            .ok_or_else(|| BuildError::Exec(ExecError::Sandbox(format!("source `{}` is not in the store after fetching", f.name))))?;
        sources.insert(f.name.clone(), r);
    }
    Ok(Inputs { seeds, without, sources, fetched })
}
