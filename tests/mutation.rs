//! The loader never panics or hangs: at least 5,000 mutated variants of the
//! fixture chains (byte flips, truncations, duplicated and deleted lines)
//! each either load or yield diagnostics, and every diagnostic renders.
//! Deterministic: a fixed-seed generator, so a failure is reproducible.

mod common;

use std::time::{Duration, Instant};

use bootstrap::chain::{self, Input, LoadOptions, MemFiles};
use miette::{GraphicalReportHandler, GraphicalTheme};

/// splitmix64: tiny, deterministic, good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 { 0 } else { (self.next() % n as u64) as usize }
    }
}

/// Every fixture chain, as in-memory file sets.
fn corpora() -> Vec<Vec<Input>> {
    let mut dirs = vec![common::fixture("digests"), common::fixture("reformatted")];
    let mut bad: Vec<_> = std::fs::read_dir(common::fixture("bad")).unwrap().map(|e| e.unwrap().path()).collect();
    bad.sort();
    dirs.extend(bad);
    dirs.iter()
        .map(|dir| {
            let mut files = Vec::new();
            collect(dir, dir, &mut files);
            files
        })
        .collect()
}

fn collect(base: &std::path::Path, dir: &std::path::Path, out: &mut Vec<Input>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            collect(base, &entry.path(), out);
        } else {
            let path = entry.path().strip_prefix(base).unwrap().to_string_lossy().replace('\\', "/");
            out.push(Input { path, bytes: std::fs::read(entry.path()).unwrap() });
        }
    }
}

fn mutate(rng: &mut Rng, bytes: &[u8]) -> Vec<u8> {
    let mut b = bytes.to_vec();
    match rng.below(6) {
        0 | 1 => {
            // Flip one to three bytes, to anything (including invalid UTF-8).
            for _ in 0..=rng.below(3) {
                if !b.is_empty() {
                    let i = rng.below(b.len());
                    b[i] ^= 1 << rng.below(8);
                }
            }
        }
        2 => {
            // Replace a byte with a KDL-significant one.
            const SPECIAL: &[u8] = b"{}\"#;=()/\\*\n -0.";
            if !b.is_empty() {
                let i = rng.below(b.len());
                b[i] = SPECIAL[rng.below(SPECIAL.len())];
            }
        }
        3 => b.truncate(rng.below(b.len() + 1)),
        4 | 5 => {
            let text = String::from_utf8_lossy(&b).into_owned();
            let mut lines: Vec<&str> = text.split_inclusive('\n').collect();
            if !lines.is_empty() {
                let i = rng.below(lines.len());
                if rng.below(2) == 0 {
                    let line = lines[i];
                    lines.insert(rng.below(lines.len() + 1), line);
                } else {
                    lines.remove(i);
                }
            }
            b = lines.concat().into_bytes();
        }
        _ => unreachable!(),
    }
    b
}

#[test]
fn mutated_chains_load_or_diagnose_never_panic() {
    let corpora = corpora();
    let handler = GraphicalReportHandler::new_themed(GraphicalTheme::unicode_nocolor()).with_width(80);
    let mut rng = Rng(0x5EED_B007_57A9_0001);
    let variants = 6000;
    let (mut loaded, mut diagnosed) = (0, 0);
    let started = Instant::now();
    for n in 0..variants {
        let mut files = corpora[n % corpora.len()].clone();
        // Mutate one file, sometimes two.
        for _ in 0..=rng.below(2) {
            let i = rng.below(files.len());
            files[i].bytes = mutate(&mut rng, &files[i].bytes);
        }
        let set = MemFiles { files };
        let t = Instant::now();
        match chain::load(&set, &LoadOptions::default()) {
            Ok(chain) => {
                loaded += 1;
                // A loaded chain plans.
                let plan = bootstrap::plan::Plan::new(&chain);
                assert_eq!(plan.order.len(), chain.steps.len(), "variant {n}: plan lost steps");
            }
            Err(errors) => {
                assert!(!errors.diagnostics.is_empty(), "variant {n}: an error without diagnostics");
                diagnosed += 1;
                for d in &errors.diagnostics {
                    let mut s = String::new();
                    handler.render_report(&mut s, d).unwrap_or_else(|e| panic!("variant {n}: render failed: {e}"));
                    assert!(!s.is_empty());
                }
            }
        }
        assert!(t.elapsed() < Duration::from_secs(5), "variant {n} took {:?}: a hang", t.elapsed());
    }
    assert_eq!(loaded + diagnosed, variants);
    assert!(diagnosed > variants / 2, "mutations should mostly break chains ({diagnosed} of {variants})");
    eprintln!("{variants} variants: {loaded} loaded, {diagnosed} diagnosed, in {:?}", started.elapsed());
}
