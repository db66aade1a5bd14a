//! A step's log, kept to its tail: a step that prints gigabytes must not
//! fill the disk or the engine's memory, and the end of a log is what says
//! why a step failed.
//!
//! Bytes go to a file in the store's `tmp/` in chunks of half the limit;
//! when a chunk is full the one before it is dropped. At the end the log is
//! the last one or two chunks (between half the limit and the limit), with a
//! first line saying how many bytes were dropped before them. It is hashed
//! as it is read back and renamed into `logs/`, never held in memory whole.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::PathBuf;

use crate::hash::Blake3;
use crate::store::{Store, StoreError};

/// The most of a step's log kept unless `--max-log-size` says otherwise.
pub const DEFAULT_LOG_LIMIT: u64 = 64 << 20;

/// A log being written; see the module doc.
pub struct LogTail {
    dir: tempfile::TempDir,
    chunk: u64,
    current: File,
    current_len: u64,
    /// Whether `previous` holds the full chunk before `current`.
    previous: bool,
    dropped: u64,
}

impl LogTail {
    /// A log in the store's `tmp/` keeping at most `limit` bytes (at least 2).
    pub fn new(store: &Store, limit: u64) -> Result<LogTail, StoreError> {
        let dir = store.temp_dir()?;
        let current = File::create(dir.path().join("current")).map_err(crate::store::io_at(dir.path()))?;
        Ok(LogTail { dir, chunk: (limit / 2).max(1), current, current_len: 0, previous: false, dropped: 0 })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Makes the full current chunk the previous one, dropping the one
    /// before it.
    fn rotate(&mut self) -> io::Result<()> {
        if self.previous {
            self.dropped += fs::metadata(self.path("previous"))?.len();
        }
        fs::rename(self.path("current"), self.path("previous"))?;
        self.previous = true;
        self.current = File::create(self.path("current"))?;
        self.current_len = 0;
        Ok(())
    }

    /// Hashes what is kept and stores it as `logs/<blake3>`.
    pub fn finish(mut self, store: &Store) -> Result<Blake3, StoreError> {
        let io = |e: io::Error| StoreError::Io { path: self.dir.path().to_path_buf(), source: e };
        self.current.flush().map_err(io)?;
        let mut out = store.temp_file()?;
        let mut hasher = blake3::Hasher::new();
        if self.dropped > 0 {
            let note = format!("[bootstrap: the first {} bytes of this log were dropped; its end follows]\n", self.dropped);
            hasher.update(note.as_bytes());
            out.write_all(note.as_bytes()).map_err(io)?;
        }
        let parts: &[&str] = if self.previous { &["previous", "current"] } else { &["current"] };
        let mut buf = vec![0u8; 1 << 16];
        for part in parts {
            let mut f = File::open(self.path(part)).map_err(io)?;
            loop {
                let n = f.read(&mut buf).map_err(io)?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
                out.write_all(&buf[..n]).map_err(io)?;
            }
        }
        let digest = Blake3(*hasher.finalize().as_bytes());
        let dest = store.log_path(&digest);
        if !dest.exists() {
            out.as_file().sync_all().map_err(io)?;
            out.persist(&dest).map_err(|e| StoreError::Io { path: dest.clone(), source: e.error })?;
        }
        Ok(digest)
    }
}

impl Write for LogTail {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.current_len >= self.chunk {
            self.rotate()?;
        }
        let room = (self.chunk - self.current_len).min(buf.len() as u64) as usize;
        let n = self.current.write(&buf[..room])?;
        self.current_len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.current.flush()
    }
}
