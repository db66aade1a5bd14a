//! The command line: global options, one file per subcommand.
//!
//! Each subcommand gets a [`Context`] (the chain directory, the state
//! directory, output mode) and writes its result to the writer it is given;
//! it returns an [`Error`] instead of printing one, so `main` alone decides
//! how errors look and which exit code they get.

pub mod attest;
pub mod audit;
pub mod build;
pub mod check;
pub mod diff;
pub mod error;
pub mod distfiles;
mod echo;
pub mod export;
pub mod fetch;
pub mod graph;
pub mod hash;
mod lines;
pub mod plan;
pub mod refused;
pub mod reroot;
pub mod seed;
pub mod sign;
pub mod snapshot;
pub mod status;
pub mod store;
pub mod trace;
pub mod verify;
pub mod verify_signatures;
pub mod worker;

use std::io::Write;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

pub use error::Error;
use crate::chain::Chain;
use crate::session::{Session, SessionOptions};
use crate::store::{LockMode, Store};

/// bootstrap: prove a toolchain comes from source, stage by stage, on independent seed distros.
#[derive(Debug, Parser)]
#[command(name = "bootstrap", version, about, max_term_width = 100)]
pub struct Cli {
    /// The chain directory (holding chain/chain.kdl).
    #[arg(short = 'C', long = "directory", value_name = "DIR", global = true, default_value = ".")]
    pub dir: PathBuf,
    /// The state directory [default: DIR/.bootstrap].
    #[arg(long, value_name = "DIR", global = true, env = "BOOTSTRAP_STATE")]
    pub state: Option<PathBuf>,
    /// Print one JSON document on stdout (shapes in docs/json.md).
    #[arg(long, global = true)]
    pub json: bool,
    /// A local mirror of source files, looked in before any URL or git repository (by file name and by sha256; for a source pinned by `tree`, any archive whose content matches); repeatable.
    #[arg(long, value_name = "DIR", global = true)]
    pub distfiles: Vec<PathBuf>,
    /// Use only the store and --distfiles; never the network.
    #[arg(long, global = true)]
    pub offline: bool,
    /// How many things to do at once [default: the number of CPUs].
    #[arg(short, long, value_name = "N", global = true, env = "BOOTSTRAP_JOBS")]
    pub jobs: Option<usize>,
    /// Where a seed is: NAME=DIR or NAME=TARBALL (local backend), NAME=IMAGE (oci); repeatable (commands that run steps take it too).
    #[arg(long = "seed", value_name = "NAME=PATH|IMAGE")]
    pub seeds: Vec<String>,
    /// How steps run: `local` (Linux namespaces, no daemon), `oci` (a Docker or Podman engine at DOCKER_HOST) or `remote` (a Remote Execution API server at --remote).
    #[arg(long, value_enum, value_name = "BACKEND", global = true, env = "BOOTSTRAP_BACKEND", default_value = "local")]
    pub backend: BackendKind,
    /// The Remote Execution API server steps run on with `--backend remote`, and `bootstrap worker` takes work from: grpc://HOST:PORT.
    #[arg(long, value_name = "URL", global = true, env = "BOOTSTRAP_REMOTE")]
    pub remote: Option<String>,
    /// The server's instance name.
    #[arg(long, value_name = "NAME", global = true, env = "BOOTSTRAP_REMOTE_INSTANCE", default_value = "")]
    pub remote_instance: String,
    /// Send each seed's steps only to workers serving it (platform property bootstrap-lineage=SEED; `bootstrap worker --property bootstrap-lineage=SEED`).
    #[arg(long, global = true)]
    pub remote_split_lineages: bool,
    /// A platform property every remote action carries: KEY=VALUE; repeatable.
    #[arg(long = "remote-property", value_name = "KEY=VALUE", global = true, value_parser = parse_property)]
    pub remote_properties: Vec<(String, String)>,
    /// Fail at once (exit 3) instead of waiting when another process holds the store lock.
    #[arg(long, global = true)]
    pub no_wait: bool,
    /// Keep at most this much of each step's log, its end (bytes, or with K, M, G) [default: 64M].
    #[arg(long, value_name = "SIZE", global = true, value_parser = parse_size)]
    pub max_log_size: Option<u64>,
    /// Let a step write at most this much to its /tmp, which is memory (local backend) [default: 4G].
    #[arg(long, value_name = "SIZE", global = true, value_parser = parse_size)]
    pub max_tmp_size: Option<u64>,
    /// Let a step have at most this many processes at once [default: 4096].
    #[arg(long, value_name = "N", global = true)]
    pub max_processes: Option<u64>,
    /// Let a step's processes use at most this much memory together (local backend: where a memory cgroup can be made) [default: 8G].
    #[arg(long, value_name = "SIZE", global = true, value_parser = parse_size)]
    pub max_memory: Option<u64>,
    /// Kill a step that leaves the state directory's disk with less than this free (local backend) [default: 1G].
    #[arg(long, value_name = "SIZE", global = true, value_parser = parse_size)]
    pub min_free_space: Option<u64>,
    /// Kill a step that writes more than this over its inputs, outside /tmp (local backend) [default: 128G].
    #[arg(long, value_name = "SIZE", global = true, value_parser = parse_size)]
    pub max_scratch_size: Option<u64>,
    /// Refuse a download that brings more than this (bytes, or with K, M, G) [default: 4G].
    #[arg(long, value_name = "SIZE", global = true, value_parser = parse_size)]
    pub max_download_size: Option<u64>,
    /// Refuse an archive that unpacks to more than this [default: 16G].
    #[arg(long, value_name = "SIZE", global = true, value_parser = parse_size)]
    pub max_unpacked_size: Option<u64>,
    /// Say more.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Say less.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// The command.
    #[command(subcommand)]
    pub command: Cmd,
}

pub use crate::session::BackendKind;

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Load and validate the chain; summary of stages, steps, sources.
    Check(check::Args),
    /// Execution order of a stage or step and all it needs.
    Plan(plan::Args),
    /// The needs graph as Graphviz dot or JSON.
    Graph(graph::Args),
    /// Download and check the sources of a stage or step (default: all).
    Fetch(fetch::Args),
    /// Tree digest and sha256 list of a directory.
    Hash(hash::Args),
    /// Run a step or stage (and what it needs) on one seed, without comparing seeds.
    Build(build::Args),
    /// The gate: run every stage up to STAGE on every seed, compare, check pins, unlock.
    Verify(verify::Args),
    /// Per stage: verified, stale, failed or never run; when, on which seeds, snapshot.
    Status(status::Args),
    /// Where the seeds' outputs of a step differ.
    Diff(diff::Args),
    /// Write snapshots/STAGE.kdl from the stage's verified outputs (the file to sign).
    Snapshot(snapshot::Args),
    /// Sign snapshots/STAGE.kdl with your OpenPGP key (a detached signature under snapshots/signatures/STAGE/).
    Sign(sign::Args),
    /// Check only the signatures of a stage's snapshot against chain/trust.kdl (no build, no state).
    VerifySignatures(verify_signatures::Args),
    /// Write a verified stage's outputs as a reproducible OCI image layout.
    Export(export::Args),
    /// An in-toto statement with SLSA provenance for a verified stage (stdout by default).
    Attest(attest::Args),
    /// Which step made an output, and what it consumed, down to sources and the seed.
    Trace(trace::Args),
    /// Walk the chain as an auditor: per step what went in, what ran, what came out on each seed, who signed.
    Audit(audit::Args),
    /// Run the chain on a new seed and compare every stage with the signed snapshots.
    Reroot(reroot::Args),
    /// Check or clean the state directory.
    #[command(subcommand)]
    Store(store::Cmd),
    /// Where the seeds are: remember their locations (`seed add`), list them, import images for the OCI backend.
    #[command(subcommand)]
    Seed(seed::Cmd),
    /// Remember distfiles directories, so commands need no --distfiles.
    #[command(subcommand)]
    Distfiles(distfiles::Cmd),
    /// Take steps from a Remote Execution API server (--remote) and run each in this machine's sandbox.
    Worker(worker::Args),
}

/// What every subcommand gets: the engine's [`Session`] and how to render.
/// It derefs to the session, so `cx.dir`, `cx.state` and `cx.settings`
/// are the session's.
#[derive(Debug)]
pub struct Context {
    /// The chain directory and state directory, opened.
    pub session: Session,
    /// JSON output requested.
    pub json: bool,
    /// Verbosity: -1 quiet, 0 normal, 1+ verbose.
    pub verbosity: i8,
}

impl std::ops::Deref for Context {
    type Target = Session;
    fn deref(&self) -> &Session {
        &self.session
    }
}

impl Context {
    /// Builds the context from the parsed command line and the state
    /// directory's settings file (a malformed one is an error: it is
    /// never silently ignored).
    pub fn from_cli(cli: &Cli, cancel: crate::exec::cancel::Cancel) -> Result<Self, Error> {
        let jobs = cli.jobs.filter(|&j| j > 0).unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
        let d = crate::exec::StepLimits::default();
        let session = Session::open(SessionOptions {
            dir: cli.dir.clone(),
            state: cli.state.clone().unwrap_or_else(|| cli.dir.join(".bootstrap")),
            distfiles: cli.distfiles.clone(),
            offline: cli.offline,
            jobs,
            no_wait: cli.no_wait,
            seeds: cli.seeds.iter().chain(command_seeds(&cli.command)).map(|s| crate::build::SeedArg::parse(s)).collect(),
            backend: cli.backend,
            remote: cli.remote.clone().map(|endpoint| crate::exec::remote::RemoteOptions {
                endpoint,
                instance: cli.remote_instance.clone(),
                split_lineages: cli.remote_split_lineages,
                properties: cli.remote_properties.clone(),
            }),
            limits: crate::exec::StepLimits {
                log: cli.max_log_size.unwrap_or(d.log),
                tmp: cli.max_tmp_size.unwrap_or(d.tmp),
                processes: cli.max_processes.unwrap_or(d.processes),
                memory: cli.max_memory.unwrap_or(d.memory),
                min_free: cli.min_free_space.unwrap_or(d.min_free),
                scratch: cli.max_scratch_size.unwrap_or(d.scratch),
            },
            max_download: cli.max_download_size.unwrap_or(crate::fetch::DEFAULT_MAX_DOWNLOAD),
            max_unpacked: cli.max_unpacked_size.unwrap_or(crate::unpack::DEFAULT_MAX_UNPACKED),
            cancel,
        })?;
        let verbosity = if cli.quiet { -1 } else { cli.verbose.min(100) as i8 };
        Ok(Context { session, json: cli.json, verbosity })
    }

    /// The session's seed arguments for `chain` (the global ones, then
    /// `extra`, then remembered locations), warning on stderr about a
    /// remembered seed the chain does not declare.
    pub fn seed_args(&self, chain: &Chain, extra: &[String]) -> Vec<crate::build::SeedArg> {
        let seeds = self.session.seed_args(chain, extra);
        if self.verbosity >= 0 {
            for name in &seeds.unknown {
                eprintln!(
                    "warning: {} remembers seed `{name}`, which the chain does not declare (`bootstrap seed remove {name}` forgets it)",
                    crate::chain::settings::path(&self.state).display(),
                );
            }
        }
        seeds.args
    }

    /// The session's backend.
    pub fn backend(&self) -> Result<crate::exec::Backend, Error> {
        self.session.backend().map_err(|e| Error::from(crate::build::BuildError::Exec(e)))
    }

    /// Opens the store, taking its lock; says on stderr when it has to wait.
    pub fn open_store(&self, mode: LockMode) -> Result<Store, Error> {
        let quiet = self.verbosity < 0;
        let notify = |msg: &str| {
            if !quiet {
                eprintln!("{msg}");
            }
        };
        Ok(self.session.open_store(mode, &notify)?)
    }

    /// Loads the chain.
    pub fn load(&self) -> Result<Chain, Error> {
        Ok(self.session.load()?)
    }
}

/// The `--seed` arguments given after a subcommand that takes them. (Not
/// a global option: clap would let the subcommand's occurrences replace,
/// not join, those given before it.)
fn command_seeds(cmd: &Cmd) -> &[String] {
    match cmd {
        Cmd::Build(args) => &args.seeds,
        _ => &[],
    }
}

/// Runs the command, writing its output to `out`; `cancel` stops running
/// steps when set.
pub fn run(cli: &Cli, cancel: crate::exec::cancel::Cancel, out: &mut dyn Write) -> Result<(), Error> {
    let cx = Context::from_cli(cli, cancel)?;
    let result = match &cli.command {
        Cmd::Check(args) => check::run(&cx, args, out),
        Cmd::Plan(args) => plan::run(&cx, args, out),
        Cmd::Graph(args) => graph::run(&cx, args, out),
        Cmd::Fetch(args) => fetch::run(&cx, args, out),
        Cmd::Hash(args) => hash::run(&cx, args, out),
        Cmd::Build(args) => build::run(&cx, args, out),
        Cmd::Verify(args) => verify::run(&cx, args, out),
        Cmd::Status(args) => status::run(&cx, args, out),
        Cmd::Diff(args) => diff::run(&cx, args, out),
        Cmd::Snapshot(args) => snapshot::run(&cx, args, out),
        Cmd::Sign(args) => sign::run(&cx, args, out),
        Cmd::VerifySignatures(args) => verify_signatures::run(&cx, args, out),
        Cmd::Export(args) => export::run(&cx, args, out),
        Cmd::Attest(args) => attest::run(&cx, args, out),
        Cmd::Trace(args) => trace::run(&cx, args, out),
        Cmd::Audit(args) => audit::run(&cx, args, out),
        Cmd::Reroot(args) => reroot::run(&cx, args, out),
        Cmd::Store(cmd) => store::run(&cx, cmd, out),
        Cmd::Seed(cmd) => seed::run(&cx, cmd, out),
        Cmd::Distfiles(cmd) => distfiles::run(&cx, cmd, out),
        Cmd::Worker(args) => worker::run(&cx, args, out),
    };
    result?;
    out.flush().map_err(Error::Output)
}

/// Writes a JSON document and a newline.
pub(crate) fn write_json<T: serde::Serialize>(out: &mut dyn Write, value: &T) -> Result<(), Error> {
    serde_json::to_writer_pretty(&mut *out, value).map_err(|e| Error::Output(e.into()))?;
    writeln!(out).map_err(Error::Output)
}

/// `KEY=VALUE`, both non-empty.
fn parse_property(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((k, v)) if !k.is_empty() && !v.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("`{text}` is not KEY=VALUE")),
    }
}

/// `4096`, `64K`, `64M`, `2G` (powers of 1024) as bytes; at least 2.
fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let (digits, shift) = match t.char_indices().last() {
        Some((i, 'K' | 'k')) => (&t[..i], 10),
        Some((i, 'M' | 'm')) => (&t[..i], 20),
        Some((i, 'G' | 'g')) => (&t[..i], 30),
        _ => (t, 0),
    };
    let n: u64 = digits.parse().map_err(|_| format!("`{text}` is not a size: give bytes, or a number with K, M or G"))?;
    n.checked_mul(1 << shift).filter(|&b| b >= 2).ok_or_else(|| format!("`{text}` is out of range (2 bytes to 16 EiB)"))
}
