//! The content-addressed store: `.accord/` in the workspace.
//!
//! ```text
//! .accord/
//!   store/ab/abcd…/data.parquet   an artifact: plain Parquet any reader opens
//!   store/ab/abcd…/meta.json      its schema, rows, digest, key parts, timings, version
//!   keys/ab/abcd….json            the parts of every key computed, for `accord status`
//!   runs/<id>.json                run records: spec digest, stage keys, timings, backend
//!   heads/<spec name>.json        the stage keys of each spec's latest run
//!   locks/<key>.lock              per-key lock files, with owner and heartbeat (see `lock`)
//!   locks/runs/, locks/gc.lock    run leases, and the lock `accord gc` takes when none is live
//!   work/<key>/                   row caches and checkpoints of stages in progress
//!   slurm/                        job scripts, logs and records of stages sent to Slurm
//!   tmp/                          artifacts being written (renamed into store/ when complete)
//!   cache/file-digests/           digests of referenced files and models, by path+size+mtime
//! ```
//!
//! An artifact is written to `tmp/`, fsynced, then renamed into place, so a crash or
//! `kill -9` leaves nothing that looks complete. A lookup trusts an artifact whose file
//! size and mtime match those recorded when it was written or last verified; otherwise it
//! re-hashes the file, and a mismatch is reported and the entry dropped. Reading an input
//! for a running stage always re-hashes. The store's location is `--store DIR`,
//! `ACCORD_STORE`, or the nearest `.accord/` above the current directory.

pub mod artifact;
pub mod file_digest;
pub mod gc;
pub mod jobs;
pub mod key;
pub mod lock;
pub mod outcome;
pub mod records;
pub mod row_cache;

use std::io;
use std::path::{Path, PathBuf};

pub use artifact::{Lookup, Meta};
pub use key::{StageKey, StaleReason};
pub use outcome::{RunOutcome, StageOutcome};
pub use records::{RunRecord, StageRecord};

/// Errors from the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store `{path}`: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("writing Parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error("`{path}` is not valid JSON: {source}")]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("artifact `{path}` is corrupt: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    /// A file to hash is a folder, device, FIFO or socket (see [`crate::file_kind`]).
    #[error("`{path}` is {found}, not a regular file")]
    NotAFile { path: PathBuf, found: &'static str },
}

/// Attaches the path to an I/O error.
pub(crate) fn io_at(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A workspace's store.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    /// The store at `root` (the `.accord` folder itself), created when first written.
    pub fn at(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// `explicit` (from `--store` or `ACCORD_STORE`), else the nearest `.accord/` above
    /// `cwd`, else `cwd/.accord`.
    pub fn locate(explicit: Option<&Path>, cwd: &Path) -> Self {
        if let Some(dir) = explicit {
            return Self::at(dir);
        }
        for dir in cwd.ancestors() {
            let candidate = dir.join(".accord");
            if candidate.is_dir() {
                return Self::at(candidate);
            }
        }
        Self::at(cwd.join(".accord"))
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Whether the store has been created (by a run): commands that only read or clean
    /// a store say there is none rather than create an empty one.
    pub fn exists(&self) -> bool {
        self.root.is_dir()
    }

    /// The folder of the artifact with `key`.
    pub fn entry_dir(&self, key: &str) -> PathBuf {
        self.root.join("store").join(&key[..2]).join(key)
    }

    /// The Parquet file of the artifact with `key`.
    pub fn data_path(&self, key: &str) -> PathBuf {
        self.entry_dir(key).join("data.parquet")
    }

    pub fn key_parts_path(&self, key: &str) -> PathBuf {
        self.root
            .join("keys")
            .join(&key[..2])
            .join(format!("{key}.json"))
    }

    pub fn work_dir(&self, key: &str) -> PathBuf {
        self.root.join("work").join(key)
    }

    pub(crate) fn dir(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// Records a key's parts, unless already recorded.
    pub fn record_key(&self, key: &str, parts: &StageKey) -> Result<(), StoreError> {
        let path = self.key_parts_path(key);
        if path.exists() {
            return Ok(());
        }
        let json = serde_json::to_vec_pretty(parts).expect("keys serialise");
        write_atomic(&path, &json, false)
    }

    /// The parts of a key recorded earlier.
    pub fn key_parts(&self, key: &str) -> Option<StageKey> {
        let bytes = std::fs::read(self.key_parts_path(key)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }
}

/// Writes `bytes` to `path` through a temporary file and a rename, creating folders;
/// with `durable`, fsyncs the file and its folder.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8], durable: bool) -> Result<(), StoreError> {
    use std::io::Write;
    let dir = path.parent().expect("store paths have a parent");
    std::fs::create_dir_all(dir).map_err(io_at(dir))?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io_at(dir))?;
    tmp.write_all(bytes).map_err(io_at(path))?;
    if durable {
        tmp.as_file().sync_all().map_err(io_at(path))?;
    }
    tmp.persist(path).map_err(|e| StoreError::Io {
        path: path.to_path_buf(),
        source: e.error,
    })?;
    if durable {
        sync_dir(dir)?;
    }
    Ok(())
}

/// fsyncs a folder, so a rename into it survives a crash.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    std::fs::File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(io_at(dir))
}
