//! Downloading one blob: resumable, verified, and never visible until complete.
//!
//! The bytes go to `blobs/<etag>.incomplete`. A transfer that stops (the connection
//! drops, a read times out) is resumed from the bytes already there with
//! `Range: bytes=N-`, up to [`ATTEMPTS`] times in one run; a later run resumes the same
//! file. A server that ignores the range (200 instead of 206) starts the file over. When
//! all bytes are there, the size must be the one the hub announced and, for an LFS file,
//! the sha256 must be its etag; a file that fails either check is deleted, never kept.
//! Only a verified file is renamed to `blobs/<etag>`. A lock file beside it keeps two
//! processes sharing the cache from writing the same blob at once.

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ureq::http::StatusCode;

use super::download_progress::DownloadProgress;
use super::file_meta::FileMeta;
use super::hf_error::{HfError, cache_error};
use super::hub_client::HubClient;
use super::repo_cache::RepoCache;
use crate::llm::file_sha256::{remember_sha256, sha256_file};

/// Transfers of one file tried in one run before giving up.
pub const ATTEMPTS: usize = 5;

/// Why one transfer did not finish.
enum Stopped {
    /// The transfer broke off: resume it.
    Resumable(String),
    /// Trying again would not help.
    Fatal(HfError),
}

/// The blob `meta` describes (`file` of the repository), downloaded into `cache` unless it
/// is there already; returns its path.
pub fn download_blob(
    client: &HubClient,
    cache: &RepoCache,
    meta: &FileMeta,
    file: &str,
    progress: &DownloadProgress,
) -> Result<PathBuf, HfError> {
    let name = meta.blob_name();
    let blob = cache.blob(&name);
    if blob.is_file() {
        return Ok(blob);
    }
    let blobs = blob.parent().expect("blobs live in a folder");
    std::fs::create_dir_all(blobs).map_err(cache_error(blobs))?;
    let lock_path = cache.lock(&name);
    let _lock = crate::store::lock::lock(&lock_path, || {
        anstream::eprintln!(
            "{}: waiting for another process downloading `{file}`",
            client.model()
        );
    })
    .map_err(|e| HfError::Cache {
        path: lock_path.clone(),
        source: std::io::Error::other(e.to_string()),
    })?;
    if blob.is_file() {
        return Ok(blob);
    }
    let partial = cache.incomplete(&name);
    let mut attempt = 1;
    loop {
        match transfer(client, meta, file, &partial, progress) {
            Ok(()) => break,
            Err(Stopped::Resumable(cause)) if attempt < ATTEMPTS => {
                progress.retry(file, &cause);
                std::thread::sleep(Duration::from_millis(200 * attempt as u64));
                attempt += 1;
            }
            Err(Stopped::Resumable(cause)) => {
                return Err(HfError::Transfer {
                    model: client.model().to_string(),
                    file: file.to_string(),
                    attempts: attempt,
                    cause,
                });
            }
            Err(Stopped::Fatal(error)) => return Err(error),
        }
    }
    let sha256 = verify(&partial, meta, file, client.model())?;
    std::fs::rename(&partial, &blob).map_err(cache_error(&blob))?;
    if let Some(sha256) = sha256 {
        // A pin on the source reads this digest rather than hashing the file again.
        remember_sha256(&blob, &sha256);
    }
    Ok(blob)
}

/// One transfer into `partial`, from where it ends up to the end of the file.
fn transfer(
    client: &HubClient,
    meta: &FileMeta,
    file: &str,
    partial: &Path,
    progress: &DownloadProgress,
) -> Result<(), Stopped> {
    let mut have = std::fs::metadata(partial).map(|m| m.len()).unwrap_or(0);
    if let Some(size) = meta.size {
        if have == size {
            return Ok(());
        }
        if have > size {
            have = 0;
        }
    }
    let response = client
        .get(&meta.download_url, have, file)
        .map_err(|error| match error {
            HfError::Unreachable { cause, .. } => Stopped::Resumable(cause),
            other => Stopped::Fatal(other),
        })?;
    let status = response.status();
    if status == StatusCode::RANGE_NOT_SATISFIABLE {
        // What is there cannot be continued: start over.
        let _ = std::fs::remove_file(partial);
        return Err(Stopped::Resumable("the server refused to resume".into()));
    }
    let append = status == StatusCode::PARTIAL_CONTENT && range_start(&response) == Some(have);
    if !append {
        have = 0;
    }
    let mut out = OpenOptions::new()
        .create(true)
        .write(true)
        .append(append)
        .truncate(!append)
        .open(partial)
        .map_err(|e| Stopped::Fatal(cache_error(partial)(e)))?;
    let bar = progress.file(file, meta.size, have);
    let mut body = response.into_body().into_reader();
    let mut buffer = vec![0u8; 1 << 16];
    let mut received = have;
    loop {
        let n = match body.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                let _ = out.flush();
                return Err(Stopped::Resumable(format!("{e} after {received} bytes")));
            }
        };
        out.write_all(&buffer[..n])
            .map_err(|e| Stopped::Fatal(cache_error(partial)(e)))?;
        received += n as u64;
        bar.advance(n as u64);
    }
    out.sync_all()
        .map_err(|e| Stopped::Fatal(cache_error(partial)(e)))?;
    match meta.size {
        Some(size) if received < size => Err(Stopped::Resumable(format!(
            "the connection closed after {received} of {size} bytes"
        ))),
        _ => Ok(()),
    }
}

/// The first byte a 206 answer holds (`Content-Range: bytes START-END/TOTAL`).
fn range_start(response: &ureq::http::Response<ureq::Body>) -> Option<u64> {
    let value = response.headers().get("content-range")?.to_str().ok()?;
    let range = value.trim().strip_prefix("bytes")?.trim();
    range.split('-').next()?.trim().parse().ok()
}

/// Checks the finished download at `partial` against what the hub announced (returning
/// the sha256 it computed, if any); a file that fails is deleted.
fn verify(
    partial: &Path,
    meta: &FileMeta,
    file: &str,
    model: &str,
) -> Result<Option<String>, HfError> {
    let found = std::fs::metadata(partial)
        .map_err(cache_error(partial))?
        .len();
    if let Some(expected) = meta.size
        && found != expected
    {
        let _ = std::fs::remove_file(partial);
        return Err(HfError::SizeMismatch {
            model: model.to_string(),
            file: file.to_string(),
            found,
            expected,
        });
    }
    if let Some(expected) = meta.sha256() {
        let digest = sha256_file(partial).map_err(cache_error(partial))?;
        if !digest.eq_ignore_ascii_case(expected) {
            let _ = std::fs::remove_file(partial);
            return Err(HfError::DigestMismatch {
                model: model.to_string(),
                file: file.to_string(),
                found: digest,
                expected: expected.to_string(),
            });
        }
        return Ok(Some(digest));
    }
    Ok(None)
}
