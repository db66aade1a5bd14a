//! The dry-run executor: runs nothing, in no sandbox, as any user.
//!
//! It exists so the scheduler, the cache, early cutoff, the gate and
//! reroot can be tested in seconds without root or namespaces (the fast
//! test tier, `tests/dry_run.rs`); the real backends keep the conformance
//! suite. No command line reaches it: `--backend` offers only real ones,
//! so nothing a dry run records can pass for a verification.
//!
//! A step's outcome is its [`Rule`]'s answer to the request. The default,
//! [`pure`], makes every declared output a directory holding one file,
//! `dry-run`, whose bytes name the commands, environment, sources and the
//! needs' layers (by their content-addressed names): a function of what
//! the step was given, never of the seed's root, the hostname or the build
//! path, so every lineage agrees unless a test's rule says otherwise.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Mutex;
use std::time::Duration;

use super::{ExecError, Executor, LogSink, SourceInput, Status, StepRequest, StepResult};
use crate::store::Store;

/// What a dry-run step does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dry {
    /// It succeeds and leaves these files, by path relative to the sandbox
    /// root (`out/bin/tool`), with these bytes; declared outputs with no
    /// file under them are missing ([`Status::BadOutput`]).
    Files(BTreeMap<String, Vec<u8>>),
    /// Its first command exits with this code.
    Exit(i32),
}

/// How a [`DryRun`] answers a request.
pub type Rule = Box<dyn Fn(&StepRequest) -> Dry + Send + Sync>;

/// The executor. It keeps every request it was given, in order.
pub struct DryRun {
    rule: Rule,
    ran: Mutex<Vec<StepRequest>>,
}

impl Default for DryRun {
    fn default() -> Self {
        DryRun::new(Box::new(pure))
    }
}

impl DryRun {
    /// A dry run answering with `rule`.
    pub fn new(rule: Rule) -> DryRun {
        DryRun { rule, ran: Mutex::new(Vec::new()) }
    }

    /// Every request run so far, in the order they ran.
    pub fn ran(&self) -> Vec<StepRequest> {
        self.ran.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

/// The name of a store path: its last component (a digest for layers and
/// sources), the same whichever lineage asks.
fn name(p: &std::path::Path) -> String {
    p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

/// What the step was given that decides its outputs, as text.
pub fn identity(req: &StepRequest) -> String {
    let mut s = String::new();
    for argv in &req.commands {
        s.push_str(&format!("command {argv:?}\n"));
    }
    for (k, v) in &req.env {
        s.push_str(&format!("env {k}={v}\n"));
    }
    for (n, input) in &req.sources {
        let (kind, p) = match input {
            SourceInput::Tree(p) => ("tree", p),
            SourceInput::File(p) => ("file", p),
        };
        s.push_str(&format!("source {n} {kind} {}\n", name(p)));
    }
    for l in &req.layers {
        s.push_str(&format!("layer {}\n", name(l)));
    }
    s
}

/// The default rule: each declared output a directory holding `dry-run`
/// with the step's [`identity`].
pub fn pure(req: &StepRequest) -> Dry {
    let text = identity(req).into_bytes();
    Dry::Files(req.outputs.iter().map(|o| (format!("{}/dry-run", o.trim_start_matches('/')), text.clone())).collect())
}

impl Executor for DryRun {
    fn name(&self) -> &'static str {
        "dry-run"
    }

    fn run(&self, req: &StepRequest, store: &Store, echo: &dyn LogSink) -> Result<StepResult, ExecError> {
        if let Ok(mut ran) = self.ran.lock() {
            ran.push(req.clone());
        }
        let answer = (self.rule)(req);
        let mut log = super::log::LogTail::new(store, u64::MAX)?;
        let said = format!("dry run: {} command(s), nothing executed\n", req.commands.len());
        echo.write(said.as_bytes());
        log.write_all(said.as_bytes()).map_err(|e| ExecError::Io { what: "write the step log".into(), message: e.to_string() })?;
        let log = log.finish(store)?;
        let files = match answer {
            Dry::Exit(code) => {
                return Ok(StepResult { status: Status::Exited { index: 0, code }, layer: None, log, duration: Duration::ZERO });
            }
            Dry::Files(f) => f,
        };
        let missing = req.outputs.iter().find(|o| {
            let rel = o.trim_start_matches('/');
            !files.keys().any(|f| f == rel || f.starts_with(&format!("{rel}/")))
        });
        if let Some(o) = missing {
            let status = Status::BadOutput { path: o.clone(), reason: "it does not exist".into() };
            return Ok(StepResult { status, layer: None, log, duration: Duration::ZERO });
        }
        let dir = store.temp_dir()?;
        for (rel, bytes) in &files {
            let path = dir.path().join(rel);
            let io = |e: std::io::Error| ExecError::Io { what: format!("write {}", path.display()), message: e.to_string() };
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(io)?;
            }
            std::fs::write(&path, bytes).map_err(io)?;
        }
        let layer = store.commit_tree(dir)?;
        Ok(StepResult { status: Status::Succeeded, layer: Some(layer), log, duration: Duration::ZERO })
    }
}
