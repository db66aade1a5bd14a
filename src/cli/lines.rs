//! Progress as plain lines on stderr, for a run whose stderr is not a
//! terminal (a CI log, a file), where progress bars draw nothing: a line
//! when a step starts running on a seed and when it settles there, and,
//! every [`HEARTBEAT`], one line naming each step still running and for
//! how long, so that a step silent for many minutes (regenerating nyacc's
//! tables, mescc compiling tcc) still shows that the run is alive.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How often the steps still running are listed.
pub(crate) const HEARTBEAT: Duration = Duration::from_secs(60);

/// The running steps of one run, and whether lines are printed at all.
pub(crate) struct Lines {
    on: bool,
    running: Mutex<BTreeMap<String, Instant>>,
}

impl Lines {
    /// Lines are printed only when `on` (stderr is not a terminal, no `-q`,
    /// no `--json`); otherwise every call is a no-op.
    pub(crate) fn new(on: bool) -> Lines {
        Lines { on, running: Mutex::new(BTreeMap::new()) }
    }

    /// `who` (e.g. `nyacc-tables on alpine`) starts running.
    pub(crate) fn started(&self, who: &str) {
        if self.on {
            self.running.lock().unwrap_or_else(|e| e.into_inner()).insert(who.to_string(), Instant::now());
            eprintln!("  running  {who}");
        }
    }

    /// `who` settled as `word` (`built`, `cached`, `FAILED`, `blocked`).
    pub(crate) fn settled(&self, who: &str, word: &str) {
        if self.on {
            let began = self.running.lock().unwrap_or_else(|e| e.into_inner()).remove(who);
            match began {
                Some(t) => eprintln!("  {word:8} {who} ({})", human(t.elapsed())),
                None => eprintln!("  {word:8} {who}"),
            }
        }
    }

    /// The line listing what is still running, if anything is.
    fn still_running(&self) -> Option<String> {
        let running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        if running.is_empty() {
            return None;
        }
        let list: Vec<String> = running.iter().map(|(who, t)| format!("{who} ({})", human(t.elapsed()))).collect();
        Some(format!("  still running: {}", list.join(", ")))
    }

    /// Runs `f`, listing the running steps every [`HEARTBEAT`] meanwhile.
    pub(crate) fn beating<T>(&self, f: impl FnOnce() -> T) -> T {
        if !self.on {
            return f();
        }
        let done = AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| {
                let mut last = Instant::now();
                while !done.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(200));
                    if last.elapsed() >= HEARTBEAT {
                        last = Instant::now();
                        if let Some(line) = self.still_running() {
                            eprintln!("{line}");
                        }
                    }
                }
            });
            let out = f();
            done.store(true, Ordering::Relaxed);
            out
        })
    }
}

/// `42s`, `4m 10s`, `1h 02m`.
fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {:02}s", s / 60, s % 60),
        _ => format!("{}h {:02}m", s / 3600, s % 3600 / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(human(Duration::from_secs(42)), "42s");
        assert_eq!(human(Duration::from_secs(250)), "4m 10s");
        assert_eq!(human(Duration::from_secs(3720)), "1h 02m");
    }

    #[test]
    fn only_what_still_runs_is_listed() {
        let l = Lines::new(true);
        assert_eq!(l.still_running(), None);
        l.started("a on x");
        l.started("b on y");
        l.settled("a on x", "built");
        let line = l.still_running().unwrap();
        assert!(line.starts_with("  still running: b on y ("), "{line}");
        assert!(!line.contains("a on x"), "{line}");
    }

    #[test]
    fn off_means_nothing_is_tracked() {
        let l = Lines::new(false);
        l.started("a on x");
        assert_eq!(l.still_running(), None);
    }
}
