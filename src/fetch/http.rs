//! Downloads over http(s) with ureq (rustls, no OpenSSL), resuming with a
//! `Range` request, the sha256 computed while the bytes stream in.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::Duration;

use sha2::Digest as _;

use super::{AttemptProblem, Progress};
use crate::hash::Sha256;

/// How many times a transfer that stopped without adding a byte is retried.
const STALLED_RETRIES: u32 = 3;

/// The HTTP agent every download uses: `timeout` bounds connecting, waiting
/// for the response headers and each read of the body (a stalled transfer).
pub fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(timeout))
        .timeout_recv_response(Some(timeout))
        .timeout_per_read(Some(timeout))
        .user_agent(concat!("bootstrap/", env!("CARGO_PKG_VERSION")))
        .build()
        .into()
}

fn network(e: ureq::Error) -> AttemptProblem {
    match e {
        ureq::Error::Timeout(t) => AttemptProblem::Timeout(t.to_string()),
        ureq::Error::Io(e) if e.kind() == io::ErrorKind::TimedOut => AttemptProblem::Timeout(e.to_string()),
        e => AttemptProblem::Network(e.to_string()),
    }
}

/// Hashes what is already in `part` (an earlier, interrupted download).
fn rehash(file: &mut File) -> io::Result<(sha2::Sha256, u64)> {
    let mut h = sha2::Sha256::new();
    file.seek(SeekFrom::Start(0))?;
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        match file.read(&mut buf)? {
            0 => return Ok((h, n)),
            k => {
                h.update(&buf[..k]);
                n += k as u64;
            }
        }
    }
}

/// Downloads `url` into `part`, continuing whatever `part` already holds,
/// until the server says the body is complete; then checks the sha256. On a
/// wrong hash the part file is emptied so bad bytes never linger, after one
/// fresh retry when the bad bytes may have come from an earlier attempt.
pub fn download(
    agent: &ureq::Agent,
    url: &str,
    part: &Path,
    expected: &Sha256,
    id: &str,
    progress: &dyn Progress,
) -> Result<(), AttemptProblem> {
    let io_err = |e: io::Error| AttemptProblem::Io(format!("{}: {e}", part.display()));
    let mut file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(part).map_err(io_err)?;
    let (mut hasher, mut have) = rehash(&mut file).map_err(io_err)?;
    let mut resumed_from_disk = have > 0;
    loop {
        transfer(agent, url, &mut file, &mut hasher, &mut have, id, progress)?;
        let actual = Sha256(hasher.clone().finalize().into());
        if actual == *expected {
            file.sync_all().map_err(io_err)?;
            return Ok(());
        }
        file.set_len(0).map_err(io_err)?;
        if resumed_from_disk {
            // The kept bytes may be what was wrong: one clean attempt.
            resumed_from_disk = false;
            hasher = sha2::Sha256::new();
            have = 0;
            continue;
        }
        return Err(AttemptProblem::WrongHash { actual, size: have });
    }
}

/// One complete transfer, made of as many requests as resuming takes.
fn transfer(
    agent: &ureq::Agent,
    url: &str,
    file: &mut File,
    hasher: &mut sha2::Sha256,
    have: &mut u64,
    id: &str,
    progress: &dyn Progress,
) -> Result<(), AttemptProblem> {
    let io_err = |e: io::Error| AttemptProblem::Io(e.to_string());
    let mut stalls = 0;
    let mut buf = vec![0u8; 256 << 10];
    loop {
        let mut req = agent.get(url);
        if *have > 0 {
            req = req.header("Range", format!("bytes={have}-"));
        }
        let resp = req.call().map_err(network)?;
        let status = resp.status().as_u16();
        let restart = |file: &mut File, hasher: &mut sha2::Sha256, have: &mut u64| -> io::Result<()> {
            file.set_len(0)?;
            *hasher = sha2::Sha256::new();
            *have = 0;
            Ok(())
        };
        match status {
            206 if *have > 0 => {
                let range = resp.headers().get("content-range").and_then(|v| v.to_str().ok()).unwrap_or("");
                if !range.starts_with(&format!("bytes {have}-")) {
                    // Not the range asked for: start over with a plain request.
                    restart(file, hasher, have).map_err(io_err)?;
                    continue;
                }
            }
            200 => {
                if *have > 0 {
                    restart(file, hasher, have).map_err(io_err)?;
                }
            }
            416 if *have > 0 => {
                restart(file, hasher, have).map_err(io_err)?;
                continue;
            }
            s => return Err(AttemptProblem::Http(s)),
        }
        let total = resp.body().content_length().map(|n| n + *have);
        progress.start(id, total, *have);
        file.seek(SeekFrom::End(0)).map_err(io_err)?;
        let mut reader = resp.into_body().into_reader();
        let before = *have;
        let outcome = loop {
            match reader.read(&mut buf) {
                Ok(0) => break Ok(()),
                Ok(n) => {
                    file.write_all(&buf[..n]).map_err(io_err)?;
                    hasher.update(&buf[..n]);
                    *have += n as u64;
                    progress.advance(id, *have);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        let short = total.is_some_and(|t| *have < t);
        match outcome {
            Ok(()) if !short => return Ok(()),
            failed => {
                // Cut off: resume from what arrived, unless nothing did, too often.
                if *have == before {
                    stalls += 1;
                    if stalls >= STALLED_RETRIES {
                        return Err(match failed {
                            Err(e) if e.kind() == io::ErrorKind::TimedOut => AttemptProblem::Timeout(e.to_string()),
                            Err(e) => AttemptProblem::Network(format!("transfer stopped at byte {have}: {e}")),
                            Ok(()) => AttemptProblem::Network(format!("transfer stopped at byte {have}")),
                        });
                    }
                } else {
                    stalls = 0;
                }
                progress.note(id, &format!("resuming at byte {have}"));
            }
        }
    }
}
