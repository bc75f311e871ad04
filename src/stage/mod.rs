//! The stage-kind trait: what a kind of stage declares and how it runs.
//!
//! A kind implements [`Stage`] with typed, documented parameters (`serde` + `schemars`);
//! the core sees it through the object-safe [`StageKind`], which every `Stage` gets for
//! free. A kind declares everything its output depends on besides its parameters and
//! inputs — referenced files, embedded data, models — so the key can include their
//! digests. `run` gets its inputs as Arrow record batches and returns one; it never
//! writes to the store itself. Kinds report progress and poll for cancellation through
//! [`StageContext`].

use std::any::Any;
use std::path::PathBuf;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

pub mod cluster_resources;
pub mod context;
pub mod error;
pub mod limits;

pub use cluster_resources::Resources;
pub use context::{Input, StageContext, output_dir};
pub use error::StageError;

/// A kind of stage, implemented by library users and by `accord` itself.
pub trait Stage: Send + Sync + 'static {
    /// The `with:` parameters. Use `#[serde(deny_unknown_fields)]` and give every field
    /// that can have one a default; doc comments become the schema's descriptions.
    type Params: DeserializeOwned + Serialize + JsonSchema + Send + Sync + 'static;

    /// The name written in `kind:`.
    const KIND: &'static str;

    /// Bump whenever the same parameters and inputs would now give different output.
    const VERSION: u32;

    /// One line describing what the stage does.
    const SUMMARY: &'static str;

    /// The Arrow schema of the output, with a `description` in each field's metadata.
    fn output_schema(&self) -> SchemaRef;

    /// Checks parameter values beyond their types: `(field, problem)` pairs, where the
    /// field is relative to `with`.
    fn check_params(&self, _params: &Self::Params) -> Vec<(String, String)> {
        Vec::new()
    }

    /// Checks the upstream stages named in `needs`.
    fn check_inputs(&self, _params: &Self::Params, _inputs: &[Upstream]) -> Result<(), String> {
        Ok(())
    }

    /// Files and embedded data the output depends on.
    fn resources(&self, _params: &Self::Params) -> Vec<Resource> {
        Vec::new()
    }

    /// The models the stage uses: `(with field, model name)`.
    fn models(&self, _params: &Self::Params) -> Vec<(&'static str, String)> {
        Vec::new()
    }

    /// `with` fields that hold the value leaving them out means (a default derived from
    /// other fields, such as `evaluate`'s `judge` naming its `baseline`): the key leaves
    /// them out, so writing a default out changes no key. Such a field must be skipped
    /// when serialised at that default (`Option` with `skip_serializing_if`).
    fn spelled_defaults(&self, _params: &Self::Params) -> Vec<&'static str> {
        Vec::new()
    }

    /// `with` fields that only shape requests to an endpoint model (timeouts, retries,
    /// concurrency), each with the model it is for: `(model name, field)`. When that model
    /// runs in-process they cannot change the output, and the key takes them at their
    /// defaults whatever the spec says.
    fn endpoint_settings(&self, _params: &Self::Params) -> Vec<(String, &'static str)> {
        Vec::new()
    }

    /// Whether the stage samples from a model, so that an ablation's `seeds` axis gives it
    /// a new seed (data stages keep theirs, so every seed sees the same data). By default,
    /// whether it uses a model.
    fn samples(&self, params: &Self::Params) -> bool {
        !self.models(params).is_empty()
    }

    /// What the stage's cluster job asks for unless the spec says otherwise
    /// (`executor: slurm`). By default a model stage gets a GPU node's share (1 GPU,
    /// 4 cores, 32G, 12 hours) and a data stage a small one (1 core, 4G, 1 hour); the GPU
    /// is dropped when the stage's models all run behind endpoints or on `backend: flex`.
    fn cluster_resources(&self, params: &Self::Params) -> Resources {
        if self.models(params).is_empty() {
            Resources {
                cpus: Some(1),
                mem: Some("4G".into()),
                time: Some("1:00:00".into()),
                ..Resources::default()
            }
        } else {
            Resources {
                gpus: Some(1),
                cpus: Some(4),
                mem: Some("32G".into()),
                time: Some("12:00:00".into()),
                ..Resources::default()
            }
        }
    }

    /// Computes the output table.
    fn run(&self, params: &Self::Params, ctx: &StageContext) -> Result<RecordBatch, StageError>;
}

/// An upstream stage as seen by [`Stage::check_inputs`].
#[derive(Debug, Clone)]
pub struct Upstream {
    pub name: String,
    pub kind: String,
}

/// Something besides parameters and inputs that a stage's output depends on.
#[derive(Debug, Clone)]
pub enum Resource {
    /// A file named by a `with` field; relative paths start at the spec's folder.
    File { field: String, path: PathBuf },
    /// A file named by a `with` field in place of built-in data `name` (a template, a
    /// library): a file with the built-in's contents keys as the built-in does.
    Replacing {
        field: String,
        path: PathBuf,
        name: &'static str,
        bytes: &'static [u8],
    },
    /// Data compiled into `accord`, such as a default library.
    Embedded {
        name: &'static str,
        bytes: &'static [u8],
    },
}

impl Resource {
    /// The `with` field and path of a file resource.
    pub fn file(&self) -> Option<(&str, &std::path::Path)> {
        match self {
            Resource::File { field, path } | Resource::Replacing { field, path, .. } => {
                Some((field, path))
            }
            Resource::Embedded { .. } => None,
        }
    }

    /// Built-in data `name` with contents `text`.
    pub fn embedded(name: &'static str, text: &'static str) -> Self {
        Resource::Embedded {
            name,
            bytes: text.as_bytes(),
        }
    }
}

/// Parameters checked and with their defaults filled in.
#[derive(Clone)]
pub struct Resolved {
    /// The parameters as canonical JSON, all defaults present: what the key hashes.
    pub json: Value,
    typed: Arc<dyn Any + Send + Sync>,
}

impl std::fmt::Debug for Resolved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.json.fmt(f)
    }
}

impl Resolved {
    fn get<P: 'static>(&self) -> &P {
        self.typed
            .downcast_ref()
            .expect("parameters are resolved by the kind that reads them")
    }
}

/// The object-safe face of a [`Stage`], used by the registry, planner and executor.
pub trait StageKind: Send + Sync {
    fn kind(&self) -> &'static str;
    fn version(&self) -> u32;
    fn summary(&self) -> &'static str;
    fn output_schema(&self) -> SchemaRef;
    fn params_schema(&self, generator: &mut SchemaGenerator) -> Schema;
    /// The fields `with` takes, in declaration order (flattened ones included).
    fn param_names(&self) -> Vec<String>;
    /// Deserialises `with` (an object) and fills in defaults.
    fn resolve(
        &self,
        with: Value,
    ) -> Result<Resolved, serde_path_to_error::Error<serde_json::Error>>;
    fn check_params(&self, params: &Resolved) -> Vec<(String, String)>;
    fn check_inputs(&self, params: &Resolved, inputs: &[Upstream]) -> Result<(), String>;
    fn resources(&self, params: &Resolved) -> Vec<Resource>;
    fn models(&self, params: &Resolved) -> Vec<(&'static str, String)>;
    fn endpoint_settings(&self, params: &Resolved) -> Vec<(String, &'static str)>;
    fn samples(&self, params: &Resolved) -> bool;
    fn cluster_resources(&self, params: &Resolved) -> Resources;
    fn run(&self, params: &Resolved, ctx: &StageContext) -> Result<RecordBatch, StageError>;
}

impl<S: Stage> StageKind for S {
    fn kind(&self) -> &'static str {
        S::KIND
    }

    fn version(&self) -> u32 {
        S::VERSION
    }

    fn summary(&self) -> &'static str {
        S::SUMMARY
    }

    fn output_schema(&self) -> SchemaRef {
        Stage::output_schema(self)
    }

    fn params_schema(&self, generator: &mut SchemaGenerator) -> Schema {
        generator.subschema_for::<S::Params>()
    }

    fn param_names(&self) -> Vec<String> {
        let schema = SchemaGenerator::default().into_root_schema_for::<S::Params>();
        schema
            .get("properties")
            .and_then(Value::as_object)
            .map(|properties| properties.keys().cloned().collect())
            .unwrap_or_default()
    }

    fn resolve(
        &self,
        with: Value,
    ) -> Result<Resolved, serde_path_to_error::Error<serde_json::Error>> {
        let typed: S::Params = serde_path_to_error::deserialize(with)?;
        let mut json = crate::canonical::normalise(
            &serde_json::to_value(&typed).expect("parameters serialise to JSON"),
        );
        if let Value::Object(fields) = &mut json {
            for field in Stage::spelled_defaults(self, &typed) {
                fields.remove(field);
            }
        }
        Ok(Resolved {
            json,
            typed: Arc::new(typed),
        })
    }

    fn check_params(&self, params: &Resolved) -> Vec<(String, String)> {
        Stage::check_params(self, params.get())
    }

    fn check_inputs(&self, params: &Resolved, inputs: &[Upstream]) -> Result<(), String> {
        Stage::check_inputs(self, params.get(), inputs)
    }

    fn resources(&self, params: &Resolved) -> Vec<Resource> {
        Stage::resources(self, params.get())
    }

    fn models(&self, params: &Resolved) -> Vec<(&'static str, String)> {
        Stage::models(self, params.get())
    }

    fn endpoint_settings(&self, params: &Resolved) -> Vec<(String, &'static str)> {
        Stage::endpoint_settings(self, params.get())
    }

    fn samples(&self, params: &Resolved) -> bool {
        Stage::samples(self, params.get())
    }

    fn cluster_resources(&self, params: &Resolved) -> Resources {
        Stage::cluster_resources(self, params.get())
    }

    fn run(&self, params: &Resolved, ctx: &StageContext) -> Result<RecordBatch, StageError> {
        Stage::run(self, params.get(), ctx)
    }
}
