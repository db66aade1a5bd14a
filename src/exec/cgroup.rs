//! A control group per step, bounding its processes and its memory.
//!
//! The step's helper joins the group before it starts anything, so every
//! process of the step is counted, and the group is removed after the
//! step. Where the controllers are mounted as cgroup v1 hierarchies (the
//! `pids` and `memory` ones, writable by the engine, i.e. root), each gets
//! a group `bootstrap-<pid>-<n>` under the engine's own. On a pure cgroup v2
//! host a group must be delegated to the engine, which this does not set
//! up: there, and without root, the only bound is `RLIMIT_NPROC`, which the
//! kernel counts per user namespace but waives for the host's uid 0 (so it
//! binds only an engine that does not run as root), and memory is not
//! bounded. The README says so.

use std::ffi::CString;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

static NEXT: AtomicU64 = AtomicU64::new(0);

/// Where a v1 controller is mounted and the engine's group in it.
fn v1_controller(name: &str) -> Option<PathBuf> {
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").ok()?;
    let mount = mountinfo.lines().find_map(|l| {
        let (left, right) = l.split_once(" - ")?;
        let mut r = right.split(' ');
        let (fstype, _, options) = (r.next()?, r.next()?, r.next()?);
        (fstype == "cgroup" && options.split(',').any(|o| o == name)).then(|| left.split(' ').nth(4).map(PathBuf::from))?
    })?;
    let cgroups = fs::read_to_string("/proc/self/cgroup").ok()?;
    let own = cgroups.lines().find_map(|l| {
        let mut parts = l.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        controllers.split(',').any(|c| c == name).then(|| path.trim_start_matches('/').to_string())
    })?;
    Some(mount.join(own))
}

/// A step's groups; removed when dropped.
#[derive(Debug)]
pub struct StepGroups {
    dirs: Vec<PathBuf>,
    /// `cgroup.procs` of each group, for the helper to join before it runs.
    pub procs: Vec<CString>,
}

impl StepGroups {
    /// Groups bounding the step to `pids` processes and `memory` bytes,
    /// where the v1 controllers allow it; empty otherwise.
    pub fn create(pids: u64, memory: u64) -> StepGroups {
        let name = format!("bootstrap-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let mut groups = StepGroups { dirs: Vec::new(), procs: Vec::new() };
        for (controller, file, value) in [("pids", "pids.max", pids), ("memory", "memory.limit_in_bytes", memory)] {
            let Some(base) = v1_controller(controller) else { continue };
            let dir = base.join(&name);
            if fs::create_dir(&dir).is_err() {
                continue;
            }
            let procs = CString::new(dir.join("cgroup.procs").into_os_string().into_encoded_bytes()).ok();
            match (fs::write(dir.join(file), value.to_string()), procs) {
                (Ok(()), Some(p)) => {
                    groups.procs.push(p);
                    groups.dirs.push(dir);
                }
                _ => drop(fs::remove_dir(&dir)),
            }
        }
        groups
    }
}

/// Joins the groups: called in the helper between fork and exec, so only
/// system calls on prepared paths.
pub fn join(procs: &[CString]) -> std::io::Result<()> {
    for p in procs {
        let fd = rustix::fs::open(p.as_c_str(), rustix::fs::OFlags::WRONLY | rustix::fs::OFlags::CLOEXEC, rustix::fs::Mode::empty())?;
        rustix::io::write(&fd, b"0")?;
    }
    Ok(())
}

impl Drop for StepGroups {
    fn drop(&mut self) {
        for d in &self.dirs {
            // The last processes may still be on their way out.
            for _ in 0..50 {
                if fs::remove_dir(d).is_ok() || !Path::new(d).exists() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
    }
}
