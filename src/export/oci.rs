//! An OCI image layout (image-spec v1.1: `oci-layout`, `index.json`,
//! `blobs/sha256/…`) of one uncompressed layer.
//!
//! Every byte follows from the layer, the tag, the architecture, the
//! labels and `SOURCE_DATE_EPOCH`: JSON objects have sorted keys and no
//! whitespace, and `created` is the epoch. So the manifest digest is the
//! same on every machine. The directory also holds a `manifest.json` in the
//! format `docker save` writes, pointing at the same blobs, so that engines
//! that predate OCI layouts in `docker load` (Docker before 25) load it too.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use miette::Diagnostic;
use serde_json::json;
use sha2::Digest as _;
use thiserror::Error;

use crate::hash::Sha256;

/// Media types of the image spec.
pub const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
/// The config blob's media type.
pub const CONFIG_TYPE: &str = "application/vnd.oci.image.config.v1+json";
/// An uncompressed tar layer.
pub const LAYER_TYPE: &str = "application/vnd.oci.image.layer.v1.tar";
/// The index's media type.
pub const INDEX_TYPE: &str = "application/vnd.oci.image.index.v1+json";

/// Why a layout could not be written.
#[derive(Debug, Error, Diagnostic)]
pub enum LayoutError {
    /// The target is a non-empty directory that is not an OCI layout.
    #[error("{dir} exists and is not an OCI image layout; refusing to replace it")]
    #[diagnostic(code(bootstrap::export::target_exists), help("give a new or empty directory, or one an earlier `bootstrap export` wrote"))]
    NotALayout {
        /// The directory.
        dir: String,
    },
    /// Writing failed; nothing was put in place.
    #[error("cannot write the image layout {dir}: {message}")]
    #[diagnostic(code(bootstrap::export::write), help("check that the directory's parent is writable and has room"))]
    Io {
        /// The directory.
        dir: String,
        /// What failed.
        message: String,
    },
}

/// What was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// The manifest's digest: the image's identity in a registry.
    pub manifest: Sha256,
    /// The config's digest: the image ID an engine shows.
    pub config: Sha256,
    /// The layer's digest (uncompressed, so also its diff ID).
    pub layer: Sha256,
    /// The layer's size in bytes.
    pub layer_size: u64,
    /// `index.json` as written.
    pub index: Vec<u8>,
}

/// What goes in the image besides the layer.
#[derive(Debug, Clone)]
pub struct ImageSpec {
    /// `NAME:TAG`, e.g. `bootstrap/mini:stage0`.
    pub reference: String,
    /// OCI architecture (`amd64`, `arm64`, …).
    pub architecture: String,
    /// `SOURCE_DATE_EPOCH`: the image's creation time.
    pub created: u64,
    /// Labels of the image config (also the manifest's annotations).
    pub labels: BTreeMap<String, String>,
}

fn sha(bytes: &[u8]) -> Sha256 {
    Sha256(sha2::Sha256::digest(bytes).into())
}

/// Everything of the image but the layer.
struct Built {
    /// The config and manifest blobs, by digest.
    blobs: Vec<(Sha256, Vec<u8>)>,
    /// What the layout is.
    layout: Layout,
    /// `manifest.json` in `docker save` form.
    docker: Vec<u8>,
}

/// The blobs and the index of the image.
fn build(layer: &[u8], spec: &ImageSpec) -> Built {
    let layer_digest = sha(layer);
    let created = crate::time::rfc3339(spec.created);
    let config = json!({
        "architecture": spec.architecture,
        "os": "linux",
        "created": created,
        "config": { "Labels": spec.labels },
        "rootfs": { "type": "layers", "diff_ids": [layer_digest.to_string()] },
        "history": [ { "created": created, "created_by": "bootstrap export" } ],
    });
    let config = serde_json::to_vec(&config).unwrap_or_default();
    let config_digest = sha(&config);
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "config": { "mediaType": CONFIG_TYPE, "digest": config_digest.to_string(), "size": config.len() },
        "layers": [ { "mediaType": LAYER_TYPE, "digest": layer_digest.to_string(), "size": layer.len() } ],
        "annotations": spec.labels,
    });
    let manifest = serde_json::to_vec(&manifest).unwrap_or_default();
    let manifest_digest = sha(&manifest);
    let tag = spec.reference.rsplit_once(':').map_or("latest", |(_, t)| t);
    let index = json!({
        "schemaVersion": 2,
        "mediaType": INDEX_TYPE,
        "manifests": [ {
            "mediaType": MANIFEST_TYPE,
            "digest": manifest_digest.to_string(),
            "size": manifest.len(),
            "annotations": {
                "org.opencontainers.image.ref.name": tag,
                "io.containerd.image.name": spec.reference,
            },
        } ],
    });
    let index = serde_json::to_vec(&index).unwrap_or_default();
    // The `docker save` manifest, for engines that load only that format.
    let docker = json!([ {
        "Config": format!("blobs/sha256/{}", config_digest.hex()),
        "RepoTags": [spec.reference],
        "Layers": [format!("blobs/sha256/{}", layer_digest.hex())],
    } ]);
    let docker = serde_json::to_vec(&docker).unwrap_or_default();
    let layout = Layout {
        manifest: manifest_digest,
        config: config_digest,
        layer: layer_digest,
        layer_size: layer.len() as u64,
        index: index.clone(),
    };
    Built { blobs: vec![(config_digest, config), (manifest_digest, manifest)], layout, docker }
}

/// Writes the image layout of `layer` to `dir`: built beside it in a
/// temporary directory, then renamed into place, so `dir` is either the
/// old layout or the new one, never half of one. An existing `dir` must be
/// empty or an OCI layout.
pub fn write(dir: &Path, layer: &[u8], spec: &ImageSpec) -> Result<Layout, LayoutError> {
    let shown = dir.display().to_string();
    let io = |e: std::io::Error| LayoutError::Io { dir: shown.clone(), message: e.to_string() };
    let replaces = match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            let empty = entries.next().is_none();
            if !empty && !dir.join("oci-layout").is_file() {
                return Err(LayoutError::NotALayout { dir: shown });
            }
            true
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => return Err(io(e)),
    };
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).map_err(io)?;
    let tmp = tempfile::Builder::new().prefix(".bootstrap-export-").tempdir_in(&parent).map_err(io)?;
    let Built { blobs, layout, docker } = build(layer, spec);
    let put = |rel: &str, bytes: &[u8]| -> std::io::Result<()> {
        let p = tmp.path().join(rel);
        if let Some(d) = p.parent() {
            std::fs::create_dir_all(d)?;
        }
        let mut f = std::fs::File::create(&p)?;
        f.write_all(bytes)?;
        f.sync_all()
    };
    put(&format!("blobs/sha256/{}", layout.layer.hex()), layer).map_err(io)?;
    for (digest, bytes) in &blobs {
        put(&format!("blobs/sha256/{}", digest.hex()), bytes).map_err(io)?;
    }
    put("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#).map_err(io)?;
    put("manifest.json", &docker).map_err(io)?;
    put("index.json", &layout.index).map_err(io)?;
    let tmp = tmp.keep();
    if replaces {
        // The old layout goes aside first; rename cannot replace a directory.
        let old = parent.join(format!(".bootstrap-export-old-{}", std::process::id()));
        std::fs::rename(dir, &old).map_err(io)?;
        if let Err(e) = std::fs::rename(&tmp, dir) {
            let _ = std::fs::rename(&old, dir);
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(io(e));
        }
        let _ = std::fs::remove_dir_all(&old);
    } else if let Err(e) = std::fs::rename(&tmp, dir) {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(io(e));
    }
    if let Ok(d) = std::fs::File::open(&parent) {
        let _ = d.sync_all();
    }
    Ok(layout)
}
