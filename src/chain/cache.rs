//! A cache of parsed files under the state directory, so an unchanged file
//! is not parsed again (the KDL parser manages about 2 MB/s).
//!
//! An entry is keyed by blake3 over: a format tag, the engine version, a
//! fingerprint of the parser's own source and of `Cargo.lock` (so a rebuilt
//! engine with a changed parser or KDL crate never reads an old entry), the
//! file kind and the file's full text. The key is stored inside the entry
//! and checked on read. Only files that parsed without a single diagnostic
//! are cached, so a hit always means "this exact text, this exact parser,
//! no problems". Entries are written to a temporary file and renamed into
//! place; an unreadable, truncated or foreign entry is a miss, never an error.
//! Entries are postcard-encoded: JSON decoding dominated a warm run.

use std::fs;
use std::io::Write;
use std::path::PathBuf;
use std::sync::OnceLock;

use super::parse::{FileItems, FileKind};

const FORMAT: &str = "bootstrap-parse-cache-v4";

/// Identifies the parser build: any change to it invalidates every entry.
fn parser_fingerprint() -> &'static str {
    static FP: OnceLock<String> = OnceLock::new();
    FP.get_or_init(|| {
        let mut h = blake3::Hasher::new();
        h.update(env!("CARGO_PKG_VERSION").as_bytes());
        for part in [
            include_str!("parse.rs"),
            include_str!("model.rs"),
            include_str!("cache.rs"),
            include_str!("../../Cargo.lock"),
        ] {
            h.update(&(part.len() as u64).to_le_bytes());
            h.update(part.as_bytes());
        }
        h.finalize().to_hex().to_string()
    })
}

/// The parse cache in `<state>/cache/parse/`.
#[derive(Debug, Clone)]
pub struct ParseCache {
    dir: PathBuf,
}

impl ParseCache {
    /// A cache rooted at `dir` (created on first write).
    pub fn new(dir: PathBuf) -> Self {
        ParseCache { dir }
    }

    /// The cache key of a file's text.
    pub fn key(kind: FileKind, text: &str) -> String {
        let mut h = blake3::Hasher::new();
        h.update(FORMAT.as_bytes());
        h.update(&[0]);
        h.update(parser_fingerprint().as_bytes());
        h.update(&[0]);
        h.update(format!("{kind:?}").as_bytes());
        h.update(&[0]);
        h.update(text.as_bytes());
        h.finalize().to_hex().to_string()
    }

    fn path(&self, key: &str) -> PathBuf {
        self.dir.join(&key[..2]).join(format!("{key}.bin"))
    }

    /// The cached items for this text, if present and intact.
    pub fn get(&self, key: &str) -> Option<FileItems> {
        let bytes = fs::read(self.path(key)).ok()?;
        // An entry is the pair (key, items).
        let (stored, items): (String, FileItems) = postcard::from_bytes(&bytes).ok()?;
        (stored == key).then_some(items)
    }

    /// Stores items; failures are ignored (the cache is an optimisation).
    pub fn put(&self, key: &str, items: &FileItems) {
        let _ = self.try_put(key, items);
    }

    fn try_put(&self, key: &str, items: &FileItems) -> std::io::Result<()> {
        let path = self.path(key);
        let dir = path.parent().unwrap_or(&self.dir);
        fs::create_dir_all(dir)?;
        let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
        // One write of the whole entry (postcard: compact and fast to decode).
        let bytes = postcard::to_stdvec(&(key, items)).map_err(std::io::Error::other)?;
        tmp.write_all(&bytes)?;
        tmp.flush()?;
        tmp.persist(&path).map_err(|e| e.error)?;
        Ok(())
    }
}
