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
pub mod executor;
pub mod graph;
pub mod load;
pub mod location;
pub mod overrides;
pub mod path;
pub mod schema;
pub mod variants;

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use error::{CheckpointUse, Diagnostic, SpecError};
pub use executor::Executor;
pub use graph::{StageDag, StageGraph};
pub use load::{LoadFailure, LoadOptions, LoadedSpec, load, load_text};
pub use location::{Location, Span};
pub use path::FieldPath;
pub use variants::{Variant, variants};

pub use crate::llm::backend::Backend;
pub use crate::llm::model_spec::{Dtype, EndpointUrls, ModelSpec};
pub use crate::stage::Resources;

/// An experiment: models, a DAG of stages, and ablation axes.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "accord pipeline spec")]
pub struct Spec {
    /// Spec format version. This build reads version 1.
    pub version: u32,
    /// The experiment's name, used in run records, reports and file names
    /// (`NAME-report.html`): at most 100 bytes, without `/`, `\` or control characters.
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
    #[serde(default, skip_serializing_if = "crate::canonical::is_default")]
    pub executor: Executor,
    /// Cluster resources for every stage's job, under each stage's own `resources`.
    #[serde(default, skip_serializing_if = "crate::canonical::is_default")]
    pub resources: Resources,
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
    #[serde(default, skip_serializing_if = "crate::canonical::is_default")]
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
