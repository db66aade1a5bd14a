//! The command line: global options, one file per subcommand.
//!
//! Each subcommand gets a [`Context`] (the chain directory, the state
//! directory, output mode) and writes its result to the writer it is given;
//! it returns an [`Error`] instead of printing one, so `main` alone decides
//! how errors look and which exit code they get.

pub mod check;
pub mod graph;
pub mod plan;

use std::io::Write;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::Error;
use crate::chain::{self, Chain, LoadOptions, ParseCache};

/// bootstrap: prove a toolchain comes from source, stage by stage, on independent seed distros.
#[derive(Debug, Parser)]
#[command(name = "bootstrap", version, about, max_term_width = 100)]
pub struct Cli {
    /// The chain directory (holding chain/chain.kdl).
    #[arg(short = 'C', long = "directory", value_name = "DIR", global = true, default_value = ".")]
    pub dir: PathBuf,
    /// The state directory [default: DIR/.bootstrap].
    #[arg(long, value_name = "DIR", global = true, env = "BOOTSTRAP_STATE")]
    pub state: Option<PathBuf>,
    /// Print one JSON document on stdout (shapes in docs/json.md).
    #[arg(long, global = true)]
    pub json: bool,
    /// Say more.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Say less.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// The command.
    #[command(subcommand)]
    pub command: Cmd,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Load and validate the chain; summary of stages, steps, sources.
    Check(check::Args),
    /// Execution order of a stage or step and all it needs.
    Plan(plan::Args),
    /// The needs graph as Graphviz dot or JSON.
    Graph(graph::Args),
}

/// What every subcommand gets.
#[derive(Debug)]
pub struct Context {
    /// The chain directory.
    pub dir: PathBuf,
    /// The state directory.
    pub state: PathBuf,
    /// JSON output requested.
    pub json: bool,
    /// Verbosity: -1 quiet, 0 normal, 1+ verbose.
    pub verbosity: i8,
}

impl Context {
    /// Builds the context from the parsed command line.
    pub fn from_cli(cli: &Cli) -> Self {
        let state = cli.state.clone().unwrap_or_else(|| cli.dir.join(".bootstrap"));
        let verbosity = if cli.quiet { -1 } else { cli.verbose.min(100) as i8 };
        Context { dir: cli.dir.clone(), state, json: cli.json, verbosity }
    }

    /// Loads the chain, using the parse cache under the state directory.
    pub fn load(&self) -> Result<Chain, Error> {
        let opts = LoadOptions { cache: Some(ParseCache::new(self.state.join("cache").join("parse"))) };
        Ok(chain::load_dir(&self.dir, &opts)?)
    }
}

/// Runs the command, writing its output to `out`.
pub fn run(cli: &Cli, out: &mut dyn Write) -> Result<(), Error> {
    let cx = Context::from_cli(cli);
    let result = match &cli.command {
        Cmd::Check(args) => check::run(&cx, args, out),
        Cmd::Plan(args) => plan::run(&cx, args, out),
        Cmd::Graph(args) => graph::run(&cx, args, out),
    };
    result?;
    out.flush().map_err(Error::Output)
}

/// Writes a JSON document and a newline.
pub(crate) fn write_json<T: serde::Serialize>(out: &mut dyn Write, value: &T) -> Result<(), Error> {
    serde_json::to_writer_pretty(&mut *out, value).map_err(|e| Error::Output(e.into()))?;
    writeln!(out).map_err(Error::Output)
}
