//! The real stage0 (stage0-posix 1.9.1, AMD64) against the release's own
//! tree from `../shared/distfiles`: every step's commands are the ones its
//! scripts run, and `verify stage0` on the two test seeds reproduces the
//! committed `snapshots/stage0.kdl` byte for byte.
//!
//! Without the distfiles these tests say so and pass, unless
//! `BOOTSTRAP_REQUIRE_DISTFILES=1` (set by `.ci/run`) makes that a failure.
//! `BOOTSTRAP_DISTFILES` points elsewhere than `../shared/distfiles`.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use bootstrap::chain::{self, Command as StepCommand, LoadOptions};

const TARBALL: &str = "stage0-posix-1.9.1.from-git.tar.gz";

fn distfiles() -> Option<PathBuf> {
    common::real::distfiles(&[TARBALL])
}

/// The commands of a kaem script as kaem reads them: `#` starts a comment,
/// a trailing `\` joins the next line, words are split on white space.
fn kaem_commands(path: &Path) -> Vec<Vec<String>> {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut out = Vec::new();
    let mut line = String::new();
    for raw in text.lines() {
        let code = raw.split('#').next().unwrap_or("");
        match code.trim_end().strip_suffix('\\') {
            Some(head) => {
                line.push_str(head);
                line.push(' ');
            }
            None => {
                line.push_str(code);
                let words: Vec<String> = line.split_whitespace().map(str::to_string).collect();
                if !words.is_empty() {
                    out.push(words);
                }
                line.clear();
            }
        }
    }
    out
}

fn unpack(dist: &Path) -> tempfile::TempDir {
    let tree = tempfile::tempdir().unwrap();
    let ok = Command::new("tar")
        .args(["xzf"])
        .arg(dist.join(TARBALL))
        .args(["--strip-components=1", "-C"])
        .arg(tree.path())
        .status()
        .unwrap();
    assert!(ok.success(), "cannot unpack {TARBALL}");
    tree
}

#[test]
fn every_stage0_argv_is_what_the_release_scripts_run() {
    let Some(dist) = distfiles() else { return };
    let tree = unpack(&dist);
    let chain = chain::load_dir(&common::root(), &LoadOptions::default()).unwrap_or_else(|e| panic!("{:?}", e.diagnostics));
    let argvs = |names: &[&str]| -> Vec<Vec<String>> {
        names
            .iter()
            .flat_map(|n| {
                let step = chain.step(chain.step_id(n).unwrap_or_else(|| panic!("no step {n}")));
                match &step.command {
                    StepCommand::Run(a) => a.clone(),
                    StepCommand::Script { .. } | StepCommand::Interpreted { .. } => panic!("{n} runs a script, not upstream's argv"),
                }
            })
            .collect()
    };
    let seed = kaem_commands(&tree.path().join("AMD64/mescc-tools-seed-kaem.kaem"));
    assert_eq!(argvs(&["hex0", "kaem-0"]), seed, "phases 0 and 0b");
    let mini = kaem_commands(&tree.path().join("AMD64/mescc-tools-mini-kaem.kaem"));
    let split = ["hex1", "hex2-0", "catm", "M0", "cc_amd64", "M2", "blood-elf-0", "M1-0", "hex2-1", "M1", "hex2", "kaem"];
    let ours = argvs(&split);
    for (i, (a, b)) in ours.iter().zip(&mini).enumerate() {
        assert_eq!(a, b, "command {} of mescc-tools-mini-kaem.kaem", i + 1);
    }
    assert_eq!(ours.len(), mini.len(), "phases 1-11: as many commands as the script");
    // The cross-checks and the last step are kaem.amd64's three lines.
    let top = kaem_commands(&tree.path().join("kaem.amd64"));
    assert_eq!(argvs(&["seed-kaem", "mini-kaem", "kaem-run"]), top);
}

#[test]
fn the_real_stage0_verifies_on_two_seeds_and_reproduces_the_committed_snapshot() {
    let Some(dist) = distfiles() else { return };
    common::real::verify_and_snapshot(&dist, "stage0", &["stage0 verified (18 steps)"]);
}
