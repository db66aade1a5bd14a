//! `export` and `attest` on the mini chain: the OCI image layout is the
//! same twice and from each seed's lineage, the container engine loads and
//! runs it (`docker load`, skipped without an engine unless
//! BOOTSTRAP_REQUIRE_DOCKER=1), and the attestation is an in-toto
//! Statement v1 with SLSA Provenance v1 whose subjects are the exported
//! files.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};

use common::mini::Mini;
use common::sha;
use serde_json::Value;

fn verified(seeds: &str) -> Mini {
    let m = Mini::new();
    let r = m.run(&["verify", "stage0", "--seeds", seeds]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    m
}

/// Every file of a layout, by path, with its bytes.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(p.strip_prefix(dir).unwrap().display().to_string(), fs::read(&p).unwrap());
            }
        }
    }
    out
}

fn json_file(p: &Path) -> Value {
    serde_json::from_slice(&fs::read(p).unwrap()).unwrap()
}

/// The files of the layout's one layer: path to sha256 hex.
fn layer_files(dir: &Path) -> BTreeMap<String, String> {
    let index = json_file(&dir.join("index.json"));
    let manifest_digest = index["manifests"][0]["digest"].as_str().unwrap().trim_start_matches("sha256:");
    let manifest = json_file(&dir.join("blobs/sha256").join(manifest_digest));
    let layer = manifest["layers"][0]["digest"].as_str().unwrap().trim_start_matches("sha256:");
    let bytes = fs::read(dir.join("blobs/sha256").join(layer)).unwrap();
    assert_eq!(sha(&bytes), layer, "the layer blob is named by its sha256");
    let mut out = BTreeMap::new();
    let mut archive = tar::Archive::new(&bytes[..]);
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let h = entry.header();
        assert_eq!((h.mtime().unwrap(), h.uid().unwrap(), h.gid().unwrap()), (0, 0, 0), "SOURCE_DATE_EPOCH and root ownership");
        if h.entry_type().is_file() {
            let path = entry.path().unwrap().display().to_string();
            let mut data = Vec::new();
            entry.read_to_end(&mut data).unwrap();
            out.insert(path, sha(&data));
        }
    }
    out
}

#[test]
fn export_is_the_same_twice_and_from_each_seed() {
    let a = verified("busybox,debian");
    let dir = a.chain.parent().unwrap().join("image");
    let r = a.run(&["export", "stage0", "--oci", dir.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("bootstrap/mini:stage0"), "{}", r.stdout);
    let first = files(&dir);
    assert!(first.contains_key("oci-layout") && first.contains_key("index.json") && first.contains_key("manifest.json"), "{:?}", first.keys());
    let index = json_file(&dir.join("index.json"));
    assert_eq!(index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"], "stage0");
    // Every blob is named by its sha256.
    for (path, bytes) in first.iter().filter(|(p, _)| p.starts_with("blobs/sha256/")) {
        assert_eq!(&sha(bytes), path.trim_start_matches("blobs/sha256/"));
    }
    let layer = layer_files(&dir);
    assert_eq!(layer.get("out/hello.txt").map(String::as_str), Some("595414242916aac5fe60bad67a65908b466084ebc5d74c88590626fb112d06ec"));
    assert!(layer.contains_key("out/bin/hello"), "{layer:?}");

    // Again, over the first: the same bytes.
    let r = a.run(&["export", "stage0", "--oci", dir.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(files(&dir), first);

    // From a state directory whose first lineage is the other seed.
    let b = verified("debian,busybox");
    let other = b.chain.parent().unwrap().join("image");
    let r = b.run(&["export", "stage0", "--oci", other.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(fs::read(other.join("index.json")).unwrap(), first["index.json"]);
    assert_eq!(files(&other), first);

    // A directory that holds something else is left alone.
    let busy = a.chain.parent().unwrap().join("busy");
    fs::create_dir_all(&busy).unwrap();
    fs::write(busy.join("notes.txt"), "mine\n").unwrap();
    let r = a.run(&["export", "stage0", "--oci", busy.to_str().unwrap()]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("is not an OCI image layout"), "{}", r.stderr);
    assert_eq!(fs::read_dir(&busy).unwrap().count(), 1);

    // Only verified stages are exported.
    let r = a.run(&["export", "stage1", "--oci", a.chain.parent().unwrap().join("s1").to_str().unwrap()]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(r.stderr.contains("bootstrap::stage::not_verified"), "{}", r.stderr);
    let r = a.run(&["export", "stage0", "--oci", dir.to_str().unwrap(), "--tag", "Not A Tag"]);
    assert_eq!(r.code, 1);
}

/// `docker load` of the layout as a tar: the image ID is the config's
/// digest, and the hex0-built program runs in it.
#[test]
fn the_engine_loads_the_export_and_runs_what_it_holds() {
    let Some(_engine) = common::engine() else { return };
    let m = verified("busybox,debian");
    let dir = m.chain.parent().unwrap().join("image");
    let tag = format!("bootstrap-test/export-{}:stage0", std::process::id());
    let r = m.run(&["--json", "export", "stage0", "--oci", dir.to_str().unwrap(), "--tag", &tag]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    let tar = Command::new("tar").arg("-C").arg(&dir).args(["-c", "."]).output().unwrap();
    assert!(tar.status.success());
    let mut load = Command::new("docker").arg("load").stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("the docker CLI");
    std::io::Write::write_all(load.stdin.as_mut().unwrap(), &tar.stdout).unwrap();
    let out = load.wait_with_output().unwrap();
    assert!(out.status.success(), "docker load: {}", String::from_utf8_lossy(&out.stderr));
    let inspect = Command::new("docker").args(["image", "inspect", "--format", "{{.Id}} {{.Architecture}} {{.Created}}", &tag]).output().unwrap();
    let shown = String::from_utf8_lossy(&inspect.stdout).trim().to_string();
    let run = Command::new("docker").args(["run", "--rm", "--network", "none", &tag, "/out/bin/hello"]).output().unwrap();
    let _ = Command::new("docker").args(["rmi", "-f", &tag]).output();
    assert_eq!(shown, format!("{} amd64 1970-01-01T00:00:00Z", v["config"].as_str().unwrap()));
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    assert_eq!(String::from_utf8_lossy(&run.stdout), "hello from hex0\n");
}

/// Keys of an object, which must all be among `allowed` and include `required`.
fn keys(v: &Value, what: &str, allowed: &[&str], required: &[&str]) {
    let obj = v.as_object().unwrap_or_else(|| panic!("{what} is not an object: {v}"));
    for k in obj.keys() {
        assert!(allowed.contains(&k.as_str()), "{what} has `{k}`, not a field of the spec (allowed: {allowed:?})");
    }
    for r in required {
        assert!(obj.contains_key(*r), "{what} lacks `{r}`");
    }
}

/// A DigestSet: algorithm names to lowercase hex.
fn digest_set(v: &Value, what: &str) {
    let obj = v.as_object().unwrap_or_else(|| panic!("{what}.digest is not an object"));
    assert!(!obj.is_empty(), "{what}.digest is empty");
    for (alg, hex) in obj {
        let hex = hex.as_str().unwrap();
        let len = match alg.as_str() {
            "sha256" | "blake3" => 64,
            other => panic!("{what}: unexpected digest algorithm {other}"),
        };
        assert!(hex.len() == len && hex.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()), "{what}: {alg} {hex}");
    }
}

/// A SLSA v1 ResourceDescriptor.
fn resource(v: &Value, what: &str) {
    keys(v, what, &["uri", "digest", "name", "downloadLocation", "mediaType", "content", "annotations"], &[]);
    assert!(v.get("uri").is_some() || v.get("digest").is_some() || v.get("content").is_some(), "{what} needs uri, digest or content");
    if let Some(d) = v.get("digest") {
        digest_set(d, what);
    }
}

fn rfc3339(s: &str) -> bool {
    let b = s.as_bytes();
    s.len() == 20 && b[4] == b'-' && b[7] == b'-' && b[10] == b'T' && b[13] == b':' && b[16] == b':' && b[19] == b'Z'
}

#[test]
fn attest_is_an_in_toto_statement_with_slsa_provenance_of_the_exported_files() {
    let m = verified("busybox,debian");
    let r = m.run(&["attest", "stage0"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let st: Value = serde_json::from_str(&r.stdout).unwrap();
    // in-toto Statement v1.
    keys(&st, "the statement", &["_type", "subject", "predicateType", "predicate"], &["_type", "subject", "predicateType", "predicate"]);
    assert_eq!(st["_type"], "https://in-toto.io/Statement/v1");
    assert_eq!(st["predicateType"], "https://slsa.dev/provenance/v1");
    let subjects = st["subject"].as_array().unwrap();
    assert!(!subjects.is_empty());
    for s in subjects {
        keys(s, "a subject", &["name", "digest", "uri", "annotations", "content", "downloadLocation", "mediaType"], &["name", "digest"]);
        digest_set(&s["digest"], "a subject");
    }
    // SLSA Provenance v1.
    let p = &st["predicate"];
    keys(p, "the predicate", &["buildDefinition", "runDetails"], &["buildDefinition", "runDetails"]);
    let bd = &p["buildDefinition"];
    keys(bd, "buildDefinition", &["buildType", "externalParameters", "internalParameters", "resolvedDependencies"], &["buildType", "externalParameters"]);
    assert!(bd["buildType"].as_str().unwrap().contains(':'), "buildType is a URI");
    assert_eq!(bd["externalParameters"]["stage"], "stage0");
    let deps = bd["resolvedDependencies"].as_array().unwrap();
    for (i, d) in deps.iter().enumerate() {
        resource(d, &format!("resolvedDependencies[{i}]"));
    }
    let names: Vec<&str> = deps.iter().map(|d| d["name"].as_str().unwrap()).collect();
    assert!(names.contains(&"source:hex-programs") && names.contains(&"seed:busybox") && names.contains(&"seed:debian"), "{names:?}");
    let rd = &p["runDetails"];
    keys(rd, "runDetails", &["builder", "metadata", "byproducts"], &["builder"]);
    keys(&rd["builder"], "builder", &["id", "version", "builderDependencies"], &["id"]);
    keys(&rd["metadata"], "metadata", &["invocationId", "startedOn", "finishedOn"], &[]);
    assert!(rfc3339(rd["metadata"]["finishedOn"].as_str().unwrap()), "{}", rd["metadata"]["finishedOn"]);
    for (i, b) in rd["byproducts"].as_array().unwrap().iter().enumerate() {
        resource(b, &format!("byproducts[{i}]"));
    }

    // The subjects are exactly the files of the exported image.
    let dir = m.chain.parent().unwrap().join("image");
    assert_eq!(m.run(&["export", "stage0", "--oci", dir.to_str().unwrap()]).code, 0);
    let attested: BTreeMap<String, String> =
        subjects.iter().map(|s| (s["name"].as_str().unwrap().to_string(), s["digest"]["sha256"].as_str().unwrap().to_string())).collect();
    assert_eq!(attested, layer_files(&dir));

    // Deterministic apart from the timestamp; -o writes the same document.
    let file = m.chain.parent().unwrap().join("stage0.intoto.json");
    let r = m.run(&["attest", "stage0", "-o", file.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.is_empty());
    assert_eq!(fs::read_to_string(&file).unwrap(), serde_json::to_string_pretty(&st).unwrap() + "\n");
}

#[test]
fn attest_vsa_is_a_slsa_verification_summary_passed_only_when_signed_as_required() {
    let m = verified("busybox,debian");
    assert_eq!(m.run(&["snapshot", "stage0"]).code, 0);
    let provenance = m.run(&["attest", "stage0"]);
    assert_eq!(provenance.code, 0, "{}", provenance.stderr);
    let prov: Value = serde_json::from_str(&provenance.stdout).unwrap();
    let r = m.run(&["attest", "stage0", "--vsa"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let st: Value = serde_json::from_str(&r.stdout).unwrap();
    keys(&st, "the statement", &["_type", "subject", "predicateType", "predicate"], &["_type", "subject", "predicateType", "predicate"]);
    assert_eq!(st["_type"], "https://in-toto.io/Statement/v1");
    assert_eq!(st["predicateType"], "https://slsa.dev/verification_summary/v1");
    assert_eq!(st["subject"], prov["subject"], "the same files as the provenance statement");
    // SLSA Verification Summary v1: its fields, and extension fields named by URIs.
    let p = &st["predicate"];
    let spec = [
        "verifier",
        "timeVerified",
        "resourceUri",
        "policy",
        "inputAttestations",
        "verificationResult",
        "verifiedLevels",
        "dependencyLevels",
        "slsaVersion",
        "urn:bootstrap:seeds",
    ];
    keys(p, "the predicate", &spec, &["verifier", "timeVerified", "resourceUri", "policy", "verificationResult", "verifiedLevels"]);
    keys(&p["verifier"], "verifier", &["id", "version"], &["id"]);
    assert!(p["verifier"]["id"].as_str().unwrap().contains(':'), "verifier.id is a URI");
    assert!(rfc3339(p["timeVerified"].as_str().unwrap()), "{}", p["timeVerified"]);
    assert!(p["resourceUri"].as_str().unwrap().starts_with("urn:bootstrap:stage:mini:stage0@blake3:"), "{}", p["resourceUri"]);
    resource(&p["policy"], "policy");
    assert!(p["policy"]["uri"].as_str().unwrap().contains(':'), "policy.uri is a URI");
    let snapshot = fs::read(m.chain.join("snapshots/stage0.kdl")).unwrap();
    assert_eq!(p["policy"]["annotations"]["snapshot"]["sha256"], sha(&snapshot));
    assert!(p["policy"]["annotations"]["trust"].is_null(), "no chain/trust.kdl here");
    let inputs = p["inputAttestations"].as_array().unwrap();
    for (i, a) in inputs.iter().enumerate() {
        resource(a, &format!("inputAttestations[{i}]"));
        assert!(a.get("digest").is_some(), "inputAttestations[{i}] must have a digest");
    }
    assert_eq!(inputs[0]["digest"]["sha256"], sha(provenance.stdout.as_bytes()), "the provenance statement, as attest writes it");
    assert_eq!(p["verificationResult"], "PASSED");
    assert_eq!(p["verifiedLevels"], serde_json::json!(["BOOTSTRAP_REPRODUCED_ON_INDEPENDENT_SEEDS"]));
    for level in p["verifiedLevels"].as_array().unwrap() {
        let level = level.as_str().unwrap();
        assert!(level == "FAILED" || !level.starts_with("SLSA_"), "custom levels must not start with SLSA_: {level}");
    }
    let seeds: Vec<&str> = p["urn:bootstrap:seeds"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(seeds, ["busybox", "debian"]);

    // A rule that one maintainer signs: FAILED (written, exit 2) until she does.
    let gpg = common::pgp::Gpg::new();
    let alice = gpg.generate("alice", "ed25519", "never", "", None);
    fs::create_dir_all(m.chain.join("chain/keys")).unwrap();
    gpg.export(&alice.fpr, &m.chain.join("chain/keys/alice.asc"));
    let trust = format!(
        "trust {{\n    signer \"alice\" role=\"maintainer\" fingerprint=\"{}\" cert=\"keys/alice.asc\"\n    require role=\"maintainer\" count=1\n}}\n",
        alice.fpr
    );
    fs::write(m.chain.join("chain/trust.kdl"), &trust).unwrap();
    let r = m.run(&["attest", "stage0", "--vsa"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    let failed: Value = serde_json::from_str(&r.stdout).expect("the summary is written even when it says FAILED");
    assert_eq!(failed["predicate"]["verificationResult"], "FAILED");
    assert_eq!(failed["predicate"]["verifiedLevels"], serde_json::json!(["FAILED"]));
    assert_eq!(failed["predicate"]["policy"]["digest"]["sha256"], sha(trust.as_bytes()));
    let secret = m.chain.parent().unwrap().join("alice.key");
    gpg.export_secret(&alice.fpr, "", &secret);
    let r = m.run(&["sign", "stage0", "--key", secret.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = m.run(&["attest", "stage0", "--vsa"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let passed: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(passed["predicate"]["verificationResult"], "PASSED");
    let signature = fs::read(m.chain.join(format!("snapshots/signatures/stage0/{}.asc", alice.fpr))).unwrap();
    let names: Vec<&str> = passed["predicate"]["inputAttestations"].as_array().unwrap().iter().map(|a| a["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["provenance:stage0".to_string(), format!("snapshots/signatures/stage0/{}.asc", alice.fpr)]);
    assert_eq!(passed["predicate"]["inputAttestations"][1]["digest"]["sha256"], sha(&signature));
    // A summary always records the signature check: --no-signatures does not go with it.
    assert_eq!(m.run(&["attest", "stage0", "--vsa", "--no-signatures"]).code, 1);
}
