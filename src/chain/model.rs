//! The typed chain model: what the loader produces once every file has been
//! parsed and every cross-file rule has held.
//!
//! A [`Chain`] is only ever built from files without a single diagnostic, so
//! its invariants hold for every consumer: names are unique per kind, every
//! `needs` and step `source` resolves, needs point to the same or an earlier
//! stage, the needs graph is acyclic, every source is pinned (by `sha256`,
//! `tree` or both) and has a place to come from (a URL or a git
//! repository, or else a file in the chain directory, never both), a
//! `tree` pin is only on a source placed as a tree, a `git` source always
//! has a `tree` pin, a `path` is relative to the chain directory without
//! `.`, `..` or empty components, and the chain has at least two seeds.
//!
//! Items keep the byte span of their declaration and the index of their file
//! so later stages (planning, verification) can point back at the KDL.
//!
//! Steps, stages and sources are named across the crate by [`StepId`],
//! [`StageId`] and [`SourceId`] rather than bare indexes: only this module
//! makes them, so one handed out by a loaded chain always indexes it, and a
//! step index cannot be passed where a stage index is meant.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::hash::{Blake3, Sha256};

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
    /// The sha256 of the bytes.
    pub sha256: Sha256,
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
    /// A tree: an archive (from a URL or a distfiles directory) unpacked,
    /// dropping this many leading path components, or a git checkout
    /// (never stripped). A source with `git` and no URL is placed so even
    /// without an `unpack` node (then with 0).
    Unpack {
        /// Leading components removed from every member path of an archive.
        strip_components: u32,
    },
}

/// Which of a source's pins its content matched: `sha256` (the bytes of
/// the file) or `tree` (the tree digest of the unpacked content).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pin {
    /// The file's sha256 was the pinned one.
    Sha256,
    /// The unpacked content's tree digest was the pinned one.
    Tree,
}

impl Pin {
    /// `sha256` or `tree`, as in receipts and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Pin::Sha256 => "sha256",
            Pin::Tree => "tree",
        }
    }
}

/// A git commit id: 40 hex digits (SHA-1). Never a pin by itself: a
/// source fetched with git is pinned by the tree digest of its checkout.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CommitId(pub [u8; 20]);

impl CommitId {
    /// Parses exactly 40 hex digits (either case).
    pub fn from_hex(s: &str) -> Option<CommitId> {
        let b = s.as_bytes();
        if b.len() != 40 {
            return None;
        }
        let nib = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
        let mut out = [0u8; 20];
        for (i, o) in out.iter_mut().enumerate() {
            *o = (nib(b[2 * i])? << 4) | nib(b[2 * i + 1])?;
        }
        Some(CommitId(out))
    }

    /// Lowercase hex, as git prints it.
    pub fn hex(&self) -> String {
        crate::hash::to_hex(&self.0)
    }
}

impl std::fmt::Display for CommitId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.hex())
    }
}

// As git prints it (40 lowercase hex digits), in every format.
impl Serialize for CommitId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for CommitId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        CommitId::from_hex(&s).ok_or_else(|| serde::de::Error::custom(format!("`{s}` is not a 40-hex-digit commit id")))
    }
}

impl std::fmt::Debug for CommitId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.hex())
    }
}

/// Where a source's git repository is, and which commit of it to check out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GitLocation {
    /// The repository (`https://`, `http://` or `file://`), `{version}` expanded.
    pub url: String,
    /// The commit checked out (detached).
    pub commit: CommitId,
    /// Whether submodules are checked out too, recursively.
    pub submodules: bool,
}

impl GitLocation {
    /// `URL@COMMIT`, how receipts and messages name a checkout.
    pub fn describe(&self) -> String {
        format!("git {}@{}", self.url, self.commit)
    }
}

/// A source: where to get it (URLs tried in order, then a git repository;
/// or a file of the chain directory itself) and what it must be (its
/// pins). See the module doc for what the loader guarantees.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    /// The source's name; it is mounted at `/src/<name>`.
    pub name: String,
    /// The `version` property, if given.
    pub version: Option<String>,
    /// URLs with `{version}` expanded, in the order they are tried.
    pub urls: Vec<String>,
    /// The sha256 of the file's bytes, when pinned.
    pub sha256: Option<Sha256>,
    /// The tree digest of the unpacked content (after `strip-components`),
    /// when pinned; only on a source placed as a tree.
    pub tree: Option<Blake3>,
    /// The git repository it may also be fetched from (after the URLs).
    pub git: Option<GitLocation>,
    /// A file of the chain directory it is read from instead (`path`):
    /// relative to the chain directory, `/`-separated, with no empty, `.`
    /// or `..` component. A source with a path has no URL and no git.
    pub path: Option<String>,
    /// Whether and how it is unpacked.
    pub placement: Placement,
    /// File index of the declaration (set by the loader).
    #[serde(skip)]
    pub file: usize,
    /// The source's name in its `source` node.
    pub span: Span,
}

impl Source {
    /// Whether it is placed as a tree (unpacked, or a git checkout).
    pub fn is_tree(&self) -> bool {
        matches!(self.placement, Placement::Unpack { .. })
    }

    /// The `strip-components` applied to archives, for a tree.
    pub fn strip(&self) -> Option<u32> {
        match self.placement {
            Placement::File => None,
            Placement::Unpack { strip_components } => Some(strip_components),
        }
    }
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
    /// A script run by a named interpreter (`interpreter` in the step): the
    /// text, ending in a line break, is placed byte for byte as a read-only
    /// file at `/src/.script`
    /// and the step runs `<interpreter…> /src/.script`, with no shell in
    /// between (the chain's own kaem, before it has a POSIX shell).
    Interpreted {
        /// The script text as written plus a line break if it lacks one
        /// (never empty).
        script: String,
        /// The interpreter's argv: the program, an absolute path inside the
        /// sandbox, then its fixed arguments. Never empty.
        interpreter: Vec<String>,
    },
}

/// A declared output of a step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Output {
    /// The path as written: relative to `workdir`, or absolute.
    pub path: String,
    /// The file's pinned sha256, if given.
    pub sha256: Option<crate::hash::Sha256>,
    /// The `output` node.
    pub span: Span,
}

/// One step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    /// The step's name, unique across the chain.
    pub name: String,
    /// The stage whose directory declares it (set by the loader).
    #[serde(skip, default = "StageId::unset")]
    pub stage: StageId,
    /// File index of the declaration (set by the loader).
    #[serde(skip)]
    pub file: usize,
    /// The step's name in its `step` node.
    pub span: Span,
    /// The whole `step` node, children included (what `audit` shows).
    pub node: Span,
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
    /// Where the step installs what it builds (live-bootstrap's DESTDIR),
    /// if given: absolute, below the root, plain components. When set,
    /// every output is absolute and is read from under this directory but
    /// stored at its own path, so a package installed into
    /// `/destdir/usr` becomes a layer holding `/usr`.
    pub destdir: Option<String>,
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

/// A step of a loaded [`Chain`]: its position in [`Chain::steps`].
///
/// Only the `chain` module makes one (the field is private to it), so an id
/// handed out by a loaded chain ([`Chain::step_id`], [`Chain::step_ids`],
/// [`Chain::needs_of`], or a plan over that chain) always indexes that
/// chain's steps, and [`Chain::step`] cannot go out of bounds with it (a
/// loaded chain's steps and stages are never edited afterwards). Ids
/// order like the steps do (by stage, then file name, then position), so
/// "lowest id first" is declaration order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StepId(pub(super) usize);

impl StepId {
    /// The position in [`Chain::steps`], for tables kept per step (a plan's
    /// digests, the loader's graph).
    pub fn index(self) -> usize {
        self.0
    }
}

/// A stage of a loaded [`Chain`]: its position in [`Chain::stages`].
///
/// Like [`StepId`], only the `chain` module makes one, so an id handed out
/// by a loaded chain ([`Chain::stage_id`], [`Chain::stage_ids`],
/// [`Step::stage`]) always indexes that chain's stages. Ids order like the
/// stages do, so `a <= b` means stage `a` comes no later than `b`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StageId(pub(super) usize);

impl StageId {
    /// The position in [`Chain::stages`], for tables kept per stage.
    pub fn index(self) -> usize {
        self.0
    }

    /// What a parsed step holds until the loader sets its stage (and what a
    /// cached parse deserializes to, the field being skipped).
    pub(super) fn unset() -> StageId {
        StageId(0)
    }
}

/// A source of a loaded [`Chain`]: its position in [`Chain::sources`].
///
/// Like [`StepId`], only the `chain` module makes one, so an id handed out
/// by a loaded chain ([`Chain::source_ids_of`]) always indexes that chain's
/// sources.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SourceId(pub(super) usize);

impl SourceId {
    /// The position in [`Chain::sources`], for tables kept per source.
    pub fn index(self) -> usize {
        self.0
    }
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
    pub(crate) step_index: BTreeMap<String, StepId>,
    pub(crate) source_index: BTreeMap<String, SourceId>,
    /// Per step (by [`StepId::index`]), its needs, in the order written.
    pub(super) need_ids: Vec<Vec<StepId>>,
    /// Per step (by [`StepId::index`]), the sources it mounts, in the order
    /// written.
    pub(super) source_ids: Vec<Vec<SourceId>>,
}

impl Chain {
    /// The stages, in order.
    pub fn stages(&self) -> &[Stage] {
        &self.decl.stages
    }

    /// The step called `name`.
    pub fn step_id(&self, name: &str) -> Option<StepId> {
        self.step_index.get(name).copied()
    }

    /// The step `id`.
    pub fn step(&self, id: StepId) -> &Step {
        &self.steps[id.0]
    }

    /// Every step, in the order of [`Chain::steps`].
    pub fn step_ids(&self) -> impl DoubleEndedIterator<Item = StepId> + ExactSizeIterator + Clone + use<> {
        (0..self.steps.len()).map(StepId)
    }

    /// The steps of stage `stage`, in the order of [`Chain::steps`].
    pub fn steps_in(&self, stage: StageId) -> impl Iterator<Item = StepId> + Clone + '_ {
        self.step_ids().filter(move |&i| self.steps[i.0].stage == stage)
    }

    /// The needs of step `id`, in the order written.
    pub fn needs_of(&self, id: StepId) -> &[StepId] {
        &self.need_ids[id.0]
    }

    /// The sources step `id` mounts, in the order written.
    pub fn source_ids_of(&self, id: StepId) -> &[SourceId] {
        &self.source_ids[id.0]
    }

    /// The source called `name`.
    pub fn source(&self, name: &str) -> Option<&Source> {
        self.source_index.get(name).map(|&i| self.source_by_id(i))
    }

    /// The source `id`.
    pub fn source_by_id(&self, id: SourceId) -> &Source {
        &self.sources[id.0]
    }

    /// The stage called `name`.
    pub fn stage_id(&self, name: &str) -> Option<StageId> {
        self.decl.stages.iter().position(|s| s.name == name).map(StageId)
    }

    /// The stage `id`.
    pub fn stage(&self, id: StageId) -> &Stage {
        &self.decl.stages[id.0]
    }

    /// The last stage. A loaded chain has at least one (the parser refuses
    /// a `chain` node without a `stage`).
    pub fn last_stage(&self) -> StageId {
        StageId(self.decl.stages.len().saturating_sub(1))
    }

    /// Every stage, in order.
    pub fn stage_ids(&self) -> impl DoubleEndedIterator<Item = StageId> + ExactSizeIterator + Clone + use<> {
        (0..self.decl.stages.len()).map(StageId)
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
