//! `bootstrap store verify [--remove]`: re-hash every object in the store.

use std::io::Write;

use super::super::{Context, write_json};
use super::Error;
use crate::store::LockMode;

/// Arguments of `store verify`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Delete the damaged and stray objects found (the exit code still says they were there).
    #[arg(long)]
    pub remove: bool,
}

/// Runs `store verify`.
pub fn run(cx: &Context, args: &Args, out: &mut dyn Write) -> Result<(), Error> {
    let mode = if args.remove { LockMode::Exclusive } else { LockMode::Shared };
    let store = cx.open_store(mode)?;
    let mut report = store.verify()?;
    if args.remove {
        for p in &report.problems {
            store.discard(p.path())?;
        }
        // An index entry naming an object just removed now dangles: it goes
        // too, in the same run, so the store is left consistent.
        let again = store.verify()?;
        for p in again.problems.into_iter().filter(|p| matches!(p, crate::store::Problem::Dangling { .. })) {
            store.discard(p.path())?;
            report.problems.push(p);
        }
    }
    if cx.json {
        write_json(out, &report)?;
    } else {
        for p in &report.problems {
            writeln!(out, "{p}").map_err(Error::Output)?;
            if args.remove {
                writeln!(out, "    removed").map_err(Error::Output)?;
            }
        }
        writeln!(
            out,
            "checked {} source(s), {} layer(s), {} log(s), {} index entr{}, {} receipt(s): {}",
            report.sources,
            report.layers,
            report.logs,
            report.index,
            if report.index == 1 { "y" } else { "ies" },
            report.receipts,
            if report.problems.is_empty() { "all intact".to_string() } else { format!("{} problem(s)", report.problems.len()) }
        )
        .map_err(Error::Output)?;
    }
    if report.problems.is_empty() { Ok(()) } else { Err(Error::StoreCorrupt { count: report.problems.len() }) }
}
