//! Step receipts (ARCHITECTURE.md §4): what one step did on one seed, kept as JSON
//! under `receipts/steps/<step>/<seed>/<input digest hex>.json`.
//!
//! A receipt is written (atomically) after every run, succeeded or not, and
//! is the build cache: a step whose input digest has a receipt with status
//! `succeeded` and whose output layer is still in the store is not run
//! again. Receipts hold every digest they depend on as a string, which is
//! what keeps those objects alive through `store gc`.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{Store, StoreError};
use crate::chain::Pin;
use crate::hash::{Blake3, EntryKind, Sha256, Tree};

/// The `format` of receipts this engine writes and reads.
pub const RECEIPT_FORMAT: &str = "bootstrap-receipt-v2";

/// The seed a step ran on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeedRef {
    /// The seed's name in the chain.
    pub name: String,
    /// Tree digest of its root filesystem (devices, fifos and sockets left
    /// out), or the image ID of a seed run as an image.
    pub digest: crate::hash::SeedId,
    /// Where it came from: a directory or tarball given with `--seed`, or the chain's rootfs URL.
    pub origin: String,
}

/// A source a step mounted: what it was (the content that entered the
/// input digest), which pin it matched and where its bytes came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceRef {
    /// The source's name (`/src/<name>`).
    pub name: String,
    /// Which pin its content matched.
    pub pin: Pin,
    /// `file` (the file itself) or `tree` (a layer: an unpacked archive or a git checkout).
    pub placement: String,
    /// The sha256 of the file mounted, or of the archive the layer was
    /// unpacked from, when known (a git checkout has none).
    pub sha256: Option<Sha256>,
    /// The layer mounted, for a tree.
    pub layer: Option<Blake3>,
    /// Where its bytes came from when they first entered the store: the
    /// URL, the distfiles path, or `git URL@COMMIT`.
    pub from: String,
}

/// A needed step's output, as overlaid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NeedRef {
    /// The needed step.
    pub step: String,
    /// The tree digest of its output on this seed.
    pub output: Blake3,
}

/// How the run ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RunStatus {
    /// Every command exited 0 and every output was captured.
    Succeeded,
    /// Command `command` (from 0) exited with `code`.
    Exited {
        /// Which command.
        command: usize,
        /// Its exit code.
        code: i32,
    },
    /// Command `command` was killed by `signal`.
    Signaled {
        /// Which command.
        command: usize,
        /// The signal.
        signal: i32,
    },
    /// Killed at the step's timeout.
    TimedOut {
        /// The timeout, in seconds.
        after_secs: u64,
    },
    /// A declared output could not be captured.
    BadOutput {
        /// The output as declared.
        path: String,
        /// Why.
        reason: String,
    },
    /// Killed because the state directory's filesystem fell below the free
    /// space every step must leave (`--min-free-space`).
    LowOnSpace {
        /// The bytes that had to stay free.
        min_free: u64,
    },
    /// Killed because it wrote more than `--max-scratch-size` over its inputs.
    ScratchFull {
        /// The limit, in bytes.
        limit: u64,
    },
}

/// What an entry of a layer is, as receipts and reports name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink,
}

impl FileKind {
    /// The word.
    pub fn as_str(self) -> &'static str {
        match self {
            FileKind::File => "file",
            FileKind::Dir => "dir",
            FileKind::Symlink => "symlink",
        }
    }
}

/// One entry of the output layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRecord {
    /// Path inside the layer (relative to the sandbox root), lossy UTF-8.
    pub path: String,
    /// `file`, `dir` or `symlink`.
    pub kind: FileKind,
    /// Normalised mode, octal.
    pub mode: String,
    /// Size in bytes (files).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub size: Option<u64>,
    /// sha256 of the contents (files).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub sha256: Option<Sha256>,
    /// BLAKE3 of the contents (files).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub blake3: Option<Blake3>,
    /// Link target (symlinks), lossy UTF-8.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub target: Option<String>,
}

impl FileRecord {
    /// The records of every entry of a tree, in its (byte-sorted) order.
    pub fn of(tree: &Tree) -> Vec<FileRecord> {
        tree.entries
            .iter()
            .map(|e| {
                let mut r = FileRecord {
                    path: e.display_path(),
                    kind: FileKind::Dir,
                    mode: format!("{:o}", e.mode()),
                    size: None,
                    sha256: None,
                    blake3: None,
                    target: None,
                };
                match &e.kind {
                    EntryKind::Dir => r.kind = FileKind::Dir,
                    EntryKind::File { content, .. } => {
                        r.kind = FileKind::File;
                        r.size = Some(content.size);
                        r.sha256 = Some(content.sha256);
                        r.blake3 = Some(content.blake3);
                    }
                    EntryKind::Symlink { target } => {
                        r.kind = FileKind::Symlink;
                        r.target = Some(String::from_utf8_lossy(target).into_owned());
                    }
                }
                r
            })
            .collect()
    }
}

/// What one step did on one seed. See the module doc.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// Always [`RECEIPT_FORMAT`].
    pub format: String,
    /// The step.
    pub step: String,
    /// Its stage.
    pub stage: String,
    /// The seed it ran on.
    pub seed: SeedRef,
    /// The input digest (ARCHITECTURE.md §4): the cache key.
    pub input: Blake3,
    /// The step's definition digest (the chain's part of the input).
    pub definition: crate::hash::Blake3,
    /// Sources mounted, in the order written.
    pub sources: Vec<SourceRef>,
    /// Needs overlaid, in the order written.
    pub needs: Vec<NeedRef>,
    /// How it ended.
    pub status: RunStatus,
    /// Tree digest of the output layer (when it succeeded).
    pub output: Option<Blake3>,
    /// The output layer's entries with their hashes.
    pub files: Vec<FileRecord>,
    /// The log, `logs/<hex>`.
    pub log: Blake3,
    /// Wall time of the run, in milliseconds.
    pub duration_ms: u64,
    /// The backend (`local`, `oci`).
    pub backend: String,
    /// The container engine that ran the step, as its API names itself
    /// (`Docker Engine - Community 28.2.2 (API 1.50)`, `Podman Engine
    /// 4.3.1 (API 1.41)`); absent on the local backend and in receipts
    /// written before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_engine: Option<String>,
    /// When the step was run again over a cached result (`verify
    /// --rebuild`), the output that result had: the same inputs gave it
    /// before. Recorded here, it keeps that layer alive (`store gc`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub earlier_output: Option<Blake3>,
    /// The machine that ran the step: a digest derived from its
    /// `/etc/machine-id` ([`crate::machine::id`]), never the id itself;
    /// absent where the machine has none, and in receipts written before
    /// it was recorded. `sign --require-reproduced` compares it with this
    /// machine's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine: Option<String>,
    /// `bootstrap <version>`.
    pub engine: String,
    /// The host kernel's release.
    pub kernel: String,
    /// The host's machine architecture.
    pub arch: String,
    /// When it finished, seconds since the Unix epoch.
    pub finished: u64,
}

impl Store {
    /// Where the receipt of `step` on `seed` with input digest `input` lives.
    pub fn receipt_path(&self, step: &str, seed: &str, input: &Blake3) -> PathBuf {
        self.root().join("receipts").join("steps").join(step).join(seed).join(format!("{}.json", input.hex()))
    }

    /// Writes a receipt (temp file, fsync, rename).
    pub fn write_receipt(&self, r: &Receipt) -> Result<(), StoreError> {
        let path = self.receipt_path(&r.step, &r.seed.name, &r.input);
        let mut bytes = serde_json::to_vec_pretty(r).map_err(|e| StoreError::Io { path: path.clone(), source: e.into() })?;
        bytes.push(b'\n');
        self.write_atomic(&path, &bytes)
    }

    /// The size of the receipt file of `step` on `seed` for `input` (0 when
    /// there is none). A stat, not a parse: a receipt deleted or cut short
    /// shows here; one damaged at the same size, only to what reads it.
    pub fn receipt_bytes(&self, step: &str, seed: &str, input: &Blake3) -> u64 {
        std::fs::metadata(self.receipt_path(step, seed, input)).map_or(0, |m| if m.is_file() { m.len() } else { 0 })
    }

    /// The receipt for these keys, if there is a readable one. An unreadable
    /// or foreign one counts as absent (the step runs again and replaces it;
    /// `store verify` reports it).
    pub fn read_receipt(&self, step: &str, seed: &str, input: &Blake3) -> Option<Receipt> {
        let bytes = std::fs::read(self.receipt_path(step, seed, input)).ok()?;
        let r: Receipt = serde_json::from_slice(&bytes).ok()?;
        (r.format == RECEIPT_FORMAT && r.input == *input && r.step == step && r.seed.name == seed).then_some(r)
    }
}
