//! `audit` and `trace` on the mini chain verified with both test seeds:
//! the reports as insta snapshots (digests and paths of this machine
//! redacted), the JSON shapes, and the paging mode driven through a
//! pseudo-terminal by `script` (util-linux).

mod common;

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::mini::Mini;
use common::{redact, seeds};

fn verified() -> Mini {
    let m = Mini::new();
    let r = m.run(&["verify", "stage2"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    m
}

/// Redacts digests, the state directory, the seeds' directory and the
/// chain's (where the sources' distfiles are).
fn shown(m: &Mini, s: &str) -> String {
    let s = s.replace(&seeds().display().to_string(), "[SEEDS]").replace(&m.chain.display().to_string(), "[CHAIN]");
    redact(&s, &m.state)
}

#[test]
fn audit_reports_every_step_as_text_markdown_and_json() {
    let m = verified();
    let r = m.run(&["audit"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    for step in ["hex0", "hello-run", "word-count", "greet-scratch", "assemble-upper", "shout", "bundle", "check-bundle"] {
        assert!(r.stdout.contains(&format!("── {step} (")), "no {step} in\n{}", r.stdout);
    }
    insta::assert_snapshot!("audit_stage0", shown(&m, &m.run(&["audit", "stage0"]).stdout));
    insta::assert_snapshot!("audit_step_markdown", shown(&m, &m.run(&["audit", "greet-scratch", "--format", "markdown"]).stdout));
    let v: serde_json::Value = serde_json::from_str(&m.run(&["audit", "stage1", "--format", "json"]).stdout).unwrap();
    let steps = v["stages"][0]["steps"].as_array().unwrap();
    assert_eq!(v["stages"].as_array().unwrap().len(), 1);
    assert_eq!(steps.len(), 3);
    let observed = steps[0]["observed"].as_array().unwrap();
    assert_eq!(observed.len(), 2, "one digest per seed");
    assert_eq!(observed[0]["digest"], observed[1]["digest"]);
    // A target that is neither a stage nor a step.
    let r = m.run(&["audit", "stage9"]);
    assert_eq!(r.code, 1);
}

#[test]
fn trace_follows_an_output_down_to_sources_and_the_seed() {
    let m = verified();
    let r = m.run(&["trace", "dist/SHA256SUMS"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    insta::assert_snapshot!("trace_bundle", shown(&m, &r.stdout));
    // By layer digest and by file digest, the same step.
    let v: serde_json::Value = serde_json::from_str(&m.run(&["--json", "trace", "/out/bin/hello"]).stdout).unwrap();
    let node = &v["matches"][0]["node"];
    assert_eq!(node["step"], "hex0");
    assert_eq!(node["sources"][0]["name"], "hex-programs");
    assert_eq!(node["root"]["kind"], "seed");
    let layer = node["output"].as_str().unwrap();
    let by_layer: serde_json::Value = serde_json::from_str(&m.run(&["--json", "trace", layer]).stdout).unwrap();
    assert_eq!(by_layer["matches"][0]["node"]["step"], "hex0");
    let by_file = m.run(&["trace", "sha256:595414242916aac5fe60bad67a65908b466084ebc5d74c88590626fb112d06ec"]);
    assert!(by_file.stdout.starts_with("out/hello.txt: file"), "{}", by_file.stdout);
    assert!(by_file.stdout.contains("made by hello-run (stage0) on busybox"), "{}", by_file.stdout);
    // The other lineage on request; a scratch root says so.
    let other = m.run(&["trace", "out/greeting-a", "--seed", "debian"]);
    assert!(other.stdout.contains("greet-scratch (stage1) on debian"), "{}", other.stdout);
    assert!(other.stdout.contains("root: scratch"), "{}", other.stdout);
    // Nothing made it.
    let r = m.run(&["trace", "out/nothing"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("bootstrap::trace::not_found"), "{}", r.stderr);
    let r = m.run(&["trace", "out/bin/hello", "--seed", "alpine"]);
    assert_eq!(r.code, 1);
}

/// Reads a child's output into a shared buffer.
fn collect(mut from: impl Read + Send + 'static) -> Arc<Mutex<String>> {
    let buf = Arc::new(Mutex::new(String::new()));
    let b = buf.clone();
    std::thread::spawn(move || {
        let mut chunk = [0u8; 4096];
        while let Ok(n) = from.read(&mut chunk) {
            if n == 0 {
                break;
            }
            b.lock().unwrap().push_str(&String::from_utf8_lossy(&chunk[..n]));
        }
    });
    buf
}

/// Waits until the output holds `marker` `times` times.
fn wait_for(buf: &Arc<Mutex<String>>, marker: &str, times: usize) {
    let start = Instant::now();
    while buf.lock().unwrap().matches(marker).count() < times {
        assert!(start.elapsed() < Duration::from_secs(30), "no {marker:?} ×{times} in:\n{}", buf.lock().unwrap());
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn audit_step_pages_through_a_pseudo_terminal() {
    let m = verified();
    let cmd = format!(
        "{} -C {} --state {} audit stage0 --step",
        env!("CARGO_BIN_EXE_bootstrap"),
        m.chain.display(),
        m.state.display()
    );
    let mut child = Command::new("script")
        .args(["-qfec", &cmd, "/dev/null"])
        .env("NO_COLOR", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("script (util-linux) runs");
    let out = collect(child.stdout.take().unwrap());
    let mut keys = child.stdin.take().unwrap();
    let mut press = |k: &[u8]| {
        keys.write_all(k).unwrap();
        keys.flush().unwrap();
    };
    wait_for(&out, "[1 of 3]", 1);
    assert!(out.lock().unwrap().contains("── hex0 (stage0, 1 of 3)"));
    press(b"\r");
    wait_for(&out, "[2 of 3]", 1);
    press(b"s");
    wait_for(&out, "[2 of 3]", 2);
    assert!(out.lock().unwrap().contains("   14 │ step \"hello-run\" {"), "{}", out.lock().unwrap());
    press(b"b");
    wait_for(&out, "[1 of 3]", 2);
    press(b"b");
    wait_for(&out, "this is the first step", 1);
    press(b"q");
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}: {}", out.lock().unwrap());
    let text = out.lock().unwrap().clone();
    // Echo was off: the keys pressed were not written back.
    assert!(!text.contains("\r\ns\r\n"), "{text}");
}
