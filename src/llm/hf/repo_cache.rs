//! One repository's folder in the cache, in the hub's own layout.
//!
//! ```text
//! models--org--name/
//!   blobs/<etag>                  each file's bytes, once (`.incomplete` while downloading)
//!   snapshots/<commit>/<file>     a relative symbolic link to ../../blobs/<etag>
//!   refs/<revision>               the commit a branch or tag was at when last fetched
//!   .no_exist/<commit>/<file>     an optional file the commit does not have
//! ```
//!
//! A snapshot's file appears only once its blob is complete and verified, by renaming a
//! link made beside it, so a file in a snapshot is never partial. (Where symbolic links
//! are not available the blob is copied instead.)

use std::path::{Path, PathBuf};

use super::hf_error::{HfError, cache_error};

/// The cached files of one repository.
#[derive(Debug, Clone)]
pub struct RepoCache {
    root: PathBuf,
}

impl RepoCache {
    /// Repository `repo` (`org/name`) under `hf_root`.
    pub fn new(hf_root: &Path, repo: &str) -> Self {
        Self {
            root: hf_root.join(format!("models--{}", repo.replace('/', "--"))),
        }
    }

    pub fn blob(&self, name: &str) -> PathBuf {
        self.root.join("blobs").join(name)
    }

    /// Where blob `name` is downloaded to before it is verified.
    pub fn incomplete(&self, name: &str) -> PathBuf {
        self.root.join("blobs").join(format!("{name}.incomplete"))
    }

    /// The lock held while blob `name` is downloaded.
    pub fn lock(&self, name: &str) -> PathBuf {
        self.root.join("blobs").join(format!("{name}.lock"))
    }

    pub fn snapshot(&self, commit: &str) -> PathBuf {
        self.root.join("snapshots").join(commit)
    }

    /// Whether the snapshot of `commit` has `file`.
    pub fn has(&self, commit: &str, file: &str) -> bool {
        self.snapshot(commit).join(file).is_file()
    }

    /// Whether `commit` is known to lack `file`.
    pub fn lacks(&self, commit: &str, file: &str) -> bool {
        self.no_exist(commit, file).is_file()
    }

    /// Records that `commit` lacks `file`.
    pub fn mark_lacking(&self, commit: &str, file: &str) -> Result<(), HfError> {
        let path = self.no_exist(commit, file);
        create_parent(&path)?;
        std::fs::write(&path, b"").map_err(cache_error(&path))
    }

    fn no_exist(&self, commit: &str, file: &str) -> PathBuf {
        self.root.join(".no_exist").join(commit).join(file)
    }

    /// The commit `revision` was at when last fetched.
    pub fn read_ref(&self, revision: &str) -> Option<String> {
        let text = std::fs::read_to_string(self.root.join("refs").join(revision)).ok()?;
        let commit = text.trim();
        super::file_meta::is_commit(commit).then(|| commit.to_string())
    }

    /// Records that `revision` is at `commit`.
    pub fn write_ref(&self, revision: &str, commit: &str) -> Result<(), HfError> {
        let path = self.root.join("refs").join(revision);
        create_parent(&path)?;
        write_replacing(&path, |tmp| std::fs::write(tmp, commit))
    }

    /// Makes `file` of the snapshot of `commit` the blob `blob_name`.
    pub fn link(&self, commit: &str, file: &str, blob_name: &str) -> Result<(), HfError> {
        let path = self.snapshot(commit).join(file);
        create_parent(&path)?;
        #[cfg(unix)]
        {
            // From snapshots/<commit>/<file> up to the repository's folder.
            let depth = 1 + Path::new(file).components().count();
            let target = format!("{}blobs/{blob_name}", "../".repeat(depth));
            write_replacing(&path, |tmp| std::os::unix::fs::symlink(&target, tmp))
        }
        #[cfg(not(unix))]
        {
            let blob = self.blob(blob_name);
            write_replacing(&path, |tmp| std::fs::copy(&blob, tmp).map(|_| ()))
        }
    }
}

fn create_parent(path: &Path) -> Result<(), HfError> {
    let parent = path.parent().expect("cache paths have a parent");
    std::fs::create_dir_all(parent).map_err(cache_error(parent))
}

/// Makes `path` with `make` at a temporary name beside it, then renames it into place.
fn write_replacing(
    path: &Path,
    make: impl FnOnce(&Path) -> std::io::Result<()>,
) -> Result<(), HfError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    make(&tmp).map_err(cache_error(&tmp))?;
    std::fs::rename(&tmp, path).map_err(cache_error(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_file_reads_as_its_blob() {
        let dir = tempfile::tempdir().unwrap();
        let cache = RepoCache::new(dir.path(), "org/name");
        let commit = "0123456789abcdef0123456789abcdef01234567";
        std::fs::create_dir_all(cache.blob("x").parent().unwrap()).unwrap();
        std::fs::write(cache.blob("abc"), "bytes").unwrap();
        cache.link(commit, "config.json", "abc").unwrap();
        cache.link(commit, "sub/shard.safetensors", "abc").unwrap();
        let snapshot = cache.snapshot(commit);
        assert_eq!(
            std::fs::read_to_string(snapshot.join("config.json")).unwrap(),
            "bytes"
        );
        assert_eq!(
            std::fs::read_to_string(snapshot.join("sub/shard.safetensors")).unwrap(),
            "bytes"
        );
        assert!(
            dir.path()
                .join("models--org--name/snapshots")
                .join(commit)
                .is_dir()
        );
        cache.write_ref("main", commit).unwrap();
        assert_eq!(cache.read_ref("main").as_deref(), Some(commit));
        assert!(!cache.lacks(commit, "chat_template.jinja"));
        cache.mark_lacking(commit, "chat_template.jinja").unwrap();
        assert!(cache.lacks(commit, "chat_template.jinja"));
    }
}
