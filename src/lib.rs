//! `bootstrap`: a declarative engine for full-source bootstrap chains.
//!
//! The pipeline is a chain of modules, each knowing only the one before it:
//! [`chain`] turns KDL files into a validated typed model (with spans for
//! diagnostics), [`plan`] orders its steps into a DAG and computes their
//! definition digests, and [`cli`] exposes them as subcommands. Errors are
//! typed ([`Error`]) and carry `miette` diagnostics; only `main` renders them
//! and turns them into an exit code ([`exit`]).
//!
//! The design is in `DESIGN.md` of the project; the chain language in
//! `docs/chain-language.md`; the JSON outputs in `docs/json.md`.

pub mod audit;
pub mod build;
pub mod chain;
pub mod cli;
pub mod error;
pub mod exec;
pub mod export;
pub mod fetch;
pub mod hash;
pub mod plan;
pub mod sign;
pub mod store;
pub mod time;
pub mod verify;

pub use error::{Error, exit};
