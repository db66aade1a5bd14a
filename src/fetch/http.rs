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

/// How many requests one URL gets in all (resumes included): a server that
/// sends a byte and closes, again and again, is given up on.
const REQUESTS_PER_URL: u32 = 16;

/// The slowest a transfer may be, in bytes per second, averaged over each
/// `--timeout` window: a server trickling a byte every few seconds keeps
/// every read within the timeout and would otherwise never be given up on.
pub const MIN_RATE: u64 = 1024;

/// A transfer given up on for its rate (kept apart from a read that timed
/// out, which is resumed).
#[derive(Debug)]
struct TooSlow {
    bytes: u64,
    window: Duration,
}

impl std::fmt::Display for TooSlow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} bytes in {:?}, slower than {MIN_RATE} bytes per second", self.bytes, self.window)
    }
}

impl std::error::Error for TooSlow {}

/// Bounds on one download.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The most bytes it may bring.
    pub max_bytes: u64,
    /// The window [`MIN_RATE`] is averaged over (`--timeout`).
    pub window: Duration,
}

/// The HTTP agent every download uses: `timeout` bounds connecting, waiting
/// for the response headers and each read of the body (a stalled transfer).
pub fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(timeout))
        .timeout_recv_response(Some(timeout))
        .timeout_per_read(Some(timeout))
        // Redirects are followed by `transfer`, which refuses to leave http(s).
        .max_redirects(0)
        .max_redirects_will_error(false)
        .user_agent(concat!("bootstrap/", env!("CARGO_PKG_VERSION")))
        .build()
        .into()
}

fn network(e: ureq::Error) -> AttemptProblem {
    match e {
        ureq::Error::Timeout(t) => AttemptProblem::Timeout { message: t.to_string() },
        ureq::Error::Io(e) if e.kind() == io::ErrorKind::TimedOut => AttemptProblem::Timeout { message: e.to_string() },
        e => AttemptProblem::Network { message: e.to_string() },
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
/// until the server says the body is complete; returns the sha256 and size
/// of what `part` then holds, for the caller to judge (it commits the file
/// to the store, which syncs it, or removes it). When `expected` is given
/// and bytes kept from an earlier attempt hash to something else, the
/// download is made once more from the start, since the kept bytes may be
/// what was wrong.
pub fn download(
    agent: &ureq::Agent,
    url: &str,
    part: &Path,
    expected: Option<&Sha256>,
    id: &str,
    limits: &Limits,
    progress: &dyn Progress,
) -> Result<(Sha256, u64), AttemptProblem> {
    let io_err = |e: io::Error| AttemptProblem::Io { message: format!("{}: {e}", part.display()) };
    let mut file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(part).map_err(io_err)?;
    let (mut hasher, mut have) = rehash(&mut file).map_err(io_err)?;
    let mut resumed_from_disk = have > 0;
    loop {
        transfer(agent, url, &mut file, &mut hasher, &mut have, id, limits, progress)?;
        let actual = Sha256(hasher.clone().finalize().into());
        if !resumed_from_disk || expected.is_none_or(|e| *e == actual) {
            return Ok((actual, have));
        }
        // The kept bytes may be what was wrong: one clean attempt.
        file.set_len(0).map_err(io_err)?;
        resumed_from_disk = false;
        hasher = sha2::Sha256::new();
        have = 0;
    }
}

/// One complete transfer, made of as many requests as resuming takes
/// (at most [`REQUESTS_PER_URL`]).
#[allow(clippy::too_many_arguments)]
fn transfer(
    agent: &ureq::Agent,
    url: &str,
    file: &mut File,
    hasher: &mut sha2::Sha256,
    have: &mut u64,
    id: &str,
    limits: &Limits,
    progress: &dyn Progress,
) -> Result<(), AttemptProblem> {
    let io_err = |e: io::Error| AttemptProblem::Io { message: e.to_string() };
    let mut stalls = 0;
    let mut requests = 0;
    let mut url = url.to_string();
    loop {
        requests += 1;
        if requests > REQUESTS_PER_URL {
            return Err(AttemptProblem::TooManyRequests { requests: REQUESTS_PER_URL });
        }
        let mut req = agent.get(&url);
        if *have > 0 {
            req = req.header("Range", format!("bytes={have}-"));
        }
        let resp = req.call().map_err(network)?;
        let status = resp.status().as_u16();
        if matches!(status, 301 | 302 | 303 | 307 | 308) {
            let to = resp.headers().get("location").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
            url = redirect_target(&url, &to).ok_or(AttemptProblem::Redirect { to })?;
            continue;
        }
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
            s => return Err(AttemptProblem::Http { status: s }),
        }
        let total = resp.body().content_length().map(|n| n + *have);
        if total.is_some_and(|t| t > limits.max_bytes) {
            return Err(AttemptProblem::TooLarge { limit: limits.max_bytes });
        }
        progress.start(id, total, *have);
        file.seek(SeekFrom::End(0)).map_err(io_err)?;
        let mut reader = resp.into_body().into_reader();
        let before = *have;
        let outcome = pipeline(&mut reader, file, hasher, have, id, limits, progress)?;
        let short = total.is_some_and(|t| *have < t);
        match &outcome {
            Err(e) if e.kind() == io::ErrorKind::FileTooLarge => {
                return Err(AttemptProblem::TooLarge { limit: limits.max_bytes });
            }
            Err(e) if e.get_ref().is_some_and(|inner| inner.is::<TooSlow>()) => {
                return Err(AttemptProblem::Timeout { message: e.to_string() });
            }
            _ => {}
        }
        match outcome {
            Ok(()) if !short => return Ok(()),
            failed => {
                // Cut off: resume from what arrived, unless nothing did, too often.
                if *have == before {
                    stalls += 1;
                    if stalls >= STALLED_RETRIES {
                        return Err(match failed {
                            Err(e) if e.kind() == io::ErrorKind::TimedOut => AttemptProblem::Timeout { message: e.to_string() },
                            Err(e) => AttemptProblem::Network { message: format!("transfer stopped at byte {have}: {e}") },
                            Ok(()) => AttemptProblem::Network { message: format!("transfer stopped at byte {have}") },
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

/// Bytes between two requests to start writing back to disk, so the final
/// fsync has little left to wait for.
const WRITEBACK_EVERY: u64 = 32 << 20;

/// Read buffers in flight between the three threads of [`pipeline`].
const BUFFERS: usize = 8;
/// Size of each read buffer.
const BUFFER_SIZE: usize = 256 << 10;

/// Streams the body into the file and the hasher. The socket is read on this
/// thread, a second thread writes each buffer and hands it to a third that
/// hashes it and gives it back, so a download runs at the speed of the
/// slowest of the three, not their sum, and no buffer is allocated per read.
/// Returns the reader's outcome (an error means the transfer was cut off); a
/// failed write is an error of its own.
fn pipeline(
    reader: &mut dyn Read,
    file: &File,
    hasher: &mut sha2::Sha256,
    have: &mut u64,
    id: &str,
    limits: &Limits,
    progress: &dyn Progress,
) -> Result<io::Result<()>, AttemptProblem> {
    use std::sync::mpsc::sync_channel;
    type Chunk = (Vec<u8>, usize);
    std::thread::scope(|s| {
        let (to_writer, writes) = sync_channel::<Chunk>(BUFFERS);
        let (to_hasher, hashes) = sync_channel::<Chunk>(BUFFERS);
        let (give_back, pool) = sync_channel::<Vec<u8>>(BUFFERS);
        for _ in 0..BUFFERS {
            let _ = give_back.send(vec![0u8; BUFFER_SIZE]);
        }
        let start = *have;
        let writer = s.spawn(move || -> io::Result<()> {
            let mut out = file;
            let (mut pos, mut flushed) = (start, start);
            for (buf, n) in writes {
                out.write_all(&buf[..n])?;
                pos += n as u64;
                if pos - flushed >= WRITEBACK_EVERY {
                    start_writeback(file, flushed, pos - flushed);
                    flushed = pos;
                }
                if to_hasher.send((buf, n)).is_err() {
                    break;
                }
            }
            Ok(())
        });
        let hashing = s.spawn(move || {
            for (buf, n) in hashes {
                hasher.update(&buf[..n]);
                let _ = give_back.send(buf);
            }
        });
        // The rate is judged over each window of `--timeout`.
        let (mut window_start, mut window_bytes) = (std::time::Instant::now(), 0u64);
        let need = MIN_RATE.saturating_mul(limits.window.as_secs().max(1));
        let outcome = loop {
            if window_start.elapsed() >= limits.window {
                if window_bytes < need {
                    break Err(io::Error::new(io::ErrorKind::TimedOut, TooSlow { bytes: window_bytes, window: limits.window }));
                }
                (window_start, window_bytes) = (std::time::Instant::now(), 0);
            }
            let Ok(mut buf) = pool.recv() else { break Ok(()) };
            let read = loop {
                match reader.read(&mut buf) {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    r => break r,
                }
            };
            match read {
                Ok(0) => break Ok(()),
                Ok(n) => {
                    if *have + n as u64 > limits.max_bytes {
                        break Err(io::Error::new(io::ErrorKind::FileTooLarge, "over --max-download-size"));
                    }
                    if to_writer.send((buf, n)).is_err() {
                        break Ok(()); // the writer stopped; its error is reported below
                    }
                    *have += n as u64;
                    window_bytes += n as u64;
                    progress.advance(id, *have);
                }
                Err(e) => break Err(e),
            }
        };
        drop(to_writer);
        let written = writer.join().unwrap_or_else(|_| Err(io::Error::other("the writer thread panicked")));
        let _ = hashing.join();
        written.map_err(|e| AttemptProblem::Io { message: e.to_string() })?;
        Ok(outcome)
    })
}

/// Asks the kernel to start writing a range of the file to disk without
/// waiting (Linux `sync_file_range(SYNC_FILE_RANGE_WRITE)`); only a hint.
fn start_writeback(file: &File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    // SAFETY: a plain syscall on a file descriptor this function borrows;
    // no memory is passed. Failure only means no early writeback.
    unsafe {
        libc::sync_file_range(file.as_raw_fd(), offset as i64, len as i64, libc::SYNC_FILE_RANGE_WRITE);
    }
}

/// Where a redirect from `from` to `location` leads, if it stays on http or
/// https: an absolute URL, or a path on the same server. Anything else
/// (`file:///etc/passwd`, another scheme) is not followed.
fn redirect_target(from: &str, location: &str) -> Option<String> {
    if location.starts_with("http://") || location.starts_with("https://") {
        return Some(location.to_string());
    }
    if location.starts_with('/') && !location.starts_with("//") {
        let scheme_end = from.find("://")? + 3;
        let host_end = from[scheme_end..].find('/').map_or(from.len(), |i| scheme_end + i);
        return Some(format!("{}{location}", &from[..host_end]));
    }
    None
}
