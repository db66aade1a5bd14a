//! The tar stream a step container is given before it starts: the union of
//! the step's sources and its needs' layers ([`crate::exec::union::step_union`]),
//! plus the container init. The engine unpacks it over the seed image,
//! which gives overlay semantics.

use super::INIT_PATH;
use crate::exec::union::{Item, step_union};
use crate::exec::{ExecError, StepRequest};

/// The tar stream of the step's inputs and the container init `init`.
pub fn tar(req: &StepRequest, init: &'static [u8]) -> Result<Vec<u8>, ExecError> {
    let mut u = step_union("oci", req, None, &[INIT_PATH])?;
    u.put(INIT_PATH.trim_start_matches('/').to_string(), Item::Bytes { bytes: init, mode: 0o755 });
    u.write(None)
}
