//! `bootstrap store verify|gc`: look after the state directory.

pub mod gc;
pub mod verify;

use std::io::Write;

use super::Context;
use super::Error;

/// The `store` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Cmd {
    /// Re-hash every object and report damage (exit 2).
    Verify(verify::Args),
    /// Remove what no receipt and no declared source references.
    Gc(gc::Args),
}

/// Runs a `store` subcommand.
pub fn run(cx: &Context, cmd: &Cmd, out: &mut dyn Write) -> Result<(), Error> {
    match cmd {
        Cmd::Verify(args) => verify::run(cx, args, out),
        Cmd::Gc(args) => gc::run(cx, args, out),
    }
}
