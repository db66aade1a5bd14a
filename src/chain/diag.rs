//! Diagnostics for chain files.
//!
//! Every problem the loader finds is one [`ChainDiagnostic`]: a stable code
//! (`bootstrap::chain::*`), the file it is in (as a [`miette::NamedSource`]
//! named by its path relative to the chain directory), a labelled span and a
//! help line. The loader collects all of them from all files before it gives
//! up, so one run of `bootstrap check` shows everything that is wrong.
//!
//! A problem that involves a second place (a duplicate name, a cycle, a need
//! on a later stage) labels that place too: in the same diagnostic when it is
//! in the same file, as a related note when it is in another.

use std::sync::Arc;

use miette::{Diagnostic, LabeledSpan, NamedSource, SourceSpan};
use thiserror::Error;

/// A chain file's text, named by its path relative to the chain directory.
pub type Src = NamedSource<Arc<str>>;

/// A second place that a diagnostic points to, in another file.
#[derive(Debug, Error, Diagnostic)]
#[error("{message}")]
#[diagnostic(severity(Advice))]
pub struct Elsewhere {
    /// What this place is (e.g. "`hex0` is first defined here").
    pub message: String,
    /// The file the place is in.
    #[source_code]
    pub src: Src,
    /// The place itself.
    #[label("{label}")]
    pub span: SourceSpan,
    /// The label text on the span.
    pub label: String,
}

/// One problem in a chain. Each variant has its own stable code.
#[derive(Debug, Error, Diagnostic)]
pub enum ChainDiagnostic {
    /// The chain directory has no `chain/chain.kdl`.
    #[error("no chain/chain.kdl in {dir}")]
    #[diagnostic(
        code(bootstrap::chain::no_chain_file),
        help("run bootstrap inside a chain directory, or pass -C DIR; a chain directory holds chain/chain.kdl")
    )]
    NoChainFile {
        /// The directory that was searched.
        dir: String,
    },

    /// A chain file or directory could not be read.
    #[error("cannot read {path}: {reason}")]
    #[diagnostic(
        code(bootstrap::chain::unreadable),
        help("check that the path exists and that you may read it")
    )]
    Unreadable {
        /// The path, relative to the chain directory where possible.
        path: String,
        /// What the operating system said.
        reason: String,
    },

    /// A chain file that is not read for what or where it is.
    #[error("refusing to read {path}: {reason}")]
    #[diagnostic(code(bootstrap::chain::refused_file))]
    RefusedFile {
        /// The path, relative to the chain directory.
        path: String,
        /// What it is, or where it leads.
        reason: String,
        /// What to do about it.
        #[help]
        help: String,
    },

    /// A chain file is not UTF-8 text.
    #[error("{path} is not UTF-8 text (invalid byte at offset {offset})")]
    #[diagnostic(
        code(bootstrap::chain::not_utf8),
        help("KDL files are UTF-8; re-save the file as UTF-8")
    )]
    NotUtf8 {
        /// The path relative to the chain directory.
        path: String,
        /// Byte offset of the first invalid byte.
        offset: usize,
    },

    /// The KDL parser rejected the file.
    #[error("KDL syntax error: {message}")]
    #[diagnostic(code(bootstrap::chain::syntax))]
    Syntax {
        /// The file.
        #[source_code]
        src: Src,
        /// Where the parser stopped.
        #[label("{label}")]
        span: SourceSpan,
        /// The parser's message.
        message: String,
        /// The parser's label.
        label: String,
        /// The parser's advice, or ours.
        #[help]
        help: String,
    },

    /// A node this place does not know.
    #[error("unknown node `{name}` in {context}")]
    #[diagnostic(code(bootstrap::chain::unknown_node))]
    UnknownNode {
        /// The file.
        #[source_code]
        src: Src,
        /// The node's name.
        #[label("not a node of {context}")]
        span: SourceSpan,
        /// The unknown name.
        name: String,
        /// Where it stands ("a step", "the top level of a stage file", …).
        context: String,
        /// The allowed nodes, and a close match if there is one.
        #[help]
        help: String,
    },

    /// A node that is known, but not in this kind of file.
    #[error("`{name}` does not belong in {place}")]
    #[diagnostic(code(bootstrap::chain::misplaced_node))]
    MisplacedNode {
        /// The file.
        #[source_code]
        src: Src,
        /// The node.
        #[label("not allowed here")]
        span: SourceSpan,
        /// The node's name.
        name: String,
        /// The kind of file it is in.
        place: String,
        /// Where it belongs instead.
        #[help]
        help: String,
    },

    /// A property this node does not take.
    #[error("unknown property `{name}` on `{node}`")]
    #[diagnostic(code(bootstrap::chain::unknown_property))]
    UnknownProperty {
        /// The file.
        #[source_code]
        src: Src,
        /// The property.
        #[label("unknown property")]
        span: SourceSpan,
        /// The property's name.
        name: String,
        /// The node's name.
        node: String,
        /// The allowed properties, and a close match if there is one.
        #[help]
        help: String,
    },

    /// A property given twice on one node.
    #[error("property `{name}` is given twice on `{node}`")]
    #[diagnostic(
        code(bootstrap::chain::repeated_property),
        help("keep one of them; KDL would silently use the last, which hides mistakes")
    )]
    RepeatedProperty {
        /// The file.
        #[source_code]
        src: Src,
        /// The second occurrence.
        #[label("given again here")]
        span: SourceSpan,
        /// The first occurrence.
        #[label("first given here")]
        first: SourceSpan,
        /// The property's name.
        name: String,
        /// The node's name.
        node: String,
    },

    /// More arguments than the node takes.
    #[error("`{node}` takes {expected}, this is one too many")]
    #[diagnostic(code(bootstrap::chain::extra_argument))]
    ExtraArgument {
        /// The file.
        #[source_code]
        src: Src,
        /// The first argument too many.
        #[label("unexpected argument")]
        span: SourceSpan,
        /// The node's name.
        node: String,
        /// What the node takes ("one argument", "no arguments").
        expected: String,
        /// How to write it instead.
        #[help]
        help: String,
    },

    /// A node lacks an argument it needs.
    #[error("`{node}` needs {what}")]
    #[diagnostic(code(bootstrap::chain::missing_argument))]
    MissingArgument {
        /// The file.
        #[source_code]
        src: Src,
        /// The node.
        #[label("missing {what}")]
        span: SourceSpan,
        /// The node's name.
        node: String,
        /// What is missing ("a name", "a URL", …).
        what: String,
        /// An example.
        #[help]
        help: String,
    },

    /// A node lacks a required property.
    #[error("`{node}` needs the property `{property}`")]
    #[diagnostic(code(bootstrap::chain::missing_property))]
    MissingProperty {
        /// The file.
        #[source_code]
        src: Src,
        /// The node.
        #[label("no `{property}` here")]
        span: SourceSpan,
        /// The node's name.
        node: String,
        /// The missing property.
        property: String,
        /// An example.
        #[help]
        help: String,
    },

    /// A node lacks a required child node.
    #[error("{parent} has no `{child}`")]
    #[diagnostic(code(bootstrap::chain::missing_node))]
    MissingNode {
        /// The file.
        #[source_code]
        src: Src,
        /// The parent node.
        #[label("needs a `{child}` node")]
        span: SourceSpan,
        /// The parent, described ("source `foo`").
        parent: String,
        /// The missing child's name.
        child: String,
        /// An example.
        #[help]
        help: String,
    },

    /// A value of the wrong type.
    #[error("{what} must be {expected}, found {found}")]
    #[diagnostic(code(bootstrap::chain::wrong_type))]
    WrongType {
        /// The file.
        #[source_code]
        src: Src,
        /// The value.
        #[label("this is {found}")]
        span: SourceSpan,
        /// What the value is ("the argument of `timeout`").
        what: String,
        /// The expected type ("a string").
        expected: String,
        /// The found type ("an integer").
        found: String,
        /// How to write it.
        #[help]
        help: String,
    },

    /// A number outside the allowed range.
    #[error("{what} must be {range}, found {value}")]
    #[diagnostic(code(bootstrap::chain::out_of_range))]
    OutOfRange {
        /// The file.
        #[source_code]
        src: Src,
        /// The value.
        #[label("out of range")]
        span: SourceSpan,
        /// What the value is.
        what: String,
        /// The allowed range, in words.
        range: String,
        /// The value found.
        value: String,
        /// How to fix it.
        #[help]
        help: String,
    },

    /// A type annotation such as `(u8)1` or `(foo)node`.
    #[error("type annotations are not part of the chain language")]
    #[diagnostic(
        code(bootstrap::chain::type_annotation),
        help("remove the `(…)` before the value or node name")
    )]
    TypeAnnotation {
        /// The file.
        #[source_code]
        src: Src,
        /// The annotated node or value.
        #[label("annotated here")]
        span: SourceSpan,
    },

    /// A child block on a node that takes none.
    #[error("`{node}` takes no children block")]
    #[diagnostic(
        code(bootstrap::chain::unexpected_children),
        help("remove the `{{ … }}` block; `{node}` is written on one line")
    )]
    UnexpectedChildren {
        /// The file.
        #[source_code]
        src: Src,
        /// The node.
        #[label("has a children block")]
        span: SourceSpan,
        /// The node's name.
        node: String,
    },

    /// A node that may appear once appears again.
    #[error("`{node}` is given twice in {parent}")]
    #[diagnostic(code(bootstrap::chain::repeated_node))]
    RepeatedNode {
        /// The file.
        #[source_code]
        src: Src,
        /// The second occurrence.
        #[label("given again here")]
        span: SourceSpan,
        /// The first occurrence.
        #[label("first given here")]
        first: SourceSpan,
        /// The node's name.
        node: String,
        /// The parent, described.
        parent: String,
        /// How to fix it.
        #[help]
        help: String,
    },

    /// `chain/chain.kdl` has no `chain` node.
    #[error("chain/chain.kdl has no `chain` node")]
    #[diagnostic(
        code(bootstrap::chain::no_chain_node),
        help("add `chain \"NAME\" {{ arch \"x86_64\"; stage \"stage0\" }}` to chain/chain.kdl")
    )]
    NoChainNode {
        /// chain/chain.kdl.
        #[source_code]
        src: Src,
        /// The start of the file.
        #[label("expected a `chain` node in this file")]
        span: SourceSpan,
    },

    /// A name that cannot be used as a path component.
    #[error("invalid {kind} name `{name}`: {reason}")]
    #[diagnostic(
        code(bootstrap::chain::invalid_name),
        help("names are 1 to 128 characters of A-Z a-z 0-9 . _ + -, not starting with . or -")
    )]
    InvalidName {
        /// The file.
        #[source_code]
        src: Src,
        /// The name.
        #[label("invalid name")]
        span: SourceSpan,
        /// What is named ("step", "source", …).
        kind: String,
        /// The name as written.
        name: String,
        /// What is wrong with it.
        reason: String,
    },

    /// Two stages with one name.
    #[error("stage `{name}` is declared twice")]
    #[diagnostic(
        code(bootstrap::chain::duplicate_stage),
        help("stage names are unique; rename or remove one of them")
    )]
    DuplicateStage {
        /// The file.
        #[source_code]
        src: Src,
        /// The second declaration.
        #[label("declared again here")]
        span: SourceSpan,
        /// The first declaration.
        #[label("first declared here")]
        first: SourceSpan,
        /// The name.
        name: String,
    },

    /// Two seeds with one name.
    #[error("seed `{name}` is declared twice")]
    #[diagnostic(
        code(bootstrap::chain::duplicate_seed),
        help("seed names are unique across the chain; rename or remove one of them")
    )]
    DuplicateSeed {
        /// The file of the second declaration.
        #[source_code]
        src: Src,
        /// The second declaration.
        #[label("declared again here")]
        span: SourceSpan,
        /// The first declaration, when in the same file.
        #[label("first declared here")]
        first: Option<SourceSpan>,
        /// The first declaration, when in another file.
        #[related]
        elsewhere: Vec<Elsewhere>,
        /// The name.
        name: String,
    },

    /// Two sources with one name.
    #[error("source `{name}` is declared twice")]
    #[diagnostic(
        code(bootstrap::chain::duplicate_source),
        help("source names are unique across the chain; a version belongs in the name if two versions are needed (e.g. `gcc-4.7.4`)")
    )]
    DuplicateSource {
        /// The file of the second declaration.
        #[source_code]
        src: Src,
        /// The second declaration.
        #[label("declared again here")]
        span: SourceSpan,
        /// The first declaration, when in the same file.
        #[label("first declared here")]
        first: Option<SourceSpan>,
        /// The first declaration, when in another file.
        #[related]
        elsewhere: Vec<Elsewhere>,
        /// The name.
        name: String,
    },

    /// A step with a stage's name.
    #[error("step `{name}` has the name of a stage")]
    #[diagnostic(
        code(bootstrap::chain::step_named_like_stage),
        help("`build`, `plan`, `fetch`, `graph` and `audit` take a stage or a step by name; rename the step (and its `needs`)")
    )]
    StepNamedLikeStage {
        /// The file.
        #[source_code]
        src: Src,
        /// The step's name.
        #[label("also a stage's name")]
        span: SourceSpan,
        /// The name.
        name: String,
    },

    /// Two steps with one name.
    #[error("step `{name}` is declared twice")]
    #[diagnostic(
        code(bootstrap::chain::duplicate_step),
        help("step names are unique across all stages; rename one of them and update its `needs`")
    )]
    DuplicateStep {
        /// The file of the second declaration.
        #[source_code]
        src: Src,
        /// The second declaration.
        #[label("declared again here")]
        span: SourceSpan,
        /// The first declaration, when in the same file.
        #[label("first declared here")]
        first: Option<SourceSpan>,
        /// The first declaration, when in another file.
        #[related]
        elsewhere: Vec<Elsewhere>,
        /// The name.
        name: String,
    },

    /// The same name twice in one step's `needs` or `source` lists.
    #[error("step `{step}` lists {kind} `{name}` twice")]
    #[diagnostic(
        code(bootstrap::chain::repeated_reference),
        help("remove the second mention; each {kind} is used once")
    )]
    RepeatedReference {
        /// The file.
        #[source_code]
        src: Src,
        /// The second mention.
        #[label("listed again here")]
        span: SourceSpan,
        /// The first mention.
        #[label("first listed here")]
        first: SourceSpan,
        /// The step.
        step: String,
        /// "need" or "source".
        kind: String,
        /// The repeated name.
        name: String,
    },

    /// A `needs` that names no step.
    #[error("step `{step}` needs `{name}`, which is not a step of this chain")]
    #[diagnostic(code(bootstrap::chain::unknown_need))]
    UnknownNeed {
        /// The file.
        #[source_code]
        src: Src,
        /// The name in `needs`.
        #[label("no step is called `{name}`")]
        span: SourceSpan,
        /// The step that needs it.
        step: String,
        /// The unknown name.
        name: String,
        /// A close name, or where steps are declared.
        #[help]
        help: String,
    },

    /// A step `source` that names no declared source.
    #[error("step `{step}` uses source `{name}`, which is not declared")]
    #[diagnostic(code(bootstrap::chain::unknown_source))]
    UnknownSource {
        /// The file.
        #[source_code]
        src: Src,
        /// The name in `source`.
        #[label("no source is called `{name}`")]
        span: SourceSpan,
        /// The step that uses it.
        step: String,
        /// The unknown name.
        name: String,
        /// A close name, or how to declare it.
        #[help]
        help: String,
    },

    /// A step needs a step of a later stage.
    #[error("step `{step}` of {stage} needs `{name}` of the later {need_stage}")]
    #[diagnostic(
        code(bootstrap::chain::later_stage_need),
        help("a stage may only build on itself and earlier stages: move `{name}` to {stage} or earlier, or `{step}` to {need_stage} or later")
    )]
    LaterStageNeed {
        /// The file.
        #[source_code]
        src: Src,
        /// The name in `needs`.
        #[label("`{name}` is in {need_stage}")]
        span: SourceSpan,
        /// Where the needed step is declared.
        #[related]
        declared: Vec<Elsewhere>,
        /// The step that needs it.
        step: String,
        /// Its stage.
        stage: String,
        /// The needed step.
        name: String,
        /// The needed step's stage.
        need_stage: String,
    },

    /// Steps that need each other in a cycle.
    #[error("steps need each other in a cycle: {path}")]
    #[diagnostic(
        code(bootstrap::chain::cycle),
        help("a step cannot be built before itself; remove one of the `needs` marked here to break the cycle")
    )]
    Cycle {
        /// The file of the first member.
        #[source_code]
        src: Src,
        /// Each member's `needs` entry inside the cycle, in this file.
        #[label(collection)]
        spans: Vec<LabeledSpan>,
        /// Members in other files.
        #[related]
        elsewhere: Vec<Elsewhere>,
        /// The cycle, written out (`a → b → a`).
        path: String,
    },

    /// Children nested deeper than the loader reads.
    #[error("children nest more than {limit} levels deep")]
    #[diagnostic(
        code(bootstrap::chain::too_deep),
        help("a chain file needs a few levels (step {{ env … }}); flatten the nodes, or close the braces this one opens")
    )]
    TooDeep {
        /// The file.
        #[source_code]
        src: Src,
        /// The first brace past the limit.
        #[label("level {} starts here", limit + 1)]
        span: SourceSpan,
        /// The limit.
        limit: usize,
    },

    /// A string holding a NUL character.
    #[error("{what} holds a NUL character")]
    #[diagnostic(
        code(bootstrap::chain::nul_byte),
        help("remove the \\u{{0}} escape: no argument, path, URL or environment value can carry a NUL")
    )]
    NulByte {
        /// The file.
        #[source_code]
        src: Src,
        /// The string.
        #[label("a NUL in here")]
        span: SourceSpan,
        /// What the string is.
        what: String,
    },

    /// A sha256 that is not 64 hex digits.
    #[error("malformed sha256: {reason}")]
    #[diagnostic(
        code(bootstrap::chain::malformed_sha256),
        help("a sha256 is 64 hexadecimal digits, as printed by `sha256sum FILE`")
    )]
    MalformedSha256 {
        /// The file.
        #[source_code]
        src: Src,
        /// The value.
        #[label("{reason}")]
        span: SourceSpan,
        /// What is wrong.
        reason: String,
    },

    /// A source with neither `sha256` nor `tree`.
    #[error("source `{name}` is not pinned")]
    #[diagnostic(code(bootstrap::chain::no_pin))]
    NoPin {
        /// The file.
        #[source_code]
        src: Src,
        /// The source node.
        #[label("neither `sha256` nor `tree` here")]
        span: SourceSpan,
        /// The source.
        name: String,
        /// How to pin it, for how it is placed.
        #[help]
        help: String,
    },

    /// A `tree` pin that is not `blake3:` and 64 lowercase hex digits.
    #[error("malformed tree digest: {reason}")]
    #[diagnostic(
        code(bootstrap::chain::malformed_tree),
        help("a tree pin is `blake3:` followed by 64 lowercase hex digits, as `bootstrap hash DIR` prints it for the unpacked files")
    )]
    MalformedTree {
        /// The file.
        #[source_code]
        src: Src,
        /// The value.
        #[label("{reason}")]
        span: SourceSpan,
        /// What is wrong.
        reason: String,
    },

    /// A `git` source without a `tree` pin.
    #[error("source `{name}` is fetched with git but has no `tree` pin")]
    #[diagnostic(
        code(bootstrap::chain::git_without_tree),
        help("a commit id is SHA-1, which can be forged, so it does not pin the content: add `tree \"blake3:…\"`, the digest `bootstrap hash DIR` prints for a checkout of that commit without its .git")
    )]
    GitWithoutTree {
        /// The file.
        #[source_code]
        src: Src,
        /// The `git` node.
        #[label("a commit id alone is not a pin")]
        span: SourceSpan,
        /// The source.
        name: String,
    },

    /// A `commit` that is not 40 hex digits.
    #[error("malformed commit id: {reason}")]
    #[diagnostic(
        code(bootstrap::chain::malformed_commit),
        help("write the full 40-hex-digit commit id, as `git rev-parse TAG^{{commit}}` prints it; branch and tag names can move")
    )]
    MalformedCommit {
        /// The file.
        #[source_code]
        src: Src,
        /// The value.
        #[label("{reason}")]
        span: SourceSpan,
        /// What is wrong.
        reason: String,
    },

    /// A `tree` pin on a source placed as a file.
    #[error("source `{name}` has a `tree` pin but is placed as a file")]
    #[diagnostic(
        code(bootstrap::chain::tree_on_file),
        help("a tree pin is about unpacked content: add `unpack` (with the `strip-components` the archive needs) to place the source as a tree, or pin the file's bytes with `sha256` instead")
    )]
    TreeOnFile {
        /// The file.
        #[source_code]
        src: Src,
        /// The `tree` node.
        #[label("no `unpack` and no `git` in this source")]
        span: SourceSpan,
        /// The source.
        name: String,
    },

    /// A source with neither `url` nor `git`.
    #[error("source `{name}` has nowhere to come from")]
    #[diagnostic(
        code(bootstrap::chain::no_location),
        help("say where to get it: `url \"https://…\"` (one or more, tried in order) or `git \"https://…\" commit=\"<40 hex digits>\"`, or both")
    )]
    NoLocation {
        /// The file.
        #[source_code]
        src: Src,
        /// The source node.
        #[label("neither `url` nor `git` here")]
        span: SourceSpan,
        /// The source.
        name: String,
    },

    /// A source with both `url` and `git` but no `unpack`.
    #[error("source `{name}` has URLs and a git repository but no `unpack`")]
    #[diagnostic(
        code(bootstrap::chain::git_needs_unpack),
        help("the URLs' archives are unpacked and compared with `tree`, like the checkout: add `unpack strip-components=N` with the N the archives need (a checkout is never stripped)")
    )]
    GitNeedsUnpack {
        /// The file.
        #[source_code]
        src: Src,
        /// The source node.
        #[label("the URLs would be placed as files, the checkout is a tree")]
        span: SourceSpan,
        /// The `git` node.
        #[label("a checkout is a tree")]
        git: SourceSpan,
        /// The source.
        name: String,
    },

    /// A source with `path` and also `url` or `git`.
    #[error("source `{name}` has both `path` and `{other}`")]
    #[diagnostic(
        code(bootstrap::chain::path_and_url),
        help("a source is a file of the chain directory (`path`) or comes from elsewhere (`url`, `git`), not both: keep one")
    )]
    PathAndUrl {
        /// The file.
        #[source_code]
        src: Src,
        /// The `path` node.
        #[label("`path` here")]
        span: SourceSpan,
        /// The first `url` or `git` node.
        #[label("`{other}` here")]
        other_span: SourceSpan,
        /// `url` or `git`.
        other: String,
        /// The source.
        name: String,
    },

    /// A `path` that does not stay a plain relative path inside the chain directory.
    #[error("malformed path `{value}`: {reason}")]
    #[diagnostic(
        code(bootstrap::chain::malformed_path),
        help("a `path` names a file inside the chain directory (the directory holding chain/chain.kdl), relative to it: plain components separated by single `/`, no leading `/`, no `.` or `..`, no empty component, e.g. stage1/files/config.h")
    )]
    MalformedPath {
        /// The file.
        #[source_code]
        src: Src,
        /// The value.
        #[label("{reason}")]
        span: SourceSpan,
        /// The value as written.
        value: String,
        /// What is wrong.
        reason: String,
    },

    /// A URL that cannot be fetched.
    #[error("unsupported URL scheme `{scheme}`")]
    #[diagnostic(
        code(bootstrap::chain::url_scheme),
        help("sources are fetched over http://, https:// or file://")
    )]
    UrlScheme {
        /// The file.
        #[source_code]
        src: Src,
        /// The URL.
        #[label("scheme `{scheme}`")]
        span: SourceSpan,
        /// The scheme found.
        scheme: String,
    },

    /// A string that is not a URL at all.
    #[error("malformed URL: {reason}")]
    #[diagnostic(
        code(bootstrap::chain::malformed_url),
        help("write a full URL such as https://example.org/pkg-1.0.tar.gz or file:///srv/distfiles/pkg-1.0.tar.gz")
    )]
    MalformedUrl {
        /// The file.
        #[source_code]
        src: Src,
        /// The URL.
        #[label("{reason}")]
        span: SourceSpan,
        /// What is wrong.
        reason: String,
    },

    /// A `{…}` placeholder other than `{version}`, or `{version}` with no version.
    #[error("URL placeholder `{{{placeholder}}}` cannot be expanded")]
    #[diagnostic(code(bootstrap::chain::bad_placeholder))]
    BadPlaceholder {
        /// The file.
        #[source_code]
        src: Src,
        /// The URL.
        #[label("`{{{placeholder}}}` here")]
        span: SourceSpan,
        /// The placeholder's name.
        placeholder: String,
        /// Why it cannot be expanded.
        #[help]
        help: String,
    },

    /// Fewer than two seeds.
    #[error("the chain declares {count} seed(s); at least two are needed")]
    #[diagnostic(
        code(bootstrap::chain::too_few_seeds),
        help("a stage is only trusted when independently built seed distros agree; declare a second `seed \"NAME\" {{ … }}` in chain/chain.kdl")
    )]
    TooFewSeeds {
        /// chain/chain.kdl.
        #[source_code]
        src: Src,
        /// The chain node.
        #[label("this chain has {count} seed(s)")]
        span: SourceSpan,
        /// How many seeds there are.
        count: usize,
    },

    /// A timeout that is not `<n><unit>…`.
    #[error("malformed timeout `{value}`: {reason}")]
    #[diagnostic(
        code(bootstrap::chain::malformed_timeout),
        help("write a duration such as \"90s\", \"10m\", \"6h\" or \"1h30m\" (units s, m, h, d)")
    )]
    MalformedTimeout {
        /// The file.
        #[source_code]
        src: Src,
        /// The value.
        #[label("{reason}")]
        span: SourceSpan,
        /// The value as written.
        value: String,
        /// What is wrong.
        reason: String,
    },

    /// Both `run` and `script` in one step.
    #[error("step `{step}` has both `run` and `script`")]
    #[diagnostic(
        code(bootstrap::chain::run_and_script),
        help("use `run` lines (argv, no shell) or one `script` (run by a shell), not both")
    )]
    RunAndScript {
        /// The file.
        #[source_code]
        src: Src,
        /// The script.
        #[label("`script` here")]
        span: SourceSpan,
        /// The first run.
        #[label("`run` here")]
        run: SourceSpan,
        /// The step.
        step: String,
    },

    /// Neither `run` nor `script`.
    #[error("step `{step}` has nothing to run")]
    #[diagnostic(
        code(bootstrap::chain::no_command),
        help("add `run \"PROGRAM\" \"ARG\"…` (an argv) or `script #\"\"\"…\"\"\"#` (a shell script)")
    )]
    NoCommand {
        /// The file.
        #[source_code]
        src: Src,
        /// The step.
        #[label("no `run` or `script` in this step")]
        span: SourceSpan,
        /// The step.
        step: String,
    },

    /// `shell` without `script`.
    #[error("step `{step}` sets `shell` but has no `script`")]
    #[diagnostic(
        code(bootstrap::chain::shell_without_script),
        help("`shell` only says which shell runs `script`; `run` lines are argvs and run without a shell")
    )]
    ShellWithoutScript {
        /// The file.
        #[source_code]
        src: Src,
        /// The shell node.
        #[label("unused `shell`")]
        span: SourceSpan,
        /// The step.
        step: String,
    },

    /// `interpreter` without `script`.
    #[error("step `{step}` sets `interpreter` but has no `script`")]
    #[diagnostic(
        code(bootstrap::chain::interpreter_without_script),
        help("`interpreter` names the program that runs the step's `script` (given the script's file, /src/.script); add the `script`, or drop `interpreter`: `run` lines are argvs and run as written")
    )]
    InterpreterWithoutScript {
        /// The file.
        #[source_code]
        src: Src,
        /// The interpreter node.
        #[label("unused `interpreter`")]
        span: SourceSpan,
        /// The step.
        step: String,
    },

    /// Both `interpreter` and `shell` in one step.
    #[error("step `{step}` has both `interpreter` and `shell`")]
    #[diagnostic(
        code(bootstrap::chain::interpreter_and_shell),
        help("a `script` is run either by a shell (`<shell> -e -c SCRIPT`) or by an `interpreter` given the script's file, not both: keep one of them")
    )]
    InterpreterAndShell {
        /// The file.
        #[source_code]
        src: Src,
        /// The interpreter node.
        #[label("`interpreter` here")]
        span: SourceSpan,
        /// The shell node.
        #[label("`shell` here")]
        shell: SourceSpan,
        /// The step.
        step: String,
    },

    /// An interpreter program that is not an absolute path.
    #[error("the interpreter `{value}` is not an absolute path")]
    #[diagnostic(
        code(bootstrap::chain::relative_interpreter),
        help("the working directory differs between steps, so a relative program would be looked for elsewhere in each: give its absolute path in the sandbox, e.g. /src/stage0-posix/AMD64/bin/kaem")
    )]
    RelativeInterpreter {
        /// The file.
        #[source_code]
        src: Src,
        /// The program.
        #[label("not absolute")]
        span: SourceSpan,
        /// The program as written.
        value: String,
    },

    /// A `root` other than scratch or seed.
    #[error("unknown root `{value}`")]
    #[diagnostic(
        code(bootstrap::chain::invalid_root),
        help("`root \"scratch\"` starts from an empty root, `root \"seed\"` from the seed distro's rootfs")
    )]
    InvalidRoot {
        /// The file.
        #[source_code]
        src: Src,
        /// The value.
        #[label("expected \"scratch\" or \"seed\"")]
        span: SourceSpan,
        /// The value as written.
        value: String,
    },

    /// A path that must be absolute is not.
    #[error("`{node}` must be an absolute path, found `{value}`")]
    #[diagnostic(
        code(bootstrap::chain::relative_path),
        help("paths inside the sandbox start with /, e.g. /src/NAME or /bin/sh")
    )]
    RelativePath {
        /// The file.
        #[source_code]
        src: Src,
        /// The value.
        #[label("not absolute")]
        span: SourceSpan,
        /// The node.
        node: String,
        /// The value.
        value: String,
    },

    /// A path in the settings file that is not absolute.
    #[error("`{value}` is not an absolute path")]
    #[diagnostic(
        code(bootstrap::settings::relative_path),
        help("remembered locations are absolute, so they hold wherever bootstrap runs from: `bootstrap seed add NAME PATH` and `bootstrap distfiles add DIR` write them so")
    )]
    RelativeSetting {
        /// The file.
        #[source_code]
        src: Src,
        /// The value.
        #[label("not absolute")]
        span: SourceSpan,
        /// The value.
        value: String,
    },

    /// An output path that cannot be captured safely.
    #[error("invalid output path `{value}`: {reason}")]
    #[diagnostic(
        code(bootstrap::chain::invalid_output),
        help("write a plain path relative to `workdir` (e.g. AMD64/bin/M1) or an absolute one (e.g. /result/out), without `.` or `..` components")
    )]
    InvalidOutput {
        /// The file.
        #[source_code]
        src: Src,
        /// The path.
        #[label("{reason}")]
        span: SourceSpan,
        /// The path as written.
        value: String,
        /// What is wrong.
        reason: String,
    },

    /// A `destdir` that cannot hold a step's installed tree.
    #[error("invalid destdir `{value}`: {reason}")]
    #[diagnostic(
        code(bootstrap::chain::invalid_destdir),
        help("write an absolute directory below the root, e.g. destdir \"/destdir\", without `.` or `..` components")
    )]
    InvalidDestdir {
        /// The file.
        #[source_code]
        src: Src,
        /// The value.
        #[label("{reason}")]
        span: SourceSpan,
        /// The value as written.
        value: String,
        /// What is wrong.
        reason: String,
    },

    /// A relative output in a step with a `destdir`.
    #[error("output `{value}` of step `{step}` is relative, but the step installs into a destdir")]
    #[diagnostic(
        code(bootstrap::chain::relative_output_with_destdir),
        help("with `destdir`, an output names where the installed files belong (e.g. output \"/usr\" for what `make install DESTDIR=…` put under DESTDIR/usr): write it absolute")
    )]
    RelativeOutputWithDestdir {
        /// The file.
        #[source_code]
        src: Src,
        /// The output.
        #[label("relative")]
        span: SourceSpan,
        /// The destdir node.
        #[label("the step installs into this destdir")]
        destdir: SourceSpan,
        /// The path as written.
        value: String,
        /// The step.
        step: String,
    },

    /// The same output declared twice.
    #[error("output `{path}` is declared twice in step `{step}`")]
    #[diagnostic(
        code(bootstrap::chain::duplicate_output),
        help("declare each output once; a pinned sha256 belongs on that one line")
    )]
    DuplicateOutput {
        /// The file.
        #[source_code]
        src: Src,
        /// The second declaration.
        #[label("declared again here")]
        span: SourceSpan,
        /// The first declaration.
        #[label("first declared here")]
        first: SourceSpan,
        /// The path.
        path: String,
        /// The step.
        step: String,
    },

    /// An environment variable name that is not a name.
    #[error("invalid environment variable name `{name}`")]
    #[diagnostic(
        code(bootstrap::chain::invalid_env_name),
        help("names are letters, digits and _, not starting with a digit")
    )]
    InvalidEnvName {
        /// The file.
        #[source_code]
        src: Src,
        /// The entry.
        #[label("invalid name")]
        span: SourceSpan,
        /// The name.
        name: String,
    },

    /// A variable the sandbox sets itself.
    #[error("`{name}` is set by the sandbox and cannot be overridden")]
    #[diagnostic(
        code(bootstrap::chain::reserved_env),
        help("HOME, TZ, LC_ALL and SOURCE_DATE_EPOCH are fixed by the sandbox contract (SOURCE_DATE_EPOCH comes from the chain's `source-date-epoch`); remove this entry")
    )]
    ReservedEnv {
        /// The file.
        #[source_code]
        src: Src,
        /// The entry.
        #[label("reserved")]
        span: SourceSpan,
        /// The name.
        name: String,
    },

    /// The same variable set twice in one step.
    #[error("`{name}` is set twice in step `{step}`")]
    #[diagnostic(
        code(bootstrap::chain::duplicate_env),
        help("set each variable once")
    )]
    DuplicateEnv {
        /// The file.
        #[source_code]
        src: Src,
        /// The second setting.
        #[label("set again here")]
        span: SourceSpan,
        /// The first setting.
        #[label("first set here")]
        first: SourceSpan,
        /// The variable.
        name: String,
        /// The step.
        step: String,
    },

    /// An arch the engine does not know.
    #[error("unknown arch `{value}`")]
    #[diagnostic(
        code(bootstrap::chain::unknown_arch),
        help("one of: x86_64, i686, aarch64, riscv64")
    )]
    UnknownArch {
        /// The file.
        #[source_code]
        src: Src,
        /// The value.
        #[label("unknown arch")]
        span: SourceSpan,
        /// The value.
        value: String,
    },

    /// A `vary` value the engine does not know.
    #[error("unknown variation `{value}`")]
    #[diagnostic(
        code(bootstrap::chain::unknown_variation),
        help("one of: build-path, hostname (docs/chain-language.md says what each catches)")
    )]
    UnknownVariation {
        /// The file.
        #[source_code]
        src: Src,
        /// The value.
        #[label("unknown variation")]
        span: SourceSpan,
        /// The value.
        value: String,
    },

    /// A seed image not pinned by digest.
    #[error("seed image `{value}` is not pinned by digest")]
    #[diagnostic(
        code(bootstrap::chain::unpinned_image),
        help("pin the image: NAME@sha256:<64 hex> (or the bare image id sha256:<64 hex>); a tag can move")
    )]
    UnpinnedImage {
        /// The file.
        #[source_code]
        src: Src,
        /// The value.
        #[label("no @sha256: digest")]
        span: SourceSpan,
        /// The value.
        value: String,
    },

    /// An empty string where a value is needed.
    #[error("{what} is empty")]
    #[diagnostic(code(bootstrap::chain::empty_value))]
    EmptyValue {
        /// The file.
        #[source_code]
        src: Src,
        /// The value.
        #[label("empty")]
        span: SourceSpan,
        /// What the value is.
        what: String,
        /// What to write.
        #[help]
        help: String,
    },

    /// A `require` rule names a role no signer has.
    #[error("no signer in chain/trust.kdl has the role `{role}`")]
    #[diagnostic(code(bootstrap::chain::unknown_role))]
    UnknownRole {
        /// chain/trust.kdl.
        #[source_code]
        src: Src,
        /// The role in the rule.
        #[label("no signer has this role")]
        span: SourceSpan,
        /// The role.
        role: String,
        /// The roles signers have, and a close match.
        #[help]
        help: String,
    },

    /// A rule asks for more signatures than there are signers of its role.
    #[error("the rule asks for {count} {role} signature(s), but only {available} signer(s) have the role `{role}`")]
    #[diagnostic(
        code(bootstrap::chain::count_exceeds_signers),
        help("lower `count`, or add the missing signers with `signer \"NAME\" role=\"{role}\" fingerprint=\"…\" cert=\"keys/NAME.asc\"`")
    )]
    CountExceedsSigners {
        /// chain/trust.kdl.
        #[source_code]
        src: Src,
        /// The count.
        #[label("more than the {available} signer(s) of this role")]
        span: SourceSpan,
        /// The role.
        role: String,
        /// What the rule asks for.
        count: u32,
        /// How many signers have the role.
        available: usize,
    },

    /// Two `require` rules for one role.
    #[error("the role `{role}` has two `require` rules")]
    #[diagnostic(code(bootstrap::chain::duplicate_rule), help("keep one `require role=\"{role}\" count=N`"))]
    DuplicateRule {
        /// chain/trust.kdl.
        #[source_code]
        src: Src,
        /// The second rule.
        #[label("second rule")]
        span: SourceSpan,
        /// The first rule.
        #[label("first rule")]
        first: SourceSpan,
        /// The role.
        role: String,
    },

    /// Two signers share a name or a fingerprint.
    #[error("two signers have the {what} `{value}`")]
    #[diagnostic(
        code(bootstrap::chain::duplicate_signer),
        help("each signer is one person with one certificate: give each a name and a fingerprint of their own")
    )]
    DuplicateSigner {
        /// chain/trust.kdl.
        #[source_code]
        src: Src,
        /// The second signer's value.
        #[label("given again here")]
        span: SourceSpan,
        /// The first signer's value.
        #[label("first given here")]
        first: SourceSpan,
        /// "name" or "fingerprint".
        what: String,
        /// The shared value.
        value: String,
    },

    /// A fingerprint that is not 40 or 64 hex digits.
    #[error("malformed fingerprint: {reason}")]
    #[diagnostic(
        code(bootstrap::chain::malformed_fingerprint),
        help("write the certificate's full fingerprint, as `gpg --fingerprint` or `sq inspect` shows it (spaces are allowed)")
    )]
    MalformedFingerprint {
        /// chain/trust.kdl.
        #[source_code]
        src: Src,
        /// The value.
        #[label("not a fingerprint")]
        span: SourceSpan,
        /// What is wrong.
        reason: String,
    },

    /// A `cert` path that is not a relative path inside the chain directory.
    #[error("`cert` must be a relative path under chain/, found `{path}`")]
    #[diagnostic(
        code(bootstrap::chain::invalid_cert_path),
        help("certificates live with the chain, e.g. cert=\"keys/alice.asc\" for chain/keys/alice.asc")
    )]
    InvalidCertPath {
        /// chain/trust.kdl.
        #[source_code]
        src: Src,
        /// The value.
        #[label("{reason}")]
        span: SourceSpan,
        /// The path.
        path: String,
        /// What is wrong.
        reason: String,
    },

    /// A signer's certificate file cannot be read.
    #[error("cannot read the certificate of `{signer}`, chain/{path}: {reason}")]
    #[diagnostic(
        code(bootstrap::chain::missing_cert),
        help("export the signer's public certificate there (`gpg --export --armor FINGERPRINT > chain/{path}`), or fix the `cert` path")
    )]
    MissingCert {
        /// chain/trust.kdl.
        #[source_code]
        src: Src,
        /// The `cert` value.
        #[label("this file")]
        span: SourceSpan,
        /// The signer.
        signer: String,
        /// The path under chain/.
        path: String,
        /// What the operating system said.
        reason: String,
    },

    /// A signer's certificate file is not one public OpenPGP certificate.
    #[error("chain/{path} (the certificate of `{signer}`) {problem}")]
    #[diagnostic(code(bootstrap::chain::bad_cert))]
    BadCert {
        /// chain/trust.kdl.
        #[source_code]
        src: Src,
        /// The `cert` value.
        #[label("this file")]
        span: SourceSpan,
        /// The signer.
        signer: String,
        /// The path under chain/.
        path: String,
        /// What is wrong with it.
        problem: String,
        /// What to do.
        #[help]
        help: String,
    },

    /// A certificate whose fingerprint is not the one `trust.kdl` names.
    #[error("chain/{path} holds the certificate {actual}, not {written} as written for `{signer}`")]
    #[diagnostic(code(bootstrap::chain::fingerprint_mismatch))]
    FingerprintMismatch {
        /// chain/trust.kdl.
        #[source_code]
        src: Src,
        /// The `fingerprint` value.
        #[label("the certificate file says {actual}")]
        span: SourceSpan,
        /// The signer.
        signer: String,
        /// The path under chain/.
        path: String,
        /// The fingerprint in trust.kdl.
        written: String,
        /// The certificate's primary fingerprint.
        actual: String,
        /// What to do.
        #[help]
        help: String,
    },
}

impl ChainDiagnostic {
    /// The file and byte span of the primary label, when there is one.
    pub fn location(&self) -> Option<(&Src, SourceSpan)> {
        use ChainDiagnostic as D;
        match self {
            D::NoChainFile { .. } | D::Unreadable { .. } | D::RefusedFile { .. } | D::NotUtf8 { .. } => None,
            D::Cycle { src, spans, .. } => spans.first().map(|s| (src, *s.inner())),
            D::Syntax { src, span, .. }
            | D::UnknownNode { src, span, .. }
            | D::MisplacedNode { src, span, .. }
            | D::UnknownProperty { src, span, .. }
            | D::RepeatedProperty { src, span, .. }
            | D::ExtraArgument { src, span, .. }
            | D::MissingArgument { src, span, .. }
            | D::MissingProperty { src, span, .. }
            | D::MissingNode { src, span, .. }
            | D::WrongType { src, span, .. }
            | D::OutOfRange { src, span, .. }
            | D::TypeAnnotation { src, span }
            | D::UnexpectedChildren { src, span, .. }
            | D::RepeatedNode { src, span, .. }
            | D::NoChainNode { src, span }
            | D::InvalidName { src, span, .. }
            | D::DuplicateStage { src, span, .. }
            | D::DuplicateSeed { src, span, .. }
            | D::DuplicateSource { src, span, .. }
            | D::DuplicateStep { src, span, .. }
            | D::RepeatedReference { src, span, .. }
            | D::UnknownNeed { src, span, .. }
            | D::UnknownSource { src, span, .. }
            | D::LaterStageNeed { src, span, .. }
            | D::MalformedSha256 { src, span, .. }
            | D::NulByte { src, span, .. }
            | D::TooDeep { src, span, .. }
            | D::StepNamedLikeStage { src, span, .. }
            | D::NoPin { src, span, .. }
            | D::MalformedTree { src, span, .. }
            | D::GitWithoutTree { src, span, .. }
            | D::MalformedCommit { src, span, .. }
            | D::TreeOnFile { src, span, .. }
            | D::NoLocation { src, span, .. }
            | D::GitNeedsUnpack { src, span, .. }
            | D::UrlScheme { src, span, .. }
            | D::MalformedUrl { src, span, .. }
            | D::BadPlaceholder { src, span, .. }
            | D::TooFewSeeds { src, span, .. }
            | D::MalformedTimeout { src, span, .. }
            | D::RunAndScript { src, span, .. }
            | D::NoCommand { src, span, .. }
            | D::ShellWithoutScript { src, span, .. }
            | D::InterpreterWithoutScript { src, span, .. }
            | D::InterpreterAndShell { src, span, .. }
            | D::RelativeInterpreter { src, span, .. }
            | D::PathAndUrl { src, span, .. }
            | D::MalformedPath { src, span, .. }
            | D::InvalidRoot { src, span, .. }
            | D::RelativePath { src, span, .. }
            | D::RelativeSetting { src, span, .. }
            | D::InvalidOutput { src, span, .. }
            | D::InvalidDestdir { src, span, .. }
            | D::RelativeOutputWithDestdir { src, span, .. }
            | D::DuplicateOutput { src, span, .. }
            | D::InvalidEnvName { src, span, .. }
            | D::ReservedEnv { src, span, .. }
            | D::DuplicateEnv { src, span, .. }
            | D::UnknownArch { src, span, .. }
            | D::UnknownVariation { src, span, .. }
            | D::UnpinnedImage { src, span, .. }
            | D::EmptyValue { src, span, .. }
            | D::UnknownRole { src, span, .. }
            | D::CountExceedsSigners { src, span, .. }
            | D::DuplicateRule { src, span, .. }
            | D::DuplicateSigner { src, span, .. }
            | D::MalformedFingerprint { src, span, .. }
            | D::InvalidCertPath { src, span, .. }
            | D::MissingCert { src, span, .. }
            | D::BadCert { src, span, .. }
            | D::FingerprintMismatch { src, span, .. } => Some((src, *span)),
        }
    }

    /// The file the diagnostic is about, relative to the chain directory.
    pub fn file(&self) -> Option<String> {
        match self {
            ChainDiagnostic::Unreadable { path, .. } | ChainDiagnostic::RefusedFile { path, .. } | ChainDiagnostic::NotUtf8 { path, .. } => {
                Some(path.clone())
            }
            ChainDiagnostic::NoChainFile { .. } => Some("chain/chain.kdl".to_owned()),
            _ => self.location().map(|(src, _)| src.name().to_owned()),
        }
    }
}

/// "Did you mean `x`?" for the closest of `candidates`, when one is close.
pub fn did_you_mean<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let mut best: Option<(f64, &str)> = None;
    for candidate in candidates {
        let score = strsim::jaro_winkler(name, candidate);
        if score >= 0.8 && best.is_none_or(|(b, _)| score > b) {
            best = Some((score, candidate));
        }
    }
    best.map(|(_, c)| format!("did you mean `{c}`?"))
}
