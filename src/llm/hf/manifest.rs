//! The digest a `sha256:` pin of an `hf:` source states: one sha256 for all of a
//! snapshot's files.
//!
//! It is the sha256 of the lines `"<sha256 of file>  <file name>\n"`, one per file of the
//! snapshot (names relative to it, `/`-separated), sorted by name byte by byte: the
//! output of `sha256sum` over the files, hashed once more. So it can be checked without
//! accord, in the folder `accord models fetch` prints:
//! `find . -type f -o -type l | sed 's|^\./||' | LC_ALL=C sort | xargs sha256sum | sha256sum`.
//! Each file's sha256 is memoised beside its blob (see [`crate::llm::file_sha256`]); for
//! the weights it was computed when they were downloaded, so checking a pin does not read
//! gigabytes again.

use std::path::Path;

use sha2::{Digest, Sha256};

use super::hf_error::{HfError, cache_error};
use crate::llm::file_sha256::{sha256_file, sha256_memoised};

/// The manifest digest of the files under `folder`.
pub fn manifest_digest(folder: &Path) -> Result<String, HfError> {
    let mut names = Vec::new();
    collect(folder, "", &mut names)?;
    names.sort();
    let root = std::fs::canonicalize(folder).map_err(cache_error(folder))?;
    let mut hasher = Sha256::new();
    for name in names {
        let path = folder.join(&name);
        // The digest is memoised beside the blob a link points to, never in the snapshot.
        let real = std::fs::canonicalize(&path).map_err(cache_error(&path))?;
        let digest = if real.starts_with(&root) {
            sha256_file(&real)
        } else {
            sha256_memoised(&real)
        }
        .map_err(cache_error(&real))?;
        hasher.update(format!("{digest}  {name}\n").as_bytes());
    }
    Ok(format!("{:x}", hasher.finalize()))
}

/// Checks the pin `expected` of source `model` against the files under `folder`.
pub fn check_pin(folder: &Path, expected: &str, model: &str) -> Result<(), HfError> {
    let found = manifest_digest(folder)?;
    if found.eq_ignore_ascii_case(expected) {
        Ok(())
    } else {
        Err(HfError::PinMismatch {
            model: model.to_string(),
            found,
            expected: expected.to_string(),
        })
    }
}

/// The files under `dir` (whose path from the snapshot is `prefix`), following links.
fn collect(dir: &Path, prefix: &str, names: &mut Vec<String>) -> Result<(), HfError> {
    for entry in std::fs::read_dir(dir).map_err(cache_error(dir))? {
        let entry = entry.map_err(cache_error(dir))?;
        let name = format!("{prefix}{}", entry.file_name().to_string_lossy());
        let path = entry.path();
        if path.is_dir() {
            collect(&path, &format!("{name}/"), names)?;
        } else {
            names.push(name);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The digest is `sha256sum` over the sorted files, hashed again.
    #[test]
    fn the_manifest_is_sha256sum_of_the_sorted_files() {
        let dir = tempfile::tempdir().unwrap();
        let snapshot = dir.path().join("snapshot");
        std::fs::create_dir_all(snapshot.join("sub")).unwrap();
        std::fs::write(snapshot.join("b.json"), "b").unwrap();
        std::fs::write(snapshot.join("a.json"), "a").unwrap();
        std::fs::write(snapshot.join("sub/c.bin"), "c").unwrap();
        let sha = |text: &str| format!("{:x}", Sha256::digest(text.as_bytes()));
        let lines = format!(
            "{}  a.json\n{}  b.json\n{}  sub/c.bin\n",
            sha("a"),
            sha("b"),
            sha("c")
        );
        let digest = manifest_digest(&snapshot).unwrap();
        assert_eq!(digest, sha(&lines));
        check_pin(&snapshot, &digest.to_uppercase(), "hf:o/n").unwrap();
        let wrong = "0".repeat(64);
        let error = check_pin(&snapshot, &wrong, "hf:o/n")
            .unwrap_err()
            .to_string();
        assert_eq!(
            error,
            format!("`hf:o/n`: the sha256 of its files is {digest}, but the spec pins {wrong}")
        );
    }
}
