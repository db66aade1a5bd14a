//! Sources pinned by their content (`tree`) and fetched from git, run as a
//! user runs them: a tree pin met by a distfile of another name and
//! compression, wrong content refused with both digest pairs and nothing
//! left in the store, the distfile index sparing a second run the work,
//! the cache keyed by content, git checkouts at the right commit, another
//! commit, a moved tag, with submodules, and `--offline`.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::http::{Behavior, Server};
use common::{Run, run_in, says, seeds, sha};

const SEED_DECL: &str = "seed \"a\" { description \"a\" }\nseed \"b\" { description \"b\" }\n";

/// A one-stage chain with these source declarations and steps.
fn write_chain(dir: &Path, sources: &str, steps: &str) {
    fs::create_dir_all(dir.join("chain")).unwrap();
    fs::create_dir_all(dir.join("stage0")).unwrap();
    fs::write(
        dir.join("chain/chain.kdl"),
        format!("chain \"t\" {{\n    arch \"x86_64\"\n    source-date-epoch 0\n    stage \"stage0\" description=\"s\"\n}}\n{SEED_DECL}"),
    )
    .unwrap();
    fs::write(dir.join("chain/sources.kdl"), sources).unwrap();
    fs::write(dir.join("stage0/steps.kdl"), steps).unwrap();
}

/// A step that uses `sources` and copies `/src/<first>/README` out.
fn step_using(name: &str, sources: &[&str]) -> String {
    let list: String = sources.iter().map(|s| format!(" \"{s}\"")).collect();
    format!(
        "step \"{name}\" {{\n    root \"seed\"\n    source{list}\n    script \"mkdir -p /out && cat /src/{}/README > /out/readme\"\n    output \"/out\"\n}}\n",
        sources[0]
    )
}

/// `bootstrap ARGS` in `dir` with the state directory `dir/.bootstrap`.
fn bs(dir: &Path, args: &[&str]) -> Run {
    run_in(dir, &dir.join(".bootstrap"), args)
}

fn json(r: &Run) -> serde_json::Value {
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: stdout {} stderr {}", r.stdout, r.stderr))
}

/// The tree digest `bootstrap hash` gives for a directory.
fn tree_of(dir: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_bootstrap")).arg("hash").arg(dir).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// `pkg-1.0/` with a few files, an executable and a symlink, under `root`.
fn content(root: &Path, readme: &str) -> PathBuf {
    let top = root.join("pkg-1.0");
    fs::create_dir_all(top.join("bin")).unwrap();
    fs::create_dir_all(top.join("lib")).unwrap();
    fs::write(top.join("README"), readme).unwrap();
    fs::write(top.join("lib/data.txt"), "some data\n".repeat(100)).unwrap();
    fs::write(top.join("bin/run.sh"), "#!/bin/sh\necho run\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(top.join("bin/run.sh"), fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::symlink("README", top.join("LINK")).unwrap();
    top
}

/// `tar` of `root/pkg-1.0` with the given compression flag (`z`, `j`, `J`
/// or none), written to `out`; its bytes.
fn archive(root: &Path, flag: &str, out: &Path) -> Vec<u8> {
    let status = Command::new("tar")
        .arg(format!("-c{flag}f"))
        .arg(out)
        .arg("-C")
        .arg(root)
        .arg("pkg-1.0")
        .status()
        .unwrap();
    assert!(status.success());
    fs::read(out).unwrap()
}

/// Every file below `dir` (recursively), for "nothing entered the store".
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            }
            out.push(e.path());
        }
    }
    out
}

fn tree_source(name: &str, url: &str, tree: &str) -> String {
    format!("source \"{name}\" {{\n    url \"{url}\"\n    tree \"{tree}\"\n    unpack strip-components=1\n}}\n")
}

#[test]
fn a_tree_pin_is_met_by_a_distfile_of_any_name_and_compression() {
    let tmp = tempfile::tempdir().unwrap();
    let upstream = tmp.path().join("upstream");
    let top = content(&upstream, "hello\n");
    let tree = tree_of(&top);
    for (flag, name) in [("J", "repacked-by-someone.tar.xz"), ("j", "pkg.tbz"), ("", "plain.tar"), ("z", "x.tgz")] {
        let dir = tmp.path().join(format!("chain-{name}"));
        let dist = dir.join("dist");
        fs::create_dir_all(&dist).unwrap();
        let bytes = archive(&upstream, flag, &dist.join(name));
        // Unrelated files beside it: another archive and not an archive at all.
        fs::write(dist.join("notes.txt"), "not an archive\n").unwrap();
        write_chain(&dir, &tree_source("pkg", "https://unreachable.invalid/pkg-1.0.tar.gz", &tree), &step_using("use", &["pkg"]));
        let run = bs(&dir, &["--json", "--offline", "--distfiles", "dist", "fetch"]);
        assert_eq!(run.code, 0, "{name}: {}", run.stderr);
        let v = json(&run);
        let s = &v["sources"][0];
        assert_eq!(s["pin"], "tree", "{name}");
        assert_eq!(s["layer"], tree.as_str(), "{name}");
        assert_eq!(s["sha256"], format!("sha256:{}", sha(&bytes)), "{name}");
        assert!(s["from"].as_str().unwrap().ends_with(&format!("dist/{name}")), "{name}: {s}");
        let layer = dir.join(".bootstrap/layers").join(tree.trim_start_matches("blake3:"));
        assert_eq!(fs::read_to_string(layer.join("README")).unwrap(), "hello\n");
        assert_eq!(fs::read_link(layer.join("LINK")).unwrap(), Path::new("README"));
        // The archive itself is not kept: the layer is the source.
        assert!(files_under(&dir.join(".bootstrap/sources")).is_empty());
        let verify = bs(&dir, &["store", "verify"]);
        assert_eq!(verify.code, 0, "{}{}", verify.stdout, verify.stderr);

        // Found in the store the next time, still saying where it came from.
        let again = json(&bs(&dir, &["--json", "--offline", "fetch"]));
        assert_eq!(again["sources"][0]["origin"], "store");
        assert_eq!(again["sources"][0]["pin"], "tree");
        assert_eq!(again["sources"][0]["from"], s["from"]);
    }
}

#[test]
fn wrong_content_is_refused_with_both_digest_pairs_and_nothing_enters_the_store() {
    let server = Server::start();
    let tmp = tempfile::tempdir().unwrap();
    let (good_root, bad_root) = (tmp.path().join("good"), tmp.path().join("bad"));
    let good_tree = tree_of(&content(&good_root, "hello\n"));
    let bad_tree = tree_of(&content(&bad_root, "HELLO, tampered\n"));
    let good = archive(&good_root, "z", &tmp.path().join("good.tar.gz"));
    let bad = archive(&bad_root, "z", &tmp.path().join("bad.tar.gz"));
    let bad_xz = archive(&bad_root, "J", &tmp.path().join("bad.tar.xz"));
    let dir = tmp.path().join("chain");
    let dist = dir.join("dist");
    fs::create_dir_all(&dist).unwrap();
    fs::write(dist.join("pkg-1.0.tar.gz"), &bad_xz).unwrap();
    let url = server.route("/pkg-1.0.tar.gz", Behavior::Serve(bad.clone()));
    let sources = format!(
        "source \"pkg\" {{\n    url \"{url}\"\n    sha256 \"{}\"\n    tree \"{good_tree}\"\n    unpack strip-components=1\n}}\n",
        sha(&good)
    );
    write_chain(&dir, &sources, &step_using("use", &["pkg"]));
    let run = bs(&dir, &["--distfiles", "dist", "fetch"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    for needle in [
        "source `pkg`: no place gave the pinned content".to_string(),
        format!("pinned: sha256:{} {good_tree}", sha(&good)),
        // The distfile named for the source, as --distfiles named its directory.
        format!("dist/pkg-1.0.tar.gz gave {} bytes hashing to sha256:{} unpacking to {bad_tree}", bad_xz.len(), sha(&bad_xz)),
        format!("{url} gave {} bytes hashing to sha256:{} unpacking to {bad_tree}", bad.len(), sha(&bad)),
    ] {
        assert!(says(&run.stderr, &needle), "missing {needle:?} in\n{}", run.stderr);
    }
    let state = dir.join(".bootstrap");
    for sub in ["sources", "layers", "index/unpack", "index/origin"] {
        assert!(files_under(&state.join(sub)).is_empty(), "{sub}: {:?}", files_under(&state.join(sub)));
    }
    let leftovers: Vec<PathBuf> = files_under(&state.join("tmp")).into_iter().filter(|p| p.is_file()).collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let verify = bs(&dir, &["store", "verify"]);
    assert_eq!(verify.code, 0, "{}{}", verify.stdout, verify.stderr);

    let v = json(&bs(&dir, &["--json", "--distfiles", "dist", "fetch"]));
    assert_eq!(v["failed"][0]["code"], "bootstrap::fetch::failed");
}

#[test]
fn both_pins_accept_matching_bytes_or_matching_content_and_say_which() {
    let server = Server::start();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("up");
    let tree = tree_of(&content(&root, "hello\n"));
    let gz = archive(&root, "z", &tmp.path().join("a.tar.gz"));
    let xz = archive(&root, "J", &tmp.path().join("a.tar.xz"));
    let dir = tmp.path().join("chain");
    let url = server.route("/pkg-1.0.tar.xz", Behavior::Serve(xz.clone()));
    let sources = format!("source \"pkg\" {{\n    url \"{url}\"\n    sha256 \"{}\"\n    tree \"{tree}\"\n    unpack strip-components=1\n}}\n", sha(&gz));
    write_chain(&dir, &sources, &step_using("use", &["pkg"]));
    // Other bytes, the pinned content: accepted by the tree pin.
    let v = json(&bs(&dir, &["--json", "fetch"]));
    assert_eq!(v["sources"][0]["pin"], "tree");
    assert_eq!(v["sources"][0]["from"], url.as_str());
    assert_eq!(v["sources"][0]["sha256"], format!("sha256:{}", sha(&xz)));

    // The pinned bytes: accepted by the sha256 pin, the file kept.
    let other = tmp.path().join("chain2");
    let url_gz = server.route("/pkg-1.0.tar.gz", Behavior::Serve(gz.clone()));
    let sources = format!("source \"pkg\" {{\n    url \"{url_gz}\"\n    sha256 \"{}\"\n    tree \"{tree}\"\n    unpack strip-components=1\n}}\n", sha(&gz));
    write_chain(&other, &sources, &step_using("use", &["pkg"]));
    let v = json(&bs(&other, &["--json", "fetch"]));
    assert_eq!(v["sources"][0]["pin"], "sha256");
    assert_eq!(v["sources"][0]["layer"], tree.as_str());
    assert!(other.join(".bootstrap/sources").join(sha(&gz)).is_file());
}

#[test]
fn the_distfile_index_spares_a_second_run_the_hashing_and_unpacking() {
    let tmp = tempfile::tempdir().unwrap();
    let (ra, rb) = (tmp.path().join("a"), tmp.path().join("b"));
    let (ta, tb) = (tree_of(&content(&ra, "alpha\n")), tree_of(&content(&rb, "beta\n")));
    let dir = tmp.path().join("chain");
    let dist = dir.join("dist");
    fs::create_dir_all(&dist).unwrap();
    // Named for neither source: only their content can tell them apart,
    // and alpha's comes first in the directory.
    archive(&ra, "z", &dist.join("aaa.tar.gz"));
    archive(&rb, "j", &dist.join("zzz.tar.bz2"));
    let sources = tree_source("alpha", "https://unreachable.invalid/alpha-1.tar.gz", &ta)
        + &tree_source("beta", "https://unreachable.invalid/beta-1.tar.gz", &tb);
    write_chain(&dir, &sources, &(step_using("use-alpha", &["alpha"]) + &step_using("use-beta", &["beta"])));
    // What changed in the last two seconds is not remembered (the same
    // clock tick could hide a write): let the distfiles settle.
    std::thread::sleep(std::time::Duration::from_millis(2500));
    let fetch = |target: &str| json(&bs(&dir, &["--json", "--offline", "--distfiles", "dist", "fetch", target]));

    let first = fetch("use-alpha");
    assert_eq!(first["sources"][0]["name"], "alpha");
    assert_eq!((first["sources"][0]["hashed"].as_u64(), first["sources"][0]["unpacked"].as_u64()), (Some(1), Some(1)));

    // beta looks at alpha's archive first: its sha256 and its tree are
    // remembered, so only beta's own archive is read and unpacked.
    let second = fetch("use-beta");
    assert_eq!(second["sources"][0]["name"], "beta");
    assert_eq!(second["sources"][0]["layer"], tb.as_str());
    assert_eq!((second["sources"][0]["hashed"].as_u64(), second["sources"][0]["unpacked"].as_u64()), (Some(1), Some(1)));

    // Both in the store now: nothing read at all.
    let all = json(&bs(&dir, &["--json", "--offline", "--distfiles", "dist", "fetch"]));
    for s in all["sources"].as_array().unwrap() {
        assert_eq!(s["origin"], "store");
        assert_eq!((s["hashed"].as_u64(), s["unpacked"].as_u64()), (Some(0), Some(0)), "{s}");
    }
}

/// `--seed a=… --seed b=…` with the test seeds.
fn seed_args() -> Vec<String> {
    let busybox = format!("a={}", seeds().join("busybox").display());
    let debian = format!("b={}", seeds().join("debian").display());
    vec!["--seed".into(), busybox, "--seed".into(), debian]
}

fn build(dir: &Path, state: &Path, dist: &Path, extra: &[&str]) -> serde_json::Value {
    let seeds = seed_args();
    let mut args: Vec<&str> = vec!["--json", "--offline", "--distfiles", dist.to_str().unwrap()];
    args.extend(seeds.iter().map(String::as_str));
    args.extend(extra);
    let run = run_in(dir, state, &args);
    assert_eq!(run.code, 0, "{}", run.stderr);
    json(&run)
}

#[test]
fn the_same_files_from_another_archive_hit_the_same_cache_entry() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("up");
    let tree = tree_of(&content(&root, "cached\n"));
    let (d1, d2) = (tmp.path().join("dist-gz"), tmp.path().join("dist-xz"));
    fs::create_dir_all(&d1).unwrap();
    fs::create_dir_all(&d2).unwrap();
    let gz = archive(&root, "z", &d1.join("pkg-1.0.tar.gz"));
    let xz = archive(&root, "J", &d2.join("whatever.tar.xz"));
    let dir = tmp.path().join("chain");
    write_chain(&dir, &tree_source("pkg", "https://unreachable.invalid/pkg-1.0.tar.gz", &tree), &step_using("use", &["pkg"]));
    let input = |v: &serde_json::Value| v["steps"][0]["input"].as_str().unwrap().to_string();

    // Two fresh stores, two archives of the same files: one input digest.
    let (s1, s2) = (tmp.path().join("state1"), tmp.path().join("state2"));
    let b1 = build(&dir, &s1, &d1, &["build", "use"]);
    let b2 = build(&dir, &s2, &d2, &["build", "use"]);
    assert_eq!(b1["steps"][0]["outcome"], "built");
    assert_eq!(input(&b1), input(&b2));
    let receipt = |state: &Path, v: &serde_json::Value| -> serde_json::Value {
        let path = state.join("receipts/steps/use/a").join(format!("{}.json", input(v).trim_start_matches("blake3:")));
        serde_json::from_slice(&fs::read(path).unwrap()).unwrap()
    };
    let r2 = receipt(&s2, &b2);
    assert_eq!(r2["sources"][0]["pin"], "tree");
    assert_eq!(r2["sources"][0]["placement"], "tree");
    assert_eq!(r2["sources"][0]["layer"], tree.as_str());
    assert_eq!(r2["sources"][0]["sha256"], format!("sha256:{}", sha(&xz)));
    assert!(r2["sources"][0]["from"].as_str().unwrap().ends_with("dist-xz/whatever.tar.xz"), "{r2}");

    // One store, the source re-pinned from one archive's sha256 to the
    // other's: the content is the same, so the step comes from the cache.
    let s3 = tmp.path().join("state3");
    let by_sha = |bytes: &[u8]| format!("source \"pkg\" {{\n    url \"https://unreachable.invalid/pkg-1.0.tar.gz\"\n    sha256 \"{}\"\n    unpack strip-components=1\n}}\n", sha(bytes));
    write_chain(&dir, &by_sha(&gz), &step_using("use", &["pkg"]));
    let b3 = build(&dir, &s3, &d1, &["build", "use"]);
    assert_eq!(b3["steps"][0]["outcome"], "built");
    assert_eq!(input(&b3), input(&b1), "the pin kind does not enter the input digest");
    fs::rename(d2.join("whatever.tar.xz"), d2.join("pkg-1.0.tar.gz")).unwrap();
    write_chain(&dir, &by_sha(&xz), &step_using("use", &["pkg"]));
    let b4 = build(&dir, &s3, &d2, &["build", "use"]);
    assert_eq!(b4["steps"][0]["outcome"], "cached", "{b4}");
    assert_eq!(input(&b4), input(&b3));
}

#[test]
fn audit_and_trace_say_which_pin_matched_and_where_the_bytes_came_from() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("up");
    let tree = tree_of(&content(&root, "audited\n"));
    let dist = tmp.path().join("dist");
    fs::create_dir_all(&dist).unwrap();
    archive(&root, "J", &dist.join("renamed.tar.xz"));
    let dir = tmp.path().join("chain");
    write_chain(&dir, &tree_source("pkg", "https://unreachable.invalid/pkg-1.0.tar.gz", &tree), &step_using("use", &["pkg"]));
    let state = tmp.path().join("state");
    build(&dir, &state, &dist, &["verify", "stage0"]);
    let from = dist.join("renamed.tar.xz").display().to_string();

    let audit = run_in(&dir, &state, &["audit", "--format", "json"]);
    assert_eq!(audit.code, 0, "{}", audit.stderr);
    let s = &json(&audit)["stages"][0]["steps"][0]["sources"][0];
    assert_eq!(s["tree"], tree.as_str());
    assert_eq!(s["sha256"], serde_json::Value::Null);
    assert_eq!(s["in_store"], true);
    assert_eq!(s["matched"]["pin"], "tree");
    assert_eq!(s["matched"]["from"], from.as_str());
    let text = run_in(&dir, &state, &["audit"]);
    assert!(text.stdout.contains(&format!("pinned tree {tree}")), "{}", text.stdout);
    assert!(text.stdout.contains(&format!("matched tree, from {from}")), "{}", text.stdout);
    let md = run_in(&dir, &state, &["audit", "--format", "markdown"]);
    assert!(md.stdout.contains(&format!("matched its tree pin; its bytes came from {from}")), "{}", md.stdout);

    let trace = run_in(&dir, &state, &["--json", "trace", "out/readme"]);
    assert_eq!(trace.code, 0, "{}", trace.stderr);
    let src = &json(&trace)["matches"][0]["node"]["sources"][0];
    assert_eq!(src["pin"], "tree");
    assert_eq!(src["layer"], tree.as_str());
    assert_eq!(src["from"], from.as_str());

    // The provenance gives the archive's sha256 and the tree as blake3.
    let attest = run_in(&dir, &state, &["attest", "stage0"]);
    assert_eq!(attest.code, 0, "{}", attest.stderr);
    let deps = json(&attest)["predicate"]["buildDefinition"]["resolvedDependencies"].clone();
    let dep = deps.as_array().unwrap().iter().find(|d| d["name"] == "source:pkg").expect("source:pkg").clone();
    assert_eq!(dep["digest"]["blake3"], tree.trim_start_matches("blake3:"));
    assert_eq!(dep["digest"]["sha256"], sha(&fs::read(dist.join("renamed.tar.xz")).unwrap()));
    assert_eq!(dep["annotations"]["pin"], "tree");
    assert_eq!(dep["annotations"]["from"], from.as_str());
}

#[test]
fn store_gc_keeps_the_layer_a_tree_pin_names_and_drops_it_with_the_pin() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("up");
    let tree = tree_of(&content(&root, "kept\n"));
    let dir = tmp.path().join("chain");
    let dist = dir.join("dist");
    fs::create_dir_all(&dist).unwrap();
    archive(&root, "z", &dist.join("any.tar.gz"));
    write_chain(&dir, &tree_source("pkg", "https://unreachable.invalid/pkg-1.0.tar.gz", &tree), &step_using("use", &["pkg"]));
    assert_eq!(bs(&dir, &["--offline", "--distfiles", "dist", "fetch"]).code, 0);
    let layer = dir.join(".bootstrap/layers").join(tree.trim_start_matches("blake3:"));
    let gc = bs(&dir, &["--json", "store", "gc"]);
    assert_eq!(gc.code, 0, "{}", gc.stderr);
    assert!(layer.is_dir(), "gc removed the layer a tree pin names: {}", gc.stdout);
    let removed = json(&gc)["removed"].as_array().unwrap().clone();
    assert!(removed.iter().all(|r| r["what"] != "layer" && r["what"] != "index"), "{}", gc.stdout);

    // Without the source, its layer, its unpack entry and its origin go.
    write_chain(&dir, "", "");
    let gc = bs(&dir, &["--json", "store", "gc"]);
    assert_eq!(gc.code, 0, "{}", gc.stderr);
    assert!(!layer.exists());
    let what: Vec<String> = json(&gc)["removed"].as_array().unwrap().iter().map(|r| r["what"].as_str().unwrap().to_string()).collect();
    assert_eq!(what.iter().filter(|w| *w == "index").count(), 2, "{what:?}");
    let verify = bs(&dir, &["store", "verify"]);
    assert_eq!(verify.code, 0, "{}{}", verify.stdout, verify.stderr);
}

/// Runs git (failing the test if it fails), with no global configuration.
fn git(cwd: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .current_dir(cwd)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .args(["-c", "user.name=t", "-c", "user.email=t@example.invalid", "-c", "init.defaultBranch=main", "-c", "protocol.file.allow=always"])
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Local bare repositories: `sub.git` (one file) and `top.git` (files and
/// `sub.git` as the submodule `sub`), with a working clone of `top` in
/// `work/` to commit more from.
struct Repos {
    top: PathBuf,
    work: PathBuf,
}

impl Repos {
    fn new(root: &Path) -> Repos {
        let (top, sub) = (root.join("top.git"), root.join("sub.git"));
        git(root, &["init", "--quiet", "--bare", top.to_str().unwrap()]);
        git(root, &["init", "--quiet", "--bare", sub.to_str().unwrap()]);
        let sub_work = root.join("sub-work");
        git(root, &["clone", "--quiet", &format!("file://{}", sub.display()), sub_work.to_str().unwrap()]);
        fs::write(sub_work.join("sub.txt"), "from the submodule\n").unwrap();
        git(&sub_work, &["add", "."]);
        git(&sub_work, &["commit", "--quiet", "-m", "sub"]);
        git(&sub_work, &["push", "--quiet", "origin", "HEAD:main"]);
        let work = root.join("work");
        git(root, &["clone", "--quiet", &format!("file://{}", top.display()), work.to_str().unwrap()]);
        fs::write(work.join("README"), "version one\n").unwrap();
        fs::create_dir_all(work.join("src")).unwrap();
        fs::write(work.join("src/main.c"), "int main(void) { return 0; }\n").unwrap();
        git(&work, &["submodule", "--quiet", "add", &format!("file://{}", sub.display()), "sub"]);
        git(&work, &["add", "."]);
        git(&work, &["commit", "--quiet", "-m", "one"]);
        git(&work, &["tag", "v1"]);
        git(&work, &["push", "--quiet", "origin", "HEAD:main", "--tags"]);
        Repos { top, work }
    }

    fn url(&self) -> String {
        format!("file://{}", self.top.display())
    }

    fn head(&self) -> String {
        git(&self.work, &["rev-parse", "HEAD"])
    }

    /// The tree digest of the working clone as it is (its content with
    /// submodules, without any `.git`), hashed from a copy.
    fn tree(&self, scratch: &Path, with_submodules: bool) -> String {
        let copy = scratch.join(format!("copy-{}", self.head()));
        common::copy_tree(&self.work, &copy);
        fs::remove_dir_all(copy.join(".git")).unwrap();
        fs::remove_file(copy.join("sub/.git")).unwrap();
        if !with_submodules {
            // A checkout without its submodules has their directories, empty.
            fs::remove_dir_all(copy.join("sub")).unwrap();
            fs::create_dir(copy.join("sub")).unwrap();
        }
        tree_of(&copy)
    }

    fn commit(&self, readme: &str) -> String {
        fs::write(self.work.join("README"), readme).unwrap();
        git(&self.work, &["commit", "--quiet", "-am", readme.trim()]);
        git(&self.work, &["push", "--quiet", "origin", "HEAD:main"]);
        self.head()
    }
}

fn git_source(url: &str, commit: &str, submodules: bool, tree: &str) -> String {
    format!("source \"pkg\" {{\n    git \"{url}\" commit=\"{commit}\" submodules=#{submodules}\n    tree \"{tree}\"\n}}\n")
}

#[test]
fn git_the_right_commit_with_its_submodules_passes() {
    let tmp = tempfile::tempdir().unwrap();
    let repos = Repos::new(tmp.path());
    let commit = repos.head();
    let tree = repos.tree(tmp.path(), true);
    let dir = tmp.path().join("chain");
    write_chain(&dir, &git_source(&repos.url(), &commit, true, &tree), &step_using("use", &["pkg"]));
    let run = bs(&dir, &["--json", "fetch"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let s = &json(&run)["sources"][0];
    assert_eq!(s["pin"], "tree");
    assert_eq!(s["layer"], tree.as_str());
    assert_eq!(s["sha256"], serde_json::Value::Null);
    assert_eq!(s["from"], format!("git {}@{commit}", repos.url()));
    let layer = dir.join(".bootstrap/layers").join(tree.trim_start_matches("blake3:"));
    assert_eq!(fs::read_to_string(layer.join("sub/sub.txt")).unwrap(), "from the submodule\n");
    assert_eq!(fs::read_to_string(layer.join("README")).unwrap(), "version one\n");
    assert!(!files_under(&layer).iter().any(|p| p.file_name().is_some_and(|n| n == ".git")), "a .git entry was kept");
    let verify = bs(&dir, &["store", "verify"]);
    assert_eq!(verify.code, 0, "{}{}", verify.stdout, verify.stderr);
    let check = json(&bs(&dir, &["--json", "check"]));
    let declared = &check["sources"][0];
    assert_eq!(declared["git"]["commit"], commit.as_str());
    assert_eq!(declared["git"]["submodules"], true);
    assert_eq!(declared["tree"], tree.as_str());
    assert_eq!(declared["unpack"], 0, "a git-only source is a tree");

    // Without the submodules the content is another: refused.
    let other = tmp.path().join("chain-nosub");
    write_chain(&other, &git_source(&repos.url(), &commit, false, &tree), &step_using("use", &["pkg"]));
    let run = bs(&other, &["fetch"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    let without = repos.tree(tmp.path(), false);
    assert!(says(&run.stderr, &format!("git {}@{commit} gave content whose tree is {without}", repos.url())), "{}", run.stderr);
}

#[test]
fn git_another_commit_or_a_moved_tag_is_refused_with_the_digests() {
    let tmp = tempfile::tempdir().unwrap();
    let repos = Repos::new(tmp.path());
    let pinned = repos.tree(tmp.path(), true);
    let two = repos.commit("version two\n");
    let tree_two = repos.tree(tmp.path(), true);
    assert_ne!(pinned, tree_two);
    let dir = tmp.path().join("chain");
    let refused = |commit: &str, found: &str| {
        write_chain(&dir, &git_source(&repos.url(), commit, true, &pinned), &step_using("use", &["pkg"]));
        let run = bs(&dir, &["fetch"]);
        assert_eq!(run.code, 2, "{}", run.stderr);
        assert!(says(&run.stderr, &format!("pinned: sha256 not pinned {pinned}")), "{}", run.stderr);
        assert!(says(&run.stderr, &format!("git {}@{commit} gave content whose tree is {found}", repos.url())), "{}", run.stderr);
        assert!(files_under(&dir.join(".bootstrap/layers")).is_empty());
        let verify = bs(&dir, &["store", "verify"]);
        assert_eq!(verify.code, 0, "{}{}", verify.stdout, verify.stderr);
    };
    // Another commit than the one whose content is pinned.
    refused(&two, &tree_two);

    // The tag the content was pinned from moves to a third commit; the
    // chain names the commit the tag points at now: its content is not
    // the pinned one.
    let three = repos.commit("version three\n");
    let tree_three = repos.tree(tmp.path(), true);
    git(&repos.work, &["tag", "-f", "v1", &three]);
    git(&repos.work, &["push", "--quiet", "--force", "origin", "v1"]);
    let moved = git(&repos.work, &["ls-remote", &repos.url(), "refs/tags/v1"]);
    assert!(moved.starts_with(&three), "{moved}");
    refused(&three, &tree_three);
}

#[test]
fn urls_are_tried_before_git() {
    let tmp = tempfile::tempdir().unwrap();
    let repos = Repos::new(tmp.path());
    let commit = repos.head();
    let tree = repos.tree(tmp.path(), true);
    let wrong_root = tmp.path().join("wrong");
    let wrong_tree = tree_of(&content(&wrong_root, "not it\n"));
    let wrong = archive(&wrong_root, "z", &tmp.path().join("wrong.tar.gz"));
    let dir = tmp.path().join("chain");
    let url = format!("file://{}", tmp.path().join("wrong.tar.gz").display());
    let sources = format!(
        "source \"pkg\" {{\n    url \"{url}\"\n    git \"{}\" commit=\"{commit}\" submodules=#true\n    tree \"{tree}\"\n    unpack strip-components=1\n}}\n",
        repos.url()
    );
    write_chain(&dir, &sources, &step_using("use", &["pkg"]));
    let run = bs(&dir, &["--json", "fetch"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let s = &json(&run)["sources"][0];
    assert_eq!(s["from"], format!("git {}@{commit}", repos.url()));
    let attempt = &s["failed_attempts"][0];
    assert_eq!(attempt["location"], url.as_str());
    assert_eq!(attempt["problem"]["kind"], "wrong_content");
    assert_eq!(attempt["problem"]["sha256"], format!("sha256:{}", sha(&wrong)));
    assert_eq!(attempt["problem"]["tree"], wrong_tree.as_str());
}

#[test]
fn offline_never_runs_git() {
    let tmp = tempfile::tempdir().unwrap();
    let repos = Repos::new(tmp.path());
    let tree = repos.tree(tmp.path(), true);
    let dir = tmp.path().join("chain");
    write_chain(&dir, &git_source(&repos.url(), &repos.head(), true, &tree), &step_using("use", &["pkg"]));
    // No git on this PATH: had git been run, the source would have failed
    // on it (exit 1), not been reported missing (exit 3).
    let no_git = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_bootstrap"))
            .current_dir(&dir)
            .env("PATH", tmp.path().join("empty-path"))
            .env("NO_COLOR", "1")
            .args(args)
            .output()
            .unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (code, _, stderr) = no_git(&["--offline", "fetch"]);
    assert_eq!(code, Some(3), "{stderr}");
    assert!(says(&stderr, "source `pkg` is not in the store or any --distfiles directory, and --offline forbids downloading or cloning it"), "{stderr}");
    assert!(files_under(&dir.join(".bootstrap/layers")).is_empty());

    // Fetched once with git, it is in the store: offline is then enough.
    let online = bs(&dir, &["fetch"]);
    assert_eq!(online.code, 0, "{}", online.stderr);
    let (code, stdout, stderr) = no_git(&["--offline", "--json", "fetch"]);
    assert_eq!(code, Some(0), "{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["sources"][0]["origin"], "store");
    assert_eq!(v["sources"][0]["from"], format!("git {}@{}", repos.url(), repos.head()));
}
