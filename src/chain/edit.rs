//! Edits of `chain/chain.kdl` that keep everything else as it was: the
//! text is changed in place (no re-serialising of the KDL document), so
//! comments, blank lines and formatting survive byte for byte.

/// The byte range of the top-level `seed` node called `name`, from the
/// start of its first line to the end of its last line (with the line
/// break), when there is one.
fn seed_range(text: &str, name: &str) -> Option<(usize, usize)> {
    let doc: kdl::KdlDocument = text.parse().ok()?;
    let node = doc.nodes().iter().find(|n| {
        n.name().value() == "seed"
            && n.entries().iter().find(|e| e.name().is_none()).and_then(|e| e.value().as_string()) == Some(name)
    })?;
    let span = node.span();
    let start = text[..span.offset()].rfind('\n').map_or(0, |i| i + 1);
    let end = span.offset() + span.len();
    let end = text[end..].find('\n').map_or(text.len(), |i| end + i + 1);
    Some((start, end))
}

/// The end of the line of the last top-level `seed` node, or of the
/// `chain` node when there is no seed.
fn insertion_point(text: &str) -> Option<usize> {
    let doc: kdl::KdlDocument = text.parse().ok()?;
    let node = doc.nodes().iter().rev().find(|n| n.name().value() == "seed").or_else(|| doc.nodes().iter().find(|n| n.name().value() == "chain"))?;
    let end = node.span().offset() + node.span().len();
    Some(text[end..].find('\n').map_or(text.len(), |i| end + i + 1))
}

/// `text` with `node` (a complete `seed` node, ending in a line break)
/// added after the last seed, or put in place of the seed `replace`.
pub fn put_seed(text: &str, node: &str, replace: Option<&str>) -> Result<String, String> {
    let (start, end) = match replace {
        Some(old) => seed_range(text, old).ok_or_else(|| format!("chain/chain.kdl has no `seed \"{old}\"` node"))?,
        None => {
            let at = insertion_point(text).ok_or("chain/chain.kdl has no `chain` node to add a seed after")?;
            (at, at)
        }
    };
    let mut out = String::with_capacity(text.len() + node.len() + 1);
    out.push_str(&text[..start]);
    // A file that does not end in a line break still gets the node on its own line.
    if start > 0 && !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(node);
    out.push_str(&text[end..]);
    Ok(out)
}

/// A KDL string literal for any text.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHAIN: &str = "// the chain\nchain \"c\" {\n    arch \"x86_64\"   // odd spacing kept\n    stage \"s\"\n}\n\n// first seed\nseed \"a\" { description \"A\" }\nseed \"b\" {\n    description \"B\"\n}\n// trailing comment\n";

    #[test]
    fn a_seed_goes_after_the_last_one_and_nothing_else_moves() {
        let out = put_seed(CHAIN, "seed \"n\" { description \"N\" }\n", None).unwrap();
        assert_eq!(out, CHAIN.replace("}\n// trailing", "}\nseed \"n\" { description \"N\" }\n// trailing"));
    }

    #[test]
    fn a_replaced_seed_leaves_its_neighbours_and_comments() {
        let out = put_seed(CHAIN, "seed \"n\" { description \"N\" }\n", Some("a")).unwrap();
        assert_eq!(out, CHAIN.replace("seed \"a\" { description \"A\" }\n", "seed \"n\" { description \"N\" }\n"));
        let out = put_seed(CHAIN, "seed \"n\" {}\n", Some("b")).unwrap();
        assert_eq!(out, CHAIN.replace("seed \"b\" {\n    description \"B\"\n}\n", "seed \"n\" {}\n"));
        assert!(put_seed(CHAIN, "seed \"n\" {}\n", Some("zz")).is_err());
    }
}
