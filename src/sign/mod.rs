//! Signed stage snapshots (ARCHITECTURE.md §6).
//!
//! A stage's snapshot (`snapshots/STAGE.kdl`, written by `verify::snapshot`)
//! is what people sign: each signer puts a detached, ASCII-armoured OpenPGP
//! signature over its exact bytes in
//! `snapshots/signatures/STAGE/<FINGERPRINT>.asc`. `chain/trust.kdl`
//! (loaded by [`crate::chain::trust`]) names the signers and how many of
//! each role a snapshot needs.
//!
//! - [`cert`] reads signers' public certificates and fingerprints;
//! - [`key`] unlocks a secret key and signs (`bootstrap sign`);
//! - [`check`] judges every signature and the rules (`verify`,
//!   `verify-signatures`, `status`).
//!
//! All OpenPGP work is sequoia-openpgp under its `StandardPolicy`, built on
//! the Nettle backend (see docs/signatures.md for why).

pub mod cert;
pub mod check;
pub mod key;

pub use check::{RuleCheck, SignatureCheck, StageSignatures, check_stage};
