//! `bootstrap build` on the mini fixture chain (tests/fixtures/mini): real
//! programs assembled from commented hex on both test seeds, the cache,
//! failures, and seeds given as directories or tarballs.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use common::{Run, run_in, seeds};

fn mini() -> PathBuf {
    common::fixture("mini")
}

/// `bootstrap -C CHAIN --distfiles … --offline --seed busybox=… --seed debian=… ARGS`.
fn build(chain: &Path, state: &Path, args: &[&str]) -> Run {
    let distfiles = mini().join("distfiles");
    let busybox = format!("busybox={}", seeds().join("busybox").display());
    let debian = format!("debian={}", seeds().join("debian").display());
    let mut all: Vec<&str> = vec!["-C", chain.to_str().unwrap(), "--distfiles", distfiles.to_str().unwrap(), "--offline"];
    all.extend(["--seed", &busybox, "--seed", &debian]);
    all.extend(args);
    run_in(chain, state, &all)
}

fn json(r: &Run) -> serde_json::Value {
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: stdout {} stderr {}", r.stdout, r.stderr))
}

/// step → (outcome, output digest)
fn outcomes(v: &serde_json::Value) -> BTreeMap<String, (String, String)> {
    v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["step"].as_str().unwrap().to_string(),
                (s["outcome"].as_str().unwrap().to_string(), s["output"].as_str().unwrap_or("").to_string()),
            )
        })
        .collect()
}

fn layer(state: &Path, digest: &str) -> PathBuf {
    state.join("layers").join(digest.strip_prefix("blake3:").unwrap())
}

#[test]
fn the_mini_chain_builds_on_both_seeds_to_the_same_bytes_and_then_comes_from_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let mut per_seed = Vec::new();
    for seed in ["busybox", "debian"] {
        let r = build(&mini(), &state, &["--json", "build", "stage2", "--seed", seed]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        let v = json(&r);
        assert_eq!(v["seed"]["name"], seed);
        let o = outcomes(&v);
        assert_eq!(o.len(), 8);
        assert!(o.values().all(|(what, _)| what == "built"), "{o:?}");
        per_seed.push(o);
    }
    assert_eq!(per_seed[0], per_seed[1], "the seeds gave different outputs");

    // Every output, checked: the pinned ones by the receipts' sha256, the
    // rest by content.
    let o = &per_seed[0];
    let read = |step: &str, path: &str| fs::read(layer(&state, &o[step].1).join(path)).unwrap();
    assert_eq!(read("hello-run", "out/hello.txt"), b"hello from hex0\n");
    assert_eq!(read("greet-scratch", "out/greeting-a"), b"hello from hex0\n");
    assert_eq!(read("greet-scratch", "out/greeting-b"), b"hello from hex0\n");
    assert_eq!(read("check-bundle", "dist/HELLO.txt"), b"HELLO FROM HEX0\n");
    let counts = String::from_utf8(read("word-count", "out/counts.txt")).unwrap();
    assert!(counts.starts_with("a 4\nand 1\nare 1\n") && counts.contains("\nthe 6\n"), "{counts}");
    assert_eq!(String::from_utf8(read("shout", "out/COUNTS.txt")).unwrap(), counts.to_uppercase());
    let sums = String::from_utf8(read("bundle", "dist/SHA256SUMS")).unwrap();
    assert!(sums.contains(&format!("{}  hello.txt\n", common::sha(b"hello from hex0\n"))), "{sums}");
    let hello = read("hex0", "out/bin/hello");
    assert_eq!(&hello[..4], b"\x7fELF");
    assert_eq!(common::sha(&hello), "56b0b9b3b389735f196c9acdc890414ab07c00c141bdf7b8a836c238dd06eb02");
    assert_eq!(common::sha(&read("assemble-upper", "out/bin/upper")), "11f09c3da7c0f0dc05f6fa2b0fb532a279362bcf95b291f124bc271441eb0c29");

    // A receipt per step and seed, with the seed's identity and per-file hashes.
    let receipts = state.join("receipts/steps/hello-run/debian");
    let files: Vec<_> = fs::read_dir(&receipts).unwrap().collect();
    assert_eq!(files.len(), 1);
    let receipt: serde_json::Value = serde_json::from_slice(&fs::read(files[0].as_ref().unwrap().path()).unwrap()).unwrap();
    assert_eq!(receipt["status"]["kind"], "succeeded");
    assert_eq!(receipt["backend"], "local");
    assert_eq!(receipt["needs"][0]["step"], "hex0");
    let hello_txt = receipt["files"].as_array().unwrap().iter().find(|f| f["path"] == "out/hello.txt").unwrap();
    assert_eq!(hello_txt["sha256"], format!("sha256:{}", common::sha(b"hello from hex0\n")));

    // Again: nothing runs. After gc too (receipts keep their objects).
    let r = build(&mini(), &state, &["--json", "build", "stage2", "--seed", "debian"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(outcomes(&json(&r)).values().all(|(what, _)| what == "cached"));
    let gc = build(&mini(), &state, &["store", "gc"]);
    assert_eq!(gc.code, 0, "{}", gc.stderr);
    let r = build(&mini(), &state, &["--json", "build", "stage2", "--seed", "busybox"]);
    assert!(outcomes(&json(&r)).values().all(|(what, _)| what == "cached"), "{}", r.stdout);
    let verify = build(&mini(), &state, &["store", "verify"]);
    assert_eq!(verify.code, 0, "{}{}", verify.stdout, verify.stderr);
}

#[test]
fn a_changed_step_runs_again_with_what_needs_it_and_nothing_else() {
    let tmp = tempfile::tempdir().unwrap();
    let chain = tmp.path().join("mini");
    common::copy_tree(&mini(), &chain);
    let state = tmp.path().join("state");
    let r = build(&chain, &state, &["-q", "build", "stage2", "--seed", "busybox"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let file = chain.join("stage1/programs.kdl");
    let text = fs::read_to_string(&file).unwrap();
    fs::write(&file, text.replace("> /out/COUNTS.txt\"", "> /out/COUNTS.txt; echo changed\"")).unwrap();
    let r = build(&chain, &state, &["--json", "build", "stage2", "--seed", "busybox"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let o = outcomes(&json(&r));
    let built: Vec<&str> = o.iter().filter(|(_, (w, _))| w == "built").map(|(s, _)| s.as_str()).collect();
    // shout's output bytes did not change, so what needs it is cached again.
    assert_eq!(built, ["shout"], "{o:?}");
}

#[test]
fn a_failing_step_exits_4_shows_its_log_and_blocks_only_what_needs_it() {
    let tmp = tempfile::tempdir().unwrap();
    let chain = tmp.path().join("mini");
    common::copy_tree(&mini(), &chain);
    let file = chain.join("stage0/words.kdl");
    let text = fs::read_to_string(&file).unwrap();
    fs::write(&file, text.replace("mkdir -p /out\n", "mkdir -p /out\n        echo \"counting $MIN_LENGTH\"\n        echo 'no dictionary here' >&2\n        exit 3\n")).unwrap();
    let state = tmp.path().join("state");
    let r = build(&chain, &state, &["-q", "build", "stage2", "--seed", "busybox"]);
    assert_eq!(r.code, 4, "{}", r.stderr);
    let shown = r.stderr.replace(&state.display().to_string(), "[STATE]");
    let shown = regex_free_log_digest(&shown);
    insta::assert_snapshot!("failed_step", shown);

    let r = build(&chain, &state, &["--json", "build", "stage2", "--seed", "busybox"]);
    assert_eq!(r.code, 4);
    let v = json(&r);
    assert_eq!(v["ok"], false);
    let o = outcomes(&v);
    let by = |w: &str| o.iter().filter(|(_, (x, _))| x == w).map(|(s, _)| s.as_str()).collect::<Vec<_>>();
    assert_eq!(by("failed"), ["word-count"]);
    assert_eq!(by("blocked"), ["bundle", "check-bundle", "shout"]);
    assert_eq!(by("cached").len(), 4, "{o:?}");
}

/// Replaces the log file's digest (it depends on nothing but the log, but
/// keeps the snapshot readable) with `[LOG]`.
fn regex_free_log_digest(s: &str) -> String {
    let mut out = String::new();
    for line in s.split_inclusive('\n') {
        match line.find("[STATE]/logs/") {
            Some(i) => {
                let end = i + "[STATE]/logs/".len();
                let rest = &line[end..];
                let hex_len = rest.chars().take_while(char::is_ascii_hexdigit).count();
                out.push_str(&line[..end]);
                out.push_str("[LOG]");
                out.push_str(&rest[hex_len..]);
            }
            None => out.push_str(line),
        }
    }
    out
}

#[test]
fn verbose_streams_the_log_of_each_step() {
    let tmp = tempfile::tempdir().unwrap();
    let r = build(&mini(), &tmp.path().join("state"), &["-v", "build", "check-bundle", "--seed", "debian"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("[check-bundle] hello.txt: OK\n"), "{}", r.stderr);
}

#[test]
fn a_seed_tarball_is_the_same_seed_as_its_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let dir = build(&mini(), &state, &["--json", "build", "hello-run", "--seed", "busybox"]);
    assert_eq!(dir.code, 0, "{}", dir.stderr);
    let tar = format!("busybox={}", seeds().join("busybox.tar").display());
    let chain = mini();
    let from_tar = run_in(
        &chain,
        &state,
        &["-C", chain.to_str().unwrap(), "--distfiles", chain.join("distfiles").to_str().unwrap(), "--json", "build", "hello-run", "--seed", &tar],
    );
    assert_eq!(from_tar.code, 0, "{}", from_tar.stderr);
    let (a, b) = (json(&dir), json(&from_tar));
    assert_eq!(a["seed"]["digest"], b["seed"]["digest"]);
    assert!(outcomes(&b).values().all(|(w, _)| w == "cached"), "{}", from_tar.stdout);

    // The debian tarball holds device files: left out, like in the directory.
    let tar = format!("debian={}", seeds().join("debian.tar").display());
    let deb = run_in(&chain, &state, &["-C", chain.to_str().unwrap(), "--offline", "--distfiles", chain.join("distfiles").to_str().unwrap(), "--json", "build", "hello-run", "--seed", &tar]);
    assert_eq!(deb.code, 0, "{}", deb.stderr);
    let deb_dir = build(&mini(), &state, &["--json", "build", "hello-run", "--seed", "debian"]);
    assert_eq!(json(&deb)["seed"]["digest"], json(&deb_dir)["seed"]["digest"]);
}

#[test]
fn seed_errors_name_the_seed_and_exit_as_documented() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let chain = mini();
    let c = chain.to_str().unwrap();
    let r = run_in(&chain, &state, &["-C", c, "build", "stage0", "--seed", "busybx=/nonexistent"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("no seed `busybx`") && r.stderr.contains("busybox"), "{}", r.stderr);
    let r = run_in(&chain, &state, &["-C", c, "build", "stage0"]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    // No seed located: every declared one is listed with what to give.
    for seed in ["busybox", "debian"] {
        assert!(common::says(&r.stderr, &format!("seed `{seed}` has no `rootfs` in the chain")), "{}", r.stderr);
    }
    assert!(common::says(&r.stderr, "2 of 2 seeds cannot be run on (this run needs 1)"), "{}", r.stderr);
    let r = run_in(&chain, &state, &["-C", c, "build", "stage0", "--seed", "debian"]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(r.stderr.contains("chain/chain.kdl:13:6") && r.stderr.contains("--seed debian=DIR"), "{}", r.stderr);
    // With the sources at hand, the bad location alone: bad input.
    let distfiles = chain.join("distfiles");
    let d = distfiles.to_str().unwrap();
    let r = run_in(&chain, &state, &["-C", c, "--distfiles", d, "build", "stage0", "--seed", "debian=/nonexistent/rootfs"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("/nonexistent/rootfs"), "{}", r.stderr);
}

#[test]
fn a_seed_rootfs_pinned_in_the_chain_is_fetched_checked_and_unpacked_once() {
    let server = common::http::Server::start();
    let tar = fs::read(seeds().join("busybox.tar")).unwrap();
    let url = server.route("/rootfs/busybox.tar", common::http::Behavior::Serve(tar.clone()));
    let mut flipped = tar.clone();
    let last = flipped.len() / 2;
    flipped[last] ^= 1;
    let bad_url = server.route("/rootfs/tampered.tar", common::http::Behavior::Serve(flipped));

    let tmp = tempfile::tempdir().unwrap();
    let chain = tmp.path().join("mini");
    common::copy_tree(&mini(), &chain);
    let main = chain.join("chain/chain.kdl");
    let text = fs::read_to_string(&main).unwrap();
    let pinned = |u: &str| {
        text.replace(
            "seed \"busybox\" { description",
            &format!("seed \"busybox\" {{ rootfs \"{u}\" sha256=\"{}\"; description", common::sha(&tar)),
        )
    };
    let state = tmp.path().join("state");
    let c = chain.to_str().unwrap().to_string();
    let distfiles = chain.join("distfiles");
    let args = ["-C", c.as_str(), "--distfiles", distfiles.to_str().unwrap(), "--json", "build", "hello-run"];

    fs::write(&main, pinned(&bad_url)).unwrap();
    let r = run_in(&chain, &state, &args);
    assert_eq!(r.code, 2, "a tampered rootfs must fail verification: {}", r.stderr);
    assert!(r.stderr.contains("seed:busybox") && r.stderr.contains("chain/chain.kdl"), "{}", r.stderr);

    fs::write(&main, pinned(&url)).unwrap();
    let r = run_in(&chain, &state, &args);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v = json(&r);
    assert_eq!(v["seed"]["name"], "busybox");
    assert_eq!(v["seed"]["origin"], url);
    // The same seed as the directory it was made from.
    let dir = build(&mini(), &tmp.path().join("state2"), &["--json", "build", "hello-run", "--seed", "busybox"]);
    assert_eq!(v["seed"]["digest"], json(&dir)["seed"]["digest"]);
    // Fetched once: the second build takes it from the store.
    let again = run_in(&chain, &state, &args);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(server.requests("/rootfs/busybox.tar").len(), 1);
}

#[test]
fn a_killed_build_takes_its_steps_with_it_and_leaves_the_store_consistent() {
    let tmp = tempfile::tempdir().unwrap();
    let chain = tmp.path().join("mini");
    common::copy_tree(&mini(), &chain);
    let file = chain.join("stage0/words.kdl");
    let original = fs::read_to_string(&file).unwrap();
    fs::write(&file, original.replace("mkdir -p /out\n", "mkdir -p /out\n        sleep 4777\n")).unwrap();
    let state = tmp.path().join("state");
    let busybox = format!("busybox={}", seeds().join("busybox").display());
    let mut engine = std::process::Command::new(env!("CARGO_BIN_EXE_bootstrap"))
        .args(["-q", "-C", chain.to_str().unwrap(), "--state", state.to_str().unwrap(), "--offline", "--distfiles"])
        .arg(chain.join("distfiles"))
        .args(["--seed", &busybox, "build", "stage2"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let sleeping = || {
        let ps = std::process::Command::new("ps").args(["-eo", "args"]).output().unwrap();
        String::from_utf8_lossy(&ps.stdout).lines().any(|l| l == "sleep 4777")
    };
    let started = std::time::Instant::now();
    while !sleeping() {
        assert!(started.elapsed() < std::time::Duration::from_secs(60), "the step never started");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    engine.kill().unwrap();
    engine.wait().unwrap();
    let killed = std::time::Instant::now();
    while sleeping() {
        assert!(killed.elapsed() < std::time::Duration::from_secs(10), "the step outlived the engine");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let verify = build(&chain, &state, &["store", "verify"]);
    assert_eq!(verify.code, 0, "{}{}", verify.stdout, verify.stderr);
    fs::write(&file, original).unwrap();
    let r = build(&chain, &state, &["--json", "build", "stage2", "--seed", "busybox"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
}

#[test]
fn a_seed_directory_changed_in_place_gets_a_new_identity_even_with_its_mtime_put_back() {
    let tmp = tempfile::tempdir().unwrap();
    let seed = tmp.path().join("seed");
    let ok = std::process::Command::new("cp").arg("-a").arg(seeds().join("busybox")).arg(&seed).status().unwrap();
    assert!(ok.success());
    // Older than the racy-clock window, so the digest is remembered.
    std::thread::sleep(std::time::Duration::from_millis(2200));
    let state = tmp.path().join("state");
    let chain = mini();
    let located = format!("busybox={}", seed.display());
    let distfiles = chain.join("distfiles");
    let args = ["-C", chain.to_str().unwrap(), "--distfiles", distfiles.to_str().unwrap(), "--json", "build", "hello-run", "--seed", &located];
    let digest = |r: &Run| json(r)["seed"]["digest"].as_str().unwrap().to_string();
    let first = run_in(&chain, &state, &args);
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert_eq!(fs::read_dir(state.join("index/seeds")).map(|d| d.count()).unwrap_or(0), 1, "the digest was not remembered: {}", first.stderr);
    let second = run_in(&chain, &state, &args);
    assert_eq!(digest(&first), digest(&second));

    // Same size, mtime put back: only the ctime tells.
    let passwd = seed.join("etc/passwd");
    let text = fs::read_to_string(&passwd).unwrap();
    fs::write(&passwd, text.replace("root:x:0:0", "toor:x:0:0")).unwrap();
    let ok = std::process::Command::new("touch").arg("-r").arg(seeds().join("busybox/etc/passwd")).arg(&passwd).status().unwrap();
    assert!(ok.success());
    let third = run_in(&chain, &state, &args);
    assert_eq!(third.code, 0, "{}", third.stderr);
    assert_ne!(digest(&first), digest(&third), "a changed seed kept its identity");
}

/// SIGTERM (as Ctrl-C) to a `build` whose step sleeps: the local backend
/// sees the run cancelled, kills the step's sandbox, and the process exits
/// 130 within seconds, leaving no receipt for the step and no process of it.
#[test]
fn a_cancelled_run_stops_its_local_step_and_exits_130() {
    let m = common::mini::Mini::new();
    m.add("stage0/nap.kdl", "step \"nap\" {\n    root \"seed\"\n    script \"echo napping-for-bootstrap; sleep 600\"\n    output \"/nothing\"\n}\n");
    let mut child = m.spawn(&["-v"], &["build", "nap", "--seed", "busybox"]);
    // Its log line says the step runs.
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    while !seen.contains("napping-for-bootstrap") {
        let mut line = String::new();
        assert!(std::io::BufRead::read_line(&mut stderr, &mut line).unwrap() > 0, "the step never ran: {seen}");
        seen.push_str(&line);
    }
    let sent = std::time::Instant::now();
    rustix::process::kill_process(rustix::process::Pid::from_child(&child), rustix::process::Signal::TERM).unwrap();
    let status = child.wait().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    assert_eq!(status.code(), Some(130), "{seen}{rest}");
    assert!(sent.elapsed() < std::time::Duration::from_secs(30), "took {:?} to stop", sent.elapsed());
    assert!(rest.contains("interrupted: stopping 1 running step(s)"), "{rest}");
    // Nothing of the step runs on, and nothing claims it ran.
    let sleeping = fs::read_dir("/proc").unwrap().filter_map(|e| fs::read_to_string(e.unwrap().path().join("cmdline")).ok()).any(|c| c == "sleep\u{0}600\u{0}");
    assert!(!sleeping, "the step's sleep outlived the run");
    assert_eq!(m.receipts(), 0, "a receipt was written for an interrupted step");
}
