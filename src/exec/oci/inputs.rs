//! The tar stream a step container is given before it starts: the union of
//! the step's sources and its needs' layers, as ARCHITECTURE.md §3 orders them, plus
//! the container init. The engine unpacks it over the seed image, which
//! gives overlay semantics; the union is computed the same way
//! ([`crate::exec::union`]), so the stream holds each path once.
//!
//! What the sandbox itself provides is left out of the layers, as the
//! local backend's mounts hide it: `/tmp`, `/proc`, `/dev`, `/sys`. Where
//! sources are mounted (`<source dir>/<name>` and its parents) only
//! directories are taken from layers. On a lineage varying the build path,
//! a layer's `/src/<name>/…` goes to `<source dir>/<name>/…`, `/src/<name>`
//! is a symlink there, and the rest of a layer's `/src` is hidden.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::PathBuf;

use super::INIT_PATH;
use crate::exec::union::{Item, Union, io};
use crate::exec::{ExecError, SourceInput, StepRequest};

/// Top-level names the sandbox provides; never taken from a layer.
const PROVIDED: &[&str] = &["tmp", "proc", "dev", "sys"];

/// The tar stream of the step's inputs and the container init `init`.
pub fn tar(req: &StepRequest, init: &'static [u8]) -> Result<Vec<u8>, ExecError> {
    let sd = req.source_dir.trim_matches('/').to_string();
    let varied = sd != "src";
    let names: Vec<&str> = req.sources.iter().map(|(n, _)| n.as_str()).collect();
    let mut u = Union::default();
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
        if PROVIDED.contains(&first) || r == INIT_PATH.trim_start_matches('/') {
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
    u.put(INIT_PATH.trim_start_matches('/').to_string(), Item::Bytes { bytes: init, mode: 0o755 });
    u.write(None)
}
