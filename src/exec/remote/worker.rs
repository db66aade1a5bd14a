//! `bootstrap worker`: a bot of the Remote Workers API (the protocol
//! BuildGrid's workers speak) that runs each leased action through the
//! local backend's sandbox, so a step sent to a cluster is held to the
//! same contract as on this machine: no network, no host paths, its own
//! namespaces, only its outputs kept.
//!
//! One lease at a time per slot (`--jobs` slots, one bot session each).
//! For each: the action (in the lease, or by digest), its command and
//! input root are read from the CAS (every blob checked against its
//! digest; directories kept in memory, files in a cache under the state
//! directory); the input root is made on disk by changing the kept root
//! that shares the most with it ([`Roots`]: the previous step of the same
//! lineage, usually) and becomes the step's read-only root directory; the
//! command runs as the step's one command, with the action's environment,
//! working directory, output paths, timeout and the hostname of its
//! `bootstrap-hostname` property; the log and the outputs go back to the
//! CAS and the `ActionResult` into the lease. While a step runs the
//! session is kept alive, so the server does not give it away.

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

impl Done {
    /// A lease that ended without running its step: `code` and why.
    fn failed(code: tonic::Code, message: String) -> Done {
        Done { phases: String::new(), result: re::ActionResult::default(), status: failed(code, message) }
    }
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
    let blobs = store.worker_blobs();
    fs::create_dir_all(&blobs).map_err(|e| ExecError::Io { what: format!("create {}", blobs.display()), message: e.to_string() })?;
    let slots = opts.slots.max(1);
    let dirs = DirCache::default();
    let roots = Roots::new(store.worker_roots(), slots + 2);
    let shared = Shared { opts, local, store, cancel, say, rt: &rt, channel: &channel, cas: &cas, blobs: &blobs, dirs: &dirs, roots: &roots };
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

/// The lease a slot runs: its id, its thread, and word from it when it ends.
type Running<'s> = (String, std::thread::ScopedJoinHandle<'s, Result<Done, ExecError>>, tokio::sync::oneshot::Receiver<()>);

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
    dirs: &'a DirCache,
    roots: &'a Roots,
}

/// The directories of input roots seen so far, by digest, each checked
/// against it: the roots of one lineage's steps share nearly all of them
/// (the seed's), so a lease asks the server only for the few it has not
/// seen, not for its whole tree again.
#[derive(Default)]
struct DirCache(std::sync::Mutex<HashMap<String, re::Directory>>);

/// How many directories [`DirCache`] keeps before it starts over.
const DIR_CACHE_MAX: usize = 200_000;

impl DirCache {
    /// Every directory of the tree under `root`, by digest: from the
    /// cache, the rest read from the CAS a level at a time.
    async fn tree(&self, cas: &Cas, root: &re::Digest) -> Result<Tree, CasError> {
        let poisoned = || CasError::Io("the worker's directory cache is poisoned".into());
        let mut out: HashMap<String, re::Directory> = HashMap::new();
        let mut level = vec![root.clone()];
        while !level.is_empty() {
            // The directories this level brought, known or read.
            let mut arrived: Vec<String> = Vec::new();
            let mut unknown = Vec::new();
            {
                let known = self.0.lock().map_err(|_| poisoned())?;
                for d in level {
                    match known.get(&d.hash) {
                        Some(dir) => {
                            out.insert(d.hash.clone(), dir.clone());
                            arrived.push(d.hash);
                        }
                        None => unknown.push(d),
                    }
                }
            }
            let mut read = Vec::new();
            cas.read_each(unknown, |d, bytes| {
                let dir = re::Directory::decode(bytes.as_slice()).map_err(|e| CasError::Corrupt(format!("{} is not a directory: {e}", super::cas::show(d))))?;
                read.push((d.hash.clone(), dir));
                Ok(())
            })
            .await?;
            let mut known = self.0.lock().map_err(|_| poisoned())?;
            if known.len() + read.len() > DIR_CACHE_MAX {
                known.clear();
            }
            for (hash, dir) in read {
                known.insert(hash.clone(), dir.clone());
                out.insert(hash.clone(), dir);
                arrived.push(hash);
            }
            drop(known);
            // The next level: their subdirectories not yet in hand, once each.
            let mut seen = std::collections::HashSet::new();
            level = arrived
                .iter()
                .filter_map(|h| out.get(h))
                .flat_map(|d| d.directories.iter().filter_map(|c| c.digest.as_ref()))
                .filter(|c| !out.contains_key(&c.hash) && seen.insert(c.hash.clone()))
                .cloned()
                .collect();
        }
        Ok(Tree { root: root.hash.clone(), dirs: out })
    }
}

impl Shared<'_> {
    /// One bot session, serving leases one at a time until cancelled.
    fn session(&self, bot_id: &str) -> Result<(), ExecError> {
        let (opts, local, store, cancel, say, rt, cas) = (self.opts, self.local, self.store, self.cancel, self.say, self.rt, self.cas);
        let (channel, blobs, dirs, roots) = (self.channel, self.blobs.to_path_buf(), self.dirs, self.roots);
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
            let mut running: Option<Running<'_>> = None;
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
                            done.insert(id, Done::failed(tonic::Code::Unavailable, e.to_string()));
                        }
                        Err(_) => {
                            done.insert(id, Done::failed(tonic::Code::Internal, "the worker's step thread panicked".into()));
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
                                    let done = handle.block_on(run_lease(&endpoint, &cas, dirs, roots, local, store, &blobs, payload));
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
#[allow(clippy::too_many_arguments)]
async fn run_lease(endpoint: &str, cas: &Cas, known: &DirCache, roots: &Roots, local: &LocalBackend, store: &Store, blobs: &Path, payload: Option<prost_types::Any>) -> Result<Done, ExecError> {
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
    let tree = match known.tree(cas, &root_digest).await {
        Ok(d) => d,
        Err(CasError::Missing(m)) => {
            return Ok(Done::failed(tonic::Code::FailedPrecondition, format!("the input root lacks {m}")));
        }
        Err(e) => return Err(cas_err("read the action's input root", e)),
    };
    let root = roots.take(&tree).map_err(|e| cas_err("keep the action's input root", e))?;
    if let Err(e) = root.become_tree(cas, &tree, blobs).await {
        return match e {
            CasError::Missing(m) => Ok(Done::failed(tonic::Code::FailedPrecondition, format!("the input root lacks {m}"))),
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
        root: Root::Dir(root.path.clone()),
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
    roots.put(root, tree);
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

/// The directories of one input root, by digest: every one it holds
/// ([`DirCache::tree`] reads the empty one too, as the empty blob).
struct Tree {
    root: String,
    dirs: HashMap<String, re::Directory>,
}

impl Tree {
    /// The tree of one empty directory (what a new root holds).
    fn empty() -> Tree {
        let root = super::merkle::digest(&[]).hash;
        Tree { dirs: HashMap::from([(root.clone(), re::Directory::default())]), root }
    }
}

/// Input roots kept between leases (under the state directory), each with
/// the tree it holds, so that the next lease of the same lineage changes
/// only what differs (its new sources and layers) instead of linking the
/// whole seed again: thousands of files, a tenth of a second and more per
/// step. A root is only ever a read-only lower layer of the step's
/// overlay, so what is on disk stays the tree it was made as.
struct Roots {
    dir: PathBuf,
    keep: usize,
    free: std::sync::Mutex<Vec<(PathBuf, Tree)>>,
    made: std::sync::atomic::AtomicU64,
}

/// A root one lease holds; removed from disk if it is not given back.
struct Held {
    path: PathBuf,
    tree: Tree,
}

impl Drop for Held {
    fn drop(&mut self) {
        if !self.path.as_os_str().is_empty() {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

impl Roots {
    /// The roots under `dir`, at most `keep` kept; what a previous worker
    /// left there is removed (its trees are not known).
    fn new(dir: PathBuf, keep: usize) -> Roots {
        let _ = fs::remove_dir_all(&dir);
        Roots { dir, keep, free: std::sync::Mutex::default(), made: std::sync::atomic::AtomicU64::new(0) }
    }

    /// The kept root sharing the most directories with `want`, or a new
    /// empty one.
    fn take(&self, want: &Tree) -> Result<Held, CasError> {
        let mut free = self.free.lock().map_err(|_| CasError::Io("the worker's root pool is poisoned".into()))?;
        let shared = |t: &Tree| want.dirs.keys().filter(|h| t.dirs.contains_key(*h)).count();
        let best = free.iter().enumerate().map(|(i, (_, t))| (shared(t), i)).filter(|(n, _)| *n > 0).max();
        if let Some((_, i)) = best {
            let (path, tree) = free.remove(i);
            return Ok(Held { path, tree });
        }
        drop(free);
        let n = self.made.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = self.dir.join(n.to_string());
        fs::create_dir_all(&path).map_err(|e| CasError::Io(format!("{}: {e}", path.display())))?;
        Ok(Held { path, tree: Tree::empty() })
    }

    /// Gives `held` back, now holding `tree`; the oldest root beyond
    /// `keep` is removed.
    fn put(&self, mut held: Held, tree: Tree) {
        let path = std::mem::take(&mut held.path);
        let Ok(mut free) = self.free.lock() else {
            let _ = fs::remove_dir_all(&path);
            return;
        };
        free.push((path, tree));
        let over = free.len().saturating_sub(self.keep);
        let extra: Vec<PathBuf> = free.drain(..over).map(|(p, _)| p).collect();
        drop(free);
        for p in extra {
            let _ = fs::remove_dir_all(p);
        }
    }
}

/// One entry of a directory, as a root on disk holds it.
#[derive(PartialEq)]
enum Entry<'a> {
    File(&'a str, bool),
    Link(&'a str),
    Dir(&'a str),
}

fn entries(d: &re::Directory) -> Result<BTreeMap<&str, Entry<'_>>, CasError> {
    let bad = |what: &str, name: &str| CasError::Corrupt(format!("a {what} named {name:?}"));
    let mut out = BTreeMap::new();
    for f in &d.files {
        let name = super::plain(&f.name).ok_or_else(|| bad("file", &f.name))?;
        out.insert(name, Entry::File(f.digest.as_ref().map_or("", |d| d.hash.as_str()), f.is_executable));
    }
    for l in &d.symlinks {
        out.insert(super::plain(&l.name).ok_or_else(|| bad("symlink", &l.name))?, Entry::Link(&l.target));
    }
    for c in &d.directories {
        out.insert(super::plain(&c.name).ok_or_else(|| bad("directory", &c.name))?, Entry::Dir(c.digest.as_ref().map_or("", |d| d.hash.as_str())));
    }
    Ok(out)
}

/// The blob cache's file for content `hash`, executable or not.
fn cached(blobs: &Path, hash: &str, exec: bool) -> PathBuf {
    blobs.join(format!("{hash}{}", if exec { ".x" } else { "" }))
}

impl Held {
    /// Makes this root hold `tree`: the blobs the cache lacks read from the
    /// CAS all together ([`Cas::read_each`]), then every directory that
    /// differs from what the root holds changed in place (files hard-linked
    /// from the cache `blobs`); a directory the same as before is not
    /// looked into. On failure the root is left to be removed.
    async fn become_tree(&self, cas: &Cas, tree: &Tree, blobs: &Path) -> Result<(), CasError> {
        let io = |p: &Path, e: std::io::Error| CasError::Io(format!("{}: {e}", p.display()));
        // The files the cache lacks, in directories the old tree did not
        // have (its files were all cached when it was made).
        let mut wanted: std::collections::HashSet<PathBuf> = std::collections::HashSet::new();
        let mut fetch = Vec::new();
        let mut stack = vec![tree.root.clone()];
        while let Some(hash) = stack.pop() {
            if self.tree.dirs.contains_key(&hash) {
                continue;
            }
            let d = tree.dirs.get(&hash).ok_or_else(|| CasError::Missing(hash.clone()))?;
            for f in &d.files {
                let digest = f.digest.clone().unwrap_or_default();
                let file = cached(blobs, &digest.hash, f.is_executable);
                if !wanted.contains(&file) && !file.exists() {
                    wanted.insert(file);
                    fetch.push(digest);
                }
            }
            stack.extend(d.directories.iter().map(|c| c.digest.as_ref().map(|d| d.hash.clone()).unwrap_or_default()));
        }
        let tag = format!("{}.{:?}", std::process::id(), std::thread::current().id());
        cas.read_each(fetch, |d, bytes| {
            for exec in [false, true] {
                let to = cached(blobs, &d.hash, exec);
                if !wanted.contains(&to) {
                    continue;
                }
                let tmp = blobs.join(format!(".{}.{tag}", d.hash));
                fs::write(&tmp, &bytes).map_err(|e| io(&tmp, e))?;
                fs::set_permissions(&tmp, fs::Permissions::from_mode(if exec { 0o755 } else { 0o644 })).map_err(|e| io(&tmp, e))?;
                fs::rename(&tmp, &to).map_err(|e| io(&to, e))?;
            }
            Ok(())
        })
        .await?;
        // (where, what it holds now if known, what it must hold)
        let mut stack: Vec<(PathBuf, Option<String>, String)> = vec![(self.path.clone(), Some(self.tree.root.clone()), tree.root.clone())];
        while let Some((at, had, want)) = stack.pop() {
            if had.as_deref() == Some(want.as_str()) {
                continue;
            }
            let new = tree.dirs.get(&want).ok_or_else(|| CasError::Missing(want.clone()))?;
            let old = had.as_deref().and_then(|h| self.tree.dirs.get(h));
            if old.is_none() {
                fs::create_dir_all(&at).map_err(|e| io(&at, e))?;
            }
            let old_entries = match old {
                Some(o) => entries(o)?,
                None => BTreeMap::new(),
            };
            let new_entries = entries(new)?;
            for (name, e) in &old_entries {
                match (e, new_entries.get(name)) {
                    (Entry::Dir(_), Some(Entry::Dir(_))) => {}
                    (e, Some(n)) if e == n => {}
                    (Entry::Dir(_), _) => fs::remove_dir_all(at.join(name)).map_err(|e| io(&at, e))?,
                    _ => fs::remove_file(at.join(name)).map_err(|e| io(&at, e))?,
                }
            }
            for (name, e) in new_entries {
                let dest = at.join(name);
                let before = old_entries.get(name);
                match e {
                    Entry::Dir(h) => {
                        let had = match before {
                            Some(Entry::Dir(o)) => Some(o.to_string()),
                            _ => None,
                        };
                        stack.push((dest, had, h.to_string()));
                    }
                    _ if before == Some(&e) => {}
                    Entry::File(h, exec) => {
                        let from = cached(blobs, h, exec);
                        if fs::hard_link(&from, &dest).is_err() {
                            fs::copy(&from, &dest).map_err(|e| io(&dest, e))?;
                        }
                    }
                    Entry::Link(target) => std::os::unix::fs::symlink(target, &dest).map_err(|e| io(&dest, e))?,
                }
            }
        }
        Ok(())
    }
}
