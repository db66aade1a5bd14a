//! OpenPGP keys and signatures made by the real tools from Debian's
//! packages (`gpg`, `sq`, `sqv`), for the signature tests. Every key is
//! generated here, in a keyring of the test's own.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A GnuPG home of the test's own; its agent is stopped when dropped.
pub struct Gpg {
    pub home: tempfile::TempDir,
}

/// One key: its primary fingerprint and its subkeys' fingerprints.
#[derive(Debug, Clone)]
pub struct Key {
    pub fpr: String,
    pub subkeys: Vec<String>,
}

fn ok(what: &str, out: Output) -> Output {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

impl Gpg {
    pub fn new() -> Gpg {
        let home = tempfile::Builder::new().prefix("gpg").tempdir_in("/tmp").unwrap();
        std::fs::set_permissions(home.path(), std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
        Gpg { home }
    }

    /// `gpg --batch` with this home and no passphrase prompts.
    pub fn cmd(&self) -> Command {
        let mut c = Command::new("gpg");
        c.env("GNUPGHOME", self.home.path()).args(["--batch", "--yes", "--pinentry-mode", "loopback"]);
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        ok(&format!("gpg {}", args.join(" ")), self.cmd().args(args).output().expect("gpg runs (apt-get install gpg)"))
    }

    /// The key with this user ID.
    pub fn key(&self, uid: &str) -> Key {
        let out = self.run(&["--with-colons", "--list-keys", uid]);
        let text = String::from_utf8_lossy(&out.stdout);
        let fprs: Vec<String> =
            text.lines().filter(|l| l.starts_with("fpr:")).map(|l| l.split(':').nth(9).unwrap().to_string()).collect();
        Key { fpr: fprs[0].clone(), subkeys: fprs[1..].to_vec() }
    }

    /// A new key `<name@example.org>` (`algo` `usage` `expire`, e.g.
    /// "ed25519" "sign" "never"), with an empty passphrase unless given.
    pub fn generate(&self, name: &str, algo: &str, expire: &str, passphrase: &str, faked_time: Option<&str>) -> Key {
        let uid = format!("<{name}@example.org>");
        let mut args = vec!["--passphrase", passphrase];
        if let Some(t) = faked_time {
            args.extend(["--faked-system-time", t]);
        }
        args.extend(["--quick-gen-key", &uid, algo, "sign", expire]);
        self.run(&args);
        self.key(&uid)
    }

    /// Adds a signing subkey.
    pub fn add_signing_subkey(&self, key: &Key, passphrase: &str) -> Key {
        self.run(&["--passphrase", passphrase, "--quick-add-key", &key.fpr, "ed25519", "sign", "never"]);
        self.key(&key.fpr)
    }

    /// The armoured public certificate.
    pub fn export(&self, fpr: &str, to: &Path) {
        let out = self.run(&["--armor", "--export", fpr]);
        std::fs::write(to, out.stdout).unwrap();
    }

    /// The armoured secret key (protected by its passphrase, if any).
    pub fn export_secret(&self, fpr: &str, passphrase: &str, to: &Path) {
        let out = self.run(&["--passphrase", passphrase, "--armor", "--export-secret-keys", fpr]);
        std::fs::write(to, out.stdout).unwrap();
    }

    /// A detached signature of `file` by each of `signers` (a `!` suffix
    /// picks that exact subkey), armoured unless `binary`.
    pub fn sign(&self, signers: &[&str], file: &Path, to: &Path, extra: &[&str]) {
        let mut args: Vec<String> = vec!["--passphrase".into(), String::new()];
        for s in signers {
            args.extend(["--local-user".to_string(), s.to_string()]);
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        args.extend(["--armor".into(), "--output".into(), to.display().to_string(), "--detach-sign".into(), file.display().to_string()]);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        self.run(&refs);
    }

    /// Revokes the key with the revocation certificate gpg made with it.
    pub fn revoke(&self, fpr: &str) {
        let rev = self.home.path().join("openpgp-revocs.d").join(format!("{fpr}.rev"));
        // gpg prefixes the armour line with ':' so that it is not imported by accident.
        let text = std::fs::read_to_string(&rev).unwrap().replace(":-----BEGIN", "-----BEGIN");
        let armed = self.home.path().join("revoke.asc");
        std::fs::write(&armed, text).unwrap();
        self.run(&["--import", armed.to_str().unwrap()]);
    }

    /// `gpg --verify SIG FILE` with `certs` imported into a fresh keyring.
    pub fn verify(certs: &[PathBuf], sig: &Path, file: &Path) -> Output {
        let other = Gpg::new();
        for c in certs {
            other.run(&["--import", c.to_str().unwrap()]);
        }
        other.cmd().args(["--verify", sig.to_str().unwrap(), file.to_str().unwrap()]).output().unwrap()
    }
}

impl Drop for Gpg {
    fn drop(&mut self) {
        let _ = Command::new("gpgconf").env("GNUPGHOME", self.home.path()).args(["--kill", "gpg-agent"]).output();
    }
}

/// `sq` (Sequoia's command line).
pub fn sq(args: &[&str]) -> Output {
    ok(&format!("sq {}", args.join(" ")), Command::new("sq").args(args).output().expect("sq runs (apt-get install sq)"))
}

/// A new sq key `<name@example.org>`: (secret key file, certificate file, fingerprint).
pub fn sq_key(dir: &Path, name: &str) -> (PathBuf, PathBuf, String) {
    let key = dir.join(format!("{name}.key"));
    let cert = dir.join(format!("{name}.asc"));
    sq(&["key", "generate", "--userid", &format!("<{name}@example.org>"), "--export", key.to_str().unwrap()]);
    sq(&["key", "extract-cert", "--output", cert.to_str().unwrap(), key.to_str().unwrap()]);
    let out = sq(&["inspect", cert.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    let fpr = text.lines().find_map(|l| l.trim().strip_prefix("Fingerprint:")).unwrap().trim().to_string();
    (key, cert, fpr)
}

/// `sqv --signatures N` over `file` with these certificates as keyrings.
pub fn sqv(certs: &[PathBuf], n: usize, sig: &Path, file: &Path) -> Output {
    let mut c = Command::new("sqv");
    for k in certs {
        c.arg("--keyring").arg(k);
    }
    c.args(["--signatures", &n.to_string()]).arg(sig).arg(file).output().expect("sqv runs (apt-get install sqv)")
}
