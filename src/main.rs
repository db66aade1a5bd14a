//! The `bootstrap` binary: parses the command line, runs the command, and is
//! the only place that turns errors into a rendered report and an exit code.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use clap::Parser;
use miette::{Diagnostic, GraphicalReportHandler, GraphicalTheme};

use bootstrap::chain::ChainDiagnostic;
use bootstrap::cli::{self, Cli};
use bootstrap::{Error, exit};

fn handler() -> GraphicalReportHandler {
    let color = std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stderr().is_terminal();
    let theme = if color { GraphicalTheme::unicode() } else { GraphicalTheme::unicode_nocolor() };
    let width = std::env::var("COLUMNS").ok().and_then(|c| c.parse().ok()).unwrap_or(80);
    GraphicalReportHandler::new_themed(theme).with_width(width).with_links(false)
}

fn render(handler: &GraphicalReportHandler, diag: &dyn Diagnostic) -> String {
    let mut s = String::new();
    if handler.render_report(&mut s, diag).is_err() {
        s = format!("{diag}\n");
    }
    s
}

/// One diagnostic as JSON, for `--json` (docs/json.md).
fn diag_json(d: &ChainDiagnostic) -> serde_json::Value {
    let (line, column) = d
        .location()
        .map(|(src, span)| bootstrap::chain::model::line_col(src.inner(), span.offset()))
        .map_or((None, None), |(l, c)| (Some(l), Some(c)));
    serde_json::json!({
        "code": d.code().map(|c| c.to_string()),
        "message": d.to_string(),
        "file": d.file(),
        "line": line,
        "column": column,
        "help": d.help().map(|h| h.to_string()),
    })
}

fn report_error(err: &Error, json: bool) {
    let mut stderr = std::io::stderr().lock();
    let handler = handler();
    match err {
        Error::Chain(errors) => {
            for d in &errors.diagnostics {
                let _ = stderr.write_all(render(&handler, d).as_bytes());
            }
            let files: std::collections::BTreeSet<_> = errors.diagnostics.iter().filter_map(|d| d.file()).collect();
            let (n, f) = (errors.diagnostics.len(), files.len().max(1));
            let _ = writeln!(
                stderr,
                "error: {n} problem{} in {f} file{}; nothing was run. Fix them and run `bootstrap check` again.",
                if n == 1 { "" } else { "s" },
                if f == 1 { "" } else { "s" },
            );
            if json {
                let doc = serde_json::json!({
                    "ok": false,
                    "diagnostics": errors.diagnostics.iter().map(diag_json).collect::<Vec<_>>(),
                });
                println!("{doc:#}");
            }
        }
        other => {
            let _ = stderr.write_all(render(&handler, other).as_bytes());
            if json {
                let doc = serde_json::json!({
                    "ok": false,
                    "diagnostics": [{
                        "code": other.code().map(|c| c.to_string()),
                        "message": other.to_string(),
                        "help": other.help().map(|h| h.to_string()),
                    }],
                });
                println!("{doc:#}");
            }
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    match cli::run(&cli, &mut out) {
        Ok(()) => ExitCode::from(exit::OK),
        // A closed pipe (`bootstrap plan | head`) is the reader's choice, not a failure.
        Err(Error::Output(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::from(exit::OK),
        Err(err) => {
            drop(out);
            report_error(&err, cli.json);
            ExitCode::from(err.exit_code())
        }
    }
}
