//! Hugging Face folders: `model.safetensors` or shards listed in
//! `model.safetensors.index.json`, memory-mapped, converted to f32 tensor by tensor.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use safetensors::{Dtype, SafeTensors};

use super::{HostTensor, WeightSource};
use crate::llm::error::LlmError;

/// The safetensors files of a Hugging Face folder.
pub struct SafetensorsWeights {
    folder: PathBuf,
    files: Vec<(PathBuf, Mmap)>,
    /// Tensor name → where it is, read from each file's header once at open.
    index: BTreeMap<String, TensorEntry>,
}

struct TensorEntry {
    file: usize,
    dtype: Dtype,
    shape: Vec<usize>,
    /// Byte range within the file.
    start: usize,
    end: usize,
}

impl SafetensorsWeights {
    /// Opens the weights of the Hugging Face folder `folder`.
    pub fn open(folder: &Path) -> Result<Self, LlmError> {
        let read = |path: &Path| -> Result<Mmap, LlmError> {
            let file = std::fs::File::open(path).map_err(|source| LlmError::Read {
                path: path.to_path_buf(),
                source,
            })?;
            // SAFETY: the file is only read; a concurrent writer would corrupt our view, as
            // with any reader, but not memory safety of safe code using the bytes.
            unsafe { Mmap::map(&file) }.map_err(|source| LlmError::Read {
                path: path.to_path_buf(),
                source,
            })
        };
        let single = folder.join("model.safetensors");
        let index_path = folder.join("model.safetensors.index.json");
        let names: Vec<PathBuf> = if single.exists() {
            vec![single]
        } else if index_path.exists() {
            let text = std::fs::read_to_string(&index_path).map_err(|source| LlmError::Read {
                path: index_path.clone(),
                source,
            })?;
            let index: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| LlmError::BadFile {
                    path: index_path.clone(),
                    message: e.to_string(),
                })?;
            let mut shards: Vec<String> = index["weight_map"]
                .as_object()
                .ok_or_else(|| LlmError::BadFile {
                    path: index_path.clone(),
                    message: "no `weight_map`".into(),
                })?
                .values()
                .filter_map(|v| v.as_str().map(String::from))
                .collect();
            shards.sort();
            shards.dedup();
            shards.into_iter().map(|s| folder.join(s)).collect()
        } else {
            return Err(LlmError::BadFile {
                path: folder.to_path_buf(),
                message: "no `model.safetensors` or `model.safetensors.index.json`".into(),
            });
        };
        let mut files = Vec::new();
        let mut index = BTreeMap::new();
        for path in names {
            let map = read(&path)?;
            let tensors = SafeTensors::deserialize(&map).map_err(|e| LlmError::BadFile {
                path: path.clone(),
                message: format!(
                    "is not a readable safetensors file ({e}); a partial download? fetch it again"
                ),
            })?;
            let base = map.as_ptr() as usize;
            for (name, view) in tensors.tensors() {
                let start = view.data().as_ptr() as usize - base;
                index.insert(
                    name,
                    TensorEntry {
                        file: files.len(),
                        dtype: view.dtype(),
                        shape: view.shape().to_vec(),
                        start,
                        end: start + view.data().len(),
                    },
                );
            }
            drop(tensors);
            files.push((path, map));
        }
        Ok(Self {
            folder: folder.to_path_buf(),
            files,
            index,
        })
    }
}

impl WeightSource for SafetensorsWeights {
    fn path(&self) -> &Path {
        &self.folder
    }

    fn get(&mut self, name: &str) -> Result<Option<HostTensor>, LlmError> {
        let Some(entry) = self.index.get(name) else {
            return Ok(None);
        };
        let (path, map) = &self.files[entry.file];
        let bad = |message: String| LlmError::BadFile {
            path: path.clone(),
            message,
        };
        let bytes = &map[entry.start..entry.end];
        let data: Vec<f32> = match entry.dtype {
            Dtype::F32 => bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            Dtype::F16 => bytes
                .chunks_exact(2)
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            Dtype::BF16 => bytes
                .chunks_exact(2)
                .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            other => {
                return Err(bad(format!(
                    "tensor `{name}` has dtype {other:?}; supported: F32, F16, BF16"
                )));
            }
        };
        Ok(Some(HostTensor {
            shape: entry.shape.clone(),
            data,
        }))
    }
}
