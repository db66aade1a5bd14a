//! The backend conformance suite (tests/conformance) on the remote
//! backend: every step an action of the REAPI server at BOOTSTRAP_REMOTE,
//! run by two `bootstrap worker`s started here, on both test seeds sent as
//! directories. Skips without a server unless BOOTSTRAP_REQUIRE_REMOTE=1.

mod common;
mod conformance;

conformance_suite!(busybox, conformance::remote("busybox"));
conformance_suite!(debian, conformance::remote("debian"));
