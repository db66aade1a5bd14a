//! `audit`: the chain in execution order, one step at a time, with what
//! went in (sources, needs, root, command, environment), what was declared
//! and pinned, what came out on each seed, the verdict, and who signed the
//! stage.
//!
//! [`audit`] builds the report as data; the command line renders it as
//! text, Markdown or JSON, or pages through it on a terminal.

use std::collections::BTreeMap;

use serde::Serialize;

use super::History;
use crate::chain::{Command, GitLocation, Pin, Source, StepId};
use crate::chain::trust::Trust;
use crate::hash::{Blake3, Sha256};
use crate::sign::StageSignatures;
use crate::store::Store;
use crate::verify::stage::SeedEntry;

/// A source as the auditor sees it: its pins and places as the chain
/// declares them, and what the last verification recorded of it.
#[derive(Debug, Clone, Serialize)]
pub struct SourceAudit {
    /// Its name (`/src/<name>`).
    pub name: String,
    /// Where it is fetched from, in order.
    pub urls: Vec<String>,
    /// Its git repository and commit (tried after the URLs).
    pub git: Option<GitLocation>,
    /// The file of the chain directory it is read from (`path`), if so.
    pub path: Option<String>,
    /// Its `sha256` pin (hex), if pinned so.
    pub sha256: Option<String>,
    /// Its `tree` pin, if pinned so.
    pub tree: Option<Blake3>,
    /// Whether the state directory holds it.
    pub in_store: bool,
    /// What the step's receipts recorded of it (the first seed's that has one).
    pub matched: Option<MatchedSource>,
}

/// A source as a run used it.
#[derive(Debug, Clone, Serialize)]
pub struct MatchedSource {
    /// Which pin its content matched.
    pub pin: Pin,
    /// Where its bytes came from.
    pub from: String,
    /// The sha256 of the file, or of the archive unpacked, when known.
    pub sha256: Option<Sha256>,
    /// The layer mounted, for a tree.
    pub layer: Option<Blake3>,
}

/// A needed step's output, per seed.
#[derive(Debug, Clone, Serialize)]
pub struct NeedAudit {
    /// The needed step.
    pub step: String,
    /// Its output tree digest on each seed, as this step's receipts recorded it.
    pub outputs: Vec<SeedDigest>,
}

/// A digest on one seed.
#[derive(Debug, Clone, Serialize)]
pub struct SeedDigest {
    /// The seed.
    pub seed: String,
    /// The digest, when recorded.
    pub digest: Option<Blake3>,
}

/// What ran a step on one seed, as its receipt recorded it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RanBy {
    /// The seed.
    pub seed: String,
    /// The backend (`local`, `oci`).
    pub backend: String,
    /// The container engine, as its API named itself (OCI backend).
    pub container_engine: Option<String>,
    /// `bootstrap <version>`.
    pub engine: String,
    /// The host kernel's release.
    pub kernel: String,
}

impl RanBy {
    /// `oci (Docker Engine - Community 28.2.2 (API 1.50)), bootstrap 0.1.0`:
    /// what ran it, without the host's kernel.
    pub fn describe(&self) -> String {
        let engine = self.container_engine.as_deref().map(|e| format!(" ({e})")).unwrap_or_default();
        format!("{}{engine}, {}", self.backend, self.engine)
    }
}

/// A declared output.
#[derive(Debug, Clone, Serialize)]
pub struct OutputAudit {
    /// The path as written.
    pub path: String,
    /// Its pinned sha256, if any.
    pub sha256: Option<String>,
}

/// One step.
#[derive(Debug, Clone, Serialize)]
pub struct StepAudit {
    /// The step.
    pub step: String,
    /// Its stage.
    pub stage: String,
    /// What it does.
    pub description: Option<String>,
    /// The file that declares it, relative to the chain directory.
    pub file: String,
    /// The line of its `step` node (1-based).
    pub line: usize,
    /// Its KDL source: first line and text.
    #[serde(skip)]
    pub source_text: (usize, String),
    /// `seed` or `scratch`.
    pub root: String,
    /// The sources it mounts.
    pub sources: Vec<SourceAudit>,
    /// The steps it needs, with their outputs.
    pub needs: Vec<NeedAudit>,
    /// `run` argvs, in order (empty for a script).
    pub run: Vec<Vec<String>>,
    /// The script and its shell, for a script step run by a shell.
    pub script: Option<(String, String)>,
    /// The interpreter and the script, for a script step run by an interpreter.
    pub interpreted: Option<InterpretedAudit>,
    /// Environment added to the sandbox's own.
    pub env: BTreeMap<String, String>,
    /// Its working directory, if set.
    pub workdir: Option<String>,
    /// Where its outputs are read from, if it installs into a destdir.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destdir: Option<String>,
    /// Its timeout in seconds, if set.
    pub timeout_secs: Option<u64>,
    /// Declared outputs with their pins.
    pub outputs: Vec<OutputAudit>,
    /// Its output on each seed in the last verification.
    pub observed: Vec<SeedDigest>,
    /// What ran it on each seed then (the receipts that verification read).
    pub ran_by: Vec<RanBy>,
    /// Its verdict then, or `never verified`.
    pub verdict: String,
    /// Why it is not verified.
    pub reasons: Vec<String>,
    /// Whether that verification is of the stage as defined now.
    pub current: bool,
    /// Commands not yet confirmed against upstream.
    pub unverified: bool,
}

/// A script run by an interpreter: the command is the interpreter's argv
/// followed by `file`, a file holding `script`.
#[derive(Debug, Clone, Serialize)]
pub struct InterpretedAudit {
    /// The interpreter's argv: its program (absolute) and fixed arguments.
    pub interpreter: Vec<String>,
    /// The script text, as written to `file`.
    pub script: String,
    /// Where the script's file is in the sandbox (`/src/.script`).
    pub file: String,
}

/// One stage and its steps.
#[derive(Debug, Clone, Serialize)]
pub struct StageAudit {
    /// The stage.
    pub stage: String,
    /// What it is.
    pub description: Option<String>,
    /// Its verdict in the last verification, or `never verified`.
    pub verdict: String,
    /// Whether that verification is of the stage as defined now.
    pub current: bool,
    /// The seeds it was compared on.
    pub seeds: Vec<SeedEntry>,
    /// Its signatures, checked against `chain/trust.kdl` (none without rules).
    pub signatures: Option<StageSignatures>,
    /// Its steps (those selected), in execution order.
    pub steps: Vec<StepAudit>,
}

/// The audit of a chain, a stage or a step.
#[derive(Debug, Clone, Serialize)]
pub struct Audit {
    /// The chain's name.
    pub chain: String,
    /// The stages with selected steps, in order.
    pub stages: Vec<StageAudit>,
}

impl Audit {
    /// Every step, in order, with its stage.
    pub fn steps(&self) -> Vec<(&StageAudit, &StepAudit)> {
        self.stages.iter().flat_map(|s| s.steps.iter().map(move |st| (s, st))).collect()
    }
}

/// Whether the store holds the source as its pins ask: its file, the
/// layer its pinned archive unpacked to, or the layer its tree pin names.
fn in_store(store: &Store, s: &Source) -> bool {
    let by_sha = s.sha256.is_some_and(|sha| match s.strip() {
        None => store.has_source(&sha),
        Some(strip) => store.unpacked(&sha, strip).is_some(),
    });
    let by_tree = s.is_tree() && s.tree.is_some_and(|t| store.layer_path(&t).is_dir());
    by_sha || by_tree
}

/// The 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].bytes().filter(|&b| b == b'\n').count() + 1
}

/// The text of the node at `node` (its span, as the loader recorded it):
/// from its first line to the line of its closing brace.
fn node_text(text: &str, node: crate::chain::model::Span) -> (usize, String) {
    let offset = node.offset.min(text.len());
    let start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let end = (node.offset + node.len).clamp(offset, text.len());
    let end = text[end..].find('\n').map_or(text.len(), |i| end + i);
    (line_of(text, start), text[start..end].trim_end().to_string())
}

/// The audit of the steps `selected` (any order), with the stage signatures
/// checked when `trust` has rules.
pub fn audit(history: &History<'_>, store: &Store, trust: Option<&Trust>, selected: &[StepId]) -> Audit {
    let chain = history.chain;
    let plan = &history.plan;
    let mut stages: Vec<StageAudit> = Vec::new();
    for &id in plan.order.iter().filter(|i| selected.contains(i)) {
        let step = chain.step(id);
        let stage_name = &chain.stage(step.stage).name;
        if stages.last().is_none_or(|s| &s.stage != stage_name) {
            let receipt = history.stage_receipt(step.stage);
            let signatures = trust.filter(|t| !t.rules.is_empty()).map(|t| {
                let definition = crate::verify::stage::stage_digest(chain, plan, step.stage);
                crate::sign::check_stage(t, &chain.dir, stage_name, &definition)
            });
            stages.push(StageAudit {
                stage: stage_name.clone(),
                description: chain.stage(step.stage).description.clone(),
                verdict: receipt.map_or_else(|| "never verified".to_string(), |r| r.verdict.as_str().to_string()),
                current: history.current(step.stage),
                seeds: receipt.map(|r| r.seeds.clone()).unwrap_or_default(),
                signatures,
                steps: Vec::new(),
            });
        }
        let seeds = history.seeds_of(step.stage);
        let entry = history.entry(&step.name).map(|(_, e)| e);
        let file = &chain.files[step.file];
        let (run, script, interpreted) = match &step.command {
            Command::Run(argvs) => (argvs.clone(), None, None),
            Command::Script { script, shell } => (Vec::new(), Some((shell.clone(), script.clone())), None),
            Command::Interpreted { script, interpreter } => (
                Vec::new(),
                None,
                Some(InterpretedAudit {
                    interpreter: interpreter.clone(),
                    script: script.clone(),
                    file: crate::build::request::SCRIPT_PATH.to_string(),
                }),
            ),
        };
        let needs = step
            .needs
            .iter()
            .map(|n| NeedAudit {
                step: n.name.clone(),
                outputs: seeds
                    .iter()
                    .map(|seed| SeedDigest {
                        seed: seed.clone(),
                        digest: history
                            .receipt(&step.name, seed)
                            .and_then(|r| r.needs.iter().find(|x| x.step == n.name).map(|x| x.output)),
                    })
                    .collect(),
            })
            .collect();
        let sources = chain
            .source_ids_of(id)
            .iter()
            .map(|&si| {
                let s = chain.source_by_id(si);
                let matched = seeds
                    .iter()
                    .filter_map(|seed| history.receipt(&step.name, seed))
                    .find_map(|r| r.sources.iter().find(|x| x.name == s.name))
                    .map(|x| MatchedSource { pin: x.pin, from: x.from.clone(), sha256: x.sha256, layer: x.layer });
                SourceAudit {
                    name: s.name.clone(),
                    urls: s.urls.clone(),
                    git: s.git.clone(),
                    path: s.path.clone(),
                    sha256: s.sha256.map(|sha| sha.hex()),
                    tree: s.tree,
                    in_store: in_store(store, s),
                    matched,
                }
            })
            .collect();
        let observed = seeds
            .iter()
            .map(|seed| SeedDigest {
                seed: seed.clone(),
                digest: entry.and_then(|e| e.runs.iter().find(|r| &r.seed == seed)).and_then(|r| r.output),
            })
            .collect();
        let ran_by = seeds
            .iter()
            .filter_map(|seed| history.receipt(&step.name, seed))
            .map(|r| RanBy {
                seed: r.seed.name.clone(),
                backend: r.backend.clone(),
                container_engine: r.container_engine.clone(),
                engine: r.engine.clone(),
                kernel: r.kernel.clone(),
            })
            .collect();
        let audit = StepAudit {
            step: step.name.clone(),
            stage: stage_name.clone(),
            description: step.description.clone(),
            file: file.path.clone(),
            line: line_of(&file.text, step.span.offset),
            source_text: node_text(&file.text, step.node),
            root: step.root.as_str().to_string(),
            sources,
            needs,
            run,
            script,
            interpreted,
            env: step.env.clone(),
            workdir: step.workdir.clone(),
            destdir: step.destdir.clone(),
            timeout_secs: step.timeout_secs,
            outputs: step.outputs.iter().map(|o| OutputAudit { path: o.path.clone(), sha256: o.sha256.map(|s| s.hex()) }).collect(),
            observed,
            ran_by,
            verdict: entry.map_or_else(|| "never verified".to_string(), |e| e.verdict.as_str().to_string()),
            reasons: entry.map(|e| e.reasons.clone()).unwrap_or_default(),
            current: history.current(step.stage),
            unverified: step.unverified,
        };
        if let Some(last) = stages.last_mut() {
            last.steps.push(audit);
        }
    }
    Audit { chain: chain.decl.name.clone(), stages }
}
