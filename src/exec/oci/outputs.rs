//! Capturing a declared output from the tar stream the engine gives for it
//! (`GET /containers/{id}/archive?path=…`), with exactly the local
//! backend's rules: regular files (mode 0644, or 0755 when any execute bit
//! is set), directories and symlinks (stored as links, never followed);
//! anything else fails the step. A file the stream gives as a hard link to
//! an earlier one is stored as a copy, as the local backend's copy does.

use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

/// Why an output could not be captured: the step's fault (its `BadOutput`
/// reason), or a failure of this machine's disk.
pub enum CaptureError {
    /// The step's fault: its reason.
    Bad(String),
    /// Writing the capture failed.
    Io(String),
}

/// Unpacks `stream`, the engine's archive of the output `declared` (stored
/// under that path in `capture`; its tar entries are named from the last
/// component of the path it was read at).
pub fn capture(stream: &[u8], declared: &str, capture: &Path) -> Result<(), CaptureError> {
    let rel = declared.trim_start_matches('/');
    let dest = capture.join(rel);
    let io = |what: &str, e: std::io::Error| CaptureError::Io(format!("capture {what}: {e}"));
    if let Some(parent) = dest.parent() {
        fs::create_dir_all(parent).map_err(|e| io(declared, e))?;
    }
    let mut archive = tar::Archive::new(stream);
    let mut top: Option<String> = None;
    let mut seen = false;
    for entry in archive.entries().map_err(|e| CaptureError::Bad(format!("the engine's archive of it is unreadable: {e}")))? {
        let mut entry = entry.map_err(|e| CaptureError::Bad(format!("the engine's archive of it is unreadable: {e}")))?;
        let name = entry.path().map_err(|e| CaptureError::Bad(format!("a name in the engine's archive: {e}")))?.into_owned();
        let Some(rest) = relative(&name, &mut top) else {
            return Err(CaptureError::Bad(format!("the engine's archive holds an unexpected path `{}`", name.display())));
        };
        seen = true;
        let to = if rest.as_os_str().is_empty() { dest.clone() } else { dest.join(&rest) };
        let shown = if rest.as_os_str().is_empty() { declared.to_string() } else { format!("{declared}/{}", rest.display()) };
        if let Some(parent) = to.parent() {
            fs::create_dir_all(parent).map_err(|e| io(&shown, e))?;
        }
        match entry.header().entry_type() {
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let exec = entry.header().mode().unwrap_or(0) & 0o111 != 0;
                let mut f = fs::File::create(&to).map_err(|e| io(&shown, e))?;
                std::io::copy(&mut entry, &mut f).map_err(|e| io(&shown, e))?;
                fs::set_permissions(&to, fs::Permissions::from_mode(if exec { 0o755 } else { 0o644 })).map_err(|e| io(&shown, e))?;
            }
            tar::EntryType::Directory => fs::create_dir_all(&to).map_err(|e| io(&shown, e))?,
            tar::EntryType::Symlink => {
                let target = entry.link_name().ok().flatten().ok_or_else(|| CaptureError::Bad(format!("`{shown}`: a symlink without a target")))?;
                std::os::unix::fs::symlink(target.as_ref(), &to).map_err(|e| io(&shown, e))?;
            }
            tar::EntryType::Link => {
                // A second name of a file already unpacked: a copy of it.
                let target = entry.link_name().ok().flatten().map(|t| t.into_owned());
                let first = target.and_then(|t| relative(&t, &mut top.clone())).map(|r| if r.as_os_str().is_empty() { dest.clone() } else { dest.join(r) });
                let Some(first) = first.filter(|f| f.is_file()) else {
                    return Err(CaptureError::Bad(format!("`{shown}`: a hard link to a file outside the output")));
                };
                let mut bytes = Vec::new();
                fs::File::open(&first).and_then(|mut f| f.read_to_end(&mut bytes)).map_err(|e| io(&shown, e))?;
                let mode = fs::metadata(&first).map_err(|e| io(&shown, e))?.permissions().mode();
                fs::write(&to, bytes).map_err(|e| io(&shown, e))?;
                fs::set_permissions(&to, fs::Permissions::from_mode(mode & 0o777)).map_err(|e| io(&shown, e))?;
            }
            // Extended headers carry no entry of their own.
            tar::EntryType::XHeader | tar::EntryType::XGlobalHeader | tar::EntryType::GNULongName | tar::EntryType::GNULongLink => {}
            _ => return Err(CaptureError::Bad(format!("`{shown}` is not a regular file, directory or symlink"))),
        }
    }
    if !seen {
        return Err(CaptureError::Bad("it does not exist".into()));
    }
    Ok(())
}

/// `name` without its first component (which must be the same for every
/// entry: the output's own name), refusing `..` and absolute names.
fn relative(name: &Path, top: &mut Option<String>) -> Option<PathBuf> {
    let mut comps = name.components().filter(|c| !matches!(c, Component::CurDir));
    let first = match comps.next()? {
        Component::Normal(f) => f.to_string_lossy().into_owned(),
        _ => return None,
    };
    match top {
        Some(t) if *t != first => return None,
        Some(_) => {}
        None => *top = Some(first),
    }
    let mut rest = PathBuf::new();
    for c in comps {
        match c {
            Component::Normal(n) => rest.push(n),
            _ => return None,
        }
    }
    Some(rest)
}
