//! Content digests of files the store does not own (referenced files, model weights),
//! memoised by path, size and mtime so that gigabytes are not re-hashed on every run.
//!
//! A `touch` changes the mtime, so the file is hashed again — and since its content is
//! unchanged, so is its digest and every key that includes it. Only regular files are
//! hashed: a device or FIFO (`/dev/zero`) would be read forever.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::artifact::{Stamp, digest_file};
use super::{Store, StoreError, io_at, write_atomic};
use crate::file_kind::not_regular;

#[derive(Serialize, Deserialize)]
struct Memo {
    path: String,
    stamp: Stamp,
    digest: String,
}

impl Store {
    /// blake3 of the regular file at `path`, from the memo when its size and mtime are
    /// unchanged.
    pub fn file_digest(&self, path: &Path) -> Result<String, StoreError> {
        let absolute = std::path::absolute(path).map_err(io_at(path))?;
        let meta = std::fs::metadata(&absolute).map_err(io_at(path))?;
        if let Some(found) = not_regular(&meta) {
            return Err(StoreError::NotAFile {
                path: path.to_path_buf(),
                found,
            });
        }
        let stamp = Stamp::of(&absolute).map_err(io_at(path))?;
        let name = blake3::hash(absolute.to_string_lossy().as_bytes()).to_hex();
        let memo_path = self
            .dir("cache")
            .join("file-digests")
            .join(format!("{}.json", &name[..32]));
        if let Ok(bytes) = std::fs::read(&memo_path)
            && let Ok(memo) = serde_json::from_slice::<Memo>(&bytes)
            && memo.stamp == stamp
            && Path::new(&memo.path) == absolute
        {
            return Ok(memo.digest);
        }
        let digest = digest_file(&absolute).map_err(io_at(path))?;
        let memo = Memo {
            path: absolute.to_string_lossy().into_owned(),
            stamp,
            digest: digest.clone(),
        };
        // A memo that cannot be written only costs a re-hash next time.
        let _ = write_atomic(
            &memo_path,
            &serde_json::to_vec(&memo).expect("memo serialises"),
            false,
        );
        Ok(digest)
    }
}
