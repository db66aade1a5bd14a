//! The canonical tree manifest and the tree digest.
//!
//! The manifest is the header [`MANIFEST_HEADER`] followed by one record per
//! entry below the root (the root itself has none), in byte order of the
//! entries' relative paths:
//!
//! ```text
//! <kind> SP <mode> SP <size> SP <blake3> NUL <symlink target> NUL <path> NUL
//! ```
//!
//! `kind` is `dir`, `file` or `symlink`; `mode` is `755` for directories and
//! executable files (any execute bit set), `644` for other files, `777` for
//! symlinks; `size` is the file's length in decimal (0 for the others);
//! `blake3` is the file's BLAKE3 in lowercase hex (`-` for the others); the
//! symlink target is empty for the others. Paths use `/`, have no leading
//! `./`, and are raw bytes. Neither paths nor targets can hold NUL, so the
//! encoding is unambiguous. The tree digest is `blake3:` of the manifest.
//! Mtimes, owners, other mode bits and on-disk order are not in it.

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use miette::Diagnostic;
use rayon::prelude::*;
use thiserror::Error;

use super::{Blake3, ContentDigests, Sha256, hash_file};

/// First bytes of every manifest; the version changes if the format does.
pub const MANIFEST_HEADER: &[u8] = b"bootstrap-tree-v1\n";

/// What an entry is, with what the manifest records of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    /// A directory (recorded even when empty).
    Dir,
    /// A regular file.
    File {
        /// Any execute bit was set.
        exec: bool,
        /// Size and digests of the contents.
        content: ContentDigests,
    },
    /// A symbolic link, with its target as raw bytes (never followed).
    Symlink {
        /// The link's target.
        target: Vec<u8>,
    },
}

/// One entry of a tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Path relative to the root, `/`-separated, raw bytes.
    pub path: Vec<u8>,
    /// What it is.
    pub kind: EntryKind,
}

impl Entry {
    /// The normalised mode written in the manifest.
    pub fn mode(&self) -> u32 {
        match self.kind {
            EntryKind::Dir => 0o755,
            EntryKind::File { exec: true, .. } => 0o755,
            EntryKind::File { exec: false, .. } => 0o644,
            EntryKind::Symlink { .. } => 0o777,
        }
    }

    /// The entry's path under `root`.
    pub fn full_path(&self, root: &Path) -> PathBuf {
        root.join(std::ffi::OsStr::from_bytes(&self.path))
    }

    /// The path as text, with invalid UTF-8 replaced (for messages and JSON).
    pub fn display_path(&self) -> String {
        String::from_utf8_lossy(&self.path).into_owned()
    }
}

/// A hashed directory tree: its entries in manifest order. Two trees are equal
/// exactly when their manifests, and so their digests, are.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Tree {
    /// Entries sorted by path bytes.
    pub entries: Vec<Entry>,
}

impl Tree {
    /// The canonical manifest bytes.
    pub fn manifest(&self) -> Vec<u8> {
        let mut m = Vec::with_capacity(MANIFEST_HEADER.len() + self.entries.len() * 120);
        m.extend_from_slice(MANIFEST_HEADER);
        for e in &self.entries {
            let (kind, size, b3, target): (&str, u64, String, &[u8]) = match &e.kind {
                EntryKind::Dir => ("dir", 0, "-".into(), b""),
                EntryKind::File { content, .. } => ("file", content.size, content.blake3.hex(), b""),
                EntryKind::Symlink { target } => ("symlink", 0, "-".into(), target),
            };
            m.extend_from_slice(format!("{kind} {:o} {size} {b3}\0", e.mode()).as_bytes());
            m.extend_from_slice(target);
            m.push(0);
            m.extend_from_slice(&e.path);
            m.push(0);
        }
        m
    }

    /// The tree digest: BLAKE3 of the manifest.
    pub fn digest(&self) -> Blake3 {
        Blake3(*blake3::hash(&self.manifest()).as_bytes())
    }

    /// The regular files, in manifest order.
    pub fn files(&self) -> impl Iterator<Item = (&Entry, &ContentDigests)> {
        self.entries.iter().filter_map(|e| match &e.kind {
            EntryKind::File { content, .. } => Some((e, content)),
            _ => None,
        })
    }

    /// Total bytes of all regular files.
    pub fn total_size(&self) -> u64 {
        self.files().map(|(_, c)| c.size).sum()
    }

    /// A `sha256sum` list of the regular files, which `sha256sum -c --strict`
    /// accepts when run in the tree's root.
    pub fn sha256sums(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (e, c) in self.files() {
            out.extend_from_slice(&sha256sum_line(&c.sha256, &e.path));
        }
        out
    }
}

/// One line of `sha256sum` output for `path`, escaped the way coreutils does
/// when the name holds a backslash, a newline or a carriage return.
pub fn sha256sum_line(sha: &Sha256, path: &[u8]) -> Vec<u8> {
    let escape = path.iter().any(|b| matches!(b, b'\\' | b'\n' | b'\r'));
    let mut line = Vec::with_capacity(path.len() + 68);
    if escape {
        line.push(b'\\');
    }
    line.extend_from_slice(sha.hex().as_bytes());
    line.extend_from_slice(b"  ");
    for &b in path {
        match b {
            b'\\' if escape => line.extend_from_slice(b"\\\\"),
            b'\n' if escape => line.extend_from_slice(b"\\n"),
            b'\r' if escape => line.extend_from_slice(b"\\r"),
            _ => line.push(b),
        }
    }
    line.push(b'\n');
    line
}

/// Why a tree could not be hashed.
#[derive(Debug, Error, Diagnostic)]
pub enum HashError {
    /// Reading the filesystem failed.
    #[error("cannot read {}: {source}", path.display())]
    #[diagnostic(code(bootstrap::hash::io), help("check that the path exists and is readable"))]
    Io {
        /// The path that could not be read.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The root is not a directory.
    #[error("{} is not a directory", path.display())]
    #[diagnostic(code(bootstrap::hash::not_a_directory), help("give the directory whose tree digest you want"))]
    NotADirectory {
        /// The path given.
        path: PathBuf,
    },
    /// An entry is neither a regular file, a directory nor a symlink.
    #[error("{} is a {what}; a tree holds only regular files, directories and symlinks", path.display())]
    #[diagnostic(code(bootstrap::hash::unsupported_type), help("remove it from the tree, or hash a tree without it"))]
    Unsupported {
        /// The entry.
        path: PathBuf,
        /// What it is ("fifo", "socket", "character device", "block device").
        what: &'static str,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> HashError + '_ {
    move |source| HashError::Io { path: path.to_path_buf(), source }
}

/// An entry found by the walk, before its contents are hashed.
enum Found {
    Dir,
    File { exec: bool },
    Symlink(Vec<u8>),
}

/// What the walk does with fifos, sockets and device files.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Special {
    /// Fail: layers hold only directories, files and symlinks.
    Refuse,
    /// Leave them out and count them (seed root filesystems).
    Skip,
}

fn walk(
    rel: &mut Vec<u8>,
    dir: &Path,
    special: Special,
    skipped: &mut u64,
    out: &mut Vec<(Vec<u8>, PathBuf, Found)>,
) -> Result<(), HashError> {
    for dent in fs::read_dir(dir).map_err(io_err(dir))? {
        let dent = dent.map_err(io_err(dir))?;
        let path = dent.path();
        let ft = dent.file_type().map_err(io_err(&path))?;
        let len = rel.len();
        if !rel.is_empty() {
            rel.push(b'/');
        }
        rel.extend_from_slice(dent.file_name().as_bytes());
        let found = if ft.is_dir() {
            walk(rel, &path, special, skipped, out)?;
            Found::Dir
        } else if ft.is_file() {
            let mode = fs::symlink_metadata(&path).map_err(io_err(&path))?.permissions().mode();
            Found::File { exec: mode & 0o111 != 0 }
        } else if ft.is_symlink() {
            Found::Symlink(fs::read_link(&path).map_err(io_err(&path))?.as_os_str().as_bytes().to_vec())
        } else if special == Special::Skip {
            *skipped += 1;
            rel.truncate(len);
            continue;
        } else {
            let what = if ft.is_fifo() {
                "fifo"
            } else if ft.is_socket() {
                "socket"
            } else if ft.is_char_device() {
                "character device"
            } else {
                "block device"
            };
            return Err(HashError::Unsupported { path, what });
        };
        out.push((rel.clone(), path, found));
        rel.truncate(len);
    }
    Ok(())
}

/// Walks and hashes the tree under `root` (which must be a directory; it is
/// not followed if it is a symlink). Files are hashed in parallel, each read
/// once for both digests.
pub fn hash_tree(root: &Path) -> Result<Tree, HashError> {
    hash_with(root, Special::Refuse, &mut 0)
}

/// Like [`hash_tree`] for a seed's root filesystem, which may hold device
/// files, fifos and sockets (a debootstrap `/dev`, say): they are left out of
/// the tree, and the count of them is returned with it. The sandbox brings
/// its own `/dev`, so what they were does not reach a step.
pub fn hash_rootfs(root: &Path) -> Result<(Tree, u64), HashError> {
    let mut skipped = 0;
    let tree = hash_with(root, Special::Skip, &mut skipped)?;
    Ok((tree, skipped))
}

fn hash_with(root: &Path, special: Special, skipped: &mut u64) -> Result<Tree, HashError> {
    let meta = fs::symlink_metadata(root).map_err(io_err(root))?;
    if !meta.is_dir() {
        return Err(HashError::NotADirectory { path: root.to_path_buf() });
    }
    let mut found = Vec::new();
    walk(&mut Vec::new(), root, special, skipped, &mut found)?;
    found.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let entries = found
        .into_par_iter()
        .with_min_len(16)
        .map(|(path, full, f)| {
            let kind = match f {
                Found::Dir => EntryKind::Dir,
                Found::Symlink(target) => EntryKind::Symlink { target },
                Found::File { exec } => EntryKind::File { exec, content: hash_file(&full).map_err(io_err(&full))? },
            };
            Ok(Entry { path, kind })
        })
        .collect::<Result<Vec<_>, HashError>>()?;
    Ok(Tree { entries })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256sum_escapes_like_coreutils() {
        let d = Sha256([0; 32]);
        let zeros = "0".repeat(64);
        assert_eq!(sha256sum_line(&d, b"a b"), format!("{zeros}  a b\n").into_bytes());
        assert_eq!(sha256sum_line(&d, b"a\nb\\c"), format!("\\{zeros}  a\\nb\\\\c\n").into_bytes());
    }
}
