//! Copying a step's declared outputs out of its union, once every process
//! of the step is gone. Every path is walked one component at a time
//! through directory descriptors (`openat` with `O_NOFOLLOW`), and each
//! entry is opened once and then only read through its descriptor: no path
//! is ever resolved again by name, so a symlink planted anywhere can neither
//! redirect the walk nor be followed when copying. Symlinks at or under an
//! output are copied as links.

use std::fs::{self, File};
use std::io;
use std::os::fd::OwnedFd;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use rustix::fs::{AtFlags, FileType, Mode, OFlags};

fn dir_flags() -> OFlags {
    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC
}

/// Copies the entry at `real` (absolute inside the sandbox; the declared
/// output `out`, or where a varied build path really put it) from the union
/// at `root` to `out` under `capture`. A symlink or non-directory on the way
/// to it is refused; one at or under it is copied as a link.
pub(super) fn capture(root: &Path, real: &str, out: &str, capture: &Path) -> Result<(), String> {
    let comps: Vec<&str> = real.split('/').filter(|c| !c.is_empty()).collect();
    let Some((last, parents)) = comps.split_last() else { return Err("it is the root itself".into()) };
    let mut dir: OwnedFd = rustix::fs::open(root, dir_flags(), Mode::empty()).map_err(|e| format!("open the root: {e}"))?;
    for (i, c) in parents.iter().enumerate() {
        let shown = || format!("/{}", comps[..=i].join("/"));
        let st = rustix::fs::statat(&dir, *c, AtFlags::SYMLINK_NOFOLLOW).map_err(|_| "it does not exist".to_string())?;
        match FileType::from_raw_mode(st.st_mode) {
            FileType::Directory => {}
            FileType::Symlink => return Err(format!("`{}` on the way to it is a symlink", shown())),
            _ => return Err(format!("`{}` on the way to it is not a directory", shown())),
        }
        dir = rustix::fs::openat(&dir, *c, dir_flags(), Mode::empty()).map_err(|e| format!("`{}`: {e}", shown()))?;
    }
    rustix::fs::statat(&dir, *last, AtFlags::SYMLINK_NOFOLLOW).map_err(|_| "it does not exist".to_string())?;
    let to = capture.join(out.trim_start_matches('/'));
    if let Some(parent) = to.parent() {
        fs::create_dir_all(parent).map_err(|e| format!("capture: {e}"))?;
    }
    copy_at(&dir, OsStr::new(last), &to, out)
}

/// Copies entry `name` of directory `dir` to `to` (a host path the engine
/// owns), recursively for a directory.
fn copy_at(dir: &OwnedFd, name: &OsStr, to: &Path, shown: &str) -> Result<(), String> {
    let fail = |e: &dyn std::fmt::Display| format!("`{shown}`: {e}");
    let st = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW).map_err(|e| fail(&e))?;
    match FileType::from_raw_mode(st.st_mode) {
        FileType::Symlink => {
            let target = rustix::fs::readlinkat(dir, name, Vec::new()).map_err(|e| fail(&e))?;
            std::os::unix::fs::symlink(OsStr::from_bytes(target.as_bytes()), to).map_err(|e| format!("capture: {e}"))
        }
        FileType::RegularFile => {
            let fd = rustix::fs::openat(dir, name, OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty())
                .map_err(|e| fail(&e))?;
            // What was opened is what was looked at: a swap in between shows here.
            let opened = rustix::fs::fstat(&fd).map_err(|e| fail(&e))?;
            if FileType::from_raw_mode(opened.st_mode) != FileType::RegularFile {
                return Err(format!("`{shown}` changed while it was captured"));
            }
            let mut from = File::from(fd);
            let mut dest = File::create(to).map_err(|e| format!("capture: {e}"))?;
            io::copy(&mut from, &mut dest).map_err(|e| fail(&e))?;
            let exec = opened.st_mode & 0o111 != 0;
            fs::set_permissions(to, fs::Permissions::from_mode(if exec { 0o755 } else { 0o644 })).map_err(|e| format!("capture: {e}"))
        }
        FileType::Directory => {
            let sub = rustix::fs::openat(dir, name, dir_flags(), Mode::empty()).map_err(|e| fail(&e))?;
            fs::create_dir_all(to).map_err(|e| format!("capture: {e}"))?;
            let mut names: Vec<Vec<u8>> = Vec::new();
            for entry in rustix::fs::Dir::read_from(&sub).map_err(|e| fail(&e))? {
                let entry = entry.map_err(|e| fail(&e))?;
                let n = entry.file_name().to_bytes();
                if n != b"." && n != b".." {
                    names.push(n.to_vec());
                }
            }
            names.sort();
            for n in names {
                let n = OsStr::from_bytes(&n);
                copy_at(&sub, n, &to.join(n), &format!("{shown}/{}", n.to_string_lossy()))?;
            }
            Ok(())
        }
        _ => Err(format!("`{shown}` is not a regular file, directory or symlink")),
    }
}
