//! Remembered settings of one chain directory on one machine: where its
//! seeds are and which distfiles directories to look in, so that they are
//! said once (`bootstrap seed add`, `bootstrap distfiles add`) instead of on
//! every command line. The file is `settings.kdl` in the state directory
//! (`.bootstrap/` unless `--state` moves it), which is local by nature: it
//! names paths of this machine, and a `.gitignore` written beside it keeps
//! the whole state directory out of a repository.
//!
//! ```kdl
//! seed "busybox" path="/srv/seeds/busybox"
//! seed "alpine" image="bootstrap-seed/alpine@sha256:…"
//! distfiles "/srv/distfiles"
//! ```
//!
//! The command line wins: `--seed NAME=…` replaces what is remembered for
//! NAME, and `--distfiles` directories are looked in before remembered
//! ones. The file is read with the chain's diagnostics (every problem in
//! one run, with its span) and written whole, by temp file and rename.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use kdl::KdlNode;
use miette::{Diagnostic, NamedSource};
use thiserror::Error;

use super::ChainErrors;
use super::diag::{ChainDiagnostic as D, Src};
use super::edit::quote;
use super::parse::{Cx, Props, parse_document};

/// Changing the settings failed.
#[derive(Debug, Error, Diagnostic)]
pub enum SettingsError {
    /// The file could not be written.
    #[error("cannot write {}: {source}", path.display())]
    #[diagnostic(code(bootstrap::settings::write), help("check the state directory's permissions and free space (`--state` moves it)"))]
    Write {
        /// The settings file.
        path: PathBuf,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
    /// `remove` of something the file does not hold.
    #[error("{what} is not remembered in {}", path.display())]
    #[diagnostic(code(bootstrap::settings::not_remembered), help("{help}"))]
    NotRemembered {
        /// What was to be removed.
        what: String,
        /// The settings file.
        path: PathBuf,
        /// What it does hold.
        help: String,
    },
    /// A location that cannot be remembered.
    #[error("{what} {}: {reason}", path.display())]
    #[diagnostic(code(bootstrap::settings::location), help("{help}"))]
    Location {
        /// What it was to be.
        what: String,
        /// The location given.
        path: PathBuf,
        /// Why not.
        reason: String,
        /// What to give.
        help: String,
    },
}

/// The file's name in the state directory.
pub const SETTINGS_FILE: &str = "settings.kdl";

const SEED_USAGE: &str = "seed \"NAME\" path=\"/ABSOLUTE/PATH\" (or image=\"REFERENCE\")";
const DISTFILES_USAGE: &str = "distfiles \"/ABSOLUTE/DIR\"";

/// The settings. Invariants once loaded: seed names are unique, each seed
/// has a `path` or an `image` (or both), and every path is absolute;
/// distfiles directories are absolute and unique. Seed names are not
/// checked against the chain here (the chain may have changed since):
/// [`Settings::seed_args`]'s caller says which it does not declare.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settings {
    /// Remembered seed locations, in file order.
    pub seeds: Vec<SeedSetting>,
    /// Remembered distfiles directories, in the order they are looked in.
    pub distfiles: Vec<PathBuf>,
}

/// Where one seed is on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedSetting {
    /// The seed's name in the chain.
    pub name: String,
    /// Its root filesystem (a directory or a tarball) for the local backend.
    pub path: Option<PathBuf>,
    /// Its image reference for the OCI backend.
    pub image: Option<String>,
}

/// The settings file of the state directory `state`.
pub fn path(state: &Path) -> PathBuf {
    state.join(SETTINGS_FILE)
}

/// Reads the settings of the state directory `state`; none when it has no
/// settings file.
pub fn load(state: &Path) -> Result<Settings, ChainErrors> {
    let file = path(state);
    let name = file.display().to_string();
    let fail = |d: D| ChainErrors { diagnostics: vec![d] };
    let bytes = match std::fs::read(&file) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Settings::default()),
        Err(e) => return Err(fail(D::Unreadable { path: name, reason: e.to_string() })),
    };
    let text: Arc<str> = String::from_utf8(bytes).map_err(|e| fail(D::NotUtf8 { path: name.clone(), offset: e.utf8_error().valid_up_to() }))?.into();
    let src: Src = NamedSource::new(&name, text);
    let doc = parse_document(&src).map_err(|diagnostics| ChainErrors { diagnostics })?;
    let mut cx = Cx { src: &src, diags: Vec::new() };
    let mut settings = Settings::default();
    let mut seed_spans: Vec<(String, miette::SourceSpan)> = Vec::new();
    let mut dir_spans: Vec<(PathBuf, miette::SourceSpan)> = Vec::new();
    for node in doc.nodes() {
        match node.name().value() {
            "seed" => {
                let Some(seed) = seed(&mut cx, node) else { continue };
                if let Some((_, first)) = seed_spans.iter().find(|(n, _)| *n == seed.name) {
                    cx.diags.push(repeated(&cx, node, *first, &format!("seed \"{}\"", seed.name)));
                    continue;
                }
                seed_spans.push((seed.name.clone(), node.span()));
                settings.seeds.push(seed);
            }
            "distfiles" => {
                cx.no_children(node);
                let e = cx.entries(node, 1, Props::Only(&[]), DISTFILES_USAGE);
                let Some(entry) = e.args.first() else {
                    cx.missing_arg(node, "a directory", DISTFILES_USAGE);
                    continue;
                };
                let Some(dir) = absolute(&mut cx, entry, "distfiles", DISTFILES_USAGE) else { continue };
                if let Some((_, first)) = dir_spans.iter().find(|(d, _)| *d == dir) {
                    cx.diags.push(repeated(&cx, node, *first, &format!("distfiles {}", quote(&dir.to_string_lossy()))));
                    continue;
                }
                dir_spans.push((dir.clone(), node.span()));
                settings.distfiles.push(dir);
            }
            _ => cx.unknown_node(node, "a settings file", &["seed", "distfiles"]),
        }
    }
    if cx.diags.is_empty() {
        Ok(settings)
    } else {
        cx.diags.sort_by_key(|d| d.location().map_or(0, |(_, span)| span.offset()));
        Err(ChainErrors { diagnostics: cx.diags })
    }
}

fn repeated(cx: &Cx, node: &KdlNode, first: miette::SourceSpan, what: &str) -> D {
    D::RepeatedNode {
        src: cx.src(),
        span: node.span(),
        first,
        node: what.to_owned(),
        parent: "the settings file".to_owned(),
        help: "keep one of them (`bootstrap seed add` and `bootstrap distfiles add` rewrite the file without repeats)".to_owned(),
    }
}

fn seed(cx: &mut Cx, node: &KdlNode) -> Option<SeedSetting> {
    cx.no_children(node);
    let e = cx.entries(node, 1, Props::Only(&["path", "image"]), SEED_USAGE);
    let named = cx.name_of(node, "seed", SEED_USAGE);
    let path = e.prop("path").and_then(|entry| absolute(cx, entry, "path", SEED_USAGE));
    let image = e.prop("image").and_then(|entry| cx.nonempty_string(entry, "`image`", SEED_USAGE));
    if e.prop("path").is_none() && e.prop("image").is_none() {
        cx.diags.push(D::MissingProperty {
            src: cx.src(),
            span: node.span(),
            node: "seed".to_owned(),
            property: "path".to_owned(),
            help: format!("say where the seed is: {SEED_USAGE}; or remove the line (`bootstrap seed remove NAME`)"),
        });
    }
    let name = named?.name;
    (path.is_some() || image.is_some()).then_some(SeedSetting { name, path, image })
}

/// An absolute path value: relative ones would depend on where bootstrap
/// is run from.
fn absolute(cx: &mut Cx, entry: &kdl::KdlEntry, what: &str, usage: &str) -> Option<PathBuf> {
    let value = cx.nonempty_string(entry, &format!("`{what}`"), usage)?;
    if !value.starts_with('/') {
        cx.diags.push(D::RelativeSetting { src: cx.src(), span: entry.span(), value });
        return None;
    }
    Some(PathBuf::from(value))
}

impl Settings {
    /// The file's text: a header, then seeds and distfiles directories in
    /// their order.
    pub fn to_kdl(&self) -> String {
        let mut out = String::from(
            "// bootstrap's settings for this chain directory on this machine, written by\n\
             // `bootstrap seed add|remove` and `bootstrap distfiles add|remove`. Local:\n\
             // never commit it. The command line wins over what is here.\n",
        );
        for s in &self.seeds {
            out.push_str(&format!("seed {}", quote(&s.name)));
            if let Some(p) = &s.path {
                out.push_str(&format!(" path={}", quote(&p.to_string_lossy())));
            }
            if let Some(i) = &s.image {
                out.push_str(&format!(" image={}", quote(i)));
            }
            out.push('\n');
        }
        for d in &self.distfiles {
            out.push_str(&format!("distfiles {}\n", quote(&d.to_string_lossy())));
        }
        out
    }

    /// Writes the settings into the state directory `state` (created when
    /// missing) by temp file, fsync and rename, with a `.gitignore` that
    /// keeps the state directory out of any repository.
    pub fn save(&self, state: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(state)?;
        let ignore = state.join(".gitignore");
        if !ignore.exists() {
            crate::atomic::write(&ignore, b"# bootstrap's state directory: local to this machine.\n*\n", crate::atomic::PRIVATE)?;
        }
        crate::atomic::write(&path(state), self.to_kdl().as_bytes(), crate::atomic::PRIVATE)
    }

    /// The remembered seed called `name`.
    pub fn seed(&self, name: &str) -> Option<&SeedSetting> {
        self.seeds.iter().find(|s| s.name == name)
    }

    /// The remembered seed called `name`, added (empty) when missing.
    pub fn seed_mut(&mut self, name: &str) -> &mut SeedSetting {
        let at = match self.seeds.iter().position(|s| s.name == name) {
            Some(i) => i,
            None => {
                self.seeds.push(SeedSetting { name: name.to_owned(), path: None, image: None });
                self.seeds.len() - 1
            }
        };
        &mut self.seeds[at]
    }
}
