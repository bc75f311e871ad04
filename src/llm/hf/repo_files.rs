//! Which files of a repository a model needs.
//!
//! The configuration and tokenizer are required; the generation settings, chat template
//! and special tokens are used when present; the weights are `model.safetensors`, or an
//! index whose `weight_map` names the shards. Shard names come from the repository, so
//! each must be a relative path that stays inside the snapshot. The required and optional
//! files, with the weights, are also what a folder model's identity hashes (`hub.rs`).

use std::path::{Component, Path};

use super::hf_error::HfError;
use super::repo_cache::RepoCache;

/// Files every model needs.
pub const REQUIRED: [&str; 3] = ["config.json", "tokenizer.json", "tokenizer_config.json"];

/// Files used when the repository has them.
pub const OPTIONAL: [&str; 3] = [
    "generation_config.json",
    "chat_template.jinja",
    "special_tokens_map.json",
];

/// The weights in one file.
pub const SINGLE_WEIGHTS: &str = "model.safetensors";

/// The index of weights in several files.
pub const WEIGHTS_INDEX: &str = "model.safetensors.index.json";

/// The shards the weights index at `index` names, sorted and each once.
pub fn shards_of(index: &Path, model: &str) -> Result<Vec<String>, HfError> {
    let bad = |problem: String| HfError::BadIndex {
        model: model.to_string(),
        file: WEIGHTS_INDEX.into(),
        problem,
    };
    let text = std::fs::read_to_string(index).map_err(|e| bad(e.to_string()))?;
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    let map = value["weight_map"]
        .as_object()
        .ok_or_else(|| bad("it has no `weight_map` object".into()))?;
    let mut shards = Vec::new();
    for (tensor, shard) in map {
        let shard = shard.as_str().ok_or_else(|| {
            bad(format!(
                "tensor `{tensor}` maps to {shard}, not a file name"
            ))
        })?;
        if !stays_inside(shard) {
            return Err(bad(format!(
                "tensor `{tensor}` maps to `{shard}`, which is not a relative path inside the \
                 repository"
            )));
        }
        shards.push(shard.to_string());
    }
    if shards.is_empty() {
        return Err(bad("its `weight_map` is empty".into()));
    }
    shards.sort_unstable();
    shards.dedup();
    Ok(shards)
}

/// Whether `name` is a relative path without `..`, so it stays in the snapshot.
fn stays_inside(name: &str) -> bool {
    let path = Path::new(name);
    !name.is_empty()
        && !name.contains('\\')
        && path.components().all(|c| matches!(c, Component::Normal(_)))
}

/// Whether the snapshot of `commit` has every file the model needs: each required file,
/// each optional one or a record that the commit lacks it, and the weights.
pub fn snapshot_complete(cache: &RepoCache, commit: &str, model: &str) -> bool {
    let has = |file: &str| cache.has(commit, file);
    let settled = |file: &str| has(file) || cache.lacks(commit, file);
    if !REQUIRED.iter().all(|f| has(f)) || !OPTIONAL.iter().all(|f| settled(f)) {
        return false;
    }
    if has(SINGLE_WEIGHTS) {
        return true;
    }
    if !has(WEIGHTS_INDEX) {
        return false;
    }
    let index = cache.snapshot(commit).join(WEIGHTS_INDEX);
    shards_of(&index, model).is_ok_and(|shards| shards.iter().all(|s| has(s)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(text: &str) -> Result<Vec<String>, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(WEIGHTS_INDEX);
        std::fs::write(&path, text).unwrap();
        shards_of(&path, "hf:o/n").map_err(|e| e.to_string())
    }

    #[test]
    fn shards_are_listed_once_in_order() {
        let shards = index(
            r#"{"weight_map": {"a": "m-2.safetensors", "b": "m-1.safetensors", "c": "m-2.safetensors"}}"#,
        );
        assert_eq!(shards.unwrap(), ["m-1.safetensors", "m-2.safetensors"]);
    }

    #[test]
    fn a_shard_outside_the_repository_is_refused() {
        for name in ["../x.safetensors", "/etc/passwd", "a/../../b", ""] {
            let text = format!(r#"{{"weight_map": {{"t": "{name}"}}}}"#);
            let error = index(&text).unwrap_err();
            assert!(error.contains("not a relative path"), "{name}: {error}");
        }
        assert!(index("{}").unwrap_err().contains("no `weight_map`"));
    }
}
