//! Why a stage failed: one variant per kind of failure, one message each.

use std::path::PathBuf;

/// Why a stage failed.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    #[error("interrupted")]
    Cancelled,
    #[error("{0}")]
    Failed(String),
    #[error("cannot read `{path}`: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("`{path}`: {message}")]
    BadFile { path: PathBuf, message: String },
    #[error("input `{input}` lacks column `{column}` of type {expected}")]
    MissingColumn {
        input: String,
        column: String,
        expected: &'static str,
    },
    #[error(transparent)]
    Arrow(#[from] arrow::error::ArrowError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}
