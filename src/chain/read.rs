//! Reading a chain file as a chain directory may hold it, hostile or not:
//! only a regular file inside the chain directory, never more than a size
//! limit, and never waiting on a fifo or a device.

use std::io::Read;
use std::path::Path;

/// The most a chain file (or a certificate under `chain/`) may hold.
pub const FILE_LIMIT: u64 = 16 << 20;

/// Why a file was not read, as one line for a diagnostic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// There is no such file.
    NotFound,
    /// A symlink (somewhere on the way) leads out of the chain directory.
    Outside(String),
    /// It is a directory, fifo, socket or device, not a regular file.
    NotRegular(&'static str),
    /// It holds more than [`FILE_LIMIT`] bytes.
    TooLarge(u64),
    /// The operating system refused.
    Io(String),
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::NotFound => write!(f, "no such file"),
            Refused::Outside(target) => write!(
                f,
                "it is reached through a symlink that leaves the chain directory (to {target}); chain files must live inside it"
            ),
            Refused::NotRegular(what) => write!(f, "it is a {what}, not a regular file"),
            Refused::TooLarge(size) => write!(f, "it holds {size} bytes, more than the {FILE_LIMIT} a chain file may"),
            Refused::Io(e) => write!(f, "{e}"),
        }
    }
}

/// Reads `root/rel`, refusing what [`Refused`] names.
pub fn read(root: &Path, rel: &str) -> Result<Vec<u8>, Refused> {
    let path = root.join(rel);
    let io = |e: std::io::Error| if e.kind() == std::io::ErrorKind::NotFound { Refused::NotFound } else { Refused::Io(e.to_string()) };
    let real = path.canonicalize().map_err(io)?;
    let base = root.canonicalize().map_err(io)?;
    if !real.starts_with(&base) {
        return Err(Refused::Outside(real.display().to_string()));
    }
    // Non-blocking: opening a fifo must not wait for a writer.
    let fd = rustix::fs::open(&real, rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::NONBLOCK | rustix::fs::OFlags::CLOEXEC, rustix::fs::Mode::empty())
        .map_err(|e| io(e.into()))?;
    let st = rustix::fs::fstat(&fd).map_err(|e| io(e.into()))?;
    let kind = rustix::fs::FileType::from_raw_mode(st.st_mode);
    if kind != rustix::fs::FileType::RegularFile {
        return Err(Refused::NotRegular(match kind {
            rustix::fs::FileType::Directory => "directory",
            rustix::fs::FileType::Fifo => "fifo",
            rustix::fs::FileType::Socket => "socket",
            rustix::fs::FileType::CharacterDevice => "character device",
            rustix::fs::FileType::BlockDevice => "block device",
            _ => "special file",
        }));
    }
    if st.st_size as u64 > FILE_LIMIT {
        return Err(Refused::TooLarge(st.st_size as u64));
    }
    let mut bytes = Vec::new();
    std::fs::File::from(fd).take(FILE_LIMIT + 1).read_to_end(&mut bytes).map_err(io)?;
    if bytes.len() as u64 > FILE_LIMIT {
        return Err(Refused::TooLarge(bytes.len() as u64));
    }
    Ok(bytes)
}

impl Refused {
    /// The diagnostic for file `path` (relative to the chain directory).
    pub fn diagnostic(&self, path: String) -> super::diag::ChainDiagnostic {
        use super::diag::ChainDiagnostic as D;
        let help = match self {
            Refused::NotFound | Refused::Io(_) => {
                return D::Unreadable { path, reason: self.to_string() };
            }
            Refused::Outside(_) => "copy the file into the chain directory, or point the link at a file inside it",
            Refused::NotRegular(_) => "a chain file is a regular file of KDL text; remove or rename this one",
            Refused::TooLarge(_) => "split the steps over several files",
        };
        D::RefusedFile { path, reason: self.to_string(), help: help.to_string() }
    }
}
