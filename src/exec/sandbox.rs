//! The sandbox side of the local backend. The engine re-executes the
//! `bootstrap` binary (a hidden entry point, never parsed by clap), so all
//! namespace work happens in a fresh single-threaded process:
//!
//! 1. `bootstrap __sandbox SPEC` (the *helper*) unshares the user, mount,
//!    pid, network, uts, ipc and cgroup namespaces, mapping itself to uid
//!    and gid 0 (always: as root too, so a step's capabilities never count
//!    for the host's objects), sets the hostname and mounts the step's root
//!    on a host directory: an overlay of the needs' layers over the seed (or
//!    an empty directory), one overlay per unpacked source at `/src/<name>`
//!    (the needs' `src/<name>` over the source layer), read-only file binds
//!    for file sources, a tmpfs `/tmp` and a minimal `/dev`.
//! 2. It forks pid 1 of the new pid namespace, which dies with it
//!    (`PR_SET_PDEATHSIG`): killing the helper kills everything the step
//!    started. pid 1 closes every descriptor it inherited but the log and a
//!    result pipe, mounts `/proc`, pivots into the root in a mount namespace
//!    of its own and detaches the host's, drops every capability a build
//!    does not need (bounding set included, `no_new_privs`), makes itself
//!    undumpable, and runs each command with exactly the given environment,
//!    umask 022 and the workdir. Nothing inside the step's namespaces keeps a
//!    reference to the host: `/proc/1/root` is the union, and the helper,
//!    which still sees the host, is outside the step's pid namespace.
//! 3. pid 1 is reaped only after every process of its namespace is gone.
//!    Then the helper copies the declared outputs out of the union through
//!    directory descriptors, never following a symlink ([`capture`]), and
//!    writes `result.json` for the engine. No process of the step runs any
//!    more while its outputs are read.

mod capture;
mod copy;

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use rustix::mount::{MountFlags, MountPropagationFlags, UnmountFlags};
use rustix::thread::CapabilitySet;
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
    /// Declared outputs (absolute inside), each with where it is read
    /// ([`super::StepRequest::read_path`]).
    pub outputs: Vec<(String, String)>,
    /// The hostname.
    pub hostname: String,
    /// Where sources are mounted (`/src`, or elsewhere with `/src/<name>` links).
    pub source_dir: String,
    /// A union of at most this many bytes is copied into a tmpfs rather
    /// than mounted as an overlay (0: always an overlay).
    pub copy_limit: u64,
    /// The most a step may write to `/tmp` (a tmpfs: memory).
    pub tmp_limit: u64,
    /// The most a step may write to a union copied into a tmpfs, beyond
    /// what was copied (over an overlay the engine measures it instead).
    pub scratch_limit: u64,
    /// The most processes the step may have at once.
    pub proc_limit: u64,
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

/// The most pid 1 may say about how the commands ended (a JSON [`Outcome`]).
const RESULT_LIMIT: u64 = 64 * 1024;

fn helper(spec_path: &str) -> Result<i32, String> {
    use rustix::thread::UnshareFlags as U;
    let uid = rustix::process::getuid().as_raw();
    let gid = rustix::process::getgid().as_raw();
    // Always a user namespace, also for root: a step's capabilities then
    // count only for objects its namespaces own, never for the host's.
    let flags = U::NEWUSER | U::NEWNS | U::NEWPID | U::NEWNET | U::NEWUTS | U::NEWIPC | U::NEWCGROUP;
    // SAFETY: this process is single-threaded (a fresh exec that has started
    // no threads), so no other thread can observe the unshared state.
    unsafe { rustix::thread::unshare_unsafe(flags) }.map_err(|e| err("unshare", e))?;
    fs::write("/proc/self/setgroups", "deny").map_err(|e| err("setgroups", e))?;
    fs::write("/proc/self/uid_map", format!("0 {uid} 1")).map_err(|e| err("uid_map", e))?;
    fs::write("/proc/self/gid_map", format!("0 {gid} 1")).map_err(|e| err("gid_map", e))?;
    let spec = read_spec(spec_path).map_err(|e| err("spec", e))?;
    rustix::system::sethostname(spec.hostname.as_bytes()).map_err(|e| err("sethostname", e))?;
    // Nothing mounted from here on may propagate back to the host.
    rustix::mount::mount_change("/", MountPropagationFlags::PRIVATE | MountPropagationFlags::REC)
        .map_err(|e| err("make / private", e))?;
    let outcome = match build_root(&spec) {
        Ok(merged) => run_pid1(&spec, &merged)?,
        Err(e) => Outcome::SetupFailed(e),
    };
    let bytes = serde_json::to_vec(&outcome).map_err(|e| err("result", e))?;
    fs::write(spec.run_dir.join("result.json"), bytes).map_err(|e| err("cannot write the result", e))?;
    Ok(if outcome == Outcome::Succeeded { 0 } else { 1 })
}

/// Forks pid 1, waits until it and with it every process of the step's
/// pid namespace is gone, then captures the outputs.
fn run_pid1(spec: &Spec, merged: &Path) -> Result<Outcome, String> {
    use std::io::Read;
    let (reader, writer) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).map_err(|e| err("pipe", e))?;
    let merged_c = CString::new(merged.as_os_str().as_encoded_bytes()).map_err(|e| err("root path", e))?;
    // SAFETY: this process is single-threaded, so the child of fork() is a
    // complete copy that may allocate, run `init` and spawn commands.
    match unsafe { libc::fork() } {
        -1 => Err(err("fork pid 1", io::Error::last_os_error())),
        0 => {
            drop(reader);
            // pid 1 of the new namespace; it dies when the helper does.
            let outcome = match rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL)) {
                Ok(()) => init(spec, &merged_c, &writer).unwrap_or_else(Outcome::SetupFailed),
                Err(e) => Outcome::SetupFailed(err("set the parent-death signal", e)),
            };
            let bytes = serde_json::to_vec(&outcome).unwrap_or_default();
            let _ = rustix::io::write(&writer, &bytes);
            // SAFETY: ends pid 1 at once; the helper's buffers and
            // destructors are the helper's to run, not this copy's.
            unsafe { libc::_exit(0) }
        }
        pid => {
            drop(writer);
            let mut said = Vec::new();
            let _ = fs::File::from(reader).take(RESULT_LIMIT).read_to_end(&mut said);
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
            // pid 1 is reaped only once every process of its namespace has
            // been: from here on nothing of the step can change the union.
            let Ok(outcome) = serde_json::from_slice::<Outcome>(&said) else {
                return Ok(Outcome::SetupFailed("pid 1 of the sandbox ended without saying how the commands ended".into()));
            };
            if outcome != Outcome::Succeeded {
                return Ok(outcome);
            }
            for (out, real) in &spec.outputs {
                if let Err(reason) = capture::capture(merged, real, out, &spec.capture) {
                    return Ok(Outcome::BadOutput(out.clone(), reason));
                }
            }
            Ok(Outcome::Succeeded)
        }
    }
}

/// Mounts the union of `lowers` (top first) on `target`: copied into a
/// tmpfs when it is at most `spec.copy_limit` bytes ([`copy`]), else an
/// overlay with `upper` and `work`.
fn union(spec: &Spec, lowers: &[PathBuf], upper: &Path, work: &Path, target: &Path) -> Result<(), String> {
    if let Some(size) = copy::small(lowers, spec.copy_limit)
        && copy::materialize(lowers, target, size.saturating_add(spec.scratch_limit)).is_ok()
    {
        return Ok(());
    }
    overlay(lowers, upper, work, target)
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
    // Mounted in a user namespace: overlay keeps its own metadata (whiteouts,
    // opaque directories) in `user.overlay.*` xattrs, which it may set there.
    data.push_str(&format!(",upperdir={},workdir={},userxattr", upper.display(), work.display()));
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

/// Mounts the step's root on `run_dir/merged` in the helper's mount
/// namespace: the union of the needs' layers over the seed (or nothing), the
/// sources, `/tmp` and `/dev`. `/proc` is pid 1's to mount: it must show the
/// step's pid namespace.
fn build_root(spec: &Spec) -> Result<PathBuf, String> {
    let run = &spec.run_dir;
    let merged = run.join("merged");
    for d in ["upper", "work", "merged", "src-up", "src-work"] {
        mkdirs(&run.join(d))?;
    }
    union(spec, &spec.lowers, &run.join("upper"), &run.join("work"), &merged)?;
    let src_dir = spec.source_dir.trim_matches('/').to_string();
    for (name, src) in &spec.sources {
        match src {
            SpecSource::Tree(lowers) => {
                let target = mount_point(&merged, &format!("{src_dir}/{name}"), false)?;
                let (up, work) = (run.join("src-up").join(name), run.join("src-work").join(name));
                mkdirs(&up)?;
                mkdirs(&work)?;
                union(spec, lowers, &up, &work, &target)?;
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
    let options = CString::new(format!("mode=1777,size={}", spec.tmp_limit)).map_err(|e| err("tmpfs options", e))?;
    rustix::mount::mount("tmpfs", &tmp, "tmpfs", MountFlags::NOSUID | MountFlags::NODEV, options.as_c_str())
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
    mount_point(&merged, "proc", false)?;
    Ok(merged)
}

/// Parts of `/proc` (relative to the root, which is the working directory)
/// that act on the whole machine rather than the step's namespaces. The
/// step's uid 0 may be the host's uid 0 seen through the user namespace
/// (when the engine runs as root), and the kernel checks some of these by
/// uid alone: `sysrq-trigger`, and `sys/kernel/core_pattern`, say. They are
/// made read-only, or hidden, before the step starts; without `SYS_ADMIN`
/// it cannot undo either.
const PROC_READ_ONLY: &[&str] = &["proc/sys", "proc/sysrq-trigger", "proc/irq", "proc/bus", "proc/fs"];
const PROC_HIDDEN_FILES: &[&str] =
    &["proc/kcore", "proc/keys", "proc/timer_list", "proc/sched_debug", "proc/latency_stats", "proc/kmsg", "proc/kallsyms"];
const PROC_HIDDEN_DIRS: &[&str] = &["proc/acpi", "proc/scsi", "proc/driver"];

fn mask_proc() -> Result<(), String> {
    let exists = |p: &str| fs::symlink_metadata(p).is_ok();
    for p in PROC_READ_ONLY.iter().filter(|p| exists(p)) {
        rustix::mount::mount_bind(*p, *p).map_err(|e| err(&format!("bind /{p}"), e))?;
        rustix::mount::mount_remount(*p, MountFlags::BIND | MountFlags::RDONLY | MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC, "")
            .map_err(|e| err(&format!("read-only /{p}"), e))?;
    }
    for p in PROC_HIDDEN_FILES.iter().filter(|p| exists(p)) {
        rustix::mount::mount_bind("dev/null", *p).map_err(|e| err(&format!("hide /{p}"), e))?;
    }
    for p in PROC_HIDDEN_DIRS.iter().filter(|p| exists(p)) {
        rustix::mount::mount("tmpfs", *p, "tmpfs", MountFlags::RDONLY | MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC, c"size=0")
            .map_err(|e| err(&format!("hide /{p}"), e))?;
    }
    Ok(())
}

/// Takes every capability not in [`super::STEP_CAPABILITIES`] away for
/// good: from the bounding set (no exec can give it back) and from every set
/// this process holds.
fn drop_capabilities() -> Result<(), String> {
    let kept = CapabilitySet::from_bits_retain(super::STEP_CAPABILITIES.iter().fold(0u64, |m, (_, bit)| m | 1 << bit));
    for cap in 0..64u32 {
        if kept.bits() & (1u64 << cap) != 0 {
            continue;
        }
        // SAFETY: prctl with integer arguments; EINVAL past the kernel's last capability.
        if unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) } != 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EINVAL) {
                return Err(err(&format!("drop capability {cap}"), e));
            }
        }
    }
    rustix::thread::clear_ambient_capability_set().map_err(|e| err("clear ambient capabilities", e))?;
    let sets = rustix::thread::CapabilitySets { effective: kept, permitted: kept, inheritable: CapabilitySet::empty() };
    rustix::thread::set_capabilities(None, sets).map_err(|e| err("capset", e))?;
    rustix::thread::set_no_new_privs(true).map_err(|e| err("no_new_privs", e))
}

/// pid 1 of the sandbox: enters the root for good, gives up what no step
/// may hold, and runs the commands in order. Its root and working directory
/// are the union's, its only descriptors the log (from the engine) and
/// `result` (a pipe to the helper), and it is not dumpable, so a step
/// cannot reach even those through `/proc/1`.
fn init(spec: &Spec, merged: &CString, result: &rustix::fd::OwnedFd) -> Result<Outcome, String> {
    use std::os::fd::AsRawFd;
    let keep = result.as_raw_fd();
    for (from, to) in [(3, keep - 1), (keep + 1, i32::MAX)] {
        if from <= to {
            // SAFETY: closes descriptors only; this single thread uses none of them.
            unsafe { libc::syscall(libc::SYS_close_range, from as libc::c_uint, to as libc::c_uint, 0 as libc::c_uint) };
        }
    }
    // SAFETY: pid 1 is single-threaded.
    unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWNS) }.map_err(|e| err("unshare the mount namespace", e))?;
    rustix::mount::mount_change(c"/", MountPropagationFlags::PRIVATE | MountPropagationFlags::REC)
        .map_err(|e| err("make / private", e))?;
    rustix::process::chdir(merged.as_c_str()).map_err(|e| err("enter the root", e))?;
    rustix::mount::mount("proc", "proc", "proc", MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC, None::<&std::ffi::CStr>)
        .map_err(|e| err("mount /proc", e))?;
    mask_proc()?;
    rustix::process::pivot_root(c".", c".").map_err(|e| err("pivot_root", e))?;
    rustix::mount::unmount(c".", UnmountFlags::DETACH).map_err(|e| err("detach the host root", e))?;
    rustix::process::chdir(c"/").map_err(|e| err("chdir /", e))?;
    // stdin was the host's /dev/null: the sandbox's own replaces it.
    let null = rustix::fs::open(c"/dev/null", rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC, rustix::fs::Mode::empty())
        .map_err(|e| err("open /dev/null", e))?;
    rustix::stdio::dup2_stdin(&null).map_err(|e| err("stdin", e))?;
    drop(null);
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o022));
    // No controlling terminal: the engine's, if it has one, is not the step's.
    rustix::process::setsid().map_err(|e| err("setsid", e))?;
    drop_capabilities()?;
    // Counted per user namespace (Linux 5.14 and later), so this bounds the
    // step's own processes; without CAP_SYS_RESOURCE it cannot raise it.
    let nproc = rustix::process::Rlimit { current: Some(spec.proc_limit), maximum: Some(spec.proc_limit) };
    rustix::process::setrlimit(rustix::process::Resource::Nproc, nproc).map_err(|e| err("limit processes", e))?;
    rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
        .map_err(|e| err("not dumpable", e))?;

    for (index, argv) in spec.commands.iter().enumerate() {
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..]).env_clear().envs(spec.env.iter().map(|(k, v)| (k, v))).current_dir(&spec.workdir);
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
    Ok(Outcome::Succeeded)
}
