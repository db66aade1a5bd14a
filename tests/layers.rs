//! The module graph ARCHITECTURE.md §1 draws, checked on the source: each
//! top-level module uses only modules of lower layers, and no file's
//! imports lead back to itself (`use`, paths through `crate::`, `super::`,
//! `self::` and a module's own children). A new import that breaks either
//! fails here, naming the files.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// The layers, lowest first; a module may use only modules of lower ones.
const LAYERS: &[&[&str]] = &[
    &["exit", "hash", "time", "atomic", "unpack"],
    &["machine", "chain"],
    &["store", "plan"],
    &["fetch", "exec", "sign"],
    &["build"],
    &["verify"],
    &["session"],
    &["audit", "export"],
    &["cli"],
];

/// A module path: `["exec", "oci"]` for src/exec/oci/mod.rs or src/exec/oci.rs.
type Module = Vec<String>;

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

fn module_of(rel: &Path) -> Module {
    let mut parts: Vec<String> = rel.with_extension("").iter().map(|c| c.to_string_lossy().into_owned()).collect();
    if parts.last().is_some_and(|l| l == "mod" || l == "lib") {
        parts.pop();
    }
    parts
}

/// The text without comments and without a trailing `#[cfg(test)] mod tests`.
fn code(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => &text[..i],
        None => text,
    };
    text.lines().map(|l| match l.find("//") {
        Some(i) if !l[..i].contains('"') => &l[..i],
        _ => l,
    }).collect::<Vec<_>>().join("\n")
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Every path written in `code` that starts with `crate`, `super`, `self`
/// or a plain identifier, as its segments, with `a::{b, c::d}` split into
/// `a::b` and `a::c`.
fn paths(code: &str) -> Vec<Vec<String>> {
    let chars: Vec<char> = code.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if !is_ident(chars[i]) || (i > 0 && (is_ident(chars[i - 1]) || chars[i - 1] == ':')) {
            i += 1;
            continue;
        }
        let mut segs = Vec::new();
        let mut j = i;
        loop {
            let start = j;
            while j < chars.len() && is_ident(chars[j]) {
                j += 1;
            }
            segs.push(chars[start..j].iter().collect::<String>());
            if chars.get(j) == Some(&':') && chars.get(j + 1) == Some(&':') {
                j += 2;
                if chars.get(j) == Some(&'{') {
                    let close = (j..chars.len()).find(|&k| chars[k] == '}').unwrap_or(chars.len());
                    let inner: String = chars[j + 1..close].iter().collect();
                    for item in inner.split(',') {
                        let first: String = item.trim().chars().take_while(|&c| is_ident(c)).collect();
                        if !first.is_empty() && first != "self" {
                            let mut p = segs.clone();
                            p.push(first);
                            out.push(p);
                        }
                    }
                    segs.clear();
                    j = close;
                    break;
                }
                if chars.get(j).is_some_and(|&c| is_ident(c)) {
                    continue;
                }
            }
            break;
        }
        if segs.len() > 1 {
            out.push(segs);
        }
        i = j.max(i + 1);
    }
    out
}

/// The modules of `src/` and which others each one's code names.
fn graph() -> BTreeMap<Module, BTreeSet<Module>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut list = Vec::new();
    files(&src, &mut list);
    let texts: BTreeMap<Module, String> = list
        .iter()
        .filter(|p| !p.ends_with("main.rs"))
        .map(|p| (module_of(p.strip_prefix(&src).unwrap()), code(&fs::read_to_string(p).unwrap())))
        .collect();
    let known: BTreeSet<Module> = texts.keys().cloned().collect();
    let resolve = |full: &[String]| (0..=full.len()).rev().map(|k| full[..k].to_vec()).find(|m| known.contains(m));
    // A path written in module `m`, as the full path it names.
    let absolute = |m: &Module, p: &[String]| -> Option<Vec<String>> {
        Some(match p[0].as_str() {
            "crate" => p[1..].to_vec(),
            "super" | "self" => {
                let mut base = m.clone();
                let mut rest = p;
                while let Some(first) = rest.first().filter(|s| *s == "super" || *s == "self") {
                    if first == "super" {
                        base.pop();
                    }
                    rest = &rest[1..];
                }
                base.extend(rest.iter().cloned());
                base
            }
            // A child module named by its own name.
            first => {
                let mut child = m.clone();
                child.push(first.to_string());
                if !known.contains(&child) {
                    return None;
                }
                let mut full = m.clone();
                full.extend(p.iter().cloned());
                full
            }
        })
    };
    // `pub use child::Item` makes `module::Item` a path into `child`: an
    // import through a re-export is an import of the file that defines it.
    let mut reexports: BTreeMap<Module, BTreeMap<String, Module>> = BTreeMap::new();
    for (m, text) in &texts {
        for stmt in text.split("pub use ").skip(1) {
            let stmt = &stmt[..stmt.find(';').unwrap_or(stmt.len())];
            for p in paths(stmt) {
                if let Some(full) = absolute(m, &p)
                    && let Some(t) = resolve(&full).filter(|t| t != m)
                {
                    reexports.entry(m.clone()).or_default().insert(p[p.len() - 1].clone(), t);
                }
            }
        }
    }
    let through = |full: &[String]| -> Option<Module> {
        let mut t = resolve(full)?;
        while let Some(next) = full.get(t.len()).and_then(|item| reexports.get(&t)?.get(item)) {
            t = next.clone();
        }
        Some(t)
    };
    let mut edges: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::new();
    for (m, text) in &texts {
        let set = edges.entry(m.clone()).or_default();
        for p in paths(text) {
            let Some(full) = absolute(m, &p) else { continue };
            // A module using its own descendants is how Rust composes a
            // module of files; a cycle needs an edge back up or across.
            if let Some(target) = through(&full).filter(|t| t != m && !t.is_empty() && !t.starts_with(m)) {
                set.insert(target);
            }
        }
    }
    edges
}

fn layer(top: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&top))
}

#[test]
fn each_module_uses_only_lower_layers() {
    let mut wrong = Vec::new();
    for (m, targets) in graph() {
        let Some(from) = m.first() else { continue };
        for t in targets {
            let to = &t[0];
            if to == from {
                continue;
            }
            match (layer(from), layer(to)) {
                (Some(a), Some(b)) if b < a => {}
                _ => wrong.push(format!("{} uses {} ({from} may not use {to})", m.join("::"), t.join("::"))),
            }
        }
    }
    assert!(wrong.is_empty(), "imports against the layers of ARCHITECTURE.md §1:\n{}", wrong.join("\n"));
}

#[test]
fn every_top_level_module_has_a_layer() {
    let tops: BTreeSet<String> = graph().keys().filter_map(|m| m.first().cloned()).collect();
    let missing: Vec<&String> = tops.iter().filter(|t| layer(t).is_none()).collect();
    assert!(missing.is_empty(), "modules with no layer in tests/layers.rs: {missing:?}");
}

#[test]
fn no_file_imports_lead_back_to_it() {
    let g = graph();
    // Tarjan's strongly connected components.
    struct T<'g> {
        g: &'g BTreeMap<Module, BTreeSet<Module>>,
        index: BTreeMap<Module, usize>,
        low: BTreeMap<Module, usize>,
        stack: Vec<Module>,
        on: BTreeSet<Module>,
        cycles: Vec<Vec<String>>,
    }
    impl T<'_> {
        fn visit(&mut self, v: &Module) {
            let n = self.index.len();
            self.index.insert(v.clone(), n);
            self.low.insert(v.clone(), n);
            self.stack.push(v.clone());
            self.on.insert(v.clone());
            for w in self.g.get(v).into_iter().flatten() {
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let l = self.low[v].min(self.low[w]);
                    self.low.insert(v.clone(), l);
                } else if self.on.contains(w) {
                    let l = self.low[v].min(self.index[w]);
                    self.low.insert(v.clone(), l);
                }
            }
            if self.low[v] == self.index[v] {
                let mut comp = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on.remove(&w);
                    let done = &w == v;
                    comp.push(w.join("::"));
                    if done {
                        break;
                    }
                }
                if comp.len() > 1 {
                    comp.sort();
                    self.cycles.push(comp);
                }
            }
        }
    }
    let mut t = T { g: &g, index: BTreeMap::new(), low: BTreeMap::new(), stack: Vec::new(), on: BTreeSet::new(), cycles: Vec::new() };
    for v in g.keys() {
        if !t.index.contains_key(v) {
            t.visit(v);
        }
    }
    let shown: Vec<String> = t.cycles.iter().map(|c| c.join(" ↔ ")).collect();
    assert!(shown.is_empty(), "files whose imports form a cycle:\n{}", shown.join("\n"));
}

#[test]
fn the_checker_sees_imports() {
    // The parser finds what it must, or the tests above prove nothing.
    let p = paths("use crate::store::{Store, LockMode};\nuse super::error::BuildError;\nlet x = seed::choose(a);");
    assert_eq!(p, [
        vec!["crate", "store", "Store"],
        vec!["crate", "store", "LockMode"],
        vec!["super", "error", "BuildError"],
        vec!["seed", "choose"]
    ]);
    let g = graph();
    assert!(g[&vec!["cli".to_string(), "build".to_string()]].contains(&vec!["build".to_string()]), "cli::build uses build");
}
