//! A verified stage in the formats other tools read: an OCI image layout
//! of its outputs ([`oci`], `bootstrap export`) and an in-toto statement
//! with SLSA provenance ([`provenance`], `bootstrap attest`) or a SLSA
//! verification summary ([`vsa`], `bootstrap attest --vsa`).
//!
//! Both start from the step receipts of a stage that `verify` verified
//! under its current definition, so what they describe is what every seed
//! produced, and both are byte-for-byte reproducible: nothing in them
//! depends on the machine, the seed or the time, except the timestamps
//! SLSA asks for.

pub mod oci;
pub mod provenance;
pub mod vsa;

use std::collections::BTreeMap;

use crate::exec::ExecError;
use crate::exec::union::Union;
use crate::store::Store;
use crate::store::receipt::Receipt;

/// The stage's outputs merged in execution order as an overlay would (a
/// later step's file replaces an earlier one's), as one uncompressed tar:
/// entries in byte order, uid and gid 0, every mtime `epoch`, no headers
/// that carry other times.
pub fn stage_layer(store: &Store, steps: &[Receipt], epoch: u64) -> Result<Vec<u8>, ExecError> {
    let mut union = Union::for_backend("oci");
    for r in steps {
        if let Some(out) = r.output {
            union.put_tree(&store.layer_path(&out), "", &|rel, _| Some(rel.to_string()))?;
        }
    }
    union.write(Some(epoch))
}

/// The stage's output files, merged as [`stage_layer`] merges them: path
/// (as in the layers, e.g. `out/bin/hello`) to sha256 hex. Symlinks and
/// directories are not listed.
pub fn stage_files(steps: &[Receipt]) -> BTreeMap<String, String> {
    let mut files: BTreeMap<String, String> = BTreeMap::new();
    for r in steps {
        for f in &r.files {
            // A directory over a directory merges; anything else replaces
            // what was at that path, and under it.
            files.remove(&f.path);
            if f.kind != crate::store::receipt::FileKind::Dir {
                let under = format!("{}/", f.path);
                files.retain(|p, _| !p.starts_with(&under));
            }
            if let (true, Some(sha)) = (f.kind == crate::store::receipt::FileKind::File, f.sha256) {
                files.insert(f.path.clone(), sha.hex());
            }
        }
    }
    files
}
