//! The remote backend: each step is one action of a Remote Execution API
//! v2 server (BuildGrid, Buildbarn, BuildBuddy, NativeLink…), run by its
//! workers, such as `bootstrap worker` ([`worker`]).
//!
//! For one step on one seed:
//! 1. Its root is the union the OCI backend sends as a tar
//!    ([`crate::exec::union::step_union`]: the seed's directory, the sources,
//!    the needs' layers), plus the runner ([`RUNNER_PATH`], `runner.c`),
//!    made into a Merkle tree ([`merkle`]); the blobs the server lacks
//!    (`FindMissingBlobs`) are sent ([`cas`]).
//! 2. The command is the runner with the step's workdir and commands, in
//!    exactly the contract's environment, its outputs as output paths
//!    (relative to the root: the working directory is the root, the runner
//!    enters the workdir), the step's timeout, and platform properties:
//!    `OSFamily=linux`, `ISA=x86-64`, `bootstrap-hostname` (the hostname
//!    the contract gives the step) and, with `--remote-split-lineages`,
//!    `bootstrap-lineage=<seed>` so that each seed's steps go to workers
//!    that say they serve it. The action's salt is the lineage: two seeds'
//!    steps are never one action, and never share a cached result.
//! 3. `Execute` is followed to its end (`WaitExecution` if the stream
//!    breaks); a server that lost an input blob is sent it again, once.
//! 4. The outputs are read from the CAS, each blob checked against its
//!    digest, and captured with the other backends' rules; the layer's
//!    tree digest is computed here from those bytes, so a cached result
//!    is checked like a fresh one.

pub mod cas;
pub mod merkle;
pub mod worker;

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bazel_remote_apis::build::bazel::remote::execution::v2 as re;
use bazel_remote_apis::google::longrunning as lro;
use prost::Message;
use tonic::transport::Channel;

use self::cas::{Cas, CasError};
use self::merkle::{Blob, FileDigests, message};
use super::union::{Item, step_union};
use super::{ExecError, Executor, LogSink, Root, Status, StepRequest, StepResult};

/// The runner, built from `runner.c` (empty where it cannot be built).
pub static RUNNER: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/remote-runner"));
/// Where the runner is in a step's input root; it removes itself first.
pub const RUNNER_PATH: &str = "/.bootstrap-run";
/// The platform properties every action carries and every `bootstrap
/// worker` serves.
pub const PLATFORM: [(&str, &str); 2] = [("OSFamily", "linux"), ("ISA", "x86-64")];
/// The platform property naming a step's lineage (its seed), sent with
/// `--remote-split-lineages`.
pub const LINEAGE_PROPERTY: &str = "bootstrap-lineage";
/// The platform property giving the hostname the step must see.
pub const HOSTNAME_PROPERTY: &str = "bootstrap-hostname";
/// How a lease's status says an output could not be captured
/// (`bootstrap worker`'s own convention): `<this><path>: <reason>`.
pub const BAD_OUTPUT: &str = "bootstrap worker: bad output ";

/// The line a step's log ends with when the server answered it from its
/// action cache (the outputs were checked all the same).
pub const CACHED: &str = "[bootstrap: the server answered this step from its action cache]\n";

/// What a remote backend connects to.
#[derive(Debug, Clone)]
pub struct RemoteOptions {
    /// `grpc://HOST:PORT` (or `http://`).
    pub endpoint: String,
    /// The instance name.
    pub instance: String,
    /// Send each seed's steps only to workers serving that seed.
    pub split_lineages: bool,
    /// More platform properties, on every action.
    pub properties: Vec<(String, String)>,
}

/// A connection to a REAPI server.
pub struct RemoteBackend {
    options: RemoteOptions,
    rt: tokio::runtime::Runtime,
    channel: Channel,
    digests: FileDigests,
    /// Blobs the server is known to hold (asked or sent during this run).
    present: Mutex<HashSet<String>>,
    cancel: super::cancel::Cancel,
    limits: super::StepLimits,
}

fn remote_err(endpoint: &str, what: &str, e: impl std::fmt::Display) -> ExecError {
    ExecError::Remote { endpoint: endpoint.to_string(), message: format!("{what}: {e}") }
}

/// Opens a gRPC channel to `endpoint` on `rt` (`grpc://` or `http://`).
pub(crate) fn channel(rt: &tokio::runtime::Runtime, endpoint: &str) -> Result<Channel, ExecError> {
    let url = match endpoint.split_once("://") {
        Some(("grpc" | "http", rest)) => format!("http://{rest}"),
        Some(("grpcs" | "https", _)) => {
            return Err(ExecError::Unsupported {
                backend: "remote",
                message: format!("{endpoint}: TLS is not supported yet"),
                help: "reach the server over a trusted network as grpc://HOST:PORT (an SSH tunnel, a VPN, or a TLS-terminating proxy beside it)".into(),
            });
        }
        _ => return Err(remote_err(endpoint, "not an address", "write it as grpc://HOST:PORT")),
    };
    let ep = tonic::transport::Endpoint::from_shared(url).map_err(|e| remote_err(endpoint, "not an address", e))?.connect_timeout(Duration::from_secs(10));
    rt.block_on(ep.connect()).map_err(|e| remote_err(endpoint, "cannot connect", e))
}

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, ExecError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| ExecError::Io { what: "start the remote backend's runtime".into(), message: e.to_string() })
}

impl RemoteBackend {
    /// Connects to the server and checks that it executes actions with
    /// SHA-256 digests for this instance.
    pub fn connect(options: RemoteOptions) -> Result<RemoteBackend, ExecError> {
        if RUNNER.is_empty() {
            return Err(ExecError::Unsupported {
                backend: "remote",
                message: "its step runner is built for x86_64 Linux only".into(),
                help: "use `--backend local` or `--backend oci`".into(),
            });
        }
        let rt = runtime()?;
        let channel = channel(&rt, &options.endpoint)?;
        let caps = rt
            .block_on(
                re::capabilities_client::CapabilitiesClient::new(channel.clone())
                    .get_capabilities(re::GetCapabilitiesRequest { instance_name: options.instance.clone() }),
            )
            .map_err(|e| remote_err(&options.endpoint, &format!("ask instance `{}` what it can do", options.instance), status_text(&e)))?
            .into_inner();
        let exec = caps.execution_capabilities.unwrap_or_default();
        if !exec.exec_enabled {
            return Err(remote_err(&options.endpoint, &format!("instance `{}`", options.instance), "does not execute actions (no execution service)"));
        }
        let sha256 = re::digest_function::Value::Sha256 as i32;
        if exec.digest_function != sha256 && !exec.digest_functions.contains(&sha256) {
            return Err(remote_err(&options.endpoint, &format!("instance `{}`", options.instance), "does not take SHA-256 digests"));
        }
        Ok(RemoteBackend {
            options,
            rt,
            channel,
            digests: FileDigests::default(),
            present: Mutex::default(),
            cancel: super::cancel::Cancel::default(),
            limits: super::StepLimits::default(),
        })
    }

    /// Stops waiting for steps when `cancel` is set: the server is asked to
    /// cancel the action.
    pub fn with_cancel(mut self, cancel: super::cancel::Cancel) -> Self {
        self.cancel = cancel;
        self
    }

    /// The limits the engine enforces itself here: how much of a log it
    /// keeps. (The others are the workers'.)
    pub fn with_limits(mut self, limits: super::StepLimits) -> Self {
        self.limits = limits;
        self
    }

    fn err(&self, what: &str, e: impl std::fmt::Display) -> ExecError {
        remote_err(&self.options.endpoint, what, e)
    }

    fn cas_err(&self, what: &str, e: CasError) -> ExecError {
        match e {
            CasError::Io(m) => ExecError::Io { what: what.to_string(), message: m },
            e => self.err(what, e),
        }
    }

    /// The platform properties of a step's action, sorted by name.
    fn platform(&self, req: &StepRequest) -> re::Platform {
        let mut props: BTreeMap<String, String> = PLATFORM.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        props.insert(HOSTNAME_PROPERTY.into(), req.hostname.clone());
        if self.options.split_lineages {
            props.insert(LINEAGE_PROPERTY.into(), req.lineage.clone());
        }
        for (k, v) in &self.options.properties {
            props.insert(k.clone(), v.clone());
        }
        re::Platform { properties: props.into_iter().map(|(name, value)| re::platform::Property { name, value }).collect() }
    }

    /// Sends the blobs of `blobs` the server does not hold.
    async fn send(&self, cas: &Cas, blobs: &BTreeMap<String, (re::Digest, Blob)>) -> Result<(), ExecError> {
        let unknown: Vec<re::Digest> = {
            let present = self.present.lock().map_err(|_| ExecError::Internal("the remote blob set is poisoned".into()))?;
            blobs.iter().filter(|(h, _)| !present.contains(*h)).map(|(_, (d, _))| d.clone()).collect()
        };
        let missing = cas.missing(unknown.clone()).await.map_err(|e| self.cas_err("ask which inputs it lacks", e))?;
        let send: Vec<(re::Digest, Blob)> = missing.iter().filter_map(|d| blobs.get(&d.hash).cloned()).collect();
        cas.upload(send).await.map_err(|e| self.cas_err("send the step's inputs", e))?;
        let mut present = self.present.lock().map_err(|_| ExecError::Internal("the remote blob set is poisoned".into()))?;
        present.extend(unknown.into_iter().map(|d| d.hash));
        Ok(())
    }

    /// Runs the action to its end: its `ExecuteResponse`, or what the
    /// server said when it lacks an input (it lost a blob).
    async fn execute(&self, action: &re::Digest, fresh: bool) -> Result<Result<re::ExecuteResponse, String>, ExecError> {
        let exec = re::execution_client::ExecutionClient::new(self.channel.clone()).max_decoding_message_size(64 << 20);
        let req = re::ExecuteRequest {
            instance_name: self.options.instance.clone(),
            action_digest: Some(action.clone()),
            skip_cache_lookup: fresh,
            ..Default::default()
        };
        let mut stream = cas::retry(|| { let mut c = exec.clone(); let a = req.clone(); async move { c.execute(a).await } }).await.map_err(|e| self.err("run the step", status_text(&e)))?.into_inner();
        let mut name = String::new();
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            let next = tokio::select! {
                m = stream.message() => m,
                _ = tick.tick() => {
                    if self.cancel.is_cancelled() {
                        if !name.is_empty() {
                            let mut ops = lro::operations_client::OperationsClient::new(self.channel.clone());
                            let _ = ops.cancel_operation(lro::CancelOperationRequest { name: name.clone() }).await;
                        }
                        return Err(ExecError::Interrupted);
                    }
                    continue;
                }
            };
            match next {
                Ok(Some(op)) => {
                    name.clone_from(&op.name);
                    if op.done {
                        return self.finished(op);
                    }
                }
                // The stream ended or broke before the action did: wait on it again.
                Ok(None) | Err(_) if !name.is_empty() => {
                    let wait = re::WaitExecutionRequest { name: name.clone() };
                    stream = cas::retry(|| { let mut c = exec.clone(); let a = wait.clone(); async move { c.wait_execution(a).await } }).await.map_err(|e| self.err("wait for the step", status_text(&e)))?.into_inner();
                }
                Ok(None) => return Err(self.err("run the step", "the server ended the call without naming the operation")),
                Err(e) => return Err(self.err("run the step", status_text(&e))),
            }
        }
    }

    fn finished(&self, op: lro::Operation) -> Result<Result<re::ExecuteResponse, String>, ExecError> {
        match op.result {
            Some(lro::operation::Result::Response(any)) => {
                let resp = re::ExecuteResponse::decode(any.value.as_slice()).map_err(|e| self.err("read the step's result", e))?;
                if let Some(s) = &resp.status
                    && s.code == tonic::Code::FailedPrecondition as i32
                    && !s.message.starts_with(BAD_OUTPUT)
                {
                    return Ok(Err(s.message.clone()));
                }
                Ok(Ok(resp))
            }
            Some(lro::operation::Result::Error(s)) if s.code == tonic::Code::FailedPrecondition as i32 && !s.message.starts_with(BAD_OUTPUT) => Ok(Err(s.message)),
            Some(lro::operation::Result::Error(s)) => Ok(Ok(re::ExecuteResponse { status: Some(s), ..Default::default() })),
            None => Err(self.err("run the step", "the operation ended without a result")),
        }
    }

    /// Writes the output `declared`, read at `rel` (relative to the root),
    /// from the action's result under `capture`. `Err(reason)` when the
    /// result lacks it.
    async fn capture(&self, cas: &Cas, result: &re::ActionResult, rel: &str, declared: &str, capture: &Path) -> Result<Result<(), String>, ExecError> {
        let to = capture.join(declared.trim_start_matches('/'));
        let io = |e: std::io::Error| ExecError::Io { what: format!("capture the output {declared}"), message: e.to_string() };
        if let Some(parent) = to.parent() {
            fs::create_dir_all(parent).map_err(io)?;
        }
        if let Some(dir) = result.output_directories.iter().find(|d| d.path == rel) {
            let tree_digest = dir.tree_digest.clone().ok_or_else(|| self.err("read the step's outputs", format!("output {rel} has no tree")))?;
            let bytes = cas.read(&tree_digest).await.map_err(|e| self.cas_err(&format!("read the output {declared}"), e))?;
            let tree = re::Tree::decode(bytes.as_slice()).map_err(|e| self.err(&format!("read the output {declared}"), e))?;
            let root = tree.root.clone().unwrap_or_default();
            let children: BTreeMap<String, re::Directory> = tree.children.into_iter().map(|d| (message(&d).0.hash, d)).collect();
            self.write_dir(cas, &root, &children, &to, declared).await?;
            return Ok(Ok(()));
        }
        if let Some(f) = result.output_files.iter().find(|f| f.path == rel) {
            let d = f.digest.clone().unwrap_or_default();
            let bytes = cas.read(&d).await.map_err(|e| self.cas_err(&format!("read the output {declared}"), e))?;
            write_file(&to, &bytes, f.is_executable).map_err(io)?;
            return Ok(Ok(()));
        }
        // Servers before REAPI 2.1 sort symlinks by what they point at.
        #[allow(deprecated)]
        let link = result.output_symlinks.iter().chain(&result.output_file_symlinks).chain(&result.output_directory_symlinks).find(|l| l.path == rel);
        if let Some(l) = link {
            std::os::unix::fs::symlink(&l.target, &to).map_err(io)?;
            return Ok(Ok(()));
        }
        Ok(Err("it does not exist".into()))
    }

    /// Writes the tree `dir` (its subdirectories in `children`) at `to`,
    /// its files read from the CAS all together ([`Cas::read_each`]).
    async fn write_dir(&self, cas: &Cas, dir: &re::Directory, children: &BTreeMap<String, re::Directory>, to: &Path, shown: &str) -> Result<(), ExecError> {
        let io = |e: std::io::Error| ExecError::Io { what: format!("capture the output {shown}"), message: e.to_string() };
        let bad = |what: &str, name: &str| self.err(&format!("read the output {shown}"), format!("a {what} is named {name:?}"));
        // Where each file goes, by digest: (path, executable).
        let mut files: BTreeMap<String, Vec<(std::path::PathBuf, bool)>> = BTreeMap::new();
        let mut digests = Vec::new();
        let mut stack: Vec<(re::Directory, std::path::PathBuf)> = vec![(dir.clone(), to.to_path_buf())];
        while let Some((d, at)) = stack.pop() {
            fs::create_dir_all(&at).map_err(io)?;
            for f in &d.files {
                let name = plain(&f.name).ok_or_else(|| bad("file", &f.name))?;
                let digest = f.digest.clone().unwrap_or_default();
                files.entry(digest.hash.clone()).or_default().push((at.join(name), f.is_executable));
                digests.push(digest);
            }
            for l in &d.symlinks {
                let name = plain(&l.name).ok_or_else(|| bad("symlink", &l.name))?;
                std::os::unix::fs::symlink(&l.target, at.join(name)).map_err(io)?;
            }
            for c in &d.directories {
                let name = plain(&c.name).ok_or_else(|| bad("directory", &c.name))?;
                let hash = c.digest.as_ref().map(|d| d.hash.clone()).unwrap_or_default();
                let child = children.get(&hash).cloned().ok_or_else(|| self.err(&format!("read the output {shown}"), format!("its tree lacks directory {hash}")))?;
                stack.push((child, at.join(name)));
            }
        }
        cas.read_each(digests, |d, bytes| {
            for (path, exec) in files.get(&d.hash).into_iter().flatten() {
                write_file(path, &bytes, *exec).map_err(|e| CasError::Io(format!("{}: {e}", path.display())))?;
            }
            Ok(())
        })
        .await
        .map_err(|e| self.cas_err(&format!("read the output {shown}"), e))
    }
}

/// A single plain path component, or `None`.
fn plain(name: &str) -> Option<&str> {
    (!name.is_empty() && name != "." && name != ".." && !name.contains('/') && !name.contains('\0')).then_some(name)
}

fn write_file(to: &Path, bytes: &[u8], exec: bool) -> std::io::Result<()> {
    fs::write(to, bytes)?;
    fs::set_permissions(to, fs::Permissions::from_mode(if exec { 0o755 } else { 0o644 }))
}

/// A gRPC status as a line: its code and message.
pub(crate) fn status_text(s: &tonic::Status) -> String {
    if s.message().is_empty() { format!("{}", s.code()) } else { format!("{}: {}", s.code(), s.message()) }
}

/// The runner's last word in a log: which command ended how.
fn runner_said(log: &[u8]) -> Option<Status> {
    let text = String::from_utf8_lossy(log);
    let line = text.lines().rev().find_map(|l| l.strip_prefix("bootstrap runner: "))?;
    let mut w = line.split_whitespace();
    let (how, index, value) = (w.next()?, w.next()?.parse().ok()?, w.next()?.parse().ok()?);
    match how {
        "exit" => Some(Status::Exited { index, code: value }),
        "signal" => Some(Status::Signaled { index, signal: value }),
        _ => None,
    }
}

impl Executor for RemoteBackend {
    fn name(&self) -> &'static str {
        "remote"
    }

    fn run(&self, req: &StepRequest, store: &crate::store::Store, echo: &dyn LogSink) -> Result<StepResult, ExecError> {
        let started = Instant::now();
        if self.cancel.is_cancelled() {
            return Err(ExecError::Interrupted);
        }
        let seed = match &req.root {
            Root::Scratch => None,
            Root::Dir(d) => Some(d.as_path()),
            Root::Image(_) => {
                return Err(ExecError::Unsupported {
                    backend: "remote",
                    message: "it sends seeds as root filesystem directories, not images".into(),
                    help: "give the seed as a directory (`--seed NAME=DIR`, or the chain's `rootfs`), or use `--backend oci`".into(),
                });
            }
        };
        let mut union = step_union("remote", req, seed, &[RUNNER_PATH])?;
        union.put(RUNNER_PATH.trim_start_matches('/').to_string(), Item::Bytes { bytes: RUNNER, mode: 0o755 });
        let root = merkle::input_root(&union, &self.digests)?;
        let reads: Vec<(String, String)> = req.outputs.iter().map(|o| (o.clone(), req.read_path(o).trim_start_matches('/').to_string())).collect();
        let mut output_paths: Vec<String> = reads.iter().map(|(_, r)| r.clone()).collect();
        output_paths.sort();
        output_paths.dedup();
        let mut arguments = vec![RUNNER_PATH.to_string(), req.workdir.clone(), req.commands.len().to_string()];
        for c in &req.commands {
            arguments.push(c.len().to_string());
            arguments.extend(c.iter().cloned());
        }
        let platform = self.platform(req);
        // The platform goes in the command too, for servers before REAPI 2.2.
        #[allow(deprecated)]
        let command = re::Command {
            arguments,
            environment_variables: req.env.iter().map(|(name, value)| re::command::EnvironmentVariable { name: name.clone(), value: value.clone() }).collect(),
            output_paths,
            platform: Some(platform.clone()),
            ..Default::default()
        };
        let (command_digest, command_bytes) = message(&command);
        let action = re::Action {
            command_digest: Some(command_digest.clone()),
            input_root_digest: Some(root.root.clone()),
            timeout: Some(bazel_remote_apis::google::protobuf::Duration { seconds: req.timeout.as_secs() as i64, nanos: 0 }),
            do_not_cache: false,
            salt: format!("bootstrap-lineage:{}", req.lineage).into_bytes(),
            platform: Some(platform),
        };
        let (action_digest, action_bytes) = message(&action);
        let mut blobs = root.blobs;
        blobs.insert(command_digest.hash.clone(), (command_digest, Blob::Bytes(command_bytes)));
        blobs.insert(action_digest.hash.clone(), (action_digest.clone(), Blob::Bytes(action_bytes)));

        let mut log = super::log::LogTail::new(store, self.limits.log)?;
        let capture = store.temp_dir()?;
        let cas = Cas::new(self.channel.clone(), &self.options.instance);
        let busy = self.cancel.busy();
        let ran: Result<Status, ExecError> = self.rt.block_on(async {
            let mut resp = Err(String::new());
            for _ in 0..2 {
                self.send(&cas, &blobs).await?;
                resp = self.execute(&action_digest, req.fresh).await?;
                if resp.is_ok() {
                    break;
                }
                // The server lost an input it was sent: forget what it holds.
                self.present.lock().map_err(|_| ExecError::Internal("the remote blob set is poisoned".into()))?.clear();
            }
            let resp = resp.map_err(|m| self.err("run the step", format!("it lacks the step's inputs even after they were sent again ({m})")))?;
            let result = resp.result.clone().unwrap_or_default();
            // The log: what the action wrote, whatever else happened.
            let mut said = Vec::new();
            for d in [&result.stdout_digest, &result.stderr_digest].into_iter().flatten() {
                let bytes = cas.read(d).await.map_err(|e| self.cas_err("read the step's log", e))?;
                said.extend_from_slice(&bytes);
            }
            said.extend_from_slice(&result.stdout_raw);
            said.extend_from_slice(&result.stderr_raw);
            if resp.cached_result {
                said.extend_from_slice(CACHED.as_bytes());
            }
            std::io::Write::write_all(&mut log, &said).map_err(|e| ExecError::Io { what: "write the step's log".into(), message: e.to_string() })?;
            echo.write(&said);
            if let Some(s) = resp.status.filter(|s| s.code != 0) {
                if s.code == tonic::Code::DeadlineExceeded as i32 {
                    return Ok(Status::TimedOut);
                }
                if let Some(rest) = s.message.strip_prefix(BAD_OUTPUT)
                    && let Some((path, reason)) = rest.split_once(": ")
                {
                    let declared = reads.iter().find(|(_, r)| format!("/{r}") == path).map_or_else(|| path.to_string(), |(d, _)| d.clone());
                    return Ok(Status::BadOutput { path: declared, reason: reason.to_string() });
                }
                return Err(self.err("run the step", format!("{}: {}", tonic::Code::from(s.code), s.message)));
            }
            if result.exit_code != 0 {
                return Ok(runner_said(&said).unwrap_or(Status::Exited { index: 0, code: result.exit_code }));
            }
            for (declared, rel) in &reads {
                if let Err(reason) = self.capture(&cas, &result, rel, declared, capture.path()).await? {
                    return Ok(Status::BadOutput { path: declared.clone(), reason });
                }
            }
            Ok(Status::Succeeded)
        });
        drop(busy);
        let status = ran?;
        let log_digest = log.finish(store)?;
        let layer = if status == Status::Succeeded { Some(store.commit_tree(capture)?) } else { None };
        Ok(StepResult { status, layer, log: log_digest, duration: started.elapsed() })
    }
}
