//! The real stage1 (mes 0.27 and tcc, i386) from `../shared/distfiles`:
//! every step runs in an empty root under the chain's own kaem, nothing is
//! left `unverified`, and `verify stage1` on the two test seeds (which
//! verifies stage0 first) reproduces the committed `snapshots/stage1.kdl`
//! byte for byte, with the last step's C program reporting correct results.
//!
//! The verify test takes 15-25 minutes on 2 cores. Without the distfiles
//! these tests say so and pass, unless `BOOTSTRAP_REQUIRE_DISTFILES=1` (set
//! by `.ci/run`) makes that a failure. `BOOTSTRAP_DISTFILES` points
//! elsewhere than `../shared/distfiles`.

mod common;

use bootstrap::chain::{self, Command as StepCommand, LoadOptions, Root};

const DISTFILES: &[&str] = &[
    "stage0-posix-1.9.1.from-git.tar.gz",
    "mes-0.27.tar.gz",
    "nyacc-1.00.2-lb1.from-git.tar.gz",
    "tcc-0.9.26-1147-gee75a10c.tar.gz",
    "tcc-0.9.27.tar.bz2",
    "live-bootstrap-984b8322.from-git.tar.gz",
];

#[test]
fn every_stage1_step_runs_in_an_empty_root_under_the_chains_own_kaem() {
    let chain = chain::load_dir(&common::root(), &LoadOptions::default()).unwrap_or_else(|e| panic!("{:?}", e.diagnostics));
    let stage1 = chain.stage_id("stage1").expect("a stage1");
    let steps: Vec<_> = chain.steps.iter().filter(|s| s.stage == stage1).collect();
    let names: Vec<&str> = steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "simple-patch", "mes-m2", "nyacc-tables", "mescc", "mes-libc", "tcc-mes", "tcc-boot0", "tcc-boot1",
            "tcc-0.9.26", "tcc-0.9.27", "hello"
        ]
    );
    for step in steps {
        assert_eq!(step.root, Root::Scratch, "{}: nothing of the seed", step.name);
        assert!(!step.unverified, "{} ran and is verified", step.name);
        match &step.command {
            StepCommand::Interpreted { interpreter, .. } => {
                assert_eq!(interpreter, &["/src/stage0-posix/AMD64/bin/kaem", "--verbose", "--strict", "--file"], "{}", step.name);
            }
            other => panic!("{}: not a kaem script: {other:?}", step.name),
        }
        // Every output file is pinned; the only unpinned output is the
        // header directory of the mes C library.
        for output in &step.outputs {
            assert!(output.sha256.is_some() || output.path == "/usr/include/mes", "{}: {} unpinned", step.name, output.path);
        }
    }
}

#[test]
fn the_real_stage1_verifies_on_two_seeds_and_reproduces_the_committed_snapshot() {
    let Some(dist) = common::real::distfiles(DISTFILES) else { return };
    common::real::verify_and_snapshot(&dist, "stage1", &["stage0 verified (18 steps)", "stage1 verified (11 steps)"]);
}
