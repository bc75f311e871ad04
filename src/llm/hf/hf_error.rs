//! Why an `hf:` source could not be fetched, one message each.
//!
//! Every message names the source as written (`hf:org/name@revision`) and, where it
//! helps, ends with a `hint:`. None can hold the token: the token is a
//! [`super::hub_access::HubToken`], which has no `Display`, and the URLs quoted here
//! never carry it.

use std::path::PathBuf;

/// What went wrong fetching an `hf:` source.
#[derive(Debug, thiserror::Error)]
pub enum HfError {
    #[error(
        "`{model}`: cannot reach the hub at `{url}`: {cause}\nhint: a model fetched once is \
         used from the cache when the hub is unreachable; `HF_ENDPOINT` sets the hub's address"
    )]
    Unreachable {
        model: String,
        url: String,
        cause: String,
    },
    #[error(
        "`{model}`: the hub refused `{file}` (HTTP {status}) and no token is set\nhint: if \
         the repository is gated or private, accept its licence on its page and set \
         `HF_TOKEN` to a token of that account; otherwise check the repository's name"
    )]
    NoToken {
        model: String,
        file: String,
        status: u16,
    },
    #[error(
        "`{model}`: the hub refused `{file}` (HTTP {status}) with the token set in the \
         environment\nhint: accept the repository's licence on its page with the token's \
         account, or set `HF_TOKEN` to a token that can read it"
    )]
    TokenRefused {
        model: String,
        file: String,
        status: u16,
    },
    #[error("`{model}` has no `{file}`{}\nhint: check the repository's name and revision", hub_says(.reason))]
    MissingFile {
        model: String,
        file: String,
        reason: Option<String>,
    },
    #[error(
        "`{model}` has neither `model.safetensors` nor `model.safetensors.index.json`: \
         accord loads a repository's safetensors weights"
    )]
    NoWeights { model: String },
    #[error("`{model}`: `{url}` answered HTTP {status}{}", hub_says(.reason))]
    Status {
        model: String,
        url: String,
        status: u16,
        reason: Option<String>,
    },
    #[error(
        "`{model}`: `{url}` did not answer as a Hugging Face hub does: {problem}\nhint: does \
         `HF_ENDPOINT` name a hub?"
    )]
    NotAHub {
        model: String,
        url: String,
        problem: String,
    },
    #[error(
        "`{model}`: downloading `{file}` failed {attempts} times, last: {cause}\nhint: run \
         the command again to resume the download where it stopped"
    )]
    Transfer {
        model: String,
        file: String,
        attempts: usize,
        cause: String,
    },
    #[error(
        "`{model}`: `{file}` arrived with {found} bytes, but the hub announced {expected}; \
         the download was discarded"
    )]
    SizeMismatch {
        model: String,
        file: String,
        found: u64,
        expected: u64,
    },
    #[error(
        "`{model}`: `{file}` arrived with sha256 {found}, but the hub announced {expected}; \
         the download was discarded"
    )]
    DigestMismatch {
        model: String,
        file: String,
        found: String,
        expected: String,
    },
    #[error("`{model}`: the weights index `{file}` is not usable: {problem}")]
    BadIndex {
        model: String,
        file: String,
        problem: String,
    },
    #[error(
        "`{model}` is not in the cache, and `HF_HUB_OFFLINE` forbids the network\nhint: \
         fetch it once with the network: `accord models fetch {model}`"
    )]
    OfflineNotCached { model: String },
    #[error("`{model}`: the sha256 of its files is {found}, but the spec pins {expected}")]
    PinMismatch {
        model: String,
        found: String,
        expected: String,
    },
    #[error("model cache: cannot use `{path}`: {source}")]
    Cache {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// `: the hub says "…"`, when the hub said why (its `X-Error-Message` header).
fn hub_says(reason: &Option<String>) -> String {
    match reason {
        Some(reason) => format!(" (the hub says: {reason})"),
        None => String::new(),
    }
}

/// An error for `path` in the cache.
pub fn cache_error(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> HfError + '_ {
    move |source| HfError::Cache {
        path: path.to_path_buf(),
        source,
    }
}
