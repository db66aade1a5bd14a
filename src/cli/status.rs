//! `bootstrap status`: per stage, what its last verification said and
//! whether that still holds: verified, stale (the definition changed
//! since), mismatch / unexpected / failed / blocked, never run, or locked
//! (verified, but behind an earlier stage that is not); when,
//! on which seeds, whether a snapshot exists and, when `chain/trust.kdl` has
//! rules, whether its signatures meet them (a stage that does not locks
//! the later ones, as in `verify`); then the remembered seed locations
//! and distfiles directories (`crate::chain::settings`).

use std::io::Write;

use serde::Serialize;

use super::{Context, write_json};
use super::Error;
use crate::plan::Plan;
use crate::time::utc;

/// Arguments of `status`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// One stage in the JSON document (docs/json.md).
#[derive(Serialize)]
struct Row {
    stage: String,
    state: String,
    verified_at: Option<u64>,
    seeds: Vec<String>,
    snapshot: bool,
    signature_files: usize,
    /// Whether the snapshot's signatures meet chain/trust.kdl's rules;
    /// `None` when there are no rules.
    signed: Option<bool>,
    /// What is missing when they do not.
    shortfall: Option<String>,
}

/// The remembered settings, when there are any: what later commands use
/// without being told.
fn write_settings(cx: &Context, out: &mut dyn Write) -> std::io::Result<()> {
    let s = &cx.settings;
    if s.seeds.is_empty() && s.distfiles.is_empty() {
        return Ok(());
    }
    writeln!(out, "remembered in {}:", crate::chain::settings::path(&cx.state).display())?;
    for seed in &s.seeds {
        let at: Vec<String> = seed.path.iter().map(|p| p.display().to_string()).chain(seed.image.iter().map(|i| format!("image {i}"))).collect();
        writeln!(out, "  seed {}  {}", seed.name, at.join("  "))?;
    }
    for d in &s.distfiles {
        writeln!(out, "  distfiles  {}", d.display())?;
    }
    Ok(())
}

/// Runs `status`.
pub fn run(cx: &Context, _args: &Args, out: &mut dyn Write) -> Result<(), Error> {
    let chain = cx.load()?;
    let plan = Plan::new(&chain);
    let trust = cx.session.rules()?;
    let rows: Vec<Row> = cx
        .session
        .stage_states(&chain, &plan, trust.as_ref())
        .into_iter()
        .map(|st| {
            // A stage verified on its own is still locked behind one that is
            // not, or whose snapshot is not signed as the rules require.
            let state = match &st.locked {
                Some(by) if st.verification.verified() => format!("locked ({by})"),
                _ => st.verification.describe(),
            };
            Row {
                signed: st.signed(),
                shortfall: st.signatures.as_ref().and_then(|c| c.shortfall()),
                stage: st.stage,
                state,
                verified_at: st.receipt.as_ref().map(|r| r.finished),
                seeds: st.receipt.map(|r| r.seeds.into_iter().map(|s| s.name).collect()).unwrap_or_default(),
                snapshot: st.snapshot,
                signature_files: st.signature_files,
            }
        })
        .collect();
    if cx.json {
        let settings = super::seed::JsonSettings::of(&cx.state, &cx.settings);
        return write_json(out, &serde_json::json!({ "chain": chain.decl.name, "stages": rows, "settings": settings }));
    }
    let w = rows.iter().map(|r| r.stage.len()).max().unwrap_or(5).max(5);
    let write = |out: &mut dyn Write| -> std::io::Result<()> {
        writeln!(out, "  {:<w$}  {:<36}  {:<20}  {:<16}  snapshot", "stage", "state", "when", "seeds")?;
        for r in &rows {
            let when = r.verified_at.map(utc).unwrap_or_else(|| "-".into());
            let seeds = if r.seeds.is_empty() { "-".to_string() } else { r.seeds.join(",") };
            let snap = match (r.snapshot, r.signature_files, r.signed) {
                (false, _, _) => "none".to_string(),
                (true, _, Some(true)) => "signed as chain/trust.kdl requires".to_string(),
                (true, _, Some(false)) => format!("not signed enough: {}", r.shortfall.as_deref().unwrap_or("")),
                (true, 0, None) => "unsigned".to_string(),
                (true, n, None) => format!("{n} signature file(s); no chain/trust.kdl rule to check them against"),
            };
            writeln!(out, "  {:<w$}  {:<36}  {:<20}  {:<16}  {snap}", r.stage, r.state, when, seeds)?;
        }
        write_settings(cx, out)
    };
    write(out).map_err(Error::Output)
}
