//! Builds the OCI backend's container init (src/exec/oci/init.c): a static,
//! freestanding x86_64 Linux program of a few kilobytes that runs a step's
//! commands inside a container (see src/exec/oci/mod.rs). On other targets
//! an empty file stands in and the OCI backend says it is unsupported.

use std::path::PathBuf;

fn main() {
    let src = "src/exec/oci/init.c";
    println!("cargo::rerun-if-changed={src}");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("oci-init");
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if arch != "x86_64" || os != "linux" {
        std::fs::write(&out, b"").expect("write OUT_DIR/oci-init");
        return;
    }
    let compiler = cc::Build::new().get_compiler();
    let status = compiler
        .to_command()
        .args([
            "-static",
            "-nostdlib",
            "-ffreestanding",
            "-fno-builtin",
            "-fno-stack-protector",
            "-fno-asynchronous-unwind-tables",
            "-fno-pie",
            "-no-pie",
            "-Os",
            "-Wall",
            "-Werror",
            "-Wl,--build-id=none",
            "-s",
            "-o",
        ])
        .arg(&out)
        .arg(src)
        .status()
        .expect("run the C compiler for src/exec/oci/init.c (install gcc)");
    assert!(status.success(), "compiling {src} failed");
}
