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

/// live-bootstrap's `build:` rows (manifest row 10 on; rows 1-5 are
/// stage1's) that the chain leaves out, each with why. Every other build
/// row of the facts' manifest table must be a step.
const LEFT_OUT: &[(&str, &str)] = &[
    ("fiwix-1.5.0-lb1", "the bare-metal kernel path"),
    ("lwext4-1.0.0-lb1", "the bare-metal kernel path"),
    ("kexec-fiwix-1.0", "the bare-metal kernel path"),
    ("kexec-linux-1.0.0", "the bare-metal kernel path"),
    ("kexec-tools-2.0.22", "the bare-metal kernel path"),
    ("linux-4.14.341-openela", "the kernel itself: only the bare-metal path boots it"),
    ("util-linux-2.19.1", "mount and fdisk, for moving to a disk: the bare-metal path"),
    ("e2fsprogs-1.45.7", "mkfs.ext4, for moving to a disk: the bare-metal path"),
    ("dhcpcd-10.0.1", "the network set-up of the bare-metal path"),
    ("kbd-1.15", "keymaps and consoles of the bare-metal path"),
    ("curl-8.17.0", "downloads: the engine fetches every source itself, and no later build uses curl"),
    ("ca-certificates-3.119.1", "only curl's downloads use the bundle"),
];

/// One `build:` row of the facts' manifest table: its number, the package
/// directory, and the step name the chain gives it (the directory for its
/// first build, `<dir>-passN` for its N-th).
struct ManifestBuild {
    row: u32,
    dir: String,
    step: String,
}

/// The build rows of section 1 of chain-full.md, in manifest order.
fn manifest_builds(facts: &str) -> Vec<ManifestBuild> {
    let mut seen: std::collections::HashMap<String, u32> = Default::default();
    let mut out = Vec::new();
    let section = facts.split("\n## ").find(|s| s.starts_with("1.")).expect("section 1 of chain-full.md");
    for line in section.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if cells.len() < 4 {
            continue;
        }
        let Ok(row) = cells[1].trim_end_matches(|c: char| c.is_ascii_lowercase()).parse::<u32>() else { continue };
        let dir = cells[2];
        // `〃` continues the row above; `*improve: …*` and the like are not builds.
        if row == 0 || dir == "〃" || dir.starts_with('*') || cells[1].ends_with(|c: char| c.is_ascii_lowercase() && c != 'a') {
            continue;
        }
        let dir = dir.split_whitespace().next().unwrap_or(dir).to_string();
        let n = seen.entry(dir.clone()).or_default();
        *n += 1;
        let step = if *n == 1 { dir.clone() } else { format!("{dir}-pass{n}") };
        out.push(ManifestBuild { row, dir, step });
    }
    out
}

/// Every sha256 the chain pins on a source is the facts' value for that
/// file: the hash is in the facts, on a line that names the file.
#[test]
fn every_pinned_hash_is_the_facts_value() {
    let Some(facts) = ["chain-full.md", "chain-sources.md", "stage0-posix-amd64.md", "stage1-mes-tcc.md"]
        .iter()
        .map(|f| common::real::facts(f))
        .collect::<Option<Vec<String>>>()
    else {
        return;
    };
    let lines: Vec<&str> = facts.iter().flat_map(|f| f.lines()).collect();
    let chain = repo_chain();
    let mut checked = 0;
    // A file of the chain directory (`path`) is the project's own, not upstream's.
    for s in chain.sources.iter().filter(|s| s.path.is_none()) {
        let Some(sha) = s.sha256 else { continue };
        let hex = sha.hex();
        let on: Vec<&&str> = lines.iter().filter(|l| l.contains(&hex)).collect();
        assert!(!on.is_empty(), "source `{}` pins sha256 {hex}, which no facts file holds", s.name);
        let file = s.urls.first().and_then(|u| u.rsplit('/').next()).unwrap_or(&s.name);
        assert!(
            on.iter().any(|l| l.contains(file) || l.contains(&s.name)),
            "source `{}` pins {hex}, but the facts give that hash to another file:\n{}",
            s.name,
            on.iter().map(|l| l.to_string()).collect::<Vec<_>>().join("\n")
        );
        checked += 1;
    }
    assert!(checked > 150, "only {checked} sources carry a sha256");
}

/// Every build of live-bootstrap's manifest from row 10 to gcc-15.2.0 is a
/// step of stage2 (or is left out, with a reason), and no step needs one
/// of a later row: the chain's order is compatible with the manifest's.
#[test]
fn the_manifest_is_there_in_its_order() {
    let Some(facts) = common::real::facts("chain-full.md") else { return };
    let builds = manifest_builds(&facts);
    assert_eq!(builds.last().map(|b| b.step.as_str()), Some("gcc-15.2.0"));
    let chain = repo_chain();
    let stage2 = chain.stage_id("stage2").unwrap();
    let mut row_of: std::collections::HashMap<&str, u32> = Default::default();
    let mut missing = Vec::new();
    for b in builds.iter().filter(|b| b.row >= 10) {
        if LEFT_OUT.iter().any(|(d, _)| *d == b.dir || *d == b.step) {
            assert!(chain.step_id(&b.step).is_none(), "{} is listed as left out but is a step", b.step);
            continue;
        }
        match chain.step_id(&b.step) {
            Some(id) => {
                assert_eq!(chain.step(id).stage, stage2, "manifest row {} ({}) is not in stage2", b.row, b.step);
                row_of.insert(&b.step, b.row);
            }
            None => missing.push(format!("row {}: {}", b.row, b.step)),
        }
    }
    assert!(missing.is_empty(), "manifest builds with no step: {missing:?}");
    for (step, row) in &row_of {
        let id = chain.step_id(step).unwrap();
        for &n in chain.needs_of(id) {
            if let Some(&need_row) = row_of.get(chain.step(n).name.as_str()) {
                assert!(need_row < *row, "{step} (row {row}) needs {} (row {need_row}), built later", chain.step(n).name);
            }
        }
    }
}

/// Stage 2 ends with gcc 15.2.0 and guile 3.0.11; stage 3 reaches Go 1.26.0
/// from go1.4-bootstrap and rustc 1.94.0 from mrustc, both on stage 2's
/// gcc; nothing past stage1 claims to have run.
#[test]
fn stage3_reaches_go_1_26_and_rust_1_94() {
    let chain = repo_chain();
    let reaches = |from: &str, to: &str| -> bool {
        let mut todo = vec![chain.step_id(from).unwrap_or_else(|| panic!("no step {from}"))];
        let mut seen = std::collections::HashSet::new();
        while let Some(i) = todo.pop() {
            if chain.step(i).name == to {
                return true;
            }
            if seen.insert(i) {
                todo.extend(chain.needs_of(i).iter().copied());
            }
        }
        false
    };
    for step in ["go-1.26.0", "rustc-1.94.0"] {
        let id = chain.step_id(step).unwrap_or_else(|| panic!("no step {step}"));
        assert_eq!(chain.step(id).stage, chain.stage_id("stage3").unwrap(), "{step} is not in stage3");
        assert!(reaches(step, "gcc-15.2.0"), "{step} is not built on stage2's gcc-15.2.0");
    }
    assert!(reaches("go-1.26.0", "go1.4-bootstrap"), "go-1.26.0 does not start from go1.4-bootstrap");
    assert!(reaches("rustc-1.94.0", "mrustc-0.12.0"), "rustc-1.94.0 does not start from mrustc-0.12.0");
    for step in ["guile-3.0.11", "gcc-15.2.0"] {
        let id = chain.step_id(step).unwrap_or_else(|| panic!("no step {step}"));
        assert_eq!(chain.step(id).stage, chain.stage_id("stage2").unwrap(), "{step} is not in stage2");
    }
    for stage in ["stage2", "stage3"] {
        for step in stage_steps(&chain, stage) {
            assert!(step.unverified, "{} in {stage} is not marked unverified", step.name);
            assert!(step.outputs.iter().all(|o| o.sha256.is_none()), "{} pins an output it never produced", step.name);
        }
    }
}

/// `check` on the repository chain is clean and counts the unverified steps.
#[test]
fn check_is_clean_and_counts_the_unverified() {
    let chain = repo_chain();
    let unverified = chain.steps.iter().filter(|s| s.unverified).count();
    let state = tempfile::tempdir().unwrap();
    let run = common::run_in(&common::root(), state.path(), &["check"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains(&format!("steps ({unverified} unverified)")), "{}", run.stdout);
    assert!(unverified > 150, "{unverified}");
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

/// `graph --reduce` of the whole chain keeps every step and every path of
/// needs with far fewer edges, and Graphviz renders it.
#[test]
fn the_reduced_graph_of_the_whole_chain_renders() {
    use std::collections::{BTreeMap, BTreeSet};
    let state = tempfile::tempdir().unwrap();
    let edges = |args: &[&str]| -> BTreeSet<(String, String)> {
        let run = common::run_in(&common::root(), state.path(), args);
        assert_eq!(run.code, 0, "{}", run.stderr);
        let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
        v["edges"].as_array().unwrap().iter().map(|e| (e["from"].as_str().unwrap().to_string(), e["to"].as_str().unwrap().to_string())).collect()
    };
    let all = edges(&["graph", "--json"]);
    let reduced = edges(&["graph", "--json", "--reduce"]);
    assert!(reduced.is_subset(&all) && reduced.len() * 4 < all.len(), "{} of {}", reduced.len(), all.len());
    // Same reachability: every edge left out is a path of edges kept.
    let mut next: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (a, b) in &reduced {
        next.entry(a.as_str()).or_default().push(b.as_str());
    }
    for (a, b) in all.difference(&reduced) {
        let (mut todo, mut seen) = (vec![a.as_str()], BTreeSet::new());
        let mut found = false;
        while let Some(n) = todo.pop() {
            if n == b {
                found = true;
                break;
            }
            if seen.insert(n) {
                todo.extend(next.get(n).into_iter().flatten().copied());
            }
        }
        assert!(found, "{a} -> {b} was dropped but is no path of the reduced graph");
    }
    let dot = common::run_in(&common::root(), state.path(), &["graph", "--reduce"]);
    let mut child = std::process::Command::new("dot")
        .arg("-Tsvg")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("Graphviz `dot` is needed for this test (apt-get install graphviz): {e}"));
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), dot.stdout.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "dot rejected the graph: {}", String::from_utf8_lossy(&out.stderr));
    let svg = String::from_utf8_lossy(&out.stdout).replace("&#45;", "-");
    assert!(svg.contains(">gcc-15.2.0<") && svg.contains(">rustc-1.94.0<") && svg.contains(">go-1.26.0<"));
}
