//! Row-level caches: the results of expensive per-row work (a dialogue, a judgement, a
//! dilemma a model wrote) kept under each row's own key, beside the store's stage artifacts.
//!
//! A stage's artifact is keyed by everything it depends on, so adding ten rows to its
//! input gives it a new key. The rows it had already computed keep theirs: a row key
//! covers only what that row depends on (its inputs, models, sampling settings, sample
//! index), so the new run computes only the new rows. A row is written atomically as soon
//! as it is done, so `kill -9` mid-stage loses at most the rows in flight.
//!
//! A row key is a typed struct ([`RowKey`]) whose fields are what the row depends on; its
//! hash is blake3 over the canonical JSON of those fields plus the key's `what`, so two
//! kinds of row never share a key and a field added to a key type changes every key of
//! that type. Stages open the rows they need with [`RowCache::open`] (or
//! [`crate::stage::StageContext::get_or_compute`]), which counts each row as cached or
//! computed: the counts make the `STAGE: N computed, M cached` line.
//!
//! Layout: `.accord/cache/rows/<kind>/<first two hex digits>/<row key>.json`.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Store, StoreError, write_atomic};

/// What a cached row depends on.
pub trait RowKey: Serialize {
    /// What the row is (`rollout dialogue`), hashed with the fields.
    const WHAT: &'static str;

    /// The row's key: blake3 of the canonical JSON of the fields and `what`.
    fn digest(&self) -> String {
        let mut value = serde_json::to_value(self).expect("row keys serialise to JSON");
        if let serde_json::Value::Object(fields) = &mut value {
            fields.insert("what".into(), Self::WHAT.into());
        }
        crate::canonical::digest(&value)
    }
}

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

impl RowCache {
    fn path(&self, digest: &str) -> PathBuf {
        self.dir.join(&digest[..2]).join(format!("{digest}.json"))
    }

    fn read<T: DeserializeOwned>(&self, digest: &str) -> Option<T> {
        let bytes = std::fs::read(self.path(digest)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    fn write<T: Serialize>(&self, digest: &str, row: &T) -> Result<(), StoreError> {
        let json = serde_json::to_vec(row).expect("rows serialise");
        write_atomic(&self.path(digest), &json, false)
    }

    /// The rows under `keys`: each one the cache holds (an unreadable one counts as
    /// missing), counted as cached, and an empty slot for each of the others.
    pub fn open<K: RowKey, T: Serialize + DeserializeOwned>(
        &self,
        keys: &[K],
    ) -> CachedRows<'_, T> {
        let digests: Vec<String> = keys.iter().map(RowKey::digest).collect();
        let values: Vec<Option<T>> = digests.iter().map(|d| self.read(d)).collect();
        let cached = values.iter().flatten().count();
        self.cached.fetch_add(cached, Ordering::Relaxed);
        CachedRows {
            cache: self,
            digests,
            values,
            cached,
        }
    }

    /// One entry, not counted: for a stage whose output rows are each made of several
    /// entries (which it counts with [`count`](Self::count)).
    pub fn get<K: RowKey, T: DeserializeOwned>(&self, key: &K) -> Option<T> {
        self.read(&key.digest())
    }

    /// Stores one entry, not counted (see [`get`](Self::get)).
    pub fn put<K: RowKey, T: Serialize>(&self, key: &K, row: &T) -> Result<(), StoreError> {
        self.write(&key.digest(), row)
    }

    /// Counts one output row as reused from the cache (`true`) or computed now.
    pub fn count(&self, cached: bool) {
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

/// Rows being gathered: the cached ones, and slots the stage fills as it computes.
pub struct CachedRows<'a, T> {
    cache: &'a RowCache,
    digests: Vec<String>,
    values: Vec<Option<T>>,
    cached: usize,
}

impl<T: Serialize> CachedRows<'_, T> {
    /// The positions whose rows still have to be computed, in order.
    pub fn missing(&self) -> Vec<usize> {
        (0..self.values.len())
            .filter(|&i| self.values[i].is_none())
            .collect()
    }

    /// How many rows came from the cache.
    pub fn cached(&self) -> usize {
        self.cached
    }

    /// Row `i`'s key.
    pub fn digest(&self, i: usize) -> &str {
        &self.digests[i]
    }

    /// Stores the computed row `i` and counts it.
    pub fn insert(&mut self, i: usize, row: T) -> Result<(), StoreError> {
        self.cache.write(&self.digests[i], &row)?;
        self.keep(i, row);
        Ok(())
    }

    /// Counts the computed row `i` without storing it, so that the next run computes it
    /// again (a judge's reply that held no rating).
    pub fn keep(&mut self, i: usize, row: T) {
        self.cache.count(false);
        self.values[i] = Some(row);
    }

    /// Every row, once none is missing.
    pub fn finish(self) -> Vec<T> {
        self.values
            .into_iter()
            .map(|v| v.expect("every row is cached or computed"))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Probe<'a> {
        text: &'a str,
        seed: u64,
    }

    impl RowKey for Probe<'_> {
        const WHAT: &'static str = "probe";
    }

    #[test]
    fn a_typed_key_hashes_like_its_json_with_what() {
        let key = Probe { text: "a", seed: 3 };
        let json = serde_json::json!({"what": "probe", "text": "a", "seed": 3});
        assert_eq!(key.digest(), crate::canonical::digest(&json));
    }

    #[test]
    fn rows_computed_once_are_read_back_and_counted_as_cached() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::at(dir.path());
        let keys: Vec<Probe> = (0..3).map(|seed| Probe { text: "a", seed }).collect();
        let cache = store.row_cache("probe");
        let mut rows = cache.open::<_, u64>(&keys[..2]);
        assert_eq!(rows.missing(), [0, 1]);
        rows.insert(0, 10).unwrap();
        rows.keep(1, 11);
        assert_eq!(rows.finish(), [10, 11]);
        assert_eq!(cache.counts(), (2, 0));

        let again = store.row_cache("probe");
        let rows = again.open::<_, u64>(&keys);
        assert_eq!(rows.missing(), [1, 2], "kept rows are not stored");
        assert_eq!(again.counts(), (0, 1));
    }
}
