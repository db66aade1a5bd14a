//! Seeds: which seed a command runs on, where its root filesystem comes
//! from, and its identity (what enters every input digest and receipt).
//!
//! On the OCI backend a seed is an image the engine holds: the reference
//! given with `--seed NAME=IMAGE`, else the chain's `image`; its identity is
//! the image ID ([`SeedId::Image`]). Nothing is pulled. What follows is the
//! local backend.
//!
//! A seed's root is, in order of preference: the location given with
//! `--seed NAME=PATH` (a directory, used in place, or a tarball, unpacked
//! into the store once per sha256), or the chain's `rootfs` URL (fetched
//! into `sources/` like any source and unpacked the same way). Its identity
//! is the tree digest of that root with device files, fifos and sockets left
//! out ([`crate::hash::hash_rootfs`]): the sandbox brings its own `/dev`.

use std::path::{Path, PathBuf};

use crate::chain::{Chain, Seed, Source, model::Placement};
use crate::fetch::{self, FetchOptions, Progress};
use crate::unpack;
use crate::exec::{Backend, Root};
use crate::hash::{self, Blake3, SeedId};
use crate::store::Store;

use super::error::BuildError;

/// One `--seed` argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SeedArg {
    /// `--seed NAME`: run on this seed (`build`).
    Pick(String),
    /// `--seed NAME=PATH`: this seed's root filesystem is here.
    Locate(String, PathBuf),
}

impl SeedArg {
    /// Parses `NAME` or `NAME=PATH`.
    pub fn parse(s: &str) -> SeedArg {
        match s.split_once('=') {
            Some((name, path)) => SeedArg::Locate(name.to_string(), PathBuf::from(path)),
            None => SeedArg::Pick(s.to_string()),
        }
    }

    fn name(&self) -> &str {
        match self {
            SeedArg::Pick(n) | SeedArg::Locate(n, _) => n,
        }
    }
}

/// A seed ready to run on: its root directory and identity.
#[derive(Debug, Clone)]
pub struct SeedRoot {
    /// The seed's name in the chain.
    pub name: String,
    /// The root filesystem (a directory used in place, or a store layer),
    /// or the image the OCI backend runs.
    pub root: crate::exec::Root,
    /// Tree digest of the root (devices, fifos and sockets left out), or
    /// the image ID.
    pub digest: SeedId,
    /// Where it came from, for receipts and messages.
    pub origin: String,
    /// How many devices, fifos and sockets were left out.
    pub skipped: u64,
}

/// Checks every `--seed` names a declared seed and no seed is located twice.
pub fn check_args(chain: &Chain, args: &[SeedArg]) -> Result<(), BuildError> {
    let mut located: Vec<&str> = Vec::new();
    for a in args {
        if !chain.seeds.iter().any(|s| s.name == a.name()) {
            let help = crate::chain::diag::did_you_mean(a.name(), chain.seeds.iter().map(|s| s.name.as_str()))
                .unwrap_or_else(|| format!("the chain's seeds are {}", seed_names(chain)));
            return Err(BuildError::UnknownSeed { name: a.name().to_string(), help });
        }
        if let SeedArg::Locate(name, _) = a {
            if located.contains(&name.as_str()) {
                return Err(BuildError::SeedTwice { name: name.clone() });
            }
            located.push(name);
        }
    }
    Ok(())
}

fn seed_names(chain: &Chain) -> String {
    chain.seeds.iter().map(|s| format!("`{}`", s.name)).collect::<Vec<_>>().join(", ")
}

/// The seed `build` runs on: the one picked with `--seed NAME`, else the
/// first declared seed given a location with `--seed NAME=PATH`, else the
/// first declared seed with a `rootfs` (an `image` on the OCI backend).
/// Returns its index in `chain.seeds`.
pub fn choose(chain: &Chain, args: &[SeedArg], backend: &Backend) -> Result<usize, BuildError> {
    let picks: Vec<&str> = args.iter().filter_map(|a| if let SeedArg::Pick(n) = a { Some(n.as_str()) } else { None }).collect();
    if picks.len() > 1 {
        return Err(BuildError::SeveralPicks { names: picks.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ") });
    }
    let position = |name: &str| chain.seeds.iter().position(|s| s.name == name);
    if let Some(name) = picks.first() {
        return position(name).ok_or_else(|| BuildError::UnknownSeed { name: name.to_string(), help: String::new() });
    }
    let located = chain.seeds.iter().position(|s| location(args, &s.name).is_some());
    let with_rootfs = chain.seeds.iter().position(|s| match backend {
        Backend::Local(_) | Backend::Remote(_) | Backend::DryRun(_) => s.rootfs.is_some(),
        Backend::Oci(_) => s.image.is_some(),
    });
    located.or(with_rootfs).ok_or_else(|| BuildError::NoSeed { names: seed_names(chain) })
}

/// The location given for `name` with `--seed NAME=PATH`, if any.
pub fn location<'a>(args: &'a [SeedArg], name: &str) -> Option<&'a Path> {
    args.iter().find_map(|a| match a {
        SeedArg::Locate(n, p) if n == name => Some(p.as_path()),
        _ => None,
    })
}

/// Makes seed number `id` ready for `backend`: hashes a directory, unpacks
/// a tarball into the store (once), or fetches and unpacks the chain's
/// rootfs; on the OCI backend, finds its image in the engine.
pub fn resolve(
    chain: &Chain,
    id: usize,
    args: &[SeedArg],
    store: &Store,
    opts: &FetchOptions,
    progress: &dyn Progress,
    backend: &Backend,
) -> Result<SeedRoot, BuildError> {
    let seed = &chain.seeds[id];
    let unavailable = |field: &'static str, help: String| {
        let file = &chain.files[seed.file];
        BuildError::SeedUnavailable {
            name: seed.name.clone(),
            field,
            help,
            src: miette::NamedSource::new(&file.path, file.text.clone()),
            span: seed.span.into(),
        }
    };
    if let Backend::Oci(engine) = backend {
        let given = location(args, &seed.name).map(|p| p.to_string_lossy().into_owned());
        let Some(reference) = given.or_else(|| seed.image.clone()) else {
            return Err(unavailable(
                "image",
                format!("give its image: `--seed {0}=IMAGE` (`bootstrap seed import {0} ROOTFS.tar` loads a root filesystem tarball as one; `bootstrap seed add {0} --image IMAGE` remembers it)", seed.name),
            ));
        };
        let Some(id) = engine.resolve_image(&reference)? else {
            return Err(BuildError::SeedImage { name: seed.name.clone(), reference });
        };
        return Ok(SeedRoot {
            name: seed.name.clone(),
            root: Root::Image(id),
            digest: SeedId::Image(id),
            origin: format!("image {reference}"),
            skipped: 0,
        });
    }
    if let Some(path) = location(args, &seed.name) {
        return resolve_path(seed, path, store);
    }
    let Some(rootfs) = &seed.rootfs else {
        return Err(unavailable("rootfs", format!("give its root filesystem: `--seed {0}=DIR` or `--seed {0}=TARBALL` (`bootstrap seed add {0} PATH` remembers it)", seed.name)));
    };
    // The rootfs is fetched exactly like a source (same places, same checks).
    let source = Source {
        name: format!("{}{}", super::error::SEED_SOURCE, seed.name),
        version: None,
        urls: vec![rootfs.url.clone()],
        sha256: Some(rootfs.sha256),
        tree: None,
        git: None,
        path: None,
        placement: Placement::File,
        file: seed.file,
        span: seed.span,
    };
    fetch::fetch(chain, &[&source], store, opts, progress)?;
    // A file source is only ever accepted by its sha256 pin: that file is now in the store.
    let sha = rootfs.sha256;
    let archive = rootfs.url.rsplit('/').next().unwrap_or(&seed.name).to_string();
    let (root, digest, skipped) = unpack_tarball(seed, &store.source_path(&sha), &archive, &sha, store)?;
    Ok(SeedRoot { name: seed.name.clone(), root: Root::Dir(root), digest: SeedId::Tree(digest), origin: rootfs.url.clone(), skipped })
}

fn resolve_path(seed: &Seed, path: &Path, store: &Store) -> Result<SeedRoot, BuildError> {
    let bad = |reason: String| BuildError::SeedPath { name: seed.name.clone(), path: path.to_path_buf(), reason };
    let meta = std::fs::metadata(path).map_err(|e| bad(e.to_string()))?;
    let abs = std::fs::canonicalize(path).map_err(|e| bad(e.to_string()))?;
    if meta.is_dir() {
        let (digest, skipped) = dir_digest(&abs, store).map_err(|e| bad(e.to_string()))?;
        return Ok(SeedRoot {
            name: seed.name.clone(),
            root: Root::Dir(abs.clone()),
            digest: SeedId::Tree(digest),
            origin: abs.display().to_string(),
            skipped,
        });
    }
    let sha = tarball_sha(&abs, store).map_err(|e| bad(e.to_string()))?;
    let archive = abs.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let (root, digest, skipped) = unpack_tarball(seed, &abs, &archive, &sha, store)?;
    Ok(SeedRoot { name: seed.name.clone(), root: Root::Dir(root), digest: SeedId::Tree(digest), origin: format!("{} ({sha})", abs.display()), skipped })
}

fn unpack_tarball(
    seed: &Seed,
    tarball: &Path,
    archive: &str,
    sha: &hash::Sha256,
    store: &Store,
) -> Result<(PathBuf, Blake3, u64), BuildError> {
    if let Some(layer) = store.unpacked_rootfs(sha) {
        return Ok((store.layer_path(&layer), layer, 0));
    }
    let dir = store.temp_dir()?;
    // A seed's root filesystem is bounded like a source archive (default limit).
    let skipped = unpack::unpack_rootfs(tarball, archive, dir.path(), unpack::DEFAULT_MAX_UNPACKED).map_err(|error| {
        let help = miette::Diagnostic::help(&error).map(|h| h.to_string());
        BuildError::SeedUnpack { name: seed.name.clone(), error, help }
    })?;
    let (layer, _) = store.commit_tree(dir)?;
    store.set_unpacked_rootfs(sha, &layer)?;
    Ok((store.layer_path(&layer), layer, skipped))
}

/// The tree digest of a seed directory, remembered across runs under
/// `index/seeds/` ([`Store::remembered`]).
fn dir_digest(dir: &Path, store: &Store) -> Result<(Blake3, u64), hash::HashError> {
    let value = store
        .remembered(SEEDS, dir, || {
            let (tree, skipped) = hash::hash_rootfs(dir)?;
            Ok(format!("{} {skipped}", tree.digest()))
        })?
        .value;
    let mut parts = value.split_whitespace();
    match (parts.next().map(str::parse::<Blake3>), parts.next().map(str::parse::<u64>)) {
        (Some(Ok(d)), Some(Ok(n))) => Ok((d, n)),
        _ => {
            let (tree, skipped) = hash::hash_rootfs(dir)?;
            Ok((tree.digest(), skipped))
        }
    }
}

/// The sha256 of a seed tarball, remembered across runs under
/// `index/seeds/` ([`Store::remembered`]).
fn tarball_sha(file: &Path, store: &Store) -> Result<hash::Sha256, hash::HashError> {
    let io = |source| hash::HashError::Io { path: file.to_path_buf(), source };
    let value = store.remembered(SEEDS, file, || Ok(hash::hash_file(file).map_err(io)?.sha256.hex()))?.value;
    match hash::Sha256::from_hex(&value) {
        Some(sha) => Ok(sha),
        None => Ok(hash::hash_file(file).map_err(io)?.sha256),
    }
}

/// Where seed facts are remembered: `index/seeds/`.
const SEEDS: &str = "seeds";
