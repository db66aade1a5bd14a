//! Progress of `verify` when stderr is a pipe (CI, `nohup`): a line per
//! step and seed as it starts, read while the run is still going, and one
//! as it settles with its duration; `-q` silences them.

mod common;

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

/// A one-stage chain whose only step takes a while on the seed's shell.
fn slow_chain(dir: &Path) {
    fs::create_dir_all(dir.join("chain")).unwrap();
    fs::create_dir_all(dir.join("stage0")).unwrap();
    fs::write(
        dir.join("chain/chain.kdl"),
        "chain \"t\" {\n    arch \"x86_64\"\n    source-date-epoch 0\n    stage \"stage0\" description=\"s\"\n}\n\
         seed \"busybox\" { description \"a\" }\nseed \"debian\" { description \"b\" }\n",
    )
    .unwrap();
    fs::write(
        dir.join("stage0/slow.kdl"),
        "step \"slow\" {\n    root \"seed\"\n    run \"/bin/sh\" \"-c\" \"sleep 3; echo done > /r\"\n    output \"/r\"\n}\n",
    )
    .unwrap();
}

fn verify(dir: &Path, state: &Path, quiet: bool) -> Command {
    let seeds = common::seeds();
    let mut c = Command::new(env!("CARGO_BIN_EXE_bootstrap"));
    c.arg("-C").arg(dir).arg("--state").arg(state);
    if quiet {
        c.arg("-q");
    }
    c.arg("--seed")
        .arg(format!("busybox={}", seeds.join("busybox").display()))
        .arg("--seed")
        .arg(format!("debian={}", seeds.join("debian").display()))
        .args(["verify", "stage0"])
        .env("NO_COLOR", "1")
        .env_remove("BOOTSTRAP_STATE")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

#[test]
fn each_step_shows_a_line_as_it_starts_while_the_run_goes_on_and_one_as_it_ends() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("chain");
    slow_chain(&dir);
    let mut child = verify(&dir, &tmp.path().join("state"), false).spawn().unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let first = lines.next().expect("a first line").unwrap();
    assert!(first.starts_with("  running  slow on "), "{first}");
    // Read while the step still sleeps: the line came as it happened.
    assert!(child.try_wait().unwrap().is_none(), "the run was over before its first progress line was read");
    let rest: Vec<String> = lines.map(Result::unwrap).collect();
    assert!(child.wait().unwrap().success(), "{rest:?}");
    for seed in ["busybox", "debian"] {
        assert!(
            rest.iter().chain([&first]).any(|l| l == &format!("  running  slow on {seed}")),
            "no start line for {seed}: {first} {rest:?}"
        );
        assert!(
            rest.iter().any(|l| l.starts_with(&format!("  built    slow on {seed} (")) && l.ends_with("s)")),
            "no end line for {seed}: {rest:?}"
        );
    }
}

#[test]
fn quiet_runs_show_no_progress() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("chain");
    slow_chain(&dir);
    let out = verify(&dir, &tmp.path().join("state"), true).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
}
