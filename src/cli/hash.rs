//! `bootstrap hash DIR`: the tree digest of a directory (docs/tree-digest.md),
//! or with `--sha256sums` a list `sha256sum -c --strict` accepts inside DIR,
//! or with `--manifest` the exact bytes the digest is taken of.

use std::io::Write;
use std::path::PathBuf;

use serde::Serialize;

use super::{Context, write_json};
use super::Error;
use crate::hash::{self, EntryKind};

/// Arguments of `hash`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The directory to hash (not followed if it is a symlink).
    pub dir: PathBuf,
    /// Print a `sha256sum` list of the regular files instead of the digest.
    #[arg(long, conflicts_with = "manifest")]
    pub sha256sums: bool,
    /// Print the canonical manifest bytes the digest is taken of (NUL-separated).
    #[arg(long)]
    pub manifest: bool,
}

#[derive(Serialize)]
struct JsonFile {
    path: String,
    mode: String,
    size: u64,
    sha256: String,
    blake3: String,
}

#[derive(Serialize)]
struct JsonTree {
    digest: String,
    files: Vec<JsonFile>,
    directories: usize,
    symlinks: usize,
    total_size: u64,
}

/// Runs `hash`.
pub fn run(cx: &Context, args: &Args, out: &mut dyn Write) -> Result<(), Error> {
    let tree = hash::hash_tree(&args.dir)?;
    if cx.json {
        let count = |want: fn(&EntryKind) -> bool| tree.entries.iter().filter(|e| want(&e.kind)).count();
        let doc = JsonTree {
            digest: tree.digest().to_string(),
            files: tree
                .files()
                .map(|(e, c)| JsonFile {
                    path: e.display_path(),
                    mode: format!("{:o}", e.mode()),
                    size: c.size,
                    sha256: c.sha256.hex(),
                    blake3: c.blake3.hex(),
                })
                .collect(),
            directories: count(|k| matches!(k, EntryKind::Dir)),
            symlinks: count(|k| matches!(k, EntryKind::Symlink { .. })),
            total_size: tree.total_size(),
        };
        return write_json(out, &doc);
    }
    if args.manifest {
        return out.write_all(&tree.manifest()).map_err(Error::Output);
    }
    if args.sha256sums {
        return out.write_all(&tree.sha256sums()).map_err(Error::Output);
    }
    writeln!(out, "{}", tree.digest()).map_err(Error::Output)
}
