//! The backend conformance suite (ARCHITECTURE.md §3): written once, run against
//! every backend on every test seed. A backend's test file instantiates it
//! with [`conformance_suite!`], giving a module name and an expression that
//! makes a [`Fixture`], or `None` when the backend cannot run here (the
//! backend's test file says why, or fails when it is required).
//!
//! The steps only use what both seeds have (a POSIX shell, coreutils-like
//! tools); where they differ (busybox's wget, Debian's bash) the script
//! picks what is there.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bootstrap::exec::oci::OciBackend;
use bootstrap::exec::{Executor, NoEcho, Root, SourceInput, Status, StepRequest, StepResult};
use bootstrap::store::{LockMode, Store, Wait};

/// One backend on one seed, with a store of its own.
pub struct Fixture {
    _tmp: tempfile::TempDir,
    pub store: Store,
    pub backend: Box<dyn Executor>,
    /// The test seed's directory (tests/seeds/build.sh).
    pub seed: PathBuf,
    /// How the backend is given that seed.
    pub root: Root,
    /// Top-level names the backend's engine adds to every root.
    pub engine_paths: Vec<&'static str>,
    /// The engine runs steps in the host's user namespace (a container
    /// engine without user namespace remapping): the one namespace the
    /// hostile probe then cannot require to be the step's own.
    pub host_user_namespace: bool,
}

impl Fixture {
    /// The seed directory `seed`, run in place.
    pub fn new(backend: Box<dyn Executor>, seed: PathBuf) -> Fixture {
        let root = Root::Dir(seed.clone());
        Fixture::with_root(backend, seed, root, Vec::new())
    }

    /// The seed directory `seed`, given to the backend as `root`.
    pub fn with_root(backend: Box<dyn Executor>, seed: PathBuf, root: Root, engine_paths: Vec<&'static str>) -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(&tmp.path().join("state"), LockMode::Exclusive, Wait::Block, &|_| {}).unwrap();
        Fixture { _tmp: tmp, store, backend, seed, root, engine_paths, host_user_namespace: false }
    }

    pub fn run(&self, req: &StepRequest) -> StepResult {
        self.backend.run(req, &self.store, &NoEcho).unwrap()
    }

    pub fn layer(&self, r: &StepResult) -> PathBuf {
        let (digest, _) = r.layer.as_ref().unwrap_or_else(|| panic!("no layer: {:?} log: {}", r.status, self.log(r)));
        self.store.layer_path(digest)
    }

    pub fn log(&self, r: &StepResult) -> String {
        fs::read_to_string(self.store.root().join("logs").join(r.log.hex())).unwrap_or_default()
    }

    /// A `/bin/sh -e -c SCRIPT` step on the seed, capturing `/out`.
    pub fn sh(&self, script: &str) -> StepRequest {
        StepRequest {
            root: self.root.clone(),
            sources: Vec::new(),
            layers: Vec::new(),
            commands: vec![vec!["/bin/sh".into(), "-e".into(), "-c".into(), script.into()]],
            env: env(),
            workdir: "/".into(),
            outputs: vec!["/out".into()],
            timeout: Duration::from_secs(60),
            hostname: "bootstrap".into(),
            source_dir: "/src".into(),
            destdir: None,
            lineage: "conformance".into(),
            fresh: false,
        }
    }
}

/// The environment of DESIGN §3 with no step env.
/// Checks, when the fixture's test is over, that its OCI backend left no
/// container in the engine.
struct NoLeftovers(OciBackend);

impl Executor for NoLeftovers {
    fn name(&self) -> &'static str {
        self.0.name()
    }
    fn run(&self, req: &StepRequest, store: &Store, echo: &dyn bootstrap::exec::LogSink) -> Result<StepResult, bootstrap::exec::ExecError> {
        let r = self.0.run(req, store, echo);
        assert_eq!(self.0.leftovers().unwrap(), Vec::<String>::new(), "a step container was left in the engine");
        r
    }
}

/// The OCI backend `backend` (None: no engine here) on test seed `seed`,
/// loaded as an image.
pub fn oci(backend: Option<OciBackend>, seed: &str) -> Option<Fixture> {
    let backend = backend?;
    let id = crate::common::seed_image(&backend, seed);
    let own_user_namespace = backend.user_namespace().expect("the engine's info");
    let engine_paths = backend.engine_paths().to_vec();
    let mut f = Fixture::with_root(Box::new(NoLeftovers(backend)), crate::common::seeds().join(seed), Root::Image(id), engine_paths);
    f.host_user_namespace = !own_user_namespace;
    Some(f)
}

/// The remote backend on test seed `seed` (a directory, sent as part of
/// each input root), through the server's workers.
pub fn remote(seed: &str) -> Option<Fixture> {
    let backend = crate::common::remote::backend(false)?;
    Some(Fixture::new(Box::new(backend), crate::common::seeds().join(seed)))
}

pub fn env() -> BTreeMap<String, String> {
    [("HOME", "/homeless"), ("LC_ALL", "C"), ("PATH", "/usr/bin:/bin:/usr/sbin:/sbin"), ("SOURCE_DATE_EPOCH", "0"), ("TZ", "UTC")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Generates one `#[test]` per conformance check in module `$name`, each
/// on a fresh fixture made by `$make`.
#[macro_export]
macro_rules! conformance_suite {
    ($name:ident, $make:expr) => {
        mod $name {
            use super::*;
            #[test]
            fn environment_hostname_umask_and_uid_are_as_specified() {
                if let Some(f) = $make {
                    conformance::environment(&f);
                }
            }
            #[test]
            fn no_network_and_no_host_paths() {
                if let Some(f) = $make {
                    conformance::isolation(&f);
                }
            }
            #[test]
            fn timeout_kills_the_step_and_its_children() {
                if let Some(f) = $make {
                    conformance::timeout(&f);
                }
            }
            #[test]
            fn failures_and_bad_outputs() {
                if let Some(f) = $make {
                    conformance::failures(&f);
                }
            }
            #[test]
            fn mount_points_never_follow_a_roots_symlinks() {
                if let Some(f) = $make {
                    conformance::mount_points(&f);
                }
            }
            #[test]
            fn a_varied_hostname_and_build_path_are_seen_and_outputs_keep_their_paths() {
                if let Some(f) = $make {
                    conformance::variations(&f);
                }
            }
            #[test]
            fn a_destdir_output_is_read_under_it_and_stored_at_its_path() {
                if let Some(f) = $make {
                    conformance::destdir(&f);
                }
            }
            #[test]
            fn a_hostile_step_reaches_nothing_of_the_host() {
                if let Some(f) = $make {
                    conformance::hostile(&f);
                }
            }
            #[test]
            fn outputs_are_captured_after_every_process_of_the_step_is_gone() {
                if let Some(f) = $make {
                    conformance::capture_after_death(&f);
                }
            }
            #[test]
            fn a_root_of_the_other_kind_is_refused_as_unsupported() {
                if let Some(f) = $make {
                    conformance::other_root(&f);
                }
            }
            #[test]
            fn only_declared_outputs_survive_and_scratch_sees_only_its_inputs() {
                if let Some(f) = $make {
                    conformance::survivors_and_scratch(&f);
                }
            }
        }
    };
}

pub fn environment(f: &Fixture) {
    // Set in the engine's (this process's) environment: must not leak in.
    // SAFETY (test): no other thread of this test reads the environment now.
    unsafe { std::env::set_var("BOOTSTRAP_LEAK_CHECK", "leaked") };
    let r = f.run(&f.sh(
        "mkdir /out; env | sort > /out/env; cat /proc/sys/kernel/hostname > /out/host; id -u > /out/uid; id -g >> /out/uid; umask > /out/umask; echo hi > /out/x",
    ));
    assert_eq!(r.status, Status::Succeeded, "{}", f.log(&r));
    let layer = f.layer(&r);
    assert_eq!(fs::read_to_string(layer.join("out/x")).unwrap(), "hi\n");
    assert_eq!(fs::read_to_string(layer.join("out/host")).unwrap(), "bootstrap\n");
    assert_eq!(fs::read_to_string(layer.join("out/uid")).unwrap(), "0\n0\n");
    assert_eq!(fs::read_to_string(layer.join("out/umask")).unwrap().trim(), "0022");
    let env = fs::read_to_string(layer.join("out/env")).unwrap();
    // The shell adds PWD (and, some shells, SHLVL or OLDPWD) of its own; nothing else may appear.
    let names: Vec<&str> =
        env.lines().map(|l| l.split('=').next().unwrap()).filter(|n| !matches!(*n, "PWD" | "SHLVL" | "OLDPWD")).collect();
    assert_eq!(names, ["HOME", "LC_ALL", "PATH", "SOURCE_DATE_EPOCH", "TZ"], "{env}");
    assert!(env.contains("PATH=/usr/bin:/bin:/usr/sbin:/sbin\n") && env.contains("HOME=/homeless\n"), "{env}");
}

pub fn isolation(f: &Fixture) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let script = format!(
        "mkdir /out
         if command -v wget >/dev/null; then
             if wget -q -T 2 -O /out/got http://127.0.0.1:{port}/; then echo reached > /out/net; else echo blocked > /out/net; fi
         elif command -v bash >/dev/null; then
             if bash -c 'exec 3<>/dev/tcp/127.0.0.1/{port}'; then echo reached > /out/net; else echo blocked > /out/net; fi
         else
             echo 'no probe: neither wget nor bash' > /out/net
         fi
         for p in {} {} /root/.cargo /work; do if [ -e \"$p\" ]; then echo \"$p\" >> /out/seen; fi; done; touch /out/seen",
        f.store.root().display(),
        crate::common::root().display()
    );
    let r = f.run(&f.sh(&script));
    assert_eq!(r.status, Status::Succeeded, "{}", f.log(&r));
    let layer = f.layer(&r);
    assert_eq!(fs::read_to_string(layer.join("out/net")).unwrap(), "blocked\n");
    assert!(listener.accept().is_err(), "a connection reached the host");
    assert_eq!(fs::read_to_string(layer.join("out/seen")).unwrap(), "", "host paths visible");
}

pub fn timeout(f: &Fixture) {
    // Distinct numbers per seed: tests of both seeds run at once.
    let n = 4000 + (f.seed.to_string_lossy().len() % 1000);
    let mut req = f.sh(&format!("sleep {n}1 & sleep {n}2"));
    req.timeout = Duration::from_secs(1);
    let r = f.run(&req);
    assert_eq!(r.status, Status::TimedOut);
    assert!(r.duration < Duration::from_secs(20));
    std::thread::sleep(Duration::from_millis(300));
    let ps = std::process::Command::new("ps").args(["-eo", "args"]).output().unwrap();
    let ps = String::from_utf8_lossy(&ps.stdout);
    assert!(!ps.lines().any(|l| l.starts_with(&format!("sleep {n}"))), "left running:\n{ps}");
}

pub fn failures(f: &Fixture) {
    let r = f.run(&f.sh("echo about to fail; exit 7"));
    assert_eq!(r.status, Status::Exited { index: 0, code: 7 });
    assert!(f.log(&r).contains("about to fail"));
    assert!(r.layer.is_none());

    let r = f.run(&f.sh("mkdir /elsewhere"));
    assert!(matches!(&r.status, Status::BadOutput { path, reason } if path == "/out" && reason.contains("does not exist")), "{:?}", r.status);

    let r = f.run(&f.sh("mkfifo /out"));
    assert!(matches!(&r.status, Status::BadOutput { reason, .. } if reason.contains("not a regular file")), "{:?}", r.status);

    // A symlink out of the root is stored as a link, never followed.
    let r = f.run(&f.sh("mkdir /out; ln -s /etc/passwd /out/pw; ln -s ../../../../.. /out/up"));
    assert_eq!(r.status, Status::Succeeded, "{}", f.log(&r));
    let layer = f.layer(&r);
    assert_eq!(fs::read_link(layer.join("out/pw")).unwrap(), Path::new("/etc/passwd"));
    assert!(fs::symlink_metadata(layer.join("out/up")).unwrap().is_symlink());

    // An output reached through a symlink the step made is refused.
    let mut req = f.sh("ln -s /etc /out");
    req.outputs = vec!["/out/passwd".into()];
    let r = f.run(&req);
    assert!(matches!(&r.status, Status::BadOutput { reason, .. } if reason.contains("symlink")), "{:?}", r.status);
}

/// A seed given the way the other backends take it (an image to one that
/// runs directories, a directory to one that runs images): refused before
/// anything runs, as `Unsupported`, naming the backend and what to do.
pub fn other_root(f: &Fixture) {
    let mut req = f.sh("mkdir /out");
    req.root = match &f.root {
        Root::Dir(_) => Root::Image(bootstrap::hash::Sha256([7; 32])),
        _ => Root::Dir(f.seed.clone()),
    };
    match f.backend.run(&req, &f.store, &NoEcho) {
        Err(e @ bootstrap::exec::ExecError::Unsupported { backend, .. }) => {
            assert_eq!(backend, f.backend.name());
            let help = miette::Diagnostic::help(&e).map(|h| h.to_string()).unwrap_or_default();
            assert!(help.contains("--backend"), "{help}");
        }
        other => panic!("expected Unsupported, got {other:?}"),
    }
}

pub fn survivors_and_scratch(f: &Fixture) {
    let r = f.run(&f.sh("mkdir /out /junk; echo x > /junk/x; echo y > /out/y; echo z > /tmp/z"));
    let layer = f.layer(&r);
    let entries: Vec<_> = fs::read_dir(&layer).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(entries, ["out"]);
    // Nor does anything reach the next step's root.
    let r = f.run(&f.sh("mkdir /out; ls /junk /tmp/z > /out/ls 2>&1 || true"));
    let ls = fs::read_to_string(f.layer(&r).join("out/ls")).unwrap();
    assert!(!ls.contains("/tmp/z\n") && !ls.lines().any(|l| l == "x"), "{ls}");

    // A layer holding a static busybox, and a need of a scratch-root step
    // (the busybox seed's binary, whatever seed this suite runs on).
    let tools = tempfile::tempdir().unwrap();
    fs::create_dir_all(tools.path().join("out/bin")).unwrap();
    fs::copy(crate::common::seeds().join("busybox/bin/busybox"), tools.path().join("out/bin/busybox")).unwrap();
    let src = tempfile::tempdir().unwrap();
    fs::write(src.path().join("hello.txt"), "hello\n").unwrap();
    let req = StepRequest {
        root: Root::Scratch,
        sources: vec![("greeting".into(), SourceInput::Tree(src.path().to_path_buf()))],
        layers: vec![tools.path().to_path_buf()],
        commands: vec![vec![
            "/out/bin/busybox".into(),
            "sh".into(),
            "-c".into(),
            "/out/bin/busybox mkdir /r; /out/bin/busybox ls -A / > /r/root; /out/bin/busybox cat /src/greeting/hello.txt > /r/src".into(),
        ]],
        env: env(),
        workdir: "/".into(),
        outputs: vec!["/r".into()],
        timeout: Duration::from_secs(60),
        hostname: "bootstrap".into(),
        source_dir: "/src".into(),
        destdir: None,
        lineage: "conformance".into(),
        fresh: false,
    };
    let r = f.run(&req);
    assert_eq!(r.status, Status::Succeeded, "{}", f.log(&r));
    let layer = f.layer(&r);
    assert_eq!(fs::read_to_string(layer.join("r/src")).unwrap(), "hello\n");
    let root: Vec<String> = fs::read_to_string(layer.join("r/root")).unwrap().lines().map(str::to_string).collect();
    let mut want: Vec<&str> = ["dev", "out", "proc", "r", "src", "tmp"].into_iter().chain(f.engine_paths.iter().copied()).collect();
    want.sort();
    assert_eq!(root, want);
}

pub fn mount_points(f: &Fixture) {
    // A need whose layer puts symlinks to host directories where the
    // sandbox mounts /tmp, /proc and /src: the mounts must replace them,
    // and nothing may be created or mounted on the host through them.
    let host = tempfile::tempdir().unwrap();
    for d in ["tmp", "proc", "src"] {
        fs::create_dir(host.path().join(d)).unwrap();
    }
    let evil = tempfile::tempdir().unwrap();
    for d in ["tmp", "proc", "src"] {
        std::os::unix::fs::symlink(host.path().join(d), evil.path().join(d)).unwrap();
    }
    // Through the layer's `src` link, the host's src/tree would add a file
    // to the tree source of that name if the link were followed.
    fs::create_dir(host.path().join("src/tree")).unwrap();
    fs::write(host.path().join("src/tree/host-file"), "host\n").unwrap();
    let tree = tempfile::tempdir().unwrap();
    fs::write(tree.path().join("mine"), "mine\n").unwrap();
    let file = tempfile::NamedTempFile::new().unwrap();
    fs::write(file.path(), "a file source\n").unwrap();
    let mut req = f.sh(
        "mkdir /out; cat /src/notes > /out/notes; ls /src/tree > /out/tree; ls /tmp > /out/tmp; test -e /proc/self/status && echo proc > /out/proc",
    );
    req.layers = vec![evil.path().to_path_buf()];
    req.sources = vec![
        ("notes".into(), SourceInput::File(file.path().to_path_buf())),
        ("tree".into(), SourceInput::Tree(tree.path().to_path_buf())),
    ];
    let r = f.run(&req);
    assert_eq!(r.status, Status::Succeeded, "{}", f.log(&r));
    let layer = f.layer(&r);
    assert_eq!(fs::read_to_string(layer.join("out/notes")).unwrap(), "a file source\n");
    assert_eq!(fs::read_to_string(layer.join("out/tmp")).unwrap(), "");
    assert_eq!(fs::read_to_string(layer.join("out/proc")).unwrap(), "proc\n");
    assert_eq!(fs::read_to_string(layer.join("out/tree")).unwrap(), "mine\n", "a host directory reached the sandbox through a layer's symlink");
    for d in ["tmp", "proc", "src"] {
        let left: Vec<_> = fs::read_dir(host.path().join(d)).unwrap().map(|e| e.unwrap().file_name()).collect();
        let expected: &[&str] = if d == "src" { &["tree"] } else { &[] };
        assert_eq!(left, expected, "the host's {d} was written through a symlink");
    }
    let left: Vec<_> = fs::read_dir(host.path().join("src/tree")).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left, ["host-file"], "the host's src/tree was written through a symlink");
}

pub fn variations(f: &Fixture) {
    let src = tempfile::tempdir().unwrap();
    fs::write(src.path().join("hello.txt"), "hello\n").unwrap();
    let mut req = f.sh("cat /proc/sys/kernel/hostname > facts; pwd -P >> facts; cat /src/greeting/hello.txt >> facts");
    req.sources = vec![("greeting".into(), SourceInput::Tree(src.path().to_path_buf()))];
    req.workdir = "/src/greeting".into();
    req.outputs = vec!["/src/greeting/facts".into()];
    let plain = f.run(&req);
    assert_eq!(plain.status, Status::Succeeded, "{}", f.log(&plain));
    assert_eq!(fs::read_to_string(f.layer(&plain).join("src/greeting/facts")).unwrap(), "bootstrap\n/src/greeting\nhello\n");
    req.hostname = "bootstrap-vary".into();
    req.source_dir = "/src-vary".into();
    let varied = f.run(&req);
    assert_eq!(varied.status, Status::Succeeded, "{}", f.log(&varied));
    // Stored under the declared path, with what the varied sandbox saw.
    assert_eq!(fs::read_to_string(f.layer(&varied).join("src/greeting/facts")).unwrap(), "bootstrap-vary\n/src-vary/greeting\nhello\n");
}

pub fn destdir(f: &Fixture) {
    // What `make install DESTDIR=/destdir` leaves: the layer holds it at
    // /usr, and nothing of the same path outside the destdir.
    let mut req = f.sh("mkdir -p /destdir/usr/bin /usr/bin; echo installed > /destdir/usr/bin/tool; echo stray > /usr/bin/stray");
    req.outputs = vec!["/usr".into()];
    req.destdir = Some("/destdir".into());
    let r = f.run(&req);
    assert_eq!(r.status, Status::Succeeded, "{}", f.log(&r));
    let layer = f.layer(&r);
    assert_eq!(fs::read_to_string(layer.join("usr/bin/tool")).unwrap(), "installed\n");
    assert!(!layer.join("usr/bin/stray").exists() && !layer.join("destdir").exists());
    // An output missing under the destdir fails the step, naming the declared path.
    let mut req = f.sh("mkdir -p /usr/lib; echo x > /usr/lib/x");
    req.outputs = vec!["/usr/lib".into()];
    req.destdir = Some("/destdir".into());
    let r = f.run(&req);
    assert!(matches!(&r.status, Status::BadOutput { path, .. } if path == "/usr/lib"), "{:?}", r.status);
}

/// Bits of the capabilities no step may hold: `NET_ADMIN` (12), `SYS_PTRACE`
/// (19), `SYS_ADMIN` (21), `MKNOD` (27).
const FORBIDDEN_CAPS: [u32; 4] = [12, 19, 21, 27];

pub fn hostile(f: &Fixture) {
    // A secret and a directory on the host, which the step knows the paths of.
    let host = tempfile::tempdir().unwrap();
    fs::write(host.path().join("secret"), "host secret\n").unwrap();
    let host_ns: Vec<String> = ["net", "mnt", "pid", "user", "uts", "ipc", "cgroup"]
        .iter()
        .filter_map(|n| fs::read_link(format!("/proc/self/ns/{n}")).ok())
        .map(|l| l.to_string_lossy().into_owned())
        .collect();
    let host_name = fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let script = format!(
        r#"mkdir -p /out; touch /out/read /out/ns /out/fds /out/did
        # Through every process's root and cwd (pid 1's was once the host's /).
        for p in /proc/[0-9]* /proc/self; do
            for l in root cwd; do
                cat "$p/$l{secret}" >> /out/read 2>/dev/null || true
                echo pwned > "$p/$l{dir}/ESCAPED" 2>/dev/null || true
            done
            for n in net mnt pid user uts ipc cgroup; do readlink "$p/ns/$n" >> /out/ns 2>/dev/null || true; done
            for fd in "$p"/fd/*; do readlink "$fd" >> /out/fds 2>/dev/null || true; done
        done
        grep -E '^Cap(Eff|Prm|Bnd)' /proc/self/status > /out/caps
        if mknod /tmp/disk b 8 0 2>/dev/null; then echo mknod >> /out/did; fi
        mkdir -p /tmp/m
        if mount -t tmpfs none /tmp/m 2>/dev/null; then echo mount >> /out/did; fi
        # Writing a host-wide value back unchanged: only the host's root could.
        v=$(cat /proc/sys/vm/overcommit_memory)
        if (echo "$v" > /proc/sys/vm/overcommit_memory) 2>/dev/null; then echo sysctl >> /out/did; fi
        if (echo evil > /proc/sys/kernel/hostname) 2>/dev/null; then echo hostname >> /out/did; fi
        if [ -e /proc/sysrq-trigger ] && (printf '' > /proc/sysrq-trigger) 2>/dev/null; then echo sysrq >> /out/did; fi
        if [ -e /proc/sys/kernel/core_pattern ] && (cat /proc/sys/kernel/core_pattern > /proc/sys/kernel/core_pattern) 2>/dev/null; then echo core_pattern >> /out/did; fi
        "#,
        secret = host.path().join("secret").display(),
        dir = host.path().display(),
    );
    let r = f.run(&f.sh(&script));
    assert_eq!(r.status, Status::Succeeded, "{}", f.log(&r));
    let layer = f.layer(&r);
    let read = |n: &str| fs::read_to_string(layer.join("out").join(n)).unwrap();
    assert_eq!(read("read"), "", "a host file was read from inside the step");
    assert!(!host.path().join("ESCAPED").exists(), "the step wrote a file on the host");
    let ns = read("ns");
    for h in host_ns.iter().filter(|h| !(f.host_user_namespace && h.starts_with("user:"))) {
        assert!(!ns.lines().any(|l| l == h), "a process inside holds the host's namespace {h}:\n{ns}");
    }
    let store = f.store.root().to_string_lossy().into_owned();
    let fds = read("fds");
    assert!(!fds.lines().any(|l| l.contains(&store) || l.contains(&*host.path().to_string_lossy())), "a descriptor inside refers to a host file:\n{fds}");
    let caps = read("caps");
    for line in caps.lines() {
        let (name, hex) = line.split_once(':').unwrap();
        let bits = u64::from_str_radix(hex.trim(), 16).unwrap();
        for c in FORBIDDEN_CAPS {
            assert_eq!(bits & (1 << c), 0, "{name} holds capability {c}:\n{caps}");
        }
    }
    assert_eq!(read("did"), "", "the step did what no step may");
    assert_eq!(fs::read_to_string("/proc/sys/kernel/hostname").unwrap(), host_name);
}

pub fn capture_after_death(f: &Fixture) {
    // A process left behind swaps a directory inside the declared output
    // with a link to /etc as fast as it can. Captured after it is dead, the
    // output holds either the directory or the link, never /etc's files.
    let script = "mkdir -p /out/d; echo safe > /out/d/f
        ( while :; do mv /out/d /out/real 2>/dev/null; ln -s /etc /out/d 2>/dev/null; rm -f /out/d; mv /out/real /out/d 2>/dev/null; done ) >/dev/null 2>&1 &
        ( while :; do echo grow >> /out/grow; done ) >/dev/null 2>&1 &
        sleep 1";
    for _ in 0..3 {
        let r = f.run(&f.sh(script));
        if r.status != Status::Succeeded {
            // The output was caught mid-swap (`/out/d` absent): refused, fine.
            assert!(matches!(r.status, Status::BadOutput { .. }), "{:?} {}", r.status, f.log(&r));
            continue;
        }
        let layer = f.layer(&r);
        for d in ["out/d", "out/real"] {
            // A link is stored as a link (and must not be followed here either).
            let Ok(m) = fs::symlink_metadata(layer.join(d)) else { continue };
            if m.is_symlink() {
                continue;
            }
            for leaked in ["passwd", "group", "hostname", "os-release"] {
                let p = layer.join(d).join(leaked);
                assert!(fs::symlink_metadata(&p).is_err(), "{} was captured", p.display());
            }
        }
        // The layer's files are what the store hashed: nothing grew after.
        let (digest, _) = r.layer.as_ref().unwrap();
        assert_eq!(&bootstrap::hash::hash_tree(&layer).unwrap().digest(), digest);
    }
}
