//! Weights as Hugging Face-named f32 host tensors, whatever file they come from.
//!
//! A [`WeightSource`] hands out tensors by their `transformers` name and PyTorch layout
//! (`[out, in]` for linear weights); [`safetensors`] reads Hugging Face folders (single or
//! sharded files, f32/f16/bf16), [`gguf`] reads GGUF files (dequantising, and undoing
//! llama.cpp's Q/K row permutation). The model is then built the same way from either.

pub mod dequantise;
pub mod gguf;
mod gguf_layout;
pub mod random;
pub mod safetensors;

use std::path::Path;

use super::error::LlmError;

/// A tensor in host memory, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct HostTensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// Where a model's weights come from.
pub trait WeightSource {
    /// The file or folder, for messages.
    fn path(&self) -> &Path;

    /// The tensor named `name` (Hugging Face naming), if the source has it.
    fn get(&mut self, name: &str) -> Result<Option<HostTensor>, LlmError>;

    /// The tensor named `name`, which must exist and have shape `shape`.
    fn take(&mut self, name: &str, shape: &[usize]) -> Result<HostTensor, LlmError> {
        let tensor = self.get(name)?.ok_or_else(|| LlmError::MissingTensor {
            path: self.path().to_path_buf(),
            name: name.to_string(),
        })?;
        if tensor.shape != shape {
            return Err(LlmError::BadShape {
                path: self.path().to_path_buf(),
                name: name.to_string(),
                found: tensor.shape,
                expected: shape.to_vec(),
            });
        }
        Ok(tensor)
    }
}
