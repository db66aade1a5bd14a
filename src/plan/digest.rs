//! Definition digests: the part of a step's input digest that comes from
//! the chain alone (DESIGN §4).
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
//! | `format` | `bootstrap-definition-v1` |
//! | `contract` | the sandbox contract version, decimal ([`SANDBOX_CONTRACT_VERSION`]) |
//! | `arch` | the chain's arch |
//! | `source-date-epoch` | decimal |
//! | `name` | the step's name |
//! | `root` | `scratch` or `seed` |
//! | `workdir` | the workdir, or empty when not given |
//! | `env-count`, then `env-key` and `env-value` per variable | sorted by key |
//! | `command` | `run` or `script` |
//! | for `run`: `argv-count`, then per argv `arg-count` and one `arg` per argument | in order |
//! | for `script`: `shell`, `script` | |
//! | `source-count`, then per source `source-name`, `source-sha256`, `source-placement` | in the order written; placement is `file` or `unpack:<strip-components>` |
//! | `needs-count`, then one `needs` per need holding that step's definition digest string | in the order written (the order of the overlay) |
//! | `output-count`, then one `output` per declared path, as written | in order |
//!
//! Descriptions, timeouts, URLs, versions, pinned output hashes, the
//! `unverified` marker, comments, formatting and which file a step is in do
//! not enter the digest: none of them changes the bytes a step produces.

use crate::chain::{Chain, Command, Placement, Step};

/// Version of the sandbox contract (DESIGN §3) that digests are made under.
pub const SANDBOX_CONTRACT_VERSION: u32 = 1;

struct Canon(blake3::Hasher);

impl Canon {
    fn field(&mut self, tag: &str, value: &[u8]) {
        self.0.update(tag.as_bytes());
        self.0.update(&[0]);
        self.0.update(&(value.len() as u64).to_le_bytes());
        self.0.update(value);
    }

    fn count(&mut self, tag: &str, n: usize) {
        self.field(tag, n.to_string().as_bytes());
    }
}

/// The definition digest of `step`, given the digests of the steps it needs
/// (looked up by step index in `need_digests`).
pub fn definition_digest(chain: &Chain, step: &Step, need_digests: &[String]) -> String {
    let mut c = Canon(blake3::Hasher::new());
    c.field("format", b"bootstrap-definition-v1");
    c.field("contract", SANDBOX_CONTRACT_VERSION.to_string().as_bytes());
    c.field("arch", chain.decl.arch.as_bytes());
    c.field("source-date-epoch", chain.decl.source_date_epoch.to_string().as_bytes());
    c.field("name", step.name.as_bytes());
    c.field("root", step.root.as_str().as_bytes());
    c.field("workdir", step.workdir.as_deref().unwrap_or("").as_bytes());
    c.count("env-count", step.env.len());
    for (k, v) in &step.env {
        c.field("env-key", k.as_bytes());
        c.field("env-value", v.as_bytes());
    }
    match &step.command {
        Command::Run(argvs) => {
            c.field("command", b"run");
            c.count("argv-count", argvs.len());
            for argv in argvs {
                c.count("arg-count", argv.len());
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
    }
    c.count("source-count", step.sources.len());
    for used in &step.sources {
        // The chain's invariants guarantee the source exists.
        if let Some(source) = chain.source(&used.name) {
            c.field("source-name", source.name.as_bytes());
            c.field("source-sha256", source.sha256.as_bytes());
            let placement = match source.placement {
                Placement::File => "file".to_owned(),
                Placement::Unpack { strip_components } => format!("unpack:{strip_components}"),
            };
            c.field("source-placement", placement.as_bytes());
        }
    }
    c.count("needs-count", step.needs.len());
    for need in &step.needs {
        if let Some(id) = chain.step_id(&need.name) {
            c.field("needs", need_digests[id].as_bytes());
        }
    }
    c.count("output-count", step.outputs.len());
    for output in &step.outputs {
        c.field("output", output.path.as_bytes());
    }
    format!("blake3:{}", c.0.finalize().to_hex())
}
