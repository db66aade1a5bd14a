//! A `script` run by a named `interpreter` on the local backend, as a user
//! runs it: the script's text is a read-only file at `/src/.script`, the
//! interpreter gets its argv and that path, on both test seeds and on a
//! lineage varying the build path; the script's text is part of the cache
//! key; a missing interpreter fails the step naming the program.

mod common;

use std::fs;
use std::path::Path;

use common::{Run, run_in, seeds};

const SEEDS: &str = "seed \"busybox\" { description \"busybox-static\" }\nseed \"debian\" { description \"minbase\" }\n";

/// A one-stage chain (its second lineage varying the build path) with these steps.
fn write_chain(dir: &Path, steps: &str) {
    fs::create_dir_all(dir.join("chain")).unwrap();
    fs::create_dir_all(dir.join("stage0")).unwrap();
    fs::write(
        dir.join("chain/chain.kdl"),
        format!("chain \"t\" {{\n    arch \"x86_64\"\n    source-date-epoch 0\n    stage \"stage0\" description=\"s\"\n    vary \"build-path\"\n}}\n{SEEDS}"),
    )
    .unwrap();
    fs::write(dir.join("stage0/steps.kdl"), steps).unwrap();
}

/// `bootstrap --seed busybox=… --seed debian=… ARGS` with the state directory `state`.
fn bs(dir: &Path, state: &Path, args: &[&str]) -> Run {
    let busybox = format!("busybox={}", seeds().join("busybox").display());
    let debian = format!("debian={}", seeds().join("debian").display());
    let mut all: Vec<&str> = vec!["--seed", &busybox, "--seed", &debian];
    all.extend(args);
    run_in(dir, state, &all)
}

fn json(r: &Run) -> serde_json::Value {
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: stdout {} stderr {}", r.stdout, r.stderr))
}

const SCRIPT: &str = "mkdir -p /out\nprintf '%s\\n' \"$0\" \"$#\" > /out/argv\ncat \"$0\" > /out/self\n";

fn interpreted_step(script: &str) -> String {
    format!(
        "step \"interp\" {{\n    root \"seed\"\n    interpreter \"/bin/sh\" \"-e\"\n    script #\"\"\"\n{}\n    \"\"\"#\n    output \"/out\"\n}}\n",
        script.trim_end().lines().map(|l| format!("    {l}")).collect::<Vec<_>>().join("\n")
    )
}

#[test]
fn the_interpreter_is_given_the_script_file_on_both_seeds_and_a_varied_build_path() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("chain");
    let state = tmp.path().join("state");
    write_chain(&dir, &interpreted_step(SCRIPT));

    let mut outputs = Vec::new();
    for seed in ["busybox", "debian"] {
        let r = bs(&dir, &state, &["--json", "build", "interp", "--seed", seed]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        let v = json(&r);
        assert_eq!(v["steps"][0]["outcome"], "built", "{v}");
        let layer = state.join("layers").join(v["steps"][0]["output"].as_str().unwrap().trim_start_matches("blake3:"));
        // `/bin/sh -e /src/.script`: $0 is the file, no other argument.
        assert_eq!(fs::read_to_string(layer.join("out/argv")).unwrap(), "/src/.script\n0\n", "on {seed}");
        // The file holds the script's text as written (KDL strips the
        // indentation and the last line break, which the file gets back).
        assert_eq!(fs::read_to_string(layer.join("out/self")).unwrap(), SCRIPT, "on {seed}");
        outputs.push(v["steps"][0]["output"].clone());
    }
    assert_eq!(outputs[0], outputs[1]);

    // The same on a lineage whose sources live elsewhere: /src/.script is a
    // link there, and what the script reads is the same.
    let r = bs(&dir, &state, &["verify", "stage0", "--no-signatures"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);

    // Again: from the cache. Another text is another input.
    let r = bs(&dir, &state, &["--json", "build", "interp", "--seed", "busybox"]);
    assert_eq!(json(&r)["steps"][0]["outcome"], "cached");
    write_chain(&dir, &interpreted_step(&SCRIPT.replace("/out/self", "/out/self; true")));
    let r = bs(&dir, &state, &["--json", "build", "interp", "--seed", "busybox"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(json(&r)["steps"][0]["outcome"], "built");

    // The audit shows the interpreter, the file and the script.
    let audit = bs(&dir, &state, &["audit", "--format", "json"]);
    assert_eq!(audit.code, 0, "{}", audit.stderr);
    let st = &json(&audit)["stages"][0]["steps"][0];
    assert_eq!(st["interpreted"]["interpreter"], serde_json::json!(["/bin/sh", "-e"]));
    assert_eq!(st["interpreted"]["file"], "/src/.script");
    assert!(st["interpreted"]["script"].as_str().unwrap().contains("/out/self; true"), "{st}");
    assert_eq!(st["script"], serde_json::Value::Null);
    assert_eq!(st["run"], serde_json::json!([]));
    let text = bs(&dir, &state, &["audit", "interp"]);
    assert!(text.stdout.contains("script    (in /src/.script, run as: /bin/sh -e /src/.script)"), "{}", text.stdout);
    assert!(text.stdout.contains("| cat \"$0\" > /out/self; true"), "{}", text.stdout);
}

#[test]
fn a_missing_interpreter_fails_the_step_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("chain");
    let state = tmp.path().join("state");
    write_chain(
        &dir,
        "step \"nowhere\" {\n    root \"scratch\"\n    interpreter \"/src/stage0-posix/AMD64/bin/kaem\" \"--file\"\n    script \"echo hi\"\n    output \"/out\"\n}\n",
    );
    let r = bs(&dir, &state, &["build", "nowhere", "--seed", "busybox"]);
    assert_eq!(r.code, 4, "{}", r.stderr);
    assert!(common::says(&r.stderr, "its script exited with code 127"), "{}", r.stderr);
    assert!(common::says(&r.stderr, "cannot run \"/src/stage0-posix/AMD64/bin/kaem\""), "{}", r.stderr);
}

/// `seed import` of a test seed's tarball: its reference.
fn import(name: &str) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let tar = seeds().join(format!("{name}.tar"));
    let r = run_in(tmp.path(), &tmp.path().join("state"), &["seed", "import", name, tar.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    r.stdout.trim().to_string()
}

/// The OCI backend takes the script's file like any file source: the same
/// output as the local backend, on a varied build path too.
#[test]
fn the_oci_backend_runs_an_interpreted_script_to_the_same_bytes() {
    let Some(_engine) = common::engine() else { return };
    let (busybox, debian) = (import("busybox"), import("debian"));
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("chain");
    write_chain(&dir, &interpreted_step(SCRIPT));
    let local = bs(&dir, &tmp.path().join("local"), &["--json", "build", "interp", "--seed", "busybox"]);
    assert_eq!(local.code, 0, "{}", local.stderr);
    let oci_state = tmp.path().join("oci");
    let oci_args = ["--backend", "oci", "--seed", &format!("busybox={busybox}"), "--seed", &format!("debian={debian}")];
    let mut args: Vec<&str> = oci_args.to_vec();
    args.extend(["--json", "build", "interp", "--seed", "busybox"]);
    let oci = run_in(&dir, &oci_state, &args);
    assert_eq!(oci.code, 0, "{}", oci.stderr);
    let output = |r: &Run| json(r)["steps"][0]["output"].as_str().unwrap().to_string();
    assert_eq!(output(&oci), output(&local));
    let layer = oci_state.join("layers").join(output(&oci).trim_start_matches("blake3:"));
    assert_eq!(fs::read_to_string(layer.join("out/argv")).unwrap(), "/src/.script\n0\n");
    let mut args: Vec<&str> = oci_args.to_vec();
    args.extend(["verify", "stage0", "--no-signatures"]);
    let r = run_in(&dir, &oci_state, &args);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
}
