//! Seeds as images: importing a root filesystem tarball as an image with a
//! deterministic ID, the empty image of scratch roots, and resolving the
//! image reference a chain or `--seed` gives.
//!
//! An import is a `docker load` of an archive made here (the format
//! `docker save` writes: `manifest.json`, the image configuration, and the
//! rootfs tarball as the one layer), not a `docker import`: that one stamps
//! the image with the time of import, so the same tarball would give a new
//! image ID each time. Here the configuration holds only the architecture,
//! the OS and the layer's sha256 (its *diff ID*), so the image ID (the
//! sha256 of the configuration) follows from the tarball's bytes alone, on
//! every machine and engine:
//!
//! ```text
//! {"architecture":"amd64","os":"linux","config":{},"rootfs":{"type":"layers","diff_ids":["sha256:<tar>"]}}
//! ```

use std::io::Read;
use std::path::Path;

use sha2::Digest as _;

use crate::exec::ExecError;
use crate::hash::Sha256;

/// A root filesystem tarball made ready to load.
pub struct Archive {
    /// The image ID it will have.
    pub id: Sha256,
    /// The `docker save`-format archive.
    pub bytes: Vec<u8>,
    /// The tag it carries: `bootstrap-seed/<name>:<first 12 of the ID>`.
    pub tag: String,
}

/// The repository name of an imported seed (image names are lowercase).
pub fn repository(seed: &str) -> String {
    let clean: String = seed
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_' { c.to_ascii_lowercase() } else { '-' })
        .collect();
    format!("bootstrap-seed/{}", clean.trim_matches(|c: char| !c.is_ascii_alphanumeric()))
}

/// The configuration for a one-layer image whose layer is `diff_id`.
fn config(diff_id: &Sha256) -> Vec<u8> {
    format!(r#"{{"architecture":"amd64","os":"linux","config":{{}},"rootfs":{{"type":"layers","diff_ids":["{diff_id}"]}}}}"#).into_bytes()
}

/// The load archive of `layer` (an uncompressed tar) for seed `seed`.
pub fn archive(seed: &str, layer: &[u8]) -> Result<Archive, ExecError> {
    let diff_id = Sha256(sha2::Sha256::digest(layer).into());
    let config = config(&diff_id);
    let id = Sha256(sha2::Sha256::digest(&config).into());
    let tag = format!("{}:{}", repository(seed), &id.hex()[..12]);
    let manifest = serde_json::json!([{
        "Config": format!("{}.json", id.hex()),
        "RepoTags": [tag],
        "Layers": [format!("{}/layer.tar", diff_id.hex())],
    }]);
    let manifest = serde_json::to_vec(&manifest).map_err(|e| ExecError::Internal(format!("image manifest: {e}")))?;
    let mut b = tar::Builder::new(Vec::with_capacity(layer.len() + 4096));
    let fail = |e: std::io::Error| ExecError::Io { what: "write the image archive".into(), message: e.to_string() };
    let mut put = |name: String, data: &[u8], dir: bool| -> std::io::Result<()> {
        let mut h = tar::Header::new_gnu();
        h.set_mode(if dir { 0o755 } else { 0o644 });
        h.set_mtime(0);
        h.set_entry_type(if dir { tar::EntryType::Directory } else { tar::EntryType::Regular });
        h.set_size(data.len() as u64);
        b.append_data(&mut h, name, data)
    };
    put(format!("{}/", diff_id.hex()), &[], true).map_err(fail)?;
    put(format!("{}/layer.tar", diff_id.hex()), layer, false).map_err(fail)?;
    put(format!("{}.json", id.hex()), &config, false).map_err(fail)?;
    put("manifest.json".into(), &manifest, false).map_err(fail)?;
    let bytes = b.into_inner().map_err(fail)?;
    Ok(Archive { id, bytes, tag })
}

/// The layer of a scratch root: an empty tar.
pub fn empty_layer() -> Vec<u8> {
    vec![0u8; 1024]
}

/// Reads a root filesystem tarball, uncompressing `.gz`, `.xz` and `.bz2`
/// (by their magic bytes, whatever the name, as sources are).
pub fn read_rootfs(path: &Path) -> Result<Vec<u8>, std::io::Error> {
    let mut out = Vec::new();
    crate::unpack::decoder(std::fs::File::open(path)?)?.read_to_end(&mut out)?;
    Ok(out)
}

/// The image ID a reference names, when it names one by digest:
/// `sha256:<hex>`, or `NAME[:TAG]@sha256:<hex>`.
pub fn digest_of(reference: &str) -> Option<Sha256> {
    let d = reference.rsplit_once('@').map_or(reference, |(_, d)| d);
    d.parse().ok()
}
