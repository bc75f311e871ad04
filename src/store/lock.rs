//! Locks between `accord` processes sharing a store.
//!
//! A per-key lock (`locks/<key>.lock`) makes sure two runs never compute the same key at
//! once: the second waits, then finds the first one's artifact. Runs hold `gc.lock`
//! shared and `accord gc` holds it exclusively, so garbage collection never removes what a
//! live run is using. These are `flock`-style advisory locks released when the process
//! exits, however it exits, so a `kill -9` never leaves a stale lock.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::Path;

use super::{Store, StoreError, io_at};

/// A held lock; released on drop.
#[derive(Debug)]
pub struct Lock {
    _file: File,
}

fn open(path: &Path) -> Result<File, StoreError> {
    let dir = path.parent().expect("lock paths have a parent");
    std::fs::create_dir_all(dir).map_err(io_at(dir))?;
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(io_at(path))
}

impl Store {
    /// Takes the lock for `key`, calling `on_wait` first if another process holds it.
    pub fn lock_key(&self, key: &str, on_wait: impl FnOnce()) -> Result<Lock, StoreError> {
        let path = self.dir("locks").join(format!("{key}.lock"));
        let file = open(&path)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                on_wait();
                file.lock().map_err(io_at(&path))?;
            }
            Err(TryLockError::Error(e)) => return Err(io_at(&path)(e)),
        }
        Ok(Lock { _file: file })
    }

    /// Whether some process holds the lock for `key` right now.
    pub fn key_locked(&self, key: &str) -> bool {
        let path = self.dir("locks").join(format!("{key}.lock"));
        let Ok(file) = File::open(&path) else {
            return false;
        };
        matches!(file.try_lock(), Err(TryLockError::WouldBlock))
    }

    /// The shared lock a run holds so that `accord gc` waits for it.
    pub fn lock_shared_for_run(&self) -> Result<Lock, StoreError> {
        let path = self.dir("gc.lock");
        let file = open(&path)?;
        file.lock_shared().map_err(io_at(&path))?;
        Ok(Lock { _file: file })
    }

    /// The exclusive lock `accord gc` holds; fails fast when a run is in progress.
    pub fn lock_exclusive_for_gc(&self) -> Result<Option<Lock>, StoreError> {
        let path = self.dir("gc.lock");
        let file = open(&path)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(Lock { _file: file })),
            Err(TryLockError::WouldBlock) => Ok(None),
            Err(TryLockError::Error(e)) => Err(io_at(&path)(e)),
        }
    }
}
