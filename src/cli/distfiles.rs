//! `bootstrap distfiles add|remove|list`: the distfiles directories
//! remembered in the state directory's settings
//! ([`crate::chain::settings`]). Remembered ones are looked in after those
//! given with `--distfiles`.

use std::io::Write;
use std::path::PathBuf;

use super::seed::{done, save};
use super::{Context, write_json};
use super::Error;
use crate::chain::settings::{self, SettingsError};

/// `distfiles` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Cmd {
    /// Remember a distfiles directory (as an absolute path): later commands look in it without --distfiles.
    Add(DirArg),
    /// Forget a remembered distfiles directory.
    Remove(DirArg),
    /// The distfiles directories a command looks in, in order: --distfiles first, then remembered ones.
    List,
}

/// The directory argument.
#[derive(Debug, clap::Args)]
pub struct DirArg {
    /// The directory.
    pub dir: PathBuf,
}

/// Runs a `distfiles` subcommand.
pub fn run(cx: &Context, cmd: &Cmd, out: &mut dyn Write) -> Result<(), Error> {
    let mut s = cx.settings.clone();
    match cmd {
        Cmd::Add(a) => {
            let bad = |reason: String| SettingsError::Location {
                what: "distfiles directory".into(),
                path: a.dir.clone(),
                reason,
                help: "give a directory that exists and that you may read".into(),
            };
            let abs = std::fs::canonicalize(&a.dir).map_err(|e| bad(e.to_string()))?;
            std::fs::read_dir(&abs).map_err(|e| bad(e.to_string()))?;
            if !s.distfiles.contains(&abs) {
                s.distfiles.push(abs.clone());
            }
            save(cx, &s)?;
            done(cx, out, &format!("distfiles: remembered {}", abs.display()), &s)
        }
        Cmd::Remove(a) => {
            // The directory may be gone by now: match it as given, or as it resolves.
            let abs = std::fs::canonicalize(&a.dir).or_else(|_| std::path::absolute(&a.dir)).unwrap_or_else(|_| a.dir.clone());
            let Some(at) = s.distfiles.iter().position(|d| *d == abs || *d == a.dir) else {
                let held: Vec<String> = s.distfiles.iter().map(|d| d.display().to_string()).collect();
                let help = if held.is_empty() { "no distfiles directory is remembered".into() } else { format!("remembered: {}", held.join(", ")) };
                return Err(SettingsError::NotRemembered { what: format!("distfiles directory {}", a.dir.display()), path: settings::path(&cx.state), help }.into());
            };
            let gone = s.distfiles.remove(at);
            save(cx, &s)?;
            done(cx, out, &format!("distfiles: forgot {}", gone.display()), &s)
        }
        Cmd::List => {
            if cx.json {
                let dirs: Vec<String> = cx.distfiles.iter().map(|d| d.display().to_string()).collect();
                return write_json(out, &dirs);
            }
            for d in &cx.distfiles {
                let how = if s.distfiles.contains(d) { "remembered" } else { "--distfiles" };
                writeln!(out, "  {}  ({how})", d.display()).map_err(Error::Output)?;
            }
            Ok(())
        }
    }
}
