//! The OCI backend from the command line, against the container engine at
//! DOCKER_HOST (or the default socket): `seed import`, the mini chain
//! verified on both backends with identical snapshots, seeds missing from
//! the engine, and Ctrl-C removing the step containers. Skips without an
//! engine unless BOOTSTRAP_REQUIRE_DOCKER=1.

mod common;

use std::fs;
use std::time::{Duration, Instant};

use common::mini::Mini;
use common::{run_in, seeds};

/// `seed import` of a test seed's tarball: its reference.
fn import(name: &str) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let tar = seeds().join(format!("{name}.tar"));
    let r = run_in(tmp.path(), &tmp.path().join("state"), &["seed", "import", name, tar.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    r.stdout.trim().to_string()
}

fn on_oci(busybox: &str, debian: &str) -> Mini {
    Mini::with_args(
        ["--backend", "oci", "--seed", &format!("busybox={busybox}"), "--seed", &format!("debian={debian}")].map(String::from).to_vec(),
    )
}

#[test]
fn seed_import_gives_the_same_image_every_time_and_refuses_what_is_not_a_rootfs() {
    let Some(_engine) = common::engine() else { return };
    let first = import("busybox");
    assert!(first.starts_with("bootstrap-seed/busybox@sha256:") && first.len() == "bootstrap-seed/busybox@sha256:".len() + 64, "{first}");
    assert_eq!(import("busybox"), first, "the image ID depends on the tarball only");

    let tmp = tempfile::tempdir().unwrap();
    let tar = seeds().join("busybox.tar");
    let r = run_in(tmp.path(), &tmp.path().join("state"), &["--json", "seed", "import", "busybox", tar.to_str().unwrap()]);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["reference"], first.as_str());
    assert_eq!(v["loaded"], false);
    assert_eq!(format!("bootstrap-seed/busybox@{}", v["image"].as_str().unwrap()), first);

    fs::write(tmp.path().join("notes.txt"), "not a tarball\n").unwrap();
    let r = run_in(tmp.path(), &tmp.path().join("state"), &["seed", "import", "busybox", "notes.txt"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("not a tar archive"), "{}", r.stderr);
}

#[test]
fn the_mini_chain_gives_identical_snapshots_on_both_backends_and_leaves_no_container() {
    let Some(engine) = common::engine() else { return };
    let (busybox, debian) = (import("busybox"), import("debian"));
    let local = Mini::new();
    let oci = on_oci(&busybox, &debian);
    for m in [&local, &oci] {
        let r = m.run(&["verify", "stage2"]);
        assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
        for stage in ["stage0", "stage1", "stage2"] {
            let r = m.run(&["snapshot", stage]);
            assert_eq!(r.code, 0, "{}", r.stderr);
        }
    }
    for stage in ["stage0", "stage1", "stage2"] {
        let a = fs::read(local.chain.join(format!("snapshots/{stage}.kdl"))).unwrap();
        let b = fs::read(oci.chain.join(format!("snapshots/{stage}.kdl"))).unwrap();
        assert!(a == b, "{stage}: the backends disagree:\n{}\n{}", String::from_utf8_lossy(&a), String::from_utf8_lossy(&b));
    }
    // The runs were the OCI backend's, on the images.
    let r = oci.run(&["--json", "verify", "stage0"]);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let run = &v["stages"][0]["steps"][0]["runs"][0];
    let receipt = fs::read_to_string(oci.state.join("receipts/steps").join(v["stages"][0]["steps"][0]["step"].as_str().unwrap()).join("busybox").join(format!("{}.json", run["input"].as_str().unwrap().trim_start_matches("blake3:")))).unwrap();
    assert!(receipt.contains("\"backend\":\"oci\"") || receipt.contains("\"backend\": \"oci\""), "{receipt}");
    assert!(receipt.contains(busybox.rsplit_once('@').unwrap().1), "{receipt}");
    // The receipt names the container engine as the engine itself does
    // (compared with what the docker CLI reads from the same API, when here).
    let recorded: serde_json::Value = serde_json::from_str(&receipt).unwrap();
    let named = recorded["container_engine"].as_str().unwrap_or_else(|| panic!("no container_engine in {receipt}"));
    assert!(named.contains("Engine"), "{named}");
    let cli = std::process::Command::new("docker").args(["version", "--format", "{{.Server.Version}} (API {{.Server.APIVersion}})"]).output();
    if let Ok(out) = cli && out.status.success() {
        let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert!(named.starts_with("Docker Engine") && named.ends_with(&format!(" {version}")), "{named} is not Docker Engine … {version}");
    }
    let audit = oci.run(&["audit", "hex0"]);
    assert!(audit.stdout.contains(&format!("ran by    oci ({named}), bootstrap ")), "{}", audit.stdout);
    let local_receipt = local.run(&["--json", "audit", "hex0"]);
    let v: serde_json::Value = serde_json::from_str(&local_receipt.stdout).unwrap();
    assert_eq!(v["stages"][0]["steps"][0]["ran_by"][0]["backend"], "local");
    assert!(v["stages"][0]["steps"][0]["ran_by"][0]["container_engine"].is_null());
    assert_eq!(engine.orphans().unwrap(), Vec::<String>::new(), "containers left behind");
}

#[test]
fn a_seed_image_the_engine_does_not_have_is_unavailable() {
    let Some(_engine) = common::engine() else { return };
    let missing = format!("bootstrap-seed/nothing@sha256:{}", "0".repeat(64));
    let m = on_oci(&missing, &missing);
    let r = m.run(&["build", "hex0", "--seed", "busybox"]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(r.stderr.contains("seed `busybox`: the engine has no image"), "{}", r.stderr);
    assert!(r.stderr.contains("nothing is pulled"), "{}", r.stderr);
    // No image at all for the seed: says which field is missing.
    let m = Mini::with_args(vec!["--backend".into(), "oci".into()]);
    let r = m.run(&["verify", "stage0"]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(common::says(&r.stderr, "seed `busybox` has no `image` in the chain"), "{}", r.stderr);
    assert!(common::says(&r.stderr, "`--seed busybox=IMAGE`"), "{}", r.stderr);
    assert!(common::says(&r.stderr, "`bootstrap seed add busybox --image IMAGE` remembers it"), "{}", r.stderr);
}

#[test]
fn ctrl_c_removes_the_running_step_container() {
    let Some(engine) = common::engine() else { return };
    let busybox = import("busybox");
    let m = on_oci(&busybox, &busybox);
    m.add("stage0/nap.kdl", "step \"nap\" {\n    root \"seed\"\n    script \"sleep 600\"\n    output \"/nothing\"\n}\n");
    let child = m.spawn(&["-q"], &["build", "nap", "--seed", "busybox"]);
    let pid = child.id();
    let started = Instant::now();
    while engine.containers_of(pid).unwrap().is_empty() {
        assert!(started.elapsed() < Duration::from_secs(60), "no step container appeared");
        std::thread::sleep(Duration::from_millis(100));
    }
    rustix::process::kill_process(rustix::process::Pid::from_child(&child), rustix::process::Signal::INT).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("interrupted: stopping 1 running step(s)"), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(engine.containers_of(pid).unwrap(), Vec::<String>::new(), "the step container outlived Ctrl-C");
}

#[test]
fn a_step_containers_processes_and_memory_are_bounded() {
    let Some(_engine) = common::engine() else { return };
    let busybox = import("busybox");
    let debian = import("debian");
    let m = on_oci(&busybox, &debian);
    m.add(
        "stage0/many.kdl",
        "step \"many\" {\n    root \"seed\"\n    script \"i=0; while [ $i -lt 100 ]; do sleep 30 & i=$((i+1)); done; mkdir /out\"\n    output \"/out\"\n}\n",
    );
    let r = m.run(&["--max-processes", "40", "verify", "stage0"]);
    assert_eq!(r.code, 4, "{}\n{}", r.stdout, r.stderr);
    std::fs::remove_file(m.chain.join("stage0/many.kdl")).unwrap();
    m.add(
        "stage0/hungry.kdl",
        "step \"hungry\" {\n    root \"seed\"\n    script \"dd if=/dev/zero of=/dev/null bs=256M count=1 && mkdir /out\"\n    output \"/out\"\n}\n",
    );
    let r = m.run(&["--max-memory", "64M", "verify", "stage0"]);
    assert_eq!(r.code, 4, "{}\n{}", r.stdout, r.stderr);
}
