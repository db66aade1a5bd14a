//! The local backend: Linux namespaces and overlayfs, no daemon. The engine
//! side writes a [`Spec`] into a run directory under the store's `tmp/`,
//! starts `bootstrap __sandbox` (see [`super::sandbox`]) with stdout and
//! stderr going to the log, enforces the timeout by killing it (which takes
//! the whole pid namespace with it), then stores the log and the captured
//! outputs.

use std::fs::{self, File};
use std::path::PathBuf;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::sandbox::{HELPER_ARG, Outcome, Spec, SpecSource};
use super::{ExecError, Executor, LogSink, Root, SourceInput, Status, StepLimits, StepRequest, StepResult};
use crate::store::Store;

/// The local backend. `helper` is the `bootstrap` executable that provides
/// the sandbox entry points (the running binary, or the built one in tests).
#[derive(Debug, Clone)]
pub struct LocalBackend {
    helper: PathBuf,
    copy_limit: u64,
    limits: StepLimits,
    cancel: super::cancel::Cancel,
}

/// Unions up to this size are copied into a tmpfs rather than mounted as
/// overlays (see `sandbox::copy`): the whole of stage0 fits, a seed's root
/// filesystem or gcc's sources do not.
pub const DEFAULT_COPY_LIMIT: u64 = 64 << 20;

impl LocalBackend {
    /// A backend that re-executes `helper` for each sandbox.
    pub fn new(helper: PathBuf) -> Self {
        LocalBackend { helper, copy_limit: DEFAULT_COPY_LIMIT, limits: StepLimits::default(), cancel: Default::default() }
    }

    /// The same, holding each step to `limits`.
    pub fn with_limits(mut self, limits: StepLimits) -> Self {
        self.limits = limits;
        self
    }

    /// The same, stopping a running step (and returning
    /// [`ExecError::Interrupted`]) when `cancel` is set.
    pub fn with_cancel(mut self, cancel: super::cancel::Cancel) -> Self {
        self.cancel = cancel;
        self
    }

    /// The same, copying unions of at most `limit` bytes (0: never).
    pub fn with_copy_limit(mut self, limit: u64) -> Self {
        self.copy_limit = limit;
        self
    }
}

fn sandbox_err(what: &str, e: impl std::fmt::Display) -> ExecError {
    ExecError::Sandbox(format!("{what}: {e}"))
}

impl LocalBackend {
    fn spec(&self, req: &StepRequest, run: &std::path::Path, capture: &std::path::Path) -> Result<Spec, ExecError> {
        let empty = run.join("empty");
        fs::create_dir_all(&empty).map_err(|e| sandbox_err("run directory", e))?;
        let mut lowers: Vec<PathBuf> = req.layers.iter().rev().cloned().collect();
        lowers.push(match &req.root {
            Root::Scratch => empty.clone(),
            Root::Dir(d) => d.clone(),
            Root::Image(id) => {
                return Err(ExecError::Unsupported {
                    backend: "local",
                    message: format!("it runs seeds from root filesystem directories, and was given the image {id}"),
                    help: "give the seed as a directory or tarball (`--seed NAME=PATH`), or use `--backend oci`".into(),
                });
            }
        });
        let sources = req
            .sources
            .iter()
            .map(|(name, input)| {
                let s = match input {
                    SourceInput::File(f) => SpecSource::File(f.clone()),
                    SourceInput::Tree(dir) => {
                        // The needs' files under /src/<name> go over the source
                        // tree: only where `src` and `src/<name>` are real
                        // directories of the layer. A symlink there points
                        // into the host, here on the engine's side.
                        let real_dir = |p: &std::path::Path| fs::symlink_metadata(p).is_ok_and(|m| m.is_dir());
                        let mut l: Vec<PathBuf> = req
                            .layers
                            .iter()
                            .rev()
                            .filter(|layer| real_dir(&layer.join("src")))
                            .map(|layer| layer.join("src").join(name))
                            .filter(|p| real_dir(p))
                            .collect();
                        l.push(dir.clone());
                        SpecSource::Tree(l)
                    }
                };
                (name.clone(), s)
            })
            .collect();
        Ok(Spec {
            run_dir: run.to_path_buf(),
            capture: capture.to_path_buf(),
            lowers,
            sources,
            commands: req.commands.clone(),
            env: req.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            workdir: req.workdir.clone(),
            outputs: req.outputs.iter().map(|o| (o.clone(), req.read_path(o))).collect(),
            hostname: req.hostname.clone(),
            source_dir: req.source_dir.clone(),
            copy_limit: self.copy_limit,
            tmp_limit: self.limits.tmp,
            scratch_limit: self.limits.scratch,
            proc_limit: self.limits.processes,
        })
    }
}

impl Executor for LocalBackend {
    fn name(&self) -> &'static str {
        "local"
    }

    fn run(&self, req: &StepRequest, store: &Store, echo: &dyn LogSink) -> Result<StepResult, ExecError> {
        let started = Instant::now();
        if self.cancel.is_cancelled() {
            return Err(ExecError::Interrupted);
        }
        // The helper and its sandbox must be gone before the process ends.
        let _busy = self.cancel.busy();
        let run = store.temp_dir()?;
        let capture = store.temp_dir()?;
        let spec = self.spec(req, run.path(), capture.path())?;
        let spec_path = run.path().join("spec.json");
        fs::write(&spec_path, serde_json::to_vec(&spec).map_err(|e| ExecError::Internal(format!("the sandbox spec: {e}")))?)
            .map_err(|e| ExecError::Io { what: format!("write {}", spec_path.display()), message: e.to_string() })?;
        let mut log = super::log::LogTail::new(store, self.limits.log)?;
        // The step writes its log into a pipe, not a file of the host's: no
        // descriptor inside the sandbox may refer to a host file.
        let (reader, writer) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).map_err(|e| sandbox_err("pipe", e))?;
        let writer2 = writer.try_clone().map_err(|e| sandbox_err("pipe", e))?;
        let mut cmd = Command::new(&self.helper);
        cmd.arg(HELPER_ARG).arg(&spec_path).env_clear().stdin(Stdio::null()).stdout(writer).stderr(writer2);
        // Every process of the step is counted from the start: the helper
        // joins the step's groups before it runs anything.
        let groups = super::cgroup::StepGroups::create(self.limits.processes, self.limits.memory);
        let procs = groups.procs.clone();
        // SAFETY: the closure makes only async-signal-safe system calls
        // (prctl, open, write) on paths prepared before the fork. If the
        // engine dies (even by SIGKILL) the step dies with it, instead of
        // running on unobserved; the thread that spawns waits for it.
        unsafe {
            cmd.pre_exec(move || {
                rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))
                    .map_err(std::io::Error::from)?;
                super::cgroup::join(&procs)
            });
        }
        let spawned = cmd.spawn();
        // The command holds the pipe's write ends: only the sandbox may keep them.
        drop(cmd);
        let mut child = spawned.map_err(|e| sandbox_err(&format!("start {}", self.helper.display()), e))?;
        rustix::fs::fcntl_setfl(&reader, rustix::fs::OFlags::NONBLOCK).map_err(|e| sandbox_err("pipe", e))?;
        let mut pipe = File::from(reader);
        let pass_on = |pipe: &mut File, log: &mut super::log::LogTail| -> Result<bool, ExecError> {
            use std::io::{Read, Write};
            let mut buf = [0u8; 65536];
            loop {
                match pipe.read(&mut buf) {
                    Ok(0) => return Ok(false),
                    Ok(n) => {
                        log.write_all(&buf[..n]).map_err(|e| ExecError::Io { what: "write the step log".into(), message: e.to_string() })?;
                        echo.write(&buf[..n]);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(true),
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(sandbox_err("log", e)),
                }
            }
        };
        // A pidfd becomes readable when the helper exits: no polling delay.
        let pidfd = rustix::process::pidfd_open(rustix::process::Pid::from_child(&child), rustix::process::PidfdFlags::empty())
            .map_err(|e| sandbox_err("pidfd_open", e))?;
        let mut timed_out = false;
        let mut stopped: Option<Status> = None;
        let (mut space_checked, mut scratch_checked) = (Instant::now(), Instant::now());
        loop {
            pass_on(&mut pipe, &mut log)?;
            // What the step writes to an overlay's scratch layer lands on the
            // state directory's disk: it may not take the last of it (checked
            // every second), nor more than its share (measured every five:
            // a walk of the scratch directories).
            if space_checked.elapsed() >= Duration::from_secs(1) {
                space_checked = Instant::now();
                if rustix::fs::statvfs(store.root()).is_ok_and(|v| v.f_bavail.saturating_mul(v.f_frsize) < self.limits.min_free) {
                    stopped = Some(Status::LowOnSpace { min_free: self.limits.min_free });
                }
            }
            if scratch_checked.elapsed() >= Duration::from_secs(5) {
                scratch_checked = Instant::now();
                let written: u64 = ["upper", "src-up"].iter().map(|d| disk_usage(&run.path().join(d))).sum();
                if written > self.limits.scratch {
                    stopped = Some(Status::ScratchFull { limit: self.limits.scratch });
                }
            }
            if stopped.is_some() {
                let _ = child.kill();
                let _ = child.wait();
                break;
            }
            if self.cancel.is_cancelled() {
                // Killing the helper ends the step's pid namespace; what it
                // left is under the store's tmp/, garbage until `gc`.
                let _ = child.kill();
                let _ = child.wait();
                return Err(ExecError::Interrupted);
            }
            let left = req.timeout.saturating_sub(started.elapsed());
            if left.is_zero() {
                // Killing the helper kills pid 1 (PDEATHSIG) and with it every
                // process of the step's pid namespace.
                let _ = child.kill();
                let _ = child.wait();
                timed_out = true;
                break;
            }
            let nap = left.min(Duration::from_secs(1));
            let ts = rustix::event::Timespec { tv_sec: nap.as_secs() as _, tv_nsec: nap.subsec_nanos() as _ };
            let mut fds = [
                rustix::event::PollFd::new(&pidfd, rustix::event::PollFlags::IN),
                rustix::event::PollFd::new(&pipe, rustix::event::PollFlags::IN),
            ];
            match rustix::event::poll(&mut fds, Some(&ts)) {
                Ok(_) if !fds[0].revents().is_empty() => {
                    child.wait().map_err(|e| sandbox_err("wait", e))?;
                    break;
                }
                Ok(_) | Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(sandbox_err("poll", e)),
            }
        }
        // The rest of the log, until the last writer (a process of the
        // step's namespace being killed) is gone.
        rustix::fs::fcntl_setfl(&pipe, rustix::fs::OFlags::empty()).map_err(|e| sandbox_err("pipe", e))?;
        while pass_on(&mut pipe, &mut log)? {}
        // Ctrl-C reaches the helper too (same process group): what it ended
        // is no outcome of the step's.
        if self.cancel.is_cancelled() {
            return Err(ExecError::Interrupted);
        }
        let log_digest = log.finish(store)?;
        drop(groups);
        let duration = started.elapsed();
        let outcome = if timed_out || stopped.is_some() {
            None
        } else {
            let text = fs::read(run.path().join("result.json")).map_err(|e| {
                sandbox_err("the sandbox ended without a result", format!("{e}; its log ends: {}", store.log_tail(&log_digest, 15).join("\n")))
            })?;
            Some(serde_json::from_slice::<Outcome>(&text).map_err(|e| sandbox_err("result", e))?)
        };
        let status = match outcome {
            None => stopped.unwrap_or(Status::TimedOut),
            Some(Outcome::Succeeded) => Status::Succeeded,
            Some(Outcome::Exited(index, code)) => Status::Exited { index, code },
            Some(Outcome::Signaled(index, signal)) => Status::Signaled { index, signal },
            Some(Outcome::BadOutput(path, reason)) => Status::BadOutput { path, reason },
            Some(Outcome::SetupFailed(e)) => return Err(ExecError::Sandbox(e)),
        };
        let layer = if status == Status::Succeeded { Some(store.commit_tree(capture)?) } else { None };
        Ok(StepResult { status, layer, log: log_digest, duration })
    }
}


/// The bytes the files under `dir` take on disk (their allocated blocks;
/// directories that cannot be read count as empty).
fn disk_usage(dir: &std::path::Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = fs::read_dir(dir) else { return 0 };
    entries
        .filter_map(Result::ok)
        .map(|e| match e.path().symlink_metadata() {
            Ok(m) if m.is_dir() => m.blocks() * 512 + disk_usage(&e.path()),
            Ok(m) => m.blocks() * 512,
            Err(_) => 0,
        })
        .sum()
}
