//! The backend conformance suite, run on the local backend: isolation,
//! environment, timeout, failures and output capture, on a real busybox seed
//! built from Debian's package by tests/seeds/build.sh.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use bootstrap::exec::local::LocalBackend;
use bootstrap::exec::{Executor, SourceInput, Status, StepRequest, StepResult};
use bootstrap::store::{LockMode, Store, Wait};

/// The seeds, built once per test run (cached across runs by the script).
fn seeds() -> &'static Path {
    static SEEDS: OnceLock<PathBuf> = OnceLock::new();
    SEEDS.get_or_init(|| {
        let out = common::root().join("target/test-seeds");
        let ok = std::process::Command::new(common::root().join("tests/seeds/build.sh")).arg(&out).status().expect("run build.sh");
        assert!(ok.success(), "tests/seeds/build.sh failed");
        out
    })
}

fn env() -> BTreeMap<String, String> {
    [
        ("HOME", "/homeless"),
        ("LC_ALL", "C"),
        ("PATH", "/usr/bin:/bin:/usr/sbin:/sbin"),
        ("SOURCE_DATE_EPOCH", "0"),
        ("TZ", "UTC"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fn sh(script: &str) -> StepRequest {
    StepRequest {
        seed_root: Some(seeds().join("busybox")),
        sources: Vec::new(),
        layers: Vec::new(),
        commands: vec![vec!["/bin/sh".into(), "-e".into(), "-c".into(), script.into()]],
        env: env(),
        workdir: "/".into(),
        outputs: vec!["/out".into()],
        timeout: Duration::from_secs(30),
    }
}

struct Fixture {
    _tmp: tempfile::TempDir,
    store: Store,
    backend: LocalBackend,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(&tmp.path().join("state"), LockMode::Exclusive, Wait::Block, &|_| {}).unwrap();
    Fixture { _tmp: tmp, store, backend: LocalBackend::new(env!("CARGO_BIN_EXE_bootstrap").into()) }
}

impl Fixture {
    fn run(&self, req: &StepRequest) -> StepResult {
        self.backend.run(req, &self.store, &bootstrap::exec::NoEcho).unwrap()
    }
    fn layer(&self, r: &StepResult) -> PathBuf {
        let (digest, _) = r.layer.as_ref().unwrap_or_else(|| panic!("no layer: {:?} log: {}", r.status, self.log(r)));
        self.store.layer_path(digest)
    }
    fn log(&self, r: &StepResult) -> String {
        fs::read_to_string(self.store.root().join("logs").join(r.log.hex())).unwrap_or_default()
    }
}

#[test]
fn outputs_are_captured_and_the_environment_is_exactly_the_requested_one() {
    let f = fixture();
    // SAFETY (test): set before any thread of this test reads the environment.
    unsafe { std::env::set_var("BOOTSTRAP_LEAK_CHECK", "leaked") };
    let r = f.run(&sh("mkdir /out; env | sort > /out/env; hostname > /out/host; id -u > /out/uid; id -g >> /out/uid; umask > /out/umask; echo hi > /out/x"));
    assert_eq!(r.status, Status::Succeeded, "{}", f.log(&r));
    let layer = f.layer(&r);
    assert_eq!(fs::read_to_string(layer.join("out/x")).unwrap(), "hi\n");
    assert_eq!(fs::read_to_string(layer.join("out/host")).unwrap(), "bootstrap\n");
    assert_eq!(fs::read_to_string(layer.join("out/uid")).unwrap(), "0\n0\n");
    assert_eq!(fs::read_to_string(layer.join("out/umask")).unwrap().trim(), "0022");
    let env = fs::read_to_string(layer.join("out/env")).unwrap();
    // The shell adds PWD and SHLVL of its own; nothing else may appear.
    let names: Vec<&str> = env.lines().map(|l| l.split('=').next().unwrap()).filter(|n| !matches!(*n, "PWD" | "SHLVL")).collect();
    assert_eq!(names, ["HOME", "LC_ALL", "PATH", "SOURCE_DATE_EPOCH", "TZ"], "{env}");
}

#[test]
fn a_step_cannot_reach_the_network_or_see_host_paths() {
    let f = fixture();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let host_dir = f.store.root().to_path_buf();
    let script = format!(
        "mkdir /out; if wget -q -T 2 -O /out/got http://127.0.0.1:{port}/; then echo reached > /out/net; else echo blocked > /out/net; fi; \
         for p in {} {} /root/.cargo /work; do if [ -e \"$p\" ]; then echo \"$p\" >> /out/seen; fi; done; touch /out/seen",
        host_dir.display(),
        common::root().display()
    );
    let r = f.run(&sh(&script));
    assert_eq!(r.status, Status::Succeeded, "{}", f.log(&r));
    let layer = f.layer(&r);
    assert_eq!(fs::read_to_string(layer.join("out/net")).unwrap(), "blocked\n");
    assert!(listener.accept().is_err(), "a connection reached the host");
    assert_eq!(fs::read_to_string(layer.join("out/seen")).unwrap(), "", "host paths visible");
}

#[test]
fn a_step_past_its_timeout_is_killed_with_its_children() {
    let f = fixture();
    let mut req = sh("sleep 4321 & sleep 4322");
    req.timeout = Duration::from_secs(1);
    let r = f.run(&req);
    assert_eq!(r.status, Status::TimedOut);
    assert!(r.duration < Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(200));
    let ps = std::process::Command::new("ps").args(["-eo", "args"]).output().unwrap();
    let ps = String::from_utf8_lossy(&ps.stdout);
    assert!(!ps.lines().any(|l| l.starts_with("sleep 432")), "left running:\n{ps}");
}

#[test]
fn failures_and_bad_outputs_are_reported() {
    let f = fixture();
    let r = f.run(&sh("echo about to fail; exit 7"));
    assert_eq!(r.status, Status::Exited { index: 0, code: 7 });
    assert!(f.log(&r).contains("about to fail"));
    assert!(r.layer.is_none());

    let r = f.run(&sh("mkdir /elsewhere"));
    assert!(matches!(&r.status, Status::BadOutput { path, reason } if path == "/out" && reason.contains("does not exist")), "{:?}", r.status);

    let r = f.run(&sh("mkfifo /out"));
    assert!(matches!(&r.status, Status::BadOutput { reason, .. } if reason.contains("not a regular file")), "{:?}", r.status);

    // A symlink out of the root is stored as a link, never followed.
    let r = f.run(&sh("mkdir /out; ln -s /etc/passwd /out/pw; ln -s ../../../../.. /out/up"));
    assert_eq!(r.status, Status::Succeeded, "{}", f.log(&r));
    let layer = f.layer(&r);
    assert_eq!(fs::read_link(layer.join("out/pw")).unwrap(), Path::new("/etc/passwd"));
    assert!(fs::symlink_metadata(layer.join("out/up")).unwrap().is_symlink());

    // An output reached through a symlink the step made is refused.
    let mut req = sh("ln -s /etc /out");
    req.outputs = vec!["/out/passwd".into()];
    let r = f.run(&req);
    assert!(matches!(&r.status, Status::BadOutput { reason, .. } if reason.contains("symlink")), "{:?}", r.status);
}

#[test]
fn nothing_but_declared_outputs_survives_and_a_scratch_root_sees_only_its_inputs() {
    let f = fixture();
    let r = f.run(&sh("mkdir /out /junk; echo x > /junk/x; echo y > /out/y"));
    let layer = f.layer(&r);
    let entries: Vec<_> = fs::read_dir(&layer).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(entries, ["out"]);

    // A layer with busybox in it, used as a need of a scratch-root step.
    let tools = f.run(&sh("mkdir -p /out/bin; cp /bin/busybox /out/bin/busybox"));
    let tools_layer = f.layer(&tools);
    let src = tempfile::tempdir().unwrap();
    fs::write(src.path().join("hello.txt"), "hello\n").unwrap();
    let req = StepRequest {
        seed_root: None,
        sources: vec![("greeting".into(), SourceInput::Tree(src.path().to_path_buf()))],
        layers: vec![tools_layer.clone()],
        commands: vec![vec![
            "/out/bin/busybox".into(),
            "sh".into(),
            "-c".into(),
            "/out/bin/busybox mkdir /r; /out/bin/busybox ls -a / > /r/root; /out/bin/busybox cat /src/greeting/hello.txt > /r/src".into(),
        ]],
        env: env(),
        workdir: "/".into(),
        outputs: vec!["/r".into()],
        timeout: Duration::from_secs(30),
    };
    let r = f.run(&req);
    assert_eq!(r.status, Status::Succeeded, "{}", f.log(&r));
    let layer = f.layer(&r);
    assert_eq!(fs::read_to_string(layer.join("r/src")).unwrap(), "hello\n");
    let root: Vec<String> = fs::read_to_string(layer.join("r/root")).unwrap().lines().map(str::to_string).collect();
    assert_eq!(root, [".", "..", "dev", "out", "proc", "r", "src", "tmp"]);
}
