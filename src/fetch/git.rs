//! Getting a source from git: the system's `git` command, run as a
//! subprocess, checks the pinned commit out into a temporary directory of
//! the store; the caller hashes that tree and compares it with the `tree`
//! pin (a commit id is SHA-1, never trusted on its own).
//!
//! The checkout is made to depend on nothing but the repository: the
//! system and global git configuration are ignored, as are `GIT_*`
//! variables of the caller's environment (which could point git at another
//! repository or inject configuration); nothing ever prompts. The steps:
//!
//! 1. `git clone --no-checkout URL DIR`;
//! 2. `git checkout --detach COMMIT` (if the clone did not bring the
//!    commit, it is fetched by its id first: servers that allow it serve
//!    commits no branch or tag names);
//! 3. with `submodules=#true`, `git submodule update --init --recursive`,
//!    allowing the `file` protocol for the submodules (`-c
//!    protocol.file.allow=always`; git refuses it for submodules by
//!    default, and local mirrors use it);
//! 4. every `.git` entry (the repository, and the `.git` files of
//!    submodules) is removed, leaving only the content.

use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::chain::GitLocation;

/// Why a checkout could not be made: what git said, or that it could not run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct GitFailed(pub String);

/// Checks `git.commit` of `git.url` out into `dest` (an empty directory),
/// submodules too when asked, and removes every `.git` entry. `timeout`
/// bounds a transfer that stalls (below 1 KiB/s for that long).
pub(super) fn checkout(git: &GitLocation, dest: &Path, timeout: Duration) -> Result<(), GitFailed> {
    let o = OsStr::new;
    let commit = git.commit.hex();
    run(&[o("clone"), o("--no-checkout"), o("--quiet"), o("--"), o(&git.url), dest.as_os_str()], None, timeout)?;
    let checkout = || run(&[o("checkout"), o("--quiet"), o("--detach"), o(&commit)], Some(dest), timeout);
    if checkout().is_err() {
        // Not on any branch or tag the clone brought: ask for it by id.
        run(&[o("fetch"), o("--quiet"), o("origin"), o(&commit)], Some(dest), timeout)
            .map_err(|GitFailed(e)| GitFailed(format!("commit {commit} is not in the repository ({e})")))?;
        checkout()?;
    }
    if git.submodules {
        run(&[o("submodule"), o("update"), o("--init"), o("--recursive"), o("--quiet")], Some(dest), timeout)?;
    }
    remove_git_entries(dest).map_err(|e| GitFailed(format!("cannot remove the .git entries of the checkout: {e}")))
}

/// Runs `git ARGS` (in `dir` when given) with the environment described
/// in the module doc; its stderr's last lines on failure.
fn run(args: &[&OsStr], dir: Option<&Path>, timeout: Duration) -> Result<(), GitFailed> {
    let mut cmd = Command::new("git");
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("GIT_") {
            cmd.env_remove(&key);
        }
    }
    cmd.env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("LC_ALL", "C")
        .args(["-c", "protocol.file.allow=always"])
        .args(["-c", "advice.detachedHead=false"])
        .args(["-c", "http.lowSpeedLimit=1024"])
        .arg("-c")
        .arg(format!("http.lowSpeedTime={}", timeout.as_secs().max(1)))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(d) = dir {
        cmd.arg("-C").arg(d);
    }
    cmd.args(args);
    let shown = args.iter().map(|a| a.to_string_lossy()).collect::<Vec<_>>().join(" ");
    let out = cmd
        .output()
        .map_err(|e| GitFailed(format!("cannot run `git`: {e} (install git, or give the source in a --distfiles directory)")))?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let tail = lines[lines.len().saturating_sub(3)..].join("; ");
    let status = out.status.code().map_or_else(|| "was killed".to_string(), |c| format!("exited with {c}"));
    Err(GitFailed(if tail.is_empty() { format!("`git {shown}` {status}") } else { format!("`git {shown}` {status}: {tail}") }))
}

/// Removes every entry called `.git` under `root` (directories and the
/// files submodules have), never following a symlink.
fn remove_git_entries(root: &Path) -> std::io::Result<()> {
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let kind = entry.file_type()?;
            if entry.file_name() == ".git" {
                if kind.is_dir() {
                    std::fs::remove_dir_all(entry.path())?;
                } else {
                    std::fs::remove_file(entry.path())?;
                }
            } else if kind.is_dir() {
                stack.push(entry.path());
            }
        }
    }
    Ok(())
}
