//! `bootstrap verify`, `status`, `snapshot` and `diff` on the mini chain
//! (tests/fixtures/mini) with both real test seeds.

mod common;

use std::collections::BTreeMap;
use std::fs;

use common::{Run, redact, run_in, seeds};
use common::mini::Mini;

fn json(r: &Run) -> serde_json::Value {
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: stdout {} stderr {}", r.stdout, r.stderr))
}

/// step → verdict, over every stage of a verify --json report.
fn verdicts(v: &serde_json::Value) -> BTreeMap<String, String> {
    v["stages"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["steps"].as_array().unwrap().iter())
        .map(|s| (s["step"].as_str().unwrap().to_string(), s["verdict"].as_str().unwrap().to_string()))
        .collect()
}

/// The JSON report with digests, durations and times replaced.
fn redact_json(v: &serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::String(s) if s.starts_with("blake3:") || s.starts_with("sha256:") => "[DIGEST]".into(),
        serde_json::Value::Array(a) => a.iter().map(redact_json).collect(),
        serde_json::Value::Object(o) => o
            .iter()
            .map(|(k, x)| {
                // Sizes of receipts vary with the durations written in them.
                let x = if matches!(k.as_str(), "duration_ms" | "finished" | "receipt_bytes") { serde_json::Value::from(0) } else { redact_json(x) };
                (k.clone(), x)
            })
            .collect(),
        other => other.clone(),
    }
}

#[test]
fn a_clean_chain_verifies_every_stage_and_a_rerun_runs_nothing() {
    let m = Mini::new();
    let r = m.run(&["verify", "stage2"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    insta::assert_snapshot!("verified_report", redact(&r.stdout, &m.state));
    // stderr is not a terminal here: progress comes as lines, one when a
    // step starts on a seed and one when it settles, with its duration.
    assert!(r.stderr.lines().any(|l| l == "  running  shout on busybox"), "{}", r.stderr);
    assert!(r.stderr.lines().any(|l| l.starts_with("  built    shout on debian (") && l.ends_with("s)")), "{}", r.stderr);
    let receipts = m.receipts();
    assert_eq!(receipts, 16, "one receipt per step and seed");

    let r = m.run(&["--json", "verify", "stage2"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v = json(&r);
    assert!(verdicts(&v).values().all(|x| x == "verified"));
    // Nothing ran: every seed's run came from its receipt, and no receipt was added.
    let outcomes: Vec<&str> = v["stages"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["steps"].as_array().unwrap().iter())
        .flat_map(|s| s["runs"].as_array().unwrap().iter())
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes.len(), 16);
    assert!(outcomes.iter().all(|o| *o == "cached"), "{outcomes:?}");
    assert_eq!(m.receipts(), receipts);
    insta::assert_snapshot!("verified_json", serde_json::to_string_pretty(&redact_json(&v)).unwrap());

    let status = m.run(&["status"]);
    assert_eq!(status.code, 0);
    assert!(status.stdout.lines().filter(|l| l.contains(" verified ")).count() == 3, "{}", status.stdout);

    // The snapshot: same results, same bytes.
    let s = m.run(&["snapshot", "stage1"]);
    assert_eq!(s.code, 0, "{}", s.stderr);
    let first = fs::read(m.chain.join("snapshots/stage1.kdl")).unwrap();
    let mode = std::os::unix::fs::PermissionsExt::mode(&fs::metadata(m.chain.join("snapshots/stage1.kdl")).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o644, "a snapshot is for the repository: world-readable");
    fs::remove_file(m.chain.join("snapshots/stage1.kdl")).unwrap();
    assert_eq!(m.run(&["snapshot", "stage1"]).code, 0);
    assert_eq!(fs::read(m.chain.join("snapshots/stage1.kdl")).unwrap(), first);
    let text = String::from_utf8(first).unwrap();
    assert!(text.contains("file \"out/bin/upper\" sha256=\"11f09c3da7c0f0dc05f6fa2b0fb532a279362bcf95b291f124bc271441eb0c29\""), "{text}");
    // With the snapshot in place the stage still verifies.
    assert_eq!(m.run(&["verify", "stage1"]).code, 0);
}

#[test]
fn random_bytes_are_a_mismatch_that_blocks_dependents_and_locks_the_next_stage() {
    let m = Mini::new();
    m.add(
        "stage1/noise.kdl",
        "step \"noise\" {\n    root \"seed\"\n    needs \"hex0\"\n    script \"mkdir -p /out/noise && head -c 16 /dev/urandom > /out/noise/bytes\"\n    output \"/out/noise\"\n}\n\
         step \"after-noise\" {\n    root \"seed\"\n    needs \"noise\"\n    script \"cp /out/noise/bytes /out/copy\"\n    output \"/out/copy\"\n}\n",
    );
    let r = m.run(&["--json", "verify", "stage2"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    let v = json(&r);
    let got = verdicts(&v);
    assert_eq!(got["noise"], "mismatch");
    assert_eq!(got["after-noise"], "blocked");
    assert_eq!(got["shout"], "verified", "independent steps keep going");
    assert_eq!(v["locked"], serde_json::json!(["stage2"]));
    assert!(!got.contains_key("bundle"), "stage2 ran");
    let r = m.run(&["verify", "stage2"]);
    assert_eq!(r.code, 2);
    insta::assert_snapshot!("mismatch_stderr", redact(&r.stderr, &m.state));
    // Snapshots are refused for a stage that is not verified.
    let s = m.run(&["snapshot", "stage1"]);
    assert_eq!(s.code, 3, "{}", s.stderr);
}

#[test]
fn a_seed_leak_is_a_mismatch_and_diff_lists_the_file() {
    let m = Mini::new();
    m.add(
        "stage0/leak.kdl",
        "step \"leak\" {\n    root \"seed\"\n    script \"mkdir -p /out && ls /bin > /out/bin-list && echo same > /out/same\"\n    output \"/out\"\n}\n",
    );
    let r = m.run(&["verify", "stage0"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stdout.contains("  leak  ") && r.stdout.contains("mismatch"), "{}", r.stdout);
    let d = m.run(&["diff", "leak"]);
    assert_eq!(d.code, 2, "{}", d.stderr);
    assert!(d.stdout.contains("content   out/bin-list"), "{}", d.stdout);
    assert!(!d.stdout.contains("out/same"), "{}", d.stdout);
    let d = m.run(&["diff", "hex0"]);
    assert_eq!(d.code, 0, "{}", d.stderr);
    assert!(d.stdout.contains("no differences"));
}

#[test]
fn rebuild_runs_every_step_again_and_a_step_that_does_not_repeat_itself_is_nondeterministic() {
    let m = Mini::new();
    assert_eq!(m.run(&["verify", "stage0"]).code, 0);
    // Everything runs again, gives the same bytes, and stays verified.
    let r = m.run(&["--json", "verify", "stage0", "--rebuild"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v = json(&r);
    for step in v["stages"][0]["steps"].as_array().unwrap() {
        for run in step["runs"].as_array().unwrap() {
            assert_eq!(run["outcome"], "built", "{step}");
            assert_eq!(run["earlier_output"], run["output"], "{step}");
        }
    }
    // Without --rebuild, the cache again.
    let r = m.run(&["--json", "verify", "stage0"]);
    assert_eq!(json(&r)["stages"][0]["steps"][0]["runs"][0]["outcome"], "cached");

    // A step that writes random bytes: the seeds disagree, and run again
    // each seed disagrees with itself, which says more.
    m.add(
        "stage0/noise.kdl",
        "step \"noise\" {\n    root \"seed\"\n    script \"mkdir -p /out/noise && echo same > /out/noise/same && head -c 16 /dev/urandom > /out/noise/bytes\"\n    output \"/out/noise\"\n}\n",
    );
    assert_eq!(verdicts(&json(&m.run(&["--json", "verify", "stage0"])))["noise"], "mismatch");
    let r = m.run(&["--json", "verify", "stage0", "--rebuild"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    let v = json(&r);
    assert_eq!(verdicts(&v)["noise"], "nondeterministic");
    assert_eq!(verdicts(&v)["hex0"], "verified");
    assert_eq!(v["stages"][0]["verdict"], "nondeterministic");
    let noise = v["stages"][0]["steps"].as_array().unwrap().iter().find(|s| s["step"] == "noise").unwrap().clone();
    let reasons = noise["reasons"].as_array().unwrap();
    assert_eq!(reasons.len(), 2, "{noise}");
    assert!(reasons[0].as_str().unwrap().contains("when run before with the same inputs"), "{noise}");
    // Both runs' layers are kept, and diff compares them.
    let d = m.run(&["diff", "noise"]);
    assert_eq!(d.code, 2, "{}", d.stderr);
    assert!(d.stdout.starts_with("noise: a = busybox (before) (blake3:"), "{}", d.stdout);
    assert!(d.stdout.contains("content   out/noise/bytes") && !d.stdout.contains("out/noise/same"), "{}", d.stdout);
    assert_eq!(m.run(&["store", "gc"]).code, 0);
    assert_eq!(m.run(&["diff", "noise"]).code, 2, "store gc kept the earlier run's layer");
    let status = m.run(&["status"]);
    assert!(status.stdout.contains("nondeterministic"), "{}", status.stdout);
}

/// diffoscope, when installed (`.ci/run` installs it and sets
/// BOOTSTRAP_REQUIRE_DIFFOSCOPE=1, which makes its absence a failure).
fn have_diffoscope() -> bool {
    let found = std::process::Command::new("diffoscope").arg("--version").output().is_ok_and(|o| o.status.success());
    if !found {
        assert!(std::env::var("BOOTSTRAP_REQUIRE_DIFFOSCOPE").as_deref() != Ok("1"), "BOOTSTRAP_REQUIRE_DIFFOSCOPE=1 but diffoscope is not installed");
        eprintln!("skipped: diffoscope is not installed");
    }
    found
}

#[test]
fn diffoscope_looks_only_at_the_files_that_differ_and_its_json_joins_the_document() {
    if !have_diffoscope() {
        return;
    }
    let m = Mini::new();
    m.add(
        "stage0/leak.kdl",
        "step \"leak\" {\n    root \"seed\"\n    script \"mkdir -p /out/sub && ls /bin > /out/sub/bin-list && echo same > /out/same\"\n    output \"/out\"\n}\n",
    );
    assert_eq!(m.run(&["verify", "stage0"]).code, 2);
    let d = m.run(&["diff", "leak", "--diffoscope"]);
    assert_eq!(d.code, 2, "{}", d.stderr);
    assert!(d.stdout.contains("diffoscope a/out/sub/bin-list b/out/sub/bin-list:"), "{}", d.stdout);
    assert!(d.stdout.contains("--- a/out/sub/bin-list") && d.stdout.contains("+++ b/out/sub/bin-list"), "{}", d.stdout);
    // Neither the equal file, nor any directory, nor mtimes.
    for noise in ["same", "a/out/sub\n", "stat {}", "Modify:", "mtime"] {
        assert!(!d.stdout.contains(noise), "`{noise}` in\n{}", d.stdout);
    }
    assert!(!d.stdout.contains(&m.state.display().to_string()), "store paths in\n{}", d.stdout);
    let j = m.run(&["--json", "diff", "leak", "--diffoscope"]);
    assert_eq!(j.code, 2, "{}", j.stderr);
    let v: serde_json::Value = serde_json::from_str(&j.stdout).expect("one JSON document on stdout");
    let reports = v["diffoscope"].as_array().unwrap();
    assert_eq!(reports.len(), 1, "{v}");
    assert_eq!(reports[0]["path"], "out/sub/bin-list");
    assert_eq!(reports[0]["report"]["source1"], "a/out/sub/bin-list");
    assert_eq!(reports[0]["report"]["source2"], "b/out/sub/bin-list");
    assert!(reports[0]["report"]["unified_diff"].is_string(), "{v}");
}

#[test]
fn a_changed_step_makes_its_stage_stale_and_reruns_only_it_and_its_dependents() {
    let m = Mini::new();
    assert_eq!(m.run(&["-q", "verify", "stage2"]).code, 0);
    m.edit("stage1/programs.kdl", "> /out/COUNTS.txt\"", "> /out/COUNTS.txt; true\"");
    let status = m.run(&["status"]);
    let line = |stage: &str| status.stdout.lines().find(|l| l.trim_start().starts_with(stage)).unwrap().to_string();
    assert!(line("stage0").contains("verified"), "{}", status.stdout);
    assert!(line("stage1").contains("stale"), "{}", status.stdout);
    assert!(line("stage2").contains("stale"), "{}", status.stdout);
    let r = m.run(&["--json", "verify", "stage2"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v = json(&r);
    let ran: Vec<String> = v["stages"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["steps"].as_array().unwrap().iter())
        .filter(|s| s["runs"].as_array().unwrap().iter().any(|r| r["outcome"] == "built"))
        .map(|s| s["step"].as_str().unwrap().to_string())
        .collect();
    // shout's bytes did not change, so bundle and check-bundle come from cache.
    assert_eq!(ran, ["shout"]);
}

#[test]
fn a_wrong_pin_or_snapshot_is_unexpected() {
    let m = Mini::new();
    m.edit("stage0/hex.kdl", "sha256=\"5954", "sha256=\"0954");
    let r = m.run(&["--json", "verify", "stage0"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    let v = json(&r);
    assert_eq!(verdicts(&v)["hello-run"], "unexpected");
    let reasons = v["stages"][0]["steps"].as_array().unwrap().iter().find(|s| s["step"] == "hello-run").unwrap()["reasons"].to_string();
    assert!(reasons.contains("pinned to sha256:0954"), "{reasons}");

    // A snapshot that disagrees with what the seeds agree on.
    let m = Mini::new();
    assert_eq!(m.run(&["-q", "verify", "stage0"]).code, 0);
    assert_eq!(m.run(&["snapshot", "stage0"]).code, 0);
    let p = m.chain.join("snapshots/stage0.kdl");
    let text = fs::read_to_string(&p).unwrap();
    let at = text.find("step \"word-count\" tree=\"blake3:").unwrap() + "step \"word-count\" tree=\"blake3:".len();
    let mut bytes = text.into_bytes();
    bytes[at] = if bytes[at] == b'0' { b'1' } else { b'0' };
    fs::write(&p, bytes).unwrap();
    let r = m.run(&["verify", "stage0"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stdout.contains("snapshots/stage0.kdl has blake3:"), "{}", r.stdout);
    // A snapshot that is not one is an error with the file named.
    fs::write(&p, "snapshot \"stage0\" {\n    step \"x\"\n}\n").unwrap();
    let r = m.run(&["verify", "stage0"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("snapshots/stage0.kdl"), "{}", r.stderr);
}

#[test]
fn fewer_than_two_seeds_is_blocked() {
    let m = Mini::new();
    let chain = m.chain.to_str().unwrap();
    let busybox = format!("busybox={}", seeds().join("busybox").display());
    let distfiles = m.chain.join("distfiles");
    let r = run_in(&m.chain, &m.state, &["-C", chain, "--offline", "--distfiles", distfiles.to_str().unwrap(), "verify", "stage0", "--seed", &busybox]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(common::says(&r.stderr, "seed `debian` has no `rootfs` in the chain"), "{}", r.stderr);
    assert!(common::says(&r.stderr, "`--seed debian=DIR`"), "{}", r.stderr);
    assert!(common::says(&r.stderr, "error: 1 of 2 seeds cannot be run on (this run needs 2); nothing was run."), "{}", r.stderr);
}

#[test]
fn a_killed_verify_gives_the_same_verdicts_when_run_again() {
    let m = Mini::new();
    m.edit("stage0/words.kdl", "mkdir -p /out\n", "mkdir -p /out\n        sleep 3\n");
    let distfiles = m.chain.join("distfiles");
    let busybox = format!("busybox={}", seeds().join("busybox").display());
    let debian = format!("debian={}", seeds().join("debian").display());
    let mut engine = std::process::Command::new(env!("CARGO_BIN_EXE_bootstrap"))
        .args(["-q", "-C", m.chain.to_str().unwrap(), "--state", m.state.to_str().unwrap(), "--offline", "--distfiles"])
        .arg(&distfiles)
        .args(["--seed", &busybox, "--seed", &debian, "verify", "stage2"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Kill it once some step has a receipt (the run is under way).
    let started = std::time::Instant::now();
    while m.receipts() == 0 {
        assert!(started.elapsed() < std::time::Duration::from_secs(60));
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    engine.kill().unwrap();
    engine.wait().unwrap();
    let verify = m.run(&["store", "verify"]);
    assert_eq!(verify.code, 0, "{}{}", verify.stdout, verify.stderr);
    let again = m.run(&["--json", "verify", "stage2"]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(verdicts(&json(&again)).values().all(|v| v == "verified"));
    let fresh = Mini::new();
    fresh.edit("stage0/words.kdl", "mkdir -p /out\n", "mkdir -p /out\n        sleep 3\n");
    let clean = fresh.run(&["--json", "verify", "stage2"]);
    assert_eq!(verdicts(&json(&again)), verdicts(&json(&clean)));
    // The same outputs, step by step and seed by seed.
    let outputs = |v: &serde_json::Value| -> Vec<String> {
        v["stages"].as_array().unwrap().iter().flat_map(|s| s["steps"].as_array().unwrap().iter())
            .flat_map(|s| s["runs"].as_array().unwrap().iter().map(|r| format!("{}@{}={}", "", r["seed"], r["output"])).collect::<Vec<_>>())
            .collect()
    };
    assert_eq!(outputs(&json(&again)), outputs(&json(&clean)));
    assert_eq!(m.run(&["store", "verify"]).code, 0);
}

#[test]
fn a_lost_layer_or_receipt_is_rebuilt_rather_than_trusted() {
    let m = Mini::new();
    assert_eq!(m.run(&["-q", "verify", "stage1"]).code, 0);
    // Once `layers/` is two seconds old, a cached run notes that every
    // layer was there (and later runs skip reading it while it is unchanged).
    std::thread::sleep(std::time::Duration::from_millis(2500));
    // A layer gone (say, `store verify --remove` found it damaged).
    let v = json(&m.run(&["--json", "verify", "stage1"]));
    let hex0 = v["stages"][0]["steps"].as_array().unwrap().iter().find(|s| s["step"] == "hex0").unwrap()["runs"][0]["output"]
        .as_str()
        .unwrap()
        .trim_start_matches("blake3:")
        .to_string();
    fs::remove_dir_all(m.state.join("layers").join(&hex0)).unwrap();
    let r = m.run(&["--json", "verify", "stage1"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v = json(&r);
    let runs = &v["stages"][0]["steps"].as_array().unwrap().iter().find(|s| s["step"] == "hex0").unwrap()["runs"];
    assert!(runs.as_array().unwrap().iter().all(|r| r["outcome"] == "built"), "{runs}");
    assert!(m.state.join("layers").join(&hex0).is_dir());

    // A step receipt gone: snapshot refuses, and the next verify recreates it.
    fs::remove_dir_all(m.state.join("receipts/steps/shout")).unwrap();
    let s = m.run(&["snapshot", "stage1"]);
    assert_eq!(s.code, 3, "{}", s.stderr);
    assert!(s.stderr.contains("receipt of step `shout`"), "{}", s.stderr);
    assert_eq!(m.run(&["-q", "verify", "stage1"]).code, 0);
    assert_eq!(m.run(&["snapshot", "stage1"]).code, 0);
}

#[test]
fn variations_on_the_second_lineage_catch_build_paths_and_hostnames() {
    let m = Mini::new();
    m.edit("chain/chain.kdl", "    source-date-epoch 0\n", "    source-date-epoch 0\n    vary \"build-path\" \"hostname\"\n");
    // The mini chain depends on neither: still verified.
    let r = m.run(&["verify", "stage2"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    m.add(
        "stage0/leaks.kdl",
        "step \"path-leak\" {\n    root \"seed\"\n    source \"hex-programs\"\n    workdir \"/src/hex-programs\"\n    script \"pwd -P > built-in\"\n    output \"built-in\"\n}\n\
         step \"host-leak\" {\n    root \"seed\"\n    script \"mkdir -p /out && cat /proc/sys/kernel/hostname > /out/host\"\n    output \"/out/host\"\n}\n",
    );
    let r = m.run(&["--json", "verify", "stage0"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    let got = verdicts(&json(&r));
    assert_eq!(got["path-leak"], "mismatch");
    assert_eq!(got["host-leak"], "mismatch");
    assert_eq!(got["hex0"], "verified");
    let d = m.run(&["diff", "path-leak"]);
    assert!(d.stdout.contains("src/hex-programs/built-in"), "{}", d.stdout);

    // Without `vary` the same steps agree: the variation is what caught them.
    m.edit("chain/chain.kdl", "    vary \"build-path\" \"hostname\"\n", "");
    let r = m.run(&["--json", "verify", "stage0"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
}

#[test]
fn a_failed_step_shows_its_log_tail_and_path_per_seed() {
    let m = Mini::new();
    m.add(
        "stage0/fails.kdl",
        "step \"fails\" {\n    root \"seed\"\n    script \"echo first line; echo 'emit_move is not a defined symbol' >&2; exit 3\"\n    output \"/out\"\n}\n",
    );
    let r = m.run(&["verify", "stage0"]);
    assert_eq!(r.code, 4, "{}\n{}", r.stdout, r.stderr);
    for seed in ["busybox", "debian"] {
        let head = format!("      last lines of the log on `{seed}`:\n");
        let at = r.stdout.find(&head).unwrap_or_else(|| panic!("no log tail for {seed}:\n{}", r.stdout));
        let block: Vec<&str> = r.stdout[at + head.len()..].lines().take(3).collect();
        assert_eq!(block[0], "        | first line", "{}", r.stdout);
        assert_eq!(block[1], "        | emit_move is not a defined symbol", "{}", r.stdout);
        let path = block[2].strip_prefix("      whole log: ").unwrap_or_else(|| panic!("{}", r.stdout));
        assert!(path.starts_with(m.state.to_str().unwrap()), "{path}");
        let log = fs::read_to_string(path).unwrap();
        assert!(log.contains("emit_move is not a defined symbol"), "{log}");
    }
}

/// The first regular file under `dir`, in name order.
fn first_file(dir: &std::path::Path) -> std::path::PathBuf {
    let mut entries: Vec<_> = fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    entries.sort();
    for p in entries {
        let m = fs::symlink_metadata(&p).unwrap();
        if m.is_file() {
            return p;
        }
        if m.is_dir() {
            return first_file(&p);
        }
    }
    panic!("no file under {}", dir.display())
}

#[test]
fn a_byte_flipped_in_a_verified_layer_is_caught_everywhere_it_is_relied_on() {
    let m = Mini::new();
    let r = m.run(&["--json", "verify", "stage0"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v = json(&r);
    let step = v["stages"][0]["steps"].as_array().unwrap().iter().find(|s| s["step"] == "hex0").unwrap().clone();
    let layer = step["runs"][0]["output"].as_str().unwrap().strip_prefix("blake3:").unwrap().to_string();
    let file = first_file(&m.state.join("layers").join(&layer));
    let original = fs::read(&file).unwrap();
    // Once the layers are two seconds old a cached verify remembers their
    // stat fingerprints: the flip below must show through them.
    std::thread::sleep(std::time::Duration::from_millis(2500));
    assert_eq!(m.run(&["verify", "stage0"]).code, 0);
    assert!(m.state.join("index/layer-stat").join(&layer).is_file(), "no fingerprint was remembered");
    let mut flipped = original.clone();
    flipped[0] ^= 1;
    fs::write(&file, &flipped).unwrap();

    // status says so, without the store lock.
    let st = m.run(&["status"]);
    assert!(st.stdout.contains("damaged (run verify)"), "{}", st.stdout);

    // What relies on the verified stage refuses it.
    let out = m.chain.join("image");
    let e = m.run(&["export", "stage0", "--oci", out.to_str().unwrap()]);
    assert_eq!(e.code, 2, "{}", e.stderr);
    assert!(e.stderr.contains("is damaged: its files now hash to"), "{}", e.stderr);
    assert!(!out.join("index.json").exists());
    let a = m.run(&["attest", "stage0"]);
    assert_eq!(a.code, 3, "the stage receipt was dropped by export: {}", a.stderr);

    // verify notices, moves the layer aside and rebuilds it: the stage verifies again.
    let r = m.run(&["verify", "stage0"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("is damaged") && r.stderr.contains("runs again"), "{}", r.stderr);
    assert_eq!(fs::read(&file).unwrap(), original, "the rebuilt layer holds the verified bytes");
    let e = m.run(&["export", "stage0", "--oci", out.to_str().unwrap()]);
    assert_eq!(e.code, 0, "{}", e.stderr);

    // A step receipt deleted behind verify's back is noticed too: the step runs again.
    let receipts = m.receipts();
    let dir = m.state.join("receipts/steps/hex0/busybox");
    let gone = fs::read_dir(&dir).unwrap().next().unwrap().unwrap().path();
    fs::remove_file(&gone).unwrap();
    let r = m.run(&["--json", "verify", "stage0"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v = json(&r);
    let hex0 = v["stages"][0]["steps"].as_array().unwrap().iter().find(|s| s["step"] == "hex0").unwrap().clone();
    assert!(hex0["runs"].as_array().unwrap().iter().any(|r| r["outcome"] == "built"), "{hex0}");
    assert!(gone.exists());
    assert_eq!(m.receipts(), receipts);

    // So is one cut short.
    let text = fs::read(&gone).unwrap();
    fs::write(&gone, &text[..text.len() / 2]).unwrap();
    let r = m.run(&["--json", "verify", "stage0"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v = json(&r);
    let hex0 = v["stages"][0]["steps"].as_array().unwrap().iter().find(|s| s["step"] == "hex0").unwrap().clone();
    assert!(hex0["runs"].as_array().unwrap().iter().any(|r| r["outcome"] == "built"), "{hex0}");
    assert!(serde_json::from_slice::<serde_json::Value>(&fs::read(&gone).unwrap()).is_ok(), "the receipt was written anew");
}

#[test]
fn a_step_that_prints_without_end_keeps_only_its_logs_tail() {
    let m = Mini::new();
    // 8 MiB of numbered lines, then a last word, then failure.
    m.add(
        "stage0/loud.kdl",
        "step \"loud\" {\n    root \"seed\"\n    script \"i=0; while [ $i -lt 4096 ]; do head -c 2048 /dev/zero | tr '\\\\0' x; echo \\\" $i\\\"; i=$((i+1)); done; echo the last word; exit 1\"\n    output \"/out\"\n}\n",
    );
    let r = m.run(&["--max-log-size", "1M", "verify", "stage0"]);
    assert_eq!(r.code, 4, "{}\n{}", r.stdout, r.stderr);
    let path = r.stdout.lines().find_map(|l| l.trim().strip_prefix("whole log: ")).unwrap_or_else(|| panic!("{}", r.stdout));
    let log = fs::read(path).unwrap();
    assert!(log.len() <= (1 << 20) + 200 && log.len() >= (1 << 19), "{} bytes kept", log.len());
    let text = String::from_utf8_lossy(&log);
    assert!(text.starts_with("[bootstrap: the first "), "{}", &text[..100]);
    assert!(text.trim_end().ends_with("the last word"), "{}", &text[text.len() - 100..]);
    assert!(r.stdout.contains("| the last word"), "{}", r.stdout);
    // A size that is not one is a usage error.
    assert_eq!(m.run(&["--max-log-size", "lots", "check"]).code, 1);
}

#[test]
fn a_steps_tmp_is_bounded() {
    let m = Mini::new();
    m.add(
        "stage0/fill.kdl",
        "step \"fill\" {\n    root \"seed\"\n    script \"head -c 20000000 /dev/zero > /tmp/big && mkdir /out\"\n    output \"/out\"\n}\n",
    );
    let r = m.run(&["--max-tmp-size", "8M", "verify", "stage0"]);
    assert_eq!(r.code, 4, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("No space left on device") || r.stdout.contains("No space left"), "{}", r.stdout);
    let r = m.run(&["--max-tmp-size", "64M", "verify", "stage0"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
}

#[test]
fn a_steps_processes_are_bounded() {
    let m = Mini::new();
    m.add(
        "stage0/many.kdl",
        "step \"many\" {\n    root \"seed\"\n    script \"i=0; while [ $i -lt 100 ]; do sleep 30 & i=$((i+1)); done; mkdir /out\"\n    output \"/out\"\n}\n",
    );
    let r = m.run(&["--max-processes", "40", "verify", "stage0"]);
    assert_eq!(r.code, 4, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("fork") || r.stdout.contains("Resource temporarily unavailable") || r.stdout.contains("Cannot fork"), "{}", r.stdout);
    // Whatever it started is gone with it.
    let ps = std::process::Command::new("ps").args(["-eo", "args"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&ps.stdout).lines().any(|l| l == "sleep 30"), "left running");
}

#[test]
fn a_steps_memory_is_bounded_where_a_memory_cgroup_can_be_made() {
    if !std::path::Path::new("/sys/fs/cgroup/memory/memory.limit_in_bytes").exists() && !std::path::Path::new("/sys/fs/cgroup/memory").is_dir() {
        eprintln!("skipped: no cgroup v1 memory controller here (the fallback bounds no memory; README says so)");
        return;
    }
    let m = Mini::new();
    m.add(
        "stage0/hungry.kdl",
        "step \"hungry\" {\n    root \"seed\"\n    script \"dd if=/dev/zero of=/dev/null bs=256M count=1 && mkdir /out\"\n    output \"/out\"\n}\n",
    );
    let r = m.run(&["--max-memory", "64M", "verify", "stage0"]);
    assert_eq!(r.code, 4, "{}\n{}", r.stdout, r.stderr);
    let r = m.run(&["--max-memory", "1G", "verify", "stage0"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
}

#[test]
fn a_step_is_killed_before_it_takes_the_last_of_the_disk() {
    let m = Mini::new();
    m.add("stage0/slow.kdl", "step \"slow\" {\n    root \"seed\"\n    script \"sleep 5; mkdir /out\"\n    output \"/out\"\n}\n");
    // More free space than any disk here has: the guard fires at its first look.
    let started = std::time::Instant::now();
    let r = m.run(&["--min-free-space", "1000000G", "verify", "stage0"]);
    assert_eq!(r.code, 4, "{}\n{}", r.stdout, r.stderr);
    let said = r.stdout.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(said.contains("disk fell below") && said.contains("--min-free-space"), "{}", r.stdout);
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
}

#[test]
fn what_a_step_writes_over_its_inputs_is_bounded() {
    let m = Mini::new();
    m.add(
        "stage0/writer.kdl",
        "step \"writer\" {\n    root \"seed\"\n    script \"mkdir /out; head -c 30000000 /dev/zero > /out/big; sleep 7\"\n    output \"/out\"\n}\n",
    );
    let r = m.run(&["--max-scratch-size", "8M", "verify", "stage0"]);
    assert_eq!(r.code, 4, "{}\n{}", r.stdout, r.stderr);
    let said = r.stdout.split_whitespace().collect::<Vec<_>>().join(" ");
    // The Debian seed's root is an overlay, measured and killed; the busybox
    // seed's is copied into a tmpfs of that much room, which fills.
    assert!(said.contains("--max-scratch-size"), "{}", r.stdout);
    assert!(said.contains("failed on `busybox`: command 1 exited with code"), "{}", r.stdout);
}
