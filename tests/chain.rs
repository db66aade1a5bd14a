//! `check`, `plan` and `graph` run as a user runs them: the built binary on
//! fixture chains. Diagnostics, summaries, plans and digests are insta
//! snapshots rendered without colour at width 80.

mod common;

use std::collections::BTreeSet;
use std::process::{Command, Stdio};

use common::{copy_tree, digests, fixture, root, run_in};

/// What `check` says of bad fixture `name`: exit 1, nothing on stdout, no
/// panic, at least one chain diagnostic code, and stderr as its snapshot.
/// The codes it showed.
fn check_bad(name: &str) -> Vec<String> {
    let state = tempfile::tempdir().unwrap();
    let run = run_in(&fixture("bad").join(name), state.path(), &["check"]);
    assert_eq!(run.code, 1, "{name}: exit code; stderr:\n{}", run.stderr);
    assert!(run.stdout.is_empty(), "{name}: stdout should be empty, got {}", run.stdout);
    assert!(!run.stderr.contains("panicked"), "{name} panicked");
    let found: Vec<String> = run.stderr.lines().filter_map(|l| l.trim().strip_prefix("bootstrap::chain::")).map(str::to_string).collect();
    assert!(!found.is_empty(), "{name}: no diagnostic code in\n{}", run.stderr);
    insta::with_settings!({ prepend_module_to_snapshot => false }, {
        insta::assert_snapshot!(format!("chain__bad__{name}"), run.stderr);
    });
    found
}

/// One test per bad fixture (tests/fixtures/bad/NAME), so one failing shows
/// without hiding the others.
macro_rules! bad_fixtures {
    ($($name:ident),* $(,)?) => {
        mod bad {
            $(
                #[test]
                fn $name() {
                    super::check_bad(stringify!($name));
                }
            )*
        }
        const BAD_FIXTURES: &[&str] = &[$(stringify!($name)),*];
    };
}

bad_fixtures!(
    bad_destdir,
    control_characters,
    cycle,
    duplicate_env,
    duplicate_output,
    duplicate_seed,
    duplicate_source,
    duplicate_stage,
    duplicate_step_across_stages,
    duplicate_step_same_file,
    empty_value,
    extra_argument,
    file_url_relative,
    git_needs_unpack,
    git_without_tree,
    interpreter_and_shell,
    interpreter_arguments,
    interpreter_without_script,
    invalid_env_name,
    invalid_name,
    invalid_output,
    invalid_root,
    later_stage_need,
    malformed_commit,
    malformed_path,
    malformed_sha256_length,
    malformed_sha256_not_hex,
    malformed_timeout,
    malformed_tree,
    malformed_url,
    many_problems,
    misplaced_seed,
    misplaced_step,
    missing_arch,
    missing_name,
    missing_property,
    missing_stage,
    negative_epoch,
    no_chain_file,
    no_chain_node,
    no_command,
    no_location,
    no_pin,
    not_utf8,
    nul_byte,
    out_of_range,
    path_and_url,
    placeholder_without_version,
    relative_interpreter,
    relative_workdir,
    repeated_need,
    repeated_node,
    repeated_property,
    reserved_env,
    run_and_script,
    self_need,
    shell_without_script,
    step_named_like_stage,
    syntax_bad_number,
    syntax_unclosed_string,
    syntax_v1_boolean,
    too_deep,
    too_few_seeds,
    tree_on_file,
    trust_bad_cert,
    trust_count_exceeds_signers,
    trust_duplicate_signer,
    trust_fingerprint_mismatch,
    trust_invalid_cert_path,
    trust_malformed_fingerprint,
    trust_many_problems,
    trust_missing_cert,
    trust_unknown_role,
    type_annotation,
    unexpected_children,
    unknown_arch,
    unknown_chain_child,
    unknown_git_property,
    unknown_need,
    unknown_need_no_suggestion,
    unknown_node,
    unknown_placeholder,
    unknown_property,
    unknown_source,
    unknown_top_level_node,
    unknown_variation,
    unpinned_image,
    url_scheme,
    wrong_type,
    wrong_type_in_run,
    wrong_type_on_chain
);

/// Every directory of tests/fixtures/bad has its test above, and together
/// they cover at least 30 distinct diagnostic codes.
#[test]
fn every_bad_fixture_has_a_test_and_they_cover_thirty_codes() {
    let mut names: Vec<String> = std::fs::read_dir(fixture("bad")).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    assert_eq!(names, BAD_FIXTURES, "tests/fixtures/bad and the list in tests/chain.rs differ");
    let codes: BTreeSet<String> = BAD_FIXTURES
        .iter()
        .flat_map(|name| {
            let state = tempfile::tempdir().unwrap();
            let run = run_in(&fixture("bad").join(name), state.path(), &["check"]);
            run.stderr.lines().filter_map(|l| l.trim().strip_prefix("bootstrap::chain::")).map(str::to_string).collect::<Vec<_>>()
        })
        .collect();
    assert!(codes.len() >= 30, "only {} distinct codes: {codes:?}", codes.len());
}

/// All problems of all files come in one run, and `--json` lists them with
/// file, line and column.
#[test]
fn all_problems_in_one_run_and_as_json() {
    let state = tempfile::tempdir().unwrap();
    let run = run_in(&fixture("bad/many_problems"), state.path(), &["--json", "check"]);
    assert_eq!(run.code, 1);
    let doc: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(doc["ok"], false);
    let files: BTreeSet<&str> = doc["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["file"].as_str().unwrap())
        .collect();
    assert_eq!(files, BTreeSet::from(["stage0/steps.kdl", "stage1/x.kdl"]));
    insta::assert_snapshot!("many_problems_json", run.stdout);
}

#[test]
fn check_summarises_a_good_chain() {
    let state = tempfile::tempdir().unwrap();
    let run = run_in(&fixture("digests"), state.path(), &["check"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    insta::assert_snapshot!("check_digests", run.stdout);
    let json = run_in(&fixture("digests"), state.path(), &["check", "--json"]);
    assert_eq!(json.code, 0);
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(doc["ok"], true);
    assert_eq!(doc["steps"], 6);
    assert_eq!(doc["unverified"], 1);
    assert_eq!(doc["stages"][0]["steps"], 2);
    assert_eq!(doc["sources"][0]["urls"][0], "https://example.org/hexsrc-1.0.tar.gz");
}

/// The digests of a fixture chain are pinned: a change to the encoding is a
/// change every receipt would notice.
#[test]
fn plan_and_its_digests_are_pinned() {
    let state = tempfile::tempdir().unwrap();
    let human = run_in(&fixture("digests"), state.path(), &["plan"]);
    assert_eq!(human.code, 0, "{}", human.stderr);
    insta::assert_snapshot!("plan_digests", human.stdout);
    let json = run_in(&fixture("digests"), state.path(), &["plan", "--json"]);
    insta::assert_snapshot!("plan_digests_json", json.stdout);
}

/// Whitespace, comments, node order inside blocks, how files are split and
/// named, descriptions, timeouts, mirrors and pinned hashes leave every
/// definition digest unchanged.
#[test]
fn reformatting_leaves_digests_unchanged() {
    let state = tempfile::tempdir().unwrap();
    let a = run_in(&fixture("digests"), state.path(), &["plan", "--json"]);
    let b = run_in(&fixture("reformatted"), state.path(), &["plan", "--json"]);
    assert_eq!(b.code, 0, "{}", b.stderr);
    assert_eq!(digests(&a.stdout), digests(&b.stdout));
}

/// Changing one argv entry changes exactly that step's digest and those of
/// the steps that (transitively) need it.
#[test]
fn one_argv_change_moves_that_step_and_its_dependents() {
    let dir = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    copy_tree(&fixture("digests"), dir.path());
    let before = digests(&run_in(dir.path(), state.path(), &["plan", "--json"]).stdout);
    let file = dir.path().join("stage1/tools.kdl");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, text.replace("\"hex1.hex0\"", "\"hex1-v2.hex0\"")).unwrap();
    let run = run_in(dir.path(), state.path(), &["plan", "--json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let after = digests(&run.stdout);
    let changed: BTreeSet<&str> =
        before.keys().filter(|k| before[*k] != after[*k]).map(String::as_str).collect();
    assert_eq!(changed, BTreeSet::from(["hex1", "hex2", "bundle"]));
}

/// A script's interpreter, its arguments and the script's text each enter
/// the definition digest; a script run by an interpreter is not the same
/// definition as the same text run by a shell. Only that step moves.
#[test]
fn interpreter_and_script_enter_the_definition_digest() {
    let dir = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    copy_tree(&fixture("digests"), dir.path());
    let file = dir.path().join("stage2/all.kdl");
    let text = std::fs::read_to_string(&file).unwrap();
    let plan = |step_text: &str| {
        std::fs::write(&file, step_text).unwrap();
        let run = run_in(dir.path(), state.path(), &["plan", "--json"]);
        assert_eq!(run.code, 0, "{}", run.stderr);
        digests(&run.stdout)
    };
    let shell = plan(&text);
    let kaem = plan(&text.replace("shell \"/bin/sh\"", "interpreter \"/bin/sh\""));
    let with_arg = plan(&text.replace("shell \"/bin/sh\"", "interpreter \"/bin/sh\" \"-x\""));
    let other_program = plan(&text.replace("shell \"/bin/sh\"", "interpreter \"/bin/dash\""));
    let other_script = plan(&text.replace("shell \"/bin/sh\"", "interpreter \"/bin/sh\"").replace("> /bundle", ">/bundle"));
    let all = [&shell, &kaem, &with_arg, &other_program, &other_script];
    for (i, a) in all.iter().enumerate() {
        for b in &all[i + 1..] {
            assert_ne!(a["bundle"], b["bundle"], "two different commands, one digest");
            let others = |d: &std::collections::BTreeMap<String, String>| d.iter().filter(|(k, _)| *k != "bundle").map(|(_, v)| v.clone()).collect::<Vec<_>>();
            assert_eq!(others(a), others(b), "only the changed step moves");
        }
    }
    // The same definition, the same digest.
    assert_eq!(kaem, plan(&text.replace("shell \"/bin/sh\"", "interpreter \"/bin/sh\"")));
}

/// The parse cache never serves a stale model: an edited file is parsed
/// again, and damaged cache entries are ignored.
#[test]
fn parse_cache_is_never_stale() {
    let dir = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    copy_tree(&fixture("digests"), dir.path());
    let cold = run_in(dir.path(), state.path(), &["plan", "--json"]);
    let warm = run_in(dir.path(), state.path(), &["plan", "--json"]);
    assert_eq!(cold.stdout, warm.stdout);
    let cache = state.path().join("cache/parse");
    let entries: Vec<_> = walk(&cache);
    assert_eq!(entries.len(), 4, "expected one entry per file, found {entries:?}");

    // An edit is seen at once.
    let file = dir.path().join("stage2/all.kdl");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, text.replace("/bin/true", "/bin/false")).unwrap();
    let edited = run_in(dir.path(), state.path(), &["plan", "--json"]);
    assert_ne!(digests(&edited.stdout)["standalone"], digests(&cold.stdout)["standalone"]);

    // An edit that introduces an error is reported, not masked by the cache.
    std::fs::write(&file, text.replace("run \"/bin/true\"", "runn \"/bin/true\"")).unwrap();
    let broken = run_in(dir.path(), state.path(), &["plan"]);
    assert_eq!(broken.code, 1);
    assert!(broken.stderr.contains("unknown node `runn`"), "{}", broken.stderr);

    // Damaged entries are misses.
    std::fs::write(&file, &text).unwrap();
    for entry in walk(&cache) {
        std::fs::write(&entry, b"{\"key\":\"nonsense\"").unwrap();
    }
    let after_damage = run_in(dir.path(), state.path(), &["plan", "--json"]);
    assert_eq!(after_damage.code, 0, "{}", after_damage.stderr);
    assert_eq!(after_damage.stdout, cold.stdout);
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if entry.file_type().unwrap().is_dir() {
            out.extend(walk(&entry.path()));
        } else {
            out.push(entry.path());
        }
    }
    out
}

#[test]
fn plan_selects_what_a_target_needs() {
    let state = tempfile::tempdir().unwrap();
    let names = |args: &[&str]| -> Vec<String> {
        let run = run_in(&fixture("digests"), state.path(), args);
        assert_eq!(run.code, 0, "{}", run.stderr);
        let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
        v["steps"].as_array().unwrap().iter().map(|s| s["step"].as_str().unwrap().to_owned()).collect()
    };
    assert_eq!(names(&["plan", "--json", "hex2"]), ["hex0", "hex1", "hex2"]);
    assert_eq!(names(&["plan", "--json", "stage1"]), ["hex0", "hex1", "hex2"]);
    assert_eq!(names(&["plan", "--json", "stage0"]), ["hex0", "check"]);
    assert_eq!(names(&["plan", "--json"]).len(), 6);

    let unknown = run_in(&fixture("digests"), state.path(), &["plan", "hex3"]);
    assert_eq!(unknown.code, 1);
    insta::assert_snapshot!("plan_unknown_target", unknown.stderr);
}

/// The dot output is valid Graphviz: `dot -Tsvg` renders it.
#[test]
fn graph_renders_with_graphviz() {
    let state = tempfile::tempdir().unwrap();
    let run = run_in(&fixture("digests"), state.path(), &["graph", "--format", "dot"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    insta::assert_snapshot!("graph_dot", run.stdout);
    let mut dot = match Command::new("dot").arg("-Tsvg").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn() {
        Ok(child) => child,
        Err(e) => panic!("Graphviz `dot` is needed for this test (apt-get install graphviz): {e}"),
    };
    use std::io::Write;
    dot.stdin.take().unwrap().write_all(run.stdout.as_bytes()).unwrap();
    let out = dot.wait_with_output().unwrap();
    assert!(out.status.success(), "dot rejected the graph: {}", String::from_utf8_lossy(&out.stderr));
    let svg = String::from_utf8_lossy(&out.stdout);
    assert!(svg.contains("<svg"), "no svg from dot");
    for step in ["hex0", "hex1", "hex2", "check", "bundle", "standalone"] {
        assert!(svg.contains(step), "{step} missing from the svg");
    }

    let json = run_in(&fixture("digests"), state.path(), &["graph", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(v["nodes"].as_array().unwrap().len(), 6);
    assert!(v["edges"].as_array().unwrap().iter().any(|e| e["from"] == "hex1" && e["to"] == "hex2"));
}

/// The repository's own chain always passes `check`.
#[test]
fn the_repository_chain_checks() {
    let state = tempfile::tempdir().unwrap();
    let run = run_in(&root(), state.path(), &["check"]);
    assert_eq!(run.code, 0, "bootstrap check on the repository failed:\n{}", run.stderr);
}

/// Chain files are read only as regular files inside the chain directory:
/// a link out of it (to a secret or to /dev/zero) or a fifo is named in a
/// diagnostic, never read, never waited on.
#[test]
fn only_regular_files_inside_the_chain_directory_are_read() {
    let state = tempfile::tempdir().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    common::copy_tree(&fixture("bad/self_need"), &dir);
    std::fs::write(dir.join("stage0/a.kdl"), "step \"a\" {\n    run \"/bin/true\"\n    output \"/out\"\n}\n").unwrap();
    let secret = tmp.path().join("secret.kdl");
    std::fs::write(&secret, "step \"leaked-line-of-a-host-file\" { run \"x\" }\n").unwrap();
    std::os::unix::fs::symlink(&secret, dir.join("stage0/b.kdl")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", dir.join("stage0/c.kdl")).unwrap();
    assert!(std::process::Command::new("mkfifo").arg(dir.join("stage1.kdl")).status().unwrap().success());
    std::fs::create_dir(dir.join("stage1")).unwrap();
    assert!(std::process::Command::new("mkfifo").arg(dir.join("stage1/d.kdl")).status().unwrap().success());
    // A link that stays inside is fine.
    std::os::unix::fs::symlink("a.kdl", dir.join("stage0/e-same.kdl")).unwrap();
    let started = std::time::Instant::now();
    let run = run_in(&dir, state.path(), &["check"]);
    assert!(started.elapsed() < std::time::Duration::from_secs(20), "check waited");
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(!run.stderr.contains("leaked-line-of-a-host-file"), "{}", run.stderr);
    let said = run.stderr.split_whitespace().filter(|w| *w != "│").collect::<Vec<_>>().join(" ");
    assert!(said.contains("refusing to read stage0/b.kdl: it is reached through a symlink that leaves the chain directory"), "{said}");
    assert!(said.contains("refusing to read stage0/c.kdl: it is reached through a symlink that leaves the chain directory (to /dev/zero)"), "{said}");
    assert!(said.contains("refusing to read stage1/d.kdl: it is a fifo, not a regular file"), "all in one run: {said}");
    assert!(!said.contains("e-same.kdl"), "a link inside the chain directory is read: {said}");
}

#[test]
fn a_fifo_chain_file_is_refused_without_waiting() {
    let state = tempfile::tempdir().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    common::copy_tree(&fixture("bad/self_need"), &dir);
    std::fs::remove_file(dir.join("stage0/a.kdl")).ok();
    for e in std::fs::read_dir(dir.join("stage0")).unwrap() {
        std::fs::remove_file(e.unwrap().path()).unwrap();
    }
    assert!(std::process::Command::new("mkfifo").arg(dir.join("stage0/a.kdl")).status().unwrap().success());
    let started = std::time::Instant::now();
    let run = run_in(&dir, state.path(), &["check"]);
    assert!(started.elapsed() < std::time::Duration::from_secs(20), "check waited on a fifo");
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("refusing to read stage0/a.kdl: it is a fifo, not a regular file"), "{}", run.stderr);
}
