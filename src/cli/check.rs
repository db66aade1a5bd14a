//! `bootstrap check`: load and validate the chain and its `chain/trust.kdl`;
//! a summary of what they hold.

use std::io::Write;

use serde::Serialize;

use super::{Context, write_json};
use super::Error;
use crate::chain::trust::{self, Trust};
use crate::chain::{Chain, Placement};

/// Arguments of `check` (none beyond the global ones).
#[derive(Debug, clap::Args)]
pub struct Args {}

#[derive(Serialize)]
struct StageSummary<'a> {
    name: &'a str,
    description: Option<&'a str>,
    steps: usize,
    unverified: usize,
}

#[derive(Serialize)]
struct SeedSummary<'a> {
    name: &'a str,
    description: Option<&'a str>,
    image: Option<&'a str>,
    rootfs: Option<RootfsSummary<'a>>,
}

/// A seed's rootfs, its sha256 in hex as written in the chain.
#[derive(Serialize)]
struct RootfsSummary<'a> {
    url: &'a str,
    sha256: String,
}

/// A source: its pins as written in the chain (`sha256` in hex, `tree`
/// as `blake3:<hex>`), where it comes from, how it is placed.
#[derive(Serialize)]
struct SourceSummary<'a> {
    name: &'a str,
    version: Option<&'a str>,
    urls: &'a [String],
    git: Option<&'a crate::chain::GitLocation>,
    path: Option<&'a str>,
    sha256: Option<String>,
    tree: Option<String>,
    unpack: Option<u32>,
}

/// The JSON document of `check` (docs/json.md).
#[derive(Serialize)]
struct Report<'a> {
    ok: bool,
    chain: &'a str,
    arch: &'a str,
    source_date_epoch: u64,
    files: usize,
    steps: usize,
    unverified: usize,
    stages: Vec<StageSummary<'a>>,
    seeds: Vec<SeedSummary<'a>>,
    sources: Vec<SourceSummary<'a>>,
    trust: Option<TrustSummary>,
}

/// `chain/trust.kdl`, when there is one.
#[derive(Serialize)]
struct TrustSummary {
    signers: Vec<SignerSummary>,
    rules: Vec<RuleSummary>,
}

#[derive(Serialize)]
struct SignerSummary {
    name: String,
    role: String,
    fingerprint: String,
    cert: String,
}

#[derive(Serialize)]
struct RuleSummary {
    role: String,
    count: u32,
}

fn trust_summary(t: &Trust) -> TrustSummary {
    TrustSummary {
        signers: t
            .signers
            .iter()
            .map(|s| SignerSummary {
                name: s.name.clone(),
                role: s.role.clone(),
                fingerprint: s.fingerprint.clone(),
                cert: format!("chain/{}", s.cert_path),
            })
            .collect(),
        rules: t.rules.iter().map(|r| RuleSummary { role: r.role.clone(), count: r.count }).collect(),
    }
}

fn report<'a>(chain: &'a Chain, trust: Option<&Trust>) -> Report<'a> {
    let stages = chain
        .stage_ids()
        .zip(chain.stages())
        .map(|(i, s)| {
            let steps = chain.steps_in(i).map(|id| chain.step(id));
            StageSummary {
                name: &s.name,
                description: s.description.as_deref(),
                steps: steps.clone().count(),
                unverified: steps.filter(|st| st.unverified).count(),
            }
        })
        .collect();
    Report {
        ok: true,
        chain: &chain.decl.name,
        arch: &chain.decl.arch,
        source_date_epoch: chain.decl.source_date_epoch,
        files: chain.files.len(),
        steps: chain.steps.len(),
        unverified: chain.steps.iter().filter(|s| s.unverified).count(),
        stages,
        seeds: chain
            .seeds
            .iter()
            .map(|s| SeedSummary {
                name: &s.name,
                description: s.description.as_deref(),
                image: s.image.as_deref(),
                rootfs: s.rootfs.as_ref().map(|r| RootfsSummary { url: &r.url, sha256: r.sha256.hex() }),
            })
            .collect(),
        sources: chain
            .sources
            .iter()
            .map(|s| SourceSummary {
                name: &s.name,
                version: s.version.as_deref(),
                urls: &s.urls,
                git: s.git.as_ref(),
                path: s.path.as_deref(),
                sha256: s.sha256.map(|sha| sha.hex()),
                tree: s.tree.map(|t| t.to_string()),
                unpack: match s.placement {
                    Placement::File => None,
                    Placement::Unpack { strip_components } => Some(strip_components),
                },
            })
            .collect(),
        trust: trust.map(trust_summary),
    }
}

/// Runs `check`.
pub fn run(cx: &Context, _args: &Args, out: &mut dyn Write) -> Result<(), Error> {
    // Both files are checked, and all their problems reported together.
    let (chain, trust) = match (cx.load(), trust::load(&cx.dir)) {
        (Ok(c), Ok(t)) => (c, t),
        (Err(Error::Chain(mut a)), Err(b)) => {
            a.diagnostics.extend(b.diagnostics);
            return Err(Error::Chain(a));
        }
        (Err(e), _) => return Err(e),
        (Ok(_), Err(b)) => return Err(Error::Chain(b)),
    };
    let r = report(&chain, trust.as_ref());
    if cx.json {
        return write_json(out, &r);
    }
    if cx.verbosity < 0 {
        return Ok(());
    }
    write_human(&r, out).map_err(Error::Output)
}

fn write_human(r: &Report<'_>, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(out, "chain {} ({}, SOURCE_DATE_EPOCH={})", r.chain, r.arch, r.source_date_epoch)?;
    writeln!(
        out,
        "  {} stages, {} steps ({} unverified), {} sources, {} seeds, {} files",
        r.stages.len(),
        r.steps,
        r.unverified,
        r.sources.len(),
        r.seeds.len(),
        r.files
    )?;
    writeln!(out)?;
    let width = r.stages.iter().map(|s| s.name.len()).max().unwrap_or(5).max(5);
    writeln!(out, "  {:<width$}  {:>5}  {:>10}  description", "stage", "steps", "unverified")?;
    for s in &r.stages {
        writeln!(out, "  {:<width$}  {:>5}  {:>10}  {}", s.name, s.steps, s.unverified, s.description.unwrap_or("-"))?;
    }
    writeln!(out)?;
    let width = r.seeds.iter().map(|s| s.name.len()).max().unwrap_or(4).max(4);
    writeln!(out, "  {:<width$}  artefact", "seed")?;
    for s in &r.seeds {
        let mut what = Vec::new();
        if let Some(rootfs) = &s.rootfs {
            what.push(format!("rootfs {} (sha256 {}…)", rootfs.url, &rootfs.sha256[..12]));
        }
        if let Some(image) = s.image {
            what.push(format!("image {image}"));
        }
        if what.is_empty() {
            what.push(format!("none pinned: supply it with --seed {}=…", s.name));
        }
        writeln!(out, "  {:<width$}  {}", s.name, what.join("; "))?;
    }
    writeln!(out)?;
    let count = |f: fn(&SourceSummary<'_>) -> bool| r.sources.iter().filter(|s| f(s)).count();
    writeln!(
        out,
        "  sources pinned by sha256 only: {}, by tree only: {}, by both: {}; fetched with git: {}",
        count(|s| s.sha256.is_some() && s.tree.is_none()),
        count(|s| s.sha256.is_none() && s.tree.is_some()),
        count(|s| s.sha256.is_some() && s.tree.is_some()),
        count(|s| s.git.is_some()),
    )?;
    writeln!(out)?;
    if let Some(t) = &r.trust {
        let rules: Vec<String> = t.rules.iter().map(|r| format!("{} {}", r.count, r.role)).collect();
        let rules = if rules.is_empty() { "no rule".to_string() } else { format!("requires {}", rules.join(" and ")) };
        writeln!(out, "  trust: {} signer(s), {rules}", t.signers.len())?;
        let width = t.signers.iter().map(|s| s.name.len()).max().unwrap_or(6).max(6);
        for s in &t.signers {
            writeln!(out, "  {:<width$}  {:<10}  {}  {}", s.name, s.role, s.fingerprint, s.cert)?;
        }
        writeln!(out)?;
    }
    writeln!(out, "ok: no problems")
}
