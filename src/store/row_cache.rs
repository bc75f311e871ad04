//! Row-level caches: the results of expensive per-row work (a dialogue, a dilemma a model
//! wrote) kept under each row's own key, beside the store's stage artifacts.
//!
//! A stage's artifact is keyed by everything it depends on, so adding ten rows to its
//! input gives it a new key. The rows it had already computed keep theirs: a row key
//! covers only what that row depends on (its inputs, models, sampling settings, sample
//! index), so the new run computes only the new rows. A row is written atomically as soon
//! as it is done, so `kill -9` mid-stage loses at most the rows in flight.
//!
//! Layout: `.accord/cache/rows/<kind>/<first two hex digits>/<row key>.json`.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{Store, StoreError, write_atomic};

/// One stage kind's row cache, with a tally of the rows a run computed and reused.
#[derive(Debug)]
pub struct RowCache {
    dir: PathBuf,
    computed: AtomicUsize,
    cached: AtomicUsize,
}

impl Store {
    /// The row cache of stage kind `kind`.
    pub fn row_cache(&self, kind: &str) -> RowCache {
        RowCache {
            dir: self.dir("cache").join("rows").join(kind),
            computed: AtomicUsize::new(0),
            cached: AtomicUsize::new(0),
        }
    }
}

/// The key of a row: blake3 of the canonical JSON of what it depends on.
pub fn row_key(parts: &Value) -> String {
    crate::canonical::digest(parts)
}

impl RowCache {
    fn path(&self, key: &str) -> PathBuf {
        self.dir.join(&key[..2]).join(format!("{key}.json"))
    }

    /// The row stored under `key`, if any (an unreadable one counts as missing).
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Option<T> {
        let bytes = std::fs::read(self.path(key)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Stores a finished row under `key`.
    pub fn put<T: Serialize>(&self, key: &str, row: &T) -> Result<(), StoreError> {
        let json = serde_json::to_vec(row).expect("rows serialise");
        write_atomic(&self.path(key), &json, false)
    }

    /// Counts one output row as computed now (`false`) or reused from the cache (`true`).
    pub fn tally(&self, cached: bool) {
        let counter = if cached { &self.cached } else { &self.computed };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// `(computed, cached)` rows so far.
    pub fn counts(&self) -> (usize, usize) {
        (
            self.computed.load(Ordering::Relaxed),
            self.cached.load(Ordering::Relaxed),
        )
    }
}
