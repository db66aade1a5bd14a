//! Certificates: reading a signer's public certificate from `chain/keys/`,
//! and fingerprints as `trust.kdl` writes them.

use sequoia_openpgp as openpgp;

use openpgp::Cert;
use openpgp::cert::CertParser;
use openpgp::parse::Parse;

/// A fingerprint as written in `trust.kdl` (hex, any case, spaces allowed),
/// as upper-case hex without spaces; the reason when it is not 40 (v4) or
/// 64 (v6) hex digits.
pub fn normalize_fingerprint(written: &str) -> Result<String, String> {
    let hex: String = written.chars().filter(|c| !c.is_whitespace()).collect();
    if let Some(bad) = hex.chars().find(|c| !c.is_ascii_hexdigit()) {
        return Err(format!("`{bad}` is not a hex digit"));
    }
    match hex.len() {
        40 | 64 => Ok(hex.to_ascii_uppercase()),
        // A key ID is the last 16 digits: too short to name a key safely.
        16 => Err("16 hex digits is a key ID, not a fingerprint".to_string()),
        n => Err(format!("{n} hex digits; a fingerprint has 40 (v4 key) or 64 (v6 key)")),
    }
}

/// Every certificate or key in `bytes` (armoured or binary), in order; the
/// parser's complaint when they do not parse.
pub(crate) fn parse_all(bytes: &[u8]) -> Result<Vec<Cert>, String> {
    CertParser::from_bytes(bytes).map_err(|e| e.to_string())?.map(|c| c.map_err(|e| e.to_string())).collect()
}

/// Why a certificate file cannot be used, and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertProblem {
    /// What is wrong ("is not an OpenPGP certificate: …").
    pub problem: String,
    /// What to do.
    pub help: String,
}

/// The one public certificate in `bytes` (armoured or binary).
pub fn read_public(bytes: &[u8]) -> Result<Cert, CertProblem> {
    let export = "export it with `gpg --export --armor FINGERPRINT` or `sq key extract-cert`";
    let mut certs = parse_all(bytes).map_err(|e| CertProblem { problem: format!("is not an OpenPGP certificate: {e}"), help: export.to_string() })?;
    let cert = match certs.len() {
        1 => certs.remove(0),
        0 => {
            return Err(CertProblem { problem: "holds no OpenPGP certificate".into(), help: export.to_string() });
        }
        n => {
            return Err(CertProblem {
                problem: format!("holds {n} certificates; it must hold exactly the signer's"),
                help: format!("keep one certificate per file; {export}"),
            });
        }
    };
    if cert.is_tsk() {
        return Err(CertProblem {
            problem: "holds secret key material".into(),
            help: format!(
                "never publish a secret key: replace the file with the public certificate only ({export}), and consider the key compromised if this file was ever shared"
            ),
        });
    }
    Ok(cert)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_are_normalized_or_refused_with_a_reason() {
        let fpr = "eb85 bb5f a33a 75e1 5e94  4e63 f231 550c 4f47 e38e";
        assert_eq!(normalize_fingerprint(fpr).unwrap(), "EB85BB5FA33A75E15E944E63F231550C4F47E38E");
        assert!(normalize_fingerprint("F231550C4F47E38E").unwrap_err().contains("key ID"));
        assert!(normalize_fingerprint("EB85…E38E").unwrap_err().contains("not a hex digit"));
        assert!(normalize_fingerprint("ABCD").unwrap_err().contains("4 hex digits"));
        assert_eq!(normalize_fingerprint(&"a".repeat(64)).unwrap(), "A".repeat(64));
    }

    #[test]
    fn garbage_is_not_a_certificate() {
        assert!(read_public(b"hello").unwrap_err().problem.contains("not an OpenPGP certificate"));
        assert_eq!(read_public(b"").unwrap_err().problem, "holds no OpenPGP certificate");
    }
}
