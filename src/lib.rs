//! `bootstrap`: a declarative engine for full-source bootstrap chains.
//!
//! The pipeline is a chain of modules: [`chain`] turns KDL files into a
//! validated typed model (with spans for diagnostics), [`plan`] orders its
//! steps and computes their definition digests, [`fetch`] brings sources
//! into the [`store`], [`exec`] runs one step in a sandbox, [`build`] runs
//! a selection on one seed, [`verify`] compares seeds and keeps the gate,
//! [`sign`], [`audit`] and [`export`] hand verified stages on, and [`cli`]
//! exposes it all as subcommands. Errors are typed ([`Error`]) and carry
//! `miette` diagnostics; only `main` renders them and turns them into an
//! exit code ([`exit`]).
//!
//! ARCHITECTURE.md in the repository says what each module does and may
//! use; the chain language is in `docs/chain-language.md`, the JSON outputs
//! in `docs/json.md`.

pub mod atomic;
pub mod audit;
pub mod build;
pub mod chain;
pub mod cli;
pub mod exec;
pub mod exit;
pub mod export;
pub mod fetch;
pub mod hash;
pub mod machine;
pub mod plan;
pub mod session;
pub mod sign;
pub mod store;
pub mod time;
pub mod unpack;
pub mod verify;

pub use cli::Error;
