//! Turning a chain step into the one normalized [`StepRequest`] a backend
//! receives, and its *input digest* (ARCHITECTURE.md §4), the cache key.
//!
//! # The environment
//!
//! `PATH=/usr/bin:/bin:/usr/sbin:/sbin`, `HOME=/homeless`, `TZ=UTC`,
//! `LC_ALL=C`, `SOURCE_DATE_EPOCH` from the chain, then the step's `env`
//! (which may replace any of them, `PATH` included). Nothing from the host.
//! The working directory is the step's `workdir`, else `/`; outputs are
//! resolved against it. A step without `timeout` gets [`DEFAULT_TIMEOUT`].
//!
//! # The commands
//!
//! `run` lines are the argvs as written; a `script` is
//! `[shell, "-e", "-c", script]`; a script with an `interpreter` is the
//! interpreter's argv followed by [`SCRIPT_PATH`], with the script's text
//! stored as a content-addressed file (as a file source is) and given to
//! the backend as one more source, named [`SCRIPT_SOURCE`]. Declared
//! source names never start with `.`, so it cannot collide with one; every
//! backend mounts it like any file source, read-only where it can.
//!
//! # Input digest encoding
//!
//! `blake3:` and the BLAKE3 of fields encoded as for the definition digest
//! (see [`crate::plan::digest`]: tag, NUL, u64 LE length, value), in order:
//!
//! | tag | value |
//! |---|---|
//! | `format` | `bootstrap-input-v2` |
//! | `contract` | the sandbox contract version, decimal |
//! | `arch` | the chain's arch |
//! | `name` | the step's name |
//! | `root` | `scratch` or `seed` |
//! | `seed` | the seed's tree digest string |
//! | `source-count`, then per source `source-name`, `source-content`, `source-placement` | sorted by name; see below |
//! | `env-count`, then `env-key` and `env-value` per variable | the whole environment, sorted |
//! | `command-count`, then per command `arg-count` and one `arg` per argument | the argvs run |
//! | `workdir` | the resolved working directory |
//! | `hostname` | the hostname inside |
//! | `source-dir` | where sources are mounted (`/src` unless the build path is varied) |
//! | `output-count`, then one `output` per path | resolved absolute outputs, sorted |
//! | `destdir` (only when the step has one) | where its outputs are read from |
//! | `needs-count`, then per need `needs-step` and `needs-output` | the needs' names and output tree digests on this seed, in the order written |
//!
//! A source enters by the identity of the content mounted, whatever pin it
//! matched and wherever it came from: for a source placed as a tree (an
//! unpacked archive or a git checkout) `source-content` is the layer's tree
//! digest (`blake3:<hex>`) and `source-placement` is `tree`; for a file it
//! is the file's `sha256:<hex>` and `file`. So the same files from another
//! archive, compressed otherwise or checked out from git, are the same
//! input and hit the same cache entry. The script file of an interpreted
//! script enters the same way, as source [`SCRIPT_SOURCE`] with the sha256
//! of its text and placement `file` (its argv holds only its path).
//!
//! The needs enter by their output tree digests only, not by their
//! definitions: a need that changed but gave the same bytes does not make
//! this step run again. The seed's *name* is not in it (the same root under
//! two names is the same input); the timeout is not either (it does not
//! change the bytes).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::chain::{Chain, Command, StepId};
use crate::exec::{SourceInput, StepRequest};
use crate::hash::{Blake3, SeedId};
use crate::plan::SANDBOX_CONTRACT_VERSION;
use crate::plan::digest::Canon;

/// The timeout of a step that does not give one.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(6 * 3600);

/// The PATH of a step that does not set one.
pub const DEFAULT_PATH: &str = "/usr/bin:/bin:/usr/sbin:/sbin";

pub use crate::exec::normalize;

/// Where a declared output of `step` is inside the sandbox: its path
/// resolved against the step's workdir (default `/`), normalised.
pub fn output_path(step: &crate::chain::model::Step, path: &str) -> String {
    if path.starts_with('/') {
        normalize(path)
    } else {
        normalize(&format!("{}/{path}", step.workdir.as_deref().unwrap_or("/")))
    }
}

/// The sandbox environment of step `id` (see the module doc).
pub fn environment(chain: &Chain, id: StepId) -> BTreeMap<String, String> {
    let mut env: BTreeMap<String, String> = [
        ("PATH", DEFAULT_PATH.to_string()),
        ("HOME", "/homeless".to_string()),
        ("TZ", "UTC".to_string()),
        ("LC_ALL", "C".to_string()),
        ("SOURCE_DATE_EPOCH", chain.decl.source_date_epoch.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    env.extend(chain.step(id).env.iter().map(|(k, v)| (k.clone(), v.clone())));
    env
}

/// The hostname of every sandbox, and of a lineage varying it.
pub const HOSTNAME: &str = "bootstrap";
/// The hostname of a lineage varying it.
pub const VARIED_HOSTNAME: &str = "bootstrap-vary";
/// Where sources are mounted on a lineage varying the build path.
pub const VARIED_SOURCE_DIR: &str = "/src-vary";

/// The source name an interpreted script's file is given to the backend
/// under: it starts with `.`, which no declared source name may.
pub const SCRIPT_SOURCE: &str = ".script";

/// Where an interpreted script's file is in the sandbox, the last argument
/// of its command (a symlink to the varied place on a lineage varying the
/// build path, like every `/src/<name>`).
pub const SCRIPT_PATH: &str = "/src/.script";

/// The text of step `id`'s script file, when its script has an interpreter.
pub fn script_file(chain: &Chain, id: StepId) -> Option<&str> {
    match &chain.step(id).command {
        Command::Interpreted { script, .. } => Some(script),
        _ => None,
    }
}

/// Builds the request for step `id` of `chain`. `seed_root` is the seed's
/// root (used only for `root "seed"`; a directory or an image), `sources` the step's sources in the
/// order written (and, for a script with an interpreter, its file as
/// [`SCRIPT_SOURCE`]), `needs` the layer directories of its needs in the order
/// written, `vary` the variations of this lineage (none outside `verify`).
pub fn request(
    chain: &Chain,
    id: StepId,
    seed_root: &crate::exec::Root,
    mut sources: Vec<(String, SourceInput)>,
    needs: Vec<PathBuf>,
    vary: &[crate::chain::model::Variation],
) -> StepRequest {
    use crate::chain::model::Variation;
    let step = chain.step(id);
    let workdir = normalize(step.workdir.as_deref().unwrap_or("/"));
    let mut outputs: Vec<String> = step.outputs.iter().map(|o| output_path(step, &o.path)).collect();
    outputs.sort();
    outputs.dedup();
    sources.sort_by(|a, b| a.0.cmp(&b.0));
    let commands = match &step.command {
        Command::Run(argvs) => argvs.clone(),
        Command::Script { script, shell } => vec![vec![shell.clone(), "-e".into(), "-c".into(), script.clone()]],
        Command::Interpreted { interpreter, .. } => {
            debug_assert!(sources.iter().any(|(n, _)| n == SCRIPT_SOURCE), "the script file is not among the sources");
            vec![interpreter.iter().cloned().chain([SCRIPT_PATH.to_string()]).collect()]
        }
    };
    StepRequest {
        root: if step.root == crate::chain::Root::Seed { seed_root.clone() } else { crate::exec::Root::Scratch },
        sources,
        layers: needs,
        commands,
        env: environment(chain, id),
        workdir,
        outputs,
        destdir: step.destdir.as_deref().map(normalize),
        lineage: String::new(),
        fresh: false,
        timeout: step.timeout_secs.map_or(DEFAULT_TIMEOUT, Duration::from_secs),
        hostname: if vary.contains(&Variation::Hostname) { VARIED_HOSTNAME } else { HOSTNAME }.to_string(),
        source_dir: if vary.contains(&Variation::BuildPath) { VARIED_SOURCE_DIR } else { "/src" }.to_string(),
    }
}

/// What identifies a step's inputs besides its request: see the module doc.
#[derive(Debug, Clone, Copy)]
pub struct InputKey<'a> {
    /// The chain's arch.
    pub arch: &'a str,
    /// The step's name.
    pub name: &'a str,
    /// `scratch` or `seed`.
    pub root: &'a str,
    /// The seed's identity (tree digest, or image ID).
    pub seed: &'a SeedId,
    /// Per source, sorted by name: name, content identity (`blake3:…` of a
    /// tree, `sha256:…` of a file), placement (`tree` or `file`).
    pub sources: &'a [(&'a str, String, &'a str)],
    /// The needs' names and output tree digests, in the order written.
    pub needs: &'a [(&'a str, Blake3)],
}

/// The input digest of a request (see the module doc).
pub fn input_digest(key: &InputKey<'_>, req: &StepRequest) -> Blake3 {
    let mut buf = Vec::with_capacity(1024);
    let mut c = Canon(&mut buf);
    c.field("format", b"bootstrap-input-v2");
    c.number("contract", u64::from(SANDBOX_CONTRACT_VERSION));
    c.field("arch", key.arch.as_bytes());
    c.field("name", key.name.as_bytes());
    c.field("root", key.root.as_bytes());
    c.field("seed", key.seed.to_string().as_bytes());
    c.number("source-count", key.sources.len() as u64);
    for (name, content, placement) in key.sources {
        c.field("source-name", name.as_bytes());
        c.field("source-content", content.as_bytes());
        c.field("source-placement", placement.as_bytes());
    }
    c.number("env-count", req.env.len() as u64);
    for (k, v) in &req.env {
        c.field("env-key", k.as_bytes());
        c.field("env-value", v.as_bytes());
    }
    c.number("command-count", req.commands.len() as u64);
    for argv in &req.commands {
        c.number("arg-count", argv.len() as u64);
        for arg in argv {
            c.field("arg", arg.as_bytes());
        }
    }
    c.field("workdir", req.workdir.as_bytes());
    c.field("hostname", req.hostname.as_bytes());
    c.field("source-dir", req.source_dir.as_bytes());
    c.number("output-count", req.outputs.len() as u64);
    for o in &req.outputs {
        c.field("output", o.as_bytes());
    }
    // Only present when set, so steps without one keep their digests.
    if let Some(d) = &req.destdir {
        c.field("destdir", d.as_bytes());
    }
    c.number("needs-count", key.needs.len() as u64);
    for (name, digest) in key.needs {
        c.field("needs-step", name.as_bytes());
        c.field("needs-output", digest.to_string().as_bytes());
    }
    Blake3(*blake3::hash(&buf).as_bytes())
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn normalize_paths() {
        assert_eq!(normalize("/"), "/");
        assert_eq!(normalize("/a//b/./c/"), "/a/b/c");
        assert_eq!(normalize("/a/../../b"), "/b");
    }
}
