//! `bootstrap fetch` against a real HTTP server on 127.0.0.1: good, tampered,
//! missing, cut-off and slow responses; distfiles and --offline; SIGKILL
//! mid-download and resume; two fetches on one store; `store verify`/`gc`.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::http::{Behavior, Server};
use common::{Run, Src, chain, payload, run_in, sha};

fn fetch(dir: &Path, extra: &[&str]) -> Run {
    let mut args = vec!["fetch"];
    args.extend_from_slice(extra);
    run_in(dir, &dir.join(".bootstrap"), &args)
}

fn stored(dir: &Path, sha: &str) -> PathBuf {
    dir.join(".bootstrap/sources").join(sha)
}

/// Everything under tmp/ (nothing may stay there after a finished run).
fn leftovers(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.join(".bootstrap/tmp")];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.path().is_dir() {
                stack.push(e.path());
            } else {
                out.push(e.path());
            }
        }
    }
    out
}

#[test]
fn tries_urls_in_order_and_keeps_only_the_pinned_bytes() {
    let server = Server::start();
    let good = payload(300_000, 1);
    let mut flipped = good.clone();
    flipped[123_456] ^= 0x40;
    let h = sha(&good);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let missing = format!("{}/missing.tar", server.base);
    let bad = server.route("/flipped/file.bin", Behavior::Serve(flipped.clone()));
    let ok = server.route("/good/file.bin", Behavior::Serve(good.clone()));
    chain(dir, &[Src { name: "thing", urls: vec![missing.clone(), bad.clone(), ok.clone()], sha: h.clone(), unpack: None }]);

    let run = fetch(dir, &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("fetched  thing"), "{}", run.stdout);
    assert!(run.stdout.contains(&format!("from {ok}")), "{}", run.stdout);
    assert!(run.stderr.contains(&format!("{missing} failed (HTTP status 404)")), "{}", run.stderr);
    assert!(run.stderr.contains(&format!("{bad} failed (wrong bytes: 300000 bytes hashing to sha256:{})", sha(&flipped))), "{}", run.stderr);
    assert_eq!(fs::read(stored(dir, &h)).unwrap(), good);
    assert!(leftovers(dir).is_empty(), "{:?}", leftovers(dir));

    // Second run: nothing downloaded.
    let before = server.requests("/good/file.bin").len();
    let run = fetch(dir, &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("present  thing"), "{}", run.stdout);
    assert_eq!(server.requests("/good/file.bin").len(), before);
}

#[test]
fn a_tampered_source_never_enters_the_store_and_exits_2() {
    let server = Server::start();
    let good = payload(50_000, 2);
    let mut flipped = good.clone();
    flipped[0] ^= 1;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let bad = server.route("/tampered.tar.gz", Behavior::Serve(flipped.clone()));
    let h = sha(&good);
    chain(dir, &[Src { name: "tampered", urls: vec![bad.clone()], sha: h.clone(), unpack: None }]);
    let run = fetch(dir, &[]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    for needle in [
        "source `tampered`: no place gave the pinned bytes".to_string(),
        format!("pinned:\n  │   sha256:{h}"),
        format!("{bad} gave 50000 bytes hashing to\n  │   sha256:{}", sha(&flipped)),
        "chain/sources.kdl:1:".to_string(),
    ] {
        assert!(run.stderr.contains(&needle), "missing {needle:?} in\n{}", run.stderr);
    }
    assert!(!stored(dir, &h).exists());
    let json = fetch(dir, &["--json"]);
    assert_eq!(json.code, 2);
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(v["failed"][0]["code"], "bootstrap::fetch::failed");
    assert!(leftovers(dir).iter().all(|p| fs::metadata(p).unwrap().len() == 0), "{:?}", leftovers(dir));
    let sources: Vec<_> = fs::read_dir(dir.join(".bootstrap/sources")).unwrap().collect();
    assert!(sources.is_empty());
}

#[test]
fn a_body_cut_off_mid_transfer_is_resumed_with_a_range_request() {
    let server = Server::start();
    let body = payload(1_000_000, 3);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let url = server.route("/cut.bin", Behavior::CutOnce { body: body.clone(), cut_at: 400_000 });
    let h = sha(&body);
    chain(dir, &[Src { name: "cut", urls: vec![url], sha: h.clone(), unpack: None }]);
    let run = fetch(dir, &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(server.cuts(), 1);
    let reqs = server.requests("/cut.bin");
    assert_eq!(reqs.len(), 2, "{reqs:?}");
    assert_eq!(reqs[1].range.as_deref(), Some("bytes=400000-"));
    assert_eq!(fs::read(stored(dir, &h)).unwrap(), body);
}

#[test]
fn a_server_that_ignores_range_is_downloaded_again_from_the_start() {
    let server = Server::start();
    let body = payload(800_000, 14);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let url = server.route("/norange.bin", Behavior::CutOnceNoRange { body: body.clone(), cut_at: 300_000 });
    let h = sha(&body);
    chain(dir, &[Src { name: "norange", urls: vec![url], sha: h.clone(), unpack: None }]);
    let run = fetch(dir, &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let reqs = server.requests("/norange.bin");
    assert_eq!(reqs.len(), 2, "{reqs:?}");
    assert_eq!(reqs[1].range.as_deref(), Some("bytes=300000-"), "asked to resume");
    assert_eq!(fs::read(stored(dir, &h)).unwrap(), body, "the whole 200 answer replaced the partial file");
}

#[test]
fn a_response_slower_than_the_timeout_fails_that_url_only() {
    let server = Server::start();
    let body = payload(10_000, 4);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let slow = server.route("/slow.bin", Behavior::Slow { delay: Duration::from_secs(6), body: body.clone() });
    let h = sha(&body);
    chain(dir, &[Src { name: "slow", urls: vec![slow.clone()], sha: h.clone(), unpack: None }]);
    let started = Instant::now();
    let run = fetch(dir, &["--timeout", "1s"]);
    // No place answered in time: the source is not available (blocked).
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(started.elapsed() < Duration::from_secs(6), "the timeout was not applied");
    assert!(run.stderr.contains("timed out"), "{}", run.stderr);
    assert!(!stored(dir, &h).exists());

    // With a good mirror after it, the fetch succeeds and says what was slow.
    let good = server.route("/fast.bin", Behavior::Serve(body.clone()));
    chain(dir, &[Src { name: "slow", urls: vec![slow.clone(), good], sha: h.clone(), unpack: None }]);
    let run = fetch(dir, &["--json", "--timeout", "1s"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.contains(&format!("{slow} failed (timed out")), "{}", run.stderr);
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let attempt = &v["sources"][0]["failed_attempts"][0];
    assert_eq!(attempt["location"], slow.as_str());
    assert_eq!(attempt["problem"]["kind"], "timeout");
}

#[test]
fn distfiles_by_name_and_by_sha256_and_offline_lists_what_is_missing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mirror = dir.join("mirror");
    fs::create_dir_all(&mirror).unwrap();
    let (a, b, c) = (payload(1000, 5), payload(2000, 6), payload(3000, 7));
    fs::write(mirror.join("a-1.0.tar"), &a).unwrap();
    fs::write(mirror.join(sha(&b)), &b).unwrap();
    // A wrong file under the right name is refused, not used.
    fs::write(mirror.join("c.bin"), payload(3000, 8)).unwrap();
    chain(
        dir,
        &[
            Src { name: "a", urls: vec!["https://unreachable.invalid/a-1.0.tar".into()], sha: sha(&a), unpack: None },
            Src { name: "b", urls: vec!["https://unreachable.invalid/b.bin".into()], sha: sha(&b), unpack: None },
            Src { name: "c", urls: vec!["https://unreachable.invalid/c.bin".into()], sha: sha(&c), unpack: None },
        ],
    );
    let run = fetch(dir, &["--offline", "--distfiles", "mirror"]);
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(run.stdout.contains("fetched  a"), "{}", run.stdout);
    assert!(run.stdout.contains("fetched  b"), "{}", run.stdout);
    assert!(run.stderr.contains("source `c` is not in the store or any --distfiles directory"), "{}", run.stderr);
    assert!(run.stderr.contains("1 of 3 sources could not be fetched"), "{}", run.stderr);
    assert_eq!(fs::read(stored(dir, &sha(&a))).unwrap(), a);
    assert_eq!(fs::read(stored(dir, &sha(&b))).unwrap(), b);
    assert!(!stored(dir, &sha(&c)).exists());

    // --json: one document on stdout, saying what failed.
    let run = fetch(dir, &["--json", "--offline", "--distfiles", "mirror"]);
    assert_eq!(run.code, 3);
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(v["ok"], false);
    assert_eq!(v["sources"].as_array().unwrap().len(), 2);
    assert_eq!(v["failed"][0]["code"], "bootstrap::fetch::offline_missing");
}

#[test]
fn sigkill_mid_download_then_rerun_resumes_and_completes() {
    let server = Server::start();
    let body = payload(6 << 20, 9);
    let h = sha(&body);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let url = server.route(
        "/big.bin",
        Behavior::Throttled { body: body.clone(), chunk: 256 << 10, pause: Duration::from_millis(100) },
    );
    chain(dir, &[Src { name: "big", urls: vec![url], sha: h.clone(), unpack: None }]);
    let part = dir.join(".bootstrap/tmp/fetch").join(format!("{h}.part"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_bootstrap"))
        .current_dir(dir)
        .args(["fetch"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while fs::metadata(&part).map(|m| m.len()).unwrap_or(0) < (1 << 20) {
        assert!(Instant::now() < deadline, "download never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let kept = fs::metadata(&part).unwrap().len();
    assert!(kept > 0 && kept < body.len() as u64);
    assert!(!stored(dir, &h).exists(), "a partial download sits under its final name");

    let before = server.requests("/big.bin").len();
    let run = fetch(dir, &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(fs::read(stored(dir, &h)).unwrap(), body);
    let rerun = server.requests("/big.bin").split_off(before);
    assert_eq!(rerun.len(), 1, "{rerun:?}");
    assert_eq!(rerun[0].range, Some(format!("bytes={kept}-")), "resumes exactly where the killed run stopped");
    assert!(leftovers(dir).is_empty(), "{:?}", leftovers(dir));
}

#[test]
fn two_fetches_on_one_store_queue_on_the_lock_and_no_wait_fails_fast() {
    let server = Server::start();
    let body = payload(2 << 20, 10);
    let h = sha(&body);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let url = server.route(
        "/shared.bin",
        Behavior::Throttled { body: body.clone(), chunk: 128 << 10, pause: Duration::from_millis(60) },
    );
    chain(dir, &[Src { name: "shared", urls: vec![url], sha: h.clone(), unpack: None }]);
    let spawn = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_bootstrap"))
            .current_dir(dir)
            .args(extra)
            .arg("fetch")
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let first = spawn(&[]);
    let lock = dir.join(".bootstrap/lock");
    let deadline = Instant::now() + Duration::from_secs(20);
    while fs::read_to_string(&lock).map(|s| s.is_empty()).unwrap_or(true) {
        assert!(Instant::now() < deadline, "first fetch never took the lock");
        std::thread::sleep(Duration::from_millis(10));
    }
    let second = spawn(&[]);
    let busy = spawn(&["--no-wait"]).wait_with_output().unwrap();
    assert_eq!(busy.status.code(), Some(3), "{}", String::from_utf8_lossy(&busy.stderr));
    let busy_err = String::from_utf8_lossy(&busy.stderr);
    assert!(busy_err.contains("the store is in use") && busy_err.contains("bootstrap") && busy_err.contains("fetch"), "{busy_err}");

    let (a, b) = (first.wait_with_output().unwrap(), second.wait_with_output().unwrap());
    assert!(a.status.success(), "{}", String::from_utf8_lossy(&a.stderr));
    assert!(b.status.success(), "{}", String::from_utf8_lossy(&b.stderr));
    assert!(String::from_utf8_lossy(&b.stderr).contains("waiting for the store lock"));
    assert!(String::from_utf8_lossy(&b.stdout).contains("present  shared"));
    assert_eq!(server.requests("/shared.bin").len(), 1, "downloaded once");
    assert_eq!(fs::read(stored(dir, &h)).unwrap(), body);
}

#[test]
fn file_urls_are_copied_and_checked_like_downloads() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let good = payload(70_000, 12);
    let (wrong, right) = (dir.join("wrong.bin"), dir.join("right.bin"));
    fs::write(&wrong, payload(70_000, 13)).unwrap();
    fs::write(&right, &good).unwrap();
    let urls = vec![format!("file://{}", wrong.display()), format!("file://{}", right.display())];
    chain(dir, &[Src { name: "local", urls: urls.clone(), sha: sha(&good), unpack: None }]);
    let run = fetch(dir, &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.contains(&format!("{} failed (wrong bytes", urls[0])), "{}", run.stderr);
    assert!(run.stdout.contains(&format!("from {}", urls[1])), "{}", run.stdout);
    assert_eq!(fs::read(stored(dir, &sha(&good))).unwrap(), good);
    assert!(leftovers(dir).is_empty(), "{:?}", leftovers(dir));
}

/// A report as one line: wrapped lines joined, the frame's bars dropped.
fn said(stderr: &str) -> String {
    stderr.split_whitespace().filter(|w| *w != "│").collect::<Vec<_>>().join(" ")
}

#[test]
fn an_endless_or_oversized_body_is_cut_off_at_the_download_limit() {
    let server = Server::start();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let endless = server.route("/endless.bin", Behavior::Endless);
    let big = payload(3 << 20, 9);
    let announced = server.route("/big.bin", Behavior::Serve(big.clone()));
    chain(dir, &[Src { name: "endless", urls: vec![endless], sha: sha(b"anything"), unpack: None }]);
    let started = Instant::now();
    let run = fetch(dir, &["--max-download-size", "1M"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(started.elapsed() < Duration::from_secs(30));
    assert!(said(&run.stderr).contains("more than 1048576 bytes"), "{}", run.stderr);
    assert_eq!(leftovers(dir), Vec::<PathBuf>::new(), "a refused download was kept");
    // Announced larger than the limit: refused before a byte is kept.
    chain(dir, &[Src { name: "big", urls: vec![announced], sha: sha(&big), unpack: None }]);
    let run = fetch(dir, &["--max-download-size", "1M"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(said(&run.stderr).contains("more than 1048576 bytes"), "{}", run.stderr);
    assert_eq!(fetch(dir, &[]).code, 0, "within the default limit it is fetched");
}

#[test]
fn a_trickle_is_given_up_on_and_so_is_a_server_that_keeps_hanging_up() {
    let server = Server::start();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let body = payload(100_000, 10);
    let trickle = server.route("/trickle.bin", Behavior::Throttled { body: body.clone(), chunk: 1, pause: Duration::from_millis(900) });
    chain(dir, &[Src { name: "trickle", urls: vec![trickle], sha: sha(&body), unpack: None }]);
    let started = Instant::now();
    let run = fetch(dir, &["--timeout", "2s"]);
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(started.elapsed() < Duration::from_secs(20), "a trickle kept the fetch going");
    assert!(said(&run.stderr).contains("bytes per second"), "{}", run.stderr);

    let hangs_up = server.route("/onebyte.bin", Behavior::OneByteAndClose { len: 100_000 });
    chain(dir, &[Src { name: "onebyte", urls: vec![hangs_up], sha: sha(&body), unpack: None }]);
    let run = fetch(dir, &["--timeout", "2s"]);
    // A server that answers and keeps hanging up is refused, not missing.
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(said(&run.stderr).contains("gave up after 16 requests"), "{}", run.stderr);
    assert!(server.requests("/onebyte.bin").len() <= 16, "{} requests", server.requests("/onebyte.bin").len());
}

#[test]
fn an_archive_bomb_is_refused_at_the_unpacked_limit() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let work = tmp.path().join("work");
    fs::create_dir_all(work.join("bomb")).unwrap();
    fs::write(work.join("bomb/zeros"), vec![0u8; 40 << 20]).unwrap();
    let archive = tmp.path().join("bomb.tar.gz");
    assert!(Command::new("tar").arg("czf").arg(&archive).arg("-C").arg(&work).arg("bomb").status().unwrap().success());
    assert!(fs::metadata(&archive).unwrap().len() < 1 << 20, "the bomb compresses");
    let bytes = fs::read(&archive).unwrap();
    chain(dir, &[Src { name: "bomb", urls: vec![format!("file://{}", archive.display())], sha: sha(&bytes), unpack: Some(1) }]);
    let run = fetch(dir, &["--max-unpacked-size", "8M"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(said(&run.stderr).contains("refusing to unpack") && said(&run.stderr).contains("--max-unpacked-size"), "{}", run.stderr);
    assert!(fs::read_dir(dir.join(".bootstrap/layers")).unwrap().next().is_none(), "a layer was kept");
    assert_eq!(fetch(dir, &[]).code, 0, "within the default limit it unpacks");
}

#[test]
fn redirects_are_followed_on_http_only() {
    let server = Server::start();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let body = payload(50_000, 11);
    server.route("/real.bin", Behavior::Serve(body.clone()));
    let moved = server.route("/moved.bin", Behavior::Redirect("/real.bin".into()));
    chain(dir, &[Src { name: "moved", urls: vec![moved], sha: sha(&body), unpack: None }]);
    let run = fetch(dir, &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let evil = server.route("/evil.bin", Behavior::Redirect("file:///etc/passwd".into()));
    chain(dir, &[Src { name: "evil", urls: vec![evil], sha: sha(b"x"), unpack: None }]);
    let run = fetch(dir, &[]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(said(&run.stderr).contains("redirected to `file:///etc/passwd`, which is not followed"), "{}", run.stderr);
    assert!(!said(&run.stderr).contains("root:"), "{}", run.stderr);
}
