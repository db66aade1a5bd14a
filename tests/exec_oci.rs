//! The backend conformance suite (tests/conformance) on the OCI backend,
//! against the container engine at DOCKER_HOST (or the default socket), on
//! both test seeds loaded as images. Skips without an engine unless
//! BOOTSTRAP_REQUIRE_DOCKER=1.

mod common;
mod conformance;

use bootstrap::exec::Root;
use bootstrap::exec::oci::OciBackend;

/// Checks, when the fixture's test is over, that its backend left no
/// container in the engine.
struct NoLeftovers(OciBackend);

impl bootstrap::exec::Executor for NoLeftovers {
    fn name(&self) -> &'static str {
        self.0.name()
    }
    fn run(
        &self,
        req: &bootstrap::exec::StepRequest,
        store: &bootstrap::store::Store,
        echo: &dyn bootstrap::exec::LogSink,
    ) -> Result<bootstrap::exec::StepResult, bootstrap::exec::ExecError> {
        let r = self.0.run(req, store, echo);
        assert_eq!(self.0.leftovers().unwrap(), Vec::<String>::new(), "a step container was left in the engine");
        r
    }
}

fn oci(seed: &str) -> Option<conformance::Fixture> {
    let backend = common::engine()?;
    let id = common::seed_image(&backend, seed);
    let own_user_namespace = backend.user_namespace().expect("the engine's info");
    let mut f = conformance::Fixture::with_root(
        Box::new(NoLeftovers(backend)),
        common::seeds().join(seed),
        Root::Image(id),
        OciBackend::engine_paths().to_vec(),
    );
    f.host_user_namespace = !own_user_namespace;
    Some(f)
}

conformance_suite!(busybox, oci("busybox"));
conformance_suite!(debian, oci("debian"));
