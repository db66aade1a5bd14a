//! Unpacking through `bootstrap fetch`: the four archive formats give the
//! same layer, and every hostile archive is refused with a message naming
//! the archive and the member, all in one run, leaving nothing behind.

mod common;

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::{Src, chain, payload, run_in, sha};

/// One archive member, written with raw header fields so hostile names pass.
enum M {
    File(&'static str, &'static [u8], u32),
    Dir(&'static str),
    Symlink(&'static str, &'static str),
    Hard(&'static str, &'static str),
    Char(&'static str),
    Fifo(&'static str),
    GlobalPax(&'static [u8]),
}

fn raw(field: &mut [u8], value: &str) {
    field.fill(0);
    field[..value.len()].copy_from_slice(value.as_bytes());
}

fn tar(members: &[M]) -> Vec<u8> {
    let mut out = Vec::new();
    for m in members {
        let mut h = tar::Header::new_ustar();
        h.set_mtime(0);
        h.set_mode(0o644);
        let mut data: &[u8] = b"";
        let (name, kind, link) = match m {
            M::File(n, d, mode) => {
                data = d;
                h.set_mode(*mode);
                (*n, tar::EntryType::Regular, "")
            }
            M::Dir(n) => (*n, tar::EntryType::Directory, ""),
            M::Symlink(n, t) => (*n, tar::EntryType::Symlink, *t),
            M::Hard(n, t) => (*n, tar::EntryType::Link, *t),
            M::Char(n) => (*n, tar::EntryType::Char, ""),
            M::Fifo(n) => (*n, tar::EntryType::Fifo, ""),
            M::GlobalPax(d) => {
                data = d;
                ("pax_global_header", tar::EntryType::XGlobalHeader, "")
            }
        };
        h.set_entry_type(kind);
        h.set_size(data.len() as u64);
        raw(&mut h.as_old_mut().name, name);
        raw(&mut h.as_old_mut().linkname, link);
        h.set_cksum();
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.extend_from_slice(&[0u8; 1024]);
    out
}

fn good() -> Vec<u8> {
    tar(&[
        M::GlobalPax(b"52 comment=0123456789abcdef0123456789abcdef01234567\n"),
        M::Dir("pkg-1.0/"),
        M::Dir("pkg-1.0/bin/"),
        M::File("pkg-1.0/bin/tool", b"#!/bin/sh\necho tool\n", 0o4755),
        M::File("pkg-1.0/README", b"read me\n", 0o600),
        M::Symlink("pkg-1.0/link", "README"),
        M::Hard("pkg-1.0/hard", "pkg-1.0/README"),
        M::Dir("pkg-1.0/sub/"),
        M::Symlink("pkg-1.0/sub/up", "../README"),
        M::Dir("pkg-1.0/empty/"),
    ])
}

fn gz(b: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

fn bz2(b: &[u8]) -> Vec<u8> {
    let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::default());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

fn xz(b: &[u8]) -> Vec<u8> {
    let mut e = liblzma::write::XzEncoder::new(Vec::new(), 6);
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

/// Legacy `.lzma` (LZMA_alone, as lzma-utils wrote it: coreutils-6.10 is
/// published so), with lzma-utils' default 8 MiB dictionary.
fn lzma(b: &[u8]) -> Vec<u8> {
    let opts = liblzma::stream::LzmaOptions::new_preset(6).unwrap();
    let stream = liblzma::stream::Stream::new_lzma_encoder(&opts).unwrap();
    let mut e = liblzma::write::XzEncoder::new_stream(Vec::new(), stream);
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

/// Puts `files` in `dir/mirror` and declares each as a source fetched from there.
fn mirror_chain(dir: &Path, files: &[(&'static str, Vec<u8>, Option<u32>)]) {
    let mirror = dir.join("mirror");
    fs::create_dir_all(&mirror).unwrap();
    let mut sources = Vec::new();
    for (name, bytes, unpack) in files {
        let file = format!("{name}.archive");
        fs::write(mirror.join(&file), bytes).unwrap();
        sources.push(Src { name, urls: vec![format!("https://example.invalid/{file}")], sha: sha(bytes), unpack: *unpack });
    }
    chain(dir, &sources);
}

#[test]
fn all_five_formats_unpack_to_the_same_normalised_layer() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let t = good();
    mirror_chain(dir, &[("plain", t.clone(), Some(1)), ("gz", gz(&t), Some(1)), ("bz2", bz2(&t), Some(1)), ("xz", xz(&t), Some(1)), ("lzma", lzma(&t), Some(1))]);
    let run = run_in(dir, &dir.join(".bootstrap"), &["--json", "--offline", "--distfiles", "mirror", "fetch"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let layers: Vec<&str> = v["sources"].as_array().unwrap().iter().map(|s| s["layer"].as_str().unwrap()).collect();
    assert_eq!(layers.len(), 5);
    assert!(layers.iter().all(|l| *l == layers[0]), "{layers:?}");

    let layer = dir.join(".bootstrap/layers").join(layers[0].trim_start_matches("blake3:"));
    let mode = |p: &str| fs::symlink_metadata(layer.join(p)).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode("bin/tool"), 0o755, "setuid dropped, exec kept");
    assert_eq!(mode("README"), 0o644);
    assert_eq!(fs::read(layer.join("hard")).unwrap(), b"read me\n");
    assert_eq!(fs::read_link(layer.join("link")).unwrap().to_str(), Some("README"));
    assert!(layer.join("empty").is_dir());
    assert!(!layer.join("pax_global_header").exists());
    // The layer's name is its tree digest, as `bootstrap hash` computes it.
    let hashed = run_in(dir, &dir.join(".bootstrap"), &["hash", layer.to_str().unwrap()]);
    assert_eq!(hashed.stdout.trim(), layers[0]);
}

#[test]
fn hostile_archives_are_refused_each_naming_archive_and_member() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let f = |n| M::File(n, b"x", 0o644);
    mirror_chain(
        dir,
        &[
            ("absolute", tar(&[f("/etc/evil")]), Some(0)),
            ("dotdot", tar(&[M::Dir("a/"), f("a/../../evil")]), Some(0)),
            ("link-absolute", tar(&[M::Symlink("l", "/etc")]), Some(0)),
            ("link-up", tar(&[M::Dir("d/"), M::Symlink("d/l", "../../outside")]), Some(0)),
            ("link-chain", tar(&[M::Dir("s/"), M::Symlink("s/b", ".."), M::Symlink("s/a", "b/..")]), Some(0)),
            ("through-link", tar(&[M::Dir("sub/"), M::Symlink("l", "sub"), f("l/file")]), Some(0)),
            ("hard-out", tar(&[M::Hard("h", "../x")]), Some(0)),
            ("hard-missing", tar(&[M::Hard("h", "nothere")]), Some(0)),
            ("device", tar(&[M::Dir("dev/"), M::Char("dev/null")]), Some(0)),
            ("fifo", tar(&[M::Fifo("p")]), Some(0)),
            ("not-an-archive", gz(&payload(5000, 11)), Some(0)),
            ("fine", tar(&[f("ok")]), Some(0)),
        ],
    );
    let run = run_in(dir, &dir.join(".bootstrap"), &["--offline", "--distfiles", "mirror", "fetch"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    insta::assert_snapshot!(run.stderr);
    // Only the fine archive became a layer; nothing half-made remains.
    let layers: Vec<_> = fs::read_dir(dir.join(".bootstrap/layers")).unwrap().collect();
    assert_eq!(layers.len(), 1);
    assert_eq!(fs::read_dir(dir.join(".bootstrap/index/unpack")).unwrap().count(), 1);
    assert_eq!(fs::read_dir(dir.join(".bootstrap/tmp")).unwrap().count(), 0);
}
