//! Helpers shared by the integration tests: run the built binary the way a
//! user would, with no colour and a fixed width, and a state directory of
//! the test's own.

#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use bootstrap::chain::Input;

pub mod http;
pub mod mini;
pub mod pgp;
pub mod real;
pub mod remote;

/// What one run of the binary produced.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A fixture directory under tests/fixtures.
pub fn fixture(rel: &str) -> PathBuf {
    root().join("tests/fixtures").join(rel)
}

/// Runs `bootstrap ARGS` in `cwd`, with a fresh state directory under `state`.
pub fn run_in(cwd: &Path, state: &Path, args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_bootstrap"))
        .current_dir(cwd)
        .arg("--state")
        .arg(state)
        .args(args)
        .env("NO_COLOR", "1")
        .env("COLUMNS", "80")
        .env_remove("BOOTSTRAP_STATE")
        .output()
        .expect("the bootstrap binary runs");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Copies a directory tree (files and directories only).
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// `step → definition digest` from `plan --json` output.
pub fn digests(plan_json: &str) -> std::collections::BTreeMap<String, String> {
    let v: serde_json::Value = serde_json::from_str(plan_json).expect("plan --json is JSON");
    v["steps"]
        .as_array()
        .expect("steps array")
        .iter()
        .map(|s| (s["step"].as_str().unwrap().to_owned(), s["definition_digest"].as_str().unwrap().to_owned()))
        .collect()
}

/// splitmix64: tiny, deterministic, good enough to pick mutations.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 { 0 } else { (self.next() % n as u64) as usize }
    }
}

/// Every fixture chain, as in-memory file sets.
pub fn corpora() -> Vec<Vec<Input>> {
    let mut dirs = vec![fixture("digests"), fixture("reformatted")];
    let mut bad: Vec<_> = std::fs::read_dir(fixture("bad")).unwrap().map(|e| e.unwrap().path()).collect();
    bad.sort();
    dirs.extend(bad);
    dirs.iter()
        .map(|dir| {
            let mut files = Vec::new();
            collect(dir, dir, &mut files);
            files
        })
        .collect()
}

pub fn collect(base: &std::path::Path, dir: &std::path::Path, out: &mut Vec<Input>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            collect(base, &entry.path(), out);
        } else {
            let path = entry.path().strip_prefix(base).unwrap().to_string_lossy().replace('\\', "/");
            out.push(Input { path, bytes: std::fs::read(entry.path()).unwrap() });
        }
    }
}

pub fn mutate(rng: &mut Rng, bytes: &[u8]) -> Vec<u8> {
    let mut b = bytes.to_vec();
    match rng.below(6) {
        0 | 1 => {
            // Flip one to three bytes, to anything (including invalid UTF-8).
            for _ in 0..=rng.below(3) {
                if !b.is_empty() {
                    let i = rng.below(b.len());
                    b[i] ^= 1 << rng.below(8);
                }
            }
        }
        2 => {
            // Replace a byte with a KDL-significant one.
            const SPECIAL: &[u8] = b"{}\"#;=()/\\*\n -0.";
            if !b.is_empty() {
                let i = rng.below(b.len());
                b[i] = SPECIAL[rng.below(SPECIAL.len())];
            }
        }
        3 => b.truncate(rng.below(b.len() + 1)),
        4 | 5 => {
            let text = String::from_utf8_lossy(&b).into_owned();
            let mut lines: Vec<&str> = text.split_inclusive('\n').collect();
            if !lines.is_empty() {
                let i = rng.below(lines.len());
                if rng.below(2) == 0 {
                    let line = lines[i];
                    lines.insert(rng.below(lines.len() + 1), line);
                } else {
                    lines.remove(i);
                }
            }
            b = lines.concat().into_bytes();
        }
        _ => unreachable!(),
    }
    b
}

pub fn sha(bytes: &[u8]) -> String {
    bootstrap::hash::to_hex(&<sha2::Sha256 as sha2::Digest>::digest(bytes))
}

/// Deterministic pseudo-random bytes.
pub fn payload(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng(seed);
    (0..len).map(|_| rng.next() as u8).collect()
}

pub struct Src {
    pub name: &'static str,
    pub urls: Vec<String>,
    pub sha: String,
    pub unpack: Option<u32>,
}

/// A one-stage chain declaring `sources`, all used by one step.
pub fn chain(dir: &Path, sources: &[Src]) {
    fs::create_dir_all(dir.join("chain")).unwrap();
    fs::create_dir_all(dir.join("stage0")).unwrap();
    fs::write(
        dir.join("chain/chain.kdl"),
        "chain \"t\" {\n    arch \"x86_64\"\n    source-date-epoch 0\n    stage \"stage0\" description=\"s\"\n}\n\
         seed \"a\" { description \"a\" }\nseed \"b\" { description \"b\" }\n",
    )
    .unwrap();
    let mut text = String::new();
    for s in sources {
        text.push_str(&format!("source \"{}\" {{\n", s.name));
        for u in &s.urls {
            text.push_str(&format!("    url \"{u}\"\n"));
        }
        text.push_str(&format!("    sha256 \"{}\"\n", s.sha));
        if let Some(n) = s.unpack {
            text.push_str(&format!("    unpack strip-components={n}\n"));
        }
        text.push_str("}\n");
    }
    fs::write(dir.join("chain/sources.kdl"), text).unwrap();
    let uses: String = sources.iter().map(|s| format!("    source \"{}\"\n", s.name)).collect();
    fs::write(
        dir.join("stage0/use.kdl"),
        format!("step \"use\" {{\n    root \"seed\"\n{uses}    run \"/bin/true\"\n    output \"/out\"\n}}\n"),
    )
    .unwrap();
}


/// The two test seeds (busybox, debian), built once per test process by
/// tests/seeds/build.sh and cached across runs under target/test-seeds.
pub fn seeds() -> &'static Path {
    static SEEDS: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    SEEDS.get_or_init(|| {
        let out = root().join("target/test-seeds");
        let ok = Command::new(root().join("tests/seeds/build.sh")).arg(&out).status().expect("run tests/seeds/build.sh");
        assert!(ok.success(), "tests/seeds/build.sh failed");
        out
    })
}

/// The OCI backend, when an engine answers at `DOCKER_HOST` (or the default
/// socket). Without one it prints why and gives `None`, so the test skips;
/// with `BOOTSTRAP_REQUIRE_DOCKER=1` (set by `.ci/run`) it fails instead.
pub fn engine() -> Option<bootstrap::exec::oci::OciBackend> {
    match bootstrap::exec::oci::OciBackend::connect() {
        Ok(b) => Some(b),
        Err(e) if std::env::var("BOOTSTRAP_REQUIRE_DOCKER").is_ok_and(|v| v == "1") => {
            panic!("BOOTSTRAP_REQUIRE_DOCKER=1 but no container engine: {e}")
        }
        Err(e) => {
            eprintln!("skipped: no container engine ({e}); set BOOTSTRAP_REQUIRE_DOCKER=1 to make this a failure");
            None
        }
    }
}

/// The OCI backend on a Podman API service at `BOOTSTRAP_PODMAN_HOST`
/// (default `unix:///run/podman/podman.sock`), as [`engine`] does for
/// Docker; `BOOTSTRAP_REQUIRE_PODMAN=1` (set by `.ci/run`) makes its
/// absence a failure. An engine there that is not Podman is a failure too.
pub fn podman() -> Option<bootstrap::exec::oci::OciBackend> {
    let at = std::env::var("BOOTSTRAP_PODMAN_HOST").unwrap_or_else(|_| "unix:///run/podman/podman.sock".into());
    match bootstrap::exec::oci::OciBackend::connect_to(&at) {
        Ok(b) => {
            use bootstrap::exec::Executor;
            let product = b.container_engine().unwrap_or_default().to_string();
            assert!(product.starts_with("Podman"), "the engine at {at} is {product}, not Podman");
            Some(b)
        }
        Err(e) if std::env::var("BOOTSTRAP_REQUIRE_PODMAN").is_ok_and(|v| v == "1") => {
            panic!("BOOTSTRAP_REQUIRE_PODMAN=1 but no Podman service: {e}")
        }
        Err(e) => {
            eprintln!("skipped: no Podman service ({e}); set BOOTSTRAP_REQUIRE_PODMAN=1 to make this a failure");
            None
        }
    }
}

/// The image ID of test seed `name` (its tarball from tests/seeds/build.sh,
/// loaded into the engine once per test process).
pub fn seed_image(backend: &bootstrap::exec::oci::OciBackend, name: &str) -> bootstrap::hash::Sha256 {
    use std::collections::HashMap;
    use std::sync::Mutex;
    static DONE: Mutex<Option<HashMap<String, bootstrap::hash::Sha256>>> = Mutex::new(None);
    let mut done = DONE.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(id) = done.as_ref().and_then(|m| m.get(name)) {
        return *id;
    }
    let layer = bootstrap::exec::oci::image::read_rootfs(&seeds().join(format!("{name}.tar"))).expect("read the test seed's tarball");
    let id = backend.import(name, &layer).expect("load the test seed into the engine").id;
    done.get_or_insert_with(HashMap::new).insert(name.to_string(), id);
    id
}

/// Runs of hex digits (12 or more) become `[D1]`, `[D2]`, … by first
/// appearance (a short digest and its full form get the same label, so
/// agreement between seeds stays visible), durations `[T]`, the state
/// directory `[STATE]`.
pub fn redact(s: &str, state: &Path) -> String {
    let s = s.replace(&state.display().to_string(), "[STATE]");
    let mut labels: Vec<String> = Vec::new();
    let mut out = String::new();
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let hex = chars[i..].iter().take_while(|c| c.is_ascii_hexdigit()).count();
        let boundary = i == 0 || !chars[i - 1].is_ascii_alphanumeric();
        if boundary && hex >= 12 {
            let key: String = chars[i..i + 12].iter().collect();
            let n = labels.iter().position(|l| *l == key).unwrap_or_else(|| {
                labels.push(key);
                labels.len() - 1
            });
            out.push_str(&format!("[D{}]", n + 1));
            i += hex;
            continue;
        }
        // 12.3s
        let digits = chars[i..].iter().take_while(|c| c.is_ascii_digit()).count();
        if boundary && digits > 0 && chars.get(i + digits) == Some(&'.') {
            let frac = chars[i + digits + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
            if frac > 0 && chars.get(i + digits + 1 + frac) == Some(&'s') {
                out.push_str("[T]");
                i += digits + 1 + frac + 1;
                continue;
            }
        }
        out.push(chars[i]);
        i += 1;
    }
    out
}

/// Whether a rendered diagnostic says `what`, however miette wrapped it.
pub fn says(rendered: &str, what: &str) -> bool {
    let flat = |s: &str| s.split_whitespace().filter(|w| *w != "│").collect::<Vec<_>>().join(" ");
    flat(rendered).contains(&flat(what))
}
