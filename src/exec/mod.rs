//! Executing one step on one seed (ARCHITECTURE.md §3): the [`Executor`] trait, the
//! one normalized [`StepRequest`] every backend receives, and the
//! [`StepResult`] it gives back. Backends differ only behind the trait; this
//! module knows nothing of KDL (the caller turns a chain step into a request).
//!
//! Backends: [`local`] (Linux namespaces, no daemon), [`oci`] (a Docker
//! or Podman engine through its API) and [`remote`] (a Remote Execution
//! API server); [`dry`] runs nothing, for tests. The sandbox side of the local
//! backend, which runs in a re-executed `bootstrap` process, is in
//! [`sandbox`].

pub mod cancel;
pub mod cgroup;
pub mod dry;
pub mod local;
pub mod log;
pub mod oci;
pub mod remote;
pub mod sandbox;
pub(crate) mod union;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use miette::Diagnostic;
use thiserror::Error;

use crate::hash::{Blake3, Tree};
use crate::store::StoreError;

/// How a source appears in the sandbox at `/src/<name>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceInput {
    /// An unpacked tree (a layer in the store), mounted as a directory.
    Tree(PathBuf),
    /// A single file (a source placed as-is), mounted read-only as a file.
    File(PathBuf),
}

/// The bottom of a step's root filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Root {
    /// Nothing (`root "scratch"`): only the sources, the needs' layers and
    /// what the sandbox brings.
    Scratch,
    /// A seed's root filesystem as a directory (the local backend).
    Dir(PathBuf),
    /// A seed as an image the engine holds, by image ID `sha256:<hex>` (the
    /// OCI backend).
    Image(crate::hash::Sha256),
}

/// Everything a backend needs to run one step on one seed, and nothing else.
///
/// Invariants (the caller guarantees them; backends may rely on them):
/// - `sources` is sorted by name, names are unique and are single path
///   components; every path exists and is content-addressed in the store.
/// - `layers` are the needs' output layers in the order written (a later one
///   wins where paths collide); each holds paths relative to the sandbox root.
/// - `commands` is not empty; each argv is not empty. A `script` step is
///   already turned into `[shell, "-e", "-c", script]`; a script with an
///   interpreter into `[interpreter…, "/src/.script"]`, its text then being
///   the file source `.script` (the only source name starting with `.`),
///   which a backend mounts like any other.
/// - `env` is the complete environment of ARCHITECTURE.md §3 (`PATH`, `HOME`,
///   `TZ`, `LC_ALL`, `SOURCE_DATE_EPOCH` plus the step's own), sorted by the map.
/// - `workdir` and every entry of `outputs` are absolute, normalised paths
///   (no `.`, `..` or empty components); `outputs` is sorted and unique.
#[derive(Debug, Clone)]
pub struct StepRequest {
    /// The seed's root filesystem, or nothing for a scratch root. A backend
    /// given a kind it cannot run (a directory to `oci`, an image to
    /// `local`) refuses with [`ExecError::Unsupported`].
    pub root: Root,
    /// Sources by name.
    pub sources: Vec<(String, SourceInput)>,
    /// Output layers of the needs, bottom to top.
    pub layers: Vec<PathBuf>,
    /// The commands, run in order until one fails.
    pub commands: Vec<Vec<String>>,
    /// The whole environment.
    pub env: BTreeMap<String, String>,
    /// Working directory inside the sandbox.
    pub workdir: String,
    /// Declared outputs (absolute paths inside the sandbox).
    pub outputs: Vec<String>,
    /// The lineage the step belongs to: the seed's name. Backends that share
    /// a cache between runs keep lineages apart by it (the remote backend
    /// salts its actions with it), so that one seed's result never stands
    /// for another's. Not part of the input digest (the seed's identity is).
    pub lineage: String,
    /// Run the step even where a backend could answer from a cache of its
    /// own (`verify --rebuild`: the remote backend then skips the server's
    /// action cache). Not part of the input digest.
    pub fresh: bool,
    /// The step's install directory, if it has one: each output is then
    /// read from under it and stored at its declared path
    /// ([`StepRequest::read_path`]).
    pub destdir: Option<String>,
    /// Killed, with everything it started, after this long.
    pub timeout: Duration,
    /// The hostname inside: `bootstrap`, or `bootstrap-vary` on a varied lineage.
    pub hostname: String,
    /// Where sources are mounted: `/src`, or on a lineage varying the build
    /// path another absolute directory, with `/src/<name>` a symlink to
    /// `<source_dir>/<name>` and outputs under `/src/<name>` captured
    /// through it (stored under their declared path).
    pub source_dir: String,
}

/// How the step ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Every command exited 0 and every output was captured.
    Succeeded,
    /// Command number `index` (from 0) exited with `code`.
    Exited {
        /// Which command.
        index: usize,
        /// Its exit code.
        code: i32,
    },
    /// Command number `index` was killed by `signal`.
    Signaled {
        /// Which command.
        index: usize,
        /// The signal number.
        signal: i32,
    },
    /// The timeout passed; everything was killed.
    TimedOut,
    /// The filesystem of the state directory fell below the free space a
    /// step must leave ([`StepLimits::min_free`]); everything was killed.
    LowOnSpace {
        /// The bytes that had to stay free.
        min_free: u64,
    },
    /// The step wrote more than [`StepLimits::scratch`] over its inputs;
    /// everything was killed.
    ScratchFull {
        /// The limit, in bytes.
        limit: u64,
    },
    /// A declared output could not be captured.
    BadOutput {
        /// The output as declared.
        path: String,
        /// Why (missing, special file, reached through a symlink).
        reason: String,
    },
}

/// What one step produced.
#[derive(Debug, Clone)]
pub struct StepResult {
    /// How it ended.
    pub status: Status,
    /// The captured output layer, its tree digest and tree, when it succeeded.
    pub layer: Option<(Blake3, Tree)>,
    /// The log (stdout and stderr, interleaved), stored as `logs/<digest>`.
    pub log: Blake3,
    /// Wall time.
    pub duration: Duration,
}

/// A step could not be run at all (as opposed to running and failing).
#[derive(Debug, Error, Diagnostic)]
pub enum ExecError {
    /// Setting up or tearing down the local backend's sandbox failed.
    #[error("cannot run the sandbox: {0}")]
    #[diagnostic(
        code(bootstrap::exec::sandbox),
        help("the local backend needs Linux namespaces and overlayfs (root, or unprivileged user namespaces enabled)")
    )]
    Sandbox(String),
    /// A file of the state directory could not be read or written while
    /// running a step (its log, its inputs, its captured outputs).
    #[error("cannot {what}: {message}")]
    #[diagnostic(code(bootstrap::exec::io), help("check the free space and the permissions of the state directory (`--state`)"))]
    Io {
        /// What was being done.
        what: String,
        /// What failed.
        message: String,
    },
    /// The backend cannot run this request as it is.
    #[error("the {backend} backend cannot run this: {message}")]
    #[diagnostic(code(bootstrap::exec::unsupported))]
    Unsupported {
        /// The backend.
        backend: &'static str,
        /// What it cannot do.
        message: String,
        /// What to do instead.
        #[help]
        help: String,
    },
    /// The OCI backend's init in the step container ended without saying
    /// how the step went.
    #[error("the step container's init ended with status {code} and no report (it said {said:?})")]
    #[diagnostic(
        code(bootstrap::exec::init),
        help("bootstrap's init runs as pid 1 of an x86_64 container: check that the engine runs x86_64 containers; the step's log is in the store (`bootstrap build STEP -v` shows it)")
    )]
    InitFailed {
        /// Its exit status.
        code: i64,
        /// What it wrote on stdout.
        said: String,
    },
    /// Something that cannot happen did: a bug in bootstrap.
    #[error("internal error: {0}")]
    #[diagnostic(code(bootstrap::internal), help("this is a bug in bootstrap: please report it with the command that ran and this message"))]
    Internal(String),
    /// The container engine could not be reached or refused a request.
    #[error("the container engine at {endpoint}: {message}")]
    #[diagnostic(
        code(bootstrap::exec::engine),
        help(
            "start the Docker engine, or a Podman API service (`podman system service --time=0 unix:///run/podman/podman.sock`), and point DOCKER_HOST at its socket (e.g. DOCKER_HOST=unix:///run/podman/podman.sock)"
        )
    )]
    Engine {
        /// `DOCKER_HOST`, or the default socket.
        endpoint: String,
        /// What failed.
        message: String,
    },
    /// The container engine started the step's container in a way the
    /// sandbox contract forbids; the init ran none of the step's commands.
    #[error("the container engine at {endpoint} ({engine}) {what}; no command of the step ran")]
    #[diagnostic(
        code(bootstrap::exec::engine_contract),
        help(
            "use Docker or Podman (for Podman bootstrap makes the namespace itself), or an engine whose API honours `CgroupnsMode: private`; or run with `--backend local`"
        )
    )]
    EngineContract {
        /// `DOCKER_HOST`, or the default socket.
        endpoint: String,
        /// The engine's product and version.
        engine: String,
        /// What it did.
        what: String,
    },
    /// The REAPI server could not be reached, or failed a call.
    #[error("the remote execution server at {endpoint}: {message}")]
    #[diagnostic(
        code(bootstrap::exec::remote),
        help(
            "start the server, or point `--remote` (BOOTSTRAP_REMOTE) at one that serves the instance given by `--remote-instance` (BOOTSTRAP_REMOTE_INSTANCE); its workers must be running (`bootstrap worker`)"
        )
    )]
    Remote {
        /// `--remote`.
        endpoint: String,
        /// What failed.
        message: String,
    },
    /// The run was cancelled (Ctrl-C, SIGTERM) while the step ran; the
    /// step's processes are gone, and so is its container.
    #[error("interrupted")]
    #[diagnostic(code(bootstrap::exec::interrupted))]
    Interrupted,
    /// The store failed.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Store(#[from] StoreError),
}

/// Where a step's log goes as it is written, besides the store: the
/// terminal with `-v`. Called with chunks of bytes, not whole lines.
pub trait LogSink: Sync {
    /// More of the log.
    fn write(&self, bytes: &[u8]);
}

/// A [`LogSink`] that drops everything (the log still goes to the store).
pub struct NoEcho;

impl LogSink for NoEcho {
    fn write(&self, _: &[u8]) {}
}

/// The backend a command runs steps with (`--backend`).
pub enum Backend {
    /// Linux namespaces, no daemon.
    Local(local::LocalBackend),
    /// A Docker or Podman engine.
    Oci(Box<oci::OciBackend>),
    /// A Remote Execution API server and its workers.
    Remote(Box<remote::RemoteBackend>),
    /// Nothing runs ([`dry`]); seeds are directories, as on the local
    /// backend. Only the library's own tests use it.
    DryRun(dry::DryRun),
}

impl Backend {
    /// The backend as an [`Executor`].
    pub fn executor(&self) -> &dyn Executor {
        match self {
            Backend::Local(b) => b,
            Backend::Oci(b) => b.as_ref(),
            Backend::Remote(b) => b.as_ref(),
            Backend::DryRun(b) => b,
        }
    }
}

/// A way of running steps. Every backend gives the same output layer digest
/// for the same request (the conformance suite holds them to it).
pub trait Executor: Sync {
    /// The backend's name in receipts (`local`, `oci`).
    fn name(&self) -> &'static str;
    /// The container engine that runs the steps, as its API names itself
    /// (`Docker Engine - Community 28.2.2`, `Podman Engine 4.3.1`), for
    /// receipts; `None` when steps run without one (the local backend's
    /// own sandbox).
    fn container_engine(&self) -> Option<&str> {
        None
    }
    /// Runs the step; `Ok` whenever the step ran, whatever its status. The
    /// log is also passed to `echo` while the step runs.
    fn run(&self, req: &StepRequest, store: &crate::store::Store, echo: &dyn LogSink) -> Result<StepResult, ExecError>;
}

/// The resources one step may use, the same on every backend that can
/// enforce them (see each field). Defaults a real chain fits in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepLimits {
    /// The most of its log that is kept, its end (`--max-log-size`).
    pub log: u64,
    /// The most it may write to `/tmp`, which is memory (`--max-tmp-size`;
    /// local backend).
    pub tmp: u64,
    /// The most processes it may have at once (`--max-processes`).
    pub processes: u64,
    /// The most memory its processes may use together (`--max-memory`;
    /// local backend: where a memory cgroup can be made).
    pub memory: u64,
    /// The free space the state directory's filesystem must keep while a
    /// step runs (`--min-free-space`; local backend): what a step writes
    /// to an overlay's scratch layer goes there, unbounded otherwise.
    pub min_free: u64,
    /// The most a step may write over its inputs, outside `/tmp`
    /// (`--max-scratch-size`; local backend: measured every few seconds).
    pub scratch: u64,
}

impl Default for StepLimits {
    fn default() -> Self {
        StepLimits { log: log::DEFAULT_LOG_LIMIT, tmp: 4 << 30, processes: 4096, memory: 8 << 30, min_free: 1 << 30, scratch: 128 << 30 }
    }
}

/// The capabilities a step keeps on every backend (Linux names without
/// `CAP_`, and bit numbers), all others dropped: enough to own, chmod and
/// chown its files, change its ids and signal its processes. Left out above
/// all: `SYS_ADMIN` (mounts, namespaces), `MKNOD`, `SYS_PTRACE`,
/// `NET_ADMIN`, `NET_RAW`, `SYS_CHROOT` and every capability over the
/// kernel, time, modules or devices.
pub const STEP_CAPABILITIES: &[(&str, u32)] = &[
    ("CHOWN", 0),
    ("DAC_OVERRIDE", 1),
    ("DAC_READ_SEARCH", 2),
    ("FOWNER", 3),
    ("FSETID", 4),
    ("KILL", 5),
    ("SETGID", 6),
    ("SETUID", 7),
    ("NET_BIND_SERVICE", 10),
    ("SETFCAP", 31),
];

/// Makes an absolute path normal: no empty, `.` or `..` components (`..`
/// stops at the root, as the kernel's does).
pub fn normalize(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    format!("/{}", parts.join("/"))
}

impl StepRequest {
    /// Where output `out` (one of [`StepRequest::outputs`]) is read inside
    /// the sandbox: under the step's `destdir` if it has one, then moved to
    /// the lineage's source directory if that lands under `/src/<source>/`
    /// ([`real_output_path`]). What is read there is stored under `out`.
    pub fn read_path(&self, out: &str) -> String {
        let out = match &self.destdir {
            Some(d) => format!("{}{}", d.trim_end_matches('/'), out),
            None => out.to_string(),
        };
        real_output_path(&self.source_dir, self.sources.iter().map(|(n, _)| n.as_str()), &out)
    }
}

/// Where output `out` (absolute, as declared) really is inside the sandbox.
/// Under a varied build path (`source_dir` other than `/src`), an output
/// under `/src/<name>/` of one of the `sources` is read at
/// `<source_dir>/<name>/…` and stored under its declared path; any other
/// output is where it says.
pub fn real_output_path<'a>(source_dir: &str, mut sources: impl Iterator<Item = &'a str>, out: &str) -> String {
    let sd = source_dir.trim_matches('/');
    match out.strip_prefix("/src/") {
        Some(rest) if sd != "src" && sources.any(|n| rest.split('/').next() == Some(n)) => format!("/{sd}/{rest}"),
        _ => out.to_string(),
    }
}
