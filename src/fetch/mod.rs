//! Sources (ARCHITECTURE.md §2): getting each source's content into the store,
//! checked against its pins, and unpacking it.
//!
//! A source is pinned by `sha256` (the bytes of its file), by `tree` (the
//! tree digest of its unpacked content, after `strip-components`), or by
//! both. Bytes whose sha256 matches the `sha256` pin are accepted;
//! otherwise their content, unpacked into `tmp/`, must match `tree`.
//! Anything else is refused and leaves nothing in the store: no source
//! file, no layer, no `index/unpack/` entry. Only after the comparison is
//! anything renamed into place.
//!
//! A source already in the store is used as it is: its file, the layer its
//! pinned archive unpacked to, or the layer its `tree` pin names. Otherwise
//! the places tried are, in order:
//! 1. each `--distfiles` directory ([`distfiles`]: the files named for the
//!    source, then, for a `tree` pin, any other archive in it);
//! 2. the source's URLs as written (`http://`, `https://`, `file://`);
//! 3. its git repository ([`git`]), checked out at the pinned commit.
//!
//! A source with a `path` is a file of the chain directory itself: it is
//! read there on every run (through real directories only, never a
//! symlink, and only if it is a regular file), judged against its pins like
//! any download (and unpacked when it says `unpack`), and needs neither the
//! network nor `--distfiles`, so `--offline` changes nothing for it. Its
//! origin is the path, relative to the chain directory.
//!
//! `--offline` stops after the distfiles. An interrupted http download is
//! kept in `tmp/fetch/` and resumed with a `Range` request, by this run or
//! the next. Where a source file or layer first came from is recorded
//! beside it ([`crate::store::origin`]), so a source found in the store
//! later still says where its bytes came from.

mod distfiles;
mod git;
mod http;

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use miette::{Diagnostic, NamedSource, SourceSpan};
use rayon::prelude::*;
use serde::Serialize;
use thiserror::Error;

use crate::chain::{Chain, Pin, Source, diag::Src};
use crate::hash::{self, Blake3, Sha256, Tree};
use crate::store::origin::{Object, ObjectOrigin};
use crate::store::{Store, StoreError};
use crate::unpack::{self, UnpackError};

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
    /// Content arrived but matches no pin (tampered, or another release).
    WrongContent {
        /// The sha256 of the bytes (none for a git checkout).
        sha256: Option<Sha256>,
        /// How many bytes (none for a git checkout).
        size: Option<u64>,
        /// The tree digest of their unpacked content, for a source placed
        /// as a tree (none when they did not unpack).
        tree: Option<Blake3>,
        /// Why they did not unpack, when they did not.
        unpack_error: Option<String>,
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
    /// git could not clone, check out or update submodules.
    Git {
        /// What git said.
        message: String,
    },
    /// A distfiles directory held other files, none with the pinned content.
    NoMatch {
        /// How many were looked at.
        files: usize,
    },
    /// The server sent (or announced) more than `--max-download-size`.
    TooLarge {
        /// The limit, in bytes.
        limit: u64,
    },
    /// The server redirected to something other than an http(s) URL.
    Redirect {
        /// The `Location` it gave.
        to: String,
    },
    /// The server kept answering without finishing: the request budget of
    /// one URL was spent.
    TooManyRequests {
        /// How many requests were made.
        requests: u32,
    },
}

impl AttemptProblem {
    /// The place did not have the source or could not be reached: nothing
    /// was refused.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            AttemptProblem::Http { .. }
                | AttemptProblem::Network { .. }
                | AttemptProblem::Timeout { .. }
                | AttemptProblem::Git { .. }
                | AttemptProblem::NoMatch { .. }
        )
    }
}

impl std::fmt::Display for AttemptProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AttemptProblem::WrongContent { sha256, size, tree, unpack_error } => {
                match (sha256, size) {
                    (Some(sha), Some(size)) => write!(f, "wrong bytes: {size} bytes hashing to {sha}")?,
                    _ => write!(f, "wrong content")?,
                }
                if let Some(tree) = tree {
                    write!(f, ", unpacking to {tree}")?;
                }
                if let Some(e) = unpack_error {
                    write!(f, ", which do not unpack: {e}")?;
                }
                Ok(())
            }
            AttemptProblem::Http { status } => write!(f, "HTTP status {status}"),
            AttemptProblem::Network { message } => write!(f, "network error: {message}"),
            AttemptProblem::Timeout { message } => write!(f, "timed out: {message}"),
            AttemptProblem::Io { message } => write!(f, "{message}"),
            AttemptProblem::Scheme => write!(f, "unsupported URL scheme (http, https and file are)"),
            AttemptProblem::Git { message } => write!(f, "git: {message}"),
            AttemptProblem::NoMatch { files } => write!(f, "none of its {files} other file(s) holds the pinned content"),
            AttemptProblem::TooLarge { limit } => {
                write!(f, "the server sent more than {limit} bytes (--max-download-size); nothing was kept")
            }
            AttemptProblem::Redirect { to } => write!(f, "redirected to `{to}`, which is not followed (only http and https URLs are)"),
            AttemptProblem::TooManyRequests { requests } => {
                write!(f, "gave up after {requests} requests that each ended early without completing the file")
            }
        }
    }
}

/// One place tried and what went wrong there.
#[derive(Debug, Clone, Serialize)]
pub struct Attempt {
    /// The URL, distfiles path (or directory), or `git URL@COMMIT`.
    pub location: String,
    /// What went wrong.
    pub problem: AttemptProblem,
}

/// Where a source ended up coming from this time.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// It was already in the store.
    Store,
    /// Copied from a distfiles directory, downloaded from a URL or checked
    /// out from git.
    Fetched(String),
}

/// What happened to one source that is now in the store. `pin` and
/// `from` hold for sources found in the store too.
#[derive(Debug, Clone, Serialize)]
pub struct Fetched {
    /// The source's name.
    pub name: String,
    /// Which pin its content matched.
    pub pin: Pin,
    /// The sha256 of the file placed, or of the archive unpacked, when
    /// known (a git checkout has none).
    pub sha256: Option<Sha256>,
    /// That file's size in bytes, when known.
    pub size: Option<u64>,
    /// Where it came from this time.
    pub origin: Origin,
    /// Where its bytes came from when they first entered the store (the
    /// URL, the distfiles path, or `git URL@COMMIT`).
    pub from: String,
    /// The layer it is, for sources placed as a tree.
    pub layer: Option<Blake3>,
    /// Places that failed before one worked (a wrong hash here is worth a look).
    pub failed_attempts: Vec<Attempt>,
    /// Distfiles read to learn their sha256 this run, for this source
    /// (remembered ones are not read again).
    pub hashed: usize,
    /// Archives unpacked this run, for this source (an archive whose tree
    /// is known is not unpacked again).
    pub unpacked: usize,
    /// Things worth a look that did not stop the source (pins that disagree).
    pub warnings: Vec<String>,
}

/// What a source is pinned to, as its refusal shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Expected {
    /// The `sha256` pin.
    pub sha256: Option<Sha256>,
    /// The `tree` pin.
    pub tree: Option<Blake3>,
}

impl std::fmt::Display for Expected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Digests on lines of their own: they are never broken, so they can be copied.
        match self.sha256 {
            Some(sha) => writeln!(f, "  {sha}")?,
            None => writeln!(f, "  sha256 not pinned")?,
        }
        match self.tree {
            Some(tree) => write!(f, "  {tree}"),
            None => write!(f, "  tree not pinned"),
        }
    }
}

impl Expected {
    fn what(&self) -> &'static str {
        if self.tree.is_some() { "content" } else { "bytes" }
    }
}

/// What to supply for a source that is missing: the file to put in a
/// distfiles directory, where it is published, and its pins.
#[derive(Debug, Clone, Serialize)]
pub struct Wanted {
    /// The distfiles file, described ([`distfiles::file_hint`]).
    pub file: String,
    /// Its URLs, in the order tried.
    pub urls: Vec<String>,
    /// Its git repository and commit, when it has one.
    pub git: Option<String>,
    /// Its pins.
    pub expected: Expected,
}

impl Wanted {
    fn of(source: &Source) -> Wanted {
        Wanted {
            file: distfiles::file_hint(source),
            urls: source.urls.clone(),
            git: source.git.as_ref().map(|g| g.describe()),
            expected: Expected { sha256: source.sha256, tree: source.tree },
        }
    }
}

impl std::fmt::Display for Wanted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // URLs and digests on lines of their own: they are never broken.
        writeln!(f, "wanted: {}", self.file)?;
        for url in &self.urls {
            writeln!(f, "  from {url}")?;
        }
        if let Some(g) = &self.git {
            writeln!(f, "  from {g}")?;
        }
        write!(f, "pinned:\n{}", self.expected)
    }
}

/// One source that could not be made available.
#[derive(Debug, Error, Diagnostic)]
pub enum SourceError {
    /// No place gave content matching a pin.
    #[error("source `{name}`: no place gave the pinned {}\npinned:\n{expected}\n{}", expected.what(), list(attempts))]
    #[diagnostic(code(bootstrap::fetch::failed))]
    Failed {
        /// The source.
        name: String,
        /// Its pins.
        expected: Expected,
        /// Every place tried.
        attempts: Vec<Attempt>,
        /// What to do, for what went wrong: [`failed_help`], or for a file
        /// of the chain directory one of [`CHAIN_FILE_CHANGED_HELP`] and
        /// [`CHAIN_FILE_HELP`].
        #[help]
        help: String,
        /// The chain file.
        #[source_code]
        src: Src,
        /// The source's name in its declaration.
        #[label("declared here")]
        span: SourceSpan,
    },
    /// `--offline` and the source is nowhere local.
    #[error("source `{name}` is not in the store or any --distfiles directory, and --offline forbids downloading or cloning it\n{wanted}{}", if attempts.is_empty() { String::new() } else { format!("\n{}", list(attempts)) })]
    #[diagnostic(code(bootstrap::fetch::offline_missing))]
    Missing {
        /// The source.
        name: String,
        /// What to supply: the file name, where it comes from, its pins.
        wanted: Wanted,
        /// Distfiles that were tried.
        attempts: Vec<Attempt>,
        /// What to do: put the file in a distfiles directory, or go online.
        #[help]
        help: String,
        /// The chain file.
        #[source_code]
        src: Src,
        /// The source's name in its declaration.
        #[label("declared here")]
        span: SourceSpan,
    },
    /// The archive matching the `sha256` pin was refused or damaged.
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

/// The help of a source no place gave, fitting what went wrong there:
/// bytes that match no pin (tampering, or another release), no answer at
/// all (no network), nothing at the URLs, or something else.
pub fn failed_help(source: &Source, attempts: &[Attempt]) -> String {
    let file = distfiles::file_hint(source);
    let problems = || attempts.iter().map(|a| &a.problem);
    if problems().any(|p| matches!(p, AttemptProblem::WrongContent { .. })) {
        return format!(
            "`sha256:` pins a file's bytes, `blake3:` the tree of its unpacked content; other bytes or content than pinned come from a tampered server or mirror or another release: do not trust them; get {file} where it is published as pinned and put it in a --distfiles directory"
        );
    }
    if !attempts.is_empty() && problems().all(|p| matches!(p, AttemptProblem::Network { .. } | AttemptProblem::Timeout { .. })) {
        return format!(
            "no place answered (no network, or a DNS, proxy or firewall failure): put {file} in a --distfiles directory, or run again where its URLs can be reached"
        );
    }
    if problems().any(|p| matches!(p, AttemptProblem::Http { status: 404 | 410 } | AttemptProblem::NoMatch { .. })) {
        return format!("not found where the chain says: put {file} in a --distfiles directory, or correct the source's URLs (upstream may have moved the file)");
    }
    format!("put {file} in a --distfiles directory, or check the source's URLs and repository")
}

/// The help of a file of the chain directory (`path`) whose content is not the pinned one.
pub const CHAIN_FILE_CHANGED_HELP: &str = "a `path` source is a file of the chain directory pinned by its content, and this one changed: if that was on purpose, pin the new content (`sha256sum FILE` for `sha256`, `bootstrap hash DIR` of the unpacked archive for `tree`); otherwise restore the file (e.g. `git checkout -- FILE`)";

/// The help of a file of the chain directory (`path`) that could not be read.
pub const CHAIN_FILE_HELP: &str = "a `path` source is a regular file inside the chain directory (the directory holding chain/chain.kdl), reached through real directories only, never a symlink: put the file itself there, or correct the `path`";

fn list(attempts: &[Attempt]) -> String {
    // Digests on lines of their own: they are never broken, so they can be copied.
    let line = |a: &Attempt| match &a.problem {
        AttemptProblem::WrongContent { sha256, size, tree, unpack_error } => {
            let mut s = match (sha256, size) {
                (Some(sha), Some(size)) => format!("{} gave {size} bytes hashing to\n  {sha}", a.location),
                _ => format!("{} gave content", a.location),
            };
            match (tree, unpack_error) {
                (Some(tree), _) if sha256.is_some() => s.push_str(&format!("\n  unpacking to\n  {tree}")),
                (Some(tree), _) => s.push_str(&format!(" whose tree is\n  {tree}")),
                (None, Some(e)) => s.push_str(&format!("\n  which do not unpack: {e}")),
                (None, None) => {}
            }
            s
        }
        other => format!("{}: {other}", a.location),
    };
    attempts.iter().map(line).collect::<Vec<_>>().join("\n")
}

impl SourceError {
    /// The exit code this failure calls for (ARCHITECTURE.md §5): 2 when some place
    /// gave content that matches no pin.
    pub fn exit_code(&self) -> u8 {
        use crate::exit;
        match self {
            SourceError::Failed { attempts, .. }
                if attempts.iter().any(|a| matches!(a.problem, AttemptProblem::WrongContent { .. })) =>
            {
                exit::VERIFICATION_FAILED
            }
            SourceError::Missing { .. } => exit::BLOCKED,
            // No place had it: the source is not available (blocked), as
            // with --offline; a refusal (size, redirect, scheme) is not.
            SourceError::Failed { attempts, .. } if attempts.iter().all(|a| a.problem.is_unavailable()) => exit::BLOCKED,
            _ => exit::BAD_INPUT,
        }
    }

    /// The source's name (`seed:NAME` for a seed's rootfs); none for a
    /// store failure.
    pub fn name(&self) -> Option<&str> {
        match self {
            SourceError::Failed { name, .. } | SourceError::Missing { name, .. } | SourceError::Unpack { name, .. } => Some(name),
            SourceError::Store(_) => None,
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
        use crate::exit;
        let codes: Vec<u8> = self.errors.iter().map(SourceError::exit_code).collect();
        [exit::VERIFICATION_FAILED, exit::BLOCKED].into_iter().find(|c| codes.contains(c)).unwrap_or(exit::BAD_INPUT)
    }
}

/// How to fetch.
#[derive(Debug, Clone)]
pub struct FetchOptions {
    /// Local mirror directories, looked in first.
    pub distfiles: Vec<PathBuf>,
    /// Never use the network (nor `file://` URLs, nor git: only the store and distfiles).
    pub offline: bool,
    /// Connect, response and per-read timeout (for git: how long a transfer may stall).
    pub timeout: Duration,
    /// Sources fetched at once.
    pub jobs: usize,
    /// The most bytes one download may bring.
    pub max_download: u64,
    /// The most bytes of files one archive may unpack to.
    pub max_unpacked: u64,
}

/// What one download may bring unless `--max-download-size` says otherwise:
/// the largest sources of the real chain (rustc, LLVM) are a few hundred MB.
pub const DEFAULT_MAX_DOWNLOAD: u64 = 4 << 30;

/// Copies a local file into a temporary file in the store, hashing as it goes.
fn copy_hashing(store: &Store, from: &Path) -> Result<(tempfile::NamedTempFile, Sha256, u64), AttemptProblem> {
    let input = File::open(from).map_err(|e| AttemptProblem::Io { message: format!("{}: {e}", from.display()) })?;
    copy_hashing_from(store, input, from)
}

/// Copies an open file into a temporary file in the store, hashing as it
/// goes; `from` names it in messages.
fn copy_hashing_from(store: &Store, mut input: File, from: &Path) -> Result<(tempfile::NamedTempFile, Sha256, u64), AttemptProblem> {
    let mut tmp = store.temp_file().map_err(|e| AttemptProblem::Io { message: e.to_string() })?;
    let mut hashing = HashingWriter { inner: tmp.as_file_mut(), hasher: <sha2::Sha256 as sha2::Digest>::new(), size: 0 };
    io::copy(&mut input, &mut hashing).map_err(|e| AttemptProblem::Io { message: format!("{}: {e}", from.display()) })?;
    let (size, actual) = (hashing.size, Sha256(sha2::Digest::finalize(hashing.hasher).into()));
    Ok((tmp, actual, size))
}

/// Opens `rel` (a checked `path`: relative, plain components) under the
/// chain directory `dir` for reading: one component at a time, each a real
/// directory and the last a regular file, never following a symlink (so
/// never leaving the directory), never waiting on a fifo.
fn open_in_chain_dir(dir: &Path, rel: &str) -> Result<File, AttemptProblem> {
    use rustix::fs::{AtFlags, FileType, Mode, OFlags};
    let fail = |message: String| AttemptProblem::Io { message };
    let kind = |mode: u32| match FileType::from_raw_mode(mode) {
        FileType::RegularFile => "regular file",
        FileType::Directory => "directory",
        FileType::Symlink => "symlink",
        FileType::Fifo => "fifo",
        FileType::Socket => "socket",
        FileType::CharacterDevice => "character device",
        FileType::BlockDevice => "block device",
        FileType::Unknown => "special file",
    };
    let mut at = rustix::fs::open(dir, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| fail(format!("cannot open the chain directory {}: {e}", dir.display())))?;
    let parts: Vec<&str> = rel.split('/').collect();
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        let here = parts[..=i].join("/");
        // Looked at before it is opened: opening a device may do something.
        // Messages follow the path itself (the attempt's location).
        let it = if last { "it".to_string() } else { here.clone() };
        let st = match rustix::fs::statat(&at, *part, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(rustix::io::Errno::NOENT) if last => return Err(fail("no such file in the chain directory".to_string())),
            Err(rustix::io::Errno::NOENT) => return Err(fail(format!("no such file in the chain directory ({here} does not exist)"))),
            Err(e) => return Err(fail(format!("cannot read {it}: {e}"))),
        };
        let found = FileType::from_raw_mode(st.st_mode);
        let wanted = if last { FileType::RegularFile } else { FileType::Directory };
        if found != wanted {
            let what = if last { "a regular file" } else { "a directory" };
            let hint = match found {
                FileType::Symlink => ": a `path` source is reached through real directories only, never a symlink",
                FileType::Directory => ": a `path` source is one file (pack a directory as an archive and add `unpack`)",
                _ => "",
            };
            return Err(fail(format!("{it} is a {}, not {what}{hint}", kind(st.st_mode))));
        }
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | if last { OFlags::NONBLOCK } else { OFlags::DIRECTORY };
        at = rustix::fs::openat(&at, *part, flags, Mode::empty()).map_err(|e| fail(format!("cannot open {it}: {e}")))?;
    }
    // What was opened, not what was looked at, decides.
    let st = rustix::fs::fstat(&at).map_err(|e| fail(format!("cannot read it: {e}")))?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
        return Err(fail(format!("it is a {}, not a regular file", kind(st.st_mode))));
    }
    Ok(File::from(at))
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

/// Bytes of a candidate, held in the store's `tmp/` while they are judged.
enum Held {
    /// A copy, removed when dropped unless committed.
    Temp(tempfile::NamedTempFile),
    /// A finished download in `tmp/fetch/`, removed unless committed (so
    /// bad bytes never linger for the next run to resume from).
    Part(PathBuf),
}

impl Held {
    fn path(&self) -> &Path {
        match self {
            Held::Temp(t) => t.path(),
            Held::Part(p) => p,
        }
    }

    fn discard(self) {
        if let Held::Part(p) = self {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// A source's content, accepted.
struct Ready {
    pin: Pin,
    sha256: Option<Sha256>,
    size: Option<u64>,
    layer: Option<Blake3>,
    from: String,
}

/// What one place gave: accepted content, or why not.
type Tried = Result<Ready, AttemptProblem>;

/// Work done for one source, for `fetch --json`.
#[derive(Default)]
struct Work {
    hashed: usize,
    unpacked: usize,
}

/// What a source found in the store says when no origin was recorded (it
/// was committed by an engine that did not record them).
const UNKNOWN_ORIGIN: &str = "unknown (in the store before origins were recorded)";

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

fn wrong(sha256: Sha256, size: u64, tree: Option<Blake3>) -> AttemptProblem {
    AttemptProblem::WrongContent { sha256: Some(sha256), size: Some(size), tree, unpack_error: None }
}

/// The name an archive is called in messages: the URL's file name, else the source's.
fn archive_name(source: &Source) -> String {
    source.urls.first().and_then(|u| distfiles::url_file_name(u)).unwrap_or(&source.name).to_string()
}

impl Job<'_> {
    fn one(&self, source: &Source) -> Result<Fetched, SourceError> {
        let mut work = Work::default();
        let (ready, origin, failed_attempts) = match &source.path {
            Some(rel) => {
                let (r, origin) = self.chain_file(source, rel, &mut work)?;
                (r, origin, Vec::new())
            }
            None => match self.in_store(source, &mut work)? {
                Some(r) => (r, Origin::Store, Vec::new()),
                None => {
                    let (r, attempts) = self.obtain(source, &mut work)?;
                    let here = r.from.clone();
                    (r, Origin::Fetched(here), attempts)
                }
            },
        };
        let mut warnings = Vec::new();
        if let (Pin::Sha256, Some(pinned), Some(layer)) = (ready.pin, source.tree, ready.layer)
            && pinned != layer
        {
            // The bytes are the pinned ones, so they are what the chain
            // asked for; its two pins disagree, which its author should know.
            warnings.push(format!("the bytes match the sha256 pin but unpack to {layer}, not the tree pin {pinned}: the chain's pins disagree"));
        }
        self.progress.finish(&source.name);
        Ok(Fetched {
            name: source.name.clone(),
            pin: ready.pin,
            sha256: ready.sha256,
            size: ready.size,
            origin,
            from: ready.from,
            layer: ready.layer,
            failed_attempts,
            hashed: work.hashed,
            unpacked: work.unpacked,
            warnings,
        })
    }

    /// A file of the chain directory (`path`): read and judged on every
    /// run, even when the store holds its pinned content already (then
    /// nothing is written), so the chain directory's file always is what
    /// its pins say. Its origin is the path as written.
    fn chain_file(&self, source: &Source, rel: &str, work: &mut Work) -> Result<(Ready, Origin), SourceError> {
        let refuse = |problem: AttemptProblem| {
            let (src, span) = span_of(self.chain, source);
            let expected = Expected { sha256: source.sha256, tree: source.tree };
            let help = if matches!(problem, AttemptProblem::WrongContent { .. }) { CHAIN_FILE_CHANGED_HELP } else { CHAIN_FILE_HELP }.to_string();
            let attempts = vec![Attempt { location: rel.to_string(), problem }];
            SourceError::Failed { name: source.name.clone(), expected, attempts, help, src, span }
        };
        let from = rel.to_string();
        let file = open_in_chain_dir(&self.chain.dir, rel).map_err(refuse)?;
        let (tmp, sha, size) = copy_hashing_from(self.store, file, Path::new(rel)).map_err(refuse)?;
        let record = |object| self.store.record_origin(object, &ObjectOrigin { from: from.clone(), archive: None, size: Some(size) });
        if source.sha256 == Some(sha) && self.store.has_source(&sha) {
            drop(tmp);
            record(Object::Source(sha))?;
            let layer = match source.strip() {
                Some(strip) => Some(self.unpack_stored(source, &sha, strip, work)?),
                None => None,
            };
            return Ok((Ready { pin: Pin::Sha256, sha256: Some(sha), size: Some(size), layer, from }, Origin::Store));
        }
        if source.sha256 != Some(sha)
            && let Some(strip) = source.strip()
            && let Some(layer) = self.store.unpacked(&sha, strip)
            && source.tree == Some(layer)
        {
            // Unpacked before: its tree is known, and is the pinned one.
            drop(tmp);
            self.store.record_origin(Object::Layer(layer), &ObjectOrigin { from: from.clone(), archive: Some(sha), size: Some(size) })?;
            return Ok((Ready { pin: Pin::Tree, sha256: Some(sha), size: Some(size), layer: Some(layer), from }, Origin::Store));
        }
        match self.consider(source, Held::Temp(tmp), sha, size, from.clone(), work)? {
            Ok(r) => Ok((r, Origin::Fetched(from))),
            Err(problem) => Err(refuse(problem)),
        }
    }

    /// The source as the store already holds it, if it does.
    fn in_store(&self, source: &Source, work: &mut Work) -> Result<Option<Ready>, SourceError> {
        if let Some(sha) = source.sha256 {
            let file = self.store.has_source(&sha);
            let layer = match source.strip() {
                None if file => None,
                None => return self.in_store_by_tree(source),
                Some(strip) => match self.store.unpacked(&sha, strip) {
                    Some(layer) => Some(layer),
                    None if file => Some(self.unpack_stored(source, &sha, strip, work)?),
                    None => return self.in_store_by_tree(source),
                },
            };
            let recorded = self.store.origin(Object::Source(sha)).or_else(|| {
                // Accepted for another source by its tree: the layer knows the archive.
                layer.and_then(|l| self.store.origin(Object::Layer(l))).filter(|o| o.archive == Some(sha))
            });
            let size = std::fs::metadata(self.store.source_path(&sha)).ok().map(|m| m.len()).or(recorded.as_ref().and_then(|o| o.size));
            let from = recorded.map_or_else(|| UNKNOWN_ORIGIN.to_string(), |o| o.from);
            return Ok(Some(Ready { pin: Pin::Sha256, sha256: Some(sha), size, layer, from }));
        }
        self.in_store_by_tree(source)
    }

    /// The layer a `tree` pin names, when the store has it.
    fn in_store_by_tree(&self, source: &Source) -> Result<Option<Ready>, SourceError> {
        let Some(tree) = source.tree.filter(|t| source.is_tree() && self.store.layer_path(t).is_dir()) else { return Ok(None) };
        let recorded = self.store.origin(Object::Layer(tree));
        Ok(Some(Ready {
            pin: Pin::Tree,
            sha256: recorded.as_ref().and_then(|o| o.archive),
            size: recorded.as_ref().and_then(|o| o.size),
            layer: Some(tree),
            from: recorded.map_or_else(|| UNKNOWN_ORIGIN.to_string(), |o| o.from),
        }))
    }

    /// Tries every place in turn (see the module doc).
    fn obtain(&self, source: &Source, work: &mut Work) -> Result<(Ready, Vec<Attempt>), SourceError> {
        let mut attempts = Vec::new();
        for dir in &self.opts.distfiles {
            let candidates = distfiles::candidates(dir, source);
            for path in &candidates.named {
                match self.distfile(source, path, true, work)? {
                    Ok(r) => return Ok((r, attempts)),
                    Err(problem) => attempts.push(Attempt { location: path.display().to_string(), problem }),
                }
            }
            // Other sources' files, mostly: one line for them all.
            let mut missed = 0;
            for path in &candidates.others {
                match self.distfile(source, path, false, work)? {
                    Ok(r) => return Ok((r, attempts)),
                    Err(_) => missed += 1,
                }
            }
            if missed > 0 {
                attempts.push(Attempt { location: dir.display().to_string(), problem: AttemptProblem::NoMatch { files: missed } });
            }
        }
        if self.opts.offline {
            let (src, span) = span_of(self.chain, source);
            let wanted = Wanted::of(source);
            let help = format!(
                "put {} in a --distfiles directory (or name the directory that holds it), or run again without --offline to download it",
                wanted.file
            );
            return Err(SourceError::Missing { name: source.name.clone(), wanted, attempts, help, src, span });
        }
        for url in &source.urls {
            match self.url(source, url, work)? {
                Ok(r) => return Ok((r, attempts)),
                Err(problem) => {
                    self.progress.note(&source.name, &format!("{url}: {problem}"));
                    attempts.push(Attempt { location: url.clone(), problem });
                }
            }
        }
        if let Some(g) = &source.git {
            match self.git(source, g, work)? {
                Ok(r) => return Ok((r, attempts)),
                Err(problem) => {
                    self.progress.note(&source.name, &format!("{}: {problem}", g.describe()));
                    attempts.push(Attempt { location: g.describe(), problem });
                }
            }
        }
        let (src, span) = span_of(self.chain, source);
        let expected = Expected { sha256: source.sha256, tree: source.tree };
        let help = failed_help(source, &attempts);
        Err(SourceError::Failed { name: source.name.clone(), expected, attempts, help, src, span })
    }

    /// One file of a distfiles directory; `named` when it is named for the
    /// source (its content is then worth showing even without a tree pin).
    fn distfile(&self, source: &Source, path: &Path, named: bool, work: &mut Work) -> Result<Tried, SourceError> {
        let (sha, size, computed) = match distfiles::sha256(self.store, path) {
            Ok(x) => x,
            Err(e) => return Ok(Err(AttemptProblem::Io { message: e.to_string() })),
        };
        if computed {
            work.hashed += 1;
        }
        // Recorded as an absolute path: the record outlives this run's directory.
        let place = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()).display().to_string();
        if source.sha256 != Some(sha)
            && let Some(strip) = source.strip()
            && let Some(layer) = self.store.unpacked(&sha, strip)
        {
            // Unpacked before (for this or another source): its tree is known.
            if source.tree != Some(layer) {
                return Ok(Err(wrong(sha, size, Some(layer))));
            }
            self.store.record_origin(Object::Layer(layer), &ObjectOrigin { from: place.clone(), archive: Some(sha), size: Some(size) })?;
            return Ok(Ok(Ready { pin: Pin::Tree, sha256: Some(sha), size: Some(size), layer: Some(layer), from: place }));
        }
        let worth_unpacking = source.is_tree() && (source.tree.is_some() || named);
        if source.sha256 != Some(sha) && !worth_unpacking {
            return Ok(Err(wrong(sha, size, None)));
        }
        // Judge a copy, hashed again as it is made: what is accepted is
        // what was hashed, even if the file changes meanwhile.
        let (tmp, sha, size) = match copy_hashing(self.store, path) {
            Ok(x) => x,
            Err(problem) => return Ok(Err(problem)),
        };
        self.consider(source, Held::Temp(tmp), sha, size, place, work)
    }

    /// One URL.
    fn url(&self, source: &Source, url: &str, work: &mut Work) -> Result<Tried, SourceError> {
        if let Some(path) = url.strip_prefix("file://") {
            return match copy_hashing(self.store, Path::new(path)) {
                Ok((tmp, sha, size)) => self.consider(source, Held::Temp(tmp), sha, size, url.to_string(), work),
                Err(problem) => Ok(Err(problem)),
            };
        }
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Ok(Err(AttemptProblem::Scheme));
        }
        let part_dir = self.store.tmp().join("fetch");
        std::fs::create_dir_all(&part_dir).map_err(|e| StoreError::Io { path: part_dir.clone(), source: e })?;
        // By the pinned sha256, every mirror resumes the same partial file;
        // without one, bytes from different URLs may differ, so each has its own.
        let part = match source.sha256 {
            Some(sha) => part_dir.join(format!("{}.part", sha.hex())),
            None => part_dir.join(format!("url-{}.part", blake3::hash(url.as_bytes()).to_hex())),
        };
        let limits = http::Limits { max_bytes: self.opts.max_download, window: self.opts.timeout };
        match http::download(&self.agent, url, &part, source.sha256.as_ref(), &source.name, &limits, self.progress) {
            Ok((sha, size)) => self.consider(source, Held::Part(part), sha, size, url.to_string(), work),
            Err(problem @ (AttemptProblem::TooLarge { .. } | AttemptProblem::TooManyRequests { .. })) => {
                // Nothing of a download that was given up on is kept for a resume.
                let _ = std::fs::remove_file(&part);
                Ok(Err(problem))
            }
            Err(problem) => Ok(Err(problem)),
        }
    }

    /// The git repository, at the pinned commit.
    fn git(&self, source: &Source, g: &crate::chain::GitLocation, work: &mut Work) -> Result<Tried, SourceError> {
        let dir = self.store.temp_dir()?;
        self.progress.note(&source.name, &format!("checking out {}", g.describe()));
        if let Err(git::GitFailed(message)) = git::checkout(g, dir.path(), self.opts.timeout) {
            return Ok(Err(AttemptProblem::Git { message }));
        }
        work.unpacked += 1;
        let tree = match hash::hash_tree(dir.path()) {
            Ok(t) => t,
            Err(e) => return Ok(Err(AttemptProblem::Io { message: e.to_string() })),
        };
        let digest = tree.digest();
        if source.tree != Some(digest) {
            return Ok(Err(AttemptProblem::WrongContent { sha256: None, size: None, tree: Some(digest), unpack_error: None }));
        }
        let (layer, _) = self.store.commit_hashed_tree(dir, tree)?;
        let from = g.describe();
        self.store.record_origin(Object::Layer(layer), &ObjectOrigin { from: from.clone(), archive: None, size: None })?;
        Ok(Ok(Ready { pin: Pin::Tree, sha256: None, size: None, layer: Some(layer), from }))
    }

    /// Judges bytes held in `tmp/` (see the module doc): accepted by the
    /// `sha256` pin (committed, and unpacked for a tree), or by the tree
    /// pin (only the layer is committed), or refused (nothing is).
    fn consider(&self, source: &Source, held: Held, sha: Sha256, size: u64, place: String, work: &mut Work) -> Result<Tried, SourceError> {
        if source.sha256 == Some(sha) {
            self.store.commit_source(held.path(), &sha)?;
            self.store.record_origin(Object::Source(sha), &ObjectOrigin { from: place.clone(), archive: None, size: Some(size) })?;
            let layer = match source.strip() {
                Some(strip) => Some(self.unpack_stored(source, &sha, strip, work)?),
                None => None,
            };
            return Ok(Ok(Ready { pin: Pin::Sha256, sha256: Some(sha), size: Some(size), layer, from: place }));
        }
        let Some(strip) = source.strip() else {
            held.discard();
            return Ok(Err(wrong(sha, size, None)));
        };
        work.unpacked += 1;
        let unpacked = self.unpack_to_tmp(held.path(), &archive_name(source), strip)?;
        held.discard();
        let (dir, tree) = match unpacked {
            Ok(x) => x,
            Err(e) => {
                let unpack_error = Some(e.to_string());
                return Ok(Err(AttemptProblem::WrongContent { sha256: Some(sha), size: Some(size), tree: None, unpack_error }));
            }
        };
        let digest = tree.digest();
        if source.tree != Some(digest) {
            return Ok(Err(wrong(sha, size, Some(digest))));
        }
        let (layer, _) = self.store.commit_hashed_tree(dir, tree)?;
        self.store.set_unpacked(&sha, strip, &layer)?;
        self.store.record_origin(Object::Layer(layer), &ObjectOrigin { from: place.clone(), archive: Some(sha), size: Some(size) })?;
        Ok(Ok(Ready { pin: Pin::Tree, sha256: Some(sha), size: Some(size), layer: Some(layer), from: place }))
    }

    /// Unpacks `archive` into a fresh directory of `tmp/` and hashes it;
    /// nothing is committed. The inner error is the archive's.
    fn unpack_to_tmp(&self, archive: &Path, name: &str, strip: u32) -> Result<Result<(tempfile::TempDir, Tree), UnpackError>, SourceError> {
        let dir = self.store.temp_dir()?;
        if let Err(e) = unpack::unpack(archive, name, strip, dir.path(), self.opts.max_unpacked) {
            return Ok(Err(e));
        }
        let tree = hash::hash_tree(dir.path()).map_err(StoreError::from)?;
        Ok(Ok((dir, tree)))
    }

    /// Unpacks a source file already in the store (it matched the `sha256`
    /// pin) into its layer, unless done before.
    fn unpack_stored(&self, source: &Source, sha: &Sha256, strip: u32, work: &mut Work) -> Result<Blake3, SourceError> {
        if let Some(layer) = self.store.unpacked(sha, strip) {
            return Ok(layer);
        }
        work.unpacked += 1;
        let (dir, tree) = self.unpack_to_tmp(&self.store.source_path(sha), &archive_name(source), strip)?.map_err(|error| {
            let (src, span) = span_of(self.chain, source);
            let help = miette::Diagnostic::help(&error).map(|h| h.to_string());
            SourceError::Unpack { name: source.name.clone(), error, help, src, span }
        })?;
        let (layer, _) = self.store.commit_hashed_tree(dir, tree)?;
        self.store.set_unpacked(sha, strip, &layer)?;
        if let Some(o) = self.store.origin(Object::Source(*sha)) {
            self.store.record_origin(Object::Layer(layer), &ObjectOrigin { from: o.from, archive: Some(*sha), size: o.size })?;
        }
        Ok(layer)
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
    // Two declarations of one file (or one tree) must not fetch it twice at once.
    let by_pin: Mutex<std::collections::HashMap<String, std::sync::Arc<Mutex<()>>>> = Mutex::default();
    let run = |s: &&Source| {
        let key = s.sha256.map(|x| x.to_string()).or_else(|| s.tree.map(|t| t.to_string())).unwrap_or_else(|| s.name.clone());
        let gate = by_pin.lock().map(|mut m| m.entry(key).or_default().clone()).unwrap_or_default();
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
