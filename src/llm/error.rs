//! Errors of the model engine, one message each.

use std::path::PathBuf;

/// What went wrong loading or running a model.
#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    #[error("cannot read `{path}`: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write `{path}`: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot export the model: {0}")]
    Export(String),
    #[error("`{path}`: {message}")]
    BadFile { path: PathBuf, message: String },
    #[error("`{path}`: `{field}` {problem}")]
    Unsupported {
        path: PathBuf,
        field: String,
        problem: String,
    },
    #[error("`{path}` has no tensor `{name}`")]
    MissingTensor { path: PathBuf, name: String },
    #[error(
        "`{path}`: tensor `{name}` has shape {found:?}, but the model's configuration \
         expects {expected:?} (do the configuration and the weights belong together?)"
    )]
    BadShape {
        path: PathBuf,
        name: String,
        found: Vec<usize>,
        expected: Vec<usize>,
    },
    #[error("this backend cannot compute in `{0}`; use `dtype: f32` or another backend")]
    UnsupportedDtype(&'static str),
    #[error(
        "the model computed a non-finite {what} ({value}); its weights may have diverged in \
         training or be damaged\nhint: `accord verify` checks stored checkpoints"
    )]
    NonFinite { what: &'static str, value: f64 },
    #[error("no wgpu adapter is available: {0}")]
    NoAdapter(String),
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error("chat template: {0}")]
    ChatTemplate(String),
    #[error("{0}")]
    BadSource(String),
    #[error("generation: {0}")]
    Generation(String),
    #[error(transparent)]
    Hf(#[from] super::hf::HfError),
}
