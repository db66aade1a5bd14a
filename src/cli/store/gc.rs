//! `bootstrap store gc [--dry-run]`: remove unreferenced objects, interrupted
//! work and the parse cache; say how much that freed.

use std::io::Write;

use super::super::{Context, write_json};
use super::Error;
use crate::hash::{Blake3, Sha256};
use crate::store::{LockMode, human_size};

/// Arguments of `store gc`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// List what would be removed, remove nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// Runs `store gc`. The chain must load: its declared sources are kept, and
/// collecting without knowing them would throw away downloads.
pub fn run(cx: &Context, args: &Args, out: &mut dyn Write) -> Result<(), Error> {
    let chain = cx.load()?;
    // Declared sources and seed rootfs tarballs (and what they unpack to),
    // and the layers tree pins name.
    let files: Vec<Sha256> =
        chain.sources.iter().filter_map(|s| s.sha256).chain(chain.seeds.iter().filter_map(|s| s.rootfs.as_ref().map(|r| r.sha256))).collect();
    let trees: Vec<Blake3> = chain.sources.iter().filter_map(|s| s.tree).collect();
    let store = cx.open_store(LockMode::Exclusive)?;
    let report = store.gc(&files, &trees, args.dry_run)?;
    if cx.json {
        return write_json(out, &report);
    }
    if cx.verbosity > 0 || args.dry_run {
        for r in &report.removed {
            writeln!(out, "  {:11} {:>10}  {}", r.what, human_size(r.bytes), r.path.display()).map_err(Error::Output)?;
        }
    }
    let verb = if args.dry_run { "would free" } else { "freed" };
    writeln!(
        out,
        "{verb} {} in {} object(s); kept {}",
        human_size(report.freed),
        report.removed.len(),
        report.kept
    )
    .map_err(Error::Output)?;
    Ok(())
}
