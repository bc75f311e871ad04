//! Training state on disk, so an interrupted `grpo` stage resumes where it stopped.
//!
//! The state is a folder in the stage's work folder: the policy as a Hugging Face folder
//! (`policy/`), the optimiser's moments (`optimizer.bpk`, burn's format, keyed by the
//! parameters' name-derived ids), the frozen opponent when it is not the policy
//! (`opponent/`), LoRA factors when adapters train (`adapters.safetensors`) and the
//! finished steps with their metrics (`progress.json`).
//! Random streams are derived from the seed and the step, so nothing else is needed for a
//! resumed run to continue exactly as an uninterrupted one would.
//!
//! A new state is written beside the old one and swapped in by renaming, so an
//! interruption while saving leaves the previous state whole.

use std::path::{Path, PathBuf};

use burn::optim::ModuleOptimizer;
use burn::tensor::Device;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::llm::export::{NamedTensor, hf_tensors, save_hf_folder, save_safetensors};
use crate::llm::loaded::LoadedModel;
use crate::llm::model_spec::Dtype;
use crate::llm::weights::safetensors::SafetensorsWeights;
use crate::llm::{LlamaModel, LlmError};

/// What a saved state holds besides the models.
pub struct Restored<P> {
    /// The policy's weights (adapters merged in).
    pub policy: LlamaModel,
    /// LoRA factors, when the run trains adapters.
    pub adapters: Option<Vec<NamedTensor>>,
    pub optimizer: ModuleOptimizer,
    pub opponent: Option<LlamaModel>,
    pub progress: P,
}

/// Where the training state of a stage lives.
pub struct StateDir {
    dir: PathBuf,
}

fn failed(what: &str, e: impl std::fmt::Display) -> LlmError {
    LlmError::Export(format!("training state: {what}: {e}"))
}

impl StateDir {
    pub fn new(work_dir: &Path) -> Self {
        Self {
            dir: work_dir.join("state"),
        }
    }

    fn staged(&self) -> PathBuf {
        self.dir.with_extension("new")
    }

    fn previous(&self) -> PathBuf {
        self.dir.with_extension("old")
    }

    /// Saves the state after a step.
    pub fn save(
        &self,
        base: &LoadedModel,
        policy: &LlamaModel,
        optimizer: &ModuleOptimizer,
        opponent: Option<&LlamaModel>,
        adapters: Option<&[NamedTensor]>,
        progress: &impl Serialize,
    ) -> Result<(), LlmError> {
        let staged = self.staged();
        let _ = std::fs::remove_dir_all(&staged);
        save_hf_folder(
            policy,
            &base.tokenizer,
            base.chat_template.as_ref(),
            &staged.join("policy"),
        )?;
        optimizer
            .save(staged.join("optimizer.bpk"))
            .map_err(|e| failed("optimizer", e))?;
        if let Some(opponent) = opponent {
            let folder = staged.join("opponent");
            std::fs::create_dir_all(&folder).map_err(|source| LlmError::Write {
                path: folder.clone(),
                source,
            })?;
            save_safetensors(&hf_tensors(opponent), &folder.join("model.safetensors"))?;
        }
        if let Some(adapters) = adapters {
            save_safetensors(adapters, &staged.join("adapters.safetensors"))?;
        }
        let progress = serde_json::to_vec(progress).map_err(|e| failed("progress", e))?;
        let path = staged.join("progress.json");
        std::fs::write(&path, progress).map_err(|source| LlmError::Write { path, source })?;
        let previous = self.previous();
        let _ = std::fs::remove_dir_all(&previous);
        if self.dir.exists() {
            std::fs::rename(&self.dir, &previous).map_err(|source| LlmError::Write {
                path: self.dir.clone(),
                source,
            })?;
        }
        std::fs::rename(&staged, &self.dir).map_err(|source| LlmError::Write {
            path: self.dir.clone(),
            source,
        })?;
        let _ = std::fs::remove_dir_all(&previous);
        Ok(())
    }

    /// The last saved state, if there is one; `optimizer` is the fresh optimiser to load
    /// the moments into.
    pub fn load<P: DeserializeOwned>(
        &self,
        base: &LlamaModel,
        device: &Device,
        dtype: Dtype,
        optimizer: ModuleOptimizer,
    ) -> Result<Option<Restored<P>>, LlmError> {
        let dir = [self.dir.clone(), self.previous()]
            .into_iter()
            .find(|d| d.join("progress.json").exists());
        let Some(dir) = dir else {
            return Ok(None);
        };
        let load = |folder: &Path| -> Result<LlamaModel, LlmError> {
            let mut weights = SafetensorsWeights::open(folder)?;
            LlamaModel::load(base.config.clone(), &mut weights, device, dtype)
        };
        let policy = load(&dir.join("policy"))?;
        let opponent = if dir.join("opponent").is_dir() {
            Some(load(&dir.join("opponent"))?)
        } else {
            None
        };
        let adapters = match dir.join("adapters.safetensors") {
            path if path.exists() => Some(read_safetensors(&path)?),
            _ => None,
        };
        let optimizer = optimizer
            .load(dir.join("optimizer.bpk"))
            .map_err(|e| failed("optimizer", e))?;
        let path = dir.join("progress.json");
        let bytes = std::fs::read(&path).map_err(|source| LlmError::Read { path, source })?;
        let progress = serde_json::from_slice(&bytes).map_err(|e| failed("progress", e))?;
        Ok(Some(Restored {
            policy,
            adapters,
            optimizer,
            opponent,
            progress,
        }))
    }
}

/// Every f32 tensor of a safetensors file.
fn read_safetensors(path: &Path) -> Result<Vec<NamedTensor>, LlmError> {
    let bytes = std::fs::read(path).map_err(|source| LlmError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let file = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| failed("adapters", e))?;
    let mut tensors: Vec<NamedTensor> = file
        .tensors()
        .into_iter()
        .map(|(name, view)| NamedTensor {
            name,
            shape: view.shape().to_vec(),
            values: view
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
        })
        .collect();
    tensors.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(tensors)
}
