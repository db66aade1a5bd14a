//! `bootstrap seed`: where the chain's seeds are.
//!
//! - `seed add NAME PATH` (or `--image REF`) remembers a seed's location in
//!   the state directory's settings ([`crate::chain::settings`]), so that
//!   later commands need no `--seed NAME=…`; `seed remove NAME` forgets it;
//!   `seed list` shows where each declared seed would come from.
//! - `seed import NAME ROOTFS` loads a root filesystem tarball into the
//!   container engine as the image of seed NAME, for the OCI backend (see
//!   `exec::oci::image`: the image ID follows from the tarball's bytes
//!   alone). Prints the reference to give as `--seed NAME=REF`, to `seed
//!   add NAME --image`, or as the seed's `image` in chain/chain.kdl.

use std::io::Write;
use std::path::PathBuf;

use serde::Serialize;

use super::{Context, write_json};
use super::Error;
use crate::build::BuildError;
use crate::chain::settings::{self, SettingsError, Settings};
use crate::exec::oci::{OciBackend, image};

/// `seed` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Cmd {
    /// Remember where a seed is (a directory or tarball; with --image, an image reference), in the state directory's settings.kdl.
    Add(AddArgs),
    /// Forget a remembered seed location.
    Remove(RemoveArgs),
    /// Where each declared seed comes from: remembered, the chain's rootfs or image, or nowhere yet.
    List,
    /// Load a root filesystem tarball (.tar, .tar.gz, .tar.xz, .tar.bz2) into the engine as a seed's image; prints its reference.
    Import(ImportArgs),
}

/// Arguments of `seed add`.
#[derive(Debug, clap::Args)]
pub struct AddArgs {
    /// The seed's name in the chain.
    pub name: String,
    /// Its root filesystem: a directory or a tarball (remembered as an absolute path); with --image, its image reference.
    pub location: String,
    /// LOCATION is an image reference for the OCI backend (`seed import` prints one).
    #[arg(long)]
    pub image: bool,
}

/// Arguments of `seed remove`.
#[derive(Debug, clap::Args)]
pub struct RemoveArgs {
    /// The seed's name.
    pub name: String,
    /// Forget only its image reference (default: everything remembered for it).
    #[arg(long)]
    pub image: bool,
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
    match cmd {
        Cmd::Add(args) => add(cx, args, out),
        Cmd::Remove(args) => remove(cx, args, out),
        Cmd::List => list(cx, out),
        Cmd::Import(args) => import(cx, args, out),
    }
}

/// `seed add`: checks the name against the chain and the path on disk,
/// then rewrites the settings file.
fn add(cx: &Context, args: &AddArgs, out: &mut dyn Write) -> Result<(), Error> {
    let chain = cx.load()?;
    crate::build::seed::check_args(&chain, &[crate::build::SeedArg::Pick(args.name.clone())])?;
    let mut settings = cx.settings.clone();
    let entry = settings.seed_mut(&args.name);
    let shown = if args.image {
        entry.image = Some(args.location.clone());
        args.location.clone()
    } else {
        let given = PathBuf::from(&args.location);
        let abs = std::fs::canonicalize(&given).map_err(|e| BuildError::SeedPath { name: args.name.clone(), path: given.clone(), reason: e.to_string() })?;
        entry.path = Some(abs.clone());
        abs.display().to_string()
    };
    save(cx, &settings)?;
    done(cx, out, &format!("seed `{}`: remembered {shown}", args.name), &settings)
}

/// `seed remove`.
fn remove(cx: &Context, args: &RemoveArgs, out: &mut dyn Write) -> Result<(), Error> {
    let mut settings = cx.settings.clone();
    let held = settings.seed(&args.name).is_some_and(|s| !args.image || s.image.is_some());
    if !held {
        let what = if args.image { format!("an image for seed `{}`", args.name) } else { format!("seed `{}`", args.name) };
        let names: Vec<String> = settings.seeds.iter().map(|s| format!("`{}`", s.name)).collect();
        let help = if names.is_empty() { "no seed is remembered".to_string() } else { format!("remembered seeds: {}", names.join(", ")) };
        return Err(SettingsError::NotRemembered { what, path: settings::path(&cx.state), help }.into());
    }
    if args.image {
        settings.seed_mut(&args.name).image = None;
    }
    settings.seeds.retain(|s| s.name != args.name || (args.image && s.path.is_some()));
    save(cx, &settings)?;
    done(cx, out, &format!("seed `{}`: forgotten", args.name), &settings)
}

pub(crate) fn save(cx: &Context, settings: &Settings) -> Result<(), Error> {
    settings.save(&cx.state).map_err(|source| SettingsError::Write { path: settings::path(&cx.state), source }.into())
}

/// Says what changed on stderr, or with `--json` prints the settings.
pub(crate) fn done(cx: &Context, out: &mut dyn Write, what: &str, settings: &Settings) -> Result<(), Error> {
    if cx.json {
        return write_json(out, &JsonSettings::of(&cx.state, settings));
    }
    if cx.verbosity >= 0 {
        eprintln!("{what} (in {})", settings::path(&cx.state).display());
    }
    Ok(())
}

/// The settings as JSON (docs/json.md).
#[derive(Serialize)]
pub(crate) struct JsonSettings {
    file: String,
    seeds: Vec<JsonSeed>,
    distfiles: Vec<String>,
}

#[derive(Serialize)]
struct JsonSeed {
    name: String,
    path: Option<String>,
    image: Option<String>,
}

impl JsonSettings {
    pub(crate) fn of(state: &std::path::Path, s: &Settings) -> JsonSettings {
        JsonSettings {
            file: settings::path(state).display().to_string(),
            seeds: s
                .seeds
                .iter()
                .map(|x| JsonSeed { name: x.name.clone(), path: x.path.as_ref().map(|p| p.display().to_string()), image: x.image.clone() })
                .collect(),
            distfiles: s.distfiles.iter().map(|d| d.display().to_string()).collect(),
        }
    }
}

/// `seed list`: every declared seed and where this backend would take it
/// from, before any `--seed` of the command line.
fn list(cx: &Context, out: &mut dyn Write) -> Result<(), Error> {
    let chain = cx.load()?;
    let oci = cx.backend == super::BackendKind::Oci;
    let rows: Vec<(String, String)> = chain
        .seeds
        .iter()
        .map(|s| {
            let remembered = cx.settings.seed(&s.name);
            let from = match (oci, remembered.and_then(|r| r.path.as_ref()), remembered.and_then(|r| r.image.as_ref())) {
                (false, Some(p), _) => format!("{} (remembered)", p.display()),
                (true, _, Some(i)) => format!("{i} (remembered)"),
                _ => match (oci, &s.rootfs, &s.image) {
                    (false, Some(r), _) => format!("{} (the chain's rootfs)", r.url),
                    (true, _, Some(i)) => format!("{i} (the chain's image)"),
                    _ => format!("nowhere yet: `bootstrap seed add {} {}`", s.name, if oci { "--image REF" } else { "PATH" }),
                },
            };
            (s.name.clone(), from)
        })
        .collect();
    if cx.json {
        let doc: Vec<_> = rows.iter().map(|(n, f)| serde_json::json!({ "seed": n, "from": f })).collect();
        return write_json(out, &doc);
    }
    let w = rows.iter().map(|(n, _)| n.len()).max().unwrap_or(4);
    for (n, f) in &rows {
        writeln!(out, "  {n:<w$}  {f}").map_err(Error::Output)?;
    }
    Ok(())
}

/// `seed import`.
fn import(cx: &Context, args: &ImportArgs, out: &mut dyn Write) -> Result<(), Error> {
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
