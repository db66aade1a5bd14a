//! The remote backend's tests: the REAPI server named by BOOTSTRAP_REMOTE
//! (and BOOTSTRAP_REMOTE_INSTANCE), which `.ci/run` starts
//! (tests/remote/cluster.sh), and `bootstrap worker`s of the built binary
//! that live as long as the test process.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use bootstrap::exec::remote::{RemoteBackend, RemoteOptions};
use bootstrap::exec::{Root, StepRequest};

/// The server's address and instance, or `None` (after saying why) when
/// none is named and none is required (`BOOTSTRAP_REQUIRE_REMOTE=1`).
pub fn server() -> Option<(String, String)> {
    match std::env::var("BOOTSTRAP_REMOTE") {
        Ok(url) if !url.is_empty() => Some((url, std::env::var("BOOTSTRAP_REMOTE_INSTANCE").unwrap_or_default())),
        _ if std::env::var("BOOTSTRAP_REQUIRE_REMOTE").is_ok_and(|v| v == "1") => {
            panic!("BOOTSTRAP_REQUIRE_REMOTE=1 but BOOTSTRAP_REMOTE names no server (tests/remote/cluster.sh starts one)")
        }
        _ => {
            eprintln!("skipped: no REAPI server (set BOOTSTRAP_REMOTE, see tests/remote/README.md; BOOTSTRAP_REQUIRE_REMOTE=1 makes this a failure)");
            None
        }
    }
}

/// Starts a `bootstrap worker` against the server with its own state
/// directory, serving `properties`; it is killed when the test process
/// ends (its parent-death signal is set from a thread that never ends).
pub fn worker(properties: &[&str]) -> Child {
    worker_at(&tempfile::tempdir().unwrap().keep(), properties)
}

/// [`worker`] with its state directory at `state`.
pub fn worker_at(state: &std::path::Path, properties: &[&str]) -> Child {
    let (url, instance) = server().expect("a server");
    std::fs::create_dir_all(state).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bootstrap"));
    cmd.args(["--state"]).arg(state).args(["--remote", &url, "--remote-instance", &instance, "worker"]);
    for p in properties {
        cmd.args(["--property", p]);
    }
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::from(std::fs::File::create(state.join("worker.log")).unwrap()));
    spawn_forever(cmd)
}

/// Spawns `cmd` from one long-lived thread, so that its parent-death
/// signal fires when the test process ends, not when a test's thread does.
fn spawn_forever(cmd: Command) -> Child {
    type Job = (Command, std::sync::mpsc::Sender<Child>);
    static SPAWNER: OnceLock<Mutex<std::sync::mpsc::Sender<Job>>> = OnceLock::new();
    let tx = SPAWNER.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        std::thread::spawn(move || {
            for (mut cmd, back) in rx {
                use std::os::unix::process::CommandExt;
                // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
                unsafe {
                    cmd.pre_exec(|| {
                        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                        Ok(())
                    });
                }
                let _ = back.send(cmd.spawn().expect("start bootstrap worker"));
            }
        });
        Mutex::new(tx)
    });
    let (back, child) = std::sync::mpsc::channel();
    tx.lock().unwrap().send((cmd, back)).unwrap();
    child.recv().unwrap()
}

/// Two workers for the whole test process, serving any step.
pub fn workers() {
    static STARTED: OnceLock<Vec<Child>> = OnceLock::new();
    STARTED.get_or_init(|| vec![worker(&[]), worker(&[])]);
}

/// A remote backend on the server, with workers running; `None` without a server.
pub fn backend(split_lineages: bool) -> Option<RemoteBackend> {
    let (endpoint, instance) = server()?;
    workers();
    Some(RemoteBackend::connect(RemoteOptions { endpoint, instance, split_lineages, properties: Vec::new() }).expect("connect to the REAPI server"))
}

/// The directory `tests/remote/cluster.sh` runs the server from
/// (BOOTSTRAP_REMOTE_CLUSTER, set by `.ci/run`), for tests that restart it.
pub fn cluster_dir() -> Option<PathBuf> {
    std::env::var_os("BOOTSTRAP_REMOTE_CLUSTER").map(PathBuf::from)
}

/// A `/bin/sh -e -c SCRIPT` step on test seed `seed` in lineage `lineage`,
/// capturing `/out`.
pub fn request(seed: &str, lineage: &str, script: &str, timeout: Duration) -> StepRequest {
    StepRequest {
        root: Root::Dir(super::seeds().join(seed)),
        sources: Vec::new(),
        layers: Vec::new(),
        commands: vec![vec!["/bin/sh".into(), "-e".into(), "-c".into(), script.into()]],
        env: [("PATH", "/usr/bin:/bin"), ("HOME", "/homeless"), ("LC_ALL", "C"), ("TZ", "UTC"), ("SOURCE_DATE_EPOCH", "0")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        workdir: "/".into(),
        outputs: vec!["/out".into()],
        timeout,
        hostname: "bootstrap".into(),
        source_dir: "/src".into(),
        destdir: None,
        lineage: lineage.into(),
        fresh: false,
    }
}

