//! A real HTTP/1.1 server on 127.0.0.1 for the fetch tests: std sockets, one
//! thread per connection, `Connection: close`. Each path has a behaviour;
//! every request is logged with its `Range` header.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the server does for one path.
#[derive(Clone)]
pub enum Behavior {
    /// Serve these bytes; honours `Range: bytes=N-`.
    Serve(Vec<u8>),
    /// The first request without a Range gets the full Content-Length but
    /// the connection is closed after `cut_at` bytes; later ones are served.
    CutOnce { body: Vec<u8>, cut_at: usize },
    /// Like `CutOnce`, but later requests ignore `Range` (200, whole body).
    CutOnceNoRange { body: Vec<u8>, cut_at: usize },
    /// Wait this long before answering at all.
    Slow { delay: Duration, body: Vec<u8> },
    /// Serve (with Range) in `chunk`-byte pieces, pausing `pause` between them.
    Throttled { body: Vec<u8>, chunk: usize, pause: Duration },
    /// A chunked body that never ends (until the client hangs up).
    Endless,
    /// Announce `len` bytes, send the first one asked for, and hang up.
    OneByteAndClose { len: usize },
    /// Answer 302 with this `Location`.
    Redirect(String),
}

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Request {
    pub path: String,
    pub range: Option<String>,
}

/// A running server; it lives until the test process ends.
pub struct Server {
    pub base: String,
    routes: Arc<Mutex<HashMap<String, Behavior>>>,
    log: Arc<Mutex<Vec<Request>>>,
    cuts: Arc<AtomicUsize>,
}

impl Server {
    pub fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let routes: Arc<Mutex<HashMap<String, Behavior>>> = Arc::default();
        let log: Arc<Mutex<Vec<Request>>> = Arc::default();
        let cuts = Arc::new(AtomicUsize::new(0));
        let (r, l, c) = (routes.clone(), log.clone(), cuts.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (r, l, c) = (r.clone(), l.clone(), c.clone());
                std::thread::spawn(move || {
                    let _ = handle(stream, &r, &l, &c);
                });
            }
        });
        Server { base, routes, log, cuts }
    }

    /// Sets what `path` (starting with `/`) does.
    pub fn route(&self, path: &str, b: Behavior) -> String {
        self.routes.lock().unwrap().insert(path.to_string(), b);
        format!("{}{path}", self.base)
    }

    /// Requests seen so far for `path`.
    pub fn requests(&self, path: &str) -> Vec<Request> {
        self.log.lock().unwrap().iter().filter(|r| r.path == path).cloned().collect()
    }

    /// How many responses were cut off on purpose.
    pub fn cuts(&self) -> usize {
        self.cuts.load(Ordering::SeqCst)
    }
}

fn handle(
    stream: TcpStream,
    routes: &Mutex<HashMap<String, Behavior>>,
    log: &Mutex<Vec<Request>>,
    cuts: &AtomicUsize,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
    let mut range = None;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h == "\r\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':')
            && k.eq_ignore_ascii_case("range")
        {
            range = Some(v.trim().to_string());
        }
    }
    log.lock().unwrap().push(Request { path: path.clone(), range: range.clone() });
    let behavior = routes.lock().unwrap().get(&path).cloned();
    let mut out = stream;
    let Some(behavior) = behavior else {
        return out.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\nConnection: close\r\n\r\nnot found");
    };
    if let Behavior::Endless = behavior {
        out.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n")?;
        let chunk = vec![b'x'; 64 * 1024];
        let head = format!("{:x}\r\n", chunk.len());
        loop {
            out.write_all(head.as_bytes())?;
            out.write_all(&chunk)?;
            out.write_all(b"\r\n")?;
        }
    }
    if let Behavior::Redirect(to) = &behavior {
        let head = format!("HTTP/1.1 302 Found\r\nLocation: {to}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        return out.write_all(head.as_bytes());
    }
    if let Behavior::OneByteAndClose { len } = behavior {
        let from = range.as_deref().and_then(|r| r.strip_prefix("bytes=")).and_then(|r| r.strip_suffix('-')).and_then(|n| n.parse::<usize>().ok());
        let head = match from {
            Some(n) => format!("HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\nContent-Range: bytes {n}-{}/{len}\r\nConnection: close\r\n\r\n", len - n, len - 1),
            None => format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n"),
        };
        out.write_all(head.as_bytes())?;
        return out.write_all(b"x");
    }
    let (body, chunk, pause, cut) = match behavior.clone() {
        Behavior::Serve(b) => (b, usize::MAX, Duration::ZERO, None),
        Behavior::Slow { delay, body } => {
            std::thread::sleep(delay);
            (body, usize::MAX, Duration::ZERO, None)
        }
        Behavior::Throttled { body, chunk, pause } => (body, chunk, pause, None),
        Behavior::Endless | Behavior::OneByteAndClose { .. } | Behavior::Redirect(_) => return Ok(()),
        Behavior::CutOnce { body, cut_at } | Behavior::CutOnceNoRange { body, cut_at } => {
            let first = range.is_none() && cuts.compare_exchange(0, 1, Ordering::SeqCst, Ordering::SeqCst).is_ok();
            let cut = first.then_some(cut_at);
            (body, usize::MAX, Duration::ZERO, cut)
        }
    };
    let range = if matches!(behavior, Behavior::CutOnceNoRange { .. }) { None } else { range };
    let start = range
        .as_deref()
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|n| n.parse::<usize>().ok());
    let (status, from) = match start {
        Some(n) if n < body.len() => ("206 Partial Content", n),
        Some(_) => {
            return out.write_all(b"HTTP/1.1 416 Range Not Satisfiable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
        None => ("200 OK", 0),
    };
    let mut head = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n", body.len() - from);
    if from > 0 {
        head.push_str(&format!("Content-Range: bytes {from}-{}/{}\r\n", body.len() - 1, body.len()));
    }
    head.push_str("\r\n");
    out.write_all(head.as_bytes())?;
    let end = cut.map_or(body.len(), |c| c.min(body.len()));
    let mut at = from;
    while at < end {
        let next = (at.saturating_add(chunk)).min(end);
        out.write_all(&body[at..next])?;
        out.flush()?;
        at = next;
        if !pause.is_zero() && at < end {
            std::thread::sleep(pause);
        }
    }
    Ok(())
}
