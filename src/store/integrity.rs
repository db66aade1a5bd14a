//! Whether a layer still holds what its name says, checked wherever a
//! verified result is relied on (`verify` taking a stage or a step from its
//! receipt, `export`, `attest`, `sign --require-reproduced`).
//!
//! Re-hashing every layer on every run would cost as much as the first
//! hash. Instead a layer's *stat fingerprint* (the one `store::remember`
//! takes of seeds: every entry's path and `lstat` fields, the layer's own
//! directory included) is remembered in
//! `index/layer-stat/<digest hex>`, with the list of its entries, once the
//! layer's content has been hashed and found equal to its name. A check
//! then `lstat`s the listed entries and reads no directory: writing a file
//! changes its change time, which cannot be set back, and adding or removing
//! an entry changes its directory's. While the fingerprint is the same,
//! nothing in the layer changed; when it differs, or an entry is gone, the
//! layer is hashed again. As for git's index, a fingerprint is remembered
//! only when nothing in the layer changed in the last two seconds.

use std::fs;
use std::path::Path;

use super::{Store, settled};
use crate::hash::{self, Blake3};

/// What a layer was found to hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayerState {
    /// Its content hashes to its name.
    Intact,
    /// There is no layer of that name.
    Missing,
    /// Its content hashes to something else: it was changed after it was stored.
    Damaged {
        /// What it hashes to now.
        found: Blake3,
    },
    /// It could not be read (or holds what no layer may: a device file, a fifo).
    Unreadable(String),
}

impl LayerState {
    /// One line for messages: `missing`, `damaged: it now hashes to …`.
    pub fn describe(&self) -> String {
        match self {
            LayerState::Intact => "intact".into(),
            LayerState::Missing => "missing from the store".into(),
            LayerState::Damaged { found } => format!("damaged: its files now hash to {found}"),
            LayerState::Unreadable(e) => format!("unreadable: {e}"),
        }
    }
}

/// A remembered record: the fingerprint's hex, a newline, then every
/// entry's relative path, each ended by a NUL.
fn parse_record(bytes: &[u8]) -> Option<(&[u8], Vec<&[u8]>)> {
    let nl = bytes.iter().position(|&b| b == b'\n')?;
    let (hex, rest) = (&bytes[..nl], &bytes[nl + 1..]);
    let paths = rest.split(|&b| b == 0).collect::<Vec<_>>();
    // The last NUL ends the last path: what follows it is empty.
    let (last, listed) = paths.split_last()?;
    last.is_empty().then_some((hex, listed.to_vec()))
}

fn layer_stat_path(root: &Path, digest: &Blake3) -> std::path::PathBuf {
    root.join("index").join("layer-stat").join(digest.hex())
}

/// [`Store::check_layer`] for readers that do not hold the store lock
/// (`status`): the same answer, but a fingerprint is never written.
pub fn check_layer_unlocked(state: &Path, digest: &Blake3) -> LayerState {
    check(state, digest, None)
}

fn check(root: &Path, digest: &Blake3, store: Option<&Store>) -> LayerState {
    let path = root.join("layers").join(digest.hex());
    if !path.symlink_metadata().is_ok_and(|m| m.is_dir()) {
        return LayerState::Missing;
    }
    let remembered = layer_stat_path(root, digest);
    if let Ok(record) = fs::read(&remembered)
        && let Some((hex, listed)) = parse_record(&record)
        && super::remember::stat_listed(&path, &listed).is_some_and(|now| now.hex().as_bytes() == hex)
    {
        return LayerState::Intact;
    }
    let Ok(super::remember::StatWalk { entries, fingerprint: now, newest }) = super::remember::stat_walk(&path) else {
        return LayerState::Unreadable(format!("cannot read every entry of {}", path.display()));
    };
    match hash::hash_tree(&path) {
        Err(e) => LayerState::Unreadable(e.to_string()),
        Ok(tree) if tree.digest() != *digest => LayerState::Damaged { found: tree.digest() },
        Ok(_) => {
            if let Some(store) = store.filter(|_| settled(newest)) {
                // Only a cache: without it the next check hashes again.
                let mut record = format!("{}\n", now.hex()).into_bytes();
                for rel in &entries {
                    record.extend_from_slice(rel);
                    record.push(0);
                }
                let _ = fs::create_dir_all(remembered.parent().unwrap_or(Path::new(".")));
                let _ = store.write_atomic(&remembered, &record);
            }
            LayerState::Intact
        }
    }
}

impl Store {
    /// Whether layer `digest` still holds what its name says: from its stat
    /// fingerprint when that is unchanged since the layer was last hashed,
    /// else by hashing it again (see the module doc).
    pub fn check_layer(&self, digest: &Blake3) -> LayerState {
        check(self.root(), digest, Some(self))
    }

    /// Moves layer `digest` out of `layers/` (into `tmp/`, where the next
    /// cleanup removes it) if it is still damaged, so the step that made it
    /// runs again instead of its damage being overlaid on later steps.
    /// Lineages check the same layers at once: the check and the move are
    /// one critical section, so a layer another lineage just rebuilt is
    /// never moved away. Returns what was found.
    pub fn quarantine_if_damaged(&self, digest: &Blake3) -> Result<LayerState, super::StoreError> {
        static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _held = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
        let state = self.check_layer(digest);
        if matches!(state, LayerState::Damaged { .. } | LayerState::Unreadable(_)) {
            let from = self.layer_path(digest);
            let to = self.tmp().join(format!("damaged-{}-{}", digest.hex(), std::process::id()));
            match fs::rename(&from, &to) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(super::io_at(&from)(e)),
                _ => {}
            }
            let _ = fs::remove_file(layer_stat_path(self.root(), digest));
        }
        Ok(state)
    }
}
