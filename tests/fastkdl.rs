//! The fast KDL path never differs from the kdl crate: on every fixture file
//! and on thousands of mutations of them, whenever the fast path accepts a
//! text, the crate parses it to the same nodes, names, values and spans.

mod common;

use bootstrap::chain::fastkdl;
use common::{Rng, corpora, mutate};
use kdl::{KdlDocument, KdlNode};

fn same_nodes(a: &[KdlNode], b: &[KdlNode], path: &str) -> Result<(), String> {
    if a.len() != b.len() {
        return Err(format!("{path}: {} nodes vs {}", a.len(), b.len()));
    }
    for (x, y) in a.iter().zip(b) {
        let here = format!("{path}/{}", x.name().value());
        let checks = [
            (x.name().value() == y.name().value(), "name"),
            (x.name().span() == y.name().span(), "name span"),
            (x.span() == y.span(), "node span"),
            (x.ty().is_none() && y.ty().is_none(), "type annotation"),
            (x.entries().len() == y.entries().len(), "entry count"),
        ];
        for (ok, what) in checks {
            if !ok {
                return Err(format!("{here}: {what} differs: {x:?} vs {y:?}"));
            }
        }
        for (e, f) in x.entries().iter().zip(y.entries()) {
            let same = e.name().map(|n| n.value()) == f.name().map(|n| n.value())
                && e.value() == f.value()
                && e.span() == f.span()
                && f.ty().is_none();
            if !same {
                return Err(format!("{here}: entry differs: {e:?} vs {f:?}"));
            }
        }
        match (x.children(), y.children()) {
            (None, None) => {}
            (Some(c), Some(d)) => same_nodes(c.nodes(), d.nodes(), &here)?,
            _ => return Err(format!("{here}: children block present on one side only")),
        }
    }
    Ok(())
}

/// Compares the fast path with the crate on one text; returns whether the
/// fast path took it.
fn compare(text: &str, what: &str) -> bool {
    let Some(fast) = fastkdl::parse(text) else { return false };
    let slow = KdlDocument::parse_v2(text)
        .unwrap_or_else(|e| panic!("{what}: fast path accepted what the crate rejects ({e:?}):\n{text}"));
    if let Err(diff) = same_nodes(fast.nodes(), slow.nodes(), "") {
        panic!("{what}: {diff}\n--- text ---\n{text}");
    }
    true
}

#[test]
fn fast_path_agrees_with_the_kdl_crate() {
    let corpora = corpora();
    let mut taken = 0;
    let mut total = 0;
    for files in &corpora {
        for f in files {
            if let Ok(text) = std::str::from_utf8(&f.bytes) {
                total += 1;
                taken += usize::from(compare(text, &f.path));
            }
        }
    }
    // The fixtures are mostly plain KDL: the fast path must take most of them,
    // or this test would compare nothing.
    assert!(taken * 2 > total, "fast path took only {taken} of {total} fixture files");

    let mut rng = Rng(0xFA57_CDF1_0000_0001);
    let mut mutated_taken = 0;
    for n in 0..20_000 {
        let files = &corpora[n % corpora.len()];
        let f = &files[rng.below(files.len())];
        let bytes = mutate(&mut rng, &f.bytes);
        if let Ok(text) = std::str::from_utf8(&bytes) {
            mutated_taken += usize::from(compare(text, &format!("mutation {n} of {}", f.path)));
        }
    }
    assert!(mutated_taken > 2_000, "fast path took only {mutated_taken} mutated texts");
}

/// Small texts at the edges of the subset.
#[test]
fn fast_path_edge_cases() {
    let cases = [
        "a",
        "a;",
        "a; b",
        "a 1 -2 #true #false",
        "a \"x\\\"y\\\\z\\n\\t\\r\"",
        "a k=\"v\" k2=3 k3=#false",
        "a {\n}\n",
        "a {}",
        "a { b; c }",
        "a { b 1 }; d",
        "a // trailing comment\nb",
        "a \"x\" // comment",
        "a {\n    b \"x\" {\n        c\n    }\n}\n",
        "\r\na 1\r\nb 2\r\n",
        "a   \t \"spaced\"   \n",
        "a-b.c_d e_f-g.h=1",
        "a { } // c",
        "a\n// only a comment\n",
    ];
    for text in cases {
        assert!(compare(text, text), "fast path should take {text:?}");
    }
    // Outside the subset: left to the crate, never guessed.
    for text in ["a 1.5", "a #null", "a b", "(t)a", "a (t)1", "a #\"raw\"#", "/- a", "a /* c */ 1", "a \"\\u{41}\"", "a{}", "a 007", "true", "a \\\n 1", "é"] {
        assert!(fastkdl::parse(text).is_none(), "fast path should leave {text:?} to the crate");
    }
}
