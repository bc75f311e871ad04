//! Weights as Hugging Face-named host tensors, whatever file they come from.
//!
//! A [`WeightSource`] hands out tensors by their `transformers` name and PyTorch layout
//! (`[out, in]` for linear weights); [`safetensors`] reads Hugging Face folders (single or
//! sharded files, f32/f16/bf16), [`gguf`] reads GGUF files (dequantising, and undoing
//! llama.cpp's Q/K row permutation). The model is then built the same way from either.
//!
//! A host tensor is burn's [`TensorData`] in the dtype the file stores, not f32: a bf16
//! checkpoint loaded as bf16 goes from the file's bytes to the device tensor without an
//! f32 copy of any tensor. The caller says which dtype it wants; a source converts while
//! reading where that costs nothing (safetensors widen bf16 and f16 to f32 inside the f32
//! buffer), and whatever still differs is converted by burn in `from_data`, one tensor at a
//! time. GGUF tensors are dequantised to f32 first.

pub mod dequantise;
pub mod gguf;
mod gguf_layout;
pub mod random;
pub mod safetensors;
mod safetensors_header;

use std::path::Path;

use burn::tensor::{DType, TensorData};

use super::error::LlmError;

/// Where a model's weights come from.
pub trait WeightSource {
    /// The file or folder, for messages.
    fn path(&self) -> &Path;

    /// The tensor named `name` (Hugging Face naming), if the source has it, row-major: in
    /// `wanted` when the source can convert it there as it reads it without another copy,
    /// otherwise in the dtype the source stores it in.
    fn get(&mut self, name: &str, wanted: DType) -> Result<Option<TensorData>, LlmError>;

    /// The tensor named `name`, which must exist and have shape `shape` (dtype as
    /// [`get`](Self::get) gives it).
    fn take(&mut self, name: &str, shape: &[usize], wanted: DType) -> Result<TensorData, LlmError> {
        let tensor = self
            .get(name, wanted)?
            .ok_or_else(|| LlmError::MissingTensor {
                path: self.path().to_path_buf(),
                name: name.to_string(),
            })?;
        if tensor.shape().as_slice() != shape {
            return Err(LlmError::BadShape {
                path: self.path().to_path_buf(),
                name: name.to_string(),
                found: tensor.shape().as_slice().to_vec(),
                expected: shape.to_vec(),
            });
        }
        Ok(tensor)
    }
}
