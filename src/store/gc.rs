//! `accord gc`: drop what no kept run refers to.
//!
//! Kept runs are the latest `keep_runs` runs of each spec (and variant). Artifacts, key
//! sidecars and work folders that none of them refers to are removed, as are older run
//! records and leftovers of interrupted writes. Work folders of stages that never finished
//! hold resumable progress and are kept unless asked for (`--work`). Runs hold `gc.lock` shared, so gc refuses
//! to start while one is in progress instead of pulling artifacts from under it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::artifact::Meta;
use super::{Store, StoreError, io_at};

/// What `accord gc` removed (or would remove, in a dry run).
#[derive(Debug, Default)]
pub struct GcReport {
    /// `(stage, key, bytes)` of each removed artifact.
    pub artifacts: Vec<(String, String, u64)>,
    pub runs: usize,
    pub kept_runs: usize,
    /// Bytes freed in all, including work folders and temporary files.
    pub freed: u64,
}

/// Why gc could not run.
#[derive(Debug, thiserror::Error)]
pub enum GcError {
    #[error("another `accord run` is using this store")]
    Busy,
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn size_of(path: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if !meta.is_dir() {
        return meta.len();
    }
    std::fs::read_dir(path)
        .map(|entries| entries.flatten().map(|e| size_of(&e.path())).sum())
        .unwrap_or(0)
}

fn remove(path: &Path, dry_run: bool) -> Result<u64, StoreError> {
    let size = size_of(path);
    if !dry_run {
        let result = if path.is_dir() {
            std::fs::remove_dir_all(path)
        } else {
            std::fs::remove_file(path)
        };
        result.map_err(io_at(path))?;
    }
    Ok(size)
}

impl Store {
    /// Removes everything the latest `keep_runs` runs of each spec do not refer to.
    /// Work folders of unfinished stages (their row caches) are kept unless `work` is set.
    pub fn gc(&self, keep_runs: usize, work: bool, dry_run: bool) -> Result<GcReport, GcError> {
        let _lock = self.lock_exclusive_for_gc()?.ok_or(GcError::Busy)?;
        let mut report = GcReport::default();
        let runs = self.runs()?;
        let mut by_spec: BTreeMap<(String, Option<String>), Vec<usize>> = BTreeMap::new();
        for (i, run) in runs.iter().enumerate() {
            by_spec
                .entry((run.spec_name.clone(), run.variant.clone()))
                .or_default()
                .push(i);
        }
        let mut kept: BTreeSet<usize> = BTreeSet::new();
        for indices in by_spec.values() {
            kept.extend(indices.iter().rev().take(keep_runs.max(1)));
        }
        let mut live_keys = BTreeSet::new();
        for (i, run) in runs.iter().enumerate() {
            if kept.contains(&i) {
                live_keys.extend(run.stages.iter().filter_map(|s| s.key.clone()));
            } else {
                report.freed +=
                    remove(&self.dir("runs").join(format!("{}.json", run.id)), dry_run)?;
                report.runs += 1;
            }
        }
        report.kept_runs = kept.len();
        for dir in self.entry_dirs()? {
            let key = dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if live_keys.contains(&key) {
                continue;
            }
            let stage = std::fs::read(dir.join("meta.json"))
                .ok()
                .and_then(|b| serde_json::from_slice::<Meta>(&b).ok())
                .map(|m| m.stage)
                .unwrap_or_else(|| "?".into());
            let size = remove(&dir, dry_run)?;
            report.freed += size;
            report.artifacts.push((stage, key, size));
        }
        let keys_root = self.dir("keys");
        for shard in std::fs::read_dir(&keys_root)
            .into_iter()
            .flatten()
            .flatten()
        {
            for file in std::fs::read_dir(shard.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                let name = file
                    .file_name()
                    .to_string_lossy()
                    .trim_end_matches(".json")
                    .to_string();
                if !live_keys.contains(&name) {
                    report.freed += remove(&file.path(), dry_run)?;
                }
            }
        }
        for dir in ["work", "tmp", "locks"] {
            for entry in std::fs::read_dir(self.dir(dir))
                .into_iter()
                .flatten()
                .flatten()
            {
                let name = entry.file_name().to_string_lossy().into_owned();
                let key = name.trim_end_matches(".lock");
                let finished = self.entry_dir(key).exists();
                if dir == "work" && (live_keys.contains(key) || !(work || finished)) {
                    continue;
                }
                // Only key locks nobody holds: never gc's own lock, the runs' leases, or
                // files in the middle of being taken.
                if dir == "locks"
                    && (name == "gc.lock"
                        || !name.ends_with(".lock")
                        || super::lock::held(&entry.path()))
                {
                    continue;
                }
                report.freed += remove(&entry.path(), dry_run)?;
            }
        }
        Ok(report)
    }
}
