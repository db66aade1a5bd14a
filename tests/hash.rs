//! Tree digests: the documented recipe (docs/tree-digest.md) recomputes what
//! `bootstrap hash` prints, the sha256 list passes `sha256sum -c --strict`,
//! and the digest ignores exactly what it should.

mod common;

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;
use std::process::Command;

use common::{root, run_in};

/// The fenced block after `<!-- marker -->` in the doc.
fn block_after(doc: &str, marker: &str) -> String {
    let start = doc.find(&format!("<!-- {marker} -->")).unwrap_or_else(|| panic!("marker {marker} in the doc"));
    let rest = &doc[start..];
    let open = rest.find("```").unwrap();
    let body_start = open + rest[open..].find('\n').unwrap() + 1;
    let close = body_start + rest[body_start..].find("```").unwrap();
    rest[body_start..close].to_string()
}

fn doc() -> String {
    fs::read_to_string(root().join("docs/tree-digest.md")).unwrap()
}

fn digest_of(dir: &Path) -> String {
    let run = run_in(dir, &dir.join("../state"), &["hash", dir.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    run.stdout.trim().to_string()
}

fn recipe_digest(dir: &Path) -> String {
    let script = block_after(&doc(), "recipe");
    let out = Command::new("bash").arg("-c").arg(&script).arg("recipe").arg(dir).output().expect("bash runs");
    assert!(out.status.success(), "recipe failed (is b3sum installed?): {}", String::from_utf8_lossy(&out.stderr));
    format!("blake3:{}", String::from_utf8_lossy(&out.stdout).trim())
}

/// A tree with the awkward cases: spaces, newline, backslash, leading dash,
/// invalid UTF-8, empty and nested empty directories, exec bit for others
/// only, setuid, a dangling symlink and one with `..`.
fn awkward_tree(dir: &Path) {
    fs::create_dir_all(dir.join("a/b/empty")).unwrap();
    fs::create_dir_all(dir.join("empty top")).unwrap();
    fs::write(dir.join("plain"), b"plain\n").unwrap();
    fs::write(dir.join("a/with space"), b"x").unwrap();
    fs::write(dir.join("a/new\nline"), b"y").unwrap();
    fs::write(dir.join("back\\slash"), b"z").unwrap();
    fs::write(dir.join("-dash"), b"").unwrap();
    fs::write(dir.join(OsStr::from_bytes(b"latin1-\xe9")), b"\xe9\n").unwrap();
    fs::write(dir.join("a-b"), vec![7u8; 70_000]).unwrap();
    let other_x = dir.join("a/b/other-x");
    fs::write(&other_x, b"#!/bin/sh\n").unwrap();
    fs::set_permissions(&other_x, fs::Permissions::from_mode(0o641)).unwrap();
    let suid = dir.join("suid");
    fs::write(&suid, b"s").unwrap();
    fs::set_permissions(&suid, fs::Permissions::from_mode(0o4755)).unwrap();
    let big = dir.join("a/big");
    fs::write(&big, (0..6_000_000u32).map(|i| (i * 31 % 251) as u8).collect::<Vec<_>>()).unwrap();
    symlink("../plain", dir.join("a/up")).unwrap();
    symlink("nowhere", dir.join("dangling")).unwrap();
}

#[test]
fn documented_example_and_recipe_give_the_documented_digest() {
    let tmp = tempfile::tempdir().unwrap();
    let setup = block_after(&doc(), "example-setup");
    let ok = Command::new("sh").arg("-e").arg("-c").arg(&setup).current_dir(tmp.path()).status().unwrap();
    assert!(ok.success());
    let documented = {
        let d = doc();
        let at = d.find("<!-- example-digest -->").unwrap();
        d[at..].lines().nth(1).unwrap().trim_matches('`').to_string()
    };
    let example = tmp.path().join("example");
    assert_eq!(digest_of(&example), documented);
    assert_eq!(recipe_digest(&example), documented);
}

#[test]
fn recipe_recomputes_awkward_trees() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t");
    awkward_tree(&dir);
    assert_eq!(recipe_digest(&dir), digest_of(&dir));
}

#[test]
fn sha256sums_pass_sha256sum_strict_and_catch_a_flipped_byte() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t");
    awkward_tree(&dir);
    // Raw bytes: one name is not UTF-8.
    let run = Command::new(env!("CARGO_BIN_EXE_bootstrap")).args(["hash", "--sha256sums", "."]).current_dir(&dir).output().unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let list = tmp.path().join("SUMS");
    fs::write(&list, &run.stdout).unwrap();
    let check = || Command::new("sha256sum").args(["-c", "--strict", "--quiet"]).arg(&list).current_dir(&dir).output().unwrap();
    let out = check();
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    // One line per regular file (10 of them; one name holds a newline, escaped), none for dirs or links.
    assert_eq!(run.stdout.split(|&b| b == b'\n').filter(|l| !l.is_empty()).count(), 10);
    let mut bytes = fs::read(dir.join("a/big")).unwrap();
    bytes[3_000_000] ^= 1;
    fs::write(dir.join("a/big"), bytes).unwrap();
    assert!(!check().status.success());
}

#[test]
fn digest_ignores_mtimes_order_and_other_mode_bits_but_not_exec_or_empty_dirs() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    awkward_tree(&a);
    // Same tree, entries created in another order, different mtimes and group/other bits.
    fs::create_dir_all(b.join("empty top")).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    awkward_tree(&b);
    fs::set_permissions(b.join("plain"), fs::Permissions::from_mode(0o664)).unwrap();
    fs::set_permissions(b.join("suid"), fs::Permissions::from_mode(0o755)).unwrap();
    let base = digest_of(&a);
    assert_eq!(digest_of(&b), base);

    fs::set_permissions(b.join("plain"), fs::Permissions::from_mode(0o744)).unwrap();
    let exec = digest_of(&b);
    assert_ne!(exec, base, "the exec bit is part of the digest");
    fs::set_permissions(b.join("plain"), fs::Permissions::from_mode(0o644)).unwrap();
    assert_eq!(digest_of(&b), base);

    fs::create_dir(b.join("a/b/empty/deeper")).unwrap();
    assert_ne!(digest_of(&b), base, "empty directories are part of the digest");
    fs::remove_dir(b.join("a/b/empty/deeper")).unwrap();

    fs::remove_file(b.join("dangling")).unwrap();
    symlink("elsewhere", b.join("dangling")).unwrap();
    assert_ne!(digest_of(&b), base, "symlink targets are part of the digest");
}

#[test]
fn json_gives_digest_and_files_and_bad_input_is_exit_1() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t");
    awkward_tree(&dir);
    let run = run_in(tmp.path(), &tmp.path().join("state"), &["--json", "hash", "t"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(v["digest"].as_str().unwrap(), digest_of(&dir));
    assert_eq!(v["files"].as_array().unwrap().len(), 10);
    assert_eq!(v["symlinks"], 2);
    let suid = v["files"].as_array().unwrap().iter().find(|f| f["path"] == "suid").unwrap();
    assert_eq!(suid["mode"], "755");

    let fifo = dir.join("a/pipe");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let run = run_in(tmp.path(), &tmp.path().join("state"), &["hash", "t"]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("is a fifo; a tree holds only regular files"), "{}", run.stderr);
    fs::remove_file(&fifo).unwrap();

    let run = run_in(tmp.path(), &tmp.path().join("state"), &["hash", "t/plain"]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("is not a directory"), "{}", run.stderr);
}
