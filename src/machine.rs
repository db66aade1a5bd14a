//! What this machine is, for receipts and for finding what an earlier
//! process on it left behind. A leaf: it reads the host, nothing of the
//! engine.

use std::sync::OnceLock;

/// This machine: a BLAKE3 key derived from its `/etc/machine-id` (or
/// D-Bus's copy of it) under a context of our own, as machine-id(5) asks of
/// applications, so receipts never carry the id itself; `None` when the
/// machine has none. Read once per process: every receipt a run writes
/// asks.
pub fn id() -> Option<String> {
    static MACHINE: OnceLock<Option<String>> = OnceLock::new();
    MACHINE
        .get_or_init(|| {
            ["/etc/machine-id", "/var/lib/dbus/machine-id"]
                .iter()
                .find_map(|p| std::fs::read_to_string(p).ok().map(|s| s.trim().to_string()).filter(|s| !s.is_empty()))
                .map(|id| crate::hash::to_hex(&blake3::derive_key("bootstrap 2026 step receipts: the machine that ran a step", id.as_bytes())))
        })
        .clone()
}

/// The kernel's release and machine (`uname -r`, `uname -m`), for receipts.
pub fn kernel() -> (String, String) {
    let u = rustix::system::uname();
    (u.release().to_string_lossy().into_owned(), u.machine().to_string_lossy().into_owned())
}

/// A name for this host that other hosts sharing a container engine do not
/// have: [`id`], or the host name where there is no machine id. Process
/// ids are only comparable between processes with the same one.
pub fn host() -> String {
    id().unwrap_or_else(|| format!("host:{}", rustix::system::uname().nodename().to_string_lossy()))
}
