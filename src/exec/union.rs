//! The union of directory trees as an overlay computes it, written as one
//! tar stream: what a step container is given (`oci::inputs`) and what
//! `export` puts in an image layer; as a Merkle tree, a remote step's input
//! root.
//!
//! A directory over a directory merges; anything else replaces what was
//! there (and, for a directory replaced, all under it). Paths are kept in
//! byte order, a parent before its children, so the tar holds each path
//! once, in the same order on every machine.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::exec::{ExecError, SourceInput, StepRequest};

/// One path of the union.
#[derive(Debug, Clone)]
pub(crate) enum Item {
    Dir { mtime: u64 },
    File { from: PathBuf, exec: bool, mtime: u64 },
    Bytes { bytes: &'static [u8], mode: u32 },
    Link { target: PathBuf, mtime: u64 },
}

/// Paths in byte order (a parent before its children), each to its item,
/// and the backend it is made for (named in its errors).
pub(crate) struct Union(BTreeMap<String, Item>, &'static str);

impl Union {
    /// An empty union, to be sent to `backend` (`oci`, `remote`).
    pub(crate) fn for_backend(backend: &'static str) -> Union {
        Union(BTreeMap::new(), backend)
    }

    /// Every path and its item, a parent before its children.
    pub(crate) fn items(&self) -> impl Iterator<Item = (&String, &Item)> {
        self.0.iter()
    }

    /// Puts `item` at `path`, over what is there, as an overlay would.
    pub(crate) fn put(&mut self, path: String, item: Item) {
        let merges = matches!(item, Item::Dir { .. }) && matches!(self.0.get(&path), Some(Item::Dir { .. }) | None);
        if !merges {
            let under = format!("{path}/");
            let gone: Vec<String> = self.0.range(under.clone()..).take_while(|(k, _)| k.starts_with(&under)).map(|(k, _)| k.clone()).collect();
            for k in gone {
                self.0.remove(&k);
            }
        }
        self.0.insert(path, item);
    }

    /// Puts the directory `dir` (a store layer or an unpacked source) at
    /// `at` (`""` for the root), `keep` deciding which of its paths (relative
    /// to `dir`) go in and where.
    pub(crate) fn put_tree(&mut self, dir: &Path, at: &str, keep: &dyn Fn(&str, bool) -> Option<String>) -> Result<(), ExecError> {
        let mut stack = vec![(dir.to_path_buf(), String::new())];
        while let Some((d, rel)) = stack.pop() {
            let mut names: Vec<_> = fs::read_dir(&d).map_err(|e| io(&d, e))?.map(|e| e.map(|e| e.file_name())).collect::<Result<_, _>>().map_err(|e| io(&d, e))?;
            names.sort();
            // Depth-first in name order; children are pushed in reverse.
            let mut subdirs = Vec::new();
            for name in names {
                let Some(name_s) = name.to_str() else {
                    return Err(ExecError::Unsupported {
                        backend: self.1,
                        message: format!("{}: a file name that is not UTF-8 cannot be sent to that backend", d.join(&name).display()),
                        help: "rename the file in the source or step that makes it, or use `--backend local`".into(),
                    });
                };
                let p = d.join(&name);
                let r = if rel.is_empty() { name_s.to_string() } else { format!("{rel}/{name_s}") };
                let meta = fs::symlink_metadata(&p).map_err(|e| io(&p, e))?;
                let Some(dest) = keep(&r, meta.is_dir()) else { continue };
                let dest = if at.is_empty() { dest } else { format!("{at}/{dest}") };
                let mtime = meta.mtime().max(0) as u64;
                let ft = meta.file_type();
                if ft.is_dir() {
                    self.put(dest, Item::Dir { mtime });
                    subdirs.push((p, r));
                } else if ft.is_symlink() {
                    let target = fs::read_link(&p).map_err(|e| io(&p, e))?;
                    self.put(dest, Item::Link { target, mtime });
                } else if ft.is_file() {
                    self.put(dest, Item::File { from: p, exec: meta.permissions().mode() & 0o111 != 0, mtime });
                }
            }
            stack.extend(subdirs.into_iter().rev());
        }
        Ok(())
    }
}

pub(crate) fn io(p: &Path, e: std::io::Error) -> ExecError {
    ExecError::Io { what: format!("read {}", p.display()), message: e.to_string() }
}

impl Union {
    /// The tar stream: uid and gid 0, modes 0755 (directories and
    /// executables), 0777 (symlinks) or 0644, and each entry's own mtime or,
    /// given `mtime`, that one for every entry.
    pub(crate) fn write(&self, mtime: Option<u64>) -> Result<Vec<u8>, ExecError> {
        let mut b = tar::Builder::new(Vec::new());
        let fail = |p: &str, e: std::io::Error| ExecError::Io { what: format!("write the step's inputs as a tar, at {p}"), message: e.to_string() };
        for (path, item) in &self.0 {
            let mut h = tar::Header::new_gnu();
            h.set_uid(0);
            h.set_gid(0);
            match item {
                Item::Dir { mtime: own } => {
                    h.set_entry_type(tar::EntryType::Directory);
                    h.set_mode(0o755);
                    h.set_mtime(mtime.unwrap_or(*own));
                    h.set_size(0);
                    b.append_data(&mut h, format!("{path}/"), std::io::empty()).map_err(|e| fail(path, e))?;
                }
                Item::File { from, exec, mtime: own } => {
                    let f = fs::File::open(from).map_err(|e| fail(path, e))?;
                    let size = f.metadata().map_err(|e| fail(path, e))?.len();
                    h.set_entry_type(tar::EntryType::Regular);
                    h.set_mode(if *exec { 0o755 } else { 0o644 });
                    h.set_mtime(mtime.unwrap_or(*own));
                    h.set_size(size);
                    b.append_data(&mut h, path, f).map_err(|e| fail(path, e))?;
                }
                Item::Bytes { bytes, mode } => {
                    h.set_entry_type(tar::EntryType::Regular);
                    h.set_mode(*mode);
                    h.set_mtime(mtime.unwrap_or(0));
                    h.set_size(bytes.len() as u64);
                    b.append_data(&mut h, path, *bytes).map_err(|e| fail(path, e))?;
                }
                Item::Link { target, mtime: own } => {
                    h.set_entry_type(tar::EntryType::Symlink);
                    h.set_mode(0o777);
                    h.set_mtime(mtime.unwrap_or(*own));
                    h.set_size(0);
                    b.append_link(&mut h, path, target).map_err(|e| fail(path, e))?;
                }
            }
        }
        b.into_inner().map_err(|e| fail("the end", e))
    }
}

/// Top-level names the sandbox provides; never taken from a layer.
const PROVIDED: &[&str] = &["tmp", "proc", "dev", "sys"];

/// The union a step runs on `backend`, as ARCHITECTURE.md §3 orders it: the seed's
/// root directory `seed` when given (the remote backend sends it; the OCI
/// engine has it as an image), the step's sources at `<source dir>/<name>`
/// and its needs' layers, in order. What the sandbox itself provides is
/// left out, as the local backend's mounts hide it: `/tmp`, `/proc`,
/// `/dev`, `/sys`, and the backend's own files `engine` (absolute paths).
/// Where sources are mounted (`<source dir>/<name>` and its parents) only
/// directories are taken from layers. On a lineage varying the build path,
/// a layer's `/src/<name>/…` goes to `<source dir>/<name>/…`, `/src/<name>`
/// is a symlink there, and the rest of a layer's `/src` is hidden.
pub(crate) fn step_union(backend: &'static str, req: &StepRequest, seed: Option<&Path>, engine: &[&str]) -> Result<Union, ExecError> {
    let sd = req.source_dir.trim_matches('/').to_string();
    let varied = sd != "src";
    let names: Vec<&str> = req.sources.iter().map(|(n, _)| n.as_str()).collect();
    let mut u = Union::for_backend(backend);
    let provided = |r: &str| -> bool {
        let first = r.split('/').next().unwrap_or_default();
        PROVIDED.contains(&first) || engine.iter().any(|e| e.trim_start_matches('/') == r)
    };
    if let Some(seed) = seed {
        // A seed's own files where a source is mounted are hidden by it.
        let mounted = |r: &str| {
            req.sources.iter().any(|(n, _)| {
                [format!("src/{n}"), format!("{sd}/{n}")].iter().any(|m| r == m || r.starts_with(&format!("{m}/")))
            })
        };
        u.put_tree(seed, "", &|r, _| (!provided(r) && !mounted(r)).then(|| r.to_string()))?;
    }
    if !req.sources.is_empty() {
        // Parents of the mount points.
        let mut at = String::new();
        for c in sd.split('/') {
            at = if at.is_empty() { c.to_string() } else { format!("{at}/{c}") };
            u.put(at.clone(), Item::Dir { mtime: 0 });
        }
    }
    for (name, input) in &req.sources {
        let at = format!("{sd}/{name}");
        match input {
            SourceInput::Tree(dir) => {
                u.put(at.clone(), Item::Dir { mtime: 0 });
                u.put_tree(dir, &at, &|r, _| Some(r.to_string()))?;
            }
            SourceInput::File(f) => {
                let meta = fs::metadata(f).map_err(|e| io(f, e))?;
                u.put(at, Item::File { from: f.clone(), exec: meta.permissions().mode() & 0o111 != 0, mtime: meta.mtime().max(0) as u64 });
            }
        }
    }
    let keep = |r: &str, is_dir: bool| -> Option<String> {
        let mut parts = r.splitn(3, '/');
        let first = parts.next().unwrap_or_default();
        if provided(r) {
            return None;
        }
        let second = parts.next();
        if first == "src" && !req.sources.is_empty() {
            match second {
                // `/src` itself, and a source's mount point: only directories.
                None => return (is_dir && !varied).then(|| r.to_string()),
                Some(n) if names.contains(&n) => {
                    if parts.next().is_none() && !is_dir {
                        return None;
                    }
                    return Some(if varied { format!("{sd}/{}", &r[4..]) } else { r.to_string() });
                }
                // Hidden by a varied build path's directory of links.
                Some(_) if varied => return None,
                Some(_) => {}
            }
        }
        Some(r.to_string())
    };
    for layer in &req.layers {
        u.put_tree(layer, "", &keep)?;
    }
    if varied && !req.sources.is_empty() {
        u.put("src".into(), Item::Dir { mtime: 0 });
        for n in &names {
            u.put(format!("src/{n}"), Item::Link { target: PathBuf::from(format!("/{sd}/{n}")), mtime: 0 });
        }
    }
    Ok(u)
}
