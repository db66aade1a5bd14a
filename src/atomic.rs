//! Writing a file outside the store whole or not at all (snapshots,
//! signatures, statements, chain.kdl, the settings file): a temporary file
//! in the same directory, fsynced, renamed over the name, and the directory
//! fsynced, so a crash leaves the old file or the new one, never half of
//! one. (The store has its own, under its `tmp/`.)

use std::io::Write;
use std::path::Path;

/// Writes `bytes` to `path` with permissions `mode`, creating its
/// directory when missing.
pub fn write(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    std::fs::set_permissions(tmp.path(), std::os::unix::fs::PermissionsExt::from_mode(mode))?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    std::fs::File::open(dir)?.sync_all()
}

/// Files meant for the repository and for others to read (snapshots,
/// signatures, statements): 0644, not a temporary file's 0600.
pub const SHARED: u32 = 0o644;
/// Files of this machine only (the settings file): 0600, as before.
pub const PRIVATE: u32 = 0o600;
