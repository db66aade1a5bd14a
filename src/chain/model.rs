//! The typed chain model: what the loader produces once every file has been
//! parsed and every cross-file rule has held.
//!
//! A [`Chain`] is only ever built from files without a single diagnostic, so
//! its invariants hold for every consumer: names are unique per kind, every
//! `needs` and step `source` resolves, needs point to the same or an earlier
//! stage, the needs graph is acyclic, every source is pinned by sha256 and
//! has at least one URL, and the chain has at least two seeds.
//!
//! Items keep the byte span of their declaration and the index of their file
//! so later stages (planning, verification) can point back at the KDL.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// A byte range in one chain file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Span {
    /// Byte offset of the first byte.
    pub offset: usize,
    /// Length in bytes.
    pub len: usize,
}

impl From<miette::SourceSpan> for Span {
    fn from(s: miette::SourceSpan) -> Self {
        Span { offset: s.offset(), len: s.len() }
    }
}

impl From<Span> for miette::SourceSpan {
    fn from(s: Span) -> Self {
        (s.offset, s.len).into()
    }
}

/// A name as written, with where it was written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Named {
    /// The name.
    pub name: String,
    /// The span of the string holding it.
    pub span: Span,
}

/// One loaded chain file.
#[derive(Debug, Clone)]
pub struct ChainFile {
    /// Path relative to the chain directory, with `/` separators.
    pub path: String,
    /// The file's text, shared with diagnostics.
    pub text: Arc<str>,
}

/// A stage as declared in the `chain` node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stage {
    /// The stage's name, also the name of its directory.
    pub name: String,
    /// One line saying what the stage builds.
    pub description: Option<String>,
    /// The `stage` node in chain/chain.kdl.
    pub span: Span,
}

/// A difference the second lineage of `verify` runs under (`vary` in the
/// chain node), reprotest-style: a step whose output changes under it
/// depends on something it should not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Variation {
    /// Sources live at `/src-vary/<name>`, with `/src` a symlink to
    /// `/src-vary`: catches absolute build paths in outputs (`__FILE__`,
    /// debug info, `pwd -P`, paths baked into scripts).
    BuildPath,
    /// The hostname is `bootstrap-vary`: catches outputs that record the
    /// machine they were built on.
    Hostname,
}

impl Variation {
    /// Every variation, in order.
    pub const ALL: [Variation; 2] = [Variation::BuildPath, Variation::Hostname];

    /// The keyword as written in KDL.
    pub fn as_str(self) -> &'static str {
        match self {
            Variation::BuildPath => "build-path",
            Variation::Hostname => "hostname",
        }
    }
}

/// The `chain` node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainDecl {
    /// The chain's name.
    pub name: String,
    /// Target architecture (`x86_64`, …).
    pub arch: String,
    /// `SOURCE_DATE_EPOCH` inside every sandbox.
    pub source_date_epoch: u64,
    /// The stages, in order.
    pub stages: Vec<Stage>,
    /// Variations of `verify`'s second lineage (sorted, each once).
    pub vary: Vec<Variation>,
    /// The whole node.
    pub span: Span,
}

/// A pinned download: URL and sha256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PinnedUrl {
    /// Where to fetch it from.
    pub url: String,
    /// Lowercase hex sha256 of the bytes.
    pub sha256: String,
}

/// A seed distro.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seed {
    /// The seed's name.
    pub name: String,
    /// What the seed is and how it was built.
    pub description: Option<String>,
    /// OCI image reference, pinned by digest (used by the oci backend).
    pub image: Option<String>,
    /// Root filesystem tarball (used by the local backend).
    pub rootfs: Option<PinnedUrl>,
    /// File index and span of the declaration (file set by the loader).
    #[serde(skip)]
    pub file: usize,
    /// The seed's name in its `seed` node.
    pub span: Span,
}

/// How a source is placed under `/src/<name>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Placement {
    /// The downloaded file itself, as-is.
    File,
    /// The archive unpacked, dropping this many leading path components.
    Unpack {
        /// Leading components removed from every member path.
        strip_components: u32,
    },
}

/// An upstream source: URLs tried in order, one sha256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    /// The source's name; it is mounted at `/src/<name>`.
    pub name: String,
    /// The `version` property, if given.
    pub version: Option<String>,
    /// URLs with `{version}` expanded, in the order they are tried.
    pub urls: Vec<String>,
    /// Lowercase hex sha256 of the downloaded file.
    pub sha256: String,
    /// Whether and how it is unpacked.
    pub placement: Placement,
    /// File index of the declaration (set by the loader).
    #[serde(skip)]
    pub file: usize,
    /// The source's name in its `source` node.
    pub span: Span,
}

/// The root a step starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Root {
    /// An empty root: only sources and needs.
    Scratch,
    /// The seed distro's root filesystem.
    Seed,
}

impl Root {
    /// The keyword as written in KDL.
    pub fn as_str(self) -> &'static str {
        match self {
            Root::Scratch => "scratch",
            Root::Seed => "seed",
        }
    }
}

/// What a step runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// One or more argvs, run in order without a shell.
    Run(Vec<Vec<String>>),
    /// A script run as `<shell> -e -c <script>`.
    Script {
        /// The script text.
        script: String,
        /// The shell; `/bin/sh` unless the step says otherwise.
        shell: String,
    },
}

/// A declared output of a step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Output {
    /// The path as written: relative to `workdir`, or absolute.
    pub path: String,
    /// Pinned lowercase hex sha256 of the file, if given.
    pub sha256: Option<String>,
    /// The `output` node.
    pub span: Span,
}

/// One step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    /// The step's name, unique across the chain.
    pub name: String,
    /// Index into [`Chain::stages`] (set by the loader).
    #[serde(skip)]
    pub stage: usize,
    /// File index of the declaration (set by the loader).
    #[serde(skip)]
    pub file: usize,
    /// The step's name in its `step` node.
    pub span: Span,
    /// What the step does.
    pub description: Option<String>,
    /// The root it starts from.
    pub root: Root,
    /// Sources it mounts, in the order written, each once.
    pub sources: Vec<Named>,
    /// Steps whose output layers it overlays, in the order written, each once.
    pub needs: Vec<Named>,
    /// Absolute working directory, if given.
    pub workdir: Option<String>,
    /// Environment added to the sandbox's fixed one (sorted by key).
    pub env: BTreeMap<String, String>,
    /// What it runs.
    pub command: Command,
    /// Timeout in seconds, if given.
    pub timeout_secs: Option<u64>,
    /// Declared outputs, in the order written, each path once.
    pub outputs: Vec<Output>,
    /// Commands not yet confirmed against upstream.
    pub unverified: bool,
}

/// A loaded, validated chain. See the module doc for its invariants.
#[derive(Debug, Clone)]
pub struct Chain {
    /// The chain directory the files were read from.
    pub dir: std::path::PathBuf,
    /// Every file loaded, in load order; items refer to these by index.
    pub files: Vec<ChainFile>,
    /// The `chain` node.
    pub decl: ChainDecl,
    /// Index of chain/chain.kdl in `files`.
    pub main_file: usize,
    /// Seeds, in load order.
    pub seeds: Vec<Seed>,
    /// Sources, in load order.
    pub sources: Vec<Source>,
    /// Steps: by stage, then file name, then position in the file.
    pub steps: Vec<Step>,
    pub(crate) step_index: BTreeMap<String, usize>,
    pub(crate) source_index: BTreeMap<String, usize>,
    /// Per step, the indexes of its needs in [`Chain::steps`], in the order written.
    pub need_ids: Vec<Vec<usize>>,
    /// Per step, the indexes of its sources in [`Chain::sources`], in the order written.
    pub source_ids: Vec<Vec<usize>>,
}

impl Chain {
    /// The stages, in order.
    pub fn stages(&self) -> &[Stage] {
        &self.decl.stages
    }

    /// The index of the step called `name`.
    pub fn step_id(&self, name: &str) -> Option<usize> {
        self.step_index.get(name).copied()
    }

    /// The source called `name`.
    pub fn source(&self, name: &str) -> Option<&Source> {
        self.source_index.get(name).map(|&i| &self.sources[i])
    }

    /// The index of the stage called `name`.
    pub fn stage_id(&self, name: &str) -> Option<usize> {
        self.decl.stages.iter().position(|s| s.name == name)
    }

    /// 1-based line and column of a byte offset in file `file`.
    pub fn line_col(&self, file: usize, offset: usize) -> (usize, usize) {
        line_col(&self.files[file].text, offset)
    }
}

/// 1-based line and column (in characters) of a byte offset in `text`.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text.as_bytes()[..offset];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let line_start = before.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
    let col = String::from_utf8_lossy(&before[line_start..]).chars().count() + 1;
    (line, col)
}
