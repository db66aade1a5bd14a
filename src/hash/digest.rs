//! The two digest types and their text form (`sha256:<hex>`, `blake3:<hex>`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Lowercase hex of `bytes`.
pub fn to_hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(HEX[(b >> 4) as usize] as char);
        s.push(HEX[(b & 15) as usize] as char);
    }
    s
}

/// Parses exactly 64 lowercase or uppercase hex digits.
pub fn from_hex32(s: &str) -> Option<[u8; 32]> {
    let b = s.as_bytes();
    if b.len() != 64 {
        return None;
    }
    let nib = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = (nib(b[2 * i])? << 4) | nib(b[2 * i + 1])?;
    }
    Some(out)
}

/// A digest string that did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{text}` is not a {algo} digest: expected `{algo}:` followed by 64 hex digits")]
pub struct BadDigest {
    /// The text that was given.
    pub text: String,
    /// The algorithm that was expected.
    pub algo: &'static str,
}

macro_rules! digest_type {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub [u8; 32]);

        impl $name {
            /// The algorithm prefix used in the text form, without the colon.
            pub const ALGO: &'static str = $prefix;

            /// Lowercase hex of the 32 bytes, without the prefix.
            pub fn hex(&self) -> String {
                to_hex(&self.0)
            }

            /// Parses bare hex (no prefix).
            pub fn from_hex(s: &str) -> Option<Self> {
                from_hex32(s).map(Self)
            }

            /// The first 12 hex digits, for tables.
            pub fn short(&self) -> String {
                self.hex()[..12].to_string()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}:{}", $prefix, self.hex())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(self, f)
            }
        }

        impl FromStr for $name {
            type Err = BadDigest;
            fn from_str(s: &str) -> Result<Self, BadDigest> {
                s.strip_prefix(concat!($prefix, ":"))
                    .and_then(Self::from_hex)
                    .ok_or_else(|| BadDigest { text: s.to_string(), algo: $prefix })
            }
        }

        // Text (`algo:hex`) in human-readable formats such as JSON; the 32
        // raw bytes in binary ones such as postcard.
        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                if s.is_human_readable() { s.collect_str(self) } else { s.serialize_bytes(&self.0) }
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> serde::de::Visitor<'de> for V {
                    type Value = $name;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        write!(f, "a {} digest", $prefix)
                    }
                    fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<$name, E> {
                        s.parse().map_err(E::custom)
                    }
                    fn visit_bytes<E: serde::de::Error>(self, b: &[u8]) -> Result<$name, E> {
                        <[u8; 32]>::try_from(b).map($name).map_err(|_| E::invalid_length(b.len(), &self))
                    }
                }
                if d.is_human_readable() { d.deserialize_str(V) } else { d.deserialize_bytes(V) }
            }
        }
    };
}

digest_type!(
    /// A SHA-256 digest. Text form `sha256:<64 lowercase hex>`; this is what
    /// sources are pinned and stored by, and what every captured file also gets.
    Sha256,
    "sha256"
);

digest_type!(
    /// A BLAKE3 digest (32 bytes). Text form `blake3:<64 lowercase hex>`; tree
    /// digests and log names use it.
    Blake3,
    "blake3"
);

/// What identifies a seed: the tree digest of its root filesystem (local
/// backend), or the ID of the image it is (OCI backend; the sha256 of the
/// image's configuration, which names its layers by their own sha256).
/// Text form `blake3:<hex>` or `sha256:<hex>`, in every format.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SeedId {
    /// A root filesystem's tree digest.
    Tree(Blake3),
    /// An image ID.
    Image(Sha256),
}

impl fmt::Display for SeedId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SeedId::Tree(d) => d.fmt(f),
            SeedId::Image(d) => d.fmt(f),
        }
    }
}

impl fmt::Debug for SeedId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for SeedId {
    type Err = BadDigest;
    fn from_str(s: &str) -> Result<Self, BadDigest> {
        if s.starts_with("sha256:") { s.parse().map(SeedId::Image) } else { s.parse().map(SeedId::Tree) }
    }
}

impl Serialize for SeedId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for SeedId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_form_round_trips() {
        let d = Sha256([0xab; 32]);
        let s = d.to_string();
        assert_eq!(s, format!("sha256:{}", "ab".repeat(32)));
        assert_eq!(s.parse::<Sha256>(), Ok(d));
        assert!(s.parse::<Blake3>().is_err());
        assert!("sha256:abc".parse::<Sha256>().is_err());
        assert!(format!("sha256:{}", "zz".repeat(32)).parse::<Sha256>().is_err());
    }
}
