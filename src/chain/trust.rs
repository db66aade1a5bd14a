//! `chain/trust.kdl` (ARCHITECTURE.md §6): who may sign stage snapshots and how many
//! signatures of each role a snapshot needs.
//!
//! ```kdl
//! trust {
//!     signer "alice" role="maintainer" fingerprint="EB85…E38E" cert="keys/alice.asc"
//!     require role="maintainer" count=2
//! }
//! ```
//!
//! The file is loaded apart from the rest of the chain (it says nothing
//! about how to build) but with the same diagnostics: every problem in one
//! run, each with its span. Loading also reads each signer's certificate,
//! so a [`Trust`] always holds certificates whose primary fingerprints are
//! the ones written. Whether a key is expired or revoked is not a loading
//! problem: signatures made with it count zero, with that reason
//! (`crate::sign::check`).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use kdl::{KdlEntry, KdlNode};
use miette::{NamedSource, SourceSpan};
use sequoia_openpgp::Cert;

use super::ChainErrors;
use super::diag::{ChainDiagnostic as D, Src, did_you_mean};
use super::model::Span;
use super::parse::{Cx, Props, parse_document};
use super::cert::{normalize_fingerprint, read_public};

/// The file's path relative to the chain directory.
pub const TRUST_FILE: &str = "chain/trust.kdl";

const SIGNER_USAGE: &str = "signer \"NAME\" role=\"maintainer\" fingerprint=\"…\" cert=\"keys/NAME.asc\"";
const REQUIRE_USAGE: &str = "require role=\"maintainer\" count=2";

/// A loaded `trust.kdl`. Invariants: signer names and fingerprints are
/// unique; each signer's certificate is the public certificate whose
/// primary fingerprint is `fingerprint`; every rule names a role some
/// signer has, at most once, with a count between 1 and the number of
/// signers of that role.
#[derive(Debug, Clone)]
pub struct Trust {
    /// The signers, in file order.
    pub signers: Vec<Signer>,
    /// The rules, in file order; empty when nothing is required.
    pub rules: Vec<Rule>,
}

/// One person who may sign.
#[derive(Debug, Clone)]
pub struct Signer {
    /// The name (e.g. `alice`).
    pub name: String,
    /// The role (e.g. `maintainer`).
    pub role: String,
    /// The primary key's fingerprint, upper-case hex.
    pub fingerprint: String,
    /// The certificate file, relative to `chain/`.
    pub cert_path: String,
    /// The certificate.
    pub cert: Cert,
}

/// `require role=… count=…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// The role.
    pub role: String,
    /// How many distinct signers of that role must sign.
    pub count: u32,
}

impl Trust {
    /// The signer whose certificate has this primary fingerprint.
    pub fn signer_by_fingerprint(&self, fpr: &str) -> Option<usize> {
        self.signers.iter().position(|s| s.fingerprint == fpr)
    }
}

/// A signer as written, before its certificate is read.
struct Written {
    name: String,
    name_span: SourceSpan,
    role: String,
    fingerprint: Option<(String, SourceSpan)>,
    cert: Option<(String, SourceSpan)>,
}

/// Loads `chain/trust.kdl` from the chain directory `dir`; `Ok(None)` when
/// there is none.
pub fn load(dir: &Path) -> Result<Option<Trust>, ChainErrors> {
    let fail = |d: D| ChainErrors { diagnostics: vec![d] };
    let bytes = match super::read::read(dir, TRUST_FILE) {
        Ok(b) => b,
        Err(super::read::Refused::NotFound) => return Ok(None),
        Err(e) => return Err(fail(e.diagnostic(TRUST_FILE.into()))),
    };
    let text: Arc<str> = String::from_utf8(bytes)
        .map_err(|e| fail(D::NotUtf8 { path: TRUST_FILE.into(), offset: e.utf8_error().valid_up_to() }))?
        .into();
    let src: Src = NamedSource::new(TRUST_FILE, text);
    let doc = parse_document(&src).map_err(|diagnostics| ChainErrors { diagnostics })?;
    let mut cx = Cx { src: &src, diags: Vec::new() };
    let mut trust_node: Option<&KdlNode> = None;
    let mut seen = HashMap::new();
    for node in doc.nodes() {
        if node.name().value() != "trust" {
            cx.unknown_node(node, "the top level of chain/trust.kdl", &["trust"]);
        } else if cx.once(&mut seen, node, TRUST_FILE) {
            trust_node = Some(node);
        }
    }
    let Some(node) = trust_node else {
        cx.diags.push(D::MissingNode {
            src: src.clone(),
            span: (0, 0).into(),
            parent: TRUST_FILE.into(),
            child: "trust".into(),
            help: format!("write the signers and rules in one block: trust {{ {SIGNER_USAGE}; {REQUIRE_USAGE} }}"),
        });
        return Err(ChainErrors { diagnostics: cx.diags });
    };
    cx.entries(node, 0, Props::Only(&[]), "trust { … }");
    let mut written = Vec::new();
    let mut rules: Vec<(Rule, SourceSpan, SourceSpan)> = Vec::new();
    for child in node.children().map(|c| c.nodes()).unwrap_or_default() {
        match child.name().value() {
            "signer" => written.extend(signer(&mut cx, child)),
            "require" => rules.extend(require(&mut cx, child)),
            _ => cx.unknown_node(child, "`trust`", &["signer", "require"]),
        }
    }
    unique(&mut cx, &written);
    check_rules(&mut cx, &written, &rules);
    let signers = read_certs(&mut cx, dir, written);
    if !cx.diags.is_empty() {
        // In file order, as a reader goes through the file.
        cx.diags.sort_by_key(|d| d.location().map_or(0, |(_, span)| span.offset()));
        return Err(ChainErrors { diagnostics: cx.diags });
    }
    Ok(Some(Trust { signers, rules: rules.into_iter().map(|(r, _, _)| r).collect() }))
}

/// The property `key` of `node`, reporting it when it is missing.
fn property<'n>(cx: &mut Cx, node: &KdlNode, e: &super::parse::Entries<'n>, key: &str, usage: &str) -> Option<&'n KdlEntry> {
    let entry = e.prop(key);
    if entry.is_none() {
        cx.diags.push(D::MissingProperty {
            src: cx.src(),
            span: node.span(),
            node: node.name().value().to_owned(),
            property: key.to_owned(),
            help: format!("write it as: {usage}"),
        });
    }
    entry
}

/// A property's string value, reporting a missing or mistyped one.
fn required(cx: &mut Cx, node: &KdlNode, e: &super::parse::Entries<'_>, key: &str, usage: &str) -> Option<(String, SourceSpan)> {
    let entry = property(cx, node, e, key, usage)?;
    let value = cx.nonempty_string(entry, &format!("`{key}`"), usage)?;
    Some((value, entry.span()))
}

fn signer(cx: &mut Cx, node: &KdlNode) -> Option<Written> {
    cx.no_children(node);
    let e = cx.entries(node, 1, Props::Only(&["role", "fingerprint", "cert"]), SIGNER_USAGE);
    let named = cx.name_of(node, "signer", SIGNER_USAGE);
    let role = required(cx, node, &e, "role", SIGNER_USAGE);
    let fingerprint = required(cx, node, &e, "fingerprint", SIGNER_USAGE).and_then(|(value, span)| {
        match normalize_fingerprint(&value) {
            Ok(fpr) => Some((fpr, span)),
            Err(reason) => {
                cx.diags.push(D::MalformedFingerprint { src: cx.src(), span, reason });
                None
            }
        }
    });
    let cert = required(cx, node, &e, "cert", SIGNER_USAGE).and_then(|(path, span)| match cert_path_problem(&path) {
        None => Some((path, span)),
        Some(reason) => {
            cx.diags.push(D::InvalidCertPath { src: cx.src(), span, path, reason: reason.into() });
            None
        }
    });
    let named = named?;
    let Span { offset, len } = named.span;
    Some(Written { name: named.name, name_span: (offset, len).into(), role: role?.0, fingerprint, cert })
}

/// Why a `cert` value is not a plain relative path inside `chain/`.
fn cert_path_problem(path: &str) -> Option<&'static str> {
    if path.starts_with('/') {
        Some("an absolute path")
    } else if path.split('/').any(|c| c == "..") {
        Some("leaves chain/ through `..`")
    } else if path.split('/').any(|c| c.is_empty() || c == ".") {
        Some("has an empty or `.` component")
    } else {
        None
    }
}

fn require(cx: &mut Cx, node: &KdlNode) -> Option<(Rule, SourceSpan, SourceSpan)> {
    cx.no_children(node);
    let e = cx.entries(node, 0, Props::Only(&["role", "count"]), REQUIRE_USAGE);
    let role = required(cx, node, &e, "role", REQUIRE_USAGE);
    let count = property(cx, node, &e, "count", REQUIRE_USAGE)
        .and_then(|entry| cx.integer(entry, "`count`", 1, 1000, REQUIRE_USAGE).map(|n| (n as u32, entry.span())));
    let ((role, role_span), (count, count_span)) = (role?, count?);
    Some((Rule { role, count }, role_span, count_span))
}

/// Names and fingerprints are each given once.
fn unique(cx: &mut Cx, written: &[Written]) {
    let mut names: HashMap<&str, SourceSpan> = HashMap::new();
    let mut fprs: HashMap<&str, SourceSpan> = HashMap::new();
    for w in written {
        if let Some(first) = names.insert(&w.name, w.name_span) {
            cx.diags.push(D::DuplicateSigner {
                src: cx.src(),
                span: w.name_span,
                first,
                what: "name".into(),
                value: w.name.clone(),
            });
        }
        if let Some((fpr, span)) = &w.fingerprint
            && let Some(first) = fprs.insert(fpr, *span)
        {
            cx.diags.push(D::DuplicateSigner { src: cx.src(), span: *span, first, what: "fingerprint".into(), value: fpr.clone() });
        }
    }
}

fn check_rules(cx: &mut Cx, written: &[Written], rules: &[(Rule, SourceSpan, SourceSpan)]) {
    let mut roles: Vec<&str> = written.iter().map(|w| w.role.as_str()).collect();
    roles.sort();
    roles.dedup();
    let mut seen: HashMap<&str, SourceSpan> = HashMap::new();
    for (rule, role_span, count_span) in rules {
        if let Some(first) = seen.insert(&rule.role, *role_span) {
            cx.diags.push(D::DuplicateRule { src: cx.src(), span: *role_span, first, role: rule.role.clone() });
            continue;
        }
        let available = written.iter().filter(|w| w.role == rule.role).count();
        if available == 0 {
            let list = if roles.is_empty() {
                "no signer is declared yet".to_string()
            } else {
                format!("the signers' roles are: {}", roles.join(", "))
            };
            let help = match did_you_mean(&rule.role, roles.iter().copied()) {
                Some(dym) => format!("{dym} {list}"),
                None => format!("{list}; add a `signer` with role=\"{}\"", rule.role),
            };
            cx.diags.push(D::UnknownRole { src: cx.src(), span: *role_span, role: rule.role.clone(), help });
        } else if rule.count as usize > available {
            cx.diags.push(D::CountExceedsSigners {
                src: cx.src(),
                span: *count_span,
                role: rule.role.clone(),
                count: rule.count,
                available,
            });
        }
    }
}

/// Reads each signer's certificate and checks its fingerprint.
fn read_certs(cx: &mut Cx, dir: &Path, written: Vec<Written>) -> Vec<Signer> {
    let mut signers = Vec::new();
    for w in written {
        let (Some((fingerprint, fpr_span)), Some((cert_path, cert_span))) = (w.fingerprint, w.cert) else { continue };
        let bytes = match super::read::read(dir, &format!("chain/{cert_path}")) {
            Ok(b) => b,
            Err(e) => {
                let reason = e.to_string();
                cx.diags.push(D::MissingCert { src: cx.src(), span: cert_span, signer: w.name, path: cert_path, reason });
                continue;
            }
        };
        let cert = match read_public(&bytes) {
            Ok(c) => c,
            Err(p) => {
                cx.diags.push(D::BadCert {
                    src: cx.src(),
                    span: cert_span,
                    signer: w.name,
                    path: cert_path,
                    problem: p.problem,
                    help: p.help,
                });
                continue;
            }
        };
        let actual = cert.fingerprint().to_hex();
        if actual != fingerprint {
            let is_subkey = cert.keys().subkeys().any(|k| k.key().fingerprint().to_hex() == fingerprint);
            let help = if is_subkey {
                format!("{fingerprint} is a subkey of that certificate: write the primary key's fingerprint, {actual}")
            } else {
                format!(
                    "if {} replaced their key on purpose, write fingerprint=\"{actual}\" (and have it reviewed); otherwise restore chain/{cert_path} from version control",
                    w.name
                )
            };
            cx.diags.push(D::FingerprintMismatch {
                src: cx.src(),
                span: fpr_span,
                signer: w.name,
                path: cert_path,
                written: fingerprint,
                actual,
                help,
            });
            continue;
        }
        signers.push(Signer { name: w.name, role: w.role, fingerprint, cert_path, cert });
    }
    signers
}
