//! The engine's façade: one chain directory and its state directory, with
//! everything a command needs to act on them (ARCHITECTURE.md §1).
//!
//! A command parses its arguments, builds [`SessionOptions`] from them,
//! and asks a [`Session`]: load the chain, open the store, connect the
//! backend, locate the seeds, and answer the one question every command
//! that hands a stage on asks ([`StageState`]: verified under the current
//! definition? reproduced on this machine? signed as `chain/trust.kdl`
//! requires?). Policy lives here, once; the commands only render.
//!
//! Nothing here prints: what a command should tell the user comes back as
//! values (e.g. [`SeedArgs::unknown`]).

mod reproduced;
mod signed;
pub mod state;
mod verified;

use std::path::PathBuf;

pub use reproduced::NotReproduced;
pub use signed::{NoTrust, Signatures, Unsigned};
pub use state::{Locked, StageState, Verification};
pub use verified::{StageRefused, VerifiedStage};

use crate::build::SeedArg;
use crate::chain::cache::ParseCache;
use crate::chain::settings::Settings;
use crate::chain::{self, Chain, ChainErrors, LoadOptions};
use crate::exec::cancel::Cancel;
use crate::exec::{Backend, ExecError, StepLimits};
use crate::store::{LockMode, Store, StoreError, Wait};

/// Which backend runs steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendKind {
    /// Linux namespaces and overlayfs, no daemon.
    Local,
    /// A Docker or Podman engine through its API.
    Oci,
    /// A Remote Execution API server and its workers.
    Remote,
}

/// What a session is opened with: the directories, where inputs come
/// from, and the limits every step runs under.
#[derive(Debug, Clone)]
pub struct SessionOptions {
    /// The chain directory.
    pub dir: PathBuf,
    /// The state directory.
    pub state: PathBuf,
    /// Distfiles directories, in the order they are searched (an open
    /// [`Session`] adds the remembered ones not given).
    pub distfiles: Vec<PathBuf>,
    /// Never reach a network.
    pub offline: bool,
    /// How many steps, downloads or lineages at once.
    pub jobs: usize,
    /// Fail instead of waiting for another process's store lock.
    pub no_wait: bool,
    /// Seed arguments, in the order given.
    pub seeds: Vec<SeedArg>,
    /// The backend.
    pub backend: BackendKind,
    /// The Remote Execution API server (`--remote`), if given.
    pub remote: Option<crate::exec::remote::RemoteOptions>,
    /// What each step may use.
    pub limits: StepLimits,
    /// The largest download.
    pub max_download: u64,
    /// The largest unpacked archive.
    pub max_unpacked: u64,
    /// Set to stop running steps (the binary sets it on Ctrl-C, SIGTERM).
    pub cancel: Cancel,
}

/// An open chain directory and state directory: the options it was
/// opened with (its fields, through `Deref`), with the distfiles
/// directories the state directory remembers added, and those remembered
/// settings, read once when it is opened.
#[derive(Debug)]
pub struct Session {
    /// The options, `distfiles` completed from the settings.
    options: SessionOptions,
    /// The state directory's remembered settings.
    pub settings: Settings,
}

impl std::ops::Deref for Session {
    type Target = SessionOptions;
    fn deref(&self) -> &SessionOptions {
        &self.options
    }
}

/// How long a run that needs sources waits on a URL (`fetch --timeout`
/// sets it for `fetch` itself).
pub const FETCH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// What every lineage of a run shares.
#[derive(Clone, Copy)]
pub struct Run<'a> {
    /// The chain.
    pub chain: &'a Chain,
    /// Its plan.
    pub plan: &'a crate::plan::Plan<'a>,
    /// The open store.
    pub store: &'a Store,
    /// The backend's executor.
    pub executor: &'a dyn crate::exec::Executor,
    /// Run every step again (`verify --rebuild`).
    pub rebuild: bool,
}

/// Seed arguments for one chain: the given ones, then remembered
/// locations for the seeds not given.
#[derive(Debug, Clone)]
pub struct SeedArgs {
    /// What to locate the seeds with.
    pub args: Vec<SeedArg>,
    /// Remembered seeds the chain does not declare (left out).
    pub unknown: Vec<String>,
}

impl Session {
    /// Opens the session: reads the state directory's settings file (a
    /// malformed one is an error, never silently ignored). Nothing is
    /// locked or loaded yet.
    pub fn open(mut options: SessionOptions) -> Result<Session, ChainErrors> {
        let settings = chain::settings::load(&options.state)?;
        for d in &settings.distfiles {
            let given = options.distfiles.iter().any(|g| std::path::absolute(g).is_ok_and(|a| &a == d));
            if !given {
                options.distfiles.push(d.clone());
            }
        }
        Ok(Session { options, settings })
    }

    /// Loads the chain, using the parse cache under the state directory.
    pub fn load(&self) -> Result<Chain, ChainErrors> {
        let opts = LoadOptions { cache: Some(ParseCache::new(crate::store::parse_cache_dir(&self.state))) };
        chain::load_dir(&self.dir, &opts)
    }

    /// Opens the store, taking its lock; `notify` hears when it has to wait.
    pub fn open_store(&self, mode: LockMode, notify: &dyn Fn(&str)) -> Result<Store, StoreError> {
        let wait = if self.no_wait { Wait::NoWait } else { Wait::Block };
        Store::open(&self.state, mode, wait, notify)
    }

    /// The backend steps run with: the local one re-executes this program
    /// for each sandbox; the OCI one connects to the engine now.
    pub fn backend(&self) -> Result<Backend, ExecError> {
        Ok(match self.backend {
            BackendKind::Local => {
                let helper = std::env::current_exe().map_err(|e| ExecError::Io { what: "find the running executable (the local backend runs it as the sandbox)".into(), message: e.to_string() })?;
                Backend::Local(crate::exec::local::LocalBackend::new(helper).with_limits(self.limits).with_cancel(self.cancel.clone()))
            }
            BackendKind::Oci => {
                Backend::Oci(Box::new(crate::exec::oci::OciBackend::connect()?.with_limits(self.limits).with_cancel(self.cancel.clone())))
            }
            BackendKind::Remote => {
                let options = self.remote.clone().ok_or_else(|| ExecError::Unsupported {
                    backend: "remote",
                    message: "no server is named".into(),
                    help: "give its address: `--remote grpc://HOST:PORT` (or BOOTSTRAP_REMOTE), and `--remote-instance NAME` if it has instances".into(),
                })?;
                Backend::Remote(Box::new(crate::exec::remote::RemoteBackend::connect(options)?.with_limits(self.limits).with_cancel(self.cancel.clone())))
            }
        })
    }

    /// Fetch options, waiting at most `timeout` on a URL.
    pub fn fetch_options(&self, timeout: std::time::Duration) -> crate::fetch::FetchOptions {
        crate::fetch::FetchOptions {
            distfiles: self.distfiles.clone(),
            offline: self.offline,
            timeout,
            jobs: self.jobs,
            max_download: self.max_download,
            max_unpacked: self.max_unpacked,
        }
    }

    /// The seed arguments (the session's, then `extra`), followed by the
    /// remembered location, for this backend, of every declared seed they
    /// do not locate.
    pub fn seed_args(&self, chain: &Chain, extra: &[String]) -> SeedArgs {
        let mut args: Vec<SeedArg> = self.seeds.iter().cloned().chain(extra.iter().map(|s| SeedArg::parse(s))).collect();
        let mut unknown = Vec::new();
        for s in &self.settings.seeds {
            if !chain.seeds.iter().any(|d| d.name == s.name) {
                unknown.push(s.name.clone());
                continue;
            }
            if crate::build::seed::location(&args, &s.name).is_some() {
                continue;
            }
            let remembered = match self.backend {
                BackendKind::Local | BackendKind::Remote => s.path.clone(),
                BackendKind::Oci => s.image.as_ref().map(PathBuf::from),
            };
            if let Some(at) = remembered {
                args.push(SeedArg::Locate(s.name.clone(), at));
            }
        }
        SeedArgs { args, unknown }
    }

    /// Makes every input of a run ready ([`crate::build::inputs::gather`]
    /// with this session's fetch options): the seeds located and hashed or
    /// unpacked, every source of the selection in the store, or one error
    /// listing everything missing.
    pub fn ready(
        &self,
        wanted: &crate::build::Wanted,
        store: &Store,
        progress: &dyn crate::fetch::Progress,
        backend: &Backend,
    ) -> Result<crate::build::inputs::Inputs, crate::build::BuildError> {
        crate::build::inputs::gather(wanted, store, &self.fetch_options(FETCH_TIMEOUT), progress, backend)
    }

    /// One build per seed of `inputs`, in order, for `verify`: every
    /// lineage after the first runs under the chain's variations (`vary`),
    /// one step at a time per lineage (the verifier runs lineages side by
    /// side). `events` has one entry per seed.
    pub fn lineages<'a>(
        &self,
        run: Run<'a>,
        seeds: &'a [crate::build::SeedRoot],
        sources: &std::collections::BTreeMap<String, crate::build::ReadySource>,
        events: &[&'a dyn crate::build::Events],
    ) -> Vec<crate::build::Build<'a>> {
        seeds
            .iter()
            .zip(events)
            .enumerate()
            .map(|(i, (seed, events))| crate::build::Build {
                chain: run.chain,
                plan: run.plan,
                store: run.store,
                executor: run.executor,
                seed,
                sources: sources.clone(),
                jobs: 1,
                events: *events,
                vary: if i == 0 { Vec::new() } else { run.chain.decl.vary.clone() },
                rebuild: run.rebuild,
            })
            .collect()
    }

    /// Builds `selection` (in plan order) on one seed, `jobs` steps at a
    /// time (`build`, `reroot`): each step's outcome, in the order settled.
    pub fn build(
        &self,
        run: Run<'_>,
        seed: &crate::build::SeedRoot,
        sources: std::collections::BTreeMap<String, crate::build::ReadySource>,
        events: &dyn crate::build::Events,
        selection: &[crate::chain::StepId],
    ) -> Result<Vec<(crate::chain::StepId, crate::build::Outcome)>, crate::build::BuildError> {
        let build = crate::build::Build {
            chain: run.chain,
            plan: run.plan,
            store: run.store,
            executor: run.executor,
            seed,
            sources,
            jobs: self.jobs,
            events,
            vary: Vec::new(),
            rebuild: run.rebuild,
        };
        build.run(selection)
    }

    /// Verifies every stage up to `target` on the seeds of `seeds`
    /// ([`Session::lineages`], one entry of `events` per seed): the gate
    /// unlocks a stage only when the one before agreed on every seed,
    /// matched its pins and, when `trust` is given, is signed as it
    /// requires.
    #[allow(clippy::too_many_arguments)]
    pub fn verify<'a>(
        &self,
        run: Run<'a>,
        target: crate::chain::StageId,
        seeds: &'a [crate::build::SeedRoot],
        sources: &std::collections::BTreeMap<String, crate::build::ReadySource>,
        events: &[&'a dyn crate::build::Events],
        progress: &dyn crate::verify::Progress,
        trust: Option<&'a crate::chain::trust::Trust>,
    ) -> Result<crate::verify::Report, crate::verify::VerifyError> {
        let lineages = self.lineages(run, seeds, sources, events);
        let verifier = crate::verify::Verifier { chain: run.chain, plan: run.plan, store: run.store, lineages, jobs: self.jobs, trust };
        verifier.verify(target, progress)
    }

    /// The trust policy, `None` without `chain/trust.kdl`.
    pub fn trust(&self) -> Result<Option<crate::chain::trust::Trust>, ChainErrors> {
        crate::chain::trust::load(&self.dir)
    }

    /// The trust policy when it has rules: what the gate checks.
    pub fn rules(&self) -> Result<Option<crate::chain::trust::Trust>, ChainErrors> {
        Ok(self.trust()?.filter(|t| !t.rules.is_empty()))
    }
}
