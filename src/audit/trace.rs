//! `trace`: which step made an output, and what that step consumed, down to
//! sources and the seed.
//!
//! A target is a path as it appears in the output layers (`out/bin/hello`,
//! `AMD64/bin/M2-Planet`), a layer's tree digest (`blake3:…`) or a file's
//! sha256 (`sha256:…`). Every step whose recorded output holds it is a
//! match; each becomes a tree of what it was made from, as the chosen
//! seed's lineage recorded it: the outputs of the steps it needed (each
//! again a tree), the sources it mounted, and its root. A step reached a
//! second time is not expanded again.

use std::collections::HashSet;

use miette::Diagnostic;
use serde::Serialize;
use thiserror::Error;

use super::History;
use crate::chain::Pin;
use crate::chain::model::Root;
use crate::hash::{Blake3, SeedId, Sha256};

/// What to trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A path inside the output layers, without a leading `/`.
    Path(String),
    /// A step's output tree digest.
    Layer(Blake3),
    /// A file's sha256.
    File(Sha256),
}

impl Target {
    /// `blake3:…` and `sha256:…` are digests; anything else is a path.
    pub fn parse(s: &str) -> Target {
        if let Ok(d) = s.parse::<Blake3>() {
            return Target::Layer(d);
        }
        if s.starts_with("sha256:")
            && let Ok(d) = s.parse::<Sha256>()
        {
            return Target::File(d);
        }
        Target::Path(s.trim_start_matches('/').trim_end_matches('/').to_string())
    }
}

/// Why nothing could be traced.
#[derive(Debug, Error, Diagnostic)]
pub enum TraceError {
    /// No recorded output holds the target.
    #[error("no verified step's output holds {target}")]
    #[diagnostic(
        code(bootstrap::trace::not_found),
        help("trace reads what `bootstrap verify` recorded: verify the stage that makes it first; paths are as in the layers, e.g. out/bin/hello (`bootstrap hash` or `bootstrap audit` show them)")
    )]
    NotFound {
        /// The target as given.
        target: String,
    },
    /// `--seed` names no seed any stage was verified on.
    #[error("no stage was verified on a seed called `{seed}`")]
    #[diagnostic(code(bootstrap::trace::seed), help("the seeds recorded are: {known}"))]
    UnknownSeed {
        /// The seed given.
        seed: String,
        /// The seeds recorded.
        known: String,
    },
}

/// A step's root, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RootNode {
    /// An empty root.
    Scratch,
    /// The seed's root filesystem.
    Seed {
        /// The seed.
        name: String,
        /// Its tree digest or image ID.
        digest: SeedId,
        /// Where it came from.
        origin: String,
    },
}

/// A source a step mounted, as its receipt recorded it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceNode {
    /// Its name.
    pub name: String,
    /// Which pin its content matched.
    pub pin: Pin,
    /// The sha256 of the file, or of the archive unpacked, when known.
    pub sha256: Option<Sha256>,
    /// The layer mounted, for a tree.
    pub layer: Option<Blake3>,
    /// Where its bytes came from.
    pub from: String,
    /// Where it is fetched from (the first URL, else the git repository),
    /// when the chain still names it.
    pub url: Option<String>,
}

/// A step's output and what it was made from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Node {
    /// The step.
    pub step: String,
    /// Its stage.
    pub stage: String,
    /// The lineage followed.
    pub seed: String,
    /// Its output tree digest.
    pub output: Option<Blake3>,
    /// Its verdict in the last verification.
    pub verdict: String,
    /// Whether that verification is of the stage as defined now.
    pub current: bool,
    /// Already shown above in this trace; not expanded again.
    pub repeated: bool,
    /// Its root.
    pub root: Option<RootNode>,
    /// The sources it mounted.
    pub sources: Vec<SourceNode>,
    /// The outputs of the steps it needed.
    pub needs: Vec<Node>,
}

/// One step whose output holds the target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Match {
    /// What matched: the path and what it is there (`file sha256:…`,
    /// `symlink → target`, `dir`), or the whole output.
    pub found: String,
    /// The step and its provenance.
    pub node: Node,
}

/// Every match for a target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Trace {
    /// The target as given.
    pub target: String,
    /// The matches, in execution order.
    pub matches: Vec<Match>,
}

/// Traces `target` through the recorded history, following `seed`'s
/// lineage (default: each stage's first seed).
pub fn trace(history: &History<'_>, given: &str, seed: Option<&str>) -> Result<Trace, TraceError> {
    if let Some(s) = seed {
        let known: Vec<String> = history.chain.stage_ids().flat_map(|i| history.seeds_of(i)).collect();
        if !known.iter().any(|k| k == s) {
            let mut known = known;
            known.sort();
            known.dedup();
            return Err(TraceError::UnknownSeed { seed: s.to_string(), known: known.join(", ") });
        }
    }
    let target = Target::parse(given);
    let chain = history.chain;
    let mut matches = Vec::new();
    let mut shown = HashSet::new();
    for &id in &history.plan.order {
        let step = chain.step(id);
        let Some((stage, _)) = history.entry(&step.name) else { continue };
        let Some(lineage) = seed.map(str::to_string).or_else(|| history.seeds_of(stage).into_iter().next()) else { continue };
        let Some(r) = history.receipt(&step.name, &lineage) else { continue };
        let found = match &target {
            Target::Layer(d) => (r.output == Some(*d)).then(|| format!("the whole output {d}")),
            Target::Path(p) => r.files.iter().find(|f| &f.path == p).map(|f| describe(&f.path, f)),
            Target::File(sha) => {
                let hits: Vec<String> = r.files.iter().filter(|f| f.sha256 == Some(*sha)).map(|f| describe(&f.path, f)).collect();
                (!hits.is_empty()).then(|| hits.join("; "))
            }
        };
        if let Some(found) = found {
            matches.push(Match { found, node: node(history, &step.name, &lineage, &mut shown) });
        }
    }
    if matches.is_empty() {
        return Err(TraceError::NotFound { target: given.to_string() });
    }
    Ok(Trace { target: given.to_string(), matches })
}

fn describe(path: &str, f: &crate::store::receipt::FileRecord) -> String {
    use crate::store::receipt::FileKind;
    match f.kind {
        FileKind::File => format!("{path}: file, sha256:{}", f.sha256.map(|s| s.hex()).unwrap_or_default()),
        FileKind::Symlink => format!("{path}: symlink to {}", f.target.as_deref().unwrap_or("?")),
        FileKind::Dir => format!("{path}: dir"),
    }
}

/// The provenance tree of `step`'s output on `seed`.
fn node(history: &History<'_>, step: &str, seed: &str, shown: &mut HashSet<String>) -> Node {
    let chain = history.chain;
    let (stage, entry) = match history.entry(step) {
        Some(e) => e,
        None => {
            return Node {
                step: step.to_string(),
                stage: String::new(),
                seed: seed.to_string(),
                output: None,
                verdict: "never verified".into(),
                current: false,
                repeated: false,
                root: None,
                sources: Vec::new(),
                needs: Vec::new(),
            };
        }
    };
    let receipt = history.receipt(step, seed);
    let mut n = Node {
        step: step.to_string(),
        stage: chain.stage(stage).name.clone(),
        seed: seed.to_string(),
        output: receipt.and_then(|r| r.output),
        verdict: entry.verdict.as_str().to_string(),
        current: history.current(stage),
        repeated: !shown.insert(step.to_string()),
        root: None,
        sources: Vec::new(),
        needs: Vec::new(),
    };
    let Some(r) = receipt else { return n };
    if n.repeated {
        return n;
    }
    let declared = chain.step_id(step).map(|i| chain.step(i));
    n.root = Some(match declared.map(|s| &s.root) {
        Some(Root::Scratch) => RootNode::Scratch,
        _ => RootNode::Seed { name: r.seed.name.clone(), digest: r.seed.digest, origin: r.seed.origin.clone() },
    });
    n.sources = r
        .sources
        .iter()
        .map(|s| SourceNode {
            name: s.name.clone(),
            pin: s.pin,
            sha256: s.sha256,
            layer: s.layer,
            from: s.from.clone(),
            url: chain.source(&s.name).and_then(|c| c.urls.first().cloned().or_else(|| c.git.as_ref().map(|g| g.describe()))),
        })
        .collect();
    n.needs = r.needs.iter().map(|need| node(history, &need.step, seed, shown)).collect();
    n
}
