//! `store verify` finds a flipped byte in a source and in a layer and can
//! remove them; `store gc` keeps what the chain declares and what receipts
//! name, removes the rest and says how much it freed.

mod common;

use std::fs;
use std::path::Path;

use common::{Run, Src, chain, payload, run_in, sha};

fn tar_with(name: &str, data: &[u8]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_cksum();
    b.append_data(&mut h, name, data).unwrap();
    b.into_inner().unwrap()
}

fn bs(dir: &Path, args: &[&str]) -> Run {
    run_in(dir, &dir.join(".bootstrap"), args)
}

/// Two sources in a mirror: `arch` (unpacked) and `blob` (a plain file).
fn setup(dir: &Path) -> (String, String) {
    let arch = tar_with("data/file.txt", &payload(10_000, 21));
    let blob = payload(20_000, 22);
    fs::create_dir_all(dir.join("mirror")).unwrap();
    fs::write(dir.join("mirror/arch.tar"), &arch).unwrap();
    fs::write(dir.join("mirror/blob.bin"), &blob).unwrap();
    (sha(&arch), sha(&blob))
}

fn declare(dir: &Path, arch: Option<&str>, blob: Option<&str>) {
    let mut v = Vec::new();
    if let Some(h) = arch {
        v.push(Src { name: "arch", urls: vec!["https://example.invalid/arch.tar".into()], sha: h.into(), unpack: Some(1) });
    }
    if let Some(h) = blob {
        v.push(Src { name: "blob", urls: vec!["https://example.invalid/blob.bin".into()], sha: h.into(), unpack: None });
    }
    chain(dir, &v);
}

fn fetch(dir: &Path) -> serde_json::Value {
    let run = bs(dir, &["--json", "--offline", "--distfiles", "mirror", "fetch"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    serde_json::from_str(&run.stdout).unwrap()
}

fn flip(path: &Path, at: usize) {
    let mut b = fs::read(path).unwrap();
    b[at] ^= 0x01;
    fs::write(path, b).unwrap();
}

#[test]
fn verify_reports_flipped_bytes_and_remove_then_fetch_repairs() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (arch, blob) = setup(dir);
    declare(dir, Some(&arch), Some(&blob));
    let v = fetch(dir);
    let layer = v["sources"][0]["layer"].as_str().unwrap().trim_start_matches("blake3:").to_string();

    let ok = bs(dir, &["store", "verify"]);
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    // The index: where `arch` unpacks to, and where the two files and the layer came from.
    assert!(ok.stdout.contains("checked 2 source(s), 1 layer(s), 0 log(s), 4 index entries, 0 receipt(s): all intact"), "{}", ok.stdout);

    let source = dir.join(".bootstrap/sources").join(&blob);
    flip(&source, 19_999);
    flip(&dir.join(".bootstrap/layers").join(&layer).join("file.txt"), 5);
    let bad = bs(dir, &["store", "verify"]);
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    assert!(bad.stdout.contains(&format!("corrupt: {}\n    expected sha256:{blob}\n    found    sha256:", source.display())), "{}", bad.stdout);
    assert!(bad.stdout.contains(&format!("layers/{layer}\n    expected blake3:{layer}\n    found    blake3:")), "{}", bad.stdout);
    assert!(bad.stdout.contains("2 problem(s)"), "{}", bad.stdout);
    assert!(bad.stderr.contains("the store has 2 damaged or stray object(s)"), "{}", bad.stderr);

    let json = bs(dir, &["--json", "store", "verify"]);
    assert_eq!(json.code, 2);
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(v["ok"], false);
    assert_eq!(v["problems"].as_array().unwrap().len(), 2);
    assert_eq!(v["problems"][0]["kind"], "corrupt");

    let removed = bs(dir, &["store", "verify", "--remove"]);
    assert_eq!(removed.code, 2, "what was found is still reported");
    assert!(!source.exists());
    // No index entry is left naming what was removed: the store is consistent at once.
    assert!(removed.stdout.contains("dangling"), "{}", removed.stdout);
    let now = bs(dir, &["store", "verify"]);
    assert_eq!(now.code, 0, "{}{}", now.stdout, now.stderr);
    fetch(dir);
    let again = bs(dir, &["store", "verify"]);
    assert_eq!(again.code, 0, "{}{}", again.stdout, again.stderr);
}

#[test]
fn gc_keeps_declared_and_receipt_named_objects_and_frees_the_rest() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (arch, blob) = setup(dir);
    declare(dir, Some(&arch), Some(&blob));
    let v = fetch(dir);
    let layer = v["sources"][0]["layer"].as_str().unwrap().to_string();
    let store = dir.join(".bootstrap");
    fs::create_dir_all(store.join("tmp/fetch")).unwrap();
    fs::write(store.join("tmp/fetch/dead.part"), vec![0u8; 4096]).unwrap();

    // Everything declared: only the leftover part file and the parse cache go.
    let run = bs(dir, &["store", "gc", "--dry-run"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("temporary"), "{}", run.stdout);
    assert!(!run.stdout.contains("source "), "{}", run.stdout);
    assert!(store.join("tmp/fetch").exists(), "a dry run removes nothing");

    // `arch` no longer declared, but a receipt names its layer: the source
    // file and its index entry go, the layer stays.
    declare(dir, None, Some(&blob));
    fs::create_dir_all(store.join("receipts/steps/use")).unwrap();
    fs::write(store.join("receipts/steps/use/a.json"), format!("{{\"output\": {{\"tree\": \"{layer}\"}}}}")).unwrap();
    let run = bs(dir, &["--json", "store", "gc"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let what: Vec<&str> = v["removed"].as_array().unwrap().iter().map(|r| r["what"].as_str().unwrap()).collect();
    assert!(what.contains(&"source") && what.contains(&"index") && what.contains(&"temporary"), "{what:?}");
    assert!(!what.contains(&"layer"), "{what:?}");
    assert!(v["freed"].as_u64().unwrap() >= 4096 + 10_240);
    assert!(!store.join("sources").join(&arch).exists());
    assert!(store.join("sources").join(&blob).exists());
    assert!(store.join("layers").join(layer.trim_start_matches("blake3:")).is_dir());
    assert_eq!(fs::read_dir(store.join("tmp")).unwrap().count(), 0);

    // Without the receipt the layer goes too, and the summary says how much.
    fs::remove_file(store.join("receipts/steps/use/a.json")).unwrap();
    let run = bs(dir, &["store", "gc"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.starts_with("freed "), "{}", run.stdout);
    assert!(!store.join("layers").join(layer.trim_start_matches("blake3:")).exists());
    let ok = bs(dir, &["store", "verify"]);
    assert_eq!(ok.code, 0, "{}", ok.stdout);
}

#[test]
fn gc_refuses_when_the_chain_does_not_load() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (arch, blob) = setup(dir);
    declare(dir, Some(&arch), Some(&blob));
    fetch(dir);
    fs::write(dir.join("chain/sources.kdl"), "source \"broken\" {\n").unwrap();
    let run = bs(dir, &["store", "gc"]);
    assert_eq!(run.code, 1);
    assert!(dir.join(".bootstrap/sources").join(&blob).exists(), "nothing removed");
}
