//! Fuzzes the chain loader: the input is split at 0xFF bytes into
//! chain/chain.kdl, chain/sources.kdl and stage0/steps.kdl. Loading must
//! either succeed (and plan) or give diagnostics that render; never panic.
#![no_main]

use bootstrap::chain::{self, Input, LoadOptions, MemFiles};
use libfuzzer_sys::fuzz_target;
use miette::{GraphicalReportHandler, GraphicalTheme};

fuzz_target!(|data: &[u8]| {
    let names = ["chain/chain.kdl", "chain/sources.kdl", "stage0/steps.kdl"];
    let files = data
        .split(|&b| b == 0xFF)
        .zip(names)
        .map(|(bytes, path)| Input { path: path.to_owned(), bytes: bytes.to_vec() })
        .collect();
    match chain::load(&MemFiles { files }, &LoadOptions::default()) {
        Ok(chain) => {
            let plan = bootstrap::plan::Plan::new(&chain);
            assert_eq!(plan.order.len(), chain.steps.len());
        }
        Err(errors) => {
            assert!(!errors.diagnostics.is_empty());
            let handler = GraphicalReportHandler::new_themed(GraphicalTheme::unicode_nocolor());
            for d in &errors.diagnostics {
                let mut s = String::new();
                handler.render_report(&mut s, d).expect("diagnostics render");
            }
        }
    }
});
