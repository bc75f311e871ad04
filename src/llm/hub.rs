//! The spec's models as stages use them: identities for keys, and loaded models on demand.
//!
//! A run builds one [`ModelHub`] from the spec's `models:` and `backend:`. Nothing is
//! fetched, probed or loaded until a stage that uses a model is keyed or run, so plans
//! without models (and no-op runs) never touch a GPU. The backend is resolved once per
//! process and each in-process model is loaded once, then shared by every stage that
//! names it.
//!
//! A model's identity — what enters the keys of the stages using it — is the digest of its
//! weight, configuration and tokenizer files plus its `dtype` for in-process models, and
//! the endpoint, served model name and pinned revision for endpoint models; either way plus
//! its `chat_template_kwargs` when it has any (they change every prompt it sees; a model
//! without them keeps the identity it had before they existed). Stages using an
//! in-process model also key on the backend name, since numerics differ between them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use indexmap::IndexMap;
use serde_json::{Value, json};

use super::backend::Backend;
use super::backend::{ResolvedBackend, resolve_backend};
use super::error::LlmError;
use super::hf::repo_files::{OPTIONAL, REQUIRED};
use super::loaded::LoadedModel;
use super::model_spec::ModelSpec;
use super::source::{ModelSource, fetch};
use crate::store::Store;

/// The spec's models, fetched, identified and loaded lazily.
pub struct ModelHub {
    models: IndexMap<String, ModelSpec>,
    /// Relative `path:` sources start here (the spec's folder).
    base: PathBuf,
    choice: Backend,
    backend: OnceLock<Result<ResolvedBackend, String>>,
    paths: Mutex<HashMap<String, PathBuf>>,
    identities: Mutex<HashMap<String, Value>>,
    loaded: Mutex<HashMap<String, Arc<LoadedModel>>>,
    /// The output of each stage whose checkpoint a model is: its entry folder and digest.
    trained: Mutex<HashMap<String, (PathBuf, String)>>,
}

impl ModelHub {
    pub fn new(models: IndexMap<String, ModelSpec>, base: &Path, choice: Backend) -> Self {
        Self {
            models,
            base: base.to_path_buf(),
            choice,
            backend: OnceLock::new(),
            paths: Mutex::new(HashMap::new()),
            identities: Mutex::new(HashMap::new()),
            loaded: Mutex::new(HashMap::new()),
            trained: Mutex::new(HashMap::new()),
        }
    }

    /// Records where stage `stage`'s output is (its store entry and the digest of its
    /// table), so models with `source: stage:NAME` find its checkpoint. Models already
    /// resolved from an earlier output of the stage are forgotten.
    pub fn trained_by_stage(&self, stage: &str, entry: &Path, digest: &str) {
        let mut trained = self.trained.lock().unwrap_or_else(|p| p.into_inner());
        let output = (entry.to_path_buf(), digest.to_string());
        if trained.get(stage) == Some(&output) {
            return;
        }
        trained.insert(stage.to_string(), output);
        let users: Vec<String> = self
            .models
            .iter()
            .filter(|(_, m)| m.trained_by() == Some(stage))
            .map(|(name, _)| name.clone())
            .collect();
        let mut paths = self.paths.lock().unwrap_or_else(|p| p.into_inner());
        let mut loaded = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        for name in users {
            paths.remove(&name);
            loaded.remove(&name);
        }
    }

    /// The checkpoint folder and output digest of the stage model `name` comes from.
    fn trained_output(&self, name: &str, stage: &str) -> Result<(PathBuf, String), LlmError> {
        let trained = self.trained.lock().unwrap_or_else(|p| p.into_inner());
        let (entry, digest) = trained.get(stage).ok_or_else(|| {
            LlmError::BadSource(format!(
                "model `{name}` is the checkpoint of stage `{stage}`, which has not finished"
            ))
        })?;
        let folder = entry.join("checkpoint");
        if !folder.is_dir() {
            return Err(LlmError::BadSource(format!(
                "model `{name}`: stage `{stage}` wrote no checkpoint (`grpo` stages do)"
            )));
        }
        Ok((folder, digest.clone()))
    }

    /// The spec entry of model `name`.
    pub fn spec(&self, name: &str) -> Result<&ModelSpec, LlmError> {
        self.models
            .get(name)
            .ok_or_else(|| LlmError::BadSource(format!("the spec has no model `{name}`")))
    }

    /// Whether model `name` runs in-process (it has a `source`), not behind an endpoint.
    pub fn in_process(&self, name: &str) -> bool {
        self.models.get(name).is_some_and(|m| m.source.is_some())
    }

    /// The backend in-process models run on, resolved on first use.
    pub fn backend(&self) -> Result<&ResolvedBackend, LlmError> {
        self.backend
            .get_or_init(|| resolve_backend(self.choice).map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|e| LlmError::NoAdapter(e.clone()))
    }

    /// The name of the backend model `name` runs on: `None` for an endpoint model.
    pub fn backend_name_of(&self, name: &str) -> Result<Option<&'static str>, LlmError> {
        if !self.in_process(name) {
            return Ok(None);
        }
        Ok(Some(self.backend()?.name))
    }

    /// The backend, if some stage has resolved it in this process.
    pub fn resolved_backend(&self) -> Option<&ResolvedBackend> {
        self.backend.get().and_then(|r| r.as_ref().ok())
    }

    /// Where model `name`'s files are, fetching them on first use.
    pub fn path(&self, name: &str) -> Result<PathBuf, LlmError> {
        let mut paths = self.paths.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(path) = paths.get(name) {
            return Ok(path.clone());
        }
        let spec = self.spec(name)?;
        if let Some(stage) = spec.trained_by() {
            let (folder, _) = self.trained_output(name, stage)?;
            paths.insert(name.to_string(), folder.clone());
            return Ok(folder);
        }
        let source = spec.source.as_deref().ok_or_else(|| {
            LlmError::BadSource(format!("model `{name}` is an endpoint, not in-process"))
        })?;
        let source = ModelSource::parse(source).map_err(|e| LlmError::BadSource(e.to_string()))?;
        let path = fetch(&source, spec.sha256.as_deref(), &self.base)?;
        paths.insert(name.to_string(), path.clone());
        Ok(path)
    }

    /// The identity [`ModelHub::identity`] computed for model `name` (when the stage
    /// using it was keyed), for the keys of rows; `null` if it was never computed.
    pub fn identity_seen(&self, name: &str) -> Value {
        let identities = self.identities.lock().unwrap_or_else(|p| p.into_inner());
        identities.get(name).cloned().unwrap_or(Value::Null)
    }

    /// What the keys of stages using model `name` record about it.
    pub fn identity(&self, name: &str, store: &Store) -> Result<Value, LlmError> {
        let identity = self.compute_identity(name, store)?;
        let mut identities = self.identities.lock().unwrap_or_else(|p| p.into_inner());
        identities.insert(name.to_string(), identity.clone());
        Ok(identity)
    }

    fn compute_identity(&self, name: &str, store: &Store) -> Result<Value, LlmError> {
        let spec = self.spec(name)?;
        let mut identity = self.identity_of_weights(name, spec, store)?;
        if !spec.chat_template_kwargs.is_empty() {
            identity["chat_template_kwargs"] =
                serde_json::to_value(&spec.chat_template_kwargs).expect("JSON values serialise");
        }
        Ok(identity)
    }

    /// The identity of what model `name` computes with: its weights or its served model.
    fn identity_of_weights(
        &self,
        name: &str,
        spec: &ModelSpec,
        store: &Store,
    ) -> Result<Value, LlmError> {
        if spec.source.is_none() {
            // The served model and its pinned revision, not the URL: moving a server does
            // not change what it computes.
            return Ok(json!({
                "model": spec.model,
                "revision": spec.revision,
            }));
        }
        if let Some(stage) = spec.trained_by() {
            // The stage's output digest stands for the checkpoint it wrote with it.
            let (_, digest) = self.trained_output(name, stage)?;
            return Ok(json!({ "stage": stage, "output": digest, "dtype": spec.dtype.name() }));
        }
        let path = self.path(name)?;
        let digest = |file: &Path| {
            store.file_digest(file).map_err(|e| LlmError::BadFile {
                path: file.to_path_buf(),
                message: e.to_string(),
            })
        };
        let mut files = serde_json::Map::new();
        if path.is_dir() {
            let mut weights = Vec::new();
            for entry in std::fs::read_dir(&path).map_err(|source| LlmError::Read {
                path: path.clone(),
                source,
            })? {
                let file_name = entry
                    .map_err(|source| LlmError::Read {
                        path: path.clone(),
                        source,
                    })?
                    .file_name()
                    .to_string_lossy()
                    .into_owned();
                if file_name.ends_with(".safetensors")
                    || file_name.ends_with(".safetensors.index.json")
                    || REQUIRED.contains(&file_name.as_str())
                    || OPTIONAL.contains(&file_name.as_str())
                {
                    weights.push(file_name);
                }
            }
            weights.sort();
            for file_name in weights {
                files.insert(
                    file_name.clone(),
                    Value::String(digest(&path.join(&file_name))?),
                );
            }
        } else {
            files.insert("weights".into(), Value::String(digest(&path)?));
        }
        Ok(json!({ "files": files, "dtype": spec.dtype.name() }))
    }

    /// Model `name`, loaded onto the backend on first use and shared afterwards.
    pub fn load(&self, name: &str) -> Result<Arc<LoadedModel>, LlmError> {
        let mut loaded = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(model) = loaded.get(name) {
            return Ok(model.clone());
        }
        let path = self.path(name)?;
        let backend = self.backend()?;
        let spec = self.spec(name)?;
        let model = Arc::new(
            LoadedModel::load(&path, backend, spec.dtype)?
                .with_chat_template_kwargs(spec.chat_template_kwargs.clone()),
        );
        loaded.insert(name.to_string(), model.clone());
        Ok(model)
    }
}
