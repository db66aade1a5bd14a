//! `reroot` on the mini chain, verified and snapshotted with the two test
//! seeds: a third seed (the Debian userland with busybox as /bin/sh)
//! converges on every stage and `--write --replace` puts it in
//! chain/chain.kdl without touching anything else; a seed whose `sort`
//! reverses its output leaks into word-count's output and diverges, naming
//! the step and the file.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::mini::Mini;
use common::{root, says, seeds};

/// A verified mini chain with snapshots of all three stages.
fn snapshotted() -> Mini {
    let m = Mini::new();
    let r = m.run(&["verify", "stage2"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    for s in ["stage0", "stage1", "stage2"] {
        assert_eq!(m.run(&["snapshot", s]).code, 0);
    }
    m
}

/// A copy of the Debian test seed (hard links: no file of the original is
/// written), changed by `change`.
fn debian_variant(dir: &Path, change: impl FnOnce(&Path)) -> PathBuf {
    let to = dir.join("seed");
    let ok = Command::new("cp").arg("-al").arg(seeds().join("debian")).arg(&to).status().unwrap();
    assert!(ok.success());
    change(&to);
    to
}

#[test]
fn a_third_seed_converges_and_is_written_into_the_chain() {
    let mut m = snapshotted();
    // Hard links need the same file system as the test seeds.
    let tmp = tempfile::tempdir_in(root().join("target")).unwrap();
    let third = debian_variant(tmp.path(), |s| {
        let bin = s.join("usr/bin");
        fs::remove_file(bin.join("sh")).unwrap();
        fs::copy(seeds().join("busybox/bin/busybox"), bin.join("busybox")).unwrap();
        std::os::unix::fs::symlink("busybox", bin.join("sh")).unwrap();
    });
    let before = fs::read_to_string(m.chain.join("chain/chain.kdl")).unwrap();
    let arg = format!("third={}", third.display());
    let r = m.run(&["reroot", "--seed", &arg]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    for s in ["stage0: converged", "stage1: converged", "stage2: converged", "3 of 3 stage(s) converged"] {
        assert!(r.stdout.contains(s), "no `{s}` in\n{}", r.stdout);
    }
    assert_eq!(fs::read_to_string(m.chain.join("chain/chain.kdl")).unwrap(), before, "no --write, no change");

    let r = m.run(&["reroot", "--seed", &arg, "--replace", "debian", "--write"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("seed `third` put in place of `debian` in chain/chain.kdl"), "{}", r.stdout);
    let after = fs::read_to_string(m.chain.join("chain/chain.kdl")).unwrap();
    let old_line = before.lines().find(|l| l.starts_with("seed \"debian\"")).unwrap();
    let (head, tail) = before.split_once(old_line).unwrap();
    assert!(after.starts_with(head) && after.ends_with(tail), "only the seed node changed:\n{after}");
    assert!(after.contains("seed \"third\" {\n    description \"added by `bootstrap reroot` in place of `debian`"), "{after}");
    assert!(!after.contains("seed \"debian\""));
    let r = m.run(&["check"]);
    assert_eq!(r.code, 0, "the written chain loads: {}", r.stderr);
    // The rewritten chain verifies with the new seed beside busybox.
    m.seed_args = vec!["--seed".into(), format!("busybox={}", seeds().join("busybox").display()), "--seed".into(), arg.clone()];
    let r = m.run(&["verify", "stage2"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
}

#[test]
fn a_seed_that_leaks_into_outputs_diverges_and_names_the_step() {
    let m = snapshotted();
    let tmp = tempfile::tempdir_in(root().join("target")).unwrap();
    let leaky = debian_variant(tmp.path(), |s| {
        // A new name for the hard link; the original seed keeps its `sort`.
        fs::rename(s.join("usr/bin/sort"), s.join("usr/bin/sort.real")).unwrap();
        let sort = s.join("usr/bin/sort");
        fs::write(&sort, "#!/bin/sh\nexec /usr/bin/sort.real -r \"$@\"\n").unwrap();
        fs::set_permissions(&sort, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    });
    let before = fs::read_to_string(m.chain.join("chain/chain.kdl")).unwrap();
    let arg = format!("leaky={}", leaky.display());
    let r = m.run(&["reroot", "stage1", "--seed", &arg, "--write"]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("stage0: diverged"), "{}", r.stdout);
    assert!(r.stdout.contains("DIFFERS    word-count"), "{}", r.stdout);
    assert!(r.stdout.contains("out/counts.txt: snapshot file sha256:"), "{}", r.stdout);
    assert!(says(&r.stderr, "stage0 diverged (word-count)"), "{}", r.stderr);
    // shout uppercases word-count's output: the leak travels on.
    assert!(r.stdout.contains("DIFFERS    shout"), "{}", r.stdout);
    assert_eq!(fs::read_to_string(m.chain.join("chain/chain.kdl")).unwrap(), before, "nothing written when a stage diverged");
    let v: serde_json::Value = serde_json::from_str(&m.run(&["--json", "reroot", "stage0", "--seed", &arg]).stdout).unwrap();
    assert_eq!(v["converged"], false);
    assert_eq!(v["stages"][0]["result"], "diverged");

    // Bad arguments.
    assert_eq!(m.run(&["reroot", "--seed", "leaky"]).code, 1);
    let r = m.run(&["reroot", "--seed", &arg, "--replace", "alpine"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("declares no seed `alpine`"), "{}", r.stderr);
}
