//! The sha256 of a file, as pins state it: 64 lowercase hex digits.
//!
//! Pins are checked on every use, so the digest of a large weights file is memoised in a
//! `NAME.sha256` file beside it, keyed by the file's size and mtime (the same stamp the
//! store's own digests use): an unchanged file is hashed once, a rewritten one again.

use std::io;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::store::artifact::Stamp;

/// The sha256 of the file at `path`.
pub fn sha256_file(path: &Path) -> io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    io::copy(&mut file, &mut hasher)?;
    Ok(format!("{:x}", hasher.finalize()))
}

/// The sha256 of `path`, memoised beside it by size and mtime.
pub fn sha256_memoised(path: &Path) -> io::Result<String> {
    let key = stamp_key(path)?;
    if let Ok(text) = std::fs::read_to_string(memo_path(path))
        && let Some((memo_key, digest)) = text.trim().rsplit_once(' ')
        && memo_key == key
    {
        return Ok(digest.to_string());
    }
    let digest = sha256_file(path)?;
    remember_sha256(path, &digest);
    Ok(digest)
}

/// Records that `path`, as it is now, has sha256 `digest` (one just computed while
/// verifying it), so that [`sha256_memoised`] need not read it again. A memo that cannot
/// be written only costs a re-hash later.
pub fn remember_sha256(path: &Path, digest: &str) {
    if let Ok(key) = stamp_key(path) {
        let _ = std::fs::write(memo_path(path), format!("{key} {digest}\n"));
    }
}

fn stamp_key(path: &Path) -> io::Result<String> {
    let stamp = Stamp::of(path)?;
    Ok(format!("{} {}", stamp.size, stamp.mtime_ns))
}

fn memo_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!("{name}.sha256"))
}
