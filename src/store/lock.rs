//! The one lock that guards a store: `flock` on `STATE/lock`.
//!
//! Commands that write (fetch, gc, runs) hold it exclusively for their whole
//! run; `store verify` holds it shared. Readers that only look at finished
//! objects (plan, check) do not take it: objects appear by rename, whole.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::Path;

use super::StoreError;

/// Shared (readers) or exclusive (writers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockMode {
    /// Several holders at once; no exclusive holder.
    Shared,
    /// One holder; nobody else.
    Exclusive,
}

/// What to do when another process holds the lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// Block until it is released, after calling the notifier once.
    Block,
    /// Fail at once with [`StoreError::Busy`].
    NoWait,
}

/// A held lock; released when dropped (or when the process dies).
#[derive(Debug)]
pub struct StoreLock {
    file: File,
    mode: LockMode,
}

impl Drop for StoreLock {
    fn drop(&mut self) {
        // Clear the holder line so a later waiter never names a process that is gone.
        if self.mode == LockMode::Exclusive {
            let _ = self.file.set_len(0);
        }
    }
}

impl StoreLock {
    /// Takes the lock at `path`, creating the file if needed. When it is held
    /// by someone else, `notify` gets a sentence naming the holder before
    /// blocking (with [`Wait::Block`]).
    pub fn acquire(path: &Path, mode: LockMode, wait: Wait, notify: &dyn Fn(&str)) -> Result<StoreLock, StoreError> {
        let io = |source| StoreError::Io { path: path.to_path_buf(), source };
        let mut file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path).map_err(io)?;
        let attempt = match mode {
            LockMode::Shared => file.try_lock_shared(),
            LockMode::Exclusive => file.try_lock(),
        };
        match attempt {
            Ok(()) => {}
            Err(TryLockError::Error(e)) => return Err(io(e)),
            Err(TryLockError::WouldBlock) => {
                let holder = holder(&mut file);
                if wait == Wait::NoWait {
                    return Err(StoreError::Busy { path: path.to_path_buf(), holder });
                }
                notify(&format!(
                    "waiting for the store lock {} (held by {holder}); Ctrl-C to give up",
                    path.display()
                ));
                match mode {
                    LockMode::Shared => file.lock_shared(),
                    LockMode::Exclusive => file.lock(),
                }
                .map_err(io)?;
            }
        }
        if mode == LockMode::Exclusive {
            // Who holds it, for the message another process prints.
            let me = format!("pid {}: {}\n", std::process::id(), command_line());
            file.set_len(0).and_then(|()| file.rewind()).and_then(|()| file.write_all(me.as_bytes())).map_err(io)?;
        }
        Ok(StoreLock { file, mode })
    }
}

fn holder(file: &mut File) -> String {
    let mut s = String::new();
    let _ = file.rewind().and_then(|()| file.take(512).read_to_string(&mut s));
    let s = s.trim();
    if s.is_empty() { "another process".to_string() } else { s.to_string() }
}

fn command_line() -> String {
    let args: Vec<String> = std::env::args().collect();
    let mut s = args.join(" ");
    s.truncate(200);
    s
}
