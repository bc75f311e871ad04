//! What the hub says about one file before it is downloaded.
//!
//! The hub answers a request for `…/resolve/{revision}/{file}` with headers that identify
//! the file: `X-Repo-Commit` (the commit the revision is at), `X-Linked-Etag` for an LFS
//! file (its sha256) or else `ETag` (the git object id), and `X-Linked-Size` or else
//! `Content-Length`. An LFS file's answer is a redirect to where its bytes are; another
//! file's bytes come from the same URL.

use ureq::http::HeaderMap;

/// One file as the hub describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileMeta {
    /// The commit (40 hex digits) the requested revision is at.
    pub commit: String,
    /// The file's etag, without quotes: its sha256 for an LFS file.
    pub etag: String,
    /// The file's size in bytes, when the hub said.
    pub size: Option<u64>,
    /// Where the file's bytes are (a storage host for LFS files).
    pub download_url: String,
}

/// Why an answer does not describe a file as the hub would.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetaProblem {
    NoCommit,
    NoEtag,
}

impl std::fmt::Display for MetaProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            MetaProblem::NoCommit => "no `X-Repo-Commit` header naming a commit",
            MetaProblem::NoEtag => "no `ETag` or `X-Linked-Etag` header",
        })
    }
}

impl FileMeta {
    /// The file the headers of a hub answer describe, whose bytes are at `download_url`.
    pub fn from_headers(headers: &HeaderMap, download_url: String) -> Result<Self, MetaProblem> {
        let text = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .filter(|v| !v.is_empty())
        };
        let commit = text("x-repo-commit")
            .filter(|c| is_commit(c))
            .ok_or(MetaProblem::NoCommit)?
            .to_ascii_lowercase();
        let etag = text("x-linked-etag")
            .or_else(|| text("etag"))
            .map(normalize_etag)
            .filter(|e| !e.is_empty())
            .ok_or(MetaProblem::NoEtag)?;
        let size = text("x-linked-size")
            .or_else(|| text("content-length"))
            .and_then(|s| s.parse().ok());
        Ok(Self {
            commit,
            etag,
            size,
            download_url,
        })
    }

    /// The sha256 the file must have: its etag, when that is one (an LFS file).
    pub fn sha256(&self) -> Option<&str> {
        let is_sha256 = self.etag.len() == 64 && self.etag.bytes().all(|b| b.is_ascii_hexdigit());
        is_sha256.then_some(self.etag.as_str())
    }

    /// The name of the file's blob in the cache: its etag, or the sha256 of an etag that
    /// is not safe as a file name.
    pub fn blob_name(&self) -> String {
        let safe = self
            .etag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'));
        if safe {
            self.etag.clone()
        } else {
            use sha2::Digest;
            format!("{:x}", sha2::Sha256::digest(self.etag.as_bytes()))
        }
    }
}

/// Whether `revision` is a commit id: 40 hex digits.
pub fn is_commit(revision: &str) -> bool {
    revision.len() == 40 && revision.bytes().all(|b| b.is_ascii_hexdigit())
}

/// An etag without its weak marker and quotes: `W/"abc"` → `abc`.
fn normalize_etag(etag: &str) -> String {
    etag.trim_start_matches("W/").trim_matches('"').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ureq::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";
    const SHA: &str = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";

    #[test]
    fn an_lfs_file_is_known_by_its_linked_etag_and_size() {
        let meta = FileMeta::from_headers(
            &headers(&[
                ("x-repo-commit", COMMIT),
                ("etag", "\"pointer\""),
                ("x-linked-etag", &format!("\"{SHA}\"")),
                ("x-linked-size", "1234"),
                ("content-length", "0"),
            ]),
            "http://cdn/x".into(),
        )
        .unwrap();
        assert_eq!(meta.etag, SHA);
        assert_eq!(meta.sha256(), Some(SHA));
        assert_eq!(meta.size, Some(1234));
        assert_eq!(meta.blob_name(), SHA);
    }

    #[test]
    fn a_small_file_is_known_by_its_etag() {
        let meta = FileMeta::from_headers(
            &headers(&[
                ("x-repo-commit", COMMIT),
                ("etag", "W/\"abc-1\""),
                ("content-length", "12"),
            ]),
            "http://h/x".into(),
        )
        .unwrap();
        assert_eq!(meta.etag, "abc-1");
        assert_eq!(meta.sha256(), None);
        assert_eq!(meta.size, Some(12));
        assert_eq!(meta.blob_name(), "abc-1");
    }

    #[test]
    fn an_answer_without_a_commit_is_not_the_hubs() {
        let problem = FileMeta::from_headers(&headers(&[("etag", "\"x\"")]), "http://h/x".into());
        assert_eq!(problem, Err(MetaProblem::NoCommit));
        let unsafe_etag = FileMeta::from_headers(
            &headers(&[("x-repo-commit", COMMIT), ("etag", "\"../x\"")]),
            "http://h/x".into(),
        )
        .unwrap();
        assert_eq!(unsafe_etag.blob_name().len(), 64);
    }
}
