//! The repository's own chain: every source pinned, every published
//! stage0-posix hash pinned on the step output that produces it, the
//! stages reaching what the facts allow, and the whole plan as a snapshot.

mod common;

use bootstrap::chain::{self, Chain, LoadOptions};

/// stage0-posix 1.9.1 `amd64.answers` (published upstream) and the
/// intermediates computed by running the release (shared/facts).
const PINS: &[(&str, &str)] = &[
    ("6d1c534225ac7a3e74e29cb17579f5dd720547c19e7eea6bfe742326fb4a0bc7", "AMD64/bin/blood-elf"),
    ("c13daf05065008a1e7bc4852fcce016df24edb1c633961f462421b8b0ab176ca", "AMD64/bin/catm"),
    ("55e78986bd1a5641f6a665ecb8be51aff06ce805b700b246821a001e9afc60e8", "AMD64/bin/chmod"),
    ("aa8eb71e83570f84b3fe13c08f28e3861e59681b178e38b6fd8f0a4cafaebc27", "AMD64/bin/cp"),
    ("379cb35a87bd7a9c190d79d3141af897869aae5e4cb0ac9e03235c78b84e1be7", "AMD64/bin/get_machine"),
    ("f782df6d59f7ff930e67f34dde7ea62288b12d6d1a0b036ef465ad06b4a4b97a", "AMD64/bin/hex2"),
    ("6364de59b36f8575fd938779476a9a121878fc0e2d65cc01ae5372aad2d028b5", "AMD64/bin/kaem"),
    ("fc68c115384852b827a35b607de382592a475c324e1e11ca7cf5b9e840ce15a9", "AMD64/bin/M1"),
    ("f24855886c8a7e63015b8c8b6aeb4a03556540be16baab62d234deb4c57625b4", "AMD64/bin/M2-Mesoplanet"),
    ("7cf19de29a4ae63637898f6093d0526b73108040ab3634f11232030439602fc1", "AMD64/bin/M2-Planet"),
    ("962d44ad6cc75ee1f51fbb0d07c5e4fdf9479540d46ceae26d1bb34558feaa2f", "AMD64/bin/match"),
    ("c8bdd424b1e588714c654de9e1df3de690301cf2ff883e93da1f01b86806cc20", "AMD64/bin/mkdir"),
    ("88bfafe232428196a056b1ef517d4f797c68f0eaabc3dce84f66194899dbf864", "AMD64/bin/replace"),
    ("c7ac6f9ca26a0b771c130b43c8b536b300445f696e04b5db4f0f4eb949613459", "AMD64/bin/rm"),
    ("f7c0fcae688ec01050d836771392f4d81f5ad6788590278ec76ccd17cdd89e48", "AMD64/bin/sha256sum"),
    ("0769b2c0af733b62db727a73c04cbdadafa747ed15c0ade42c6c613c18e165ec", "AMD64/bin/ungz"),
    ("2e2ff2ae38b2d4e9ca2268b3265b0d82b79a931ce25aa91daf36c006537f2d45", "AMD64/bin/unbz2"),
    ("1960964e6d73cdc3b55f2bb3b2f2c33668025a802d86cef48f39bdaa9a5ea201", "AMD64/bin/unxz"),
    ("8100ef93f3f078fb825d97eb53773f9f3d6e420d5bd40f8b0e3285e405544e9c", "AMD64/bin/untar"),
    ("66c95985e668f20f2465c2b876f83fef066fd7c8c2dd3adb51a969f2d7120c8b", "AMD64/artifact/hex0"),
    ("153b8915b73bd07132b59538d10fe53d26578eb160a67db72af07aaa61c51b3b", "AMD64/artifact/kaem-0"),
    ("c264a212d2b0e1f1bcf34217ed7876bb9324bd7e29cd902bb1cad4d9f45f1cf8", "AMD64/artifact/hex1"),
    ("6c69c7e60df220e884de4fc3bdf7137352b7b3c25a1fb7000ef7f7dea82b33bc", "AMD64/artifact/hex2-0"),
    ("911d19bff7be2bc4657b312b19c29ad98cbaad2fed141a016fa0104e07e83ce7", "AMD64/artifact/catm"),
    ("db97dff12dbbc1f547b5fb58fe70267ac9a99d43d5879d8bbf578f31f1ec2bd1", "AMD64/artifact/M0"),
    ("b817c888e89685d1ef8984e07a72c0e44dc4f994a3a1db9a01888de6d0e530c3", "AMD64/artifact/cc_amd64"),
    ("4fa7e8e54a0bfb6b7f962b41bfc212e8fa7364b54fa5c9641cdea84b74a5697a", "AMD64/artifact/M2"),
    ("3e1e6ac7e2e692c48ef7c763071307bd2c232f150bf1854de3579f713cfecab4", "AMD64/artifact/blood-elf-0"),
    ("9aed018c6585e68deef59ce2beaf470d16d845161eb6a436f152ebc65e140694", "AMD64/artifact/M1-0"),
    ("f782df6d59f7ff930e67f34dde7ea62288b12d6d1a0b036ef465ad06b4a4b97a", "AMD64/artifact/hex2-1"),
    ("9e3aec50a59efee7041087b487a41f3ab2ff8a2cd69605ed53c6ffb319962a25", "AMD64/bin/wrap"),
];

const HEX0_SEED: &str = "66c95985e668f20f2465c2b876f83fef066fd7c8c2dd3adb51a969f2d7120c8b";
const KAEM_SEED: &str = "153b8915b73bd07132b59538d10fe53d26578eb160a67db72af07aaa61c51b3b";

fn repo_chain() -> Chain {
    chain::load_dir(&common::root(), &LoadOptions::default())
        .unwrap_or_else(|e| panic!("the repository chain does not load: {:?}", e.diagnostics))
}

fn stage_steps<'c>(chain: &'c Chain, stage: &str) -> Vec<&'c bootstrap::chain::Step> {
    let id = chain.stage_id(stage).unwrap_or_else(|| panic!("no stage {stage}"));
    chain.steps.iter().filter(|s| s.stage == id).collect()
}

#[test]
fn every_source_is_pinned() {
    let chain = repo_chain();
    assert!(!chain.sources.is_empty());
    for s in &chain.sources {
        assert!(!s.urls.is_empty() || s.git.is_some() || s.path.is_some(), "{} has nowhere to come from", s.name);
        assert!(s.sha256.is_some() || s.tree.is_some(), "{} is not pinned", s.name);
    }
    let stage0 = chain.source("stage0-posix").expect("stage0-posix source");
    assert_eq!(stage0.sha256.map(|s| s.hex()).as_deref(), Some("f4fdda675de90ab034fd3467ef43cddff61b3d372f8e0e5c2d25d145f224226f"));
}

/// Each published hash sits on an output of a stage0 step whose path is
/// the file it names (relative to the stage0-posix tree).
#[test]
fn stage0_outputs_carry_the_published_hashes() {
    let chain = repo_chain();
    let stage0 = stage_steps(&chain, "stage0");
    for (sha, path) in PINS {
        let found = stage0.iter().any(|step| {
            step.outputs.iter().any(|o| {
                o.sha256.map(|s| s.hex()).as_deref() == Some(*sha)
                    && (o.path == *path || o.path.ends_with(&format!("/{path}")))
            })
        });
        assert!(found, "{path} ({sha}) is not pinned on the stage0 step output that produces it");
    }
    // The seed check regenerates both binary seeds from commented hex on a seed root.
    let check = stage0.iter().find(|s| s.name == "seed-check").expect("a seed-check step");
    assert_eq!(check.root, bootstrap::chain::Root::Seed);
    let pinned: Vec<String> = check.outputs.iter().filter_map(|o| o.sha256.map(|s| s.hex())).collect();
    assert!(pinned.iter().any(|p| p == HEX0_SEED) && pinned.iter().any(|p| p == KAEM_SEED), "seed-check pins {pinned:?}");
    // stage0 proper runs without a shell or seed userland.
    for step in stage0.iter().filter(|s| s.name != "seed-check") {
        assert_eq!(step.root, bootstrap::chain::Root::Scratch, "{} should run on a scratch root", step.name);
    }
}

#[test]
fn later_stages_reach_what_the_facts_pin() {
    let chain = repo_chain();
    let names = |stage: &str| -> Vec<String> { stage_steps(&chain, stage).iter().map(|s| s.name.clone()).collect() };
    let (s1, s2, s3) = (names("stage1"), names("stage2"), names("stage3"));
    let has = |v: &[String], prefix: &str| v.iter().any(|n| n.starts_with(prefix));
    // stage1 is mes and tcc to a self-rebuilt tcc 0.9.27; the rest of the
    // GNU toolchain starts stage2.
    assert!(has(&s1, "mes-") && has(&s1, "tcc-0.9.26") && has(&s1, "tcc-0.9.27"), "stage1: {s1:?}");
    assert!(!has(&s1, "gcc-") && !has(&s1, "musl-"), "stage1: {s1:?}");
    assert!(has(&s2, "gcc-4.0.4") && has(&s2, "gcc-4.7.4") && has(&s2, "musl-1.2"), "stage2: {s2:?}");
    assert!(has(&s2, "guile-3.0.11") && has(&s2, "gcc-15.2.0"), "stage2: {s2:?}");
    // Go: the newest Go the facts pin; Rust: the newest rustc reachable from
    // the pinned mrustc (0.11.2 builds 1.74.0; 0.12.0 is not pinned yet).
    assert!(has(&s3, "go1.4") && has(&s3, "go1.24.2"), "stage3: {s3:?}");
    assert!(has(&s3, "mrustc-") && has(&s3, "rustc-1.75.0"), "stage3: {s3:?}");
    // Nothing past stage1 has run yet: it must say so (stage1 itself is
    // checked in tests/real_stage1.rs).
    for stage in ["stage2", "stage3"] {
        for step in stage_steps(&chain, stage) {
            assert!(step.unverified, "{} in {stage} is not marked unverified", step.name);
        }
    }
}

#[test]
fn the_whole_plan() {
    let state = tempfile::tempdir().unwrap();
    let run = common::run_in(&common::root(), state.path(), &["plan"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    insta::assert_snapshot!("real_chain_plan", run.stdout);
}

/// `audit stage0` on the repository chain reads as a walk from the seed
/// check to M2-Planet: the steps in order, each with its pinned outputs.
#[test]
fn audit_walks_stage0_from_the_seed_to_m2_planet() {
    let state = tempfile::tempdir().unwrap();
    let run = common::run_in(&common::root(), state.path(), &["audit", "stage0"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let walk: Vec<&str> = run.stdout.lines().filter(|l| l.starts_with("──") || l.trim_start().starts_with("output ")).collect();
    assert!(walk[0].starts_with("── seed-check (stage0, 1 of"), "{walk:?}");
    assert!(walk.iter().any(|l| l.contains("AMD64/bin/M2-Planet (pinned sha256:7cf19de29a4ae63637898f6093d0526b73108040ab3634f11232030439602fc1)")), "{walk:?}");
    insta::assert_snapshot!("real_chain_audit_stage0_walk", walk.join("\n"));
}
