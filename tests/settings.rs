//! Remembered settings (`seed add`, `distfiles add`): written once, used by
//! every later command, shown by `status`, overridden by the command line,
//! kept out of git, and checked like a chain file when edited by hand.

mod common;

use std::fs;

use common::mini::Mini;
use common::{Run, run_in, says, seeds};

fn run(mini: &Mini, args: &[&str]) -> Run {
    let mut all = vec!["-C", mini.chain.to_str().unwrap()];
    all.extend_from_slice(args);
    run_in(&mini.chain, &mini.state, &all)
}

#[test]
fn remembered_seeds_and_distfiles_round_trip_and_drive_verify() {
    let mini = Mini::with_args(Vec::new());
    let busybox = seeds().join("busybox");
    let debian = seeds().join("debian");
    let distfiles = mini.chain.join("distfiles");
    for args in [
        vec!["seed", "add", "busybox", busybox.to_str().unwrap()],
        vec!["seed", "add", "debian", debian.to_str().unwrap()],
        // Relative: remembered as the absolute path it names now.
        vec!["distfiles", "add", "distfiles"],
    ] {
        let r = run(&mini, &args);
        assert_eq!(r.code, 0, "{args:?}: {}", r.stderr);
    }
    let file = mini.state.join("settings.kdl");
    let text = fs::read_to_string(&file).unwrap();
    let body: Vec<&str> = text.lines().filter(|l| !l.starts_with("//")).collect();
    let canon = |p: &std::path::Path| fs::canonicalize(p).unwrap().display().to_string();
    assert_eq!(
        body,
        [
            format!("seed \"busybox\" path=\"{}\"", canon(&busybox)),
            format!("seed \"debian\" path=\"{}\"", canon(&debian)),
            format!("distfiles \"{}\"", canon(&distfiles)),
        ]
    );
    // The library reads back exactly what the command wrote.
    let loaded = bootstrap::chain::settings::load(&mini.state).unwrap();
    assert_eq!(loaded.to_kdl(), text);
    assert_eq!(fs::read_to_string(mini.state.join(".gitignore")).unwrap().lines().last(), Some("*"));

    // No --seed, no --distfiles: the gate runs on both remembered seeds.
    let r = run(&mini, &["--offline", "verify", "stage2"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("stage2 verified (2 steps)"), "{}", r.stdout);
    let status = run(&mini, &["status"]);
    assert!(status.stdout.contains(&format!("remembered in {}", file.display())), "{}", status.stdout);
    assert!(status.stdout.contains(&format!("seed debian  {}", canon(&debian))), "{}", status.stdout);
    assert!(status.stdout.contains(&format!("distfiles  {}", canon(&distfiles))), "{}", status.stdout);
    let json: serde_json::Value = serde_json::from_str(&run(&mini, &["--json", "status"]).stdout).unwrap();
    assert_eq!(json["settings"]["seeds"][1]["name"], "debian");
    let list = run(&mini, &["seed", "list"]);
    assert!(list.stdout.contains(&format!("busybox  {} (remembered)", canon(&busybox))), "{}", list.stdout);

    // The command line wins over what is remembered.
    let r = run(&mini, &["--offline", "--seed", "busybox=/nonexistent/seed", "verify", "stage2"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(says(&r.stderr, "/nonexistent/seed"), "{}", r.stderr);

    // Forgotten: verify lists the seed again, with what to give.
    let r = run(&mini, &["seed", "remove", "debian"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = run(&mini, &["--offline", "verify", "stage2"]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(says(&r.stderr, "seed `debian` has no `rootfs` in the chain"), "{}", r.stderr);
    assert!(says(&r.stderr, "1 of 2 seeds cannot be run on (this run needs 2)"), "{}", r.stderr);
    let r = run(&mini, &["seed", "remove", "debian"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(says(&r.stderr, "remembered seeds: `busybox`"), "{}", r.stderr);
}

#[test]
fn what_cannot_be_remembered_is_refused_and_the_file_stays() {
    let mini = Mini::with_args(Vec::new());
    let busybox = seeds().join("busybox");
    assert_eq!(run(&mini, &["seed", "add", "busybox", busybox.to_str().unwrap()]).code, 0);
    let before = fs::read(mini.state.join("settings.kdl")).unwrap();
    let r = run(&mini, &["seed", "add", "busybx", busybox.to_str().unwrap()]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(says(&r.stderr, "did you mean `busybox`?"), "{}", r.stderr);
    let r = run(&mini, &["seed", "add", "debian", "/nonexistent/seed"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let r = run(&mini, &["distfiles", "add", "/nonexistent/distfiles"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert_eq!(fs::read(mini.state.join("settings.kdl")).unwrap(), before);
}

/// A hand-edited file is checked like a chain file: every problem, each at
/// its line and column; no command runs on settings it cannot read.
#[test]
fn a_malformed_settings_file_is_reported_with_every_problem() {
    let mini = Mini::with_args(Vec::new());
    fs::create_dir_all(&mini.state).unwrap();
    fs::write(
        mini.state.join("settings.kdl"),
        "seed \"busybox\" path=\"relative/seed\"\nsede \"debian\" path=\"/x\"\ndistfiles \"/d\"\ndistfiles \"/d\"\n",
    )
    .unwrap();
    let r = run(&mini, &["--json", "status"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let found: Vec<(String, u64, u64)> = v["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["code"].as_str().unwrap().to_string(), d["line"].as_u64().unwrap(), d["column"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        found,
        [
            ("bootstrap::settings::relative_path".to_string(), 1, 16),
            ("bootstrap::chain::unknown_node".to_string(), 2, 1),
            ("bootstrap::chain::repeated_node".to_string(), 4, 1),
        ]
    );
    assert!(says(&run(&mini, &["status"]).stderr, "did you mean `seed`?"));
}
