//! A small union copied into a tmpfs instead of mounted as an overlay.
//!
//! Every `read` and `write` through overlayfs costs more than on a plain
//! filesystem, and the first stages of a chain are made of programs that
//! read and write one byte per system call (M2-Planet, hex2, M1): for them
//! the overlay is a quarter of their time. Their inputs are a few megabytes,
//! so the helper copies them into a fresh tmpfs instead, with the overlay's
//! semantics (a directory over a directory merges, anything else replaces
//! what was below it) and the lower entries' modes and modification times,
//! so a step sees the same tree either way. Large unions (a seed's root
//! filesystem, gcc's sources) stay overlays.

use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, Timespec, Timestamps};
use rustix::mount::MountFlags;

/// The room the trees in `lowers` take in a tmpfs, when that is at most
/// `limit` bytes (file content and about a page per entry). Stops walking
/// as soon as the answer is no.
pub(super) fn small(lowers: &[PathBuf], limit: u64) -> Option<u64> {
    // An entry costs about a page of tmpfs metadata, whatever its size.
    let mut budget = limit as i128;
    fn walk(dir: &Path, budget: &mut i128) -> bool {
        let Ok(entries) = fs::read_dir(dir) else { return false };
        for e in entries {
            let Ok(e) = e else { return false };
            let Ok(m) = e.path().symlink_metadata() else { return false };
            *budget -= 4096 + if m.is_file() { m.len() as i128 } else { 0 };
            if *budget < 0 || (m.is_dir() && !walk(&e.path(), budget)) {
                return false;
            }
        }
        true
    }
    (limit > 0 && lowers.iter().all(|l| walk(l, &mut budget))).then(|| (limit as i128 - budget) as u64)
}

/// Mounts a tmpfs of `size` bytes on `target` and copies `lowers` (top
/// first) into it, bottom first. On failure the tmpfs is unmounted again,
/// so the caller can fall back to an overlay on the same place.
pub(super) fn materialize(lowers: &[PathBuf], target: &Path, size: u64) -> Result<(), String> {
    let options = std::ffi::CString::new(format!("mode=755,size={size}")).map_err(|e| e.to_string())?;
    rustix::mount::mount("tmpfs", target, "tmpfs", MountFlags::NOSUID | MountFlags::NODEV, options.as_c_str())
        .map_err(|e| format!("mount a tmpfs on {}: {e}", target.display()))?;
    let copied = lowers.iter().rev().try_for_each(|l| {
        let m = fs::metadata(l)?;
        fs::set_permissions(target, fs::Permissions::from_mode(m.mode() & 0o7777))?;
        copy_into(l, target)?;
        set_mtime(target, &m)
    });
    copied.map_err(|e| {
        let _ = rustix::mount::unmount(target, rustix::mount::UnmountFlags::DETACH);
        format!("copy the inputs into {}: {e}", target.display())
    })
}

fn set_mtime(path: &Path, m: &fs::Metadata) -> io::Result<()> {
    let t = Timespec { tv_sec: m.mtime(), tv_nsec: m.mtime_nsec() as _ };
    rustix::fs::utimensat(rustix::fs::CWD, path, &Timestamps { last_access: t, last_modification: t }, AtFlags::SYMLINK_NOFOLLOW)
        .map_err(io::Error::from)
}

/// Copies the entries of directory `from` over directory `to`, as an
/// overlay shows `from` over `to`. Symlinks are copied as links, never
/// followed; device files, fifos and sockets are left out (the sandbox
/// brings its own `/dev`).
fn copy_into(from: &Path, to: &Path) -> io::Result<()> {
    for e in fs::read_dir(from)? {
        let e = e?;
        let (src, dst) = (e.path(), to.join(e.file_name()));
        let m = src.symlink_metadata()?;
        let below = dst.symlink_metadata().ok();
        if m.is_dir() {
            match below {
                Some(b) if b.is_dir() => {}
                Some(_) => {
                    fs::remove_file(&dst)?;
                    fs::create_dir(&dst)?;
                }
                None => fs::create_dir(&dst)?,
            }
            fs::set_permissions(&dst, fs::Permissions::from_mode(m.mode() & 0o7777))?;
            copy_into(&src, &dst)?;
            set_mtime(&dst, &m)?;
            continue;
        }
        if !(m.is_file() || m.is_symlink()) {
            continue;
        }
        match below {
            Some(b) if b.is_dir() => fs::remove_dir_all(&dst)?,
            Some(_) => fs::remove_file(&dst)?,
            None => {}
        }
        if m.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(&src)?, &dst)?;
        } else {
            fs::copy(&src, &dst)?;
            fs::set_permissions(&dst, fs::Permissions::from_mode(m.mode() & 0o7777))?;
        }
        set_mtime(&dst, &m)?;
    }
    Ok(())
}
