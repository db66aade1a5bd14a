//! Sources (DESIGN §2): getting each pinned file into the store and
//! unpacking it.
//!
//! For every source not yet in the store, the places tried are, in order:
//! each `--distfiles` directory (by the URLs' file names, then by the sha256
//! in hex), then the source's URLs as written (`http://`, `https://`,
//! `file://`). Bytes are hashed as they arrive and only a file with the pinned
//! sha256 is renamed into `sources/`; a wrong file is deleted and the next
//! place tried. An interrupted http download is kept in `tmp/fetch/` and
//! resumed with a `Range` request, by this run or the next. Sources to be
//! unpacked are then unpacked ([`unpack`]) into a layer.

mod http;
pub mod unpack;

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use miette::{Diagnostic, NamedSource, SourceSpan};
use rayon::prelude::*;
use serde::Serialize;
use thiserror::Error;

use crate::chain::model::{Placement, Source};
use crate::chain::{Chain, diag::Src};
use crate::hash::{Blake3, Sha256};
use crate::store::{Store, StoreError};
use unpack::UnpackError;

/// Progress reporting, implemented by the command line (bars on a terminal)
/// or ignored. `id` is the source's name.
pub trait Progress: Sync {
    /// A transfer starts; `total` bytes if known, `done` already there.
    fn start(&self, id: &str, total: Option<u64>, done: u64);
    /// `done` bytes have arrived.
    fn advance(&self, id: &str, done: u64);
    /// Something worth a line: a resume, a URL that failed.
    fn note(&self, id: &str, message: &str);
    /// The source is settled.
    fn finish(&self, id: &str);
}

/// A [`Progress`] that shows nothing.
pub struct Silent;

impl Progress for Silent {
    fn start(&self, _: &str, _: Option<u64>, _: u64) {}
    fn advance(&self, _: &str, _: u64) {}
    fn note(&self, _: &str, _: &str) {}
    fn finish(&self, _: &str) {}
}

/// Why one place did not give the source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AttemptProblem {
    /// Bytes arrived but hash to something else (tampered or wrong file).
    WrongHash {
        /// What they hashed to.
        actual: Sha256,
        /// How many bytes.
        size: u64,
    },
    /// The server answered with this status.
    Http {
        /// The HTTP status code.
        status: u16,
    },
    /// Connecting or reading failed.
    Network {
        /// What the client said.
        message: String,
    },
    /// No answer within the timeout.
    Timeout {
        /// What the client said.
        message: String,
    },
    /// A local file could not be read or written.
    Io {
        /// What failed.
        message: String,
    },
    /// The URL's scheme is not http, https or file.
    Scheme,
}

impl std::fmt::Display for AttemptProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AttemptProblem::WrongHash { actual, size } => write!(f, "wrong bytes: {size} bytes hashing to {actual}"),
            AttemptProblem::Http { status } => write!(f, "HTTP status {status}"),
            AttemptProblem::Network { message } => write!(f, "network error: {message}"),
            AttemptProblem::Timeout { message } => write!(f, "timed out: {message}"),
            AttemptProblem::Io { message } => write!(f, "{message}"),
            AttemptProblem::Scheme => write!(f, "unsupported URL scheme (http, https and file are)"),
        }
    }
}

/// One place tried and what went wrong there.
#[derive(Debug, Clone, Serialize)]
pub struct Attempt {
    /// The URL or distfiles path.
    pub location: String,
    /// What went wrong.
    pub problem: AttemptProblem,
}

/// Where a source ended up coming from.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// It was already in the store.
    Store,
    /// Copied from a distfiles directory or downloaded from a URL.
    Fetched(String),
}

/// What happened to one source that is now in the store.
#[derive(Debug, Clone, Serialize)]
pub struct Fetched {
    /// The source's name.
    pub name: String,
    /// Its pinned sha256.
    pub sha256: Sha256,
    /// Its size in bytes.
    pub size: u64,
    /// Where it came from this time.
    pub origin: Origin,
    /// The layer it unpacks to, for sources with `unpack`.
    pub layer: Option<Blake3>,
    /// Places that failed before one worked (a wrong hash here is worth a look).
    pub failed_attempts: Vec<Attempt>,
}

/// One source that could not be made available.
#[derive(Debug, Error, Diagnostic)]
pub enum SourceError {
    /// No place gave the pinned bytes.
    #[error("source `{name}`: no place gave the pinned bytes\npinned:\n  {expected}\n{}", list(attempts))]
    #[diagnostic(
        code(bootstrap::fetch::failed),
        help("a wrong hash means the server or mirror sent other bytes than the pin: do not trust it; otherwise check the URLs, or put the file in a --distfiles directory")
    )]
    Failed {
        /// The source.
        name: String,
        /// Its pinned sha256.
        expected: Sha256,
        /// Every place tried.
        attempts: Vec<Attempt>,
        /// The chain file.
        #[source_code]
        src: Src,
        /// The source's name in its declaration.
        #[label("declared here")]
        span: SourceSpan,
    },
    /// `--offline` and the source is nowhere local.
    #[error("source `{name}` is not in the store or any --distfiles directory, and --offline forbids downloading it")]
    #[diagnostic(
        code(bootstrap::fetch::offline_missing),
        help("run `bootstrap fetch` with network access, or put the file in a --distfiles directory")
    )]
    Missing {
        /// The source.
        name: String,
        /// The chain file.
        #[source_code]
        src: Src,
        /// The source's name in its declaration.
        #[label("declared here")]
        span: SourceSpan,
    },
    /// The archive was refused or damaged.
    #[error("source `{name}`: {error}")]
    #[diagnostic(code(bootstrap::fetch::unpack))]
    Unpack {
        /// The source.
        name: String,
        /// What went wrong (its help becomes this diagnostic's).
        error: UnpackError,
        /// The inner error's help line.
        #[help]
        help: Option<String>,
        /// The chain file.
        #[source_code]
        src: Src,
        /// The source's name in its declaration.
        #[label("unpacked because of this declaration")]
        span: SourceSpan,
    },
    /// The store failed.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Store(#[from] StoreError),
}

fn list(attempts: &[Attempt]) -> String {
    // Digests on lines of their own: they are never broken, so they can be copied.
    let line = |a: &Attempt| match &a.problem {
        AttemptProblem::WrongHash { actual, size } => format!("{} gave {size} bytes hashing to\n  {actual}", a.location),
        other => format!("{}: {other}", a.location),
    };
    attempts.iter().map(line).collect::<Vec<_>>().join("\n")
}

impl SourceError {
    /// The exit code this failure calls for (DESIGN §5).
    pub fn exit_code(&self) -> u8 {
        use crate::error::exit;
        match self {
            SourceError::Failed { attempts, .. }
                if attempts.iter().any(|a| matches!(a.problem, AttemptProblem::WrongHash { .. })) =>
            {
                exit::VERIFICATION_FAILED
            }
            SourceError::Missing { .. } => exit::BLOCKED,
            _ => exit::BAD_INPUT,
        }
    }
}

/// Every source that failed, reported together.
#[derive(Debug, Error, Diagnostic)]
#[error("{} of {total} sources could not be fetched", errors.len())]
#[diagnostic(code(bootstrap::fetch::summary))]
pub struct FetchErrors {
    /// One per failed source (`main` renders each).
    pub errors: Vec<SourceError>,
    /// How many sources were asked for.
    pub total: usize,
    /// Those that did arrive.
    pub fetched: Vec<Fetched>,
}

impl FetchErrors {
    /// The most severe exit code: a wrong hash (2) over offline (3) over the rest (1).
    pub fn exit_code(&self) -> u8 {
        use crate::error::exit;
        let codes: Vec<u8> = self.errors.iter().map(SourceError::exit_code).collect();
        [exit::VERIFICATION_FAILED, exit::BLOCKED].into_iter().find(|c| codes.contains(c)).unwrap_or(exit::BAD_INPUT)
    }
}

/// How to fetch.
#[derive(Debug, Clone)]
pub struct FetchOptions {
    /// Local mirror directories, looked in first.
    pub distfiles: Vec<PathBuf>,
    /// Never use the network (nor `file://` URLs: only the store and distfiles).
    pub offline: bool,
    /// Connect, response and per-read timeout.
    pub timeout: Duration,
    /// Sources fetched at once.
    pub jobs: usize,
}

/// The file name a URL ends in.
fn url_file_name(url: &str) -> Option<&str> {
    let path = url.split(['?', '#']).next()?;
    let name = path.rsplit('/').next()?;
    (!name.is_empty()).then_some(name)
}

/// Copies a local file into a temporary file in the store, hashing as it goes.
fn copy_checked(store: &Store, from: &Path, expected: &Sha256) -> Result<tempfile::NamedTempFile, AttemptProblem> {
    let mut input = File::open(from).map_err(|e| AttemptProblem::Io { message: format!("{}: {e}", from.display()) })?;
    let mut tmp = store.temp_file().map_err(|e| AttemptProblem::Io { message: e.to_string() })?;
    let mut hashing = HashingWriter { inner: tmp.as_file_mut(), hasher: <sha2::Sha256 as sha2::Digest>::new(), size: 0 };
    io::copy(&mut input, &mut hashing).map_err(|e| AttemptProblem::Io { message: format!("{}: {e}", from.display()) })?;
    let (size, actual) = (hashing.size, Sha256(sha2::Digest::finalize(hashing.hasher).into()));
    if actual != *expected {
        return Err(AttemptProblem::WrongHash { actual, size });
    }
    Ok(tmp)
}

struct HashingWriter<'a> {
    inner: &'a mut File,
    hasher: sha2::Sha256,
    size: u64,
}

impl io::Write for HashingWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        sha2::Digest::update(&mut self.hasher, &buf[..n]);
        self.size += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

struct Job<'a> {
    chain: &'a Chain,
    store: &'a Store,
    opts: &'a FetchOptions,
    agent: ureq::Agent,
    progress: &'a dyn Progress,
}

fn span_of(chain: &Chain, source: &Source) -> (Src, SourceSpan) {
    let file = &chain.files[source.file];
    (NamedSource::new(&file.path, file.text.clone()), SourceSpan::from((source.span.offset, source.span.len)))
}

impl Job<'_> {
    fn sha(&self, source: &Source) -> Sha256 {
        // The loader accepted only 64 hex digits, so this parses.
        Sha256::from_hex(&source.sha256).unwrap_or(Sha256([0; 32]))
    }

    /// Gets one source's file into the store.
    fn obtain(&self, source: &Source) -> Result<(Origin, Vec<Attempt>), SourceError> {
        let sha = self.sha(source);
        if self.store.has_source(&sha) {
            return Ok((Origin::Store, Vec::new()));
        }
        let mut attempts = Vec::new();
        let mut names: Vec<String> = source.urls.iter().filter_map(|u| url_file_name(u)).map(str::to_string).collect();
        names.push(sha.hex());
        names.dedup();
        for dir in &self.opts.distfiles {
            for n in &names {
                let candidate = dir.join(n);
                if !candidate.is_file() {
                    continue;
                }
                match copy_checked(self.store, &candidate, &sha) {
                    Ok(tmp) => {
                        self.store.commit_source(tmp.path(), &sha)?;
                        return Ok((Origin::Fetched(candidate.display().to_string()), attempts));
                    }
                    Err(problem) => attempts.push(Attempt { location: candidate.display().to_string(), problem }),
                }
            }
        }
        if self.opts.offline {
            let (src, span) = span_of(self.chain, source);
            return Err(SourceError::Missing { name: source.name.clone(), src, span });
        }
        let part_dir = self.store.tmp().join("fetch");
        std::fs::create_dir_all(&part_dir).map_err(|e| StoreError::Io { path: part_dir.clone(), source: e })?;
        let part = part_dir.join(format!("{}.part", sha.hex()));
        for url in &source.urls {
            let result = if let Some(path) = url.strip_prefix("file://") {
                copy_checked(self.store, Path::new(path), &sha).and_then(|tmp| {
                    self.store.commit_source(tmp.path(), &sha).map_err(|e| AttemptProblem::Io { message: e.to_string() })
                })
            } else if url.starts_with("http://") || url.starts_with("https://") {
                http::download(&self.agent, url, &part, &sha, &source.name, self.progress).and_then(|()| {
                    self.store.commit_source(&part, &sha).map_err(|e| AttemptProblem::Io { message: e.to_string() })
                })
            } else {
                Err(AttemptProblem::Scheme)
            };
            match result {
                Ok(_) => return Ok((Origin::Fetched(url.clone()), attempts)),
                Err(problem) => {
                    self.progress.note(&source.name, &format!("{url}: {problem}"));
                    attempts.push(Attempt { location: url.clone(), problem });
                }
            }
        }
        let (src, span) = span_of(self.chain, source);
        Err(SourceError::Failed { name: source.name.clone(), expected: sha, attempts, src, span })
    }

    /// Unpacks a source (already in the store) into a layer, unless done before.
    fn unpack(&self, source: &Source, strip: u32) -> Result<Blake3, SourceError> {
        let sha = self.sha(source);
        if let Some(layer) = self.store.unpacked(&sha, strip) {
            return Ok(layer);
        }
        let archive = source.urls.first().and_then(|u| url_file_name(u)).unwrap_or(&source.name).to_string();
        let dir = self.store.temp_dir()?;
        unpack::unpack(&self.store.source_path(&sha), &archive, strip, dir.path()).map_err(|error| {
            let (src, span) = span_of(self.chain, source);
            let help = miette::Diagnostic::help(&error).map(|h| h.to_string());
            SourceError::Unpack { name: source.name.clone(), error, help, src, span }
        })?;
        let (layer, _) = self.store.commit_tree(dir)?;
        self.store.set_unpacked(&sha, strip, &layer)?;
        Ok(layer)
    }

    fn one(&self, source: &Source) -> Result<Fetched, SourceError> {
        let (origin, failed_attempts) = self.obtain(source)?;
        let sha = self.sha(source);
        let layer = match source.placement {
            Placement::File => None,
            Placement::Unpack { strip_components } => Some(self.unpack(source, strip_components)?),
        };
        let size = std::fs::metadata(self.store.source_path(&sha)).map(|m| m.len()).unwrap_or(0);
        self.progress.finish(&source.name);
        Ok(Fetched { name: source.name.clone(), sha256: sha, size, origin, layer, failed_attempts })
    }
}

/// Makes every given source available in the store (and unpacked where
/// declared), `opts.jobs` at a time. Returns them in the order given, or
/// every failure together.
pub fn fetch(
    chain: &Chain,
    sources: &[&Source],
    store: &Store,
    opts: &FetchOptions,
    progress: &dyn Progress,
) -> Result<Vec<Fetched>, FetchErrors> {
    let job = Job { chain, store, opts, agent: http::agent(opts.timeout), progress };
    // Two declarations of one file must not download it twice at once.
    let by_sha: Mutex<std::collections::HashMap<String, std::sync::Arc<Mutex<()>>>> = Mutex::default();
    let run = |s: &&Source| {
        let gate = by_sha
            .lock()
            .map(|mut m| m.entry(s.sha256.clone()).or_default().clone())
            .unwrap_or_default();
        let _held = gate.lock();
        job.one(s)
    };
    let results: Vec<Result<Fetched, SourceError>> = match rayon::ThreadPoolBuilder::new().num_threads(opts.jobs.max(1)).build() {
        Ok(pool) => pool.install(|| sources.par_iter().map(run).collect()),
        Err(_) => sources.iter().map(run).collect(),
    };
    let mut fetched = Vec::new();
    let mut errors = Vec::new();
    for r in results {
        match r {
            Ok(f) => fetched.push(f),
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() { Ok(fetched) } else { Err(FetchErrors { errors, total: sources.len(), fetched }) }
}
