//! Definition digests: the part of a step's input digest that comes from
//! the chain alone (ARCHITECTURE.md §4).
//!
//! # Encoding
//!
//! The digest is `blake3:` followed by the lowercase hex BLAKE3 of a byte
//! string built from *fields*. A field is its tag (ASCII), one `0x00` byte,
//! the value's length as an unsigned 64-bit little-endian integer, and the
//! value's bytes; a list is a `…-count` field holding the count as decimal
//! ASCII followed by one field per item. The fields, in this order:
//!
//! | tag | value |
//! |---|---|
//! | `format` | `bootstrap-definition-v2` |
//! | `contract` | the sandbox contract version, decimal ([`SANDBOX_CONTRACT_VERSION`]) |
//! | `arch` | the chain's arch |
//! | `source-date-epoch` | decimal |
//! | `name` | the step's name |
//! | `root` | `scratch` or `seed` |
//! | `workdir` | the workdir, or empty when not given |
//! | `env-count`, then `env-key` and `env-value` per variable | sorted by key |
//! | `command` | `run`, `script` or `interpreted` |
//! | for `run`: `argv-count`, then per argv `arg-count` and one `arg` per argument | in order |
//! | for `script`: `shell`, `script` | |
//! | for `interpreted`: `arg-count` and one `arg` per argument of the interpreter's argv, then `script` | in order |
//! | `source-count`, then per source `source-name`, `source-content`, `source-placement` | in the order written; see below |
//! | `needs-count`, then one `needs` per need holding that step's definition digest string | in the order written (the order of the overlay) |
//! | `output-count`, then one `output` per declared path, as written | in order |
//!
//! A source enters by the identity of its content as the chain pins it:
//!
//! | the source | `source-content` | `source-placement` |
//! |---|---|---|
//! | placed as a tree, with a `tree` pin | the pin, `blake3:<hex>` | `tree` |
//! | placed as a tree, pinned by `sha256` only | the pin, `sha256:<hex>` | `unpack:<strip-components>` |
//! | placed as a file | the `sha256` pin, `sha256:<hex>` | `file` |
//!
//! So a tree-pinned source's URLs, git repository and archive format do not
//! enter (the same files from another place are the same input), nor does
//! its `sha256` pin when it also has a `tree` pin.
//!
//! Descriptions, timeouts, URLs, git locations, versions, pinned output
//! hashes, the `unverified` marker, comments, formatting and which file a
//! step is in do not enter the digest: none of them changes the bytes a
//! step produces.

use crate::chain::{Chain, Command, Placement, Source, StepId};
use crate::hash::Blake3;

/// Version of the sandbox contract (ARCHITECTURE.md §3) that digests are made under.
pub const SANDBOX_CONTRACT_VERSION: u32 = 1;

/// Builds a canonical byte string of fields (see the module doc); one
/// buffer is reused across steps. The input digest uses it too.
pub(crate) struct Canon<'b>(pub(crate) &'b mut Vec<u8>);

impl Canon<'_> {
    /// Appends one field: tag, NUL, length (u64 LE), value.
    pub(crate) fn field(&mut self, tag: &str, value: &[u8]) {
        self.0.extend_from_slice(tag.as_bytes());
        self.0.push(0);
        self.0.extend_from_slice(&(value.len() as u64).to_le_bytes());
        self.0.extend_from_slice(value);
    }

    /// Appends a field holding `n` in decimal ASCII.
    pub(crate) fn number(&mut self, tag: &str, n: u64) {
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        let mut n = n;
        loop {
            i -= 1;
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        self.field(tag, &digits[i..]);
    }
}

/// The definition digest of step `id` of `chain`, given the digests of all
/// steps by [`StepId::index`] (those of its needs must be filled in). `buf`
/// is scratch space, reused across calls.
pub fn definition_digest(chain: &Chain, id: StepId, digests: &[Blake3], buf: &mut Vec<u8>) -> Blake3 {
    let step = chain.step(id);
    buf.clear();
    let mut c = Canon(buf);
    c.field("format", b"bootstrap-definition-v2");
    c.number("contract", u64::from(SANDBOX_CONTRACT_VERSION));
    c.field("arch", chain.decl.arch.as_bytes());
    c.number("source-date-epoch", chain.decl.source_date_epoch);
    c.field("name", step.name.as_bytes());
    c.field("root", step.root.as_str().as_bytes());
    c.field("workdir", step.workdir.as_deref().unwrap_or("").as_bytes());
    // Only present when set, so steps without one keep their digests.
    if let Some(d) = &step.destdir {
        c.field("destdir", d.as_bytes());
    }
    c.number("env-count", step.env.len() as u64);
    for (k, v) in &step.env {
        c.field("env-key", k.as_bytes());
        c.field("env-value", v.as_bytes());
    }
    match &step.command {
        Command::Run(argvs) => {
            c.field("command", b"run");
            c.number("argv-count", argvs.len() as u64);
            for argv in argvs {
                c.number("arg-count", argv.len() as u64);
                for arg in argv {
                    c.field("arg", arg.as_bytes());
                }
            }
        }
        Command::Script { script, shell } => {
            c.field("command", b"script");
            c.field("shell", shell.as_bytes());
            c.field("script", script.as_bytes());
        }
        Command::Interpreted { script, interpreter } => {
            c.field("command", b"interpreted");
            c.number("arg-count", interpreter.len() as u64);
            for arg in interpreter {
                c.field("arg", arg.as_bytes());
            }
            c.field("script", script.as_bytes());
        }
    }
    c.number("source-count", step.sources.len() as u64);
    for &k in chain.source_ids_of(id) {
        let source = chain.source_by_id(k);
        let (content, placement) = pinned_content(source);
        c.field("source-name", source.name.as_bytes());
        c.field("source-content", content.as_bytes());
        c.field("source-placement", placement.as_bytes());
    }
    let needs = chain.needs_of(id);
    c.number("needs-count", needs.len() as u64);
    for &j in needs {
        c.field("needs", digests[j.index()].to_string().as_bytes());
    }
    c.number("output-count", step.outputs.len() as u64);
    for output in &step.outputs {
        c.field("output", output.path.as_bytes());
    }
    Blake3(*blake3::hash(buf).as_bytes())
}

/// A source's content identity as the chain pins it, and its placement
/// (see the module doc).
fn pinned_content(source: &Source) -> (String, String) {
    match (source.placement, source.tree, source.sha256) {
        (Placement::Unpack { .. }, Some(tree), _) => (tree.to_string(), "tree".to_string()),
        (Placement::Unpack { strip_components }, None, Some(sha)) => (sha.to_string(), format!("unpack:{strip_components}")),
        (Placement::File, _, Some(sha)) => (sha.to_string(), "file".to_string()),
        // Never in a loaded chain: the loader refuses a source without a
        // pin (`no_pin`) and a tree pin on a file (`tree_on_file`).
        (Placement::File, _, None) | (Placement::Unpack { .. }, None, None) => ("unpinned".to_string(), "unpinned".to_string()),
    }
}
