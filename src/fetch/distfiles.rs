//! `--distfiles` directories: which of their files to try for a source, in
//! which order, and each file's sha256 remembered across runs.
//!
//! A file *named* for the source comes first: the file names its URLs end
//! in and, with a `sha256` pin, that hex. Only a source pinned by `tree`
//! (and placed as a tree) goes on to the directory's other regular files,
//! of any name and compression, since only its content can tell whether
//! one of them is the source; those whose names start with the source's
//! name come first, so the common case (a repacked `NAME-VERSION.tar.xz`)
//! is found without looking at the rest.
//!
//! A distfile's sha256 (and size) is remembered under `index/distfiles/`
//! by the file's `lstat` fingerprint ([`Store::remembered`]), so a second
//! run does not read an unchanged file again; what an archive unpacks to
//! is remembered by its sha256 in `index/unpack/`, once it was accepted for
//! some source.

use std::path::{Path, PathBuf};

use crate::chain::Source;
use crate::hash::{self, HashError, Sha256};
use crate::store::Store;

/// The files of one distfiles directory to try for a source.
#[derive(Debug, Default)]
pub(super) struct Candidates {
    /// Files named for the source, in the order of its URLs (then its sha256).
    pub named: Vec<PathBuf>,
    /// Every other regular file, for a tree pin only: those whose names
    /// start with the source's name first, each group in byte order of names.
    pub others: Vec<PathBuf>,
}

/// The file name a URL ends in.
pub(super) fn url_file_name(url: &str) -> Option<&str> {
    let path = url.split(['?', '#']).next()?;
    let name = path.rsplit('/').next()?;
    (!name.is_empty()).then_some(name)
}

/// The file to put in a distfiles directory for `source`, described: the
/// name its first URL ends in (else its sha256 as the name), and for a
/// source pinned by `tree` any archive that unpacks to the pinned tree.
pub fn file_hint(source: &Source) -> String {
    let named = source.urls.iter().find_map(|u| url_file_name(u)).map(str::to_string).or_else(|| source.sha256.map(|s| s.hex()));
    let by_tree = source.is_tree() && source.tree.is_some();
    match (named, by_tree) {
        (Some(n), true) => format!("`{n}` (or any archive whose unpacked content is the pinned tree)"),
        (Some(n), false) => format!("`{n}`"),
        (None, _) => format!("an archive of `{}` (any name, any compression) whose unpacked content is the pinned tree", source.name),
    }
}

/// The candidates in `dir` for `source` (see the module doc). A directory
/// that cannot be listed gives only the named files that exist.
pub(super) fn candidates(dir: &Path, source: &Source) -> Candidates {
    let mut names: Vec<String> = source.urls.iter().filter_map(|u| url_file_name(u)).map(str::to_string).collect();
    if let Some(sha) = source.sha256 {
        names.push(sha.hex());
    }
    let mut seen = std::collections::HashSet::new();
    names.retain(|n| seen.insert(n.clone()));
    let named: Vec<PathBuf> = names.iter().map(|n| dir.join(n)).filter(|p| p.is_file()).collect();
    let mut out = Candidates { named, others: Vec::new() };
    if !(source.is_tree() && source.tree.is_some()) {
        return out;
    }
    let Ok(entries) = std::fs::read_dir(dir) else { return out };
    let mut others: Vec<(bool, std::ffi::OsString, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter(|e| !names.iter().any(|n| e.file_name() == n.as_str()))
        .map(|e| e.path())
        // Regular files, or links to them (a mirror of links is common).
        .filter(|p| p.is_file())
        .map(|p| {
            let name = p.file_name().unwrap_or_default().to_os_string();
            let mine = name.to_string_lossy().starts_with(&source.name);
            (!mine, name, p)
        })
        .collect();
    others.sort();
    out.others = others.into_iter().map(|(_, _, p)| p).collect();
    out
}

/// A distfile's sha256 and size, and whether the file was read for it this
/// time (false when remembered; see the module doc).
pub(super) fn sha256(store: &Store, path: &Path) -> Result<(Sha256, u64, bool), HashError> {
    let io = |source| HashError::Io { path: path.to_path_buf(), source };
    // Keyed by the file itself, however it was reached (a relative
    // --distfiles, a mirror of links): the same file, the same memo.
    let real = std::fs::canonicalize(path).map_err(io)?;
    let hash = || -> Result<(Sha256, u64), HashError> {
        let c = hash::hash_file(&real).map_err(io)?;
        Ok((c.sha256, c.size))
    };
    let memo = store.remembered("distfiles", &real, || {
        let (sha, size) = hash()?;
        Ok(format!("{} {size}", sha.hex()))
    })?;
    let parsed = memo.value.split_once(' ').and_then(|(h, n)| Some((Sha256::from_hex(h)?, n.parse::<u64>().ok()?)));
    match parsed {
        Some((sha, size)) => Ok((sha, size, memo.computed)),
        // A memo this engine did not write: read the file after all.
        None => hash().map(|(sha, size)| (sha, size, true)),
    }
}
