//! `bootstrap fetch [STAGE|STEP]`: get every source the target's steps use
//! (all declared sources without a target) into the store, checked and
//! unpacked. Progress bars on stderr when it is a terminal.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use super::{Context, write_json};
use super::Error;
use crate::chain::Source;
use crate::chain::parse::parse_duration;
use crate::fetch::{self, Fetched, Origin, Progress};
use crate::plan::Plan;
use crate::store::{LockMode, human_size};

/// Arguments of `fetch`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A stage or step: the sources of it and of everything it needs. Default: every declared source.
    pub target: Option<String>,
    /// Give up on a URL after this long without an answer or a byte ("30s", "2m").
    #[arg(long, default_value = "60s", value_parser = duration, env = "BOOTSTRAP_FETCH_TIMEOUT")]
    pub timeout: Duration,
}

fn duration(s: &str) -> Result<Duration, String> {
    parse_duration(s).map(Duration::from_secs)
}

/// Progress bars, one per source in flight; lines for notes.
pub(crate) struct Bars {
    multi: MultiProgress,
    bars: Mutex<HashMap<String, ProgressBar>>,
    verbose: bool,
}

impl Bars {
    /// Bars on stderr when it is a terminal and not `-q`; hidden otherwise.
    pub(crate) fn new(cx: &Context) -> Self {
        let show = std::io::stderr().is_terminal() && cx.verbosity >= 0;
        Bars {
            multi: MultiProgress::with_draw_target(if show { ProgressDrawTarget::stderr() } else { ProgressDrawTarget::hidden() }),
            bars: Mutex::default(),
            verbose: cx.verbosity > 0,
        }
    }

    fn bar(&self, id: &str) -> Option<ProgressBar> {
        self.bars.lock().ok()?.get(id).cloned()
    }
}

impl Progress for Bars {
    fn start(&self, id: &str, total: Option<u64>, done: u64) {
        let Ok(mut bars) = self.bars.lock() else { return };
        let bar = bars.entry(id.to_string()).or_insert_with(|| {
            let style = ProgressStyle::with_template("{prefix:24} {bar:30} {bytes:>10}/{total_bytes:10} {bytes_per_sec:>12}")
                .unwrap_or_else(|_| ProgressStyle::default_bar());
            let b = self.multi.add(ProgressBar::new(0).with_style(style));
            b.set_prefix(id.to_string());
            b
        });
        bar.set_length(total.unwrap_or(0));
        bar.set_position(done);
    }
    fn advance(&self, id: &str, done: u64) {
        if let Some(b) = self.bar(id) {
            b.set_position(done);
        }
    }
    fn note(&self, id: &str, message: &str) {
        if self.verbose {
            let _ = self.multi.println(format!("{id}: {message}"));
        }
    }
    fn finish(&self, id: &str) {
        if let Some(b) = self.bars.lock().ok().and_then(|mut m| m.remove(id)) {
            b.finish_and_clear();
        }
    }
}

#[derive(Serialize)]
struct Report<'a> {
    ok: bool,
    sources: &'a [Fetched],
    failed: Vec<Failed>,
}

/// A source that could not be fetched, in the JSON report.
#[derive(Serialize)]
struct Failed {
    code: Option<String>,
    message: String,
}

/// The sources a target needs, in declaration order.
fn wanted<'c>(chain: &'c crate::chain::Chain, target: Option<&str>) -> Result<Vec<&'c Source>, Error> {
    let Some(target) = target else { return Ok(chain.sources.iter().collect()) };
    Ok(crate::plan::sources_of(chain, &Plan::new(chain).select(Some(target))?))
}

fn write_table(rows: &[Fetched], out: &mut dyn Write) -> std::io::Result<()> {
    let w = rows.iter().map(|f| f.name.len()).max().unwrap_or(6).max(6);
    for f in rows {
        let (state, from) = match &f.origin {
            Origin::Store => ("present", format!("in the store (from {})", f.from)),
            Origin::Fetched(loc) => ("fetched", format!("from {loc}")),
        };
        let size = f.size.map_or_else(|| "-".to_string(), human_size);
        writeln!(out, "  {state:8} {:<w$}  {:>10}  {:<6}  {from}", f.name, size, f.pin.as_str())?;
    }
    Ok(())
}

/// Warns on stderr about what did not stop a source: pins that disagree
/// and, when `attempts`, places that failed before one worked.
pub(crate) fn warn(fetched: &[Fetched], attempts: bool) {
    for f in fetched {
        if attempts {
            for a in &f.failed_attempts {
                eprintln!("warning: source `{}`: {} failed ({}); another place had the pinned content", f.name, a.location, a.problem);
            }
        }
        for w in &f.warnings {
            eprintln!("warning: source `{}`: {w}", f.name);
        }
    }
}

/// Runs `fetch`.
pub fn run(cx: &Context, args: &Args, out: &mut dyn Write) -> Result<(), Error> {
    let chain = cx.load()?;
    let sources = wanted(&chain, args.target.as_deref())?;
    let store = cx.open_store(LockMode::Exclusive)?;
    let opts = cx.fetch_options(args.timeout);
    let bars = Bars::new(cx);
    let result = fetch::fetch(&chain, &sources, &store, &opts, &bars);
    let fetched = match &result {
        Ok(f) => f.as_slice(),
        Err(e) => e.fetched.as_slice(),
    };
    warn(fetched, true);
    if cx.json {
        let failed = match &result {
            Ok(_) => Vec::new(),
            Err(e) => e
                .errors
                .iter()
                .map(|d| Failed { code: miette::Diagnostic::code(d).map(|c| c.to_string()), message: d.to_string() })
                .collect(),
        };
        write_json(out, &Report { ok: result.is_ok(), sources: fetched, failed })?;
    } else if cx.verbosity >= 0 {
        write_table(fetched, out).map_err(Error::Output)?;
        let new: Vec<&Fetched> = fetched.iter().filter(|f| matches!(f.origin, Origin::Fetched(_))).collect();
        let bytes: u64 = new.iter().filter_map(|f| f.size).sum();
        writeln!(
            out,
            "{} source(s): {} fetched ({}), {} already in the store",
            fetched.len(),
            new.len(),
            human_size(bytes),
            fetched.len() - new.len()
        )
        .map_err(Error::Output)?;
    }
    result.map(drop).map_err(Error::from)
}
