//! Checking a stage's signatures against `trust.kdl`.
//!
//! Every `*.asc` file under `snapshots/signatures/STAGE/` is read, and
//! every signature in it is judged on its own, under sequoia's
//! [`StandardPolicy`] at the time it was made *and* now:
//!
//! - it must be by a key of a certificate that `trust.kdl` lists (its
//!   primary key or a subkey), bound and signing-capable when it signed;
//! - neither that key nor its certificate may be expired or revoked, then
//!   or now (a key that has since expired or been revoked no longer
//!   vouches for anything);
//! - its hash must be one the policy accepts (SHA-1 is not), and it must
//!   verify over the exact bytes of `snapshots/STAGE.kdl`;
//! - it must sit in the file named for its certificate's fingerprint, so
//!   that one signer's file cannot carry another's signature.
//!
//! A certificate counts once, however many good signatures it made and
//! through however many subkeys. The rules then count distinct signers per
//! role. Nothing here looks at the store: an auditor can check signatures
//! without a build machine.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use sequoia_openpgp as openpgp;

use openpgp::cert::amalgamation::{ValidAmalgamation, ValidateAmalgamation};
use openpgp::crypto::hash::Hash;
use openpgp::packet::{Packet, Signature};
use openpgp::parse::{PacketParser, PacketParserResult, Parse};
use openpgp::policy::{HashAlgoSecurity, Policy, StandardPolicy};
use openpgp::types::{RevocationStatus, SignatureType};

use crate::chain::trust::Trust;
use super::rejection::{Rejected, Rejection};
use crate::sign::snapshot;

/// Clock skew allowed on a signature's creation time, as sequoia's
/// verifier allows.
const CLOCK_SKEW: Duration = Duration::from_secs(30 * 60);

/// The verdict on one signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SignatureCheck {
    /// The file, relative to the chain directory.
    pub file: String,
    /// Which signature of the file (1-based); most files hold one.
    pub index: usize,
    /// The signer it is by, when its key belongs to one in `trust.kdl`.
    pub signer: Option<String>,
    /// The key that made it (fingerprint or key ID, upper-case hex), as far
    /// as the signature says.
    pub key: Option<String>,
    /// Whether it counts toward the rules.
    pub counted: bool,
    /// Why it does not count; `None` when it does.
    pub reason: Option<Rejection>,
}

/// One `require` rule, checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleCheck {
    /// The role.
    pub role: String,
    /// How many distinct signers of the role must sign.
    pub count: u32,
    /// The signers of that role who did, in `trust.kdl` order.
    pub signed: Vec<String>,
    /// Those who did not.
    pub missing: Vec<String>,
    /// Whether enough did.
    pub met: bool,
}

/// Every signature of a stage's snapshot, and the rules checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StageSignatures {
    /// The stage.
    pub stage: String,
    /// Why the snapshot itself cannot be vouched for (none written, or
    /// written for another definition of the stage); the rules are then
    /// not met whatever was signed.
    pub problem: Option<String>,
    /// Every signature found, in file order.
    pub signatures: Vec<SignatureCheck>,
    /// The rules, in `trust.kdl` order.
    pub rules: Vec<RuleCheck>,
    /// Whether every rule is met and the snapshot has no problem.
    pub met: bool,
}

impl RuleCheck {
    /// "1 of 2 maintainers: alice signed; bob did not".
    pub fn describe(&self) -> String {
        let plural = if self.count == 1 { "" } else { "s" };
        let names = |v: &[String]| match v {
            [] => String::new(),
            [one] => one.clone(),
            [init @ .., last] => format!("{} and {last}", init.join(", ")),
        };
        let head = format!("{} of {} {}{plural}", self.signed.len(), self.count, self.role);
        match (self.signed.is_empty(), self.missing.is_empty()) {
            (false, true) => format!("{head}: {} signed", names(&self.signed)),
            (true, _) => format!("{head}: {} did not sign", names(&self.missing)),
            (false, false) => format!("{head}: {} signed; {} did not", names(&self.signed), names(&self.missing)),
        }
    }
}

impl StageSignatures {
    /// One line on what is missing, for a rule not met; `None` when met.
    pub fn shortfall(&self) -> Option<String> {
        if let Some(p) = &self.problem {
            return Some(p.clone());
        }
        let unmet: Vec<String> = self.rules.iter().filter(|r| !r.met).map(RuleCheck::describe).collect();
        (!unmet.is_empty()).then(|| unmet.join("; "))
    }
}

/// The signature directory of `stage`.
pub fn signature_dir(dir: &Path, stage: &str) -> std::path::PathBuf {
    dir.join("snapshots").join("signatures").join(stage)
}

/// The names of the signature files of `stage` (`*.asc`, regular, not
/// hidden), sorted; none when the directory is missing.
pub fn signature_files(dir: &Path, stage: &str) -> Vec<String> {
    let mut names: Vec<String> = match std::fs::read_dir(signature_dir(dir, stage)) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| n.ends_with(".asc") && !n.starts_with('.'))
            .collect(),
        Err(_) => Vec::new(),
    };
    names.sort();
    names
}

/// The file a signer's signature of `stage` is saved under, relative to the
/// chain directory.
pub fn signature_file(stage: &str, fingerprint: &str) -> String {
    format!("snapshots/signatures/{stage}/{fingerprint}.asc")
}

/// Checks the signatures of `stage`'s snapshot. `definition` is the stage's
/// current definition digest: a snapshot written for another one vouches
/// for something else.
pub fn check_stage(trust: &Trust, dir: &Path, stage: &str, definition: &crate::hash::Blake3) -> StageSignatures {
    let shown = format!("snapshots/{stage}.kdl");
    let mut result = StageSignatures { stage: stage.to_string(), problem: None, signatures: Vec::new(), rules: Vec::new(), met: false };
    let snapshot_bytes = match std::fs::read(snapshot::path(dir, stage)) {
        Ok(b) => Some(b),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            result.problem = Some(format!("{shown} does not exist: nothing is signed (write it with `bootstrap snapshot {stage}`)"));
            None
        }
        Err(e) => {
            result.problem = Some(format!("cannot read {shown}: {e}"));
            None
        }
    };
    if let Some(bytes) = &snapshot_bytes {
        match snapshot::Snapshot::parse(stage, bytes) {
            Ok(s) if s.definition != *definition => {
                result.problem = Some(format!(
                    "{shown} was written for another definition of `{stage}` ({}, now {definition}): its signatures vouch for that one; snapshot the stage again and have it signed",
                    s.definition
                ));
            }
            Ok(_) => {}
            Err(e) => result.problem = Some(e.to_string()),
        }
        result.signatures = check_files(trust, dir, stage, bytes, SystemTime::now());
    }
    let counted: Vec<&str> = result.signatures.iter().filter(|s| s.counted).filter_map(|s| s.signer.as_deref()).collect();
    result.rules = trust
        .rules
        .iter()
        .map(|rule| {
            let (mut signed, mut missing) = (Vec::new(), Vec::new());
            for sg in trust.signers.iter().filter(|sg| sg.role == rule.role) {
                if counted.contains(&sg.name.as_str()) { &mut signed } else { &mut missing }.push(sg.name.clone());
            }
            let met = signed.len() >= rule.count as usize;
            RuleCheck { role: rule.role.clone(), count: rule.count, signed, missing, met }
        })
        .collect();
    result.met = result.problem.is_none() && result.rules.iter().all(|r| r.met);
    result
}

/// Every signature in every `*.asc` file of the stage's directory, judged;
/// a certificate's second good signature is marked as already counted.
fn check_files(trust: &Trust, dir: &Path, stage: &str, data: &[u8], now: SystemTime) -> Vec<SignatureCheck> {
    let sig_dir = signature_dir(dir, stage);
    let mut names = signature_files(dir, stage);
    // Signers' own files first, in trust.kdl order, then any other file by
    // name: a report reads like the policy, and a signer's own file is
    // judged before copies of their signature elsewhere.
    names.sort_by_key(|n| {
        let stem = n.trim_end_matches(".asc").to_ascii_uppercase();
        (trust.signer_by_fingerprint(&stem).unwrap_or(usize::MAX), n.clone())
    });
    let mut out = Vec::new();
    let mut counted: Vec<usize> = Vec::new();
    for name in names {
        match std::fs::read(sig_dir.join(&name)) {
            Ok(bytes) => out.extend(check_file(trust, stage, &name, &bytes, data, now, &mut counted)),
            Err(e) => out.push(SignatureCheck {
                file: format!("snapshots/signatures/{stage}/{name}"),
                index: 1,
                signer: None,
                key: None,
                counted: false,
                reason: Some(Rejection::Unreadable(e.to_string())),
            }),
        }
    }
    out
}

/// The signatures in `bytes`, judged as if they were the file `name` of the
/// stage's signature directory, over the snapshot bytes `data`: what
/// `sign` checks before it saves a signature.
pub fn check_signature_file(trust: &Trust, stage: &str, name: &str, bytes: &[u8], data: &[u8]) -> Vec<SignatureCheck> {
    check_file(trust, stage, name, bytes, data, SystemTime::now(), &mut Vec::new())
}

/// The signatures of one file; `counted` holds the signers already counted.
fn check_file(
    trust: &Trust,
    stage: &str,
    name: &str,
    bytes: &[u8],
    data: &[u8],
    now: SystemTime,
    counted: &mut Vec<usize>,
) -> Vec<SignatureCheck> {
    let file = format!("snapshots/signatures/{stage}/{name}");
    let stem = name.trim_end_matches(".asc").to_ascii_uppercase();
    let sigs = match read_signatures(bytes) {
        Ok(sigs) => sigs,
        Err(reason) => {
            return vec![SignatureCheck { file, index: 1, signer: None, key: None, counted: false, reason: Some(Rejection::NotSignatures(reason)) }];
        }
    };
    let policy = StandardPolicy::new();
    let mut out = Vec::new();
    for (i, sig) in sigs.iter().enumerate() {
        let key = sig.get_issuers().first().map(|h| h.to_hex());
        let mut check = SignatureCheck { file: file.clone(), index: i + 1, signer: None, key, counted: false, reason: None };
        match judge(trust, sig, data, &stem, &policy, now, stage) {
            Ok(signer) => {
                let s = &trust.signers[signer];
                check.signer = Some(s.name.clone());
                if counted.contains(&signer) {
                    check.reason = Some(Rejection::AlreadyCounted { signer: s.name.clone() });
                } else {
                    counted.push(signer);
                    check.counted = true;
                }
            }
            Err(Rejected { signer, why }) => {
                check.signer = signer.map(|i| trust.signers[i].name.clone());
                check.reason = Some(why);
            }
        }
        out.push(check);
    }
    out
}

/// The signature packets in a file's bytes; the reason when it holds
/// anything else.
fn read_signatures(bytes: &[u8]) -> Result<Vec<Signature>, String> {
    let mut sigs = Vec::new();
    let mut ppr = PacketParser::from_bytes(bytes).map_err(|e| format!("not an OpenPGP signature file: {e}"))?;
    while let PacketParserResult::Some(pp) = ppr {
        let (packet, next) = pp.next().map_err(|e| format!("not an OpenPGP signature file: {e}"))?;
        match packet {
            Packet::Signature(sig) => sigs.push(sig),
            other => return Err(format!("holds a {} packet; a detached signature file holds only signatures", other.tag())),
        }
        ppr = next;
    }
    if sigs.is_empty() {
        return Err("holds no signature".to_string());
    }
    Ok(sigs)
}

/// `YYYY-MM-DD HH:MM UTC` of a time.
fn when(t: SystemTime) -> String {
    crate::time::utc(t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()))
}

/// Why a revocation revokes, from its reason subpacket.
fn revocation_reason(revs: &[&Signature]) -> String {
    match revs.iter().find_map(|r| r.reason_for_revocation()) {
        Some((code, msg)) if !msg.is_empty() => format!("{code}: {}", String::from_utf8_lossy(msg)),
        Some((code, _)) => code.to_string(),
        None => "no reason given".to_string(),
    }
}

/// The signer whose good signature this is; otherwise the signer it
/// claims to be by (if any) and why it counts zero.
fn judge(
    trust: &Trust,
    sig: &Signature,
    data: &[u8],
    stem: &str,
    policy: &StandardPolicy,
    now: SystemTime,
    stage: &str,
) -> Result<usize, Rejected> {
    let shown = format!("snapshots/{stage}.kdl");
    if !matches!(sig.typ(), SignatureType::Binary | SignatureType::Text) {
        return Err(Rejected { signer: None, why: Rejection::NotOverADocument(sig.typ().to_string()) });
    }
    let Some(created) = sig.signature_creation_time() else {
        return Err(Rejected { signer: None, why: Rejection::NoCreationTime });
    };
    let issuers = sig.get_issuers();
    if issuers.is_empty() {
        return Err(Rejected { signer: None, why: Rejection::NoIssuer });
    }
    let found = trust.signers.iter().enumerate().find_map(|(i, s)| {
        s.cert.keys().key_handles(issuers.iter().cloned()).next().map(|ka| (i, ka.key().fingerprint()))
    });
    let Some((signer, key_fpr)) = found else {
        return Err(Rejected { signer: None, why: Rejection::UnknownKey(issuers.iter().map(|h| h.to_hex()).collect()) });
    };
    let s = &trust.signers[signer];
    let fail = |why: Rejection| Err(Rejected { signer: Some(signer), why });
    let name = || s.name.clone();
    let key = || key_fpr.to_string();
    if let Err(e) = policy.signature(sig, HashAlgoSecurity::CollisionResistance) {
        return fail(Rejection::WeakHash { algo: sig.hash_algo().to_string(), why: e.to_string() });
    }
    // The digest over the file as it is now. Its first two bytes are
    // stored in the signature, which tells "made over other bytes" from
    // "does not verify" (forged or damaged).
    let digest = match digest_of(sig, data) {
        Ok(d) => d,
        Err(e) => return fail(Rejection::CannotHash { file: shown, why: e.to_string() }),
    };
    if digest.get(..2) != Some(&sig.digest_prefix()[..]) {
        return fail(Rejection::OtherBytes { signer: name(), file: shown });
    }
    let cert = &s.cert;
    let Some(ka) = cert.keys().key_handles(issuers.iter().cloned()).next() else {
        return fail(Rejection::KeyGone);
    };
    for (t, at) in [(created, "when it signed"), (now, "now")] {
        let vc = match cert.with_policy(policy, t) {
            Ok(vc) => vc,
            Err(e) => return fail(Rejection::CertInvalid { signer: name(), at, why: e.to_string() }),
        };
        if let RevocationStatus::Revoked(revs) = vc.revocation_status() {
            return fail(Rejection::CertRevoked { signer: name(), reason: revocation_reason(&revs) });
        }
        if vc.alive().is_err() {
            let expiry = vc.primary_key().key_expiration_time().map_or_else(|| "its expiry".into(), when);
            return fail(Rejection::CertExpired { signer: name(), expiry });
        }
        let vka = match ka.clone().with_policy(policy, t) {
            Ok(k) => k,
            Err(e) => return fail(Rejection::KeyNotBound { key: key(), signer: name(), at, why: e.to_string() }),
        };
        if let RevocationStatus::Revoked(revs) = vka.revocation_status() {
            return fail(Rejection::KeyRevoked { signer: name(), key: key(), reason: revocation_reason(&revs) });
        }
        if vka.alive().is_err() {
            let expiry = vka.key_expiration_time().map_or_else(|| "its expiry".into(), when);
            return fail(Rejection::KeyExpired { signer: name(), key: key(), expiry });
        }
        if !vka.for_signing() {
            return fail(Rejection::NotSigningKey { signer: name(), key: key() });
        }
    }
    if let Err(e) = sig.signature_alive(now, CLOCK_SKEW) {
        return fail(Rejection::SignatureNotAlive { why: e.to_string(), made: when(created) });
    }
    if let Err(e) = sig.verify_digest(ka.key(), &digest) {
        return fail(Rejection::DoesNotVerify { signer: name(), key: key(), why: e.to_string() });
    }
    if stem != s.fingerprint {
        let named = match trust.signer_by_fingerprint(stem) {
            Some(o) => format!("the file of {}", trust.signers[o].name),
            None => "no signer's file".to_string(),
        };
        return fail(Rejection::WrongFile { signer: name(), stem: stem.to_string(), named, own: s.fingerprint.clone() });
    }
    Ok(signer)
}

/// The digest a signature is checked against: salt, the data, then the
/// signature's own hashed fields.
fn digest_of(sig: &Signature, data: &[u8]) -> openpgp::Result<Vec<u8>> {
    let mut ctx = sig.hash_algo().context()?.for_signature(sig.version());
    if let Some(salt) = sig.salt() {
        ctx.update(salt);
    }
    ctx.update(data);
    sig.hash(&mut ctx)?;
    ctx.into_digest()
}
