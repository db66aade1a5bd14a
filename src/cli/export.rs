//! `bootstrap export STAGE --oci DIR [--tag NAME:TAG]`: the stage's verified
//! outputs, merged in execution order, as a reproducible OCI image layout
//! ([`crate::export::oci`]): the same manifest digest on every machine and
//! from every seed. `docker load` and `skopeo` read it.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use super::{Context, write_json};
use super::Error;
use super::refused::{BadTag};
use crate::export::oci::{self, ImageSpec};
use crate::store::LockMode;

/// Arguments of `export`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The stage to export (verified by `bootstrap verify STAGE`).
    pub stage: String,
    /// The directory to write the OCI image layout to (new, empty, or an earlier export).
    #[arg(long, value_name = "DIR")]
    pub oci: PathBuf,
    /// The image reference NAME:TAG [default: bootstrap/CHAIN:STAGE].
    #[arg(long, value_name = "NAME:TAG")]
    pub tag: Option<String>,
    /// Export even if the stage's snapshot is not signed as chain/trust.kdl requires (said on stderr).
    #[arg(long)]
    pub no_signatures: bool,
}

/// The OCI architecture of a chain `arch`.
fn oci_arch(arch: &str) -> &str {
    match arch {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "i686" => "386",
        other => other,
    }
}

/// Whether `r` is `NAME:TAG` as engines accept it.
fn valid_reference(r: &str) -> bool {
    let Some((name, tag)) = r.rsplit_once(':') else { return false };
    let name_ok = !name.is_empty()
        && name.split('/').all(|c| {
            !c.is_empty()
                && c.chars().all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || "._-".contains(ch))
                && c.starts_with(|ch: char| ch.is_ascii_alphanumeric())
        });
    let tag_ok = !tag.is_empty()
        && tag.len() <= 128
        && tag.chars().all(|ch| ch.is_ascii_alphanumeric() || "._-".contains(ch))
        && tag.starts_with(|ch: char| ch.is_ascii_alphanumeric() || ch == '_');
    name_ok && tag_ok
}

/// Runs `export`.
pub fn run(cx: &Context, args: &Args, out: &mut dyn Write) -> Result<(), Error> {
    let chain = cx.load()?;
    let reference = match &args.tag {
        Some(t) => t.clone(),
        None => format!("bootstrap/{}:{}", chain.decl.name.to_ascii_lowercase(), args.stage),
    };
    if !valid_reference(&reference) {
        return Err(Error::BadTag(BadTag { tag: reference }));
    }
    let store = cx.open_store(LockMode::Shared)?;
    let verified = cx.session.verified_stage(&chain, &args.stage, &store)?;
    let signed = super::verify_signatures::require_signed(cx, &args.stage, &verified.definition, args.no_signatures)?;
    let epoch = chain.decl.source_date_epoch;
    let layer = crate::export::stage_layer(&store, &verified.steps, epoch).map_err(crate::build::BuildError::Exec)?;
    let mut labels = BTreeMap::new();
    labels.insert("org.opencontainers.image.title".to_string(), format!("{} {}", chain.decl.name, args.stage));
    labels.insert("org.bootstrap.chain".to_string(), chain.decl.name.clone());
    labels.insert("org.bootstrap.stage".to_string(), args.stage.clone());
    labels.insert("org.bootstrap.definition".to_string(), verified.definition.to_string());
    if let Some(snap) = crate::sign::snapshot::file_digest(&chain.dir, &args.stage) {
        labels.insert("org.bootstrap.snapshot".to_string(), snap);
    }
    let spec = ImageSpec { reference: reference.clone(), architecture: oci_arch(&chain.decl.arch).to_string(), created: epoch, labels };
    let layout = oci::write(&args.oci, &layer, &spec).map_err(Error::Export)?;
    if cx.json {
        return write_json(
            out,
            &serde_json::json!({
                "stage": args.stage,
                "dir": args.oci.display().to_string(),
                "reference": reference,
                "manifest": layout.manifest.to_string(),
                "config": layout.config.to_string(),
                "layer": layout.layer.to_string(),
                "layer_size": layout.layer_size,
                "signed": signed.map(|s| s.met),
            }),
        );
    }
    let write = |out: &mut dyn Write| -> std::io::Result<()> {
        writeln!(out, "{}: {} ({} steps)", args.oci.display(), reference, verified.steps.len())?;
        writeln!(out, "  manifest  {}", layout.manifest)?;
        writeln!(out, "  image ID  {}", layout.config)?;
        writeln!(out, "  layer     {} ({})", layout.layer, crate::store::human_size(layout.layer_size))?;
        writeln!(out, "load it with `tar -C {} -c . | docker load`, or copy it with `skopeo copy oci:{}:{} docker://…`", args.oci.display(), args.oci.display(), reference.rsplit_once(':').map_or("", |(_, t)| t))
    };
    write(out).map_err(Error::Output)
}
