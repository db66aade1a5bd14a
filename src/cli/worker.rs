//! `bootstrap worker`: takes steps from a Remote Execution API server
//! (`--remote`, `--remote-instance`) as a bot of its Remote Workers API and
//! runs each in this machine's sandbox ([`crate::exec::remote::worker`]),
//! `--jobs` of them at once (one bot session each), until interrupted. Its
//! state directory (`--state`) holds the steps' logs and outputs, a cache
//! of the files it was sent and the input roots it keeps; one worker per
//! state directory.

use std::io::Write;

use super::{Context, Error};
use crate::build::BuildError;
use crate::exec::ExecError;
use crate::exec::remote::worker::{WorkerOptions, serve};
use crate::store::LockMode;

/// `worker` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A platform property this worker serves besides OSFamily=linux and ISA=x86-64, e.g. bootstrap-lineage=alpine to take only that seed's steps (with `--remote-split-lineages` on the client); repeatable.
    #[arg(long = "property", value_name = "KEY=VALUE", value_parser = super::parse_property)]
    pub properties: Vec<(String, String)>,
    /// The bot's id, unique among the server's workers [default: MACHINE-PID].
    #[arg(long, value_name = "ID")]
    pub bot_id: Option<String>,
}

/// Runs `worker` until it is interrupted or the server fails.
pub fn run(cx: &Context, args: &Args, _out: &mut dyn Write) -> Result<(), Error> {
    let exec = |e: ExecError| Error::from(BuildError::Exec(e));
    let remote = cx.remote.clone().ok_or_else(|| {
        exec(ExecError::Unsupported {
            backend: "remote",
            message: "a worker needs a server to take work from".into(),
            help: "give its address: `--remote grpc://HOST:PORT` (or BOOTSTRAP_REMOTE), and `--remote-instance NAME` if it has instances".into(),
        })
    })?;
    let store = cx.open_store(LockMode::Exclusive)?;
    let helper = std::env::current_exe()
        .map_err(|e| exec(ExecError::Io { what: "find the running executable (the sandbox runs it)".into(), message: e.to_string() }))?;
    let local = crate::exec::local::LocalBackend::new(helper).with_limits(cx.limits).with_cancel(cx.cancel.clone());
    let opts = WorkerOptions {
        endpoint: remote.endpoint,
        instance: remote.instance,
        bot_id: args.bot_id.clone().unwrap_or_else(|| format!("{}-{}", crate::machine::host().chars().take(12).collect::<String>(), std::process::id())),
        properties: args.properties.clone(),
        slots: cx.jobs,
    };
    let quiet = cx.verbosity < 0;
    let say = move |m: &str| {
        if !quiet {
            eprintln!("{m}");
        }
    };
    serve(&opts, &local, &store, &cx.cancel, &say).map_err(exec)
}
