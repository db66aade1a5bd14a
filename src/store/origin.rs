//! Where the store's source objects first came from, kept beside them so a
//! source found already in the store can still say where its bytes came
//! from (receipts, `audit`, `fetch --json`).
//!
//! `index/origin/sha256-<hex>` describes a source file (`sources/<hex>`),
//! `index/origin/blake3-<hex>` a layer a source was unpacked or checked out
//! to (`layers/<hex>/`). Each is a small JSON document ([`ObjectOrigin`]),
//! written once, when the object is first committed for a source, and never
//! replaced: the first place is the one recorded. An origin says nothing
//! about trust (the object's name does that); losing one only makes the
//! place unknown.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{Store, StoreError};
use crate::hash::{Blake3, Sha256};

/// Where an object first came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectOrigin {
    /// The URL, the distfiles path, or `git URL@COMMIT`.
    pub from: String,
    /// For a layer unpacked from an archive, the archive's sha256.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archive: Option<Sha256>,
    /// The size in bytes of the file (or of the archive a layer came from).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
}

/// What an origin record describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Object {
    /// A file under `sources/`.
    Source(Sha256),
    /// A tree under `layers/`.
    Layer(Blake3),
}

impl Object {
    /// The record's file name: `sha256-<hex>` or `blake3-<hex>`.
    pub fn key(&self) -> String {
        match self {
            Object::Source(s) => format!("sha256-{}", s.hex()),
            Object::Layer(l) => format!("blake3-{}", l.hex()),
        }
    }

    /// The object a record's file name describes, if it is one.
    pub fn from_key(key: &str) -> Option<Object> {
        let (algo, hex) = key.split_once('-')?;
        match algo {
            "sha256" => Sha256::from_hex(hex).map(Object::Source),
            "blake3" => Blake3::from_hex(hex).map(Object::Layer),
            _ => None,
        }
    }

    /// The digest as receipts write it (`sha256:…`, `blake3:…`).
    pub fn digest(&self) -> String {
        match self {
            Object::Source(s) => s.to_string(),
            Object::Layer(l) => l.to_string(),
        }
    }
}

impl Store {
    fn origin_path(&self, object: Object) -> PathBuf {
        self.root().join("index").join("origin").join(object.key())
    }

    /// Where `object` first came from, when recorded and readable.
    pub fn origin(&self, object: Object) -> Option<ObjectOrigin> {
        let bytes = std::fs::read(self.origin_path(object)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Records where `object` came from, unless a place is recorded already
    /// (the first place wins).
    pub fn record_origin(&self, object: Object, origin: &ObjectOrigin) -> Result<(), StoreError> {
        let path = self.origin_path(object);
        if path.is_file() {
            return Ok(());
        }
        let mut bytes = serde_json::to_vec(origin).map_err(|e| StoreError::Io { path: path.clone(), source: e.into() })?;
        bytes.push(b'\n');
        self.write_atomic(&path, &bytes)
    }
}
