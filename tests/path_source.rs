//! Sources that are files of the chain directory (`path`), as a user runs
//! them: read from the chain directory with `--offline` and no distfiles,
//! stored and mounted like any file source, their origin the path; a file
//! changed after pinning refused with exit 2 and nothing stored, even when
//! the store holds the pinned bytes; links and directories refused; an
//! archive in the repository unpacked and matched by its tree.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Run, run_in, says, seeds, sha};

const SEEDS: &str = "seed \"busybox\" { description \"busybox-static\" }\nseed \"debian\" { description \"minbase\" }\n";
const CONFIG: &str = "#define HAVE_THINGS 1\n";

/// A one-stage chain with these source declarations and steps.
fn write_chain(dir: &Path, sources: &str, steps: &str) {
    fs::create_dir_all(dir.join("chain")).unwrap();
    fs::create_dir_all(dir.join("stage0")).unwrap();
    fs::write(
        dir.join("chain/chain.kdl"),
        format!("chain \"t\" {{\n    arch \"x86_64\"\n    source-date-epoch 0\n    stage \"stage0\" description=\"s\"\n}}\n{SEEDS}"),
    )
    .unwrap();
    fs::write(dir.join("chain/sources.kdl"), sources).unwrap();
    fs::write(dir.join("stage0/steps.kdl"), steps).unwrap();
}

/// `bootstrap --offline --seed busybox=… --seed debian=… ARGS` in `dir`,
/// with the state directory `dir/.bootstrap` and no distfiles.
fn bs(dir: &Path, args: &[&str]) -> Run {
    let busybox = format!("busybox={}", seeds().join("busybox").display());
    let debian = format!("debian={}", seeds().join("debian").display());
    let mut all: Vec<&str> = vec!["--offline", "--seed", &busybox, "--seed", &debian];
    all.extend(args);
    run_in(dir, &dir.join(".bootstrap"), &all)
}

fn json(r: &Run) -> serde_json::Value {
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: stdout {} stderr {}", r.stdout, r.stderr))
}

fn file_source(name: &str, path: &str, sha256: &str) -> String {
    format!("source \"{name}\" {{\n    path \"{path}\"\n    sha256 \"{sha256}\"\n}}\n")
}

const STEP: &str = "step \"use\" {\n    root \"seed\"\n    source \"config\"\n    script \"mkdir -p /out && cat /src/config > /out/config.h\"\n    output \"/out\"\n}\n";

/// A chain whose source `config` is `stage0/files/config.h`, holding `CONFIG`, pinned.
fn config_chain(dir: &Path) -> PathBuf {
    fs::create_dir_all(dir.join("stage0/files")).unwrap();
    let file = dir.join("stage0/files/config.h");
    fs::write(&file, CONFIG).unwrap();
    write_chain(dir, &file_source("config", "stage0/files/config.h", &sha(CONFIG.as_bytes())), STEP);
    file
}

fn sources_in_store(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir.join(".bootstrap/sources"))
        .map(|d| d.map(|e| e.unwrap().file_name().into_string().unwrap()).collect())
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn a_path_source_is_read_from_the_chain_directory_offline_stored_and_mounted() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("chain");
    config_chain(&dir);
    let h = sha(CONFIG.as_bytes());

    let r = bs(&dir, &["--json", "fetch"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let s = &json(&r)["sources"][0];
    assert_eq!(s["pin"], "sha256");
    assert_eq!(s["sha256"], format!("sha256:{h}"));
    assert_eq!(s["origin"]["fetched"], "stage0/files/config.h");
    assert_eq!(s["from"], "stage0/files/config.h");
    assert_eq!(fs::read_to_string(dir.join(".bootstrap/sources").join(&h)).unwrap(), CONFIG);
    // Again: read and checked again, nothing written.
    let r = bs(&dir, &["--json", "fetch"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(json(&r)["sources"][0]["origin"], "store");
    assert_eq!(json(&r)["sources"][0]["from"], "stage0/files/config.h");

    // Built on both seeds, offline, without a distfiles directory.
    for seed in ["busybox", "debian"] {
        let r = bs(&dir, &["--json", "build", "use", "--seed", seed]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        let v = json(&r);
        let layer = dir.join(".bootstrap/layers").join(v["steps"][0]["output"].as_str().unwrap().trim_start_matches("blake3:"));
        assert_eq!(fs::read_to_string(layer.join("out/config.h")).unwrap(), CONFIG);
        let input = v["steps"][0]["input"].as_str().unwrap().trim_start_matches("blake3:").to_string();
        let receipt: serde_json::Value =
            serde_json::from_slice(&fs::read(dir.join(".bootstrap/receipts/steps/use").join(seed).join(format!("{input}.json"))).unwrap()).unwrap();
        assert_eq!(receipt["sources"][0]["from"], "stage0/files/config.h");
        assert_eq!(receipt["sources"][0]["placement"], "file");
    }

    // Verified (both from the cache), the audit says where it comes from.
    let r = bs(&dir, &["verify", "stage0", "--no-signatures"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let audit = bs(&dir, &["audit", "--format", "json"]);
    assert_eq!(audit.code, 0, "{}", audit.stderr);
    let src = &json(&audit)["stages"][0]["steps"][0]["sources"][0];
    assert_eq!(src["path"], "stage0/files/config.h");
    assert_eq!(src["urls"], serde_json::json!([]));
    assert_eq!(src["matched"]["from"], "stage0/files/config.h");
    let text = bs(&dir, &["audit", "use"]);
    assert!(text.stdout.contains("stage0/files/config.h (in the chain directory)"), "{}", text.stdout);
    let check = bs(&dir, &["--json", "check"]);
    assert_eq!(json(&check)["sources"][0]["path"], "stage0/files/config.h");
}

#[test]
fn a_path_source_changed_after_pinning_is_refused_with_exit_2_and_never_stored() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("chain");
    let file = config_chain(&dir);
    let h = sha(CONFIG.as_bytes());
    let tampered = CONFIG.replace('1', "0");
    fs::write(&file, &tampered).unwrap();

    let r = bs(&dir, &["fetch"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    for needle in [
        "source `config`: no place gave the pinned bytes".to_string(),
        format!("pinned: sha256:{h}"),
        format!("stage0/files/config.h gave {} bytes hashing to sha256:{}", tampered.len(), sha(tampered.as_bytes())),
    ] {
        assert!(says(&r.stderr, &needle), "missing {needle:?} in\n{}", r.stderr);
    }
    assert!(says(&r.stderr, "this one changed: if that was on purpose, pin the new content"), "{}", r.stderr);
    assert_eq!(sources_in_store(&dir), Vec::<String>::new(), "nothing of it is stored");
    let r = bs(&dir, &["build", "use", "--seed", "busybox"]);
    assert_eq!(r.code, 2, "{}", r.stderr);

    // With the pinned bytes already in the store, the file is still checked.
    fs::write(&file, CONFIG).unwrap();
    assert_eq!(bs(&dir, &["fetch"]).code, 0);
    fs::write(&file, &tampered).unwrap();
    let r = bs(&dir, &["build", "use", "--seed", "busybox"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(says(&r.stderr, &format!("stage0/files/config.h gave {} bytes hashing to", tampered.len())), "{}", r.stderr);
    assert_eq!(sources_in_store(&dir), vec![h]);
}

#[test]
fn a_path_source_is_a_regular_file_reached_through_real_directories() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("chain");
    let file = config_chain(&dir);
    let h = sha(CONFIG.as_bytes());
    let outside = tmp.path().join("outside.h");
    fs::write(&outside, CONFIG).unwrap();
    let refused = |decl: &str, said: &str| {
        write_chain(&dir, decl, STEP);
        let r = bs(&dir, &["fetch"]);
        assert_eq!(r.code, 1, "{}", r.stderr);
        assert!(says(&r.stderr, said), "missing {said:?} in\n{}", r.stderr);
        assert_eq!(sources_in_store(&dir), Vec::<String>::new());
        assert!(says(&r.stderr, "help: a `path` source is a regular file inside the chain directory"), "{}", r.stderr);
    };
    // A link to a file outside, with the right content: never followed.
    std::os::unix::fs::symlink(&outside, dir.join("stage0/files/link.h")).unwrap();
    refused(&file_source("config", "stage0/files/link.h", &h), "stage0/files/link.h: it is a symlink, not a regular file: a `path` source is reached through real directories only, never a symlink");
    // A link on the way, even one that stays inside.
    std::os::unix::fs::symlink("files", dir.join("stage0/alias")).unwrap();
    refused(&file_source("config", "stage0/alias/config.h", &h), "stage0/alias/config.h: stage0/alias is a symlink, not a directory");
    refused(&file_source("config", "stage0/files", &h), "stage0/files: it is a directory, not a regular file: a `path` source is one file (pack a directory as an archive and add `unpack`)");
    refused(&file_source("config", "stage0/files/missing.h", &h), "stage0/files/missing.h: no such file in the chain directory");
    assert!(Command::new("mkfifo").arg(dir.join("stage0/files/fifo")).status().unwrap().success());
    refused(&file_source("config", "stage0/files/fifo", &h), "stage0/files/fifo: it is a fifo, not a regular file");
    assert!(file.exists());
}

#[test]
fn an_archive_in_the_chain_directory_is_unpacked_and_matched_by_its_tree() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("chain");
    let content = tmp.path().join("up/patches-1");
    fs::create_dir_all(&content).unwrap();
    fs::write(content.join("fix.patch"), "--- a\n+++ b\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_bootstrap")).arg("hash").arg(&content).output().unwrap();
    let tree = String::from_utf8(out.stdout).unwrap().trim().to_string();
    fs::create_dir_all(dir.join("stage0/files")).unwrap();
    let archive = dir.join("stage0/files/patches.tar.gz");
    assert!(Command::new("tar").arg("-czf").arg(&archive).arg("-C").arg(tmp.path().join("up")).arg("patches-1").status().unwrap().success());
    write_chain(
        &dir,
        &format!("source \"patches\" {{\n    path \"stage0/files/patches.tar.gz\"\n    tree \"{tree}\"\n    unpack strip-components=1\n}}\n"),
        "step \"use\" {\n    root \"seed\"\n    source \"patches\"\n    script \"mkdir -p /out && cp /src/patches/fix.patch /out/\"\n    output \"/out\"\n}\n",
    );
    let r = bs(&dir, &["--json", "build", "use", "--seed", "busybox"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v = json(&r);
    let layer = dir.join(".bootstrap/layers").join(v["steps"][0]["output"].as_str().unwrap().trim_start_matches("blake3:"));
    assert_eq!(fs::read_to_string(layer.join("out/fix.patch")).unwrap(), "--- a\n+++ b\n");
    let f = bs(&dir, &["--json", "fetch"]);
    let s = &json(&f)["sources"][0];
    assert_eq!(s["pin"], "tree");
    assert_eq!(s["layer"], tree.as_str());
    assert_eq!(s["from"], "stage0/files/patches.tar.gz");
    assert_eq!(s["origin"], "store", "known by its archive's sha256: not unpacked again");
    assert_eq!(s["unpacked"], 0);
}
