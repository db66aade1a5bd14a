//! Digests: the `sha256:`/`blake3:` types, content hashing that reads each
//! byte once for both, and the canonical tree manifest whose BLAKE3 is a
//! layer's *tree digest* (exact bytes in `docs/tree-digest.md`).
//!
//! This module knows nothing of chains, stores or sandboxes; `store` names
//! objects with these digests and `fetch` checks sources with them.

mod digest;
mod file;
mod tree;

pub use digest::{BadDigest, Blake3, SeedId, Sha256, from_hex32, to_hex};
pub use file::{ContentDigests, DualHasher, hash_bytes, hash_file};
pub use tree::{Entry, EntryKind, HashError, MANIFEST_HEADER, Tree, hash_rootfs, hash_tree, sha256sum_line};
