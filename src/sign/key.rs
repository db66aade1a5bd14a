//! A signer's secret key: reading it, unlocking it, and making a detached,
//! ASCII-armoured signature with it.

use std::io::{BufRead, Write};
use std::path::Path;

use miette::Diagnostic;
use sequoia_openpgp as openpgp;
use thiserror::Error;

use openpgp::Cert;
use openpgp::crypto::{KeyPair, Password};
use openpgp::policy::StandardPolicy;
use openpgp::serialize::stream::{Armorer, Message, Signer};
use openpgp::types::RevocationStatus;

/// Why a key cannot sign.
#[derive(Debug, Error, Diagnostic)]
pub enum KeyError {
    /// The key file could not be read.
    #[error("cannot read the key file {path}: {reason}")]
    #[diagnostic(code(bootstrap::sign::key_unreadable), help("give the path of your exported secret key (`gpg --export-secret-keys --armor FPR`, `sq key generate`)"))]
    Unreadable {
        /// The file.
        path: String,
        /// What the operating system said.
        reason: String,
    },
    /// The file is not one OpenPGP secret key.
    #[error("{path} {problem}")]
    #[diagnostic(code(bootstrap::sign::not_a_key), help("give a file holding exactly one secret key (`gpg --export-secret-keys --armor FPR`)"))]
    NotAKey {
        /// The file.
        path: String,
        /// What it is instead.
        problem: String,
    },
    /// The key cannot make signatures that count.
    #[error("the key {fingerprint} in {path} cannot sign: {reason}")]
    #[diagnostic(code(bootstrap::sign::unusable_key), help("{help}"))]
    Unusable {
        /// The file.
        path: String,
        /// The certificate's fingerprint.
        fingerprint: String,
        /// Why.
        reason: String,
        /// What to do.
        help: String,
    },
    /// The secret key stayed locked.
    #[error("cannot unlock the key {fingerprint}: {reason}")]
    #[diagnostic(code(bootstrap::sign::passphrase), help("{help}"))]
    Locked {
        /// The certificate's fingerprint.
        fingerprint: String,
        /// Why.
        reason: String,
        /// What to do.
        help: String,
    },
    /// Making the signature failed.
    #[error("signing failed: {0}")]
    #[diagnostic(code(bootstrap::sign::failed), help("this is a bug if the key is otherwise fine; please report it"))]
    Failed(String),
}

/// Where a passphrase comes from when the key needs one.
#[derive(Debug, Clone)]
pub enum PassphraseSource<'a> {
    /// The first line of this file.
    File(&'a Path),
    /// Asked on the controlling terminal, without echo.
    Terminal,
}

/// A secret key file, read but still locked.
pub struct SecretKeyFile {
    /// The file, as given.
    pub path: String,
    /// The certificate's primary fingerprint (upper-case hex).
    pub fingerprint: String,
    tsk: Cert,
}

/// An unlocked signing key.
pub struct SigningKey {
    /// The certificate's primary fingerprint (upper-case hex).
    pub fingerprint: String,
    /// The fingerprint of the (sub)key that signs.
    pub key_fingerprint: String,
    keypair: KeyPair,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey").field("fingerprint", &self.fingerprint).field("key", &self.key_fingerprint).finish()
    }
}

/// Reads the one secret key in `path`.
pub fn read(path: &Path) -> Result<SecretKeyFile, KeyError> {
    let shown = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| KeyError::Unreadable { path: shown.clone(), reason: e.to_string() })?;
    let not_a_key = |problem: String| KeyError::NotAKey { path: shown.clone(), problem };
    let mut certs = crate::chain::cert::parse_all(&bytes).map_err(|e| not_a_key(format!("is not an OpenPGP key: {e}")))?;
    let tsk = match certs.len() {
        1 => certs.remove(0),
        0 => return Err(not_a_key("holds no OpenPGP key".into())),
        n => return Err(not_a_key(format!("holds {n} keys; give a file with only the one to sign with"))),
    };
    let fingerprint = tsk.fingerprint().to_hex();
    if !tsk.is_tsk() {
        return Err(not_a_key(format!("holds only the public certificate {fingerprint}, no secret key")));
    }
    Ok(SecretKeyFile { path: shown, fingerprint, tsk })
}

impl SecretKeyFile {
    /// Unlocks a signing-capable key valid now under the standard policy.
    /// Keys that `published` (the signer's certificate in `trust.kdl`) also
    /// has are tried first, so that the signature made is one the verifier
    /// can check.
    pub fn unlock(&self, passphrase: &PassphraseSource<'_>, published: Option<&Cert>) -> Result<SigningKey, KeyError> {
        let fingerprint = &self.fingerprint;
        let policy = StandardPolicy::new();
        let unusable = |reason: String, help: &str| KeyError::Unusable {
            path: self.path.clone(),
            fingerprint: fingerprint.clone(),
            reason,
            help: help.to_string(),
        };
        let vc = self.tsk.with_policy(&policy, None).map_err(|e| {
            unusable(format!("it is not valid under the standard policy ({e})"), "renew its self-signatures with a current OpenPGP tool")
        })?;
        if let RevocationStatus::Revoked(_) = vc.revocation_status() {
            return Err(unusable("it is revoked".into(), "a revoked key vouches for nothing: sign with your current key and update chain/trust.kdl"));
        }
        if vc.alive().is_err() {
            return Err(unusable(
                "it has expired".into(),
                "extend its expiry (`gpg --quick-set-expire FPR 1y`), export the certificate to chain/keys/ again, then sign",
            ));
        }
        let mut candidates: Vec<_> = vc.keys().alive().revoked(false).for_signing().secret().collect();
        if let Some(pref) = published {
            // Stable: keys the published certificate has first, in key order.
            candidates.sort_by_key(|k| pref.keys().key_handle(k.key().fingerprint()).next().is_none());
        }
        let Some(ka) = candidates.first() else {
            return Err(unusable(
                "it has no unexpired, unrevoked signing-capable key with its secret part".into(),
                "add a signing subkey, or export the secret key that has one",
            ));
        };
        let key_fingerprint = ka.key().fingerprint().to_hex();
        let mut key = ka.key().clone();
        if key.secret().is_encrypted() {
            let locked =
                |reason: String, help: &str| KeyError::Locked { fingerprint: fingerprint.clone(), reason, help: help.to_string() };
            let password = match passphrase {
                PassphraseSource::File(p) => {
                    read_passphrase_file(p).map_err(|e| locked(e, "give a readable file whose first line is the passphrase"))?
                }
                PassphraseSource::Terminal => ask(&format!("Passphrase for {fingerprint}: ")).map_err(|e| {
                    locked(e, "the key is protected by a passphrase: pass --passphrase-file FILE when there is no terminal")
                })?,
            };
            key.secret_mut()
                .decrypt_in_place(ka.key(), &password)
                .map_err(|_| locked("wrong passphrase".into(), "check the passphrase (only the first line of --passphrase-file is used)"))?;
        }
        let keypair = key.into_keypair().map_err(|e| KeyError::Failed(e.to_string()))?;
        Ok(SigningKey { fingerprint: fingerprint.clone(), key_fingerprint, keypair })
    }
}

/// A detached, ASCII-armoured signature over `data`.
pub fn sign_detached(key: &SigningKey, data: &[u8]) -> Result<Vec<u8>, KeyError> {
    fn failed(e: impl std::fmt::Display) -> KeyError {
        KeyError::Failed(e.to_string())
    }
    let mut out = Vec::new();
    let message = Armorer::new(Message::new(&mut out)).kind(openpgp::armor::Kind::Signature).build().map_err(failed)?;
    let mut signer = Signer::new(message, key.keypair.clone()).map_err(failed)?.detached().build().map_err(failed)?;
    signer.write_all(data).map_err(failed)?;
    signer.finalize().map_err(failed)?;
    Ok(out)
}

/// The first line of a passphrase file, without its line ending.
fn read_passphrase_file(path: &Path) -> Result<Password, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut line = String::new();
    std::io::BufReader::new(file).read_line(&mut line).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let trimmed = line.trim_end_matches(['\n', '\r']).to_string();
    Ok(Password::from(trimmed))
}

/// Asks on the controlling terminal with echo off.
fn ask(prompt: &str) -> Result<Password, String> {
    use rustix::termios::{LocalModes, OptionalActions, tcgetattr, tcsetattr};
    let mut tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .map_err(|e| format!("there is no terminal to ask on ({e})"))?;
    let saved = tcgetattr(&tty).map_err(|e| format!("cannot set up the terminal ({e})"))?;
    let mut quiet = saved.clone();
    quiet.local_modes.remove(LocalModes::ECHO);
    tcsetattr(&tty, OptionalActions::Flush, &quiet).map_err(|e| format!("cannot turn off echo ({e})"))?;
    let result = (|| {
        tty.write_all(prompt.as_bytes())?;
        tty.flush()?;
        let mut line = String::new();
        std::io::BufReader::new(&tty).read_line(&mut line)?;
        Ok::<String, std::io::Error>(line)
    })();
    // Echo comes back whatever happened.
    let _ = tcsetattr(&tty, OptionalActions::Flush, &saved);
    let _ = tty.write_all(b"\n");
    let line = result.map_err(|e| format!("cannot read the passphrase ({e})"))?;
    Ok(Password::from(line.trim_end_matches(['\n', '\r']).to_string()))
}
