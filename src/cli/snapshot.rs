//! `bootstrap snapshot STAGE`: writes `snapshots/STAGE.kdl` from the step
//! receipts of the stage's last verification (format in
//! [`crate::sign::snapshot`]). Refused, exit 3, for a stage that is not
//! verified under its current definition.

use std::io::Write;

use super::{Context, write_json};
use super::Error;
use crate::session::StageRefused;
use crate::sign::snapshot::{self, Snapshot, SnapshotEntry, SnapshotStep};
use crate::store::LockMode;

/// Arguments of `snapshot`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The stage (verified by `bootstrap verify STAGE`).
    pub stage: String,
}

/// Runs `snapshot`.
pub fn run(cx: &Context, args: &Args, out: &mut dyn Write) -> Result<(), Error> {
    let chain = cx.load()?;
    let store = cx.open_store(LockMode::Exclusive)?;
    let verified = cx.session.verified_stage(&chain, &args.stage, &store)?;
    let mut steps: Vec<SnapshotStep> = verified
        .steps
        .iter()
        .filter_map(|r| r.output.map(|tree| SnapshotStep { name: r.step.clone(), tree, entries: SnapshotEntry::of(&r.files) }))
        .collect();
    steps.sort_by(|a, b| a.name.cmp(&b.name));
    let snap = Snapshot { stage: args.stage.clone(), chain: chain.decl.name.clone(), definition: verified.definition, steps };
    let path = snapshot::path(&chain.dir, &args.stage);
    let text = snap.render();
    let unchanged = std::fs::read(&path).is_ok_and(|old| old == text.as_bytes());
    if !unchanged {
        crate::atomic::write(&path, text.as_bytes(), crate::atomic::SHARED)
            .map_err(|e| StageRefused::Write { path: path.display().to_string(), message: e.to_string() })?;
    }
    let shown = format!("snapshots/{}.kdl", args.stage);
    if cx.json {
        write_json(out, &serde_json::json!({ "stage": args.stage, "path": shown, "changed": !unchanged, "steps": snap.steps.len() }))
    } else {
        let what = if unchanged { "unchanged" } else { "written" };
        writeln!(out, "{shown}: {what} ({} steps); sign it with `bootstrap sign {}`", snap.steps.len(), args.stage).map_err(Error::Output)
    }
}
