//! The OCI backend: each step in a fresh container of a Docker or Podman
//! engine, driven through the engine's HTTP API (bollard), reached at
//! `DOCKER_HOST` or the default socket.
//!
//! One step, one container:
//! 1. created from the seed's image (or an empty image for a scratch root)
//!    with networking off (`none`), no capabilities added, the hostname of
//!    the request, labels naming this process, and as its only command
//!    `/.bootstrap-init` (`init.c`, built by `build.rs`);
//! 2. given one tar stream before it starts: the sources and the needs'
//!    layers in ARCHITECTURE.md §3's order, and the init ([`inputs`]);
//! 3. started and attached: the init runs the commands in order with
//!    exactly the request's environment, umask 022 and workdir, their
//!    stdout and stderr both on the container's stderr (the log, streamed
//!    to the store and to `-v`), and reports on stdout how they ended and
//!    whether every output exists without a symlink on the way;
//! 4. killed when the timeout passes (the whole container: every process
//!    the step started);
//! 5. each declared output downloaded as a tar and captured with the local
//!    backend's normalisation ([`outputs`]);
//! 6. removed, whatever happened. A cancelled run ([`super::cancel`]: the
//!    binary sets it on Ctrl-C or SIGTERM) kills and removes the running
//!    step containers before the process exits, and containers left by a
//!    process that was killed outright are removed by the next one on this
//!    host (labels `org.bootstrap.host` and `org.bootstrap.pid`).
//!
//! Differences from the local backend that an engine imposes, and that no
//! request can turn off without adding capabilities: the engine mounts
//! `/sys` (read-only) and its own `/etc/hostname`, `/etc/hosts` and
//! `/etc/resolv.conf` (the init empties the last, which is the host's);
//! `/tmp` is the image's own directory (created, mode 1777, when missing)
//! rather than a fresh tmpfs; file sources are writable copies rather than
//! read-only mounts; Podman also mounts an empty `/run/.containerenv`.
//! [`OciBackend::engine_paths`] lists the top-level names this adds to a
//! scratch root.
//!
//! Every step has a cgroup namespace of its own. Docker makes one when the
//! create request asks; Podman's Docker API ignores that request on cgroup
//! v1 hosts, so for Podman the container also gets `CAP_SYS_ADMIN` and
//! `CAP_SETPCAP`, which the init uses to make the namespace and then drops
//! from every set before any command of the step runs. An init that finds
//! itself sharing the engine's cgroup namespace runs nothing
//! ([`ExecError::EngineContract`]).

pub mod image;
mod inputs;
mod outputs;

use std::collections::HashMap;
use std::io::Write;
use std::sync::OnceLock;
use std::time::Instant;

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::models::{ContainerCreateBody, HostConfig, HostConfigLogConfig};
use bollard::query_parameters::{
    AttachContainerOptions, DownloadFromContainerOptions, KillContainerOptions, ListContainersOptions, RemoveContainerOptions,
    UploadToContainerOptions,
};
use futures_util::{StreamExt, TryStreamExt};

use super::{ExecError, Executor, LogSink, Root, Status, StepRequest, StepResult};
use crate::hash::Sha256;
use crate::store::Store;

/// Where the container init is placed (it removes itself once started).
pub const INIT_PATH: &str = "/.bootstrap-init";

/// The container init, built from `init.c` by `build.rs` (empty where it
/// cannot be built: not x86_64 Linux).
static INIT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/oci-init"));

const LABEL_HOST: &str = "org.bootstrap.host";
const LABEL_PID: &str = "org.bootstrap.pid";
const LABEL_BACKEND: &str = "org.bootstrap.backend";

/// Numbers the backends of this process, for [`LABEL_BACKEND`].
static BACKENDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// A connection to a container engine, and the step containers it runs.
pub struct OciBackend {
    docker: Docker,
    rt: tokio::runtime::Runtime,
    endpoint: String,
    scratch: OnceLock<Sha256>,
    /// `<pid>-<n>`: this backend's label value.
    instance: String,
    /// What each step may use (log, processes, memory; `/tmp` is the image's).
    limits: super::StepLimits,
    /// The engine's product and version, as its version endpoint gives them.
    product: String,
    /// Set by whoever runs us (Ctrl-C, SIGTERM): stop, remove the container.
    cancel: super::cancel::Cancel,
}

/// What `seed import` made.
#[derive(Debug, Clone)]
pub struct Imported {
    /// The image ID.
    pub id: Sha256,
    /// The tag it carries.
    pub tag: String,
    /// Whether the engine already had it.
    pub existed: bool,
}

/// The engine's product and version from its version endpoint: Docker
/// reports its platform (`Docker Engine - Community`, empty in some
/// distributions' builds) and an `Engine` component, Podman a `Podman
/// Engine` component.
fn product(v: &bollard::models::SystemVersion) -> String {
    let components = v.components.as_deref().unwrap_or_default();
    let engine = components.iter().find(|c| c.name.contains("Engine"));
    let platform = v.platform.as_ref().map(|p| p.name.trim()).filter(|n| !n.is_empty());
    let name = match (engine, platform) {
        (Some(c), Some(p)) if c.name == "Engine" => p.to_string(),
        // Docker's own component, from a build that names no platform (Debian's own Docker package).
        (Some(c), None) if c.name == "Engine" => "Docker Engine".to_string(),
        (Some(c), _) => c.name.clone(),
        (None, Some(p)) => p.to_string(),
        (None, None) => "unknown container engine".to_string(),
    };
    let version = engine.map(|c| c.version.clone()).or_else(|| v.version.clone()).unwrap_or_else(|| "?".into());
    let api = v.api_version.as_deref().map(|a| format!(" (API {a})")).unwrap_or_default();
    format!("{name} {version}{api}")
}

fn engine_err(endpoint: &str, what: &str, e: impl std::fmt::Display) -> ExecError {
    ExecError::Engine { endpoint: endpoint.to_string(), message: format!("{what}: {e}") }
}

impl OciBackend {
    /// Connects to the engine at `DOCKER_HOST` (default: the local Docker
    /// socket), agrees on an API version, and removes step containers that
    /// processes of this host no longer running left behind.
    pub fn connect() -> Result<OciBackend, ExecError> {
        OciBackend::connect_to(&std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".to_string()))
    }

    /// [`OciBackend::connect`] to the engine at `endpoint` (`unix://PATH`,
    /// `tcp://HOST:PORT`), whatever `DOCKER_HOST` says.
    pub fn connect_to(endpoint: &str) -> Result<OciBackend, ExecError> {
        let endpoint = endpoint.to_string();
        if INIT.is_empty() {
            return Err(engine_err(&endpoint, "the OCI backend", "needs an x86_64 Linux build of bootstrap (its container init is x86_64 code)"));
        }
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| engine_err(&endpoint, "start the async runtime", e))?;
        let (docker, product) = rt.block_on(async {
            let d = Docker::connect_with_host(&endpoint).map_err(|e| engine_err(&endpoint, "connect", e))?;
            let d = d.negotiate_version().await.map_err(|e| engine_err(&endpoint, "connect", e))?;
            d.ping().await.map_err(|e| engine_err(&endpoint, "ping", e))?;
            let version = d.version().await.map_err(|e| engine_err(&endpoint, "ask its version", e))?;
            Ok::<(Docker, String), ExecError>((d, product(&version)))
        })?;
        let instance = format!("{}-{}", std::process::id(), BACKENDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
        let backend = OciBackend {
            docker,
            rt,
            endpoint,
            scratch: OnceLock::new(),
            instance,
            limits: super::StepLimits::default(),
            product,
            cancel: Default::default(),
        };
        backend.rt.block_on(backend.remove_orphans());
        Ok(backend)
    }

    /// The same backend, each step container held to `limits` (the log
    /// kept to its end; the engine's `pids-limit` and `memory` settings).
    pub fn with_limits(mut self, limits: super::StepLimits) -> Self {
        self.limits = limits;
        self
    }

    /// The same, stopping a running step when `cancel` is set: its
    /// container is killed and removed, and the step ends as
    /// [`ExecError::Interrupted`].
    pub fn with_cancel(mut self, cancel: super::cancel::Cancel) -> Self {
        self.cancel = cancel;
        self
    }

    /// Whether the engine runs containers in a user namespace of their own
    /// (Docker with `userns-remap`, rootless Podman). Without one a step's
    /// root is the host's root, held in check only by the dropped
    /// capabilities, `no-new-privileges` and the engine's seccomp profile
    /// and masked `/proc` paths; the local backend always has one.
    pub fn user_namespace(&self) -> Result<bool, ExecError> {
        let info = self.rt.block_on(self.docker.info()).map_err(|e| engine_err(&self.endpoint, "info", e))?;
        let rootless = info.security_options.iter().flatten().any(|o| o.contains("name=userns") || o.contains("name=rootless"));
        Ok(rootless)
    }

    /// Top-level names the engine adds to every container's root that the
    /// sandbox contract does not name (`etc` for its hostname, hosts and
    /// resolver files; `sys`; Podman's `run` for its `.containerenv`).
    pub fn engine_paths(&self) -> &'static [&'static str] {
        if self.is_podman() { &["etc", "run", "sys"] } else { &["etc", "sys"] }
    }

    /// Whether the engine is Podman (its version endpoint says so).
    fn is_podman(&self) -> bool {
        self.product.starts_with("Podman")
    }

    /// The containers of this backend the engine still has: none once
    /// every [`Executor::run`] has returned.
    pub fn leftovers(&self) -> Result<Vec<String>, ExecError> {
        self.rt.block_on(self.labelled(LABEL_BACKEND, &self.instance)).map(|l| l.into_iter().filter_map(|c| c.id).collect())
    }

    /// The step containers of process `pid` of this host.
    pub fn containers_of(&self, pid: u32) -> Result<Vec<String>, ExecError> {
        let host = crate::machine::host();
        let list = self.rt.block_on(self.labelled(LABEL_PID, &pid.to_string()))?;
        let here = |c: &bollard::models::ContainerSummary| c.labels.as_ref().and_then(|l| l.get(LABEL_HOST)) == Some(&host);
        Ok(list.into_iter().filter(here).filter_map(|c| c.id).collect())
    }

    /// Every step container of this host's `bootstrap` processes that are
    /// no longer running (left by a process killed outright).
    pub fn orphans(&self) -> Result<Vec<String>, ExecError> {
        let list = self.rt.block_on(self.labelled(LABEL_HOST, &crate::machine::host()))?;
        Ok(list.into_iter().filter(|c| !owner_alive(c)).filter_map(|c| c.id).collect())
    }

    async fn labelled(&self, label: &str, value: &str) -> Result<Vec<bollard::models::ContainerSummary>, ExecError> {
        let filters = HashMap::from([("label".to_string(), vec![format!("{label}={value}")])]);
        self.docker
            .list_containers(Some(ListContainersOptions { all: true, filters: Some(filters), ..Default::default() }))
            .await
            .map_err(|e| engine_err(&self.endpoint, "list containers", e))
    }

    async fn remove_orphans(&self) {
        let Ok(list) = self.labelled(LABEL_HOST, &crate::machine::host()).await else { return };
        for c in list.into_iter().filter(|c| !owner_alive(c)) {
            if let Some(id) = c.id {
                let _ = self.docker.remove_container(&id, Some(RemoveContainerOptions { force: true, ..Default::default() })).await;
            }
        }
    }

    /// The image ID `reference` names: `sha256:<id>`, `NAME@sha256:<id>`
    /// (an image ID, as `seed import` prints, or a registry digest the
    /// engine knows), or `NAME[:TAG]`; `None` when the engine has no such
    /// image. Nothing is pulled.
    pub fn resolve_image(&self, reference: &str) -> Result<Option<Sha256>, ExecError> {
        self.rt.block_on(async {
            let by_id = match image::digest_of(reference) {
                Some(d) => self.docker.inspect_image(&d.to_string()).await.ok(),
                None => None,
            };
            let found = match by_id {
                Some(i) => i,
                None => match self.docker.inspect_image(reference).await {
                    Ok(i) => i,
                    Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => return Ok(None),
                    Err(e) => return Err(engine_err(&self.endpoint, &format!("look up image `{reference}`"), e)),
                },
            };
            let id = found.id.as_deref().and_then(|id| id.parse().ok());
            id.map(Some).ok_or_else(|| engine_err(&self.endpoint, &format!("image `{reference}`"), "the engine gave no sha256 image ID"))
        })
    }

    /// Loads root filesystem `layer` (an uncompressed tar) as the image of
    /// seed `seed` (see [`image`]), unless the engine has it already.
    pub fn import(&self, seed: &str, layer: &[u8]) -> Result<Imported, ExecError> {
        let a = image::archive(seed, layer)?;
        self.rt.block_on(self.load(a))
    }

    async fn load(&self, a: image::Archive) -> Result<Imported, ExecError> {
        if self.docker.inspect_image(&a.id.to_string()).await.is_ok() {
            // The ID is what counts; the tag is not checked.
            return Ok(Imported { id: a.id, tag: a.tag, existed: true });
        }
        let mut s = self.docker.import_image(
            bollard::query_parameters::ImportImageOptions { quiet: true, ..Default::default() },
            bollard::body_full(a.bytes.into()),
            None,
        );
        while let Some(r) = s.next().await {
            r.map_err(|e| engine_err(&self.endpoint, "load the image", e))?;
        }
        self.docker.inspect_image(&a.id.to_string()).await.map_err(|e| engine_err(&self.endpoint, "the loaded image", e))?;
        Ok(Imported { id: a.id, tag: a.tag, existed: false })
    }

    /// The empty image scratch roots start from, loaded on first use.
    fn scratch(&self) -> Result<Sha256, ExecError> {
        if let Some(id) = self.scratch.get() {
            return Ok(*id);
        }
        let id = self.import("scratch", &image::empty_layer())?.id;
        Ok(*self.scratch.get_or_init(|| id))
    }

    async fn remove(&self, id: &str) {
        let _ = self.docker.remove_container(id, Some(RemoveContainerOptions { force: true, v: true, ..Default::default() })).await;
    }

    async fn create(&self, image: &Sha256, req: &StepRequest, argv: Vec<String>) -> Result<String, ExecError> {
        let labels = HashMap::from([
            (LABEL_HOST.to_string(), crate::machine::host()),
            (LABEL_PID.to_string(), std::process::id().to_string()),
            (LABEL_BACKEND.to_string(), self.instance.clone()),
        ]);
        let body = ContainerCreateBody {
            image: Some(image.to_string()),
            entrypoint: Some(vec![INIT_PATH.to_string()]),
            cmd: Some(argv),
            env: Some(Vec::new()),
            hostname: Some(req.hostname.clone()),
            working_dir: Some("/".into()),
            user: Some("0:0".into()),
            network_disabled: Some(true),
            labels: Some(labels),
            host_config: Some(HostConfig {
                network_mode: Some("none".into()),
                log_config: Some(HostConfigLogConfig { typ: Some("none".into()), config: None }),
                // The same capabilities as on every backend, and no way to gain more.
                cap_drop: Some(vec!["ALL".into()]),
                cap_add: Some(
                    super::STEP_CAPABILITIES
                        .iter()
                        .map(|(name, _)| *name)
                        .chain(if self.is_podman() { &["SYS_ADMIN", "SETPCAP"][..] } else { &[] }.iter().copied())
                        .map(|name| format!("CAP_{name}"))
                        .collect(),
                ),
                security_opt: Some(vec!["no-new-privileges".into()]),
                pids_limit: Some(i64::try_from(self.limits.processes).unwrap_or(i64::MAX)),
                memory: Some(i64::try_from(self.limits.memory).unwrap_or(i64::MAX)),
                // Its own cgroup namespace too, whatever the engine's default
                // (the init makes it where Podman ignores this; see the top).
                cgroupns_mode: Some(bollard::models::HostConfigCgroupnsModeEnum::PRIVATE),
                ..Default::default()
            }),
            ..Default::default()
        };
        let created = self.docker.create_container(None, body).await.map_err(|e| engine_err(&self.endpoint, "create the step container", e))?;
        Ok(created.id)
    }
}

/// Whether the process that made container `c` (its pid label) still runs.
fn owner_alive(c: &bollard::models::ContainerSummary) -> bool {
    let pid = c.labels.as_ref().and_then(|l| l.get(LABEL_PID)).and_then(|p| p.parse::<i32>().ok());
    pid.and_then(rustix::process::Pid::from_raw)
        .is_some_and(|p| !matches!(rustix::process::test_kill_process(p), Err(rustix::io::Errno::SRCH)))
}

/// The init's arguments (see `init.c`).
fn init_argv(req: &StepRequest, real_outputs: &[String]) -> Vec<String> {
    let mut a = vec![req.workdir.clone(), req.env.len().to_string()];
    a.extend(req.env.iter().map(|(k, v)| format!("{k}={v}")));
    a.push(real_outputs.len().to_string());
    a.extend(real_outputs.iter().cloned());
    a.push(req.commands.len().to_string());
    for argv in &req.commands {
        a.push(argv.len().to_string());
        a.extend(argv.iter().cloned());
    }
    a
}

/// How the init said the step ended.
enum Report {
    Ok,
    Status(Status),
    /// The init ran nothing: the engine broke the contract in this way.
    Refused(String),
}

fn parse_report(text: &str, req: &StepRequest, real: &[String]) -> Option<Report> {
    let line = text.lines().rev().find(|l| !l.trim().is_empty())?;
    let w: Vec<&str> = line.split_whitespace().collect();
    let n = |i: usize| w.get(i).and_then(|s| s.parse::<i64>().ok());
    Some(match *w.first()? {
        "ok" => Report::Ok,
        "refused" => Report::Refused(match *w.get(1)? {
            "cgroupns" => "ran the step in a cgroup namespace it shares with other processes".to_string(),
            "caps" => "left the step's init unable to drop CAP_SYS_ADMIN and CAP_SETPCAP".to_string(),
            other => format!("broke the sandbox contract ({other})"),
        }),
        "exit" => Report::Status(Status::Exited { index: n(1)? as usize, code: n(2)? as i32 }),
        "signal" => Report::Status(Status::Signaled { index: n(1)? as usize, signal: n(2)? as i32 }),
        "bad" => {
            let o = n(1)? as usize;
            let path = req.outputs.get(o)?.clone();
            let reason = match *w.get(2)? {
                "missing" => "it does not exist".to_string(),
                kind => {
                    let k = n(3)? as usize;
                    let comps: Vec<&str> = real.get(o)?.trim_start_matches('/').split('/').collect();
                    let what = if kind == "link" { "a symlink" } else { "not a directory" };
                    format!("`/{}` on the way to it is {what}", comps[..k.min(comps.len())].join("/"))
                }
            };
            Report::Status(Status::BadOutput { path, reason })
        }
        _ => return None,
    })
}

impl Executor for OciBackend {
    fn name(&self) -> &'static str {
        "oci"
    }

    fn container_engine(&self) -> Option<&str> {
        Some(&self.product)
    }

    fn run(&self, req: &StepRequest, store: &Store, echo: &dyn LogSink) -> Result<StepResult, ExecError> {
        let started = Instant::now();
        let image = match &req.root {
            Root::Image(id) => *id,
            Root::Scratch => self.scratch()?,
            Root::Dir(d) => {
                return Err(ExecError::Unsupported {
                    backend: "oci",
                    message: format!("it runs seeds as images, not root filesystem directories ({})", d.display()),
                    help: "import the directory's tarball as an image with `bootstrap seed import NAME TARBALL`, or use `--backend local`".into(),
                });
            }
        };
        let real: Vec<String> =
            req.outputs.iter().map(|o| req.read_path(o)).collect();
        let input = inputs::tar(req, INIT)?;
        let mut log = super::log::LogTail::new(store, self.limits.log)?;
        let capture = store.temp_dir()?;
        if self.cancel.is_cancelled() {
            return Err(ExecError::Interrupted);
        }
        // The container must be gone before the process ends.
        let busy = self.cancel.busy();
        let ran = self.rt.block_on(async {
            let id = self.create(&image, req, init_argv(req, &real)).await?;
            let r = self.step(&id, req, input, &real, &mut log, echo, capture.path()).await;
            self.remove(&id).await;
            r
        });
        drop(busy);
        let (status, timed_out) = ran?;
        let duration = started.elapsed();
        let log_digest = log.finish(store)?;
        let status = if timed_out { Status::TimedOut } else { status };
        let layer = if status == Status::Succeeded { Some(store.commit_tree(capture)?) } else { None };
        Ok(StepResult { status, layer, log: log_digest, duration })
    }
}

impl OciBackend {
    /// Runs the created container `id` to its end and captures its
    /// outputs; the status, and whether the timeout passed.
    #[allow(clippy::too_many_arguments)]
    async fn step(
        &self,
        id: &str,
        req: &StepRequest,
        input: Vec<u8>,
        real: &[String],
        log: &mut super::log::LogTail,
        echo: &dyn LogSink,
        capture: &std::path::Path,
    ) -> Result<(Status, bool), ExecError> {
        let e = |what: &str| {
            let endpoint = self.endpoint.clone();
            let what = what.to_string();
            move |err: bollard::errors::Error| engine_err(&endpoint, &what, err)
        };
        let started = Instant::now();
        self.docker
            .upload_to_container(id, Some(UploadToContainerOptions { path: "/".into(), ..Default::default() }), bollard::body_full(input.into()))
            .await
            .map_err(e("send the step's inputs"))?;
        let mut attached = self
            .docker
            .attach_container(id, Some(AttachContainerOptions { stream: true, stdout: true, stderr: true, ..Default::default() }))
            .await
            .map_err(e("attach"))?;
        self.docker.start_container(id, None).await.map_err(e("start the step container"))?;
        let mut report = Vec::new();
        let mut write_err = None;
        let run = async {
            while let Some(item) = attached.output.next().await {
                match item {
                    Ok(LogOutput::StdOut { message }) => report.extend_from_slice(&message),
                    Ok(LogOutput::StdErr { message } | LogOutput::Console { message }) => {
                        echo.write(&message);
                        if let Err(err) = log.write_all(&message) {
                            write_err = Some(err);
                        }
                    }
                    Ok(LogOutput::StdIn { .. }) => {}
                    Err(err) => return Err(e("read the step's output")(err)),
                }
            }
            Ok(())
        };
        let left = req.timeout.saturating_sub(started.elapsed());
        let cancelled = async {
            while !self.cancel.is_cancelled() {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        };
        use futures_util::future::{Either, select};
        let (sleep, cancelled, run) = (std::pin::pin!(tokio::time::sleep(left)), std::pin::pin!(cancelled), std::pin::pin!(run));
        match select(run, select(sleep, cancelled)).await {
            Either::Left((r, _)) => r?,
            Either::Right((why, _)) => {
                // Killing pid 1 ends every process of the container.
                let _ = self.docker.kill_container(id, Some(KillContainerOptions { signal: "KILL".into() })).await;
                return match why {
                    Either::Left(_) => Ok((Status::TimedOut, true)),
                    Either::Right(_) => Err(ExecError::Interrupted),
                };
            }
        }
        if let Some(err) = write_err {
            return Err(ExecError::Io { what: "write the step log".into(), message: err.to_string() });
        }
        // The init's own exit status: 0 unless it could not do its job.
        let waited = self.docker.wait_container(id, None).next().await;
        let code = match waited {
            Some(Ok(w)) => w.status_code,
            Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => code,
            Some(Err(err)) => return Err(e("wait for the step container")(err)),
            None => 0,
        };
        let text = String::from_utf8_lossy(&report);
        let parsed = if code == 0 { parse_report(&text, req, real) } else { None };
        let Some(parsed) = parsed else {
            return Err(ExecError::InitFailed { code, said: text.trim().to_string() });
        };
        match parsed {
            Report::Status(s) => return Ok((s, false)),
            Report::Refused(what) => {
                return Err(ExecError::EngineContract { endpoint: self.endpoint.clone(), engine: self.product.clone(), what });
            }
            Report::Ok => {}
        }
        for (declared, at) in req.outputs.iter().zip(real) {
            let bytes: Vec<u8> = match self
                .docker
                .download_from_container(id, Some(DownloadFromContainerOptions { path: at.clone() }))
                .try_fold(Vec::new(), |mut acc, chunk| async move {
                    acc.extend_from_slice(&chunk);
                    Ok(acc)
                })
                .await
            {
                Ok(b) => b,
                Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => {
                    return Ok((Status::BadOutput { path: declared.clone(), reason: "it does not exist".into() }, false));
                }
                Err(err) => return Err(e(&format!("download the output {declared}"))(err)),
            };
            match outputs::capture(&bytes, declared, capture) {
                Ok(()) => {}
                Err(outputs::CaptureError::Bad(reason)) => return Ok((Status::BadOutput { path: declared.clone(), reason }, false)),
                Err(outputs::CaptureError::Io(m)) => return Err(ExecError::Io { what: format!("capture the output {declared}"), message: m }),
            }
        }
        Ok((Status::Succeeded, false))
    }
}
