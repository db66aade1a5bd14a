//! A run's inputs, its seeds and its sources, made ready together. What
//! cannot be had is gathered, not reported one thing at a time: every seed
//! without a usable location and every source no place gave end up in one
//! [`MissingInputs`], so one run tells a user everything to supply.

use std::collections::BTreeMap;

use super::error::{BuildError, MissingInputs};
use super::seed::{self, SeedArg, SeedRoot};
use super::ReadySource;
use crate::chain::{Chain, StepId};
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
    pub selection: &'a [StepId],
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
            .ok_or_else(|| BuildError::Exec(ExecError::Internal(format!("source `{}` is not in the store after fetching", f.name))))?;
        sources.insert(f.name.clone(), r);
    }
    Ok(Inputs { seeds, without, sources, fetched })
}
