//! The loader never panics or hangs: at least 5,000 mutated variants of the
//! fixture chains (byte flips, truncations, duplicated and deleted lines)
//! each either load or yield diagnostics, and every diagnostic renders.
//! Deterministic: a fixed-seed generator, so a failure is reproducible.

mod common;

use std::time::{Duration, Instant};

use bootstrap::chain::{self, LoadOptions, MemFiles};
use common::{Rng, corpora, mutate};
use miette::{GraphicalReportHandler, GraphicalTheme};

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
