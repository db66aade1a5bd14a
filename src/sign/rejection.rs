//! Why a signature counts zero: one variant per reason, each rendered as
//! the sentence `verify`, `sign` and `verify-signatures` show (and `--json`
//! carries as a string).

use std::fmt;

/// Why one signature does not count toward the rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// The signature file could not be read.
    Unreadable(String),
    /// The file holds something other than OpenPGP signatures.
    NotSignatures(String),
    /// A signature of a kind that does not sign a document.
    NotOverADocument(String),
    /// No creation time.
    NoCreationTime,
    /// It names no key that made it.
    NoIssuer,
    /// Made by keys that belong to no signer.
    UnknownKey(Vec<String>),
    /// A hash the standard policy rejects.
    WeakHash {
        /// The hash algorithm.
        algo: String,
        /// What the policy said.
        why: String,
    },
    /// The snapshot could not be hashed for it.
    CannotHash {
        /// The snapshot's path.
        file: String,
        /// What failed.
        why: String,
    },
    /// Made over other bytes than the snapshot now holds.
    OtherBytes {
        /// The signer.
        signer: String,
        /// The snapshot's path.
        file: String,
    },
    /// Its key is no longer part of the signer's certificate.
    KeyGone,
    /// The certificate is not valid at a time that matters.
    CertInvalid {
        /// The signer.
        signer: String,
        /// "when it signed" or "now".
        at: &'static str,
        /// What the policy said.
        why: String,
    },
    /// The certificate is revoked.
    CertRevoked {
        /// The signer.
        signer: String,
        /// The revocation's reason.
        reason: String,
    },
    /// The certificate expired.
    CertExpired {
        /// The signer.
        signer: String,
        /// When.
        expiry: String,
    },
    /// The key is not validly bound to the certificate.
    KeyNotBound {
        /// The key's fingerprint.
        key: String,
        /// The signer.
        signer: String,
        /// "when it signed" or "now".
        at: &'static str,
        /// What the policy said.
        why: String,
    },
    /// The signing key is revoked.
    KeyRevoked {
        /// The signer.
        signer: String,
        /// The key's fingerprint.
        key: String,
        /// The revocation's reason.
        reason: String,
    },
    /// The signing key expired.
    KeyExpired {
        /// The signer.
        signer: String,
        /// The key's fingerprint.
        key: String,
        /// When.
        expiry: String,
    },
    /// The key may not sign.
    NotSigningKey {
        /// The signer.
        signer: String,
        /// The key's fingerprint.
        key: String,
    },
    /// The signature itself is not valid now.
    SignatureNotAlive {
        /// What sequoia said.
        why: String,
        /// When it was made.
        made: String,
    },
    /// It does not verify: forged or damaged.
    DoesNotVerify {
        /// The signer.
        signer: String,
        /// The key's fingerprint.
        key: String,
        /// What sequoia said.
        why: String,
    },
    /// A good signature in another signer's file.
    WrongFile {
        /// The signer.
        signer: String,
        /// The file's stem (a fingerprint).
        stem: String,
        /// Whose file that is ("the file of NAME", "no signer's file").
        named: String,
        /// The signer's own fingerprint.
        own: String,
    },
    /// A good signature by a signer already counted.
    AlreadyCounted {
        /// The signer.
        signer: String,
    },
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rejection::Unreadable(e) => write!(f, "cannot read the file: {e}"),
            Rejection::NotSignatures(e) => write!(f, "{e}"),
            Rejection::NotOverADocument(typ) => write!(f, "a {typ} signature, not one over a document"),
            Rejection::NoCreationTime => write!(f, "malformed: the signature has no creation time"),
            Rejection::NoIssuer => write!(f, "the signature names no key that made it"),
            Rejection::UnknownKey(keys) => write!(f, "made by key {}, which is no signer's in chain/trust.kdl", keys.join(" / ")),
            Rejection::WeakHash { algo, why } => write!(f, "{algo} signature, which the standard policy rejects ({why})"),
            Rejection::CannotHash { file, why } => write!(f, "cannot hash {file} for it: {why}"),
            Rejection::OtherBytes { signer, file } => {
                write!(f, "made by {signer} over other bytes than {file} as it is now (an earlier snapshot?): sign the current file again")
            }
            Rejection::KeyGone => write!(f, "its key is gone from the certificate"),
            Rejection::CertInvalid { signer, at, why } => write!(f, "{signer}'s certificate is not valid {at} ({why})"),
            Rejection::CertRevoked { signer, reason } => write!(f, "{signer}'s certificate is revoked ({reason})"),
            Rejection::CertExpired { signer, expiry } => write!(f, "{signer}'s certificate expired on {expiry}; an expired key counts zero"),
            Rejection::KeyNotBound { key, signer, at, why } => write!(f, "key {key} is not validly bound to {signer}'s certificate {at} ({why})"),
            Rejection::KeyRevoked { signer, key, reason } => write!(f, "{signer}'s signing key {key} is revoked ({reason})"),
            Rejection::KeyExpired { signer, key, expiry } => {
                write!(f, "{signer}'s signing key {key} expired on {expiry}; an expired key counts zero")
            }
            Rejection::NotSigningKey { signer, key } => write!(f, "{signer}'s key {key} is not a signing key"),
            Rejection::SignatureNotAlive { why, made } => write!(f, "the signature itself is not valid now ({why}); made {made}"),
            Rejection::DoesNotVerify { signer, key, why } => write!(f, "does not verify with {signer}'s key {key}: forged or damaged ({why})"),
            Rejection::WrongFile { signer, stem, named, own } => write!(
                f,
                "a good signature by {signer}, but saved as {stem}.asc, {named}: a signature counts only in its signer's file, {own}.asc"
            ),
            Rejection::AlreadyCounted { signer } => write!(
                f,
                "a good signature, but {signer} is already counted: a certificate counts once, however many signatures or subkeys it has"
            ),
        }
    }
}

impl serde::Serialize for Rejection {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A signature that counts zero: by which signer, if its key is one's, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// The signer (index into `trust.kdl`'s signers) whose key made it.
    pub signer: Option<usize>,
    /// Why it counts zero.
    pub why: Rejection,
}
