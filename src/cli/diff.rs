//! `bootstrap diff STEP`: where the seeds' outputs of a step differ, from
//! the receipts of its stage's last verification (for a step found
//! `nondeterministic` by `verify --rebuild`, where its run before and its
//! run again differ on one seed): files whose sha256
//! differ (with both sizes), entries on one side only, kinds or link
//! targets that differ. `--diffoscope` also runs diffoscope on each file
//! whose content differs, and on nothing else: the files bootstrap found
//! equal and the directories' metadata (mtimes) would only be noise. Its
//! report names the files `a/PATH` and `b/PATH`; with `--json` each report
//! is diffoscope's own JSON, a field of the one document.
//! Exit 0 when the outputs agree, 2 when they differ.

use std::collections::BTreeMap;
use std::io::Write;

use serde::Serialize;

use super::{Context, write_json};
use super::Error;
use super::refused::{DiffError};
use crate::store::receipt::FileRecord;
use crate::verify::stage;

/// Arguments of `diff`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The step.
    pub step: String,
    /// Also run diffoscope on each file whose content differs (its JSON goes into the document with --json).
    #[arg(long)]
    pub diffoscope: bool,
}

/// One difference.
#[derive(Serialize)]
struct Change {
    path: String,
    /// `content`, `only_in_a`, `only_in_b`, `kind`, `target`.
    what: &'static str,
    a: Option<Side>,
    b: Option<Side>,
}

#[derive(Serialize, Clone)]
struct Side {
    kind: crate::store::receipt::FileKind,
    sha256: Option<String>,
    size: Option<u64>,
    target: Option<String>,
}

fn side(f: &FileRecord) -> Side {
    Side { kind: f.kind, sha256: f.sha256.map(|s| s.hex()), size: f.size, target: f.target.clone() }
}

fn changes(a: &[FileRecord], b: &[FileRecord]) -> Vec<Change> {
    let am: BTreeMap<&str, &FileRecord> = a.iter().map(|f| (f.path.as_str(), f)).collect();
    let bm: BTreeMap<&str, &FileRecord> = b.iter().map(|f| (f.path.as_str(), f)).collect();
    let mut paths: Vec<&str> = am.keys().chain(bm.keys()).copied().collect();
    paths.sort_unstable();
    paths.dedup();
    paths
        .into_iter()
        .filter_map(|p| {
            let (x, y) = (am.get(p), bm.get(p));
            let what = match (x, y) {
                (Some(_), None) => "only_in_a",
                (None, Some(_)) => "only_in_b",
                (Some(x), Some(y)) if x.kind != y.kind => "kind",
                (Some(x), Some(y)) if x.sha256 != y.sha256 || x.mode != y.mode => "content",
                (Some(x), Some(y)) if x.target != y.target => "target",
                _ => return None,
            };
            Some(Change { path: p.to_string(), what, a: x.map(|f| side(f)), b: y.map(|f| side(f)) })
        })
        .collect()
}

/// Runs `diff`.
pub fn run(cx: &Context, args: &Args, out: &mut dyn Write) -> Result<(), Error> {
    let chain = cx.load()?;
    let id = chain.step_id(&args.step).ok_or_else(|| crate::plan::UnknownTarget {
        target: args.step.clone(),
        help: crate::chain::diag::did_you_mean(&args.step, chain.steps.iter().map(|s| s.name.as_str()))
            .unwrap_or_else(|| "`bootstrap plan` lists the steps".into()),
    })?;
    let stage = chain.stage(chain.step(id).stage).name.clone();
    let nothing = || DiffError::Nothing { step: args.step.clone(), stage: stage.clone() };
    let receipt = stage::read_receipt(&cx.state, &stage).ok_or_else(nothing)?;
    let entry = receipt.step(&args.step).ok_or_else(nothing)?;
    let store = cx.open_store(crate::store::LockMode::Exclusive)?;
    let read = |r: &stage::SeedRun| store.read_receipt(&args.step, &r.seed, &r.input);
    // A step that gave other bytes when run again: its two runs on the
    // first seed where they differ, the earlier one read from its layer.
    let rerun = entry.runs.iter().find(|r| r.earlier_output.is_some_and(|e| Some(e) != r.output));
    let (ra, rb, list) = if let Some(r) = rerun.filter(|_| entry.verdict == stage::Verdict::Nondeterministic) {
        let (Some(now), Some(before)) = (read(r), r.earlier_output) else { return Err(nothing().into()) };
        let tree = crate::hash::hash_tree(&store.layer_path(&before)).map_err(Error::from)?;
        let a = stage::SeedRun { seed: format!("{} (before)", r.seed), output: Some(before), ..r.clone() };
        let b = stage::SeedRun { seed: format!("{} (again)", r.seed), ..r.clone() };
        let list = changes(&FileRecord::of(&tree), &now.files);
        (a, b, list)
    } else {
        let mut runs = entry.runs.iter().filter(|r| r.output.is_some());
        let (Some(ra), Some(rb)) = (runs.next(), runs.next()) else { return Err(nothing().into()) };
        let (Some(a), Some(b)) = (read(ra), read(rb)) else {
            // The stage receipt names something gone: it no longer holds.
            stage::forget(&store, &stage)?;
            return Err(nothing().into());
        };
        let list = changes(&a.files, &b.files);
        (ra.clone(), rb.clone(), list)
    };
    let (ra, rb) = (&ra, &rb);
    let reports = if args.diffoscope && !list.is_empty() {
        let (Some(la), Some(lb)) = (ra.output.map(|d| store.layer_path(&d)), rb.output.map(|d| store.layer_path(&d))) else {
            return Err(nothing().into());
        };
        diffoscope(&la, &lb, &list, cx.json)?
    } else {
        Vec::new()
    };
    if cx.json {
        let mut doc = serde_json::json!({ "step": args.step, "a": {"seed": ra.seed, "output": ra.output}, "b": {"seed": rb.seed, "output": rb.output}, "differences": list });
        if args.diffoscope {
            let parsed: Vec<serde_json::Value> = reports
                .iter()
                .map(|(path, text)| serde_json::json!({ "path": path, "report": serde_json::from_str::<serde_json::Value>(text).ok() }))
                .collect();
            doc["diffoscope"] = serde_json::Value::Array(parsed);
        }
        write_json(out, &doc)?;
    } else {
        let w = |out: &mut dyn Write| -> std::io::Result<()> {
            writeln!(out, "{}: a = {} ({}), b = {} ({})", args.step, ra.seed, short(ra.output), rb.seed, short(rb.output))?;
            for c in &list {
                let show = |s: &Option<Side>| match s {
                    None => "absent".to_string(),
                    Some(s) => match (&s.sha256, s.size, &s.target) {
                        (Some(h), Some(n), _) => format!("sha256:{h} {n} bytes"),
                        (_, _, Some(t)) => format!("symlink to {t}"),
                        _ => s.kind.as_str().to_string(),
                    },
                };
                writeln!(out, "  {:<9} {}\n      a: {}\n      b: {}", c.what, c.path, show(&c.a), show(&c.b))?;
            }
            if list.is_empty() {
                writeln!(out, "  no differences")?;
            }
            for (path, text) in &reports {
                writeln!(out, "\ndiffoscope a/{path} b/{path}:")?;
                out.write_all(text.as_bytes())?;
            }
            Ok(())
        };
        w(out).map_err(Error::Output)?;
    }
    if list.is_empty() { Ok(()) } else { Err(DiffError::Differ { step: args.step.clone(), count: list.len() }.into()) }
}

/// diffoscope on each file whose content differs, in a directory where
/// `a` and `b` link to the two layers (so its report names `a/PATH` and
/// `b/PATH`, not store paths), without directory metadata: (path, report)
/// for each, the report in text or diffoscope's JSON. Files that differ
/// only in mode give an empty report.
fn diffoscope(la: &std::path::Path, lb: &std::path::Path, list: &[Change], json: bool) -> Result<Vec<(String, String)>, Error> {
    let here = tempfile::tempdir().map_err(Error::Output)?;
    std::os::unix::fs::symlink(la, here.path().join("a")).map_err(Error::Output)?;
    std::os::unix::fs::symlink(lb, here.path().join("b")).map_err(Error::Output)?;
    let mut reports = Vec::new();
    for c in list.iter().filter(|c| c.what == "content" && c.a.as_ref().is_some_and(|s| s.kind == crate::store::receipt::FileKind::File)) {
        let (a, b) = (format!("a/{}", c.path), format!("b/{}", c.path));
        let mut cmd = std::process::Command::new("diffoscope");
        cmd.current_dir(here.path()).arg("--exclude-directory-metadata=yes");
        if json {
            cmd.args(["--json", "-"]);
        } else {
            cmd.args(["--text", "-"]);
        }
        let done = match cmd.arg(&a).arg(&b).stdin(std::process::Stdio::null()).output() {
            Ok(done) => done,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(DiffError::NoDiffoscope.into()),
            Err(e) => return Err(Error::Output(e)),
        };
        // 0: no differences, 1: differences; anything else is a failure.
        if !matches!(done.status.code(), Some(0 | 1)) {
            let said = String::from_utf8_lossy(&done.stderr);
            let message = said.lines().rev().find(|l| !l.trim().is_empty()).map_or_else(|| done.status.to_string(), str::to_string);
            return Err(DiffError::DiffoscopeFailed { path: c.path.clone(), message, a: la.join(&c.path).display().to_string(), b: lb.join(&c.path).display().to_string() }.into());
        }
        reports.push((c.path.clone(), String::from_utf8_lossy(&done.stdout).into_owned()));
    }
    Ok(reports)
}

fn short(d: Option<crate::hash::Blake3>) -> String {
    d.map_or_else(|| "-".into(), |d| format!("blake3:{}…", d.short()))
}
