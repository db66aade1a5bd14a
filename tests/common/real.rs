//! The real chain's tests (tests/real_stage*.rs): where the offline mirror
//! of its sources is, and `verify STAGE` on the two test seeds compared
//! with the committed snapshot.

use std::fs;
use std::path::PathBuf;

/// The distfiles directory holding `files`, or `None` (after saying why)
/// when one is absent and not required: `BOOTSTRAP_REQUIRE_DISTFILES=1`
/// (set by `.ci/run`) makes that a failure, `BOOTSTRAP_DISTFILES` points
/// elsewhere than `../shared/distfiles`.
pub fn distfiles(files: &[&str]) -> Option<PathBuf> {
    let dir = std::env::var_os("BOOTSTRAP_DISTFILES")
        .map(PathBuf::from)
        .unwrap_or_else(|| super::root().join("../shared/distfiles"));
    let missing: Vec<_> = files.iter().filter(|f| !dir.join(f).is_file()).collect();
    if missing.is_empty() {
        return Some(dir);
    }
    if std::env::var("BOOTSTRAP_REQUIRE_DISTFILES").is_ok_and(|v| v == "1") {
        panic!("BOOTSTRAP_REQUIRE_DISTFILES=1 but {} lacks {missing:?}", dir.display());
    }
    eprintln!("skipped: {} lacks {missing:?} (set BOOTSTRAP_DISTFILES, or BOOTSTRAP_REQUIRE_DISTFILES=1 to fail)", dir.display());
    None
}

/// The text of the shared facts files (`../shared/facts/*.md`, or
/// `BOOTSTRAP_FACTS`), concatenated, or `None` (after saying why) when
/// they are absent and not required (`BOOTSTRAP_REQUIRE_DISTFILES=1`, set
/// by `.ci/run`, makes that a failure: the facts come with the mirror).
pub fn facts(name: &str) -> Option<String> {
    let dir = std::env::var_os("BOOTSTRAP_FACTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| super::root().join("../shared/facts"));
    match fs::read_to_string(dir.join(name)) {
        Ok(text) => Some(text),
        Err(e) if std::env::var("BOOTSTRAP_REQUIRE_DISTFILES").is_ok_and(|v| v == "1") => {
            panic!("BOOTSTRAP_REQUIRE_DISTFILES=1 but {} cannot be read: {e}", dir.join(name).display())
        }
        Err(e) => {
            eprintln!("skipped: {} cannot be read ({e}; set BOOTSTRAP_FACTS, or BOOTSTRAP_REQUIRE_DISTFILES=1 to fail)", dir.join(name).display());
            None
        }
    }
}

/// `verify STAGE` of a copy of the repository chain on both test seeds from
/// `dist`, offline, from a fresh state: it must exit 0 with every line of
/// `expect` in its report and nothing unexpected; then `snapshot STAGE`,
/// written again, must be byte for byte the committed file.
pub fn verify_and_snapshot(dist: &std::path::Path, stage: &str, expect: &[&str]) {
    let tmp = tempfile::tempdir().unwrap();
    let chain_dir = tmp.path().join("chain-dir");
    for d in ["chain", "stage0", "stage1", "stage2", "stage3", "snapshots"] {
        super::copy_tree(&super::root().join(d), &chain_dir.join(d));
    }
    let state = tmp.path().join("state");
    let seeds = super::seeds();
    let alpine = format!("alpine={}", seeds.join("busybox").display());
    let debian = format!("debian={}", seeds.join("debian").display());
    let base = ["-C", chain_dir.to_str().unwrap(), "--distfiles", dist.to_str().unwrap(), "--offline", "--seed", &alpine, "--seed", &debian];
    let run = |args: &[&str]| super::run_in(&chain_dir, &state, &[&base[..], args].concat());
    let r = run(&["verify", stage]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    for line in expect {
        assert!(r.stdout.contains(line), "no {line:?} in\n{}", r.stdout);
    }
    assert!(!r.stdout.contains("unexpected") && !r.stdout.contains("mismatch"), "{}", r.stdout);
    let snapshot = format!("snapshots/{stage}.kdl");
    let committed = fs::read(super::root().join(&snapshot)).unwrap();
    fs::remove_file(chain_dir.join(&snapshot)).unwrap();
    let s = run(&["snapshot", stage]);
    assert_eq!(s.code, 0, "{}", s.stderr);
    assert_eq!(fs::read(chain_dir.join(&snapshot)).unwrap(), committed, "{snapshot} differs from this run's");
}
