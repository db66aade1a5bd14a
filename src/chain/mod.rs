//! KDL → typed chain model.
//!
//! The loader reads `chain/chain.kdl`, the other `chain/*.kdl` files (but
//! `trust.kdl`), and every `*.kdl` file of each declared stage's directory,
//! all in byte order of their names. Each file is parsed on its own
//! (`parse`, in parallel, with a content-addressed `cache`), then the rules
//! that span files are checked (`validate`). Every problem in every file is
//! collected; the result is either a [`Chain`] whose invariants hold (see
//! `model`) or a [`ChainErrors`] listing them all.
//!
//! This module knows nothing of execution. The language is documented in
//! `docs/chain-language.md`.

pub mod cache;
pub mod cert;
pub mod diag;
pub mod edit;
pub mod fastkdl;
pub mod model;
pub mod parse;
pub mod read;
pub mod settings;
pub mod trust;
mod validate;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use miette::{Diagnostic, NamedSource};
use rayon::prelude::*;
use thiserror::Error;

pub use cache::ParseCache;
pub use diag::{ChainDiagnostic, Src};
pub use model::{Chain, ChainFile, Command, CommitId, GitLocation, Output, Pin, Placement, Root, Seed, Source, SourceId, Span, Stage, StageId, Step, StepId};
pub use parse::{FileItems, FileKind};

/// Every problem found while loading a chain. Never empty.
#[derive(Debug, Error)]
#[error("the chain has {} problem(s)", diagnostics.len())]
pub struct ChainErrors {
    /// The problems, in file order and, within a file, in the order found.
    pub diagnostics: Vec<ChainDiagnostic>,
}

impl Diagnostic for ChainErrors {
    fn code<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        Some(Box::new("bootstrap::chain::invalid"))
    }

    fn related<'a>(&'a self) -> Option<Box<dyn Iterator<Item = &'a dyn Diagnostic> + 'a>> {
        Some(Box::new(self.diagnostics.iter().map(|d| d as &dyn Diagnostic)))
    }
}

/// One file to load: its path relative to the chain directory and its bytes.
#[derive(Debug, Clone)]
pub struct Input {
    /// Path relative to the chain directory, `/`-separated.
    pub path: String,
    /// The file's bytes.
    pub bytes: Vec<u8>,
}

/// Where the loader gets its files from.
pub trait FileSet: Sync {
    /// `chain/*.kdl` (but `trust.kdl`), sorted by name.
    fn chain_files(&self) -> Result<Vec<Input>, Vec<ChainDiagnostic>>;
    /// `<stage>/*.kdl`, sorted by name; empty when the directory is absent.
    /// Every file that cannot be read is reported, not just the first.
    fn stage_files(&self, stage: &str) -> Result<Vec<Input>, Vec<ChainDiagnostic>>;
}

/// The files of a chain directory on disk.
#[derive(Debug, Clone)]
pub struct DirFiles {
    /// The chain directory.
    pub dir: PathBuf,
}

fn kdl_files_in(root: &Path, rel_dir: &str, skip: &[&str]) -> Result<Option<Vec<Input>>, Vec<ChainDiagnostic>> {
    let dir = root.join(rel_dir);
    let unreadable = |path: String, e: std::io::Error| vec![ChainDiagnostic::Unreadable { path, reason: e.to_string() }];
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(unreadable(format!("{rel_dir}/"), e)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| unreadable(format!("{rel_dir}/"), e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.ends_with(".kdl") && !name.starts_with('.') && !skip.contains(&name) {
            names.push(name.to_owned());
        }
    }
    names.sort();
    let read: Vec<Result<Input, ChainDiagnostic>> = names
        .into_par_iter()
        .map(|name| {
            let path = format!("{rel_dir}/{name}");
            read::read(root, &path).map(|bytes| Input { path: path.clone(), bytes }).map_err(|e| e.diagnostic(path))
        })
        .collect();
    let (inputs, refused): (Vec<_>, Vec<_>) = read.into_iter().partition(Result::is_ok);
    if refused.is_empty() {
        Ok(Some(inputs.into_iter().filter_map(Result::ok).collect()))
    } else {
        Err(refused.into_iter().filter_map(Result::err).collect())
    }
}

impl FileSet for DirFiles {
    fn chain_files(&self) -> Result<Vec<Input>, Vec<ChainDiagnostic>> {
        let files = kdl_files_in(&self.dir, "chain", &["trust.kdl"])?.unwrap_or_default();
        if !files.iter().any(|f| f.path == "chain/chain.kdl") {
            return Err(vec![ChainDiagnostic::NoChainFile { dir: self.dir.display().to_string() }]);
        }
        Ok(files)
    }

    fn stage_files(&self, stage: &str) -> Result<Vec<Input>, Vec<ChainDiagnostic>> {
        Ok(kdl_files_in(&self.dir, stage, &[])?.unwrap_or_default())
    }
}

/// Files held in memory, for tests and tools: paths like `chain/chain.kdl`
/// and `stage0/a.kdl`.
#[derive(Debug, Clone, Default)]
pub struct MemFiles {
    /// The files; order does not matter.
    pub files: Vec<Input>,
}

impl MemFiles {
    fn under(&self, dir: &str, skip: &[&str]) -> Vec<Input> {
        let mut out: Vec<Input> = self
            .files
            .iter()
            .filter(|f| {
                f.path
                    .strip_prefix(dir)
                    .and_then(|r| r.strip_prefix('/'))
                    .is_some_and(|name| name.ends_with(".kdl") && !name.contains('/') && !skip.contains(&name))
            })
            .cloned()
            .collect();
        out.sort_by(|a, b| a.path.cmp(&b.path));
        out
    }
}

impl FileSet for MemFiles {
    fn chain_files(&self) -> Result<Vec<Input>, Vec<ChainDiagnostic>> {
        let files = self.under("chain", &["trust.kdl"]);
        if !files.iter().any(|f| f.path == "chain/chain.kdl") {
            return Err(vec![ChainDiagnostic::NoChainFile { dir: "(memory)".to_owned() }]);
        }
        Ok(files)
    }

    fn stage_files(&self, stage: &str) -> Result<Vec<Input>, Vec<ChainDiagnostic>> {
        Ok(self.under(stage, &[]))
    }
}

/// How to load.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Parse cache to use, if any.
    pub cache: Option<ParseCache>,
}

/// A parsed file: its text, the items it declares, its problems.
struct Parsed {
    file: ChainFile,
    src: Src,
    items: FileItems,
    diags: Vec<ChainDiagnostic>,
}

fn parse_inputs(inputs: Vec<Input>, kind_of: impl Fn(&str) -> FileKind + Sync, opts: &LoadOptions) -> Vec<Parsed> {
    inputs
        .into_par_iter()
        .map(|input| {
            let text: Arc<str> = match String::from_utf8(input.bytes) {
                Ok(s) => s.into(),
                Err(e) => {
                    let offset = e.utf8_error().valid_up_to();
                    let diag = ChainDiagnostic::NotUtf8 { path: input.path.clone(), offset };
                    let text: Arc<str> = Arc::from("");
                    return Parsed {
                        src: NamedSource::new(&input.path, text.clone()),
                        file: ChainFile { path: input.path, text },
                        items: FileItems::default(),
                        diags: vec![diag],
                    };
                }
            };
            let src: Src = NamedSource::new(&input.path, text.clone());
            let kind = kind_of(&input.path);
            let key = opts.cache.as_ref().map(|_| ParseCache::key(kind, &text));
            let cached = opts.cache.as_ref().zip(key.as_ref()).and_then(|(c, k)| c.get(k));
            let (items, diags) = match cached {
                Some(items) => (items, Vec::new()),
                None => {
                    let (items, diags) = parse::parse_file(kind, &src);
                    if let (Some(cache), Some(key), true) = (&opts.cache, &key, diags.is_empty()) {
                        cache.put(key, &items);
                    }
                    (items, diags)
                }
            };
            Parsed { file: ChainFile { path: input.path, text }, src, items, diags }
        })
        .collect()
}

/// Loads the chain in directory `dir`.
pub fn load_dir(dir: &Path, opts: &LoadOptions) -> Result<Chain, ChainErrors> {
    let mut chain = load(&DirFiles { dir: dir.to_path_buf() }, opts)?;
    chain.dir = dir.to_path_buf();
    Ok(chain)
}

/// Loads a chain from any [`FileSet`].
pub fn load(files: &dyn FileSet, opts: &LoadOptions) -> Result<Chain, ChainErrors> {
    let chain_inputs = files.chain_files().map_err(|diagnostics| ChainErrors { diagnostics })?;
    let mut parsed = parse_inputs(
        chain_inputs,
        |p| if p == "chain/chain.kdl" { FileKind::Main } else { FileKind::Extra },
        opts,
    );
    // chain.kdl first: it declares the stages and is the main file.
    parsed.sort_by_key(|p| p.file.path != "chain/chain.kdl");
    let decl = parsed[0].items.chain.clone();
    let mut diagnostics: Vec<ChainDiagnostic> = Vec::new();

    let stages: Vec<String> = decl.as_ref().map(|d| d.stages.iter().map(|s| s.name.clone()).collect()).unwrap_or_default();
    // Only stage files declare steps; chain/ files have no stage.
    let mut stage_of_file: Vec<Option<model::StageId>> = vec![None; parsed.len()];
    let mut seen_stage = std::collections::HashSet::new();
    for (si, stage) in stages.iter().enumerate() {
        // A stage declared twice is reported by validation; load its files once.
        if !seen_stage.insert(stage.as_str()) || parse::check_name(stage).is_err() {
            continue;
        }
        match files.stage_files(stage) {
            Ok(inputs) => {
                let more = parse_inputs(inputs, |_| FileKind::Stage, opts);
                stage_of_file.extend(std::iter::repeat_n(Some(model::StageId(si)), more.len()));
                parsed.extend(more);
            }
            Err(d) => diagnostics.extend(d),
        }
    }

    let Some(decl) = decl else {
        // Without the chain node (chain.kdl did not parse) cross-file rules
        // would only report noise; show the files' own problems.
        let mut diagnostics: Vec<ChainDiagnostic> = parsed.into_iter().flat_map(|p| p.diags).collect();
        if diagnostics.is_empty() {
            diagnostics.push(ChainDiagnostic::Unreadable { path: "chain/chain.kdl".into(), reason: "no chain node".into() });
        }
        return Err(ChainErrors { diagnostics });
    };
    let mut g = validate::Gathered {
        files: Vec::with_capacity(parsed.len()),
        srcs: Vec::with_capacity(parsed.len()),
        main_file: 0,
        decl,
        seeds: Vec::new(),
        sources: Vec::new(),
        steps: Vec::new(),
    };
    let mut file_diags = Vec::new();
    for (fi, p) in parsed.into_iter().enumerate() {
        file_diags.extend(p.diags);
        for mut seed in p.items.seeds {
            seed.file = fi;
            g.seeds.push(seed);
        }
        for mut source in p.items.sources {
            source.file = fi;
            g.sources.push(source);
        }
        // The parser refuses a step outside a stage directory, so only
        // files with a stage have any.
        for mut step in p.items.steps {
            step.file = fi;
            step.stage = stage_of_file[fi].unwrap_or(step.stage);
            g.steps.push(step);
        }
        g.files.push(p.file);
        g.srcs.push(p.src);
    }
    file_diags.append(&mut diagnostics);
    let mut diagnostics = file_diags;
    // Cross-file rules are checked even when files had problems, so one run
    // shows everything; they only see what parsed.
    let chain = validate::validate(g, &mut diagnostics);
    match chain {
        Some(chain) if diagnostics.is_empty() => Ok(chain),
        _ => Err(ChainErrors { diagnostics }),
    }
}
