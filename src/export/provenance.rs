//! An in-toto Statement v1 whose predicate is SLSA Provenance v1, for a
//! verified stage (`bootstrap attest`).
//!
//! - `subject`: the stage's output files (merged as `export` merges them),
//!   each with its sha256;
//! - `buildDefinition`: the chain, the stage and its definition digest as
//!   external parameters; the architecture, `SOURCE_DATE_EPOCH` and the
//!   seeds compared as internal ones; as resolved dependencies, every
//!   source the stage's steps mounted (URL or git repository; its sha256
//!   when known and, for a tree, the layer's tree digest as `blake3`; which
//!   pin matched and where the bytes came from as annotations), every output of an
//!   earlier stage they used (BLAKE3 tree digest) and every seed (tree
//!   digest or image ID);
//! - `runDetails`: the engine as builder, the time the stage was verified,
//!   and as byproducts the snapshot and its signature files.
//!
//! Keys are sorted and lists ordered, so two attestations of one verified
//! stage differ only in `finishedOn`.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use sha2::Digest as _;

use crate::chain::Chain;
use crate::hash::SeedId;
use crate::store::receipt::Receipt;
use crate::verify::StageReceipt;

/// The statement's type.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
/// The predicate's type.
pub const PREDICATE_TYPE: &str = "https://slsa.dev/provenance/v1";
/// What kind of build this is: a stage verified on several seeds
/// (docs/provenance.md says what its parameters mean).
pub const BUILD_TYPE: &str = "urn:bootstrap:build-type:verified-stage:v1";
/// The builder: this engine, on whatever machine ran `verify`.
pub const BUILDER_ID: &str = "urn:bootstrap:builder:engine";

/// A digest set entry for a seed (also the verification summary's).
pub(super) fn seed_digest(id: &SeedId) -> Value {
    match id {
        SeedId::Tree(d) => json!({ "blake3": d.hex() }),
        SeedId::Image(d) => json!({ "sha256": d.hex() }),
    }
}

/// The statement for `stage`, verified as `receipt` says, with its step
/// receipts `steps` (in execution order).
pub fn statement(chain: &Chain, receipt: &StageReceipt, steps: &[Receipt]) -> Value {
    let subject: Vec<Value> = super::stage_files(steps)
        .into_iter()
        .map(|(name, sha)| json!({ "name": name, "digest": { "sha256": sha } }))
        .collect();
    let in_stage: Vec<&str> = steps.iter().map(|r| r.step.as_str()).collect();
    let mut deps: BTreeMap<String, Value> = BTreeMap::new();
    for r in steps {
        for s in &r.sources {
            let declared = chain.source(&s.name);
            let uri = declared.and_then(|c| {
                c.urls.first().cloned().or_else(|| c.git.as_ref().map(|g| format!("git+{}@{}", g.url, g.commit)))
            });
            // The sha256 when known (a checkout has none), the tree digest
            // of what was mounted as `blake3`.
            let mut digest = serde_json::Map::new();
            if let Some(sha) = s.sha256 {
                digest.insert("sha256".into(), Value::String(sha.hex()));
            }
            if let Some(layer) = s.layer {
                digest.insert("blake3".into(), Value::String(layer.hex()));
            }
            let mut d = json!({
                "name": format!("source:{}", s.name),
                "digest": digest,
                "annotations": { "pin": s.pin.as_str(), "from": s.from },
            });
            if let Some(uri) = uri {
                d["uri"] = Value::String(uri);
            }
            deps.insert(format!("1:{}", s.name), d);
        }
        for n in r.needs.iter().filter(|n| !in_stage.contains(&n.step.as_str())) {
            deps.insert(
                format!("2:{}", n.step),
                json!({ "name": format!("step:{}", n.step), "digest": { "blake3": n.output.hex() } }),
            );
        }
    }
    for s in &receipt.seeds {
        deps.insert(format!("3:{}", s.name), json!({ "name": format!("seed:{}", s.name), "digest": seed_digest(&s.digest) }));
    }
    let seeds: Vec<&str> = receipt.seeds.iter().map(|s| s.name.as_str()).collect();
    let mut byproducts = Vec::new();
    let snap = crate::sign::snapshot::path(&chain.dir, &receipt.stage);
    if let Ok(bytes) = std::fs::read(&snap) {
        byproducts.push(file_descriptor(&format!("snapshots/{}.kdl", receipt.stage), &bytes));
        let sig_dir = crate::sign::check::signature_dir(&chain.dir, &receipt.stage);
        for name in crate::sign::check::signature_files(&chain.dir, &receipt.stage) {
            if let Ok(bytes) = std::fs::read(sig_dir.join(&name)) {
                byproducts.push(file_descriptor(&format!("snapshots/signatures/{}/{name}", receipt.stage), &bytes));
            }
        }
    }
    json!({
        "_type": STATEMENT_TYPE,
        "subject": subject,
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": {
                    "chain": chain.decl.name,
                    "stage": receipt.stage,
                    "definition": receipt.definition,
                },
                "internalParameters": {
                    "arch": chain.decl.arch,
                    "sourceDateEpoch": chain.decl.source_date_epoch,
                    "seeds": seeds,
                    "steps": in_stage,
                },
                "resolvedDependencies": deps.into_values().collect::<Vec<_>>(),
            },
            "runDetails": {
                "builder": {
                    "id": BUILDER_ID,
                    "version": { "bootstrap": env!("CARGO_PKG_VERSION") },
                },
                "metadata": {
                    "invocationId": format!("{}@{}", receipt.stage, receipt.definition),
                    "finishedOn": crate::time::rfc3339(receipt.finished),
                },
                "byproducts": byproducts,
            },
        },
    })
}

/// A resource descriptor of a file of the chain directory.
fn file_descriptor(name: &str, bytes: &[u8]) -> Value {
    json!({ "name": name, "digest": { "sha256": sha256_hex(bytes) } })
}

/// The sha256 of `bytes`, in hex, as a DigestSet holds it.
pub(super) fn sha256_hex(bytes: &[u8]) -> String {
    crate::hash::to_hex(&sha2::Sha256::digest(bytes))
}
