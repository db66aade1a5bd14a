//! The backend conformance suite (tests/conformance) on the OCI backend
//! against a Podman API service (`BOOTSTRAP_PODMAN_HOST`, default
//! `unix:///run/podman/podman.sock`), on both test seeds loaded as images.
//! Skips without one unless BOOTSTRAP_REQUIRE_PODMAN=1 (set by `.ci/run`).

mod common;
mod conformance;

conformance_suite!(busybox, conformance::oci(common::podman(), "busybox"));
conformance_suite!(debian, conformance::oci(common::podman(), "debian"));
