//! The mini chain (tests/fixtures/mini) in a temp dir of its own, run with
//! the test seeds.

use std::fs;
use std::path::{Path, PathBuf};

use super::{Run, run_in, seeds};

/// A copy of the mini chain in a temp dir, with its own state directory.
pub struct Mini {
    _tmp: tempfile::TempDir,
    pub chain: PathBuf,
    pub state: PathBuf,
    /// `--backend` and `--seed` arguments.
    pub seed_args: Vec<String>,
}

impl Mini {
    /// On the local backend, with the test seeds' directories.
    pub fn new() -> Mini {
        let busybox = format!("busybox={}", seeds().join("busybox").display());
        let debian = format!("debian={}", seeds().join("debian").display());
        Mini::with_args(["--seed", &busybox, "--seed", &debian].map(String::from).to_vec())
    }

    /// With these `--backend` and `--seed` arguments.
    pub fn with_args(seed_args: Vec<String>) -> Mini {
        let tmp = tempfile::tempdir().unwrap();
        let chain = tmp.path().join("mini");
        super::copy_tree(&super::fixture("mini"), &chain);
        let state = tmp.path().join("state");
        Mini { _tmp: tmp, chain, state, seed_args }
    }

    pub fn run(&self, args: &[&str]) -> Run {
        let distfiles = self.chain.join("distfiles");
        let mut all: Vec<&str> = vec!["-C", self.chain.to_str().unwrap(), "--distfiles", distfiles.to_str().unwrap(), "--offline"];
        all.extend(self.seed_args.iter().map(String::as_str));
        all.extend(args);
        run_in(&self.chain, &self.state, &all)
    }

    /// Starts the binary on the chain (not `--offline`, stdout dropped,
    /// stderr piped) with `global` flags before the seed arguments and
    /// `args` after them, for a test that signals it.
    pub fn spawn(&self, global: &[&str], args: &[&str]) -> std::process::Child {
        let distfiles = self.chain.join("distfiles");
        std::process::Command::new(env!("CARGO_BIN_EXE_bootstrap"))
            .args(global)
            .args(["--state", self.state.to_str().unwrap(), "-C", self.chain.to_str().unwrap(), "--distfiles", distfiles.to_str().unwrap()])
            .args(&self.seed_args)
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    }

    pub fn edit(&self, rel: &str, from: &str, to: &str) {
        let p = self.chain.join(rel);
        let text = fs::read_to_string(&p).unwrap();
        assert!(text.contains(from), "{rel} has no {from:?}");
        fs::write(&p, text.replacen(from, to, 1)).unwrap();
    }

    pub fn add(&self, rel: &str, text: &str) {
        fs::write(self.chain.join(rel), text).unwrap();
    }

    /// Every step receipt file in the state directory.
    pub fn receipts(&self) -> usize {
        fn count(p: &Path) -> usize {
            fs::read_dir(p).map_or(0, |d| {
                d.map(|e| e.unwrap().path()).map(|p| if p.is_dir() { count(&p) } else { 1 }).sum()
            })
        }
        count(&self.state.join("receipts/steps"))
    }
}

