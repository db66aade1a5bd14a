//! `store gc`: remove what nothing references.
//!
//! An object is kept when its digest appears as a string anywhere in a
//! receipt (so whatever receipts come to record keeps its objects alive), or
//! when the current chain pins it: a source file by its `sha256` (with the
//! layer it unpacks to), a layer by a `tree` pin. An `index/unpack/` entry
//! is kept while its source file or its layer is; an `index/origin/` entry
//! while the object it describes is. Everything else in `sources/`,
//! `layers/`, `logs/` and the index, all of `tmp/` (interrupted work) and
//! the parse cache are removed.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::verify::receipt_files;
use super::{Store, StoreError, entries, io_at};
use crate::hash::{Blake3, Sha256};

/// One removed (or, with a dry run, removable) object.
#[derive(Debug, Clone, Serialize)]
pub struct Removed {
    /// Path of the object in the store.
    pub path: PathBuf,
    /// What it was: source, layer, log, index, temporary, parse-cache.
    pub what: &'static str,
    /// Bytes it held (sum of its files).
    pub bytes: u64,
}

/// What `store gc` did.
#[derive(Debug, Default, Serialize)]
pub struct GcReport {
    /// What was removed, in path order.
    pub removed: Vec<Removed>,
    /// Bytes freed (or that would be, with a dry run).
    pub freed: u64,
    /// Objects kept.
    pub kept: usize,
    /// Nothing was removed: this was a dry run.
    pub dry_run: bool,
}

fn size_of(p: &Path) -> u64 {
    let Ok(meta) = fs::symlink_metadata(p) else { return 0 };
    if !meta.is_dir() {
        return meta.len();
    }
    fs::read_dir(p).map(|rd| rd.filter_map(Result::ok).map(|d| size_of(&d.path())).sum()).unwrap_or(0)
}

/// Collects every `sha256:`/`blake3:` digest written as a string in `v`.
fn collect_digests(v: &serde_json::Value, out: &mut HashSet<String>) {
    match v {
        serde_json::Value::String(s) if s.parse::<Blake3>().is_ok() || s.parse::<Sha256>().is_ok() => {
            out.insert(s.clone());
        }
        serde_json::Value::Array(a) => a.iter().for_each(|x| collect_digests(x, out)),
        serde_json::Value::Object(o) => o.values().for_each(|x| collect_digests(x, out)),
        _ => {}
    }
}

impl Store {
    /// Removes everything unreferenced. `files` are the sha256 of every
    /// source file and seed tarball the current chain pins, `trees` the
    /// tree digests it pins; they (and the layers the files unpack to) are
    /// kept even before any receipt names them.
    pub fn gc(&self, files: &[Sha256], trees: &[Blake3], dry_run: bool) -> Result<GcReport, StoreError> {
        let root = self.root();
        let mut live: HashSet<String> = files.iter().map(|s| s.to_string()).chain(trees.iter().map(|t| t.to_string())).collect();
        for p in receipt_files(&root.join("receipts"))? {
            // An unreadable receipt keeps nothing alive, and `store verify` reports it.
            if let Ok(Ok(v)) = fs::read(&p).map(|b| serde_json::from_slice::<serde_json::Value>(&b)) {
                collect_digests(&v, &mut live);
            }
        }
        let mut victims: Vec<(PathBuf, &'static str)> = Vec::new();
        let mut kept = 0;
        let unpack_entries: Vec<(PathBuf, Option<Sha256>, Option<Blake3>)> = entries(&root.join("index").join("unpack"))?
            .into_iter()
            .map(|p| {
                let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
                let source = name.split('-').next().and_then(Sha256::from_hex);
                let layer = fs::read_to_string(&p).ok().and_then(|t| t.trim().parse::<Blake3>().ok());
                (p, source, layer)
            })
            .collect();
        // A live source file keeps what it unpacks to alive...
        for (_, source, layer) in &unpack_entries {
            if let (Some(s), Some(l)) = (source, layer)
                && live.contains(&s.to_string())
            {
                live.insert(l.to_string());
            }
        }
        // ...and an entry lives while its file or its layer does (an
        // archive accepted by a tree pin is not kept, its layer is).
        for (p, source, layer) in unpack_entries {
            let alive = |d: Option<String>| d.is_some_and(|d| live.contains(&d));
            if alive(source.map(|s| s.to_string())) || alive(layer.map(|l| l.to_string())) {
                kept += 1;
            } else {
                victims.push((p, "index"));
            }
        }
        for p in entries(&root.join("index").join("origin"))? {
            let object = p.file_name().and_then(|n| n.to_str()).and_then(super::origin::Object::from_key);
            if object.is_some_and(|o| live.contains(&o.digest())) {
                kept += 1;
            } else {
                victims.push((p, "index"));
            }
        }
        for (dir, what, algo) in [("sources", "source", "sha256"), ("layers", "layer", "blake3"), ("logs", "log", "blake3")] {
            for p in entries(&root.join(dir))? {
                let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
                if live.contains(&format!("{algo}:{name}")) {
                    kept += 1;
                } else {
                    victims.push((p, what));
                }
            }
        }
        for p in entries(&root.join("tmp"))? {
            victims.push((p, "temporary"));
        }
        for p in entries(&super::parse_cache_dir(root))? {
            victims.push((p, "parse-cache"));
        }
        let mut report = GcReport { kept, dry_run, ..GcReport::default() };
        for (path, what) in victims {
            let bytes = size_of(&path);
            if !dry_run {
                if what == "temporary" || what == "parse-cache" {
                    remove_any(&path)?;
                } else {
                    self.discard(&path)?;
                }
            }
            report.freed += bytes;
            report.removed.push(Removed { path, what, bytes });
        }
        Ok(report)
    }
}

fn remove_any(p: &Path) -> Result<(), StoreError> {
    let r = if fs::symlink_metadata(p).map(|m| m.is_dir()).unwrap_or(false) { fs::remove_dir_all(p) } else { fs::remove_file(p) };
    match r {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_at(p)(e)),
        _ => Ok(()),
    }
}
