//! Fetching an `hf:` source: from the cache, from the hub, or from the cache when the hub
//! cannot be reached (the policy is in the module doc of [`super`]).

use std::path::{Path, PathBuf};

use super::blob_download::download_blob;
use super::download_progress::DownloadProgress;
use super::file_meta::{FileMeta, is_commit};
use super::hf_error::HfError;
use super::hub_access::HubAccess;
use super::hub_client::{HubClient, Probe};
use super::repo_cache::RepoCache;
use super::repo_files::{
    OPTIONAL, REQUIRED, SINGLE_WEIGHTS, WEIGHTS_INDEX, shards_of, snapshot_complete,
};

/// The revision fetched when a source names none.
pub const DEFAULT_REVISION: &str = "main";

/// Makes repository `repo` at `revision` (default `main`) available under `hf_root` and
/// returns its snapshot folder.
pub fn fetch_repo(hf_root: &Path, repo: &str, revision: Option<&str>) -> Result<PathBuf, HfError> {
    let revision = revision.unwrap_or(DEFAULT_REVISION);
    let model = format!("hf:{repo}@{revision}");
    let cache = RepoCache::new(hf_root, repo);
    if is_commit(revision) && snapshot_complete(&cache, revision, &model) {
        return Ok(cache.snapshot(revision));
    }
    if offline() {
        return cached(&cache, revision, &model).ok_or(HfError::OfflineNotCached { model });
    }
    match download(&cache, repo, revision, &model) {
        Err(HfError::Unreachable { model, url, cause }) => {
            let Some(snapshot) = cached(&cache, revision, &model) else {
                return Err(HfError::Unreachable { model, url, cause });
            };
            let commit = snapshot.file_name().unwrap_or_default().to_string_lossy();
            anstream::eprintln!(
                "{}: the hub is unreachable (`{url}`: {cause}), so `{model}` is its cached \
                 commit `{commit}`, which may be behind",
                crate::output::warning_label(),
            );
            Ok(snapshot)
        }
        result => result,
    }
}

/// Whether `HF_HUB_OFFLINE` forbids the network (`1`, `true`, `yes` or `on`).
fn offline() -> bool {
    std::env::var("HF_HUB_OFFLINE").is_ok_and(|v| {
        matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "1" | "true" | "yes" | "on"
        )
    })
}

/// The complete snapshot `revision` names in the cache, if there is one.
fn cached(cache: &RepoCache, revision: &str, model: &str) -> Option<PathBuf> {
    let commit = if is_commit(revision) {
        revision.to_ascii_lowercase()
    } else {
        cache.read_ref(revision)?
    };
    snapshot_complete(cache, &commit, model).then(|| cache.snapshot(&commit))
}

/// Downloads what the snapshot of `revision` lacks.
fn download(
    cache: &RepoCache,
    repo: &str,
    revision: &str,
    model: &str,
) -> Result<PathBuf, HfError> {
    let client = HubClient::new(HubAccess::from_env(), model);
    let progress = DownloadProgress::new(model);
    let fetch = Fetcher {
        client: &client,
        cache,
        repo,
        progress: &progress,
    };
    // `config.json` at the revision names the commit; the rest is fetched at that commit.
    let config = match client.probe(repo, revision, "config.json")? {
        Probe::Found(meta) => meta,
        Probe::Missing { reason } => return Err(missing(model, "config.json", reason)),
    };
    let commit = config.commit.clone();
    fetch.file(&commit, "config.json", Some(config))?;
    for file in &REQUIRED[1..] {
        if !fetch.file(&commit, file, None)? {
            return Err(missing(model, file, None));
        }
    }
    for file in OPTIONAL {
        fetch.file(&commit, file, None)?;
    }
    if !fetch.file(&commit, SINGLE_WEIGHTS, None)? {
        if !fetch.file(&commit, WEIGHTS_INDEX, None)? {
            return Err(HfError::NoWeights {
                model: model.to_string(),
            });
        }
        let index = cache.snapshot(&commit).join(WEIGHTS_INDEX);
        for shard in shards_of(&index, model)? {
            if !fetch.file(&commit, &shard, None)? {
                return Err(missing(model, &shard, None));
            }
        }
    }
    if revision != commit {
        cache.write_ref(revision, &commit)?;
    }
    Ok(cache.snapshot(&commit))
}

fn missing(model: &str, file: &str, reason: Option<String>) -> HfError {
    HfError::MissingFile {
        model: model.to_string(),
        file: file.to_string(),
        reason,
    }
}

/// Fetches files of one commit of one repository.
struct Fetcher<'a> {
    client: &'a HubClient,
    cache: &'a RepoCache,
    repo: &'a str,
    progress: &'a DownloadProgress,
}

impl Fetcher<'_> {
    /// Puts `file` of `commit` in its snapshot (`known`: what the hub already said about
    /// it); `false` when the commit has no such file. A snapshot's files never change, so
    /// one already there costs no request.
    fn file(&self, commit: &str, file: &str, known: Option<FileMeta>) -> Result<bool, HfError> {
        if self.cache.has(commit, file) {
            return Ok(true);
        }
        if self.cache.lacks(commit, file) {
            return Ok(false);
        }
        let meta = match known {
            Some(meta) => meta,
            None => match self.client.probe(self.repo, commit, file)? {
                Probe::Found(meta) => meta,
                Probe::Missing { .. } => {
                    self.cache.mark_lacking(commit, file)?;
                    return Ok(false);
                }
            },
        };
        download_blob(self.client, self.cache, &meta, file, self.progress)?;
        self.cache.link(commit, file, &meta.blob_name())?;
        Ok(true)
    }
}
