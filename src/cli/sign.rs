//! `bootstrap sign STAGE --key KEYFILE`: a detached, ASCII-armoured OpenPGP
//! signature over the exact bytes of `snapshots/STAGE.kdl`, written to
//! `snapshots/signatures/STAGE/<FINGERPRINT>.asc` (replacing this signer's
//! earlier one).
//!
//! Before anything is written, the new signature is checked exactly as
//! `verify` will check it, so a signature that would count zero (a key
//! `trust.kdl` does not list, a subkey its published certificate lacks) is
//! refused with the reason instead of saved. `--require-reproduced` first
//! asks this machine's state directory whether its own last verification
//! of the stage compared every seed against exactly this snapshot, and
//! whether every step receipt it rests on was made on this machine (the
//! receipts' `machine`): the reviewer's countersignature means "I rebuilt
//! this myself", not "I copied a state directory that says so".

use std::io::Write;
use std::path::PathBuf;

use super::{Context, write_json};
use super::Error;
use super::refused::{SignRefused};
use crate::plan::Plan;
use crate::sign::check::{check_signature_file, check_stage, signature_file};
use crate::sign::key::{self, PassphraseSource};
use crate::store::LockMode;
use crate::verify::VerifyError;
use crate::sign::snapshot::{self, Snapshot, SnapshotError};
use crate::verify::stage;

/// Arguments of `sign`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The stage whose snapshot to sign (`snapshots/STAGE.kdl`).
    pub stage: String,
    /// Your OpenPGP secret key file (armoured or binary).
    #[arg(long, value_name = "KEYFILE")]
    pub key: PathBuf,
    /// A file whose first line is the key's passphrase [default: ask on the terminal when needed].
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
    /// Refuse unless this machine's receipts verified exactly this snapshot (a reviewer's countersignature).
    #[arg(long)]
    pub require_reproduced: bool,
}

/// Runs `sign`.
pub fn run(cx: &Context, args: &Args, out: &mut dyn Write) -> Result<(), Error> {
    let chain = cx.load()?;
    let plan = Plan::new(&chain);
    let stage_id = crate::plan::stage_target(&chain, &args.stage)?;
    let trust = cx.session.trust()?;
    let refused = |r: SignRefused| Error::Sign(Box::new(r));
    let stage_name = args.stage.clone();
    let path = snapshot::path(&chain.dir, &args.stage);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(refused(SignRefused::NoSnapshot { stage: stage_name })),
        Err(e) => return Err(VerifyError::from(SnapshotError::Io { path, message: e.to_string() }).into()),
    };
    // It must be a snapshot this engine wrote, of the stage as defined now.
    let snap = Snapshot::parse(&args.stage, &bytes).map_err(VerifyError::from)?;
    let definition = stage::stage_digest(&chain, &plan, stage_id);
    if snap.definition != definition {
        return Err(refused(SignRefused::StaleSnapshot { stage: stage_name }));
    }
    if args.require_reproduced {
        // A shared lock: a verify running now must finish first.
        let store = cx.open_store(LockMode::Shared)?;
        let digest = format!("blake3:{}", blake3::hash(&bytes).to_hex());
        cx.session
            .reproduced_here(&store, &args.stage, &definition, &digest)
            .map_err(|why| refused(SignRefused::NotReproduced { stage: stage_name.clone(), why }))?;
    }
    let passphrase = match &args.passphrase_file {
        Some(p) => PassphraseSource::File(p),
        None => PassphraseSource::Terminal,
    };
    // Which signer this is, before a passphrase is asked for.
    let secret = key::read(&args.key).map_err(|e| refused(SignRefused::Key(e)))?;
    let signer = match &trust {
        Some(t) => match t.signer_by_fingerprint(&secret.fingerprint) {
            Some(i) => Some(&t.signers[i]),
            None => return Err(refused(SignRefused::NotASigner { fingerprint: secret.fingerprint.clone() })),
        },
        None => None,
    };
    let key = secret.unlock(&passphrase, signer.map(|s| &s.cert)).map_err(|e| refused(SignRefused::Key(e)))?;
    let armored = key::sign_detached(&key, &bytes).map_err(|e| refused(SignRefused::Key(e)))?;
    let file = signature_file(&args.stage, &key.fingerprint);
    let target = chain.dir.join(&file);
    if let (Some(t), Some(s)) = (&trust, signer) {
        // Judged as `verify` will judge it, before it is saved.
        let name = format!("{}.asc", key.fingerprint);
        let checks = check_signature_file(t, &args.stage, &name, &armored, &bytes);
        if let Some(reason) = checks.iter().find_map(|c| c.reason.as_ref().map(ToString::to_string)) {
            return Err(refused(SignRefused::WouldNotCount { reason, cert: s.cert_path.clone() }));
        }
    }
    crate::atomic::write(&target, &armored, crate::atomic::SHARED).map_err(|e| refused(SignRefused::Write { path: file.clone(), message: e.to_string() }))?;
    let status = trust.as_ref().filter(|t| !t.rules.is_empty()).map(|t| check_stage(t, &chain.dir, &args.stage, &definition));
    if cx.json {
        return write_json(
            out,
            &serde_json::json!({
                "stage": args.stage,
                "file": file,
                "fingerprint": key.fingerprint,
                "key": key.key_fingerprint,
                "signatures": status,
            }),
        );
    }
    let who = signer.map_or_else(|| key.fingerprint.clone(), |s| format!("{} ({})", s.name, s.role));
    let write = |out: &mut dyn Write| -> std::io::Result<()> {
        writeln!(out, "{file}: signed by {who} with key {}", key.key_fingerprint)?;
        match &status {
            Some(s) => {
                super::verify_signatures::write_block(s, out)?;
                match s.shortfall() {
                    None => writeln!(out, "{}: signed as chain/trust.kdl requires", args.stage),
                    Some(short) => writeln!(out, "{}: still short: {short}", args.stage),
                }
            }
            None => writeln!(out, "note: there is no chain/trust.kdl, so nothing will check this signature until one lists this key"),
        }
    };
    write(out).map_err(Error::Output)
}
