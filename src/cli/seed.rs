//! `bootstrap seed import NAME ROOTFS`: loads a root filesystem tarball into
//! the container engine as the image of seed NAME, for the OCI backend
//! (see `exec::oci::image`: the image ID follows from the tarball's bytes
//! alone). Prints the reference to give as `--seed NAME=REF` or as the
//! seed's `image` in chain/chain.kdl.

use std::io::Write;
use std::path::PathBuf;

use serde::Serialize;

use super::{Context, write_json};
use crate::Error;
use crate::build::BuildError;
use crate::exec::oci::{OciBackend, image};

/// `seed` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Cmd {
    /// Load a root filesystem tarball (.tar, .tar.gz, .tar.xz, .tar.bz2) into the engine as a seed's image; prints its reference.
    Import(ImportArgs),
}

/// Arguments of `seed import`.
#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// The seed's name (names the image: bootstrap-seed/NAME).
    pub name: String,
    /// The root filesystem tarball.
    pub rootfs: PathBuf,
}

#[derive(Serialize)]
struct JsonImport<'a> {
    seed: &'a str,
    image: String,
    reference: String,
    tag: &'a str,
    loaded: bool,
}

/// Runs a `seed` subcommand.
pub fn run(cx: &Context, cmd: &Cmd, out: &mut dyn Write) -> Result<(), Error> {
    let Cmd::Import(args) = cmd;
    let bad = |reason: String| BuildError::SeedPath { name: args.name.clone(), path: args.rootfs.clone(), reason };
    let layer = image::read_rootfs(&args.rootfs).map_err(|e| bad(e.to_string()))?;
    let mut archive = tar::Archive::new(layer.as_slice());
    let first = archive.entries().and_then(|mut e| e.next().transpose()).map_err(|_| bad("not a tar archive, or a damaged one".into()))?;
    if first.is_none() {
        return Err(bad("an empty archive (a scratch root needs no seed)".into()).into());
    }
    let engine = OciBackend::connect().map_err(BuildError::Exec)?;
    let imported = engine.import(&args.name, &layer).map_err(BuildError::Exec)?;
    let reference = format!("{}@{}", image::repository(&args.name), imported.id);
    if cx.json {
        return write_json(
            out,
            &JsonImport { seed: &args.name, image: imported.id.to_string(), reference, tag: &imported.tag, loaded: !imported.existed },
        );
    }
    if cx.verbosity >= 0 {
        let what = if imported.existed { "already in the engine" } else { "loaded" };
        eprintln!("seed `{}`: {what} as {} (image {})", args.name, imported.tag, imported.id);
    }
    writeln!(out, "{reference}").map_err(Error::Output)
}
