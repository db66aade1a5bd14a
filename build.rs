//! Builds the two freestanding helpers steps run inside their roots: the
//! OCI backend's container init (src/exec/oci/init.c) and the remote
//! backend's runner (src/exec/remote/runner.c): static x86_64 Linux
//! programs of a few kilobytes, without libc. On other targets empty files
//! stand in and those backends say they are unsupported.

use std::path::PathBuf;

fn main() {
    println!("cargo::rerun-if-changed=src/exec/freestanding.h");
    build("src/exec/oci/init.c", "oci-init");
    build("src/exec/remote/runner.c", "remote-runner");
}

fn build(src: &str, name: &str) {
    println!("cargo::rerun-if-changed={src}");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join(name);
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if arch != "x86_64" || os != "linux" {
        std::fs::write(&out, b"").unwrap_or_else(|e| panic!("write OUT_DIR/{name}: {e}"));
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
        .unwrap_or_else(|e| panic!("run the C compiler for {src} (install gcc): {e}"));
    assert!(status.success(), "compiling {src} failed");
}
