//! Helpers shared by the integration tests: run the built binary the way a
//! user would, with no colour and a fixed width, and a state directory of
//! the test's own.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// What one run of the binary produced.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A fixture directory under tests/fixtures.
pub fn fixture(rel: &str) -> PathBuf {
    root().join("tests/fixtures").join(rel)
}

/// Runs `bootstrap ARGS` in `cwd`, with a fresh state directory under `state`.
pub fn run_in(cwd: &Path, state: &Path, args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_bootstrap"))
        .current_dir(cwd)
        .arg("--state")
        .arg(state)
        .args(args)
        .env("NO_COLOR", "1")
        .env("COLUMNS", "80")
        .env_remove("BOOTSTRAP_STATE")
        .output()
        .expect("the bootstrap binary runs");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Copies a directory tree (files and directories only).
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// `step → definition digest` from `plan --json` output.
pub fn digests(plan_json: &str) -> std::collections::BTreeMap<String, String> {
    let v: serde_json::Value = serde_json::from_str(plan_json).expect("plan --json is JSON");
    v["steps"]
        .as_array()
        .expect("steps array")
        .iter()
        .map(|s| (s["step"].as_str().unwrap().to_owned(), s["definition_digest"].as_str().unwrap().to_owned()))
        .collect()
}
