//! Stage snapshots (ARCHITECTURE.md §6): `snapshots/STAGE.kdl` in the chain
//! directory, the file maintainers sign.
//!
//! ```kdl
//! // bootstrap snapshot: the verified outputs of stage "stage0" of chain "mini".
//! snapshot "stage0" chain="mini" definition="blake3:…" {
//!     step "hello-run" tree="blake3:…" {
//!         file "out/hello.txt" sha256="…"
//!         symlink "out/link" target="hello.txt"
//!     }
//! }
//! ```
//!
//! Steps are sorted by name and entries in tree (byte) order, and nothing
//! depends on the seeds, the time or the machine, so the same verified
//! results always give the same bytes. Directories are not listed (the tree
//! digest covers them). Paths that are not UTF-8 are written lossily; the
//! tree digest still pins the exact bytes.

use std::path::{Path, PathBuf};

use miette::{Diagnostic, NamedSource, SourceSpan};
use thiserror::Error;

use crate::chain::edit::quote;
use crate::hash::Blake3;
use crate::store::receipt::{FileKind, FileRecord};

/// One step of a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotStep {
    /// The step.
    pub name: String,
    /// Its output tree digest.
    pub tree: Blake3,
    /// Its regular files and symlinks, in tree order: path and `file`
    /// sha256 hex, or `symlink` target.
    pub entries: Vec<SnapshotEntry>,
}

/// A file or symlink of a step's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotEntry {
    /// A regular file and its sha256 (hex).
    File(String, String),
    /// A symlink and its target.
    Symlink(String, String),
}

/// A stage snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The stage.
    pub stage: String,
    /// The chain's name.
    pub chain: String,
    /// The stage's definition digest when it was verified.
    pub definition: crate::hash::Blake3,
    /// The steps, sorted by name.
    pub steps: Vec<SnapshotStep>,
}

/// The snapshot file of `stage` in the chain directory `dir`.
pub fn path(dir: &Path, stage: &str) -> PathBuf {
    dir.join("snapshots").join(format!("{stage}.kdl"))
}

/// BLAKE3 of the snapshot file of `stage` as it is now, if there is one.
pub fn file_digest(dir: &Path, stage: &str) -> Option<String> {
    std::fs::read(path(dir, stage)).ok().map(|b| format!("blake3:{}", blake3::hash(&b).to_hex()))
}

impl SnapshotEntry {
    /// The entries of a receipt's file list (files and symlinks).
    pub fn of(files: &[FileRecord]) -> Vec<SnapshotEntry> {
        files
            .iter()
            .filter_map(|f| match f.kind {
                FileKind::File => f.sha256.map(|s| SnapshotEntry::File(f.path.clone(), s.hex())),
                FileKind::Symlink => f.target.clone().map(|t| SnapshotEntry::Symlink(f.path.clone(), t)),
                FileKind::Dir => None,
            })
            .collect()
    }
}

impl Snapshot {
    /// The file's bytes (see the module doc).
    pub fn render(&self) -> String {
        let mut out = format!(
            "// bootstrap snapshot: the verified outputs of stage {} of chain {}.\n// Written by `bootstrap snapshot {}`; this is the file to sign.\n",
            quote(&self.stage),
            quote(&self.chain),
            self.stage
        );
        out.push_str(&format!(
            "snapshot {} chain={} definition={} {{\n",
            quote(&self.stage),
            quote(&self.chain),
            quote(&self.definition.to_string())
        ));
        for step in &self.steps {
            out.push_str(&format!("    step {} tree={} {{\n", quote(&step.name), quote(&step.tree.to_string())));
            for e in &step.entries {
                match e {
                    SnapshotEntry::File(p, sha) => out.push_str(&format!("        file {} sha256={}\n", quote(p), quote(sha))),
                    SnapshotEntry::Symlink(p, t) => {
                        out.push_str(&format!("        symlink {} target={}\n", quote(p), quote(t)))
                    }
                }
            }
            out.push_str("    }\n");
        }
        out.push_str("}\n");
        out
    }

    /// The step called `name`.
    pub fn step(&self, name: &str) -> Option<&SnapshotStep> {
        self.steps.iter().find(|s| s.name == name)
    }

    /// Reads the snapshot of `stage` from the chain directory; `Ok(None)`
    /// when there is none.
    pub fn read(dir: &Path, stage: &str) -> Result<Option<Snapshot>, SnapshotError> {
        let p = path(dir, stage);
        let text = match std::fs::read_to_string(&p) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(SnapshotError::Io { path: p, message: e.to_string() }),
        };
        parse(&format!("snapshots/{stage}.kdl"), &text).map(Some)
    }

    /// Parses the bytes of `snapshots/STAGE.kdl` (read by the caller, e.g.
    /// to sign or check exactly those bytes).
    pub fn parse(stage: &str, bytes: &[u8]) -> Result<Snapshot, SnapshotError> {
        let shown = format!("snapshots/{stage}.kdl");
        let text = std::str::from_utf8(bytes)
            .map_err(|e| SnapshotError::Io { path: PathBuf::from(&shown), message: format!("not UTF-8 text ({e})") })?;
        parse(&shown, text)
    }
}

/// A snapshot file that cannot be used.
#[derive(Debug, Error, Diagnostic)]
pub enum SnapshotError {
    /// It could not be read.
    #[error("cannot read {}: {message}", path.display())]
    #[diagnostic(code(bootstrap::snapshot::io), help("check the file's permissions"))]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        message: String,
    },
    /// It is not a snapshot this engine wrote.
    #[error("{file}: {message}")]
    #[diagnostic(
        code(bootstrap::snapshot::malformed),
        help("snapshot files are written by `bootstrap snapshot STAGE`; restore it from version control or write it again")
    )]
    Malformed {
        /// The file, relative to the chain directory.
        file: String,
        /// What is wrong.
        message: String,
        /// The text.
        #[source_code]
        src: NamedSource<String>,
        /// Where.
        #[label("here")]
        span: SourceSpan,
    },
}

fn parse(file: &str, text: &str) -> Result<Snapshot, SnapshotError> {
    let bad = |message: String, span: SourceSpan| SnapshotError::Malformed {
        file: file.to_string(),
        message,
        src: NamedSource::new(file, text.to_string()),
        span,
    };
    let doc: kdl::KdlDocument = text.parse().map_err(|e: kdl::KdlError| {
        let span = e.diagnostics.first().map_or(SourceSpan::from((0, 0)), |d| d.span);
        let message = e.diagnostics.first().and_then(|d| d.message.clone()).unwrap_or_else(|| "not valid KDL".to_string());
        bad(format!("not valid KDL: {message}"), span)
    })?;
    let arg = |n: &kdl::KdlNode, what: &str| -> Result<String, SnapshotError> {
        n.entries()
            .iter()
            .find(|e| e.name().is_none())
            .and_then(|e| e.value().as_string())
            .map(str::to_string)
            .ok_or_else(|| bad(format!("`{}` needs its {what} as a string", n.name().value()), n.span()))
    };
    let prop = |n: &kdl::KdlNode, key: &str| -> Result<String, SnapshotError> {
        n.get(key)
            .and_then(|v| v.as_string())
            .map(str::to_string)
            .ok_or_else(|| bad(format!("`{}` needs `{key}=\"…\"`", n.name().value()), n.span()))
    };
    let nodes = doc.nodes();
    let [top] = nodes else {
        return Err(bad("a snapshot file holds exactly one `snapshot` node".into(), doc.span()));
    };
    if top.name().value() != "snapshot" {
        return Err(bad(format!("expected `snapshot`, found `{}`", top.name().value()), top.span()));
    }
    let definition_text = prop(top, "definition")?;
    let definition = definition_text.parse().map_err(|_| bad(format!("`{definition_text}` is not a blake3 digest"), top.span()))?;
    let mut snap = Snapshot {
        stage: arg(top, "stage name")?,
        chain: prop(top, "chain")?,
        definition,
        steps: Vec::new(),
    };
    for n in top.children().map(|c| c.nodes()).unwrap_or_default() {
        if n.name().value() != "step" {
            return Err(bad(format!("expected `step`, found `{}`", n.name().value()), n.span()));
        }
        let tree_text = prop(n, "tree")?;
        let tree: Blake3 = tree_text.parse().map_err(|_| bad(format!("`{tree_text}` is not a blake3 digest"), n.span()))?;
        let mut step = SnapshotStep { name: arg(n, "step name")?, tree, entries: Vec::new() };
        for e in n.children().map(|c| c.nodes()).unwrap_or_default() {
            let entry = match e.name().value() {
                "file" => SnapshotEntry::File(arg(e, "path")?, prop(e, "sha256")?),
                "symlink" => SnapshotEntry::Symlink(arg(e, "path")?, prop(e, "target")?),
                other => return Err(bad(format!("expected `file` or `symlink`, found `{other}`"), e.span())),
            };
            step.entries.push(entry);
        }
        snap.steps.push(step);
    }
    Ok(snap)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_then_parse_gives_the_same_snapshot() {
        let snap = Snapshot {
            stage: "stage0".into(),
            chain: "mini".into(),
            definition: crate::hash::Blake3([0; 32]),
            steps: vec![SnapshotStep {
                name: "a".into(),
                tree: Blake3([7; 32]),
                entries: vec![
                    SnapshotEntry::File("out/we\"ird\\name\n".into(), "ab".repeat(32)),
                    SnapshotEntry::Symlink("out/l".into(), "../x".into()),
                ],
            }],
        };
        let text = snap.render();
        assert_eq!(parse("s.kdl", &text).unwrap(), snap);
        assert!(matches!(parse("s.kdl", "snapshot \"x\" {"), Err(SnapshotError::Malformed { .. })));
    }
}
