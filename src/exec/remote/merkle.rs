//! A step's input root as REAPI wants it: a Merkle tree of `Directory`
//! messages over the union of its inputs ([`crate::exec::union`]), every
//! node named by the SHA-256 of its bytes, each directory's entries sorted
//! by name. Built from the same union the OCI backend sends as a tar, so
//! both backends give a step the same root.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use bazel_remote_apis::build::bazel::remote::execution::v2 as re;
use prost::Message;
use rayon::prelude::*;
use sha2::Digest as _;

use crate::exec::ExecError;
use crate::exec::union::{Item, Union};

/// Where a blob's bytes are.
#[derive(Debug, Clone)]
pub enum Blob {
    /// In memory (directories, commands, actions, small helpers).
    Bytes(Vec<u8>),
    /// A file of the store or of a seed directory.
    File(PathBuf),
}

/// The REAPI digest of `bytes`.
pub fn digest(bytes: &[u8]) -> re::Digest {
    re::Digest { hash: crate::hash::to_hex(&sha2::Sha256::digest(bytes)), size_bytes: bytes.len() as i64 }
}

/// The digest of a message's encoding, and the encoding.
pub fn message<M: Message>(m: &M) -> (re::Digest, Vec<u8>) {
    let bytes = m.encode_to_vec();
    (digest(&bytes), bytes)
}

/// File digests already computed, by path: store layers and seed roots do
/// not change while bootstrap runs, so each file is hashed once per run.
#[derive(Default)]
pub struct FileDigests(Mutex<HashMap<PathBuf, re::Digest>>);

impl FileDigests {
    fn of(&self, paths: &[&Path]) -> Result<HashMap<PathBuf, re::Digest>, ExecError> {
        let known: HashMap<PathBuf, re::Digest> = {
            let m = self.0.lock().map_err(|_| ExecError::Internal("the file digest cache is poisoned".into()))?;
            paths.iter().filter_map(|p| m.get(*p).map(|d| (p.to_path_buf(), d.clone()))).collect()
        };
        let todo: Vec<&Path> = paths.iter().copied().filter(|p| !known.contains_key(*p)).collect();
        let fresh: Vec<(PathBuf, re::Digest)> = todo.par_iter().map(|p| Ok((p.to_path_buf(), file_digest(p)?))).collect::<Result<_, ExecError>>()?;
        let mut m = self.0.lock().map_err(|_| ExecError::Internal("the file digest cache is poisoned".into()))?;
        for (p, d) in &fresh {
            m.insert(p.clone(), d.clone());
        }
        Ok(known.into_iter().chain(fresh).collect())
    }
}

/// The REAPI digest of the file at `p` (read once, by the engine's own
/// file hashing).
pub fn file_digest(p: &Path) -> Result<re::Digest, ExecError> {
    let d = crate::hash::hash_file(p).map_err(|e| ExecError::Io { what: format!("read {}", p.display()), message: e.to_string() })?;
    Ok(re::Digest { hash: d.sha256.hex(), size_bytes: d.size as i64 })
}

/// An input root: its digest, and every blob it is made of by hash.
pub struct InputRoot {
    /// The root directory's digest.
    pub root: re::Digest,
    /// Every directory and file of it.
    pub blobs: BTreeMap<String, (re::Digest, Blob)>,
}

#[derive(Default)]
struct Dir {
    files: Vec<re::FileNode>,
    dirs: Vec<String>,
    links: Vec<re::SymlinkNode>,
}

/// The Merkle tree of `union`.
pub(crate) fn input_root(union: &Union, digests: &FileDigests) -> Result<InputRoot, ExecError> {
    let files: Vec<&Path> = union.items().filter_map(|(_, i)| if let Item::File { from, .. } = i { Some(from.as_path()) } else { None }).collect();
    let file_digests = digests.of(&files)?;
    let mut blobs: BTreeMap<String, (re::Digest, Blob)> = BTreeMap::new();
    let mut dirs: BTreeMap<String, Dir> = BTreeMap::new();
    dirs.insert(String::new(), Dir::default());
    for (path, item) in union.items() {
        let (parent, name) = match path.rsplit_once('/') {
            Some((p, n)) => (p.to_string(), n.to_string()),
            None => (String::new(), path.clone()),
        };
        // A parent the union holds comes first; make one it does not.
        let mut at = parent.clone();
        while !dirs.contains_key(&at) {
            dirs.insert(at.clone(), Dir::default());
            let (up, n) = match at.rsplit_once('/') {
                Some((p, n)) => (p.to_string(), n.to_string()),
                None => (String::new(), at.clone()),
            };
            dirs.entry(up.clone()).or_default().dirs.push(n);
            at = up;
        }
        match item {
            Item::Dir { .. } => {
                if !dirs.contains_key(path) {
                    dirs.insert(path.clone(), Dir::default());
                    dirs.entry(parent).or_default().dirs.push(name);
                }
            }
            Item::File { from, exec, .. } => {
                let d = file_digests.get(from).cloned().ok_or_else(|| ExecError::Internal(format!("no digest for {}", from.display())))?;
                blobs.entry(d.hash.clone()).or_insert_with(|| (d.clone(), Blob::File(from.clone())));
                dirs.entry(parent).or_default().files.push(re::FileNode { name, digest: Some(d), is_executable: *exec, node_properties: None });
            }
            Item::Bytes { bytes, mode } => {
                let d = digest(bytes);
                blobs.entry(d.hash.clone()).or_insert_with(|| (d.clone(), Blob::Bytes(bytes.to_vec())));
                dirs.entry(parent).or_default().files.push(re::FileNode { name, digest: Some(d), is_executable: mode & 0o111 != 0, node_properties: None });
            }
            Item::Link { target, .. } => {
                let target = target.to_str().ok_or_else(|| ExecError::Unsupported {
                    backend: "remote",
                    message: format!("the symlink /{path} points to a name that is not UTF-8"),
                    help: "rename its target in the step or source that makes it, or use `--backend local`".into(),
                })?;
                dirs.entry(parent).or_default().links.push(re::SymlinkNode { name, target: target.to_string(), node_properties: None });
            }
        }
    }
    // Children before parents: deepest paths first.
    let mut order: Vec<String> = dirs.keys().cloned().collect();
    order.sort_by_key(|p| std::cmp::Reverse(if p.is_empty() { 0 } else { p.matches('/').count() + 1 }));
    let mut done: HashMap<String, re::Digest> = HashMap::new();
    for path in order {
        let Some(mut d) = dirs.remove(&path) else { continue };
        d.files.sort_by(|a, b| a.name.cmp(&b.name));
        d.links.sort_by(|a, b| a.name.cmp(&b.name));
        d.dirs.sort();
        d.dirs.dedup();
        let directories = d
            .dirs
            .iter()
            .map(|n| {
                let child = if path.is_empty() { n.clone() } else { format!("{path}/{n}") };
                let digest = done.get(&child).cloned().ok_or_else(|| ExecError::Internal(format!("no digest for directory {child}")))?;
                Ok(re::DirectoryNode { name: n.clone(), digest: Some(digest) })
            })
            .collect::<Result<Vec<_>, ExecError>>()?;
        let (dg, bytes) = message(&re::Directory { files: d.files, directories, symlinks: d.links, node_properties: None });
        blobs.entry(dg.hash.clone()).or_insert_with(|| (dg.clone(), Blob::Bytes(bytes)));
        done.insert(path, dg);
    }
    let root = done.remove("").ok_or_else(|| ExecError::Internal("the input root has no root".into()))?;
    Ok(InputRoot { root, blobs })
}
