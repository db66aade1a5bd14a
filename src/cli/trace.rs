//! `bootstrap trace PATH|DIGEST [--seed NAME]`: which step made an output
//! and, recursively, what it consumed, down to sources and the seed
//! ([`crate::audit::trace`]); an indented tree, or `--json`.

use std::io::Write;

use super::{Context, write_json};
use super::Error;
use crate::audit::History;
use crate::audit::trace::{Node, RootNode, trace};
use crate::store::LockMode;

/// Arguments of `trace`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A path as in the output layers (e.g. out/bin/hello), a layer digest (blake3:…) or a file's sha256 (sha256:…).
    pub target: String,
    /// Follow this seed's lineage [default: the first seed each stage was verified on].
    #[arg(long = "seed", value_name = "NAME")]
    pub lineage: Option<String>,
}

/// Runs `trace`.
pub fn run(cx: &Context, args: &Args, out: &mut dyn Write) -> Result<(), Error> {
    let chain = cx.load()?;
    let store = cx.open_store(LockMode::Shared)?;
    let history = History::load(&chain, &store);
    let t = trace(&history, &args.target, args.lineage.as_deref()).map_err(Error::Trace)?;
    if cx.json {
        return write_json(out, &t);
    }
    let write = |out: &mut dyn Write| -> std::io::Result<()> {
        for (i, m) in t.matches.iter().enumerate() {
            if i > 0 {
                writeln!(out)?;
            }
            writeln!(out, "{}", m.found)?;
            writeln!(out, "made by {}", head(&m.node))?;
            tree(&m.node, "", out)?;
        }
        Ok(())
    };
    write(out).map_err(Error::Output)
}

/// `step (stage) on seed: blake3:… verified`.
fn head(n: &Node) -> String {
    let output = n.output.map_or_else(|| "no output".to_string(), |d| d.to_string());
    let stale = if n.current { "" } else { ", stale: the stage changed since" };
    let seen = if n.repeated { " (shown above)" } else { "" };
    let stage = if n.stage.is_empty() { String::new() } else { format!(" ({})", n.stage) };
    format!("{}{stage} on {}: {output} {}{stale}{seen}", n.step, n.seed, n.verdict)
}

/// The children of `n`, each line prefixed with `indent`.
fn tree(n: &Node, indent: &str, out: &mut dyn Write) -> std::io::Result<()> {
    let mut lines: Vec<(String, Option<&Node>)> = Vec::new();
    for need in &n.needs {
        lines.push((format!("needs {}", head(need)), Some(need)));
    }
    for s in &n.sources {
        // The bytes when known, and the tree mounted for a tree.
        let what = match (s.sha256, s.layer) {
            (Some(sha), Some(layer)) => format!("{sha} → {layer}"),
            (Some(sha), None) => sha.to_string(),
            (None, Some(layer)) => layer.to_string(),
            (None, None) => "(not recorded)".to_string(),
        };
        let url = s.url.as_deref().map(|u| format!(" {u}")).unwrap_or_default();
        lines.push((format!("source {} {what}{url} (matched its {} pin; from {})", s.name, s.pin.as_str(), s.from), None));
    }
    match &n.root {
        Some(RootNode::Scratch) => lines.push(("root: scratch (nothing from the seed)".to_string(), None)),
        Some(RootNode::Seed { name, digest, origin }) => lines.push((format!("root: seed {name} {digest} ({origin})"), None)),
        None => {}
    }
    let count = lines.len();
    for (i, (line, child)) in lines.into_iter().enumerate() {
        let last = i + 1 == count;
        writeln!(out, "{indent}{}{line}", if last { "└── " } else { "├── " })?;
        if let Some(c) = child {
            tree(c, &format!("{indent}{}", if last { "    " } else { "│   " }), out)?;
        }
    }
    Ok(())
}
