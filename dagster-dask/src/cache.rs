//! The cache by code version (Dagster's memoization): a step whose op has a code version
//! reuses the outputs of an earlier successful step of the same op, code version, config and
//! input data, on the same storage, instead of running.
//!
//! An input's data version is the SHA-256 of the bytes stored for it (of its JSON, for an
//! input from run config), computed as the step reads it. The key of a step is the SHA-256 of
//! its op's name and code version, its config and its inputs' data versions. The index is
//! one small object per key on the run's storage (`cache/<key>`), written whole (so
//! concurrent runs never see half an entry: the last one wins, and each is valid); an entry
//! that does not parse, or whose outputs are gone, is a miss, never a failure.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::io::IoManager;

/// Where the index lives on a storage, beside the runs.
pub(crate) const CACHE_DIR: &str = "cache";

/// What an earlier step stored: enough to reuse it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Entry {
    /// The run that stored the outputs.
    pub(crate) run_id: String,
    /// The step there.
    pub(crate) step: String,
    /// The optional outputs it did not produce, by position.
    #[serde(default)]
    pub(crate) not_produced: Vec<usize>,
}

/// Hashes what a step reads, as it reads it.
#[derive(Default)]
pub(crate) struct KeyBuilder {
    hasher: Sha256,
}

impl KeyBuilder {
    /// A key of op `op` at code version `version`, with config `config` (canonical JSON).
    pub(crate) fn new(op: &str, version: &str, config: Option<&serde_json::Value>) -> Self {
        let mut key = Self::default();
        key.part(op.as_bytes());
        key.part(version.as_bytes());
        // (serde_json keeps object keys sorted: the same config is the same text)
        key.part(
            config
                .map(ToString::to_string)
                .unwrap_or_default()
                .as_bytes(),
        );
        key
    }

    /// Adds an input's data version.
    pub(crate) fn input(&mut self, name: &str, version: &[u8]) {
        self.part(name.as_bytes());
        self.part(version);
    }

    /// Length-prefixed, so that parts cannot run into each other.
    fn part(&mut self, bytes: &[u8]) {
        self.hasher.update((bytes.len() as u64).to_le_bytes());
        self.hasher.update(bytes);
    }

    /// The key, as hex.
    pub(crate) fn finish(self) -> String {
        hex(&self.hasher.finalize())
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The data version of `bytes`.
pub(crate) fn data_version(bytes: &[u8]) -> Vec<u8> {
    Sha256::digest(bytes).to_vec()
}

/// A reader that hashes what goes through it: an input's data version, as it is decoded.
pub(crate) struct Hashing<'a> {
    inner: &'a mut dyn std::io::Read,
    hasher: Sha256,
}

impl std::io::Read for Hashing<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

impl<'a> Hashing<'a> {
    /// Hashes what is read from `inner`.
    pub(crate) fn new(inner: &'a mut dyn std::io::Read) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
        }
    }

    /// The version of everything read.
    pub(crate) fn version(self) -> Vec<u8> {
        self.hasher.finalize().to_vec()
    }
}

/// The entry of `key`, if there is a readable one.
pub(crate) fn lookup(io: &dyn IoManager, key: &str) -> Option<Entry> {
    let bytes = io.get_run_file(CACHE_DIR, key).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The run whose outputs the entry `key` points at, if it is readable.
pub(crate) fn entry_run(io: &dyn IoManager, key: &str) -> Option<String> {
    lookup(io, key).map(|entry| entry.run_id)
}

/// Records `entry` under `key`.
pub(crate) fn record(io: &dyn IoManager, key: &str, entry: &Entry) -> Result<(), String> {
    let bytes = serde_json::to_vec(entry).map_err(|e| e.to_string())?;
    io.put_run_file(CACHE_DIR, key, bytes)
        .map(drop)
        .map_err(|e| e.to_string())
}
