//! `-v` log streaming shared by `build` and `verify`: step logs arrive in
//! chunks, possibly from several steps at once, and are passed on a whole
//! line at a time, each prefixed `[key] ` so interleaved steps stay readable.

use std::collections::HashMap;
use std::sync::Mutex;

/// Per-key buffers of what came after the last newline.
#[derive(Default)]
pub(crate) struct LineEcho {
    partial: Mutex<HashMap<String, Vec<u8>>>,
}

impl LineEcho {
    /// Adds a chunk of `key`'s log; `print` gets each completed line.
    pub(crate) fn push(&self, key: &str, bytes: &[u8], print: impl Fn(String)) {
        let Ok(mut m) = self.partial.lock() else { return };
        let buf = m.entry(key.to_string()).or_default();
        buf.extend_from_slice(bytes);
        while let Some(n) = buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = buf.drain(..=n).collect();
            print(format!("[{key}] {}", String::from_utf8_lossy(&line[..n])));
        }
    }

    /// `key` is done: `print` gets its last line if it lacked a newline.
    pub(crate) fn finish(&self, key: &str, print: impl Fn(String)) {
        if let Some(rest) = self.partial.lock().ok().and_then(|mut m| m.remove(key)).filter(|r| !r.is_empty()) {
            print(format!("[{key}] {}", String::from_utf8_lossy(&rest)));
        }
    }
}
