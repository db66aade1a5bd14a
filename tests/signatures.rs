//! Signed stage snapshots (DESIGN §6) with real OpenPGP tools: keys made
//! here by `gpg` and `sq`, signatures made by `gpg`, `sq` and `bootstrap
//! sign`, checked by `bootstrap verify-signatures`/`verify` and, the other
//! way round, by `gpg --verify` and `sqv`.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::mini::Mini;
use common::says;
use common::pgp::{Gpg, Key, sq, sq_key, sqv};

/// The mini chain with stage0 verified on both seeds and snapshotted.
fn snapshotted() -> Mini {
    let m = Mini::new();
    let r = m.run(&["verify", "stage0", "--no-signatures"]);
    assert_eq!(r.code, 0, "verify: {}{}", r.stdout, r.stderr);
    let r = m.run(&["snapshot", "stage0"]);
    assert_eq!(r.code, 0, "snapshot: {}", r.stderr);
    m
}

/// A directory beside the chain for secret keys and scratch files.
fn private(m: &Mini) -> PathBuf {
    let p = m.chain.parent().unwrap().join("private");
    fs::create_dir_all(&p).unwrap();
    p
}

/// Writes chain/trust.kdl: (name, role, fingerprint), certificates at
/// chain/keys/NAME.asc.
fn write_trust(m: &Mini, signers: &[(&str, &str, &str)], rules: &[(&str, u32)]) {
    let mut text = String::from("trust {\n");
    for (name, role, fpr) in signers {
        text += &format!("    signer \"{name}\" role=\"{role}\" fingerprint=\"{fpr}\" cert=\"keys/{name}.asc\"\n");
    }
    for (role, count) in rules {
        text += &format!("    require role=\"{role}\" count={count}\n");
    }
    text += "}\n";
    fs::write(m.chain.join("chain/trust.kdl"), text).unwrap();
}

fn keys_dir(m: &Mini) -> PathBuf {
    let p = m.chain.join("chain/keys");
    fs::create_dir_all(&p).unwrap();
    p
}

fn sig_dir(m: &Mini) -> PathBuf {
    m.chain.join("snapshots/signatures/stage0")
}

fn snapshot_file(m: &Mini) -> PathBuf {
    m.chain.join("snapshots/stage0.kdl")
}

/// Empties the stage's signature directory.
fn clear_signatures(m: &Mini) {
    let _ = fs::remove_dir_all(sig_dir(m));
    fs::create_dir_all(sig_dir(m)).unwrap();
}

/// Replaces every fingerprint and key ID of `keys` by its name.
fn redact(text: &str, keys: &[(&str, &Key)]) -> String {
    let mut pairs: Vec<(String, String)> = Vec::new();
    for (name, k) in keys {
        pairs.push((k.fpr.clone(), format!("<{name}>")));
        pairs.push((k.fpr[24..].to_string(), format!("<{name}-id>")));
        for (i, s) in k.subkeys.iter().enumerate() {
            pairs.push((s.clone(), format!("<{name}-sub{}>", i + 1)));
            pairs.push((s[24..].to_string(), format!("<{name}-sub{}-id>", i + 1)));
        }
    }
    pairs.sort_by_key(|(hex, _)| std::cmp::Reverse(hex.len()));
    let mut out = text.to_string();
    for (hex, name) in pairs {
        out = out.replace(&hex, &name);
    }
    out
}

/// The maintainer/reviewer workflow of the README, end to end: verify →
/// snapshot → sign → verify-signatures, with a passphrase, a reviewer's
/// countersignature, and the result checked by gpg and sqv.
#[test]
fn maintainers_and_a_reviewer_sign_and_the_gate_opens() {
    let m = Mini::new();
    let private = private(&m);
    let keys = keys_dir(&m);
    let gpg = Gpg::new();
    let alice = gpg.generate("alice", "ed25519", "never", "correct horse", None);
    gpg.export(&alice.fpr, &keys.join("alice.asc"));
    gpg.export_secret(&alice.fpr, "correct horse", &private.join("alice.key"));
    let carol = gpg.generate("carol", "ed25519", "never", "", None);
    gpg.export(&carol.fpr, &keys.join("carol.asc"));
    gpg.export_secret(&carol.fpr, "", &private.join("carol.key"));
    let (bob_key, bob_cert, bob_fpr) = sq_key(&private, "bob");
    fs::copy(&bob_cert, keys.join("bob.asc")).unwrap();
    let spaced: String = alice.fpr.as_bytes().chunks(4).map(|c| std::str::from_utf8(c).unwrap()).collect::<Vec<_>>().join(" ");
    write_trust(
        &m,
        &[("alice", "maintainer", &spaced), ("bob", "maintainer", &bob_fpr), ("carol", "reviewer", &carol.fpr)],
        &[("maintainer", 2), ("reviewer", 1)],
    );
    let check = m.run(&["check"]);
    assert_eq!(check.code, 0, "{}", check.stderr);
    assert!(check.stdout.contains("trust: 3 signer(s), requires 2 maintainer and 1 reviewer"), "{}", check.stdout);

    // Nothing signed yet: verify builds and compares, but the gate stays shut.
    let r = m.run(&["verify", "stage0"]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(says(&r.stderr, "snapshots/stage0.kdl does not exist"), "{}", r.stderr);
    let r = m.run(&["verify", "stage0", "--no-signatures"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("SIGNATURES NOT CHECKED (--no-signatures)"), "{}", r.stdout);
    assert!(says(&r.stderr, "signatures are NOT checked"), "{}", r.stderr);
    assert_eq!(m.run(&["snapshot", "stage0"]).code, 0);

    // A maintainer signs; the wrong passphrase writes nothing.
    let wrong = private.join("wrong");
    fs::write(&wrong, "incorrect horse\n").unwrap();
    let alice_key = private.join("alice.key");
    let r = m.run(&["sign", "stage0", "--key", alice_key.to_str().unwrap(), "--passphrase-file", wrong.to_str().unwrap()]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(says(&r.stderr, "wrong passphrase"), "{}", r.stderr);
    assert!(!sig_dir(&m).join(format!("{}.asc", alice.fpr)).exists());
    let pass = private.join("pass");
    fs::write(&pass, "correct horse\n").unwrap();
    let r = m.run(&["sign", "stage0", "--key", alice_key.to_str().unwrap(), "--passphrase-file", pass.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("still short: 1 of 2 maintainers: alice signed; bob did not"), "{}", r.stdout);

    let r = m.run(&["verify-signatures", "stage0"]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("1 of 2 maintainers: alice signed; bob did not"), "{}", r.stdout);
    assert!(r.stdout.contains("0 of 1 reviewer: carol did not sign"), "{}", r.stdout);
    assert!(says(&r.stderr, "bootstrap::sign::rule_not_met"), "{}", r.stderr);

    // The reviewer countersigns only what this machine reproduced: its last
    // verify ran before the snapshot existed.
    let carol_key = private.join("carol.key");
    let countersign = ["sign", "stage0", "--key", carol_key.to_str().unwrap(), "--require-reproduced"];
    let r = m.run(&countersign);
    assert_eq!(r.code, 3, "{}{}", r.stdout, r.stderr);
    assert!(says(&r.stderr, "last verified before snapshots/stage0.kdl existed"), "{}", r.stderr);
    assert_eq!(m.run(&["verify", "stage0", "--no-signatures"]).code, 0);
    let r = m.run(&countersign);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);

    let r = m.run(&["sign", "stage0", "--key", bob_key.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let r = m.run(&["verify-signatures", "stage0"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("stage0: signed as chain/trust.kdl requires"), "{}", r.stdout);
    let json: serde_json::Value = serde_json::from_str(&m.run(&["--json", "verify-signatures", "stage0"]).stdout).unwrap();
    assert_eq!(json["met"], true);
    assert_eq!(json["signatures"].as_array().unwrap().iter().filter(|s| s["counted"] == true).count(), 3);
    let r = m.run(&["verify", "stage0"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("rule met      2 of 2 maintainers: alice and bob signed"), "{}", r.stdout);
    let status = m.run(&["status"]);
    assert!(status.stdout.contains("signed as chain/trust.kdl requires"), "{}", status.stdout);

    // What `bootstrap sign` wrote verifies with gpg and sqv.
    let certs = [keys.join("alice.asc"), keys.join("bob.asc"), keys.join("carol.asc")];
    let files: Vec<PathBuf> = [&alice.fpr, &bob_fpr, &carol.fpr].iter().map(|f| sig_dir(&m).join(format!("{f}.asc"))).collect();
    for f in &files {
        let text = fs::read_to_string(f).unwrap();
        assert!(text.starts_with("-----BEGIN PGP SIGNATURE-----"), "not armoured: {text}");
        let out = Gpg::verify(&certs, f, &snapshot_file(&m));
        assert!(out.status.success(), "gpg --verify {}: {}", f.display(), String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stderr).contains("Good signature"));
    }
    let all = private.join("all.sig");
    let mut bytes = Vec::new();
    for f in &files {
        bytes.extend(sq(&["dearmor", f.to_str().unwrap()]).stdout);
    }
    fs::write(&all, bytes).unwrap();
    let out = sqv(&certs, 3, &all, &snapshot_file(&m));
    assert!(out.status.success(), "sqv --signatures 3: {}", String::from_utf8_lossy(&out.stderr));
    let out = sqv(&certs, 4, &all, &snapshot_file(&m));
    assert!(!out.status.success(), "sqv counted four signatures from three signers");
    // And gpg agrees that a changed snapshot no longer matches.
    let changed = private.join("changed.kdl");
    fs::write(&changed, fs::read_to_string(snapshot_file(&m)).unwrap() + "// changed\n").unwrap();
    assert!(!Gpg::verify(&certs, &files[0], &changed).status.success());
}

/// Every kind of signature that must count zero, each with its reason;
/// signatures made by gpg and by sq count.
#[test]
fn bad_signatures_count_zero_each_with_its_reason() {
    let m = snapshotted();
    let private = private(&m);
    let keys = keys_dir(&m);
    let snap = snapshot_file(&m);
    let gpg = Gpg::new();
    // alice: a signing primary key and two signing subkeys.
    let alice = gpg.generate("alice", "ed25519", "never", "", None);
    gpg.add_signing_subkey(&alice, "");
    let alice = gpg.add_signing_subkey(&alice, "");
    assert_eq!(alice.subkeys.len(), 2);
    // erin: expired a day after it was made, in 2020; it signed in time.
    let erin = gpg.generate("erin", "ed25519", "1d", "", Some("20200101T000000!"));
    // frank: signs, then is revoked.
    let frank = gpg.generate("frank", "ed25519", "never", "", None);
    // sha: an RSA key that signs with SHA-1.
    let sha = gpg.generate("sha", "rsa2048", "never", "", None);
    // mallory: a key no one listed.
    let mallory = gpg.generate("mallory", "ed25519", "never", "", None);
    let (bob_key, bob_cert, bob_fpr) = sq_key(&private, "bob");
    fs::copy(&bob_cert, keys.join("bob.asc")).unwrap();
    let bob = Key { fpr: bob_fpr.clone(), subkeys: Vec::new() };
    let file = |k: &str| sig_dir(&m).join(format!("{k}.asc"));
    clear_signatures(&m);
    let frank_sig = private.join("frank.asc");
    gpg.sign(&[&frank.fpr], &snap, &frank_sig, &[]);
    gpg.revoke(&frank.fpr);
    for (name, k) in [("alice", &alice), ("erin", &erin), ("frank", &frank), ("sha", &sha)] {
        gpg.export(&k.fpr, &keys.join(format!("{name}.asc")));
    }
    write_trust(
        &m,
        &[
            ("alice", "maintainer", &alice.fpr),
            ("bob", "maintainer", &bob_fpr),
            ("erin", "maintainer", &erin.fpr),
            ("frank", "maintainer", &frank.fpr),
            ("sha", "maintainer", &sha.fpr),
        ],
        &[("maintainer", 2)],
    );
    let names = [("alice", &alice), ("bob", &bob), ("erin", &erin), ("frank", &frank), ("sha", &sha), ("mallory", &mallory)];

    // Made by gpg (alice) and sq (bob): both count.
    gpg.sign(&[&alice.fpr], &snap, &file(&alice.fpr), &[]);
    sq(&["sign", "--detached", "--signer-key", bob_key.to_str().unwrap(), "--output", file(&bob_fpr).to_str().unwrap(), snap.to_str().unwrap()]);
    let r = m.run(&["verify-signatures", "stage0"]);
    assert_eq!(r.code, 0, "gpg and sq signatures: {}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("2 of 2 maintainers: alice and bob signed"), "{}", r.stdout);

    // One run, every rejection: alice signs twice through two subkeys (one
    // file), her valid signature is also saved as bob's file, erin's key
    // expired, frank's is revoked, sha used SHA-1, mallory is no signer.
    clear_signatures(&m);
    let sub = |i: usize| format!("{}!", alice.subkeys[i]);
    gpg.sign(&[&sub(0), &sub(1)], &snap, &file(&alice.fpr), &[]);
    gpg.sign(&[&sub(0)], &snap, &file(&bob_fpr), &[]);
    gpg.sign(&[&erin.fpr], &snap, &file(&erin.fpr), &["--faked-system-time", "20200101T120000!"]);
    fs::copy(&frank_sig, file(&frank.fpr)).unwrap();
    gpg.sign(&[&sha.fpr], &snap, &file(&sha.fpr), &["--digest-algo", "SHA1"]);
    gpg.sign(&[&mallory.fpr], &snap, &file(&mallory.fpr), &[]);
    let r = m.run(&["verify-signatures", "stage0"]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    let shown = redact(&r.stdout, &names);
    for reason in [
        "alice is already counted: a certificate counts once",
        "a good signature by alice, but saved as <bob>.asc, the file of bob",
        "erin's certificate expired on 2020-01-02",
        "frank's certificate is revoked",
        "SHA1 signature, which the standard policy rejects",
        "which is no signer's in chain/trust.kdl",
        "1 of 2 maintainers: alice signed; bob, erin, frank and sha did not",
    ] {
        assert!(shown.contains(reason), "no `{reason}` in\n{shown}");
    }
    insta::assert_snapshot!("every_rejection", shown);
    let json: serde_json::Value = serde_json::from_str(&m.run(&["--json", "verify-signatures", "stage0"]).stdout).unwrap();
    let counted: Vec<&serde_json::Value> = json["signatures"].as_array().unwrap().iter().filter(|s| s["counted"] == true).collect();
    assert_eq!(counted.len(), 1, "{json:#}");
    assert_eq!(json["met"], false);
    // verify itself says the same, and exits 2.
    let r = m.run(&["verify", "stage0"]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(says(&r.stderr, "1 of 2 maintainers: alice signed; bob, erin, frank and sha did not"), "{}", r.stderr);

    // A forged signature: alice's, with its signature value altered.
    clear_signatures(&m);
    sq(&["sign", "--detached", "--signer-key", bob_key.to_str().unwrap(), "--output", file(&bob_fpr).to_str().unwrap(), snap.to_str().unwrap()]);
    let binary = private.join("alice.sig");
    gpg.run(&["--passphrase", "", "--local-user", &alice.fpr, "--output", binary.to_str().unwrap(), "--detach-sign", snap.to_str().unwrap()]);
    let mut bytes = fs::read(&binary).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    fs::write(&binary, bytes).unwrap();
    sq(&["armor", "--label", "sig", "--output", file(&alice.fpr).to_str().unwrap(), binary.to_str().unwrap()]);
    let r = m.run(&["verify-signatures", "stage0"]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("forged or damaged"), "{}", r.stdout);
    assert!(r.stdout.contains("1 of 2 maintainers: bob signed; alice, erin, frank and sha did not"), "{}", r.stdout);

    // A signature over an older snapshot.
    let older = private.join("older.kdl");
    fs::write(&older, fs::read_to_string(&snap).unwrap().replace("sha256=\"", "sha256=\"0")).unwrap();
    gpg.sign(&[&alice.fpr], &older, &file(&alice.fpr), &[]);
    let r = m.run(&["verify-signatures", "stage0"]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("over other bytes than snapshots/stage0.kdl as it is now"), "{}", r.stdout);

    // A certificate whose fingerprint differs from trust.kdl: nothing is
    // checked until the file is right.
    fs::copy(keys.join("erin.asc"), keys.join("alice.asc")).unwrap();
    let r = m.run(&["verify-signatures", "stage0"]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(says(&r.stderr, "bootstrap::chain::fingerprint_mismatch"), "{}", r.stderr);
    assert!(says(&r.stderr, &format!("not {} as written for `alice`", alice.fpr)), "{}", r.stderr);
}

/// `sign` writes nothing that would not count, and says why.
#[test]
fn sign_refuses_keys_that_would_not_count() {
    let m = Mini::new();
    let private = private(&m);
    let keys = keys_dir(&m);
    let (alice_key, alice_cert, alice_fpr) = sq_key(&private, "alice");
    fs::copy(&alice_cert, keys.join("alice.asc")).unwrap();
    let gpg = Gpg::new();
    let erin = gpg.generate("erin", "ed25519", "1d", "", Some("20200101T000000!"));
    gpg.export(&erin.fpr, &keys.join("erin.asc"));
    gpg.export_secret(&erin.fpr, "", &private.join("erin.key"));
    write_trust(&m, &[("alice", "maintainer", &alice_fpr), ("erin", "maintainer", &erin.fpr)], &[("maintainer", 1)]);
    let sign = |key: &Path| m.run(&["sign", "stage0", "--key", key.to_str().unwrap()]);

    let r = sign(&alice_key);
    assert_eq!(r.code, 3, "no snapshot yet: {}{}", r.stdout, r.stderr);
    assert!(says(&r.stderr, "there is no snapshots/stage0.kdl to sign"), "{}", r.stderr);
    assert_eq!(m.run(&["verify", "stage0", "--no-signatures"]).code, 0);
    assert_eq!(m.run(&["snapshot", "stage0"]).code, 0);

    let (mallory_key, _, mallory_fpr) = sq_key(&private, "mallory");
    let r = sign(&mallory_key);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(says(&r.stderr, &format!("the key {mallory_fpr} is not a signer in chain/trust.kdl")), "{}", r.stderr);
    let r = sign(&alice_cert);
    assert_eq!(r.code, 1);
    assert!(says(&r.stderr, "holds only the public certificate"), "{}", r.stderr);
    let r = sign(&private.join("erin.key"));
    assert_eq!(r.code, 1);
    assert!(says(&r.stderr, "it has expired"), "{}", r.stderr);
    let r = sign(&private.join("nothing.key"));
    assert_eq!(r.code, 1);
    assert!(says(&r.stderr, "cannot read the key file"), "{}", r.stderr);
    assert!(!sig_dir(&m).exists() || fs::read_dir(sig_dir(&m)).unwrap().next().is_none(), "a refused signature was written");

    // A stale snapshot (the stage changed since) is not signed.
    m.edit("stage0/hex.kdl", "\"755\"", "\"0755\"");
    let r = sign(&alice_key);
    assert_eq!(r.code, 3, "{}{}", r.stdout, r.stderr);
    assert!(says(&r.stderr, "written for another definition"), "{}", r.stderr);

    // A secret key published as a certificate is refused when the chain loads.
    fs::copy(&alice_key, keys.join("alice.asc")).unwrap();
    let r = m.run(&["check"]);
    assert_eq!(r.code, 1);
    assert!(says(&r.stderr, "holds secret key material"), "{}", r.stderr);
}

/// A reviewer's `--require-reproduced` takes only receipts made on this
/// machine: a state directory copied from elsewhere says verified, but its
/// step receipts name another machine.
#[test]
fn require_reproduced_refuses_step_receipts_made_on_another_machine() {
    let m = Mini::new();
    let private = private(&m);
    let gpg = Gpg::new();
    let carol = gpg.generate("carol", "ed25519", "never", "", None);
    gpg.export(&carol.fpr, &keys_dir(&m).join("carol.asc"));
    let carol_key = private.join("carol.key");
    gpg.export_secret(&carol.fpr, "", &carol_key);
    write_trust(&m, &[("carol", "reviewer", &carol.fpr)], &[("reviewer", 1)]);
    assert_eq!(m.run(&["verify", "stage0", "--no-signatures"]).code, 0);
    assert_eq!(m.run(&["snapshot", "stage0"]).code, 0);
    assert_eq!(m.run(&["verify", "stage0", "--no-signatures"]).code, 0);
    let countersign = ["sign", "stage0", "--key", carol_key.to_str().unwrap(), "--require-reproduced"];
    let has_id = ["/etc/machine-id", "/var/lib/dbus/machine-id"].iter().any(|p| fs::read_to_string(p).is_ok_and(|s| !s.trim().is_empty()));
    if !has_id {
        // Nothing can say "made here": a countersignature is refused.
        let r = m.run(&countersign);
        assert_eq!(r.code, 3, "{}{}", r.stdout, r.stderr);
        assert!(says(&r.stderr, "has no /etc/machine-id"), "{}", r.stderr);
        return;
    }
    // Each receipt names this machine, by a digest of its machine-id only.
    let mut receipts = Vec::new();
    let mut stack = vec![m.state.join("receipts/steps")];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p)
            } else {
                receipts.push(p)
            }
        }
    }
    assert!(!receipts.is_empty());
    let machine_id = fs::read_to_string("/etc/machine-id").unwrap_or_default();
    for p in &receipts {
        let v: serde_json::Value = serde_json::from_slice(&fs::read(p).unwrap()).unwrap();
        let machine = v["machine"].as_str().unwrap_or_else(|| panic!("no machine in {}", p.display()));
        assert!(machine.len() == 64 && machine.chars().all(|c| c.is_ascii_hexdigit()), "{machine}");
        assert!(machine_id.trim().is_empty() || !machine.contains(machine_id.trim()), "the raw machine-id is in a receipt");
    }
    // As a state directory made on another machine would have them.
    for p in &receipts {
        let mut v: serde_json::Value = serde_json::from_slice(&fs::read(p).unwrap()).unwrap();
        v["machine"] = serde_json::Value::String("0".repeat(64));
        fs::write(p, serde_json::to_vec(&v).unwrap()).unwrap();
    }
    let r = m.run(&countersign);
    assert_eq!(r.code, 3, "{}{}", r.stdout, r.stderr);
    assert!(says(&r.stderr, "did not run on this machine"), "{}", r.stderr);
    assert!(says(&r.stderr, "`bootstrap verify stage0 --rebuild` runs every step here"), "{}", r.stderr);
    assert!(!sig_dir(&m).join(format!("{}.asc", carol.fpr)).exists(), "refused means nothing written");
    // Rebuilt here, it is this machine's.
    assert_eq!(m.run(&["verify", "stage0", "--rebuild", "--no-signatures"]).code, 0);
    let r = m.run(&countersign);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
}
