//! An in-toto Statement v1 whose predicate is a SLSA Verification Summary
//! v1 (`bootstrap attest --vsa`): this engine's verdict on a verified
//! stage, in a form others can check without rerunning anything.
//!
//! - `subject`: the stage's output files, as in the provenance statement;
//! - `verifier`: this engine and its version;
//! - `timeVerified`: when `verify` verified the stage;
//! - `resourceUri`: the stage, by chain, name and definition digest;
//! - `policy`: the stage gate (every seed gives the same bytes, which
//!   match the pins and snapshot; `chain/trust.kdl`'s signature rules),
//!   by the sha256 of `chain/trust.kdl` and, as annotations, of the
//!   snapshot the signatures are over;
//! - `inputAttestations`: the provenance statement (as `bootstrap attest`
//!   writes it) and every signature file of the snapshot, by sha256;
//! - `verificationResult`: `PASSED` when the stage is verified and its
//!   snapshot signed as the rules require (or there are none), else
//!   `FAILED`; `verifiedLevels` says the same in SLSA's words, with a
//!   value of our own (SLSA has no level for "reproduced from several
//!   independent seeds");
//! - the extension field [`SEEDS_FIELD`]: the seeds that agreed, with
//!   their digests.

use serde_json::{Value, json};

use super::provenance::sha256_hex as sha256;
use crate::chain::Chain;
use crate::sign::check::StageSignatures;
use crate::store::receipt::Receipt;
use crate::verify::StageReceipt;

/// The predicate's type.
pub const PREDICATE_TYPE: &str = "https://slsa.dev/verification_summary/v1";
/// The verifier: this engine.
pub const VERIFIER_ID: &str = "urn:bootstrap:verifier:engine";
/// The policy: the stage gate as docs/provenance.md describes it.
pub const POLICY_URI: &str = "urn:bootstrap:policy:stage-gate:v1";
/// The level a passed stage reaches (not an `SLSA_` value: SLSA's build
/// levels say nothing of independent seeds).
pub const LEVEL_REPRODUCED: &str = "BOOTSTRAP_REPRODUCED_ON_INDEPENDENT_SEEDS";
/// The extension field listing the seeds that agreed (a URI, as the spec
/// asks of extension field names).
pub const SEEDS_FIELD: &str = "urn:bootstrap:seeds";

/// The summary of `stage`, verified as `receipt` says with step receipts
/// `steps`; `provenance` is the provenance statement's bytes as `attest`
/// writes them; `signatures` the check against `chain/trust.kdl`'s rules
/// (`None` when it has none).
pub fn summary(chain: &Chain, receipt: &StageReceipt, steps: &[Receipt], provenance: &[u8], signatures: Option<&StageSignatures>) -> Value {
    let subject: Vec<Value> = super::stage_files(steps)
        .into_iter()
        .map(|(name, sha)| json!({ "name": name, "digest": { "sha256": sha } }))
        .collect();
    let read = |rel: &str| std::fs::read(chain.dir.join(rel)).ok();
    let trust_file = crate::chain::trust::TRUST_FILE;
    let trust_sha = read(trust_file).map(|b| sha256(&b));
    let snapshot = format!("snapshots/{}.kdl", receipt.stage);
    let mut policy = json!({
        "uri": POLICY_URI,
        "annotations": {
            "trust": trust_sha.as_ref().map(|sha| json!({ "name": trust_file, "sha256": sha })),
            "snapshot": read(&snapshot).map(|b| json!({ "name": snapshot, "sha256": sha256(&b) })),
        },
    });
    if let Some(sha) = trust_sha {
        policy["digest"] = json!({ "sha256": sha });
    }
    let mut inputs = vec![json!({
        "name": format!("provenance:{}", receipt.stage),
        "mediaType": "application/vnd.in-toto+json",
        "digest": { "sha256": sha256(provenance) },
        "annotations": { "producedBy": format!("bootstrap attest {}", receipt.stage) },
    })];
    let sig_dir = crate::sign::check::signature_dir(&chain.dir, &receipt.stage);
    for name in crate::sign::check::signature_files(&chain.dir, &receipt.stage) {
        if let Ok(bytes) = std::fs::read(sig_dir.join(&name)) {
            inputs.push(json!({
                "name": format!("snapshots/signatures/{}/{name}", receipt.stage),
                "mediaType": "application/pgp-signature",
                "digest": { "sha256": sha256(&bytes) },
            }));
        }
    }
    let passed = signatures.is_none_or(|s| s.met);
    let seeds: Vec<Value> =
        receipt.seeds.iter().map(|s| json!({ "name": s.name, "digest": super::provenance::seed_digest(&s.digest) })).collect();
    let mut predicate = json!({
        "verifier": { "id": VERIFIER_ID, "version": { "bootstrap": env!("CARGO_PKG_VERSION") } },
        "timeVerified": crate::time::rfc3339(receipt.finished),
        "resourceUri": format!("urn:bootstrap:stage:{}:{}@{}", chain.decl.name, receipt.stage, receipt.definition),
        "policy": policy,
        "inputAttestations": inputs,
        "verificationResult": if passed { "PASSED" } else { "FAILED" },
        "verifiedLevels": [if passed { LEVEL_REPRODUCED } else { "FAILED" }],
        "slsaVersion": "1.0",
    });
    predicate[SEEDS_FIELD] = Value::Array(seeds);
    json!({
        "_type": super::provenance::STATEMENT_TYPE,
        "subject": subject,
        "predicateType": PREDICATE_TYPE,
        "predicate": predicate,
    })
}
