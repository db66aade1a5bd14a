//! The content-addressed state directory (ARCHITECTURE.md §4), `.bootstrap/` under the
//! chain directory unless `--state` moves it:
//!
//! ```text
//! lock                          the store lock (holder's pid and command inside)
//! sources/<sha256 hex>          fetched source files, named by their sha256
//! layers/<blake3 hex>/          trees (unpacked sources, step outputs), named by tree digest
//! logs/<blake3 hex>             step logs, named by the BLAKE3 of their bytes
//! receipts/steps/<step>/<seed>/<input>.json   what runs produced (see [`receipt`]); they keep objects alive
//! receipts/stages/<stage>.json  what the last `verify` reaching a stage decided (see `verify::stage`)
//! index/unpack/<sha256 hex>-strip<N>   the layer a source unpacks to
//! index/unpack/<sha256 hex>-rootfs      the layer a seed's rootfs tarball unpacks to
//! index/origin/sha256-<hex>, blake3-<hex>   where a source file or layer first came from (see [`origin`])
//! index/distfiles/<blake3 of path>      a distfile's sha256 and the lstat fingerprint it holds for (`fetch`)
//! index/seeds/<blake3 of path>          a seed directory's digest and the lstat fingerprint it holds for (`build::seed`; the memo is `remember`)
//! index/layer-stat/<blake3 hex>         a layer's stat fingerprint when it last hashed to its name (see [`integrity`])
//! tmp/                          work in progress; nothing here is ever final
//! cache/parse/                  the chain parse cache (see `chain::cache`)
//! cache/stages/<stage>.bin       binary twins of the stage receipts (see `verify::stage`)
//! settings.kdl                  remembered seed locations and distfiles directories (`chain::settings`), with a .gitignore
//! worker-blobs/<sha256 hex>[.x]   `bootstrap worker`: files the server sent, by content (`.x`: executable)
//! worker-roots/<n>/             `bootstrap worker`: input roots kept between leases (emptied when a worker starts)
//! ```
//!
//! Every object is written under `tmp/`, fsynced, and renamed to its final
//! name, so a crash leaves at most garbage in `tmp/`, never a partial object.
//! Objects are never modified after the rename. [`Store::open`] takes the
//! store lock ([`lock`]); `verify` and `gc` are in their own modules.

mod gc;
mod integrity;
mod lock;
pub mod origin;
pub mod receipt;
mod remember;
mod verify;

use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use miette::Diagnostic;
use rayon::prelude::*;
use thiserror::Error;

use crate::hash::{self, Blake3, EntryKind, HashError, Sha256, Tree};

pub use gc::{GcReport, Removed};
pub use integrity::{LayerState, check_layer_unlocked};
pub use lock::{LockMode, StoreLock, Wait};
pub use remember::Remembered;
pub use verify::{Problem, VerifyReport};

/// Errors of the store.
#[derive(Debug, Error, Diagnostic)]
pub enum StoreError {
    /// A filesystem operation in the store failed.
    #[error("store: {}: {source}", path.display())]
    #[diagnostic(code(bootstrap::store::io), help("check the state directory's permissions and free space (`--state` moves it)"))]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Another process holds the lock and `--no-wait` was given.
    #[error("the store is in use: {} is held by {holder}", path.display())]
    #[diagnostic(code(bootstrap::store::busy), help("wait for that process to finish, or run again without --no-wait to queue behind it"))]
    Busy {
        /// The lock file.
        path: PathBuf,
        /// Who holds it, as written in the lock file.
        holder: String,
    },
    /// Hashing a tree being committed failed.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Hash(#[from] HashError),
}

pub(crate) fn io_at(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io { path: path.to_path_buf(), source }
}

/// An open store, holding the store lock for as long as it lives.
#[derive(Debug)]
pub struct Store {
    root: PathBuf,
    _lock: StoreLock,
}

const DIRS: &[&str] = &["sources", "layers", "logs", "receipts", "index/unpack", "index/origin", "tmp"];

impl Store {
    /// Opens (creating if needed) the store at `root` and takes its lock.
    /// `notify` is told when the call has to wait for another process.
    pub fn open(root: &Path, mode: LockMode, wait: Wait, notify: &dyn Fn(&str)) -> Result<Store, StoreError> {
        for d in DIRS {
            let p = root.join(d);
            fs::create_dir_all(&p).map_err(io_at(&p))?;
        }
        let lock = StoreLock::acquire(&root.join("lock"), mode, wait, notify)?;
        Ok(Store { root: root.to_path_buf(), _lock: lock })
    }

    /// The state directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where a source file with this sha256 lives (it may not exist).
    pub fn source_path(&self, sha: &Sha256) -> PathBuf {
        self.root.join("sources").join(sha.hex())
    }

    /// Whether the source is in the store.
    pub fn has_source(&self, sha: &Sha256) -> bool {
        self.source_path(sha).is_file()
    }

    /// Where the step log with this BLAKE3 lives (it may not exist).
    pub fn log_path(&self, digest: &Blake3) -> PathBuf {
        self.root.join("logs").join(digest.hex())
    }

    /// The last `lines` lines of the log `digest`, read from its end only
    /// (a log may be gigabytes; only its last 64 KiB are read). Empty when
    /// the log is empty or missing.
    pub fn log_tail(&self, digest: &Blake3, lines: usize) -> Vec<String> {
        use std::io::{Read, Seek, SeekFrom};
        const WINDOW: u64 = 64 * 1024;
        let Ok(mut f) = File::open(self.log_path(digest)) else { return Vec::new() };
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        let start = len.saturating_sub(WINDOW);
        let mut buf = Vec::new();
        if f.seek(SeekFrom::Start(start)).is_err() || f.read_to_end(&mut buf).is_err() {
            return Vec::new();
        }
        let text = String::from_utf8_lossy(&buf);
        let mut all: Vec<&str> = text.lines().collect();
        // A window that starts mid-file starts mid-line: that first piece is not a line.
        if start > 0 && !all.is_empty() {
            all.remove(0);
        }
        all[all.len().saturating_sub(lines)..].iter().map(|l| l.to_string()).collect()
    }

    /// Where a layer with this tree digest lives (it may not exist).
    pub fn layer_path(&self, digest: &Blake3) -> PathBuf {
        layers_dir(&self.root).join(digest.hex())
    }

    /// The digests of every layer in the store, from one read of `layers/`
    /// (cheaper than a lookup per layer when many are asked about; a name
    /// that is not a digest is left out). Missing `layers/` means none.
    pub fn layer_names(&self) -> Result<std::collections::HashSet<Blake3>, StoreError> {
        let dir = layers_dir(&self.root);
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Default::default()),
            Err(source) => return Err(StoreError::Io { path: dir, source }),
        };
        let mut names = std::collections::HashSet::new();
        for entry in entries {
            let entry = entry.map_err(|source| StoreError::Io { path: dir.clone(), source })?;
            if let Some(d) = entry.file_name().to_str().and_then(Blake3::from_hex) {
                names.insert(d);
            }
        }
        Ok(names)
    }

    /// `bootstrap worker`'s cache of the files its server sent, by content.
    pub fn worker_blobs(&self) -> PathBuf {
        self.root.join("worker-blobs")
    }

    /// `bootstrap worker`'s input roots kept between leases.
    pub fn worker_roots(&self) -> PathBuf {
        self.root.join("worker-roots")
    }

    /// The temporary directory; same filesystem as the objects, so renames are atomic.
    pub fn tmp(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// A fresh temporary file under `tmp/`, removed when dropped unless committed.
    pub fn temp_file(&self) -> Result<tempfile::NamedTempFile, StoreError> {
        let tmp = self.tmp();
        tempfile::Builder::new().prefix("obj-").tempfile_in(&tmp).map_err(io_at(&tmp))
    }

    /// A fresh temporary directory under `tmp/`, removed when dropped unless committed.
    pub fn temp_dir(&self) -> Result<tempfile::TempDir, StoreError> {
        let tmp = self.tmp();
        tempfile::Builder::new().prefix("tree-").tempdir_in(&tmp).map_err(io_at(&tmp))
    }

    /// Moves a fully written file (already checked to have `sha`) to
    /// `sources/<hex>`: fsync, rename, fsync the directory.
    pub fn commit_source(&self, file: &Path, sha: &Sha256) -> Result<PathBuf, StoreError> {
        let dest = self.source_path(sha);
        File::open(file).and_then(|f| f.sync_all()).map_err(io_at(file))?;
        fs::set_permissions(file, fs::Permissions::from_mode(0o644)).map_err(io_at(file))?;
        fs::rename(file, &dest).map_err(io_at(&dest))?;
        sync_dir(&self.root.join("sources"))?;
        Ok(dest)
    }

    /// Stores `bytes` as the source file `sources/<sha256 hex>`, written and
    /// committed as a fetched file is ([`Store::commit_source`]), unless the
    /// store holds it already. Returns their sha256.
    pub fn put_source_bytes(&self, bytes: &[u8]) -> Result<Sha256, StoreError> {
        let sha = hash::hash_bytes(bytes).sha256;
        if self.has_source(&sha) {
            return Ok(sha);
        }
        let mut tmp = self.temp_file()?;
        tmp.write_all(bytes).map_err(io_at(tmp.path()))?;
        self.commit_source(tmp.path(), &sha)?;
        // Renamed away: nothing left for the temporary file to remove.
        let _ = tmp.into_temp_path().keep();
        Ok(sha)
    }

    /// Normalises the tree at `dir` (modes 0644/0755, nothing else), hashes
    /// it, fsyncs it and renames it to `layers/<digest>`. When that layer
    /// already exists the new copy is dropped: same digest, same bytes.
    pub fn commit_tree(&self, dir: tempfile::TempDir) -> Result<(Blake3, Tree), StoreError> {
        let tree = hash::hash_tree(dir.path())?;
        self.commit_hashed_tree(dir, tree)
    }

    /// [`Store::commit_tree`] for a tree already hashed (`tree` must be
    /// `hash_tree` of `dir`, untouched since), so a candidate compared with
    /// a pin is not hashed twice.
    pub fn commit_hashed_tree(&self, dir: tempfile::TempDir, tree: Tree) -> Result<(Blake3, Tree), StoreError> {
        let digest = tree.digest();
        let dest = self.layer_path(&digest);
        if dest.exists() {
            // Same digest, same bytes: nothing to normalise, sync or rename.
            return Ok((digest, tree));
        }
        let base = dir.path();
        tree.entries.par_iter().try_for_each(|e| -> Result<(), StoreError> {
            let p = e.full_path(base);
            match e.kind {
                EntryKind::Symlink { .. } => Ok(()),
                EntryKind::Dir => fs::set_permissions(&p, fs::Permissions::from_mode(e.mode())).map_err(io_at(&p)),
                EntryKind::File { .. } => {
                    fs::set_permissions(&p, fs::Permissions::from_mode(e.mode())).map_err(io_at(&p))?;
                    File::open(&p).and_then(|f| f.sync_all()).map_err(io_at(&p))
                }
            }
        })?;
        for e in tree.entries.iter().filter(|e| matches!(e.kind, EntryKind::Dir)) {
            sync_dir(&e.full_path(base))?;
        }
        fs::set_permissions(base, fs::Permissions::from_mode(0o755)).map_err(io_at(base))?;
        sync_dir(base)?;
        let kept = dir.keep();
        if let Err(e) = fs::rename(&kept, &dest) {
            let _ = fs::remove_dir_all(&kept);
            // Another writer may have won the race with the same bytes.
            if !dest.exists() {
                return Err(io_at(&dest)(e));
            }
        }
        sync_dir(&self.root.join("layers"))?;
        Ok((digest, tree))
    }

    fn unpack_index(&self, sha: &Sha256, kind: &str) -> PathBuf {
        self.root.join("index").join("unpack").join(format!("{}-{kind}", sha.hex()))
    }

    fn indexed_layer(&self, sha: &Sha256, kind: &str) -> Option<Blake3> {
        let text = fs::read_to_string(self.unpack_index(sha, kind)).ok()?;
        let digest: Blake3 = text.trim().parse().ok()?;
        self.layer_path(&digest).is_dir().then_some(digest)
    }

    /// The layer a source unpacks to, if it was unpacked before and the layer is present.
    pub fn unpacked(&self, sha: &Sha256, strip: u32) -> Option<Blake3> {
        self.indexed_layer(sha, &format!("strip{strip}"))
    }

    /// Records that the source unpacks to `layer`.
    pub fn set_unpacked(&self, sha: &Sha256, strip: u32, layer: &Blake3) -> Result<(), StoreError> {
        self.write_atomic(&self.unpack_index(sha, &format!("strip{strip}")), format!("{layer}\n").as_bytes())
    }

    /// The layer a seed's rootfs tarball unpacks to, if unpacked before and present.
    pub fn unpacked_rootfs(&self, sha: &Sha256) -> Option<Blake3> {
        self.indexed_layer(sha, "rootfs")
    }

    /// Records that the rootfs tarball unpacks to `layer`.
    pub fn set_unpacked_rootfs(&self, sha: &Sha256, layer: &Blake3) -> Result<(), StoreError> {
        self.write_atomic(&self.unpack_index(sha, "rootfs"), format!("{layer}\n").as_bytes())
    }

    /// Writes `bytes` to `path` (inside the store) by temp file, fsync and rename.
    pub fn write_atomic(&self, path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
        let mut tmp = self.temp_file()?;
        tmp.write_all(bytes).and_then(|()| tmp.as_file().sync_all()).map_err(io_at(tmp.path()))?;
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(io_at(parent))?;
        }
        tmp.persist(path).map_err(|e| io_at(path)(e.error))?;
        if let Some(parent) = path.parent() {
            sync_dir(parent)?;
        }
        Ok(())
    }
}

/// `cache/parse/` under the state directory `state`: the chain parse
/// cache (`chain::cache`), which commands use before the store is open.
pub fn parse_cache_dir(state: &Path) -> PathBuf {
    state.join("cache").join("parse")
}

/// `receipts/stages/<stage>.json`: what the last `verify` reaching `stage`
/// decided (`verify::stage`).
pub fn stage_receipt_path(state: &Path, stage: &str) -> PathBuf {
    state.join("receipts").join("stages").join(format!("{stage}.json"))
}

/// `cache/stages/<stage>.bin`: the binary twin of that receipt.
pub fn stage_twin_path(state: &Path, stage: &str) -> PathBuf {
    state.join("cache").join("stages").join(format!("{stage}.bin"))
}

/// `layers/`: every layer, each named by its tree digest.
pub fn layers_dir(state: &Path) -> PathBuf {
    state.join("layers")
}

/// The entries of `dir`, sorted by path; none when it does not exist.
pub(crate) fn entries(dir: &Path) -> Result<Vec<PathBuf>, StoreError> {
    let mut v: Vec<PathBuf> = Vec::new();
    match fs::read_dir(dir) {
        Ok(rd) => {
            for d in rd {
                v.push(d.map_err(io_at(dir))?.path());
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_at(dir)(e)),
    }
    v.sort();
    Ok(v)
}

/// fsyncs a directory so a rename into it survives a crash.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir).and_then(|f| f.sync_all()).map_err(io_at(dir))
}

/// Whether something last changed at `changed` (nanoseconds since the
/// epoch) is settled enough to cache a fact about it: as git does for its
/// index, not when it changed less than two seconds ago, since a further
/// change in the same clock tick could leave its times as they are.
pub fn settled(changed: i128) -> bool {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as i128);
    changed < now - 2_000_000_000
}

/// Human size: `12.3 MiB`.
pub fn human_size(bytes: u64) -> String {
    const UNITS: &[&str] = &["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 { format!("{bytes} B") } else { format!("{v:.1} {}", UNITS[u]) }
}
