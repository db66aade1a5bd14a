//! Signed stage snapshots (ARCHITECTURE.md §6).
//!
//! A stage's snapshot (`snapshots/STAGE.kdl`, [`snapshot`]) is what
//! people sign: each signer puts a detached, ASCII-armoured OpenPGP
//! signature over its exact bytes in
//! `snapshots/signatures/STAGE/<FINGERPRINT>.asc`. `chain/trust.kdl`
//! (loaded by [`crate::chain::trust`], with the certificates
//! [`crate::chain::cert`] reads) names the signers and how many of
//! each role a snapshot needs.
//!
//! - [`snapshot`] reads and writes snapshots (the gate compares a stage's
//!   outputs with them);
//! - [`key`] unlocks a secret key and signs (`bootstrap sign`);
//! - [`check`] judges every signature and the rules (`verify`,
//!   `verify-signatures`, `status`).
//!
//! All OpenPGP work is sequoia-openpgp under its `StandardPolicy`, built on
//! the Nettle backend (see docs/signatures.md for why).

pub mod check;
pub mod key;
pub mod rejection;
pub mod snapshot;

pub use check::{RuleCheck, SignatureCheck, StageSignatures, check_stage};
