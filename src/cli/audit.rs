//! `bootstrap audit [STAGE|STEP] [--step] [--format text|markdown|json]`:
//! the chain in execution order, one step at a time, as the auditor reads it
//! ([`crate::audit::report`]). With `--step` on a terminal it pages: Enter
//! (or space, n) the next step, b back, s the step's KDL source with line
//! numbers, q quit. Otherwise, or without a terminal, the whole report.

use std::io::{IsTerminal, Read, Write};

use super::{Context, write_json};
use super::Error;
use crate::audit::History;
use crate::audit::report::{Audit, SeedDigest, StageAudit, StepAudit, audit};
use crate::store::LockMode;

/// Report formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Plain text, one block per step.
    Text,
    /// Markdown: a heading per stage and per step.
    Markdown,
    /// One JSON document (docs/json.md).
    Json,
}

/// Arguments of `audit`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A stage (its steps) or a step (that step) [default: the whole chain].
    pub target: Option<String>,
    /// Page through the steps on a terminal (Enter: next, b: back, s: source, q: quit).
    #[arg(long)]
    pub step: bool,
    /// The report's format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
}

/// Runs `audit`.
pub fn run(cx: &Context, args: &Args, out: &mut dyn Write) -> Result<(), Error> {
    let chain = cx.load()?;
    let trust = cx.session.trust()?;
    let selected: Vec<crate::chain::StepId> = match &args.target {
        None => chain.step_ids().collect(),
        Some(t) => match crate::plan::stage_target(&chain, t) {
            Ok(stage) => chain.steps_in(stage).collect(),
            Err(e) => vec![chain.step_id(t).ok_or(e)?],
        },
    };
    let store = cx.open_store(LockMode::Shared)?;
    let history = History::load(&chain, &store);
    let report = audit(&history, &store, trust.as_ref(), &selected);
    if args.step && !cx.json && std::io::stdin().is_terminal() && std::io::stdout().is_terminal() {
        return page(&report).map_err(Error::Output);
    }
    if cx.json || args.format == Format::Json {
        return write_json(out, &report);
    }
    let text = match args.format {
        Format::Markdown => markdown(&report),
        _ => {
            // The stage's line once, before its first step.
            let steps = report.steps();
            let pages: Vec<String> = steps
                .iter()
                .enumerate()
                .map(|(i, (s, st))| text_page(s, st, &report, i == 0 || !std::ptr::eq(steps[i - 1].0, *s)))
                .collect();
            pages.join("\n")
        }
    };
    out.write_all(text.as_bytes()).map_err(Error::Output)
}

/// `busybox blake3:… · debian blake3:…`, or one digest when all agree.
/// What ran the step, once when it was the same on every seed.
fn ran_by(v: &[crate::audit::report::RanBy]) -> Option<String> {
    let first = v.first()?.describe();
    if v.len() > 1 && v.iter().all(|r| r.describe() == first) {
        return Some(format!("{first} (on every seed)"));
    }
    Some(v.iter().map(|r| format!("{}: {}", r.seed, r.describe())).collect::<Vec<_>>().join(" · "))
}

fn per_seed(v: &[SeedDigest]) -> String {
    let shown = |d: &Option<crate::hash::Blake3>| d.map_or_else(|| "-".to_string(), |d| d.to_string());
    match v {
        [] => "-".to_string(),
        [first, rest @ ..] if !rest.is_empty() && rest.iter().all(|x| x.digest == first.digest) && first.digest.is_some() => {
            format!("{} (on every seed)", shown(&first.digest))
        }
        _ => v.iter().map(|x| format!("{} {}", x.seed, shown(&x.digest))).collect::<Vec<_>>().join(" · "),
    }
}

/// One line on the stage: verdict, seeds, signatures.
fn stage_line(s: &StageAudit) -> String {
    let seeds: Vec<&str> = s.seeds.iter().map(|x| x.name.as_str()).collect();
    let on = if seeds.is_empty() { String::new() } else { format!(" on {}", seeds.join(", ")) };
    let stale = if s.current || s.verdict == "never verified" { "" } else { " (stale: the stage changed since)" };
    let signed = match &s.signatures {
        None => String::new(),
        Some(g) => match g.shortfall() {
            None => format!(" · signed: {}", g.rules.iter().map(|r| r.describe()).collect::<Vec<_>>().join("; ")),
            Some(short) => format!(" · NOT signed as required: {short}"),
        },
    };
    format!("{}: {}{on}{stale}{signed}", s.stage, s.verdict)
}

/// The block of one step, after its stage's line when `with_stage`.
fn text_page(stage: &StageAudit, st: &StepAudit, report: &Audit, with_stage: bool) -> String {
    let all = report.steps();
    let pos = all.iter().position(|(_, x)| std::ptr::eq(*x, st)).map_or(0, |p| p + 1);
    let mut o = String::new();
    let mut line = |k: &str, v: String| o.push_str(&format!("  {k:<9} {v}\n"));
    let head = format!("── {} ({}, {pos} of {}) · {}:{} ", st.step, st.stage, all.len(), st.file, st.line);
    let rule = "─".repeat(78usize.saturating_sub(head.chars().count()));
    let mut page = if with_stage { format!("{}\n{head}{rule}\n", stage_line(stage)) } else { format!("{head}{rule}\n") };
    if let Some(d) = &st.description {
        page.push_str(&format!("  {d}\n"));
    }
    line("root", st.root.clone());
    if st.sources.is_empty() {
        line("sources", "(none)".into());
    }
    for s in &st.sources {
        let stored = if s.in_store { "in the store" } else { "not fetched" };
        line("source", format!("{} ({stored})", s.name));
        if let Some(sha) = &s.sha256 {
            line("", format!("  pinned sha256:{sha}"));
        }
        if let Some(tree) = &s.tree {
            line("", format!("  pinned tree {tree}"));
        }
        if let Some(m) = &s.matched {
            line("", format!("  matched {}, from {}", m.pin.as_str(), m.from));
        }
        for u in &s.urls {
            line("", format!("  {u}"));
        }
        if let Some(g) = &s.git {
            line("", format!("  {}{}", g.describe(), if g.submodules { " with submodules" } else { "" }));
        }
        if let Some(p) = &s.path {
            line("", format!("  {p} (in the chain directory)"));
        }
    }
    if st.needs.is_empty() {
        line("needs", "(none)".into());
    }
    for n in &st.needs {
        line("needs", format!("{}: {}", n.step, per_seed(&n.outputs)));
    }
    for argv in &st.run {
        line("run", argv.iter().map(|a| shell_quote(a)).collect::<Vec<_>>().join(" "));
    }
    if let Some((shell, script)) = &st.script {
        line("script", format!("({shell} -e -c)"));
        for l in script.lines() {
            line("", format!("| {l}"));
        }
    }
    if let Some(i) = &st.interpreted {
        line("script", format!("(in {}, run as: {})", i.file, interpreted_argv(i)));
        for l in i.script.lines() {
            line("", format!("| {l}"));
        }
    }
    line("env", if st.env.is_empty() { "(only the sandbox's own)".into() } else { st.env.iter().map(|(k, v)| format!("{k}={}", shell_quote(v))).collect::<Vec<_>>().join(" ") });
    line("workdir", st.workdir.clone().unwrap_or_else(|| "(the default)".into()));
    if let Some(d) = &st.destdir {
        line("destdir", format!("{d} (outputs are read from under it)"));
    }
    if let Some(t) = st.timeout_secs {
        line("timeout", format!("{t}s"));
    }
    for out in &st.outputs {
        let pin = out.sha256.as_deref().map_or_else(|| "not pinned".to_string(), |p| format!("pinned sha256:{p}"));
        line("output", format!("{} ({pin})", out.path));
    }
    line("observed", per_seed(&st.observed));
    if let Some(by) = ran_by(&st.ran_by) {
        line("ran by", by);
    }
    let stale = if st.current || st.verdict == "never verified" { "" } else { " (stale)" };
    line("verdict", format!("{}{stale}{}", st.verdict, if st.unverified { " · commands not yet confirmed upstream" } else { "" }));
    for r in &st.reasons {
        line("", format!("  {r}"));
    }
    page.push_str(&o);
    page
}

/// The command an interpreted script runs, quoted as a shell would need it.
fn interpreted_argv(i: &crate::audit::report::InterpretedAudit) -> String {
    i.interpreter.iter().chain([&i.file]).map(|a| shell_quote(a)).collect::<Vec<_>>().join(" ")
}

/// An argument as a POSIX shell would need it written.
fn shell_quote(s: &str) -> String {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "/._-=+:,@%".contains(c)) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// The report as Markdown.
fn markdown(report: &Audit) -> String {
    let mut o = format!("# Audit of chain `{}`\n", report.chain);
    for s in &report.stages {
        o.push_str(&format!("\n## {}\n\n{}\n", s.stage, stage_line(s)));
        if let Some(d) = &s.description {
            o.push_str(&format!("\n{d}\n"));
        }
        for st in &s.steps {
            o.push_str(&format!("\n### {}\n\n", st.step));
            if let Some(d) = &st.description {
                o.push_str(&format!("{d}\n\n"));
            }
            o.push_str(&format!("- declared in `{}` line {}\n- root: `{}`\n", st.file, st.line, st.root));
            for src in &st.sources {
                let stored = if src.in_store { "in the store" } else { "not fetched" };
                let mut pins = Vec::new();
                if let Some(sha) = &src.sha256 {
                    pins.push(format!("sha256 `{sha}`"));
                }
                if let Some(tree) = &src.tree {
                    pins.push(format!("tree `{tree}`"));
                }
                let mut places: Vec<String> = src.urls.clone();
                if let Some(g) = &src.git {
                    places.push(format!("{}{}", g.describe(), if g.submodules { " with submodules" } else { "" }));
                }
                if let Some(p) = &src.path {
                    places.push(format!("`{p}` in the chain directory"));
                }
                o.push_str(&format!("- source `{}`: {} ({stored}), from {}\n", src.name, pins.join(", "), places.join(", ")));
                if let Some(m) = &src.matched {
                    o.push_str(&format!("  - matched its {} pin; its bytes came from {}\n", m.pin.as_str(), m.from));
                }
            }
            for n in &st.needs {
                o.push_str(&format!("- needs `{}`: {}\n", n.step, per_seed(&n.outputs)));
            }
            if !st.env.is_empty() {
                o.push_str(&format!("- env: {}\n", st.env.iter().map(|(k, v)| format!("`{k}={v}`")).collect::<Vec<_>>().join(", ")));
            }
            if let Some(w) = &st.workdir {
                o.push_str(&format!("- workdir: `{w}`\n"));
            }
            if let Some(d) = &st.destdir {
                o.push_str(&format!("- destdir: `{d}` (outputs are read from under it)\n"));
            }
            for out in &st.outputs {
                let pin = out.sha256.as_deref().map_or_else(|| "not pinned".to_string(), |p| format!("pinned sha256 `{p}`"));
                o.push_str(&format!("- output `{}`: {pin}\n", out.path));
            }
            o.push_str(&format!("- observed: {}\n", per_seed(&st.observed)));
            if let Some(by) = ran_by(&st.ran_by) {
                o.push_str(&format!("- ran by: {by}\n"));
            }
            o.push_str(&format!("- verdict: **{}**\n", st.verdict));
            for r in &st.reasons {
                o.push_str(&format!("  - {r}\n"));
            }
            if let Some(i) = &st.interpreted {
                o.push_str(&format!("- script run as: `{}`, the script in that file\n", interpreted_argv(i)));
            }
            o.push_str("\n```sh\n");
            for argv in &st.run {
                o.push_str(&format!("{}\n", argv.iter().map(|a| shell_quote(a)).collect::<Vec<_>>().join(" ")));
            }
            if let Some(script) = st.script.as_ref().map(|s| &s.1).or(st.interpreted.as_ref().map(|i| &i.script)) {
                o.push_str(script.trim_end());
                o.push('\n');
            }
            o.push_str("```\n");
        }
    }
    o
}

/// The step's KDL source with line numbers.
fn source_page(st: &StepAudit) -> String {
    let (first, text) = &st.source_text;
    let mut o = format!("{}:{}\n", st.file, first);
    for (i, l) in text.lines().enumerate() {
        o.push_str(&format!("{:>5} │ {l}\n", first + i));
    }
    o
}

/// Restores the terminal's modes when dropped.
struct Raw {
    saved: rustix::termios::Termios,
}

impl Raw {
    fn enter() -> std::io::Result<Raw> {
        use rustix::termios::{LocalModes, OptionalActions, tcgetattr, tcsetattr};
        let stdin = std::io::stdin();
        let saved = tcgetattr(&stdin)?;
        let mut raw = saved.clone();
        // Keys one at a time, unechoed; Ctrl-C arrives as a key (and quits)
        // so the modes are always restored.
        raw.local_modes.remove(LocalModes::ICANON | LocalModes::ECHO | LocalModes::ISIG);
        tcsetattr(&stdin, OptionalActions::Now, &raw)?;
        Ok(Raw { saved })
    }
}

impl Drop for Raw {
    fn drop(&mut self) {
        let _ = rustix::termios::tcsetattr(std::io::stdin(), rustix::termios::OptionalActions::Now, &self.saved);
    }
}

/// Pages through the report on the terminal.
fn page(report: &Audit) -> std::io::Result<()> {
    let steps = report.steps();
    let mut tty = std::io::stdout();
    if steps.is_empty() {
        return writeln!(tty, "nothing to audit");
    }
    let _raw = Raw::enter()?;
    let mut i = 0usize;
    let mut showing_source = false;
    let mut note = "";
    loop {
        let (stage, st) = steps[i];
        let body = if showing_source { source_page(st) } else { text_page(stage, st, report, true) };
        // Clear the screen, the page, then the keys.
        write!(tty, "\x1b[2J\x1b[H{}", body.replace('\n', "\r\n"))?;
        write!(tty, "\r\n[{} of {}] Enter: next · b: back · s: {} · q: quit{note}\r\n", i + 1, steps.len(), if showing_source { "the step" } else { "source" })?;
        tty.flush()?;
        note = "";
        let mut key = [0u8; 1];
        if std::io::stdin().read(&mut key)? == 0 {
            return Ok(());
        }
        match key[0] {
            b'\n' | b'\r' | b' ' | b'n' | b'j' => {
                if i + 1 < steps.len() {
                    i += 1;
                    showing_source = false;
                } else {
                    note = " — this is the last step";
                }
            }
            b'b' | b'p' | b'k' => {
                if i > 0 {
                    i -= 1;
                    showing_source = false;
                } else {
                    note = " — this is the first step";
                }
            }
            b's' => showing_source = !showing_source,
            b'q' | 3 | 4 => {
                writeln!(tty, "\r")?;
                return Ok(());
            }
            _ => note = " — keys: Enter, b, s, q",
        }
    }
}
