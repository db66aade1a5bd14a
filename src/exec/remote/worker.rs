//! `bootstrap worker`: a bot of the Remote Workers API (the protocol
//! BuildGrid's workers speak) that runs each leased action through the
//! local backend's sandbox, so a step sent to a cluster is held to the
//! same contract as on this machine: no network, no host paths, its own
//! namespaces, only its outputs kept.
//!
//! One lease at a time. For each: the action (in the lease, or by digest),
//! its command and input root are read from the CAS (every blob checked
//! against its digest; files kept in a cache under the state directory and
//! hard-linked into each root); the input root becomes the step's root
//! directory; the command runs as the step's one command, with the
//! action's environment, working directory, output paths, timeout and the
//! hostname of its `bootstrap-hostname` property; the log and the outputs
//! go back to the CAS and the `ActionResult` into the lease. While a step
//! runs the session is kept alive, so the server does not give it away.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bazel_remote_apis::build::bazel::remote::execution::v2 as re;
use googleapis_tonic_google_devtools_remoteworkers_v1test2::google::devtools::remoteworkers::v1test2 as rw;
use googleapis_tonic_google_devtools_remoteworkers_v1test2::google::rpc;
use prost::Message;

use super::cas::{Cas, CasError};
use super::merkle::{Blob, message};
use super::{BAD_OUTPUT, HOSTNAME_PROPERTY, remote_err, status_text};
use crate::exec::cancel::Cancel;
use crate::exec::local::LocalBackend;
use crate::exec::{ExecError, Executor, NoEcho, Root, Status, StepRequest, normalize};
use crate::store::Store;

const ACTION_TYPE: &str = "type.googleapis.com/build.bazel.remote.execution.v2.Action";
const DIGEST_TYPE: &str = "type.googleapis.com/build.bazel.remote.execution.v2.Digest";
const RESULT_TYPE: &str = "type.googleapis.com/build.bazel.remote.execution.v2.ActionResult";
/// An action without a timeout gets the engine's own default.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(6 * 3600);
/// How long one `UpdateBotSession` may wait for work (the server waits at
/// most 0.8 times this, or its keepalive, for a lease to give).
const POLL: Duration = Duration::from_secs(20);
/// How often a bot running a step tells the server it is alive (well
/// within any server's keepalive timeout: BuildGrid's is 15 s in the tests).
const KEEPALIVE: Duration = Duration::from_secs(3);

/// Who the worker is and where it takes work from.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// `grpc://HOST:PORT`.
    pub endpoint: String,
    /// The instance name.
    pub instance: String,
    /// The bot's id (unique per worker); with several slots, each slot's
    /// bot is `<id>-<n>`.
    pub bot_id: String,
    /// How many leases it runs at once (one bot session each).
    pub slots: usize,
    /// Platform properties it serves, besides `OSFamily=linux` and
    /// `ISA=x86-64` (e.g. `bootstrap-lineage=alpine`).
    pub properties: Vec<(String, String)>,
}

/// How one lease ended: the result and the status for the lease.
struct Done {
    result: re::ActionResult,
    status: rpc::Status,
    /// How long its phases took, for the worker's own log.
    phases: String,
}

fn ok() -> rpc::Status {
    rpc::Status { code: 0, message: String::new(), details: Vec::new() }
}

fn failed(code: tonic::Code, message: String) -> rpc::Status {
    rpc::Status { code: code as i32, message, details: Vec::new() }
}

/// Serves leases until `cancel` is set; `say` hears what happens.
pub fn serve(opts: &WorkerOptions, local: &LocalBackend, store: &Store, cancel: &Cancel, say: &(dyn Fn(&str) + Sync)) -> Result<(), ExecError> {
    let rt = super::runtime()?;
    let channel = super::channel(&rt, &opts.endpoint)?;
    let cas = Cas::new(channel.clone(), &opts.instance);
    let blobs = store.root().join("worker-blobs");
    fs::create_dir_all(&blobs).map_err(|e| ExecError::Io { what: format!("create {}", blobs.display()), message: e.to_string() })?;
    let slots = opts.slots.max(1);
    let shared = Shared { opts, local, store, cancel, say, rt: &rt, channel: &channel, cas: &cas, blobs: &blobs };
    // One bot session per slot, each taking one lease at a time.
    let results: Vec<Result<(), ExecError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..slots)
            .map(|k| {
                let bot_id = if slots == 1 { opts.bot_id.clone() } else { format!("{}-{k}", opts.bot_id) };
                let shared = &shared;
                scope.spawn(move || shared.session(&bot_id))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err(ExecError::Internal("a worker slot panicked".into())))).collect()
    });
    // Interrupted only when every slot was; otherwise the first failure.
    let mut first = Err(ExecError::Interrupted);
    for r in results {
        match r {
            Err(ExecError::Interrupted) => {}
            Ok(()) if matches!(first, Err(ExecError::Interrupted)) => first = Ok(()),
            Ok(()) => {}
            Err(e) if matches!(first, Err(ExecError::Interrupted) | Ok(())) => first = Err(e),
            Err(_) => {}
        }
    }
    first
}

/// What every slot of a worker shares.
struct Shared<'a> {
    opts: &'a WorkerOptions,
    local: &'a LocalBackend,
    store: &'a Store,
    cancel: &'a Cancel,
    say: &'a (dyn Fn(&str) + Sync),
    rt: &'a tokio::runtime::Runtime,
    channel: &'a tonic::transport::Channel,
    cas: &'a Cas,
    blobs: &'a Path,
}

impl Shared<'_> {
    /// One bot session, serving leases one at a time until cancelled.
    fn session(&self, bot_id: &str) -> Result<(), ExecError> {
        let (opts, local, store, cancel, say, rt, cas) = (self.opts, self.local, self.store, self.cancel, self.say, self.rt, self.cas);
        let (channel, blobs) = (self.channel, self.blobs.to_path_buf());
        let err = |what: &str, e: &tonic::Status| remote_err(&opts.endpoint, what, status_text(e));
        let mut props: Vec<(String, String)> = super::PLATFORM.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        props.extend(opts.properties.iter().cloned());
        let worker = rw::Worker {
            devices: vec![rw::Device {
                handle: bot_id.to_string(),
                properties: props.iter().map(|(k, v)| rw::device::Property { key: k.clone(), value: v.clone() }).collect(),
            }],
            properties: Vec::new(),
            configs: Vec::new(),
        };
        std::thread::scope(|scope| rt.block_on(async {
            let mut bots = rw::bots_client::BotsClient::new(channel.clone());
            let req = tonic::Request::new(rw::CreateBotSessionRequest {
                parent: opts.instance.clone(),
                bot_session: Some(rw::BotSession { bot_id: bot_id.to_string(), status: rw::BotStatus::Ok as i32, worker: Some(worker), ..Default::default() }),
            });
            let mut session = super::cas::retry(|| {
                let mut c = bots.clone();
                let mut r = tonic::Request::new(req.get_ref().clone());
                r.set_timeout(POLL);
                async move { c.create_bot_session(r).await }
            })
            .await
            .map_err(|e| err("start a bot session", &e))?
            .into_inner();
            say(&format!("worker {}: serving instance `{}` of {} as {}", bot_id, opts.instance, opts.endpoint, session.name));
            // The lease running, its thread, and word from it when it ends.
            let mut running: Option<(String, std::thread::ScopedJoinHandle<'_, Result<Done, ExecError>>, tokio::sync::oneshot::Receiver<()>)> = None;
            let mut done: HashMap<String, Done> = HashMap::new();
            loop {
                if cancel.is_cancelled() {
                    session.status = rw::BotStatus::BotTerminating as i32;
                }
                if let Some((_, h, _)) = &running
                    && h.is_finished()
                    && let Some((id, h, _)) = running.take()
                {
                    match h.join() {
                        Ok(Ok(d)) => {
                            say(&format!("worker {bot_id}: lease {id} done: {}", d.phases));
                            done.insert(id, d);
                        }
                        // The step could not be run here at all: the server may try another worker.
                        Ok(Err(e)) => {
                            say(&format!("worker {bot_id}: lease {id}: {e}"));
                            done.insert(id, Done { phases: String::new(), result: re::ActionResult::default(), status: failed(tonic::Code::Unavailable, e.to_string()) });
                        }
                        Err(_) => {
                            done.insert(id, Done { phases: String::new(), result: re::ActionResult::default(), status: failed(tonic::Code::Internal, "the worker's step thread panicked".into()) });
                        }
                    }
                }
                let ids: Vec<String> = session.leases.iter().map(|l| l.id.clone()).collect();
                done.retain(|id, _| ids.contains(id));
                for lease in &mut session.leases {
                    match rw::LeaseState::try_from(lease.state) {
                        Ok(rw::LeaseState::Pending) => lease.state = rw::LeaseState::Active as i32,
                        Ok(rw::LeaseState::Active) => {
                            if let Some(d) = done.get(&lease.id) {
                                lease.state = rw::LeaseState::Completed as i32;
                                lease.result = Some(prost_types::Any { type_url: RESULT_TYPE.into(), value: d.result.encode_to_vec() });
                                lease.status = Some(d.status.clone());
                            } else if running.is_none() && !cancel.is_cancelled() {
                                let payload = lease.payload.clone();
                                let (cas, blobs, endpoint) = (cas.clone(), blobs.clone(), opts.endpoint.clone());
                                let handle = tokio::runtime::Handle::current();
                                say(&format!("worker {bot_id}: running lease {}", lease.id));
                                let (ended, ends) = tokio::sync::oneshot::channel();
                                let thread = scope.spawn(move || {
                                    let done = handle.block_on(run_lease(&endpoint, &cas, local, store, &blobs, payload));
                                    let _ = ended.send(());
                                    done
                                });
                                running = Some((lease.id.clone(), thread, ends));
                            }
                        }
                        _ => {}
                    }
                }
                if cancel.is_cancelled() && running.is_none() {
                    let mut req = tonic::Request::new(rw::UpdateBotSessionRequest { name: session.name.clone(), bot_session: Some(session.clone()), update_mask: None });
                    req.set_timeout(Duration::from_secs(5));
                    let _ = bots.update_bot_session(req).await;
                    return Err(ExecError::Interrupted);
                }
                // While a step runs the server has nothing more for this bot and
                // answers at once: say it is alive every few seconds, and at once
                // when the step ends.
                if let Some((_, h, ends)) = &mut running {
                    let ended = tokio::select! {
                        _ = ends => true,
                        _ = tokio::time::sleep(KEEPALIVE) => false,
                    };
                    // Ended: report it in this very update (from the top,
                    // once the thread has returned its result).
                    if ended {
                        while !h.is_finished() {
                            std::thread::yield_now();
                        }
                        continue;
                    }
                }
                let mut req = tonic::Request::new(rw::UpdateBotSessionRequest { name: session.name.clone(), bot_session: Some(session.clone()), update_mask: None });
                req.set_timeout(POLL);
                match bots.update_bot_session(req).await {
                    Ok(s) => session = s.into_inner(),
                    Err(e) if e.code() == tonic::Code::DeadlineExceeded => {}
                    // A busy or restarting server: ask again shortly.
                    Err(e) if matches!(e.code(), tonic::Code::ResourceExhausted | tonic::Code::Unavailable) && !cancel.is_cancelled() => {
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                    Err(e) => return Err(err("keep the bot session", &e)),
                }
            }
        }))
    }
}

/// Runs one lease's action: its result, or why it could not be run.
async fn run_lease(endpoint: &str, cas: &Cas, local: &LocalBackend, store: &Store, blobs: &Path, payload: Option<prost_types::Any>) -> Result<Done, ExecError> {
    let cas_err = |what: &str, e: CasError| remote_err(endpoint, what, e);
    let started = std::time::Instant::now();
    let payload = payload.ok_or_else(|| remote_err(endpoint, "read a lease", "it carries no action"))?;
    let action = match payload.type_url.as_str() {
        ACTION_TYPE => re::Action::decode(payload.value.as_slice()).map_err(|e| remote_err(endpoint, "read a lease's action", e))?,
        DIGEST_TYPE => {
            let d = re::Digest::decode(payload.value.as_slice()).map_err(|e| remote_err(endpoint, "read a lease's action digest", e))?;
            let bytes = cas.read(&d).await.map_err(|e| cas_err("read a lease's action", e))?;
            re::Action::decode(bytes.as_slice()).map_err(|e| remote_err(endpoint, "read a lease's action", e))?
        }
        other => return Err(remote_err(endpoint, "read a lease", format!("it carries a {other}, not an action"))),
    };
    let cd = action.command_digest.clone().unwrap_or_default();
    let command = re::Command::decode(cas.read(&cd).await.map_err(|e| cas_err("read the action's command", e))?.as_slice())
        .map_err(|e| remote_err(endpoint, "read the action's command", e))?;
    let root_digest = action.input_root_digest.clone().unwrap_or_default();
    let dirs = match cas.tree(&root_digest).await {
        Ok(d) => d,
        Err(CasError::Missing(m)) => {
            return Ok(Done { phases: String::new(), result: re::ActionResult::default(), status: failed(tonic::Code::FailedPrecondition, format!("the input root lacks {m}")) });
        }
        Err(e) => return Err(cas_err("read the action's input root", e)),
    };
    let root = store.temp_dir()?;
    if let Err(e) = materialize(cas, &dirs, &root_digest, root.path(), blobs).await {
        return match e {
            CasError::Missing(m) => Ok(Done { phases: String::new(), result: re::ActionResult::default(), status: failed(tonic::Code::FailedPrecondition, format!("the input root lacks {m}")) }),
            e => Err(cas_err("write the action's input root", e)),
        };
    }
    let fetched = started.elapsed();
    let wd = command.working_directory.trim_matches('/');
    let abs = |p: &str| normalize(&format!("/{wd}/{p}"));
    // Clients of REAPI before 2.1 name outputs by kind, and put the
    // platform in the command.
    #[allow(deprecated)]
    let rel_paths: Vec<String> = if command.output_paths.is_empty() {
        command.output_files.iter().chain(&command.output_directories).cloned().collect()
    } else {
        command.output_paths.clone()
    };
    let mut outputs: Vec<String> = rel_paths.iter().map(|p| abs(p)).collect();
    outputs.sort();
    outputs.dedup();
    #[allow(deprecated)]
    let platform = action.platform.clone().or(command.platform.clone()).unwrap_or_default();
    let hostname = platform.properties.iter().find(|p| p.name == HOSTNAME_PROPERTY).map_or_else(|| "bootstrap".to_string(), |p| p.value.clone());
    let env: BTreeMap<String, String> = command.environment_variables.iter().map(|e| (e.name.clone(), e.value.clone())).collect();
    let timeout = action.timeout.map_or(DEFAULT_TIMEOUT, |t| Duration::from_secs(t.seconds.max(1) as u64));
    let req = StepRequest {
        root: Root::Dir(root.path().to_path_buf()),
        sources: Vec::new(),
        layers: Vec::new(),
        commands: vec![command.arguments.clone()],
        env,
        workdir: abs(""),
        outputs,
        timeout,
        hostname,
        source_dir: "/src".into(),
        destdir: None,
        lineage: String::new(),
        fresh: false,
    };
    let ran = local.run(&req, store, &NoEcho)?;
    let executed = started.elapsed();
    drop(root);
    let mut result = re::ActionResult::default();
    let log = fs::read(store.log_path(&ran.log)).map_err(|e| ExecError::Io { what: "read the step's log".into(), message: e.to_string() })?;
    let log_digest = super::merkle::digest(&log);
    let mut upload: BTreeMap<String, (re::Digest, Blob)> = BTreeMap::new();
    upload.insert(log_digest.hash.clone(), (log_digest.clone(), Blob::Bytes(log)));
    result.stdout_digest = Some(log_digest);
    let status = match &ran.status {
        Status::Succeeded => ok(),
        Status::Exited { code, .. } => {
            result.exit_code = *code;
            ok()
        }
        Status::Signaled { signal, .. } => {
            result.exit_code = 128 + signal;
            ok()
        }
        Status::TimedOut => failed(tonic::Code::DeadlineExceeded, "the action ran past its timeout".into()),
        Status::BadOutput { path, reason } => failed(tonic::Code::FailedPrecondition, format!("{BAD_OUTPUT}{path}: {reason}")),
        Status::LowOnSpace { min_free } => failed(tonic::Code::ResourceExhausted, format!("the worker's disk fell below {min_free} bytes free")),
        Status::ScratchFull { limit } => failed(tonic::Code::ResourceExhausted, format!("the step wrote more than {limit} bytes")),
    };
    if let (Status::Succeeded, Some((digest, _))) = (&ran.status, &ran.layer) {
        let layer = store.layer_path(digest);
        for p in &rel_paths {
            let at = layer.join(abs(p).trim_start_matches('/'));
            let meta = fs::symlink_metadata(&at).map_err(|e| ExecError::Io { what: format!("read the output {p}"), message: e.to_string() })?;
            if meta.file_type().is_symlink() {
                let target = fs::read_link(&at).map_err(|e| ExecError::Io { what: format!("read the output {p}"), message: e.to_string() })?;
                result.output_symlinks.push(re::OutputSymlink { path: p.clone(), target: target.to_string_lossy().into_owned(), node_properties: None });
            } else if meta.is_dir() {
                let tree = tree_of(&at, &mut upload)?;
                let (td, bytes) = message(&tree);
                upload.insert(td.hash.clone(), (td.clone(), Blob::Bytes(bytes)));
                result.output_directories.push(re::OutputDirectory { path: p.clone(), tree_digest: Some(td), is_topologically_sorted: false, root_directory_digest: None });
            } else {
                let d = queue_file(&at, &mut upload)?;
                result.output_files.push(re::OutputFile { path: p.clone(), digest: Some(d), is_executable: meta.permissions().mode() & 0o111 != 0, contents: Vec::new(), node_properties: None });
            }
        }
    }
    let digests: Vec<re::Digest> = upload.values().map(|(d, _)| d.clone()).collect();
    let missing = cas.missing(digests).await.map_err(|e| cas_err("ask which results the server lacks", e))?;
    let send: Vec<(re::Digest, Blob)> = missing.iter().filter_map(|d| upload.get(&d.hash).cloned()).collect();
    cas.upload(send).await.map_err(|e| cas_err("send the action's results", e))?;
    let phases = format!(
        "input root {} ms, step {} ms, results {} ms",
        fetched.as_millis(),
        (executed - fetched).as_millis(),
        (started.elapsed() - executed).as_millis()
    );
    Ok(Done { result, status, phases })
}

fn queue_file(p: &Path, upload: &mut BTreeMap<String, (re::Digest, Blob)>) -> Result<re::Digest, ExecError> {
    let d = super::merkle::file_digest(p)?;
    upload.entry(d.hash.clone()).or_insert_with(|| (d.clone(), Blob::File(p.to_path_buf())));
    Ok(d)
}

/// The REAPI `Tree` of directory `dir`, its files queued in `upload`.
fn tree_of(dir: &Path, upload: &mut BTreeMap<String, (re::Digest, Blob)>) -> Result<re::Tree, ExecError> {
    fn walk(dir: &Path, upload: &mut BTreeMap<String, (re::Digest, Blob)>, children: &mut Vec<re::Directory>) -> Result<re::Directory, ExecError> {
        let io = |e: std::io::Error| ExecError::Io { what: format!("read {}", dir.display()), message: e.to_string() };
        let mut names: Vec<_> = fs::read_dir(dir).map_err(io)?.map(|e| e.map(|e| e.file_name())).collect::<Result<_, _>>().map_err(io)?;
        names.sort();
        let mut d = re::Directory::default();
        for n in names {
            let name = n.to_str().ok_or_else(|| ExecError::Io { what: format!("read {}", dir.display()), message: "a name that is not UTF-8".into() })?.to_string();
            let p = dir.join(&n);
            let meta = fs::symlink_metadata(&p).map_err(io)?;
            if meta.file_type().is_symlink() {
                let target = fs::read_link(&p).map_err(io)?;
                d.symlinks.push(re::SymlinkNode { name, target: target.to_string_lossy().into_owned(), node_properties: None });
            } else if meta.is_dir() {
                let child = walk(&p, upload, children)?;
                let (cd, _) = message(&child);
                children.push(child);
                d.directories.push(re::DirectoryNode { name, digest: Some(cd) });
            } else {
                let fd = queue_file(&p, upload)?;
                d.files.push(re::FileNode { name, digest: Some(fd), is_executable: meta.permissions().mode() & 0o111 != 0, node_properties: None });
            }
        }
        Ok(d)
    }
    let mut children = Vec::new();
    let root = walk(dir, upload, &mut children)?;
    Ok(re::Tree { root: Some(root), children })
}

/// Writes the tree `root` (its directories in `dirs`) at `to`: files
/// hard-linked from the blob cache `blobs`, the missing ones first read
/// from the CAS all together ([`Cas::read_each`]).
async fn materialize(cas: &Cas, dirs: &HashMap<String, re::Directory>, root: &re::Digest, to: &Path, blobs: &Path) -> Result<(), CasError> {
    let io = |p: &Path, e: std::io::Error| CasError::Io(format!("{}: {e}", p.display()));
    // The empty directory is every server's without being stored.
    let empty = re::Directory::default();
    let empty_hash = super::merkle::digest(&[]).hash;
    let dir = |hash: &str| if hash == empty_hash { Ok(&empty) } else { dirs.get(hash).ok_or_else(|| CasError::Missing(hash.to_string())) };
    let cached = |f: &re::FileNode| blobs.join(format!("{}{}", f.digest.as_ref().map_or("", |d| d.hash.as_str()), if f.is_executable { ".x" } else { "" }));
    // Every file node of the tree the cache lacks (once per digest and mode).
    let mut wanted: HashMap<String, bool> = HashMap::new();
    let mut fetch = Vec::new();
    let mut stack = vec![root.hash.clone()];
    while let Some(hash) = stack.pop() {
        let d = dir(&hash)?;
        for f in &d.files {
            let digest = f.digest.clone().unwrap_or_default();
            let key = format!("{}{}", digest.hash, if f.is_executable { ".x" } else { "" });
            if !wanted.contains_key(&key) && !cached(f).exists() {
                wanted.insert(key, f.is_executable);
                fetch.push(digest);
            }
        }
        stack.extend(d.directories.iter().map(|c| c.digest.as_ref().map(|d| d.hash.clone()).unwrap_or_default()));
    }
    let tag = format!("{}.{:?}", std::process::id(), std::thread::current().id());
    cas.read_each(fetch, |d, bytes| {
        for exec in [false, true] {
            let key = format!("{}{}", d.hash, if exec { ".x" } else { "" });
            if !wanted.contains_key(&key) {
                continue;
            }
            let tmp = blobs.join(format!(".{key}.{tag}"));
            fs::write(&tmp, &bytes).map_err(|e| io(&tmp, e))?;
            fs::set_permissions(&tmp, fs::Permissions::from_mode(if exec { 0o755 } else { 0o644 })).map_err(|e| io(&tmp, e))?;
            let to = blobs.join(&key);
            fs::rename(&tmp, &to).map_err(|e| io(&to, e))?;
        }
        Ok(())
    })
    .await?;
    let mut stack: Vec<(String, PathBuf)> = vec![(root.hash.clone(), to.to_path_buf())];
    while let Some((hash, at)) = stack.pop() {
        let d = dir(&hash)?;
        fs::create_dir_all(&at).map_err(|e| io(&at, e))?;
        for f in &d.files {
            let name = super::plain(&f.name).ok_or_else(|| CasError::Corrupt(format!("a file named {:?}", f.name)))?;
            let dest = at.join(name);
            let from = cached(f);
            if fs::hard_link(&from, &dest).is_err() {
                fs::copy(&from, &dest).map_err(|e| io(&dest, e))?;
            }
        }
        for l in &d.symlinks {
            let name = super::plain(&l.name).ok_or_else(|| CasError::Corrupt(format!("a symlink named {:?}", l.name)))?;
            std::os::unix::fs::symlink(&l.target, at.join(name)).map_err(|e| io(&at, e))?;
        }
        for c in &d.directories {
            let name = super::plain(&c.name).ok_or_else(|| CasError::Corrupt(format!("a directory named {:?}", c.name)))?;
            stack.push((c.digest.as_ref().map(|d| d.hash.clone()).unwrap_or_default(), at.join(name)));
        }
    }
    Ok(())
}
