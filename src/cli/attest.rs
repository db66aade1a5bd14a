//! `bootstrap attest STAGE [-o FILE]`: an in-toto Statement v1 with a SLSA
//! Provenance v1 predicate for a verified stage
//! ([`crate::export::provenance`]), or with `--vsa` one with a SLSA
//! Verification Summary v1 predicate ([`crate::export::vsa`]), on stdout or
//! written to FILE (by temporary file and rename). A summary that says
//! FAILED (the snapshot not signed as chain/trust.kdl requires) is written
//! all the same, and the command then exits 2.

use std::io::Write;
use std::path::PathBuf;

use super::Context;
use super::Error;
use crate::store::LockMode;

/// Arguments of `attest`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The stage to attest (verified by `bootstrap verify STAGE`).
    pub stage: String,
    /// Write the statement to FILE instead of stdout.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Attest even if the stage's snapshot is not signed as chain/trust.kdl requires (said on stderr).
    #[arg(long, conflicts_with = "vsa")]
    pub no_signatures: bool,
    /// Write a SLSA Verification Summary (PASSED or FAILED against the stage gate and chain/trust.kdl) instead of provenance.
    #[arg(long)]
    pub vsa: bool,
}

/// Runs `attest`.
pub fn run(cx: &Context, args: &Args, out: &mut dyn Write) -> Result<(), Error> {
    let chain = cx.load()?;
    let store = cx.open_store(LockMode::Shared)?;
    let verified = cx.session.verified_stage(&chain, &args.stage, &store)?;
    let checked = if args.vsa {
        // The summary records the signature check, passed or not.
        cx.session.signatures(&args.stage, &verified.definition)?
    } else {
        super::verify_signatures::require_signed(cx, &args.stage, &verified.definition, args.no_signatures)?;
        None
    };
    let statement = crate::export::provenance::statement(&chain, &verified.receipt, &verified.steps);
    let mut text = serde_json::to_string_pretty(&statement).map_err(|e| Error::Output(e.into()))?;
    text.push('\n');
    if args.vsa {
        let vsa = crate::export::vsa::summary(&chain, &verified.receipt, &verified.steps, text.as_bytes(), checked.as_ref());
        text = serde_json::to_string_pretty(&vsa).map_err(|e| Error::Output(e.into()))?;
        text.push('\n');
    }
    write(args, &text, out)?;
    match checked.as_ref().and_then(crate::session::Unsigned::of) {
        Some(u) => Err(Error::Unsigned(u)),
        None => Ok(()),
    }
}

/// Writes the statement to stdout or to `-o FILE`.
fn write(args: &Args, text: &str, out: &mut dyn Write) -> Result<(), Error> {
    match &args.output {
        None => out.write_all(text.as_bytes()).map_err(Error::Output),
        Some(path) => {
            // Renaming over PATH would replace whatever it is (`-o /dev/full`
            // once replaced the device node): only a regular file, or nothing.
            if let Ok(m) = std::fs::symlink_metadata(path)
                && !m.is_file()
            {
                return Err(Error::Output(std::io::Error::other(format!(
                    "{} exists and is not a regular file: `attest -o` writes a file, give another path (or omit -o for stdout)",
                    path.display()
                ))));
            }
            crate::atomic::write(path, text.as_bytes(), crate::atomic::SHARED).map_err(Error::Output)
        }
    }
}
