//! The fast tier: the scheduler, the cache, early cutoff, the gate and the
//! session's stage states, on the dry-run executor (`exec::dry`), which
//! runs nothing: no root, no namespaces, no container engine. Each test is
//! a chain of its own written here, two seed directories and one store,
//! driven through the library's [`Session`] the way the commands drive it.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use bootstrap::build::{Build, SeedArg, Silent, Wanted};
use bootstrap::chain::Chain;
use bootstrap::exec::dry::{self, Dry, DryRun};
use bootstrap::exec::{Backend, StepRequest};
use bootstrap::plan::Plan;
use bootstrap::session::{BackendKind, Run, Session, SessionOptions, Verification};
use bootstrap::store::{LockMode, Store};
use bootstrap::verify::{Report, Verdict, Verifier};

/// Three stages: `a` and `b` in stage0 (`b` needs `a`), `c` in stage1
/// needing `b`, `d` in stage2 needing `c`.
const CHAIN: &str = r#"
chain "dry" {
    arch "x86_64"
    source-date-epoch 0
    stage "stage0"
    stage "stage1"
    stage "stage2"
}
seed "one" { description "a directory" }
seed "two" { description "another directory" }
"#;

const STEPS: [(&str, &str); 3] = [
    (
        "stage0/steps.kdl",
        r#"
step "a" {
    root "seed"
    env FLAVOUR="plain"
    run "/bin/make-a"
    output "/out/a"
}
step "b" {
    root "seed"
    needs "a"
    run "/bin/make-b"
    output "/out/b"
}
"#,
    ),
    (
        "stage1/steps.kdl",
        r#"
step "c" {
    root "seed"
    needs "b"
    run "/bin/make-c"
    output "/out/c"
}
"#,
    ),
    (
        "stage2/steps.kdl",
        r#"
step "d" {
    root "seed"
    needs "c"
    run "/bin/make-d"
    output "/out/d"
}
"#,
    ),
];

/// A chain directory, two seed directories that differ, and a session.
struct World {
    tmp: tempfile::TempDir,
    session: Session,
}

impl World {
    fn new() -> World {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("chain");
        fs::create_dir_all(dir.join("chain")).unwrap();
        fs::write(dir.join("chain/chain.kdl"), CHAIN).unwrap();
        for (rel, text) in STEPS {
            fs::create_dir_all(dir.join(rel).parent().unwrap()).unwrap();
            fs::write(dir.join(rel), text).unwrap();
        }
        let mut seeds = Vec::new();
        for name in ["one", "two"] {
            let root = tmp.path().join(format!("seed-{name}"));
            fs::create_dir_all(root.join("etc")).unwrap();
            fs::write(root.join("etc/os-release"), format!("ID={name}\n")).unwrap();
            seeds.push(SeedArg::Locate(name.into(), root));
        }
        let session = Session::open(SessionOptions {
            dir: dir.clone(),
            state: dir.join(".bootstrap"),
            distfiles: Vec::new(),
            offline: true,
            jobs: 2,
            no_wait: true,
            seeds,
            backend: BackendKind::Local,
            remote: None,
            limits: Default::default(),
            max_download: 1 << 20,
            max_unpacked: 1 << 20,
            cancel: Default::default(),
        })
        .unwrap();
        World { tmp, session }
    }

    fn dir(&self) -> PathBuf {
        self.session.dir.clone()
    }

    fn edit(&self, rel: &str, from: &str, to: &str) {
        let path = self.dir().join(rel);
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.contains(from), "{rel} has no {from:?}");
        fs::write(&path, text.replacen(from, to, 1)).unwrap();
    }

    fn chain(&self) -> Chain {
        self.session.load().unwrap()
    }

    fn store(&self) -> Store {
        self.session.open_store(LockMode::Exclusive, &|_| {}).unwrap()
    }

    /// Builds `target` on seed `one`.
    fn build(&self, backend: &Backend, target: &str) -> Vec<(String, &'static str)> {
        let chain = self.chain();
        let plan = Plan::new(&chain);
        let store = self.store();
        let selection = plan.select(Some(target)).unwrap();
        let args = self.session.seed_args(&chain, &[]).args;
        let wanted = Wanted { chain: &chain, seeds: &[0], seed_args: &args, at_least: 1, selection: &selection };
        let inputs = self.session.ready(&wanted, &store, &bootstrap::fetch::Silent, backend).unwrap();
        let b = Build {
            chain: &chain,
            plan: &plan,
            store: &store,
            executor: backend.executor(),
            seed: &inputs.seeds[0],
            sources: inputs.sources,
            jobs: 2,
            events: &Silent,
            vary: Vec::new(),
            rebuild: false,
        };
        b.run(&selection).unwrap().into_iter().map(|(i, o)| (chain.step(i).name.clone(), o.as_str())).collect()
    }

    /// Verifies up to `stage` on both seeds.
    fn verify(&self, backend: &Backend, stage: &str) -> Report {
        let chain = self.chain();
        let plan = Plan::new(&chain);
        let store = self.store();
        let target = bootstrap::plan::stage_target(&chain, stage).unwrap();
        let selection = plan.through(target);
        let args = self.session.seed_args(&chain, &[]).args;
        let wanted = Wanted { chain: &chain, seeds: &[0, 1], seed_args: &args, at_least: 2, selection: &selection };
        let inputs = self.session.ready(&wanted, &store, &bootstrap::fetch::Silent, backend).unwrap();
        let run = Run { chain: &chain, plan: &plan, store: &store, executor: backend.executor(), rebuild: false };
        let events: Vec<&dyn bootstrap::build::Events> = vec![&Silent, &Silent];
        let lineages = self.session.lineages(run, &inputs.seeds, &inputs.sources, &events);
        let verifier = Verifier { chain: &chain, plan: &plan, store: &store, lineages, jobs: 2, trust: None };
        verifier.verify(target, &bootstrap::verify::Silent).unwrap()
    }

    /// `status`'s view: each stage's verification, and what locks it.
    fn states(&self) -> Vec<(String, Verification, Option<String>)> {
        let chain = self.chain();
        let plan = Plan::new(&chain);
        self.session.stage_states(&chain, &plan, None).into_iter().map(|s| (s.stage, s.verification, s.locked.map(|l| l.to_string()))).collect()
    }
}

fn dry(rule: impl Fn(&StepRequest) -> Dry + Send + Sync + 'static) -> Backend {
    Backend::DryRun(DryRun::new(Box::new(rule)))
}

fn ran(backend: &Backend) -> Vec<String> {
    let Backend::DryRun(d) = backend else { unreachable!() };
    d.ran().iter().map(|r| r.commands[0][0].trim_start_matches("/bin/make-").to_string()).collect()
}

/// The step a request is for (each runs `/bin/make-<step>`).
fn step_of(req: &StepRequest) -> &str {
    req.commands[0][0].trim_start_matches("/bin/make-")
}

/// Outputs that depend on nothing but the step's own name: a definition
/// change that leaves the bytes alone.
fn by_name(req: &StepRequest) -> Dry {
    Dry::Files(req.outputs.iter().map(|o| (format!("{}/f", o.trim_start_matches('/')), step_of(req).as_bytes().to_vec())).collect())
}

fn outcomes(v: &[(&str, &'static str)]) -> Vec<(String, &'static str)> {
    v.iter().map(|(s, o)| (s.to_string(), *o)).collect()
}

#[test]
fn a_build_runs_each_step_once_in_order_and_a_second_build_runs_nothing() {
    let w = World::new();
    let b = Backend::DryRun(DryRun::default());
    assert_eq!(w.build(&b, "stage2"), outcomes(&[("a", "built"), ("b", "built"), ("c", "built"), ("d", "built")]));
    assert_eq!(ran(&b), ["a", "b", "c", "d"]);
    assert_eq!(w.build(&b, "stage2"), outcomes(&[("a", "cached"), ("b", "cached"), ("c", "cached"), ("d", "cached")]));
    assert_eq!(ran(&b).len(), 4, "a cached step ran again");
}

#[test]
fn a_definition_change_reruns_the_step_and_everything_its_output_reaches() {
    let w = World::new();
    let b = Backend::DryRun(DryRun::default());
    w.build(&b, "stage2");
    // The default rule's output names the environment: a's bytes change.
    w.edit("stage0/steps.kdl", "FLAVOUR=\"plain\"", "FLAVOUR=\"spicy\"");
    assert_eq!(w.build(&b, "stage2"), outcomes(&[("a", "built"), ("b", "built"), ("c", "built"), ("d", "built")]));
    assert_eq!(ran(&b), ["a", "b", "c", "d", "a", "b", "c", "d"]);
}

#[test]
fn early_cutoff_a_rerun_step_with_the_same_bytes_leaves_its_dependents_cached() {
    let w = World::new();
    let b = dry(by_name);
    w.build(&b, "stage2");
    w.edit("stage0/steps.kdl", "FLAVOUR=\"plain\"", "FLAVOUR=\"spicy\"");
    assert_eq!(w.build(&b, "stage2"), outcomes(&[("a", "built"), ("b", "cached"), ("c", "cached"), ("d", "cached")]));
    assert_eq!(ran(&b), ["a", "b", "c", "d", "a"]);
}

#[test]
fn a_failed_step_blocks_what_needs_it_and_runs_nothing_after() {
    let w = World::new();
    let b = dry(|req| if step_of(req) == "b" { Dry::Exit(2) } else { dry::pure(req) });
    assert_eq!(w.build(&b, "stage2"), outcomes(&[("a", "built"), ("b", "failed"), ("c", "blocked"), ("d", "blocked")]));
    assert_eq!(ran(&b), ["a", "b"]);
    // A failure is not cached: the next build runs it again.
    w.build(&b, "stage2");
    assert_eq!(ran(&b), ["a", "b", "b"]);
}

#[test]
fn a_missing_output_fails_the_step() {
    let w = World::new();
    let b = dry(|req| if step_of(req) == "a" { Dry::Files(BTreeMap::new()) } else { dry::pure(req) });
    assert_eq!(w.build(&b, "a"), outcomes(&[("a", "failed")]));
}

#[test]
fn two_seeds_that_agree_verify_every_stage_and_status_says_so() {
    let w = World::new();
    let b = Backend::DryRun(DryRun::default());
    let report = w.verify(&b, "stage2");
    assert_eq!(report.verdict(), Verdict::Verified);
    assert_eq!(report.stages.iter().map(|s| (s.stage.as_str(), s.verdict)).collect::<Vec<_>>(), [
        ("stage0", Verdict::Verified),
        ("stage1", Verdict::Verified),
        ("stage2", Verdict::Verified)
    ]);
    // Each step ran once per seed.
    assert_eq!(ran(&b).len(), 8);
    let verified = Verification::Is(Verdict::Verified);
    assert_eq!(w.states(), [
        ("stage0".into(), verified.clone(), None),
        ("stage1".into(), verified.clone(), None),
        ("stage2".into(), verified, None)
    ]);
    // Verified again: every verdict stands, nothing runs.
    assert_eq!(w.verify(&b, "stage2").verdict(), Verdict::Verified);
    assert_eq!(ran(&b).len(), 8);
}

#[test]
fn seeds_that_disagree_are_a_mismatch_and_the_later_stages_stay_locked_and_unrun() {
    let w = World::new();
    // c's bytes depend on the seed's root: the two lineages disagree.
    let b = dry(|req| {
        if step_of(req) != "c" {
            return dry::pure(req);
        }
        let bootstrap::exec::Root::Dir(root) = &req.root else { unreachable!() };
        Dry::Files(BTreeMap::from([("out/c/f".to_string(), fs::read(root.join("etc/os-release")).unwrap())]))
    });
    let report = w.verify(&b, "stage2");
    assert_eq!(report.verdict(), Verdict::Mismatch);
    assert_eq!(report.stages.iter().map(|s| (s.stage.as_str(), s.verdict)).collect::<Vec<_>>(), [
        ("stage0", Verdict::Verified),
        ("stage1", Verdict::Mismatch)
    ]);
    assert_eq!(report.locked, ["stage2"]);
    assert!(!ran(&b).contains(&"d".to_string()), "a step of a locked stage ran: {:?}", ran(&b));
    let states = w.states();
    assert_eq!(states[0].1, Verification::Is(Verdict::Verified));
    assert_eq!(states[1].1, Verification::Is(Verdict::Mismatch));
    assert_eq!(states[2], ("stage2".into(), Verification::NeverRun, Some("stage1 is not verified".into())));
}

#[test]
fn an_output_that_misses_its_pin_on_every_seed_is_unexpected() {
    let w = World::new();
    let pin = "0000000000000000000000000000000000000000000000000000000000000000";
    w.edit("stage0/steps.kdl", "output \"/out/a\"", &format!("output \"/out/a\" sha256=\"{pin}\""));
    let b = dry(|req| {
        let rel = req.outputs[0].trim_start_matches('/').to_string();
        Dry::Files(BTreeMap::from([(rel, b"same everywhere\n".to_vec())]))
    });
    let report = w.verify(&b, "stage0");
    assert_eq!(report.verdict(), Verdict::Unexpected);
}

#[test]
fn an_edit_after_verification_makes_the_stage_stale_and_refuses_to_hand_it_on() {
    let w = World::new();
    let b = Backend::DryRun(DryRun::default());
    assert_eq!(w.verify(&b, "stage1").verdict(), Verdict::Verified);
    let chain = w.chain();
    let store = w.store();
    assert!(w.session.verified_stage(&chain, "stage1", &store).is_ok());
    drop(store);
    w.edit("stage1/steps.kdl", "/bin/make-c\"", "/bin/make-c\" \"--again\"");
    let states = w.states();
    assert_eq!(states[0].1, Verification::Is(Verdict::Verified));
    assert_eq!(states[1].1, Verification::Stale(Verdict::Verified));
    let chain = w.chain();
    let store = w.store();
    let refused = w.session.verified_stage(&chain, "stage1", &store).err().expect("a stale stage is handed on");
    assert_eq!(refused.exit_code(), bootstrap::exit::BLOCKED);
    assert!(refused.to_string().contains("its definition changed since it was verified"), "{refused}");
}

#[test]
fn a_verified_output_changed_in_the_store_is_damaged_and_never_handed_on() {
    let w = World::new();
    let b = Backend::DryRun(DryRun::default());
    assert_eq!(w.verify(&b, "stage0").verdict(), Verdict::Verified);
    let store = w.store();
    let receipt = bootstrap::verify::stage::read_receipt(store.root(), "stage0").unwrap();
    let (_, layer) = receipt.outputs().next().unwrap();
    let file = store.layer_path(&layer).join("out/a/dry-run");
    make_writable(&store.layer_path(&layer));
    fs::write(&file, "changed after it was verified\n").unwrap();
    drop(store);
    assert!(matches!(w.states()[0].1, Verification::Damaged { .. }), "{:?}", w.states()[0]);
    let chain = w.chain();
    let store = w.store();
    let refused = w.session.verified_stage(&chain, "stage0", &store).err().expect("a damaged stage is handed on");
    assert_eq!(refused.exit_code(), bootstrap::exit::VERIFICATION_FAILED);
}

fn make_writable(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    for e in walk(dir) {
        let mode = if e.is_dir() { 0o755 } else { 0o644 };
        fs::set_permissions(&e, fs::Permissions::from_mode(mode)).unwrap();
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![dir.to_path_buf()];
    if dir.is_dir() {
        for e in fs::read_dir(dir).unwrap() {
            out.extend(walk(&e.unwrap().path()));
        }
    }
    out
}

#[test]
fn the_world_is_its_own() {
    // Every test's chain and state live in its own temp dir.
    let w = World::new();
    assert!(w.dir().starts_with(w.tmp.path()));
    assert!(w.session.state.starts_with(w.tmp.path()));
}
