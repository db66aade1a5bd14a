//! One file: KDL text → the items it declares, with every rule that can be
//! checked inside a single file (node and property names, arity, types,
//! formats of sha256, tree digests, commit ids, URLs, timeouts, paths and
//! names, and how a source's pins, places and placement fit together).
//!
//! Rules that need more than one file (duplicate names, references, stages,
//! cycles, the number of seeds) live in `validate`. Because this step looks
//! at one file's text only, its result for a clean file can be cached by the
//! file's content hash (see `cache`).

use std::collections::{BTreeMap, HashMap};

use kdl::{KdlDocument, KdlEntry, KdlNode, KdlValue};
use miette::SourceSpan;
use serde::{Deserialize, Serialize};

use super::diag::{ChainDiagnostic as D, Src, did_you_mean};
use super::model::{
    ChainDecl, Command, CommitId, GitLocation, Named, Output, Placement, PinnedUrl, Root, Seed, Source, Span, Stage, Step,
};
use crate::hash::{Blake3, Sha256};

/// Which kind of chain file a file is; decides what may stand at its top level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum FileKind {
    /// `chain/chain.kdl`: the `chain` node, seeds, sources.
    Main,
    /// Another `chain/*.kdl`: seeds and sources.
    Extra,
    /// A `*.kdl` in a stage directory: steps and sources.
    Stage,
}

impl FileKind {
    fn place(self) -> &'static str {
        match self {
            FileKind::Main => "chain/chain.kdl",
            FileKind::Extra => "a file under chain/",
            FileKind::Stage => "a stage file",
        }
    }
}

/// Everything one file declares, before cross-file checks.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FileItems {
    /// The `chain` node (only in chain/chain.kdl).
    pub chain: Option<ChainDecl>,
    /// Seeds declared in this file.
    pub seeds: Vec<Seed>,
    /// Sources declared in this file.
    pub sources: Vec<Source>,
    /// Steps declared in this file (stage set later).
    pub steps: Vec<Step>,
}

/// Arches the engine knows.
pub const ARCHES: &[&str] = &["x86_64", "i686", "aarch64", "riscv64"];
/// Environment variables the sandbox fixes.
pub const RESERVED_ENV: &[&str] = &["HOME", "TZ", "LC_ALL", "SOURCE_DATE_EPOCH"];
/// Shell used for `script` when the step names none.
pub const DEFAULT_SHELL: &str = "/bin/sh";

const STEP_CHILDREN: &[&str] = &[
    "description", "root", "source", "needs", "workdir", "destdir", "env", "timeout", "run",
    "script", "shell", "interpreter", "output", "unverified",
];
const SOURCE_CHILDREN: &[&str] = &["url", "git", "path", "sha256", "tree", "unpack"];
const SEED_CHILDREN: &[&str] = &["description", "image", "rootfs"];
const CHAIN_CHILDREN: &[&str] = &["arch", "source-date-epoch", "stage", "vary"];
const TOP_LEVEL: &[&str] = &["chain", "seed", "source", "step"];

/// Parses one file. Never panics on any input: a KDL error becomes a
/// `syntax` diagnostic and an empty item list.
pub fn parse_file(kind: FileKind, src: &Src) -> (FileItems, Vec<D>) {
    let doc = match parse_document(src) {
        Ok(doc) => doc,
        Err(diags) => return (FileItems::default(), diags),
    };
    let mut cx = Cx { src, diags: Vec::new() };
    let items = cx.file(kind, &doc);
    (items, cx.diags)
}

/// The file's KDL document, or its syntax errors. Never panics.
/// How deep `{ … }` children may nest. Chain files need three or four
/// levels; the KDL parser recurses per level, so a hostile file nested
/// thousands deep would overflow the stack, which no `catch_unwind` stops.
pub const MAX_DEPTH: usize = 16;

/// The stack the KDL crate parses on: deep enough that only a file the
/// depth scan misjudges *and* that nests thousands of levels could
/// exhaust it (it is address space, used only as deep as the parse goes).
const PARSER_STACK: usize = 256 << 20;

/// Where children first nest deeper than [`MAX_DEPTH`], skipping strings
/// and comments as KDL v2 reads them: `"…"` with escapes, `"""…"""`, raw
/// `#"…"#` (any number of `#`, multi-line too), `//` and nested `/* */`.
fn too_deep(text: &str) -> Option<usize> {
    let b = text.as_bytes();
    let (mut i, mut depth) = (0, 0usize);
    while i < b.len() {
        match b[i] {
            b'{' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Some(i);
                }
            }
            b'}' => depth = depth.saturating_sub(1),
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let mut nest = 1;
                i += 2;
                while i < b.len() && nest > 0 {
                    if b[i..].starts_with(b"/*") {
                        nest += 1;
                        i += 1;
                    } else if b[i..].starts_with(b"*/") {
                        nest -= 1;
                        i += 1;
                    }
                    i += 1;
                }
                continue;
            }
            b'#' if matches!(b.get(i + 1), Some(b'#' | b'"')) => {
                let hashes = b[i..].iter().take_while(|&&c| c == b'#').count();
                let multi = b[i + hashes..].starts_with(b"\"\"\"");
                let mut close = if multi { b"\"\"\"".to_vec() } else { b"\"".to_vec() };
                close.extend(std::iter::repeat_n(b'#', hashes));
                i += hashes + if multi { 3 } else { 1 };
                while i < b.len() && !b[i..].starts_with(&close) {
                    i += 1;
                }
                i += close.len();
                continue;
            }
            b'"' if b[i..].starts_with(b"\"\"\"") => {
                i += 3;
                while i < b.len() && !b[i..].starts_with(b"\"\"\"") {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                i += 3;
                continue;
            }
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

pub(super) fn parse_document(src: &Src) -> Result<KdlDocument, Vec<D>> {
    let text: &str = src.inner();
    if let Some(at) = too_deep(text) {
        return Err(vec![D::TooDeep { src: src.clone(), span: (at, 1).into(), limit: MAX_DEPTH }]);
    }
    // Plain files take the fast path; the crate takes the rest and reports
    // every syntax error.
    let parsed = match super::fastkdl::parse(text) {
        Some(doc) => Ok(Ok(doc)),
        None => std::thread::scope(|scope| {
            std::thread::Builder::new()
                .stack_size(PARSER_STACK)
                .spawn_scoped(scope, || std::panic::catch_unwind(|| KdlDocument::parse_v2(text)))
                .map_or(Err(Box::new("cannot start the parser thread") as Box<dyn std::any::Any + Send>), |h| {
                    h.join().unwrap_or_else(Err)
                })
        }),
    };
    match parsed {
        Ok(Ok(doc)) => Ok(doc),
        Ok(Err(err)) => Err(err
            .diagnostics
            .into_iter()
            .map(|d| D::Syntax {
                src: src.clone(),
                span: clamp(d.span, text.len()),
                message: d.message.unwrap_or_else(|| "unexpected input".to_owned()),
                label: d.label.unwrap_or_else(|| "here".to_owned()),
                help: d.help.unwrap_or_else(|| {
                    "see https://kdl.dev for KDL v2 syntax; booleans are #true/#false, raw strings #\"…\"#".to_owned()
                }),
            })
            .collect()),
        // The KDL parser must not bring the engine down; say where we gave up.
        Err(_) => Err(vec![D::Syntax {
            src: src.clone(),
            span: (0, 0).into(),
            message: "the KDL parser failed on this file".to_owned(),
            label: "somewhere in this file".to_owned(),
            help: "simplify the file until it parses, and report this input as a bug".to_owned(),
        }]),
    }
}

fn clamp(span: SourceSpan, len: usize) -> SourceSpan {
    let offset = span.offset().min(len);
    (offset, span.len().min(len - offset)).into()
}

fn type_name(v: &KdlValue) -> &'static str {
    match v {
        KdlValue::String(_) => "a string",
        KdlValue::Integer(_) => "an integer",
        KdlValue::Float(_) => "a float",
        KdlValue::Bool(_) => "a boolean",
        KdlValue::Null => "#null",
    }
}

fn count_words(n: usize) -> String {
    match n {
        0 => "no arguments".to_owned(),
        1 => "one argument".to_owned(),
        n => format!("{n} arguments"),
    }
}

/// Checks a name used as a path component and a global identifier.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("it is empty".to_owned());
    }
    if name.len() > 128 {
        return Err(format!("it is {} bytes long, the limit is 128", name.len()));
    }
    if name.starts_with('.') || name.starts_with('-') {
        return Err("it starts with `.` or `-`".to_owned());
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '+' | '-')))
    {
        return Err(format!("it contains `{}`", c.escape_default()));
    }
    Ok(())
}

/// Parses a duration such as `90s`, `10m`, `1h30m` into seconds.
pub fn parse_duration(s: &str) -> Result<u64, String> {
    if s.is_empty() {
        return Err("it is empty".to_owned());
    }
    let mut total: u64 = 0;
    let mut digits = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86400,
            _ => return Err(format!("`{}` is not a unit (s, m, h, d)", c.escape_default())),
        };
        if digits.is_empty() {
            return Err(format!("unit `{c}` has no number before it"));
        }
        let n: u64 = digits.parse().map_err(|_| "the number is too large".to_owned())?;
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| "the duration is too large".to_owned())?;
        digits.clear();
    }
    if !digits.is_empty() {
        return Err(format!("`{digits}` has no unit (s, m, h, d)"));
    }
    if total == 0 {
        return Err("it is zero".to_owned());
    }
    Ok(total)
}

/// Checks a sha256 written as hex; returns it in lowercase.
pub fn check_sha256(s: &str) -> Result<String, String> {
    if let Some((i, c)) = s.char_indices().find(|(_, c)| !c.is_ascii_hexdigit()) {
        return Err(format!("`{}` at position {} is not a hex digit", c.escape_default(), i + 1));
    }
    if s.len() != 64 {
        return Err(format!("{} hex digits, expected 64", s.len()));
    }
    Ok(s.to_ascii_lowercase())
}

/// Checks a tree pin: `blake3:` and 64 lowercase hex digits (the text form
/// every tree digest is printed in, so a pin is compared as written).
pub fn check_tree(s: &str) -> Result<Blake3, String> {
    let Some(hex) = s.strip_prefix("blake3:") else {
        return Err(if s.starts_with("sha256:") {
            "a sha256 is not a tree digest".to_owned()
        } else {
            "no `blake3:` prefix".to_owned()
        });
    };
    if let Some((i, c)) = hex.char_indices().find(|(_, c)| !matches!(c, '0'..='9' | 'a'..='f')) {
        let what = if c.is_ascii_hexdigit() { "a lowercase hex digit" } else { "a hex digit" };
        return Err(format!("`{}` at position {} is not {what}", c.escape_default(), i + 8));
    }
    if hex.len() != 64 {
        return Err(format!("{} hex digits, expected 64", hex.len()));
    }
    Blake3::from_hex(hex).ok_or_else(|| "not a digest".to_owned())
}

/// Checks a git commit id: 40 hex digits.
pub fn check_commit(s: &str) -> Result<CommitId, String> {
    if let Some((i, c)) = s.char_indices().find(|(_, c)| !c.is_ascii_hexdigit()) {
        return Err(format!("`{}` at position {} is not a hex digit", c.escape_default(), i + 1));
    }
    if s.len() != 40 {
        return Err(format!("{} hex digits, expected 40", s.len()));
    }
    CommitId::from_hex(s).ok_or_else(|| "not a commit id".to_owned())
}

/// Checks an output path; returns why it is not acceptable.
pub fn check_output_path(p: &str) -> Result<(), String> {
    if p.is_empty() {
        return Err("empty path".to_owned());
    }
    if p.contains('\0') {
        return Err("contains a NUL byte".to_owned());
    }
    let rel = p.strip_prefix('/').unwrap_or(p);
    if rel.is_empty() {
        return Err("the whole root cannot be an output".to_owned());
    }
    for comp in rel.split('/') {
        match comp {
            "" => return Err("empty component (`//` or a trailing `/`)".to_owned()),
            "." => return Err("`.` component".to_owned()),
            ".." => return Err("`..` component".to_owned()),
            _ => {}
        }
    }
    Ok(())
}

/// Checks a source's `path`: relative to the chain directory, plain
/// components only; returns why it is not acceptable.
pub fn check_chain_path(p: &str) -> Result<(), String> {
    if p.starts_with('/') {
        return Err("an absolute path".to_owned());
    }
    for comp in p.split('/') {
        match comp {
            "" => return Err("empty component (`//` or a trailing `/`)".to_owned()),
            "." => return Err("`.` component".to_owned()),
            ".." => return Err("`..` component: it would leave the chain directory".to_owned()),
            _ => {}
        }
    }
    Ok(())
}

/// The file being read and the problems found so far; its methods check
/// one node or value each (shared with `trust`).
pub(super) struct Cx<'a> {
    pub(super) src: &'a Src,
    pub(super) diags: Vec<D>,
}

/// Arguments and properties of a node, after the generic checks.
pub(super) struct Entries<'n> {
    pub(super) args: Vec<&'n KdlEntry>,
    pub(super) props: HashMap<&'n str, &'n KdlEntry>,
}

impl<'n> Entries<'n> {
    pub(super) fn prop(&self, name: &str) -> Option<&'n KdlEntry> {
        self.props.get(name).copied()
    }
}

/// Which properties a node accepts.
pub(super) enum Props<'s> {
    Only(&'s [&'s str]),
    Any,
}

pub(super) fn sp(span: SourceSpan) -> Span {
    span.into()
}

impl Cx<'_> {
    pub(super) fn src(&self) -> Src {
        self.src.clone()
    }

    /// Generic checks on a node's entries: no type annotations, at most
    /// `max_args` arguments, only known properties, none twice.
    pub(super) fn entries<'n>(&mut self, node: &'n KdlNode, max_args: usize, props: Props<'_>, usage: &str) -> Entries<'n> {
        let name = node.name().value();
        if let Some(ty) = node.ty() {
            self.diags.push(D::TypeAnnotation { src: self.src(), span: ty.span() });
        }
        let mut out = Entries { args: Vec::new(), props: HashMap::new() };
        let mut extra_reported = false;
        for entry in node.entries() {
            if entry.ty().is_some() {
                self.diags.push(D::TypeAnnotation { src: self.src(), span: entry.span() });
            }
            match entry.name() {
                None => {
                    if out.args.len() < max_args {
                        out.args.push(entry);
                    } else if !extra_reported {
                        extra_reported = true;
                        self.diags.push(D::ExtraArgument {
                            src: self.src(),
                            span: entry.span(),
                            node: name.to_owned(),
                            expected: count_words(max_args),
                            help: format!("write it as: {usage}"),
                        });
                    }
                }
                Some(key) => {
                    let key = key.value();
                    if let Props::Only(allowed) = props
                        && !allowed.contains(&key)
                    {
                        let mut help = if allowed.is_empty() {
                            format!("`{name}` takes no properties; write it as: {usage}")
                        } else {
                            format!("`{name}` takes: {}", allowed.join(", "))
                        };
                        if let Some(dym) = did_you_mean(key, allowed.iter().copied()) {
                            help = format!("{dym} {help}");
                        }
                        self.diags.push(D::UnknownProperty {
                            src: self.src(),
                            span: entry.span(),
                            name: key.to_owned(),
                            node: name.to_owned(),
                            help,
                        });
                        continue;
                    }
                    if let Some(first) = out.props.get(key) {
                        self.diags.push(D::RepeatedProperty {
                            src: self.src(),
                            span: entry.span(),
                            first: first.span(),
                            name: key.to_owned(),
                            node: name.to_owned(),
                        });
                    } else {
                        out.props.insert(key, entry);
                    }
                }
            }
        }
        out
    }

    pub(super) fn no_children(&mut self, node: &KdlNode) {
        if node.children().is_some() {
            self.diags.push(D::UnexpectedChildren {
                src: self.src(),
                span: node.span(),
                node: node.name().value().to_owned(),
            });
        }
    }

    /// A leaf node with exactly one argument and the given properties.
    fn leaf<'n>(&mut self, node: &'n KdlNode, props: &[&str], what: &str, usage: &str) -> Option<(&'n KdlEntry, Entries<'n>)> {
        self.no_children(node);
        let e = self.entries(node, 1, Props::Only(props), usage);
        match e.args.first() {
            Some(&arg) => Some((arg, e)),
            None => {
                self.missing_arg(node, what, usage);
                None
            }
        }
    }

    pub(super) fn missing_arg(&mut self, node: &KdlNode, what: &str, usage: &str) {
        self.diags.push(D::MissingArgument {
            src: self.src(),
            span: node.span(),
            node: node.name().value().to_owned(),
            what: what.to_owned(),
            help: format!("write it as: {usage}"),
        });
    }

    pub(super) fn wrong_type(&mut self, entry: &KdlEntry, found: &KdlValue, what: &str, expected: &str, usage: &str) {
        self.diags.push(D::WrongType {
            src: self.src(),
            span: entry.span(),
            what: what.to_owned(),
            expected: expected.to_owned(),
            found: type_name(found).to_owned(),
            help: format!("write it as: {usage}"),
        });
    }

    pub(super) fn string(&mut self, entry: &KdlEntry, what: &str, usage: &str) -> Option<String> {
        match entry.value() {
            // No NUL: an argv, a path or an environment value cannot hold
            // one, so it would only fail later, at run time, as "exited 127".
            KdlValue::String(s) if s.contains('\0') => {
                self.diags.push(D::NulByte { src: self.src(), span: entry.span(), what: what.to_owned() });
                None
            }
            KdlValue::String(s) => Some(s.clone()),
            other => {
                self.wrong_type(entry, other, what, "a string", usage);
                None
            }
        }
    }

    pub(super) fn nonempty_string(&mut self, entry: &KdlEntry, what: &str, usage: &str) -> Option<String> {
        let s = self.string(entry, what, usage)?;
        if s.is_empty() {
            self.diags.push(D::EmptyValue {
                src: self.src(),
                span: entry.span(),
                what: what.to_owned(),
                help: format!("write it as: {usage}"),
            });
            return None;
        }
        Some(s)
    }

    fn leaf_string(&mut self, node: &KdlNode, what: &str, usage: &str) -> Option<(String, Span)> {
        let (arg, _) = self.leaf(node, &[], what, usage)?;
        let s = self.nonempty_string(arg, &format!("the argument of `{}`", node.name().value()), usage)?;
        Some((s, sp(arg.span())))
    }

    pub(super) fn integer(&mut self, entry: &KdlEntry, what: &str, min: i128, max: i128, usage: &str) -> Option<i128> {
        match entry.value() {
            KdlValue::Integer(n) if (min..=max).contains(n) => Some(*n),
            KdlValue::Integer(n) => {
                self.diags.push(D::OutOfRange {
                    src: self.src(),
                    span: entry.span(),
                    what: what.to_owned(),
                    range: format!("between {min} and {max}"),
                    value: n.to_string(),
                    help: format!("write it as: {usage}"),
                });
                None
            }
            other => {
                self.wrong_type(entry, other, what, "an integer", usage);
                None
            }
        }
    }

    pub(super) fn name_of(&mut self, node: &KdlNode, kind: &str, usage: &str) -> Option<Named> {
        let e = node.entries().iter().find(|e| e.name().is_none());
        let Some(entry) = e else {
            self.missing_arg(node, "a name", usage);
            return None;
        };
        let name = self.string(entry, &format!("the name of a {kind}"), usage)?;
        if let Err(reason) = check_name(&name) {
            self.diags.push(D::InvalidName {
                src: self.src(),
                span: entry.span(),
                kind: kind.to_owned(),
                name: name.clone(),
                reason,
            });
        }
        Some(Named { name, span: sp(entry.span()) })
    }

    fn sha256(&mut self, entry: &KdlEntry, usage: &str) -> Option<String> {
        let s = self.string(entry, "a sha256", usage)?;
        match check_sha256(&s) {
            Ok(hex) => Some(hex),
            Err(reason) => {
                self.diags.push(D::MalformedSha256 { src: self.src(), span: entry.span(), reason });
                None
            }
        }
    }

    /// A sha256 pin, typed.
    fn sha256_pin(&mut self, entry: &KdlEntry, usage: &str) -> Option<Sha256> {
        self.sha256(entry, usage).and_then(|hex| Sha256::from_hex(&hex))
    }

    fn absolute(&mut self, node: &KdlNode, usage: &str) -> Option<(String, Span)> {
        let (value, span) = self.leaf_string(node, "a path", usage)?;
        if !value.starts_with('/') {
            self.diags.push(D::RelativePath {
                src: self.src(),
                span: span.into(),
                node: node.name().value().to_owned(),
                value,
            });
            return None;
        }
        Some((value, span))
    }

    /// Checks a URL and expands `{version}`.
    fn url(&mut self, entry: &KdlEntry, version: Option<&str>, usage: &str) -> Option<String> {
        let raw = self.nonempty_string(entry, "a URL", usage)?;
        let span = entry.span();
        let mut out = String::with_capacity(raw.len());
        let mut rest = raw.as_str();
        let mut ok = true;
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            let after = &rest[open + 1..];
            let Some(close) = after.find('}') else {
                self.diags.push(D::MalformedUrl {
                    src: self.src(),
                    span,
                    reason: "unclosed `{`".to_owned(),
                });
                return None;
            };
            let placeholder = &after[..close];
            match (placeholder, version) {
                ("version", Some(v)) => out.push_str(v),
                ("version", None) => {
                    ok = false;
                    self.diags.push(D::BadPlaceholder {
                        src: self.src(),
                        span,
                        placeholder: placeholder.to_owned(),
                        help: "add `version=\"…\"` to the `source` node, or write the version into the URL".to_owned(),
                    });
                }
                _ => {
                    ok = false;
                    self.diags.push(D::BadPlaceholder {
                        src: self.src(),
                        span,
                        placeholder: placeholder.to_owned(),
                        help: "only `{version}` is expanded, from the source's `version` property".to_owned(),
                    });
                }
            }
            rest = &after[close + 1..];
        }
        out.push_str(rest);
        if !ok {
            return None;
        }
        let malformed = |cx: &mut Self, reason: &str| {
            cx.diags.push(D::MalformedUrl { src: cx.src(), span, reason: reason.to_owned() });
        };
        if out.chars().any(|c| c.is_whitespace() || c.is_control()) {
            malformed(self, "contains whitespace or control characters");
            return None;
        }
        let Some((scheme, rest)) = out.split_once("://") else {
            malformed(self, "no scheme (expected http://, https:// or file://)");
            return None;
        };
        match scheme.to_ascii_lowercase().as_str() {
            "http" | "https" => {
                let host = rest.split(['/', '?', '#']).next().unwrap_or("");
                if host.is_empty() || host.starts_with(':') {
                    malformed(self, "no host");
                    return None;
                }
            }
            "file" => {
                if !rest.starts_with('/') {
                    malformed(self, "a file URL needs an absolute path (file:///…)");
                    return None;
                }
            }
            _ => {
                self.diags.push(D::UrlScheme { src: self.src(), span, scheme: scheme.to_owned() });
                return None;
            }
        }
        Some(out)
    }

    pub(super) fn unknown_node(&mut self, node: &KdlNode, context: &str, allowed: &[&str]) {
        let name = node.name().value();
        let mut help = format!("{context} takes: {}", allowed.join(", "));
        if let Some(dym) = did_you_mean(name, allowed.iter().copied()) {
            help = format!("{dym} {help}");
        }
        self.diags.push(D::UnknownNode {
            src: self.src(),
            span: node.name().span(),
            name: name.to_owned(),
            context: context.to_owned(),
            help,
        });
    }

    /// Records a node that may appear once; reports it when seen again.
    pub(super) fn once(&mut self, seen: &mut HashMap<String, SourceSpan>, node: &KdlNode, parent: &str) -> bool {
        let name = node.name().value();
        if let Some(first) = seen.get(name) {
            self.diags.push(D::RepeatedNode {
                src: self.src(),
                span: node.span(),
                first: *first,
                node: name.to_owned(),
                parent: parent.to_owned(),
                help: format!("keep one `{name}`"),
            });
            return false;
        }
        seen.insert(name.to_owned(), node.span());
        true
    }

    fn file(&mut self, kind: FileKind, doc: &KdlDocument) -> FileItems {
        let mut items = FileItems::default();
        let mut chain_seen: HashMap<String, SourceSpan> = HashMap::new();
        for node in doc.nodes() {
            let name = node.name().value();
            let allowed: &[&str] = match kind {
                FileKind::Main => &["chain", "seed", "source"],
                FileKind::Extra => &["seed", "source"],
                FileKind::Stage => &["step", "source"],
            };
            if !allowed.contains(&name) {
                if TOP_LEVEL.contains(&name) {
                    let help = match name {
                        "chain" => "the `chain` node belongs in chain/chain.kdl",
                        "seed" => "seeds belong in chain/chain.kdl (or another file under chain/)",
                        _ => "steps belong in a stage directory, e.g. stage0/NAME.kdl",
                    };
                    self.diags.push(D::MisplacedNode {
                        src: self.src(),
                        span: node.name().span(),
                        name: name.to_owned(),
                        place: kind.place().to_owned(),
                        help: help.to_owned(),
                    });
                } else {
                    self.unknown_node(node, &format!("the top level of {}", kind.place()), allowed);
                }
                continue;
            }
            match name {
                "chain" => {
                    if self.once(&mut chain_seen, node, "chain/chain.kdl") {
                        items.chain = self.chain(node);
                    }
                }
                "seed" => items.seeds.extend(self.seed(node)),
                "source" => items.sources.extend(self.source(node)),
                _ => items.steps.extend(self.step(node)),
            }
        }
        if kind == FileKind::Main && chain_seen.is_empty() {
            self.diags.push(D::NoChainNode { src: self.src(), span: (0, 0).into() });
        }
        items
    }

    fn chain(&mut self, node: &KdlNode) -> Option<ChainDecl> {
        const USAGE: &str = "chain \"NAME\" { arch \"x86_64\"; stage \"stage0\" }";
        self.entries(node, 1, Props::Only(&[]), USAGE);
        let name = self.name_of(node, "chain", USAGE);
        let mut decl = ChainDecl {
            name: name.map(|n| n.name).unwrap_or_default(),
            arch: String::new(),
            source_date_epoch: 0,
            stages: Vec::new(),
            vary: Vec::new(),
            span: sp(node.span()),
        };
        let mut seen = HashMap::new();
        let mut arch_seen = false;
        for child in node.children().map(|c| c.nodes()).unwrap_or_default() {
            let cname = child.name().value();
            match cname {
                "arch" | "source-date-epoch" | "vary" if !self.once(&mut seen, child, "the chain") => {}
                "vary" => {
                    const U: &str = "vary \"build-path\" \"hostname\"";
                    self.no_children(child);
                    for e in child.entries() {
                        let Some(value) = self.string(e, "a variation", U) else { continue };
                        match crate::chain::model::Variation::ALL.iter().find(|v| v.as_str() == value) {
                            Some(v) if !decl.vary.contains(v) => decl.vary.push(*v),
                            Some(_) => {}
                            None => self.diags.push(D::UnknownVariation { src: self.src(), span: e.span(), value }),
                        }
                    }
                    decl.vary.sort();
                }
                "arch" => {
                    arch_seen = true;
                    if let Some((arch, span)) = self.leaf_string(child, "an arch", "arch \"x86_64\"") {
                        if ARCHES.contains(&arch.as_str()) {
                            decl.arch = arch;
                        } else {
                            self.diags.push(D::UnknownArch { src: self.src(), span: span.into(), value: arch });
                        }
                    }
                }
                "source-date-epoch" => {
                    const U: &str = "source-date-epoch 0";
                    if let Some((arg, _)) = self.leaf(child, &[], "a number of seconds", U)
                        && let Some(n) = self.integer(arg, "`source-date-epoch`", 0, i64::MAX as i128, U)
                    {
                        decl.source_date_epoch = n as u64;
                    }
                }
                "stage" => {
                    const U: &str = "stage \"stage0\" description=\"…\"";
                    self.no_children(child);
                    let e = self.entries(child, 1, Props::Only(&["description"]), U);
                    let description = e.prop("description").and_then(|d| self.string(d, "a stage's description", U));
                    if let Some(n) = self.name_of(child, "stage", U) {
                        decl.stages.push(Stage { name: n.name, description, span: sp(child.span()) });
                    }
                }
                _ => self.unknown_node(child, "the chain", CHAIN_CHILDREN),
            }
        }
        if !arch_seen {
            self.missing_child(node, "the chain", "arch", "arch \"x86_64\"");
        }
        if decl.stages.is_empty() {
            self.missing_child(node, "the chain", "stage", "stage \"stage0\" description=\"…\"");
        }
        Some(decl)
    }

    fn missing_child(&mut self, node: &KdlNode, parent: &str, child: &str, usage: &str) {
        self.diags.push(D::MissingNode {
            src: self.src(),
            span: node.span(),
            parent: parent.to_owned(),
            child: child.to_owned(),
            help: format!("add `{usage}` inside its {{ … }} block"),
        });
    }

    fn seed(&mut self, node: &KdlNode) -> Option<Seed> {
        const USAGE: &str = "seed \"NAME\" { rootfs \"URL\" sha256=\"…\" }";
        self.entries(node, 1, Props::Only(&[]), USAGE);
        let name = self.name_of(node, "seed", USAGE)?;
        let mut seed = Seed {
            name: name.name.clone(),
            description: None,
            image: None,
            rootfs: None,
            file: 0,
            span: name.span,
        };
        let mut seen = HashMap::new();
        for child in node.children().map(|c| c.nodes()).unwrap_or_default() {
            let cname = child.name().value();
            if !SEED_CHILDREN.contains(&cname) {
                self.unknown_node(child, "a seed", SEED_CHILDREN);
                continue;
            }
            if !self.once(&mut seen, child, &format!("seed `{}`", seed.name)) {
                continue;
            }
            match cname {
                "description" => seed.description = self.leaf_string(child, "a description", "description \"…\"").map(|d| d.0),
                "image" => {
                    if let Some((image, span)) = self.leaf_string(child, "an image reference", "image \"NAME@sha256:…\"") {
                        let digest = image.rsplit_once("@sha256:").map(|(_, d)| d).or_else(|| image.strip_prefix("sha256:"));
                        if digest.is_some_and(|d| check_sha256(d).is_ok()) {
                            seed.image = Some(image);
                        } else {
                            self.diags.push(D::UnpinnedImage { src: self.src(), span: span.into(), value: image });
                        }
                    }
                }
                _ => {
                    const U: &str = "rootfs \"https://…/rootfs.tar.xz\" sha256=\"…\"";
                    if let Some((arg, e)) = self.leaf(child, &["sha256"], "a URL", U) {
                        let url = self.url(arg, None, U);
                        let sha = match e.prop("sha256") {
                            Some(s) => self.sha256_pin(s, U),
                            None => {
                                self.diags.push(D::MissingProperty {
                                    src: self.src(),
                                    span: child.span(),
                                    node: "rootfs".to_owned(),
                                    property: "sha256".to_owned(),
                                    help: format!("pin the rootfs: {U}"),
                                });
                                None
                            }
                        };
                        if let (Some(url), Some(sha256)) = (url, sha) {
                            seed.rootfs = Some(PinnedUrl { url, sha256 });
                        }
                    }
                }
            }
        }
        Some(seed)
    }

    fn source(&mut self, node: &KdlNode) -> Option<Source> {
        const USAGE: &str = "source \"NAME\" version=\"1.0\" { url \"https://…\"; sha256 \"…\" }";
        let e = self.entries(node, 1, Props::Only(&["version"]), USAGE);
        let version = e.prop("version").and_then(|v| self.nonempty_string(v, "a source's version", USAGE));
        let name = self.name_of(node, "source", USAGE)?;
        let parent = format!("source `{}`", name.name);
        let mut urls = Vec::new();
        let mut sha256 = None;
        let mut tree = None;
        let mut git = None;
        let mut path = None;
        let mut url_seen: Option<SourceSpan> = None;
        let mut unpack: Option<u32> = None;
        // Nodes that may appear once, with where they were first seen.
        let mut seen = HashMap::new();
        for child in node.children().map(|c| c.nodes()).unwrap_or_default() {
            let cname = child.name().value();
            match cname {
                "url" => {
                    url_seen.get_or_insert(child.span());
                    const U: &str = "url \"https://…/NAME-{version}.tar.gz\"";
                    if let Some((arg, _)) = self.leaf(child, &[], "a URL", U) {
                        urls.extend(self.url(arg, version.as_deref(), U));
                    }
                }
                "sha256" | "tree" | "git" | "unpack" | "path" if !self.once(&mut seen, child, &parent) => {}
                "sha256" => {
                    const U: &str = "sha256 \"<64 hex digits>\"";
                    if let Some((arg, _)) = self.leaf(child, &[], "a sha256", U) {
                        sha256 = self.sha256_pin(arg, U);
                    }
                }
                "tree" => {
                    const U: &str = "tree \"blake3:<64 hex digits>\"";
                    if let Some((arg, _)) = self.leaf(child, &[], "a tree digest", U)
                        && let Some(value) = self.string(arg, "a tree digest", U)
                    {
                        match check_tree(&value) {
                            Ok(d) => tree = Some(d),
                            Err(reason) => self.diags.push(D::MalformedTree { src: self.src(), span: arg.span(), reason }),
                        }
                    }
                }
                "git" => git = self.git(child, version.as_deref()),
                "path" => {
                    const U: &str = "path \"stage1/files/NAME\"";
                    if let Some((arg, _)) = self.leaf(child, &[], "a path relative to the chain directory", U)
                        && let Some(value) = self.nonempty_string(arg, "a path", U)
                    {
                        match check_chain_path(&value) {
                            Ok(()) => path = Some(value),
                            Err(reason) => self.diags.push(D::MalformedPath { src: self.src(), span: arg.span(), value, reason }),
                        }
                    }
                }
                "unpack" => {
                    const U: &str = "unpack strip-components=1";
                    self.no_children(child);
                    let e = self.entries(child, 0, Props::Only(&["strip-components"]), U);
                    let strip = match e.prop("strip-components") {
                        Some(s) => self.integer(s, "`strip-components`", 0, 255, U).unwrap_or(0) as u32,
                        None => 0,
                    };
                    unpack = Some(strip);
                }
                _ => self.unknown_node(child, "a source", SOURCE_CHILDREN),
            }
        }
        self.source_rules(node, &name.name, url_seen, unpack.is_some(), &seen);
        // A git checkout is a tree, so a git-only source is one without `unpack`.
        let placement = match unpack {
            Some(strip_components) => Placement::Unpack { strip_components },
            None if seen.contains_key("git") => Placement::Unpack { strip_components: 0 },
            None => Placement::File,
        };
        Some(Source {
            name: name.name.clone(),
            version,
            urls,
            sha256,
            tree,
            git,
            path,
            placement,
            file: 0,
            span: name.span,
        })
    }

    /// `git "URL" commit="<40 hex>" submodules=#true`.
    fn git(&mut self, node: &KdlNode, version: Option<&str>) -> Option<GitLocation> {
        const U: &str = "git \"https://…\" commit=\"<40 hex digits>\" submodules=#true";
        let (arg, e) = self.leaf(node, &["commit", "submodules"], "a repository URL", U)?;
        let url = self.url(arg, version, U);
        let commit = match e.prop("commit") {
            Some(c) => self.string(c, "a commit id", U).and_then(|value| match check_commit(&value) {
                Ok(id) => Some(id),
                Err(reason) => {
                    self.diags.push(D::MalformedCommit { src: self.src(), span: c.span(), reason });
                    None
                }
            }),
            None => {
                self.diags.push(D::MissingProperty {
                    src: self.src(),
                    span: node.span(),
                    node: "git".to_owned(),
                    property: "commit".to_owned(),
                    help: format!("name the commit to check out: {U}"),
                });
                None
            }
        };
        let submodules = match e.prop("submodules") {
            Some(entry) => match entry.value() {
                KdlValue::Bool(b) => *b,
                other => {
                    self.wrong_type(entry, other, "`submodules`", "#true or #false", U);
                    false
                }
            },
            None => false,
        };
        Some(GitLocation { url: url?, commit: commit?, submodules })
    }

    /// How a source's places, pins and placement must fit together (the
    /// nodes were each checked on their own already): somewhere to come
    /// from, a pin, a `tree` for `git`, `tree` only on a tree, and `unpack`
    /// for the URLs of a source that is also a checkout.
    fn source_rules(&mut self, node: &KdlNode, name: &str, url: Option<SourceSpan>, unpack: bool, seen: &HashMap<String, SourceSpan>) {
        let git = seen.get("git").copied();
        let tree = seen.get("tree").copied();
        let path = seen.get("path").copied();
        let sha = seen.contains_key("sha256");
        let span = node.span();
        let url_seen = url.is_some();
        match (path, [url, git].into_iter().flatten().min_by_key(|s| s.offset())) {
            (None, None) => self.diags.push(D::NoLocation { src: self.src(), span, name: name.to_owned() }),
            (Some(path), Some(other_span)) => {
                let other = if Some(other_span) == url { "url" } else { "git" };
                self.diags.push(D::PathAndUrl { src: self.src(), span: path, other_span, other: other.to_owned(), name: name.to_owned() });
            }
            _ => {}
        }
        match (git, tree) {
            (Some(git), None) => self.diags.push(D::GitWithoutTree { src: self.src(), span: git, name: name.to_owned() }),
            (None, None) if !sha => {
                let help = if unpack {
                    "add `sha256 \"<64 hex digits>\"` (the file's bytes, as `sha256sum FILE` prints them) or `tree \"blake3:<64 hex digits>\"` (the unpacked content, as `bootstrap hash DIR` prints it), or both"
                } else {
                    "this source is placed as a file: pin its bytes with `sha256 \"<64 hex digits>\"`, as `sha256sum FILE` prints them"
                };
                self.diags.push(D::NoPin { src: self.src(), span, name: name.to_owned(), help: help.to_owned() });
            }
            (None, Some(tree)) if !unpack => {
                self.diags.push(D::TreeOnFile { src: self.src(), span: tree, name: name.to_owned() });
            }
            _ => {}
        }
        if let Some(git) = git
            && url_seen
            && !unpack
        {
            self.diags.push(D::GitNeedsUnpack { src: self.src(), span, git, name: name.to_owned() });
        }
    }

    fn references(&mut self, node: &KdlNode, kind: &str, step: &str, into: &mut Vec<Named>) {
        let usage = format!("{} \"NAME\" \"NAME2\"", node.name().value());
        self.no_children(node);
        let e = self.entries(node, usize::MAX, Props::Only(&[]), &usage);
        if e.args.is_empty() {
            self.missing_arg(node, "at least one name", &usage);
        }
        for arg in e.args {
            let Some(name) = self.nonempty_string(arg, &format!("a {kind} name"), &usage) else { continue };
            if let Some(first) = into.iter().find(|n| n.name == name) {
                self.diags.push(D::RepeatedReference {
                    src: self.src(),
                    span: arg.span(),
                    first: first.span.into(),
                    step: step.to_owned(),
                    kind: kind.to_owned(),
                    name,
                });
                continue;
            }
            into.push(Named { name, span: sp(arg.span()) });
        }
    }

    fn env(&mut self, node: &KdlNode, step: &str, env: &mut BTreeMap<String, String>, spans: &mut HashMap<String, SourceSpan>) {
        const U: &str = "env KEY=\"value\"";
        self.no_children(node);
        let e = self.entries(node, 0, Props::Any, U);
        if e.props.is_empty() {
            self.missing_arg(node, "at least one KEY=\"value\"", U);
        }
        // Keep the order written, so diagnostics come in file order.
        let mut props: Vec<_> = e.props.into_iter().collect();
        props.sort_by_key(|(_, entry)| entry.span().offset());
        for (key, entry) in props {
            let valid = key
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                self.diags.push(D::InvalidEnvName { src: self.src(), span: entry.span(), name: key.to_owned() });
                continue;
            }
            if RESERVED_ENV.contains(&key) {
                self.diags.push(D::ReservedEnv { src: self.src(), span: entry.span(), name: key.to_owned() });
                continue;
            }
            let Some(value) = self.string(entry, &format!("the value of `{key}`"), U) else { continue };
            if let Some(first) = spans.get(key) {
                self.diags.push(D::DuplicateEnv {
                    src: self.src(),
                    span: entry.span(),
                    first: *first,
                    name: key.to_owned(),
                    step: step.to_owned(),
                });
                continue;
            }
            spans.insert(key.to_owned(), entry.span());
            env.insert(key.to_owned(), value);
        }
    }

    fn step(&mut self, node: &KdlNode) -> Option<Step> {
        const USAGE: &str = "step \"NAME\" { run \"PROGRAM\" \"ARG\"; output \"PATH\" }";
        self.entries(node, 1, Props::Only(&[]), USAGE);
        let name = self.name_of(node, "step", USAGE)?;
        let step_name = name.name.clone();
        let parent = format!("step `{step_name}`");
        let mut step = Step {
            name: name.name.clone(),
            stage: super::model::StageId::unset(),
            file: 0,
            span: name.span,
            node: sp(node.span()),
            description: None,
            root: Root::Scratch,
            sources: Vec::new(),
            needs: Vec::new(),
            workdir: None,
            destdir: None,
            env: BTreeMap::new(),
            command: Command::Run(Vec::new()),
            timeout_secs: None,
            outputs: Vec::new(),
            unverified: false,
        };
        let mut runs: Vec<Vec<String>> = Vec::new();
        let mut first_run: Option<SourceSpan> = None;
        let mut script: Option<(String, SourceSpan)> = None;
        let mut shell: Option<(String, SourceSpan)> = None;
        let mut interpreter: Option<Vec<String>> = None;
        let mut seen = HashMap::new();
        let mut env_spans = HashMap::new();
        let mut output_spans: HashMap<String, SourceSpan> = HashMap::new();
        let mut outputs: Vec<(Output, SourceSpan)> = Vec::new();
        let mut destdir: Option<(String, Span)> = None;
        for child in node.children().map(|c| c.nodes()).unwrap_or_default() {
            let cname = child.name().value();
            if !STEP_CHILDREN.contains(&cname) {
                self.unknown_node(child, "a step", STEP_CHILDREN);
                continue;
            }
            let repeatable = matches!(cname, "source" | "needs" | "env" | "run" | "output");
            if !repeatable && !self.once(&mut seen, child, &parent) {
                continue;
            }
            match cname {
                "description" => step.description = self.leaf_string(child, "a description", "description \"…\"").map(|d| d.0),
                "root" => {
                    if let Some((root, span)) = self.leaf_string(child, "\"scratch\" or \"seed\"", "root \"scratch\"") {
                        match root.as_str() {
                            "scratch" => step.root = Root::Scratch,
                            "seed" => step.root = Root::Seed,
                            _ => self.diags.push(D::InvalidRoot { src: self.src(), span: span.into(), value: root }),
                        }
                    }
                }
                "source" => self.references(child, "source", &step_name, &mut step.sources),
                "needs" => self.references(child, "need", &step_name, &mut step.needs),
                "workdir" => step.workdir = self.absolute(child, "workdir \"/src/NAME\"").map(|w| w.0),
                "destdir" => {
                    if let Some((dir, span)) = self.absolute(child, "destdir \"/destdir\"") {
                        match check_output_path(&dir) {
                            Ok(()) => destdir = Some((dir, span)),
                            Err(reason) => self.diags.push(D::InvalidDestdir { src: self.src(), span: span.into(), value: dir, reason }),
                        }
                    }
                }
                "env" => self.env(child, &step_name, &mut step.env, &mut env_spans),
                "timeout" => {
                    const U: &str = "timeout \"10m\"";
                    if let Some((arg, _)) = self.leaf(child, &[], "a duration", U)
                        && let Some(value) = self.string(arg, "the argument of `timeout`", U)
                    {
                        match parse_duration(&value) {
                            Ok(secs) => step.timeout_secs = Some(secs),
                            Err(reason) => self.diags.push(D::MalformedTimeout {
                                src: self.src(),
                                span: arg.span(),
                                value,
                                reason,
                            }),
                        }
                    }
                }
                "run" => {
                    const U: &str = "run \"PROGRAM\" \"ARG\" …";
                    self.no_children(child);
                    let e = self.entries(child, usize::MAX, Props::Only(&[]), U);
                    if e.args.is_empty() {
                        self.missing_arg(child, "a program to run", U);
                    }
                    first_run.get_or_insert(child.span());
                    let argv: Vec<String> = e
                        .args
                        .iter()
                        .enumerate()
                        .filter_map(|(i, a)| {
                            if i == 0 {
                                self.nonempty_string(a, "the program of `run`", U)
                            } else {
                                self.string(a, "an argument of `run`", U)
                            }
                        })
                        .collect();
                    if argv.len() == e.args.len() && !argv.is_empty() {
                        runs.push(argv);
                    }
                }
                "script" => {
                    let s = self.leaf(child, &[], "a script", "script #\"\"\"…\"\"\"#");
                    if let Some((arg, _)) = s
                        && let Some(text) = self.nonempty_string(arg, "the script", "script #\"\"\"…\"\"\"#")
                    {
                        script = Some((text, child.span()));
                    }
                }
                "shell" => shell = self.absolute(child, "shell \"/bin/sh\"").map(|(s, _)| (s, child.span())),
                "interpreter" => interpreter = self.interpreter(child),
                "output" => {
                    const U: &str = "output \"PATH\" sha256=\"…\"";
                    let Some((arg, e)) = self.leaf(child, &["sha256"], "a path", U) else { continue };
                    let Some(path) = self.string(arg, "an output path", U) else { continue };
                    if let Err(reason) = check_output_path(&path) {
                        self.diags.push(D::InvalidOutput { src: self.src(), span: arg.span(), value: path, reason });
                        continue;
                    }
                    let sha256 = e.prop("sha256").and_then(|s| self.sha256_pin(s, U));
                    outputs.push((Output { path, sha256, span: sp(child.span()) }, child.span()));
                }
                _ => {
                    const U: &str = "unverified #true";
                    if let Some((arg, _)) = self.leaf(child, &[], "#true or #false", U) {
                        match arg.value() {
                            KdlValue::Bool(b) => step.unverified = *b,
                            other => self.wrong_type(arg, other, "the argument of `unverified`", "#true or #false", U),
                        }
                    }
                }
            }
        }
        if let Some((dir, dspan)) = destdir {
            for (output, span) in &outputs {
                if !output.path.starts_with('/') {
                    self.diags.push(D::RelativeOutputWithDestdir {
                        src: self.src(),
                        span: *span,
                        destdir: dspan.into(),
                        value: output.path.clone(),
                        step: step_name.clone(),
                    });
                }
            }
            step.destdir = Some(dir);
        }
        // Two outputs collide when they name the same path in the sandbox.
        let workdir = step.workdir.clone().unwrap_or_else(|| "/".to_owned());
        for (output, span) in outputs {
            let effective = if output.path.starts_with('/') {
                output.path.clone()
            } else {
                format!("{}/{}", workdir.trim_end_matches('/'), output.path)
            };
            if let Some(first) = output_spans.get(&effective) {
                self.diags.push(D::DuplicateOutput {
                    src: self.src(),
                    span,
                    first: *first,
                    path: output.path.clone(),
                    step: step_name.clone(),
                });
                continue;
            }
            output_spans.insert(effective, span);
            step.outputs.push(output);
        }
        let has_script = script.is_some();
        match (first_run, script) {
            (Some(run), Some((_, script_span))) => {
                self.diags.push(D::RunAndScript { src: self.src(), span: script_span, run, step: step_name.clone() });
            }
            (None, Some((script, _))) => match interpreter {
                // A file of lines ends in a line break: a KDL multi-line
                // string has none after its last line, and kaem ignores a
                // last line without one.
                Some(interpreter) => {
                    let script = if script.ends_with('\n') { script } else { script + "\n" };
                    step.command = Command::Interpreted { script, interpreter };
                }
                None => {
                    let shell = shell.take().map_or_else(|| DEFAULT_SHELL.to_owned(), |s| s.0);
                    step.command = Command::Script { script, shell };
                }
            },
            (Some(_), None) => step.command = Command::Run(runs),
            (None, None) if !seen.contains_key("script") => {
                self.diags.push(D::NoCommand { src: self.src(), span: node.span(), step: step_name.clone() });
            }
            (None, None) => {}
        }
        if let (Some((_, span)), false) = (shell, has_script) {
            self.diags.push(D::ShellWithoutScript { src: self.src(), span, step: step_name.clone() });
        }
        // By the nodes written, valid or not: one mistake, one diagnostic.
        if let Some(&span) = seen.get("interpreter") {
            if !seen.contains_key("script") {
                self.diags.push(D::InterpreterWithoutScript { src: self.src(), span, step: step_name.clone() });
            }
            if let Some(&shell) = seen.get("shell") {
                self.diags.push(D::InterpreterAndShell { src: self.src(), span, shell, step: step_name.clone() });
            }
        }
        Some(step)
    }

    /// `interpreter "/ABSOLUTE/PROGRAM" "ARG" …`: the argv a script's file
    /// is appended to.
    fn interpreter(&mut self, node: &KdlNode) -> Option<Vec<String>> {
        const U: &str = "interpreter \"/src/stage0-posix/AMD64/bin/kaem\" \"--file\"";
        self.no_children(node);
        let e = self.entries(node, usize::MAX, Props::Only(&[]), U);
        if e.args.is_empty() {
            self.missing_arg(node, "the interpreter's absolute path", U);
            return None;
        }
        let mut argv = Vec::with_capacity(e.args.len());
        for (i, a) in e.args.iter().enumerate() {
            if i > 0 {
                argv.extend(self.string(a, "an argument of `interpreter`", U));
                continue;
            }
            let Some(program) = self.nonempty_string(a, "the program of `interpreter`", U) else { continue };
            if !program.starts_with('/') {
                self.diags.push(D::RelativeInterpreter { src: self.src(), span: a.span(), value: program });
                continue;
            }
            argv.push(program);
        }
        (argv.len() == e.args.len()).then_some(argv)
    }
}
