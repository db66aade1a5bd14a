//! The sandbox side of the local backend. The engine re-executes the
//! `bootstrap` binary (a hidden entry point, never parsed by clap), so all
//! namespace work happens in a fresh single-threaded process:
//!
//! 1. `bootstrap __sandbox SPEC` unshares the mount, pid, network, uts and
//!    ipc namespaces (and a user namespace mapping itself to uid/gid 0 when
//!    not root), sets the hostname, and forks step 2 as pid 1 of the new pid
//!    namespace, which dies with it (`PR_SET_PDEATHSIG`): killing this
//!    process kills everything the step started. (A fork, not an exec: the
//!    helper is single-threaded, and an exec per step is measurable.)
//! 2. pid 1 mounts the root union on a host
//!    directory: an overlay of the needs' layers over the seed (or an empty
//!    directory), one overlay per unpacked source at `/src/<name>` (the needs'
//!    `src/<name>` over the source layer), read-only file binds for file
//!    sources, a tmpfs `/tmp`, a minimal `/dev` and `/proc`. It runs each
//!    command in a nested mount namespace that pivots into the union, with
//!    exactly the given environment and umask 022. Then, still seeing the
//!    host, it copies the declared outputs out of the union (never following
//!    a symlink) and writes `result.json` for the engine.

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use rustix::mount::{MountFlags, MountPropagationFlags, UnmountFlags};
use serde::{Deserialize, Serialize};

/// The first argument that selects the namespace helper.
pub const HELPER_ARG: &str = "__sandbox";

/// A source as the sandbox mounts it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum SpecSource {
    /// Overlay of these directories, top first.
    Tree(Vec<PathBuf>),
    /// Read-only bind of this file.
    File(PathBuf),
}

/// What the engine hands the sandbox processes (as JSON in the run directory).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Spec {
    /// Host directory of this run: `upper/`, `work/`, `merged/`, `src-up/`, `src-work/`.
    pub run_dir: PathBuf,
    /// Where outputs are copied to (host path).
    pub capture: PathBuf,
    /// Root overlay lower directories, top first (never empty).
    pub lowers: Vec<PathBuf>,
    /// Sources by name.
    pub sources: Vec<(String, SpecSource)>,
    /// Commands in order.
    pub commands: Vec<Vec<String>>,
    /// The whole environment.
    pub env: Vec<(String, String)>,
    /// Working directory inside.
    pub workdir: String,
    /// Declared outputs (absolute inside).
    pub outputs: Vec<String>,
    /// The hostname.
    pub hostname: String,
    /// Where sources are mounted (`/src`, or elsewhere with `/src/<name>` links).
    pub source_dir: String,
}

/// What pid 1 reports back.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub enum Outcome {
    /// All commands succeeded and outputs were captured.
    Succeeded,
    /// A command exited non-zero.
    Exited(usize, i32),
    /// A command was killed by a signal.
    Signaled(usize, i32),
    /// An output could not be captured.
    BadOutput(String, String),
    /// The sandbox could not be set up.
    SetupFailed(String),
}

fn read_spec(path: &str) -> io::Result<Spec> {
    serde_json::from_slice(&fs::read(path)?).map_err(io::Error::other)
}

fn err(what: &str, e: impl std::fmt::Display) -> String {
    format!("{what}: {e}")
}

/// Entry point of `bootstrap __sandbox SPEC`; returns the process exit code.
pub fn helper_main(spec_path: &str) -> i32 {
    match helper(spec_path) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("bootstrap sandbox: {e}");
            125
        }
    }
}

fn helper(spec_path: &str) -> Result<i32, String> {
    use rustix::thread::UnshareFlags as U;
    let uid = rustix::process::getuid().as_raw();
    let gid = rustix::process::getgid().as_raw();
    let mut flags = U::NEWNS | U::NEWPID | U::NEWNET | U::NEWUTS | U::NEWIPC;
    if uid != 0 {
        flags |= U::NEWUSER;
    }
    // SAFETY: this process is single-threaded (a fresh exec that has started
    // no threads), so no other thread can observe the unshared state.
    unsafe { rustix::thread::unshare_unsafe(flags) }.map_err(|e| err("unshare", e))?;
    if uid != 0 {
        fs::write("/proc/self/setgroups", "deny").map_err(|e| err("setgroups", e))?;
        fs::write("/proc/self/uid_map", format!("0 {uid} 1")).map_err(|e| err("uid_map", e))?;
        fs::write("/proc/self/gid_map", format!("0 {gid} 1")).map_err(|e| err("gid_map", e))?;
    }
    let spec = read_spec(spec_path).map_err(|e| err("spec", e))?;
    rustix::system::sethostname(spec.hostname.as_bytes()).map_err(|e| err("sethostname", e))?;
    // Nothing mounted from here on may propagate back to the host.
    rustix::mount::mount_change("/", MountPropagationFlags::PRIVATE | MountPropagationFlags::REC)
        .map_err(|e| err("make / private", e))?;
    // SAFETY: this process is single-threaded, so the child of fork() is a
    // complete copy that may allocate, run `init` and spawn commands.
    match unsafe { libc::fork() } {
        -1 => Err(err("fork pid 1", io::Error::last_os_error())),
        0 => {
            // pid 1 of the new namespace; it dies when the helper does.
            let code = match rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL)) {
                Ok(()) => init_main(spec_path),
                Err(e) => {
                    eprintln!("bootstrap sandbox: set the parent-death signal: {e}");
                    125
                }
            };
            std::process::exit(code)
        }
        pid => {
            let mut status = 0;
            loop {
                // SAFETY: waits for the child just forked; `status` is a valid out-pointer.
                if unsafe { libc::waitpid(pid, &mut status, 0) } == pid {
                    break;
                }
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(err("wait for pid 1", e));
                }
            }
            Ok(if libc::WIFEXITED(status) { libc::WEXITSTATUS(status) } else { 125 })
        }
    }
}

/// pid 1 of the sandbox: sets up, runs, captures, writes the result.
fn init_main(spec_path: &str) -> i32 {
    let outcome = match read_spec(spec_path) {
        Err(e) => {
            eprintln!("bootstrap sandbox: {e}");
            return 125;
        }
        Ok(spec) => {
            let outcome = init(&spec).unwrap_or_else(Outcome::SetupFailed);
            let written = serde_json::to_vec(&outcome)
                .map_err(io::Error::other)
                .and_then(|b| fs::write(spec.run_dir.join("result.json"), b));
            if let Err(e) = written {
                eprintln!("bootstrap sandbox: cannot write the result: {e}");
                return 125;
            }
            outcome
        }
    };
    if outcome == Outcome::Succeeded { 0 } else { 1 }
}

fn overlay(lowers: &[PathBuf], upper: &Path, work: &Path, target: &Path) -> Result<(), String> {
    let mut data = String::from("lowerdir=");
    for (i, l) in lowers.iter().enumerate() {
        let s = l.to_str().ok_or_else(|| format!("{} is not UTF-8", l.display()))?;
        if s.contains([':', ',']) {
            return Err(format!("overlayfs cannot take a path with `:` or `,`: {s}"));
        }
        if i > 0 {
            data.push(':');
        }
        data.push_str(s);
    }
    data.push_str(&format!(",upperdir={},workdir={}", upper.display(), work.display()));
    let data = CString::new(data).map_err(|e| err("overlay options", e))?;
    rustix::mount::mount("overlay", target, "overlay", MountFlags::empty(), data.as_c_str())
        .map_err(|e| err(&format!("mount overlay on {}", target.display()), e))
}

fn mkdirs(p: &Path) -> Result<(), String> {
    fs::create_dir_all(p).map_err(|e| err(&format!("mkdir {}", p.display()), e))
}

/// Makes `root/rel` a directory (or, with `file`, a regular file) to mount
/// on, without following a symlink the seed or a layer put on the way: a
/// `tmp -> /etc` from a layer must not turn a mount point, or an empty file
/// written for one, into a path on the host. Whatever is in the way is
/// removed (in the merged root, so only the scratch upper layer changes):
/// the contract's mounts win over the root's own entries.
fn mount_point(root: &Path, rel: &str, file: bool) -> Result<PathBuf, String> {
    let parts: Vec<&str> = rel.split('/').filter(|c| !c.is_empty()).collect();
    let mut p = root.to_path_buf();
    for (i, part) in parts.iter().enumerate() {
        p.push(part);
        let last = i + 1 == parts.len();
        let meta = fs::symlink_metadata(&p).ok();
        let fail = |e: std::io::Error| err(&format!("mount point /{rel}"), e);
        if last && file {
            match meta {
                Some(m) if m.is_file() => {}
                Some(m) => {
                    if m.is_dir() { fs::remove_dir_all(&p) } else { fs::remove_file(&p) }.map_err(fail)?;
                    fs::OpenOptions::new().write(true).create_new(true).open(&p).map_err(fail)?;
                }
                None => drop(fs::OpenOptions::new().write(true).create_new(true).open(&p).map_err(fail)?),
            }
        } else {
            match meta {
                Some(m) if m.is_dir() => {}
                Some(_) => {
                    fs::remove_file(&p).map_err(fail)?;
                    fs::create_dir(&p).map_err(fail)?;
                }
                None => fs::create_dir(&p).map_err(fail)?,
            }
        }
    }
    Ok(p)
}

const DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];

fn init(spec: &Spec) -> Result<Outcome, String> {
    let run = &spec.run_dir;
    let merged = run.join("merged");
    for d in ["upper", "work", "merged", "src-up", "src-work"] {
        mkdirs(&run.join(d))?;
    }
    overlay(&spec.lowers, &run.join("upper"), &run.join("work"), &merged)?;
    let src_dir = spec.source_dir.trim_matches('/').to_string();
    for (name, src) in &spec.sources {
        match src {
            SpecSource::Tree(lowers) => {
                let target = mount_point(&merged, &format!("{src_dir}/{name}"), false)?;
                let (up, work) = (run.join("src-up").join(name), run.join("src-work").join(name));
                mkdirs(&up)?;
                mkdirs(&work)?;
                overlay(lowers, &up, &work, &target)?;
            }
            SpecSource::File(file) => {
                let target = mount_point(&merged, &format!("{src_dir}/{name}"), true)?;
                rustix::mount::mount_bind(file, &target).map_err(|e| err("bind source file", e))?;
                rustix::mount::mount_remount(&target, MountFlags::BIND | MountFlags::RDONLY, "")
                    .map_err(|e| err("read-only source file", e))?;
            }
        }
    }
    if src_dir != "src" && !spec.sources.is_empty() {
        // /src becomes a fresh directory of links into the real place, so
        // paths resolve (`pwd -P`, realpath) to another build path.
        let src = mount_point(&merged, "src", false)?;
        rustix::mount::mount("tmpfs", &src, "tmpfs", MountFlags::NOSUID | MountFlags::NODEV, c"mode=755")
            .map_err(|e| err("mount /src", e))?;
        for (name, _) in &spec.sources {
            std::os::unix::fs::symlink(format!("/{src_dir}/{name}"), src.join(name)).map_err(|e| err("link /src", e))?;
        }
    }
    let tmp = mount_point(&merged, "tmp", false)?;
    rustix::mount::mount("tmpfs", &tmp, "tmpfs", MountFlags::NOSUID | MountFlags::NODEV, c"mode=1777")
        .map_err(|e| err("mount /tmp", e))?;
    let dev = mount_point(&merged, "dev", false)?;
    rustix::mount::mount("tmpfs", &dev, "tmpfs", MountFlags::NOSUID | MountFlags::NOEXEC, c"mode=755")
        .map_err(|e| err("mount /dev", e))?;
    for d in DEVICES {
        // A fresh tmpfs: nothing in the way.
        let node = dev.join(d);
        fs::write(&node, b"").map_err(|e| err("device mount point", e))?;
        rustix::mount::mount_bind(Path::new("/dev").join(d), &node).map_err(|e| err(&format!("bind /dev/{d}"), e))?;
    }
    let proc = mount_point(&merged, "proc", false)?;
    rustix::mount::mount(
        "proc",
        &proc,
        "proc",
        MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC,
        None::<&std::ffi::CStr>,
    )
    .map_err(|e| err("mount /proc", e))?;
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o022));

    let root_c = CString::new(merged.as_os_str().as_encoded_bytes()).map_err(|e| err("root path", e))?;
    let workdir_c = CString::new(spec.workdir.as_bytes()).map_err(|e| err("workdir", e))?;
    for (index, argv) in spec.commands.iter().enumerate() {
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..]).env_clear().envs(spec.env.iter().map(|(k, v)| (k, v))).stdin(Stdio::null());
        let (root_c, workdir_c) = (root_c.clone(), workdir_c.clone());
        // SAFETY: pid 1 is single-threaded; the closure makes syscalls only
        // and uses no allocation (its paths were made before the fork).
        unsafe {
            cmd.pre_exec(move || {
                use rustix::thread::UnshareFlags as U;
                rustix::thread::unshare_unsafe(U::NEWNS)?;
                rustix::mount::mount_change(c"/", MountPropagationFlags::PRIVATE | MountPropagationFlags::REC)?;
                rustix::process::chdir(root_c.as_c_str())?;
                rustix::process::pivot_root(c".", c".")?;
                rustix::mount::unmount(c".", UnmountFlags::DETACH)?;
                rustix::process::chdir(c"/")?;
                rustix::process::chdir(workdir_c.as_c_str())?;
                Ok(())
            });
        }
        let status = match cmd.status() {
            Ok(s) => s,
            Err(e) => {
                eprintln!("bootstrap sandbox: cannot run {:?}: {e}", argv[0]);
                return Ok(Outcome::Exited(index, 127));
            }
        };
        if let Some(sig) = status.signal() {
            return Ok(Outcome::Signaled(index, sig));
        }
        match status.code() {
            Some(0) => {}
            Some(code) => return Ok(Outcome::Exited(index, code)),
            None => return Ok(Outcome::Exited(index, 125)),
        }
    }
    for out in &spec.outputs {
        let real = super::real_output_path(&spec.source_dir, spec.sources.iter().map(|(n, _)| n.as_str()), out);
        if let Err(reason) = capture(&merged, &real, out, &spec.capture) {
            return Ok(Outcome::BadOutput(out.clone(), reason));
        }
    }
    Ok(Outcome::Succeeded)
}

/// Copies the entry at `real` (absolute inside the sandbox; the declared
/// output `out`, or where a varied build path really put it) from the union
/// at `root` to `out` under `capture`. No symlink is ever followed: one on
/// the way to the output is refused, one at or under it is copied as a link.
fn capture(root: &Path, real: &str, out: &str, capture: &Path) -> Result<(), String> {
    let rel = real.trim_start_matches('/');
    let mut here = root.to_path_buf();
    let comps: Vec<&str> = rel.split('/').collect();
    for (i, c) in comps.iter().enumerate() {
        here.push(c);
        let meta = fs::symlink_metadata(&here).map_err(|_| "it does not exist".to_string())?;
        if i + 1 < comps.len() && !meta.is_dir() {
            let what = if meta.is_symlink() { "a symlink" } else { "not a directory" };
            return Err(format!("`/{}` on the way to it is {what}", comps[..=i].join("/")));
        }
    }
    copy_entry(&here, &capture.join(out.trim_start_matches('/')), out)
}

fn copy_entry(from: &Path, to: &Path, shown: &str) -> Result<(), String> {
    let meta = fs::symlink_metadata(from).map_err(|e| err(shown, e))?;
    if let Some(parent) = to.parent() {
        fs::create_dir_all(parent).map_err(|e| err("capture", e))?;
    }
    let ft = meta.file_type();
    if ft.is_symlink() {
        let target = fs::read_link(from).map_err(|e| err(shown, e))?;
        std::os::unix::fs::symlink(target, to).map_err(|e| err("capture", e))
    } else if ft.is_file() {
        fs::copy(from, to).map_err(|e| err("capture", e))?;
        let exec = meta.permissions().mode() & 0o111 != 0;
        fs::set_permissions(to, fs::Permissions::from_mode(if exec { 0o755 } else { 0o644 })).map_err(|e| err("capture", e))
    } else if ft.is_dir() {
        fs::create_dir_all(to).map_err(|e| err("capture", e))?;
        let mut names: Vec<_> = fs::read_dir(from).map_err(|e| err(shown, e))?.filter_map(Result::ok).map(|d| d.file_name()).collect();
        names.sort();
        for n in names {
            let sub = format!("{shown}/{}", n.to_string_lossy());
            copy_entry(&from.join(&n), &to.join(&n), &sub)?;
        }
        Ok(())
    } else {
        Err(format!("`{shown}` is not a regular file, directory or symlink"))
    }
}
