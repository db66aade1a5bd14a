//! The `bootstrap` binary: parses the command line, runs the command, and is
//! the only place that turns errors into a rendered report and an exit code.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use clap::Parser;
use miette::{Diagnostic, GraphicalReportHandler, GraphicalTheme};

use bootstrap::cli::{self, Cli};
use bootstrap::{Error, exit};

fn colored() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stderr().is_terminal()
}

fn handler() -> GraphicalReportHandler {
    let color = colored();
    let theme = if color { GraphicalTheme::unicode() } else { GraphicalTheme::unicode_nocolor() };
    let width = std::env::var("COLUMNS").ok().and_then(|c| c.parse().ok()).unwrap_or(80);
    // Lines break only at spaces: digests, URLs and paths stay whole, so they can be copied.
    GraphicalReportHandler::new_themed(theme)
        .with_width(width)
        .with_links(false)
        .with_break_words(false)
        .with_word_separator(textwrap::WordSeparator::AsciiSpace)
        .with_word_splitter(textwrap::WordSplitter::NoHyphenation)
}

fn render(handler: &GraphicalReportHandler, diag: &dyn Diagnostic, color: bool) -> String {
    let mut s = String::new();
    if handler.render_report(&mut s, diag).is_err() {
        s = format!("{diag}\n");
    }
    escape_controls(&s, color)
}

/// Control characters as visible escapes (`\x1b`, `\u{9b}`), so that text
/// from a chain file, a name or a log cannot drive the terminal. With
/// `keep_colors`, `ESC [ … m` colour sequences (the report's own) stay.
fn escape_controls(s: &str, keep_colors: bool) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c == '\u{1b}' && keep_colors {
            let rest = &s[i + 1..];
            let params = rest.strip_prefix('[').map(|r| r.bytes().take_while(|b| b.is_ascii_digit() || *b == b';').count());
            if let Some(n) = params.filter(|&n| rest.as_bytes().get(n + 1) == Some(&b'm')) {
                out.push_str(&s[i..i + n + 3]);
                for _ in 0..n + 2 {
                    chars.next();
                }
                continue;
            }
        }
        match c {
            '\n' | '\t' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{7f}' => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if (0x80..0xa0).contains(&(c as u32)) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// One diagnostic as JSON, for `--json` (docs/json.md): where its first
/// label points, when it has one.
fn diag_json(d: &dyn Diagnostic) -> serde_json::Value {
    let at = d.labels().and_then(|mut l| l.next()).and_then(|label| {
        let contents = d.source_code()?.read_span(label.inner(), 0, 0).ok()?;
        Some((contents.name().map(str::to_string), contents.line() + 1, contents.column() + 1))
    });
    let (file, line, column) = at.map_or((None, None, None), |(f, l, c)| (f, Some(l), Some(c)));
    serde_json::json!({
        "code": d.code().map(|c| c.to_string()),
        "message": d.to_string(),
        "file": file,
        "line": line,
        "column": column,
        "help": d.help().map(|h| h.to_string()),
    })
}

/// The diagnostics an error is made of, and the closing line after them.
fn parts(err: &Error) -> (Vec<&dyn Diagnostic>, Option<String>) {
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    match err {
        Error::Chain(errors) => {
            let files: std::collections::BTreeSet<_> = errors.diagnostics.iter().filter_map(|d| d.file()).collect();
            let n = errors.diagnostics.len();
            let line = format!(
                "error: {} in {}; nothing was run. Fix them and run `bootstrap check` again.",
                plural(n, "problem"),
                plural(files.len().max(1), "file")
            );
            (errors.diagnostics.iter().map(|d| d as &dyn Diagnostic).collect(), Some(line))
        }
        Error::Fetch(f) | Error::Build(bootstrap::build::BuildError::Fetch(f)) => {
            (f.errors.iter().map(|d| d as &dyn Diagnostic).collect(), Some(format!("error: {f}")))
        }
        Error::Build(bootstrap::build::BuildError::Missing(m)) => {
            let seeds = m.seeds.iter().map(|d| d as &dyn Diagnostic);
            let line = format!("error: {m}. {}.", capitalized(bootstrap::build::error::REMEMBER_HELP));
            (seeds.chain(m.sources.iter().map(|d| d as &dyn Diagnostic)).collect(), Some(line))
        }
        Error::Build(bootstrap::build::BuildError::Failed(f)) => {
            let blocked = if f.blocked.is_empty() {
                String::new()
            } else {
                format!("; not run because of it: {}", f.blocked.join(", "))
            };
            let line = format!("error: {} step(s) failed{blocked}", f.failures.len());
            (f.failures.iter().map(|d| d as &dyn Diagnostic).collect(), Some(line))
        }
        other => (vec![other as &dyn Diagnostic], None),
    }
}

fn capitalized(s: &str) -> String {
    let mut c = s.chars();
    c.next().map_or_else(String::new, |f| f.to_uppercase().chain(c).collect())
}

fn report_error(err: &Error, json: bool) {
    let mut stderr = std::io::stderr().lock();
    let handler = handler();
    let (diags, closing) = parts(err);
    for d in &diags {
        let _ = stderr.write_all(render(&handler, *d, colored()).as_bytes());
    }
    if let Some(line) = closing {
        let _ = writeln!(stderr, "{line}");
    }
    if json {
        let doc = serde_json::json!({
            "ok": false,
            "diagnostics": diags.iter().map(|d| diag_json(*d)).collect::<Vec<_>>(),
        });
        println!("{doc:#}");
    }
}

/// Standard output, remembering whether the command wrote anything, and
/// (but for `hash`, whose manifest is bytes) escaping control characters
/// other than newlines and tabs, as [`escape_controls`] does for reports.
struct Tracked<W> {
    inner: W,
    wrote: bool,
    escape: bool,
}

impl<W: Write> Write for Tracked<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.wrote |= !buf.is_empty();
        if !self.escape || !buf.iter().any(|&b| (b < 0x20 && b != b'\n' && b != b'\t') || b == 0x7f) {
            return self.inner.write(buf);
        }
        for &b in buf {
            if (b < 0x20 && b != b'\n' && b != b'\t') || b == 0x7f {
                write!(self.inner, "\\x{b:02x}")?;
            } else {
                self.inner.write_all(&[b])?;
            }
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Ctrl-C and SIGTERM: blocked in every thread (threads made later inherit
/// the mask; children get a clean one) and taken by one thread, which sets
/// the token the backends watch, waits (a minute at most) while they kill
/// and remove what their running steps left outside the store, then ends
/// the process with 130. Without a way to block them the defaults stay.
fn watch_signals() -> bootstrap::exec::cancel::Cancel {
    let cancel = bootstrap::exec::cancel::Cancel::default();
    // SAFETY: plain libc calls on a signal set local to this function.
    let set = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        if libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
            return cancel;
        }
        set
    };
    let token = cancel.clone();
    let watcher = std::thread::Builder::new().name("signals".into()).spawn(move || {
        let mut sig: libc::c_int = 0;
        // SAFETY: `set` is a valid, initialised signal set.
        while unsafe { libc::sigwait(&set, &mut sig) } != 0 {}
        token.cancel();
        let busy = token.busy_count();
        if busy > 0 {
            eprintln!("interrupted: stopping {busy} running step(s) and removing what they left outside the store");
        }
        token.wait_idle(std::time::Duration::from_secs(60));
        std::process::exit(i32::from(exit::INTERRUPTED));
    });
    if watcher.is_err() {
        // No thread to take them: let them act as they did.
        // SAFETY: as above.
        unsafe { libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut()) };
    }
    cancel
}

fn main() -> ExitCode {
    // The local backend's sandbox process: a hidden entry point, not a command.
    let args: Vec<String> = std::env::args().collect();
    if args.len() == 3 && args[1] == bootstrap::exec::sandbox::HELPER_ARG {
        return ExitCode::from(bootstrap::exec::sandbox::helper_main(&args[2]).clamp(0, 255) as u8);
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            let _ = e.print();
            // --help and --version are answers; anything else is a usage error (exit 1).
            let asked = matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion);
            return ExitCode::from(if asked { exit::OK } else { exit::BAD_INPUT });
        }
    };
    let cancel = watch_signals();
    let stdout = std::io::stdout();
    let escape = !matches!(cli.command, cli::Cmd::Hash(_));
    let mut out = Tracked { inner: std::io::BufWriter::new(stdout.lock()), wrote: false, escape };
    // What is still buffered must reach stdout too: a full disk is a failure.
    let result = cli::run(&cli, cancel, &mut out).and_then(|()| out.flush().map_err(Error::Output));
    match result {
        Ok(()) => ExitCode::from(exit::OK),
        // A closed pipe (`bootstrap plan | head`) is the reader's choice, not a failure.
        Err(Error::Output(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::from(exit::OK),
        Err(err) => {
            // A command that already wrote its JSON report (with `"ok": false`)
            // keeps stdout to that one document.
            let json = cli.json && !out.wrote;
            drop(out);
            report_error(&err, json);
            ExitCode::from(err.exit_code())
        }
    }
}
