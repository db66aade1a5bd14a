//! Exit codes and output handling at the edge of the command line: usage
//! errors are bad input (1), a failed write to stdout fails the command,
//! and `attest -o` never replaces anything but a regular file.

mod common;

use std::fs;
use std::process::{Command, Stdio};

use common::mini::Mini;

fn bootstrap(args: &[&str], stdout: Stdio) -> i32 {
    Command::new(env!("CARGO_BIN_EXE_bootstrap"))
        .args(args)
        .stdout(stdout)
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .code()
        .unwrap_or(-1)
}

#[test]
fn usage_errors_exit_1_and_help_exits_0() {
    assert_eq!(bootstrap(&["--no-such-flag"], Stdio::null()), 1);
    assert_eq!(bootstrap(&["no-such-command"], Stdio::null()), 1);
    assert_eq!(bootstrap(&[], Stdio::null()), 1, "no command is a usage error");
    assert_eq!(bootstrap(&["--help"], Stdio::null()), 0);
    assert_eq!(bootstrap(&["--version"], Stdio::null()), 0);
}

#[test]
fn a_write_error_on_stdout_is_a_failure() {
    let full = fs::OpenOptions::new().write(true).open("/dev/full").unwrap();
    let mini = common::fixture("mini");
    assert_eq!(bootstrap(&["-C", mini.to_str().unwrap(), "plan"], Stdio::from(full)), 1);
}

#[test]
fn attest_o_writes_a_regular_file_or_refuses() {
    let m = Mini::new();
    assert_eq!(m.run(&["verify", "stage0"]).code, 0);
    let fifo = m.chain.join("a-fifo");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let r = m.run(&["attest", "stage0", "-o", fifo.to_str().unwrap()]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("is not a regular file"), "{}", r.stderr);
    assert!(std::os::unix::fs::FileTypeExt::is_fifo(&fs::symlink_metadata(&fifo).unwrap().file_type()), "the fifo was replaced");
    let file = m.chain.join("statement.json");
    let r = m.run(&["attest", "stage0", "-o", file.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(fs::read_to_string(&file).unwrap().contains("in-toto"));
}
