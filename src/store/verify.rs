//! `store verify`: re-hash every object and compare with its name.

use std::fs;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::Serialize;

use super::{Store, StoreError, entries, io_at};
use crate::hash::{self, Blake3, Sha256};

/// One thing wrong with the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Problem {
    /// The object's bytes do not hash to its name.
    Corrupt {
        /// The object.
        path: PathBuf,
        /// The digest its name says.
        expected: String,
        /// The digest of what is there.
        actual: String,
    },
    /// The object could not be read or parsed.
    Unreadable {
        /// The object.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// An index entry names an object that is not in the store.
    Dangling {
        /// The index entry.
        path: PathBuf,
        /// What it names.
        missing: String,
    },
    /// A file whose name is not an object name, in an object directory.
    Stray {
        /// The file.
        path: PathBuf,
    },
}

impl Problem {
    /// The path the problem is about.
    pub fn path(&self) -> &Path {
        match self {
            Problem::Corrupt { path, .. }
            | Problem::Unreadable { path, .. }
            | Problem::Dangling { path, .. }
            | Problem::Stray { path } => path,
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::Corrupt { path, expected, actual } => {
                write!(f, "corrupt: {}\n    expected {expected}\n    found    {actual}", path.display())
            }
            Problem::Unreadable { path, reason } => write!(f, "unreadable: {}: {reason}", path.display()),
            Problem::Dangling { path, missing } => write!(f, "dangling: {} names {missing}, which is not in the store", path.display()),
            Problem::Stray { path } => write!(f, "stray: {} is not named by a digest", path.display()),
        }
    }
}

/// What `store verify` found.
#[derive(Debug, Default, Serialize)]
pub struct VerifyReport {
    /// No problems.
    pub ok: bool,
    /// Source files checked.
    pub sources: usize,
    /// Layers checked.
    pub layers: usize,
    /// Logs checked.
    pub logs: usize,
    /// Index entries checked (`index/unpack/` and `index/origin/`).
    pub index: usize,
    /// Receipts checked (they must parse as JSON).
    pub receipts: usize,
    /// Everything wrong, sorted by path.
    pub problems: Vec<Problem>,
}

fn name(p: &Path) -> &str {
    p.file_name().and_then(|n| n.to_str()).unwrap_or("")
}

fn unreadable(path: &Path, e: impl std::fmt::Display) -> Problem {
    Problem::Unreadable { path: path.to_path_buf(), reason: e.to_string() }
}

/// A file object: its name must be the digest `pick` takes of its bytes.
fn check_file<D: PartialEq + std::fmt::Display>(
    p: &Path,
    want: Option<D>,
    pick: fn(&hash::ContentDigests) -> D,
) -> Option<Problem> {
    let Some(want) = want else { return Some(Problem::Stray { path: p.to_path_buf() }) };
    match hash::hash_file(p) {
        Ok(c) if pick(&c) == want => None,
        Ok(c) => Some(Problem::Corrupt { path: p.to_path_buf(), expected: want.to_string(), actual: pick(&c).to_string() }),
        Err(e) => Some(unreadable(p, e)),
    }
}

fn check_source(p: &Path) -> Option<Problem> {
    check_file(p, Sha256::from_hex(name(p)), |c| c.sha256)
}

fn check_log(p: &Path) -> Option<Problem> {
    check_file(p, Blake3::from_hex(name(p)), |c| c.blake3)
}

fn check_layer(p: &Path) -> Option<Problem> {
    let Some(want) = Blake3::from_hex(name(p)) else { return Some(Problem::Stray { path: p.to_path_buf() }) };
    match hash::hash_tree(p) {
        Ok(t) if t.digest() == want => None,
        Ok(t) => Some(Problem::Corrupt { path: p.to_path_buf(), expected: want.to_string(), actual: t.digest().to_string() }),
        Err(e) => Some(unreadable(p, e)),
    }
}

/// Every `*.json` file under `dir`, recursively, sorted.
pub(super) fn receipt_files(dir: &Path) -> Result<Vec<PathBuf>, StoreError> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for p in entries(&d)? {
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|e| e == "json") {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

impl Store {
    /// Re-hashes every object (in parallel) and reports what does not match.
    pub fn verify(&self) -> Result<VerifyReport, StoreError> {
        let root = self.root();
        let sources = entries(&root.join("sources"))?;
        let layers = entries(&root.join("layers"))?;
        let logs = entries(&root.join("logs"))?;
        let index = entries(&root.join("index").join("unpack"))?;
        let origins = entries(&root.join("index").join("origin"))?;
        let receipts = receipt_files(&root.join("receipts"))?;
        let mut problems: Vec<Problem> = sources
            .par_iter()
            .filter_map(|p| check_source(p))
            .chain(layers.par_iter().filter_map(|p| check_layer(p)))
            .chain(logs.par_iter().filter_map(|p| check_log(p)))
            .collect();
        for p in &index {
            match fs::read_to_string(p).map(|t| t.trim().parse::<Blake3>()) {
                Err(e) => problems.push(unreadable(p, e)),
                Ok(Err(e)) => problems.push(unreadable(p, e)),
                Ok(Ok(d)) if !self.layer_path(&d).is_dir() => {
                    problems.push(Problem::Dangling { path: p.clone(), missing: d.to_string() })
                }
                Ok(Ok(_)) => {}
            }
        }
        for p in &origins {
            let Some(object) = p.file_name().and_then(|n| n.to_str()).and_then(super::origin::Object::from_key) else {
                problems.push(Problem::Stray { path: p.clone() });
                continue;
            };
            let parsed = fs::read(p).map_err(|e| e.to_string()).and_then(|b| {
                serde_json::from_slice::<super::origin::ObjectOrigin>(&b).map(drop).map_err(|e| e.to_string())
            });
            let present = match object {
                super::origin::Object::Source(s) => self.has_source(&s),
                super::origin::Object::Layer(l) => self.layer_path(&l).is_dir(),
            };
            match parsed {
                Err(reason) => problems.push(Problem::Unreadable { path: p.clone(), reason }),
                Ok(()) if !present => problems.push(Problem::Dangling { path: p.clone(), missing: object.digest() }),
                Ok(()) => {}
            }
        }
        for p in &receipts {
            let parsed = fs::read(p).map_err(|e| e.to_string()).and_then(|b| {
                serde_json::from_slice::<serde_json::Value>(&b).map(drop).map_err(|e| e.to_string())
            });
            if let Err(reason) = parsed {
                problems.push(Problem::Unreadable { path: p.clone(), reason });
            }
        }
        problems.sort_by(|a, b| a.path().cmp(b.path()));
        Ok(VerifyReport {
            ok: problems.is_empty(),
            sources: sources.len(),
            layers: layers.len(),
            logs: logs.len(),
            index: index.len() + origins.len(),
            receipts: receipts.len(),
            problems,
        })
    }

    /// Removes an object found bad by [`Store::verify`]: renamed into `tmp/`
    /// first, so its final name disappears at once, then deleted.
    pub fn discard(&self, path: &Path) -> Result<(), StoreError> {
        // A layer's remembered stat fingerprint goes with it.
        if path.parent() == Some(&self.root().join("layers"))
            && let Some(name) = path.file_name()
        {
            let _ = fs::remove_file(self.root().join("index").join("layer-stat").join(name));
        }
        let grave = self.temp_dir()?;
        let dest = grave.path().join("x");
        fs::rename(path, &dest).map_err(io_at(path))?;
        drop(grave);
        Ok(())
    }
}
