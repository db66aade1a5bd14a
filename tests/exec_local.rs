//! The backend conformance suite (tests/conformance) on the local backend,
//! on both test seeds built from Debian packages by tests/seeds/build.sh.

mod common;
mod conformance;

use bootstrap::exec::local::LocalBackend;

fn local(seed: &str) -> Option<conformance::Fixture> {
    let backend = LocalBackend::new(env!("CARGO_BIN_EXE_bootstrap").into());
    Some(conformance::Fixture::new(Box::new(backend), common::seeds().join(seed)))
}

/// Every union mounted as an overlay, never copied into a tmpfs.
fn overlays_only(seed: &str) -> Option<conformance::Fixture> {
    let backend = LocalBackend::new(env!("CARGO_BIN_EXE_bootstrap").into()).with_copy_limit(0);
    Some(conformance::Fixture::new(Box::new(backend), common::seeds().join(seed)))
}

conformance_suite!(busybox, local("busybox"));
conformance_suite!(debian, local("debian"));
conformance_suite!(busybox_overlays_only, overlays_only("busybox"));
conformance_suite!(debian_overlays_only, overlays_only("debian"));
