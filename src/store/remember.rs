//! Facts about files and directories outside the store (a seed directory,
//! a seed tarball, a distfile), remembered across runs while the things
//! themselves are unchanged, so a 100 MB seed or a directory of distfiles
//! is not re-read by every command.
//!
//! A fact is kept under `index/<kind>/<blake3 of the path>` together with a
//! fingerprint of every entry's `lstat` (path, inode, mode, size, mtime and
//! ctime to the nanosecond, device). While the fingerprint is unchanged the
//! fact is reused. Any write to a file changes its ctime, which no user can
//! set back. As git does for its index, nothing is remembered when an
//! entry changed less than two seconds before (a write in the same clock
//! tick could go unseen). These entries are caches, not objects: losing one
//! costs a re-hash, never a wrong answer.

use std::path::Path;

use super::Store;
use crate::hash::HashError;

/// A remembered (or freshly computed) fact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remembered {
    /// The fact, as `compute` gave it.
    pub value: String,
    /// Whether `compute` ran this time (the memo was missing or stale).
    pub computed: bool,
}

impl Store {
    /// The fact `compute` derives from what is at `path`, remembered under
    /// `index/<kind>/` (see the module doc). `compute` runs only when no
    /// memo holds for the current fingerprint.
    pub fn remembered(
        &self,
        kind: &str,
        path: &Path,
        compute: impl FnOnce() -> Result<String, HashError>,
    ) -> Result<Remembered, HashError> {
        use std::os::unix::ffi::OsStrExt;
        let (fingerprint, newest) = fingerprint(path)?;
        let key = blake3::hash(path.as_os_str().as_bytes()).to_hex().to_string();
        let memo = self.root().join("index").join(kind).join(key);
        if let Ok(text) = std::fs::read_to_string(&memo)
            && let Some((fp, value)) = text.trim_end().split_once(' ')
            && fp == fingerprint
        {
            return Ok(Remembered { value: value.to_string(), computed: false });
        }
        let value = compute()?;
        if super::settled(newest) {
            // Only a cache: failing to write it costs the next run a re-hash.
            let _ = self.write_atomic(&memo, format!("{fingerprint} {value}\n").as_bytes());
        }
        Ok(Remembered { value, computed: true })
    }
}

/// What one walk of a tree's `lstat`s gives: every entry's path relative
/// to the root (the root itself first, as the empty path; then in byte
/// order), the BLAKE3 of their `lstat` fields in that order, and the newest
/// mtime or ctime seen (nanoseconds since the epoch).
pub(crate) struct StatWalk {
    pub entries: Vec<Vec<u8>>,
    pub fingerprint: crate::hash::Blake3,
    pub newest: i128,
}

type Row = [i64; 8];

fn stat(m: &std::fs::Metadata) -> Row {
    use std::os::unix::fs::MetadataExt;
    [m.ino() as i64, m.mode() as i64, m.size() as i64, m.mtime(), m.mtime_nsec(), m.ctime(), m.ctime_nsec(), m.dev() as i64]
}

fn hash_row(h: &mut blake3::Hasher, rel: &[u8], row: &Row) {
    h.update(&(rel.len() as u64).to_le_bytes());
    h.update(rel);
    for x in row {
        h.update(&x.to_le_bytes());
    }
}

/// Walks the tree at `root` (see [`StatWalk`]).
pub(crate) fn stat_walk(root: &Path) -> Result<StatWalk, HashError> {
    use std::os::unix::ffi::OsStrExt;
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |source| HashError::Io { path: p, source }
    };
    let top = std::fs::symlink_metadata(root).map_err(io(root))?;
    let mut rows: Vec<(Vec<u8>, Row)> = vec![(Vec::new(), stat(&top))];
    let mut stack = if top.is_dir() { vec![root.to_path_buf()] } else { Vec::new() };
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).map_err(io(&d))? {
            let e = e.map_err(io(&d))?;
            // fstatat on the open directory: no path walk per entry.
            let m = e.metadata().map_err(io(&e.path()))?;
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap_or(&p).as_os_str().as_bytes().to_vec();
            if m.is_dir() {
                stack.push(p);
            }
            rows.push((rel, stat(&m)));
        }
    }
    rows.sort_unstable();
    let mut h = blake3::Hasher::new();
    let mut newest = 0;
    for (rel, f) in &rows {
        hash_row(&mut h, rel, f);
        let ns = |sec: i64, nsec: i64| i128::from(sec) * 1_000_000_000 + i128::from(nsec);
        newest = newest.max(ns(f[3], f[4])).max(ns(f[5], f[6]));
    }
    let fingerprint = crate::hash::Blake3(*h.finalize().as_bytes());
    Ok(StatWalk { entries: rows.into_iter().map(|(rel, _)| rel).collect(), fingerprint, newest })
}

/// The fingerprint [`stat_walk`] would give for exactly the entries
/// `listed` (as it listed them), from one `lstat` each and no directory
/// read; `None` when one is gone. An entry added or removed since changes
/// its directory's times, which are among them.
pub(crate) fn stat_listed(root: &Path, listed: &[&[u8]]) -> Option<crate::hash::Blake3> {
    use std::os::unix::ffi::OsStrExt;
    let mut h = blake3::Hasher::new();
    for rel in listed {
        let path = if rel.is_empty() { root.to_path_buf() } else { root.join(std::ffi::OsStr::from_bytes(rel)) };
        hash_row(&mut h, rel, &stat(&path.symlink_metadata().ok()?));
    }
    Some(crate::hash::Blake3(*h.finalize().as_bytes()))
}

fn fingerprint(root: &Path) -> Result<(String, i128), HashError> {
    stat_walk(root).map(|w| (w.fingerprint.hex(), w.newest))
}
