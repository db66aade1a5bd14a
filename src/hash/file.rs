//! Hashing file contents: one pass over the bytes feeds both BLAKE3 and SHA-256.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;

use sha2::Digest as _;

use super::{Blake3, Sha256};

/// Files at least this large are memory-mapped and their two digests are
/// computed on two threads; smaller ones are read into a buffer.
const MMAP_THRESHOLD: u64 = 4 << 20;

/// The size and both digests of one byte stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContentDigests {
    /// Number of bytes hashed.
    pub size: u64,
    /// BLAKE3 of the bytes.
    pub blake3: Blake3,
    /// SHA-256 of the bytes.
    pub sha256: Sha256,
}

/// Feeds every byte written to it to both hashers, so a stream (a download, an
/// archive member) is read exactly once.
#[derive(Clone, Default)]
pub struct DualHasher {
    b3: blake3::Hasher,
    sha: sha2::Sha256,
    size: u64,
}

impl DualHasher {
    /// A hasher that has seen no bytes.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        self.b3.update(bytes);
        self.sha.update(bytes);
        self.size += bytes.len() as u64;
    }

    /// How many bytes were added so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The digests of everything added.
    pub fn finish(self) -> ContentDigests {
        ContentDigests {
            size: self.size,
            blake3: Blake3(*self.b3.finalize().as_bytes()),
            sha256: Sha256(self.sha.finalize().into()),
        }
    }
}

impl Write for DualHasher {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Both digests of an in-memory byte slice. Large slices are hashed with the
/// two algorithms on two rayon threads (SHA-256 is the slower one).
pub fn hash_bytes(bytes: &[u8]) -> ContentDigests {
    if (bytes.len() as u64) < MMAP_THRESHOLD {
        let mut h = DualHasher::new();
        h.update(bytes);
        return h.finish();
    }
    let (sha, b3) = rayon::join(|| sha2::Sha256::digest(bytes), || blake3::hash(bytes));
    ContentDigests { size: bytes.len() as u64, blake3: Blake3(*b3.as_bytes()), sha256: Sha256(sha.into()) }
}

thread_local! {
    static BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Both digests of a regular file's contents, reading it once.
pub fn hash_file(path: &Path) -> io::Result<ContentDigests> {
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    if len >= MMAP_THRESHOLD {
        // SAFETY: the map is read-only and dropped before returning. A file
        // truncated by another process while it is hashed would fault; the
        // engine hashes only trees it owns (unpacked sources, captured
        // outputs) or that the user names, and says so in `bootstrap hash`.
        let map = unsafe { memmap2::MmapOptions::new().populate().map(&file)? };
        return Ok(hash_bytes(&map));
    }
    BUF.with_borrow_mut(|buf| {
        buf.clear();
        file.read_to_end(buf)?;
        Ok(hash_bytes(buf))
    })
}
