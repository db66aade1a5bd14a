//! The backend conformance suite (tests/conformance) on the OCI backend,
//! against the container engine at DOCKER_HOST (or the default socket), on
//! both test seeds loaded as images. Skips without an engine unless
//! BOOTSTRAP_REQUIRE_DOCKER=1.

mod common;
mod conformance;

conformance_suite!(busybox, conformance::oci(common::engine(), "busybox"));
conformance_suite!(debian, conformance::oci(common::engine(), "debian"));
