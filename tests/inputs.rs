//! One run lists every missing input: seeds without a location and sources
//! no place gave, each with what to supply and a help line that fits what
//! happened (no network, not found, wrong bytes), then exit 3 (2 when some
//! place gave bytes that match no pin).

mod common;

use std::fs;

use common::http::{Behavior, Server};
use common::mini::Mini;
use common::{Src, chain, payload, redact, run_in, says, seeds, sha};

/// The mini chain, offline, with neither seeds nor distfiles: both seeds
/// and every source, in one report.
#[test]
fn one_offline_run_lists_both_seeds_and_every_source() {
    let mini = Mini::with_args(Vec::new());
    let chain = mini.chain.to_str().unwrap();
    let r = run_in(&mini.chain, &mini.state, &["-C", chain, "--offline", "verify", "stage2"]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    insta::assert_snapshot!("missing_inputs_offline", redact(&r.stderr, &mini.state));
    // Nothing ran, and nothing is half there.
    assert!(!mini.state.join("receipts/stages").read_dir().is_ok_and(|mut d| d.next().is_some()));
    let tmp: Vec<_> = fs::read_dir(mini.state.join("tmp")).map(|d| d.flatten().collect()).unwrap_or_default();
    assert!(tmp.is_empty(), "{tmp:?}");
}

/// `build` with no seed located lists every declared seed with the
/// `--seed` to give, and the sources too.
#[test]
fn build_without_a_seed_lists_each_seed_and_the_sources() {
    let mini = Mini::with_args(Vec::new());
    let chain = mini.chain.to_str().unwrap();
    let r = run_in(&mini.chain, &mini.state, &["-C", chain, "--offline", "build", "stage0"]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    for seed in ["busybox", "debian"] {
        assert!(says(&r.stderr, &format!("seed `{seed}` has no `rootfs` in the chain")), "{}", r.stderr);
        assert!(says(&r.stderr, &format!("`--seed {seed}=DIR`")), "{}", r.stderr);
    }
    assert!(says(&r.stderr, "wanted: `hex-programs-1.tar.gz`"), "{}", r.stderr);
    assert!(says(&r.stderr, "2 of 2 seeds cannot be run on (this run needs 1)"), "{}", r.stderr);
}

/// Three sources that fail three ways over HTTP on 127.0.0.1, and two
/// seeds without a location: each problem has its own help, all in one run.
#[test]
fn each_failure_gets_its_own_help_and_the_worst_exit_code() {
    let server = Server::start();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let good = payload(3_000, 1);
    let tampered = server.route("/tampered.tar", Behavior::Serve(payload(3_000, 2)));
    // Port 9 (discard) is closed on this machine's loopback: connection refused.
    let unreachable = "http://127.0.0.1:9/unreachable.tar".to_string();
    let absent = format!("{}/absent.tar", server.base);
    let sources = |with_tampered: bool| {
        let mut v = vec![
            Src { name: "unreachable", urls: vec![unreachable.clone()], sha: sha(&good), unpack: None },
            Src { name: "absent", urls: vec![absent.clone()], sha: sha(&payload(10, 3)), unpack: None },
        ];
        if with_tampered {
            v.push(Src { name: "tampered", urls: vec![tampered.clone()], sha: sha(&good), unpack: None });
        }
        v
    };
    chain(dir, &sources(true));
    let state = dir.join(".bootstrap");
    let r = run_in(dir, &state, &["verify", "stage0"]);
    let shown = r.stderr.replace(&server.base, "[SERVER]");
    assert_eq!(r.code, 2, "wrong bytes make it a verification failure\n{shown}");
    for (what, help) in [
        ("seed `a` has no `rootfs`", "`--seed a=DIR`"),
        ("seed `b` has no `rootfs`", "`--seed b=DIR`"),
        ("source `unreachable`: no place gave the pinned bytes", "no place answered (no network, or a DNS, proxy or firewall failure): put `unreachable.tar` in a --distfiles directory"),
        ("source `absent`: no place gave the pinned bytes", "not found where the chain says: put `absent.tar` in a --distfiles directory"),
        ("source `tampered`: no place gave the pinned bytes", "do not trust them; get `tampered.tar` where it is published as pinned"),
    ] {
        assert!(says(&shown, what), "no `{what}` in\n{shown}");
        assert!(says(&shown, help), "no `{help}` in\n{shown}");
    }
    assert!(says(&shown, "error: 2 of 2 seeds cannot be run on (this run needs 2) and 3 of 3 sources could not be had; nothing was run."), "{shown}");
    // Without the tampered one, what is left is unavailable: blocked.
    chain(dir, &sources(false));
    let r = run_in(dir, &state, &["verify", "stage0"]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    // With the seeds given, the sources alone are listed.
    let busybox = format!("a={}", seeds().join("busybox").display());
    let debian = format!("b={}", seeds().join("debian").display());
    let r = run_in(dir, &state, &["--seed", &busybox, "--seed", &debian, "verify", "stage0"]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(!says(&r.stderr, "seed `a`"), "{}", r.stderr);
    assert!(says(&r.stderr, "error: 2 of 2 sources could not be had; nothing was run."), "{}", r.stderr);
}

/// `fetch --offline` says what to put where, never to run the command
/// the user is running.
#[test]
fn fetch_offline_names_the_file_its_urls_and_pins() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let body = payload(100, 7);
    chain(dir, &[Src { name: "lib", urls: vec!["https://example.invalid/dl/lib-1.0.tar".into()], sha: sha(&body), unpack: None }]);
    let r = run_in(dir, &dir.join(".bootstrap"), &["--offline", "fetch"]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(says(&r.stderr, "wanted: `lib-1.0.tar`"), "{}", r.stderr);
    assert!(says(&r.stderr, "from https://example.invalid/dl/lib-1.0.tar"), "{}", r.stderr);
    assert!(r.stderr.contains(&sha(&body)), "{}", r.stderr);
    assert!(says(&r.stderr, "put `lib-1.0.tar` in a --distfiles directory"), "{}", r.stderr);
    assert!(!r.stderr.contains("run `bootstrap fetch`"), "{}", r.stderr);
}
