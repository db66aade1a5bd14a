//! A fast path for the plain subset of KDL v2 that chain files are mostly
//! written in, building the same [`KdlDocument`] (values and spans) the kdl
//! crate would.
//!
//! Why: the kdl crate parses about 2 MB/s, which dominates a cold `plan` of
//! a large chain. This parser accepts only what it is certain about: ASCII
//! text; bare node names and property keys of `A–Z a–z 0–9 _ - .`; quoted
//! strings with the escapes `\" \\ \n \r \t`; decimal integers; `#true` and
//! `#false`; `//` comments; `;` terminators; `{ … }` children. On anything
//! else (raw or multi-line strings, other escapes, floats, type annotations,
//! slashdash, block comments, line continuations, bare-identifier values,
//! errors of any kind) it returns `None` and the caller uses the kdl crate,
//! which also produces the diagnostics. So the fast path can only ever be
//! faster, never different: `tests/fastkdl.rs` compares both parsers on
//! every fixture and thousands of mutations of them.

use kdl::{KdlDocument, KdlEntry, KdlNode, KdlValue};

/// Parses `text` if it lies in the subset; `None` means "use the kdl crate".
pub fn parse(text: &str) -> Option<KdlDocument> {
    let bytes = text.as_bytes();
    // Non-ASCII text may hold characters KDL treats specially (other
    // newlines and spaces, forbidden code points): leave it to the crate.
    if bytes.iter().any(|&b| b >= 0x80 || (b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r')) || b == 0x7f) {
        return None;
    }
    let mut p = P { s: bytes, text, i: 0 };
    let nodes = p.nodes(true)?;
    let mut doc = KdlDocument::new();
    *doc.nodes_mut() = nodes;
    doc.set_span((0, text.len()));
    Some(doc)
}

struct P<'a> {
    s: &'a [u8],
    text: &'a str,
    i: usize,
}

fn is_ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')
}

impl<'a> P<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn at(&self, k: usize) -> Option<u8> {
        self.s.get(self.i + k).copied()
    }

    /// Skips spaces and tabs; returns how many.
    fn spaces(&mut self) -> usize {
        let start = self.i;
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.i += 1;
        }
        self.i - start
    }

    /// Skips a `//` comment up to (not including) its newline.
    fn line_comment(&mut self) -> Option<()> {
        if self.at(1) != Some(b'/') {
            return None;
        }
        while !matches!(self.peek(), None | Some(b'\n' | b'\r')) {
            self.i += 1;
        }
        Some(())
    }

    /// Skips a newline (`\n` or `\r\n`).
    fn newline(&mut self) -> Option<()> {
        match (self.peek(), self.at(1)) {
            (Some(b'\n'), _) => self.i += 1,
            (Some(b'\r'), Some(b'\n')) => self.i += 2,
            _ => return None,
        }
        Some(())
    }

    /// Skips whitespace, newlines and comments between nodes.
    fn line_space(&mut self) -> Option<()> {
        loop {
            match self.peek() {
                Some(b' ' | b'\t') => self.i += 1,
                Some(b'\n' | b'\r') => self.newline()?,
                Some(b'/') => self.line_comment()?,
                _ => return Some(()),
            }
        }
    }

    fn nodes(&mut self, top: bool) -> Option<Vec<KdlNode>> {
        let mut nodes = Vec::new();
        loop {
            self.line_space()?;
            match self.peek() {
                None if top => return Some(nodes),
                Some(b'}') if !top => return Some(nodes),
                None | Some(b'}') => return None,
                Some(_) => nodes.push(self.node()?),
            }
        }
    }

    fn ident(&mut self) -> Option<&'a str> {
        let start = self.i;
        if !self.peek().is_some_and(is_ident_start) {
            return None;
        }
        while self.peek().is_some_and(is_ident) {
            self.i += 1;
        }
        let text: &'a str = self.text;
        let id = &text[start..self.i];
        // Keywords must be written with `#` in KDL v2; bare they are errors.
        if matches!(id, "true" | "false" | "null" | "inf" | "nan") {
            return None;
        }
        Some(id)
    }

    /// After a token: what may follow it directly.
    fn boundary(&self) -> bool {
        match self.peek() {
            None | Some(b' ' | b'\t' | b'\n' | b'\r' | b';' | b'}') => true,
            Some(b'/') => self.at(1) == Some(b'/'),
            _ => false,
        }
    }

    fn node(&mut self) -> Option<KdlNode> {
        let start = self.i;
        let name = self.ident()?;
        // `name{` without a space, or `name+x`, is left to the crate.
        if !self.boundary() {
            return None;
        }
        let mut node = KdlNode::new(name);
        node.name_mut().set_span((start, name.len()));
        // Like the crate, a node's span runs to the end of the spaces after
        // its last token, excluding the terminator or comment.
        let end;
        loop {
            let ws = self.spaces();
            match self.peek() {
                None | Some(b'\n' | b'\r' | b';' | b'}') => {
                    end = self.i;
                    break;
                }
                Some(b'/') => {
                    end = self.i;
                    self.line_comment()?;
                    break;
                }
                Some(b'{') => {
                    if ws == 0 {
                        return None;
                    }
                    self.i += 1;
                    let children = self.nodes(false)?;
                    // `nodes(false)` stops only at `}`.
                    self.i += 1;
                    let mut doc = KdlDocument::new();
                    *doc.nodes_mut() = children;
                    node.set_children(doc);
                    self.spaces();
                    end = self.i;
                    match self.peek() {
                        None | Some(b'\n' | b'\r' | b';' | b'}') => break,
                        Some(b'/') => {
                            self.line_comment()?;
                            break;
                        }
                        _ => return None,
                    }
                }
                Some(_) => {
                    if ws == 0 {
                        return None;
                    }
                    let entry = self.entry()?;
                    node.entries_mut().push(entry);
                }
            }
        }
        if self.peek() == Some(b';') {
            self.i += 1;
        }
        node.set_span((start, end - start));
        Some(node)
    }

    fn entry(&mut self) -> Option<KdlEntry> {
        let start = self.i;
        let mut entry = if self.peek().is_some_and(is_ident_start) {
            let key = self.ident()?;
            if self.peek() != Some(b'=') {
                // A bare identifier used as a value: left to the crate.
                return None;
            }
            self.i += 1;
            let value = self.value()?;
            KdlEntry::new_prop(key, value)
        } else {
            KdlEntry::new(self.value()?)
        };
        if !self.boundary() {
            return None;
        }
        entry.set_span((start, self.i - start));
        Some(entry)
    }

    fn value(&mut self) -> Option<KdlValue> {
        match self.peek()? {
            b'"' => self.string(),
            b'#' => {
                let rest = &self.s[self.i..];
                let (value, len) = if rest.starts_with(b"#true") {
                    (true, 5)
                } else if rest.starts_with(b"#false") {
                    (false, 6)
                } else {
                    return None;
                };
                self.i += len;
                Some(KdlValue::Bool(value))
            }
            b'-' | b'0'..=b'9' => {
                let start = self.i;
                if self.peek() == Some(b'-') {
                    self.i += 1;
                }
                let digits = self.i;
                while self.peek().is_some_and(|b| b.is_ascii_digit()) {
                    self.i += 1;
                }
                let n = self.i - digits;
                // No digits, or a leading zero (`007`): left to the crate.
                if n == 0 || (n > 1 && self.s[digits] == b'0') {
                    return None;
                }
                self.text[start..self.i].parse::<i128>().ok().map(KdlValue::Integer)
            }
            _ => None,
        }
    }

    fn string(&mut self) -> Option<KdlValue> {
        // `"""` opens a multi-line string: left to the crate.
        if self.at(1) == Some(b'"') && self.at(2) == Some(b'"') {
            return None;
        }
        self.i += 1;
        let mut out = String::new();
        let mut run = self.i;
        loop {
            match self.peek()? {
                b'"' => {
                    out.push_str(&self.text[run..self.i]);
                    self.i += 1;
                    return Some(KdlValue::String(out));
                }
                b'\\' => {
                    out.push_str(&self.text[run..self.i]);
                    let c = match self.at(1)? {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        _ => return None,
                    };
                    out.push(c);
                    self.i += 2;
                    run = self.i;
                }
                b'\n' | b'\r' => return None,
                _ => self.i += 1,
            }
        }
    }
}

