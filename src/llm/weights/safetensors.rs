//! Hugging Face folders: `model.safetensors` or shards listed in
//! `model.safetensors.index.json`, read tensor by tensor in the dtype they are stored in (or
//! widened to f32 on the way).
//!
//! Opening the folder reads each file's header only (see [`super::safetensors_header`]),
//! and checks it against the file's length. Each tensor is then read on demand with one
//! positioned read into a fresh buffer that becomes the tensor's storage: nothing is
//! memory-mapped, so the only resident copy of the checkpoint is the model being built (the
//! page cache holds the file, but that is not the process's memory). Shards are not read
//! in turn but in the order the model asks for tensors, which costs nothing more since no
//! shard is held.
//!
//! A bf16 checkpoint loaded as bf16 on flex peaks at 1.02× its size (`scripts/bench-load.py`,
//! Qwen3-0.6B's shape): mapping every shard and converting each tensor to f32 first used to
//! peak at 2.7×. Loaded as f32, bf16 and f16 tensors are widened inside their f32 buffers,
//! so that load peaks near the f32 model's size; other conversions (f32 to bf16, say) are
//! burn's in `from_data`, with one tensor's source beside its result.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use burn::tensor::{DType, TensorData};
use safetensors::Dtype;

use super::WeightSource;
use super::safetensors_header::{ShardHeader, TensorEntry};
use crate::llm::error::LlmError;

/// The safetensors files of a Hugging Face folder.
pub struct SafetensorsWeights {
    folder: PathBuf,
    /// Each file, open, with its path for messages.
    files: Vec<(PathBuf, File)>,
    /// Tensor name → the file it is in and where, read from each file's header at open.
    index: BTreeMap<String, (usize, TensorEntry)>,
}

impl SafetensorsWeights {
    /// Opens the weights of the Hugging Face folder `folder`.
    pub fn open(folder: &Path) -> Result<Self, LlmError> {
        let mut files = Vec::new();
        let mut index = BTreeMap::new();
        for path in weight_files(folder)? {
            let file = File::open(&path).map_err(|source| LlmError::Read {
                path: path.clone(),
                source,
            })?;
            let header = ShardHeader::read(&file).map_err(|e| LlmError::BadFile {
                path: path.clone(),
                message: format!(
                    "is not a readable safetensors file ({e}); a partial download? fetch it again"
                ),
            })?;
            for (name, entry) in header.tensors {
                index.insert(name, (files.len(), entry));
            }
            files.push((path, file));
        }
        Ok(Self {
            folder: folder.to_path_buf(),
            files,
            index,
        })
    }
}

/// The safetensors files of `folder`: `model.safetensors`, or every shard the index names.
fn weight_files(folder: &Path) -> Result<Vec<PathBuf>, LlmError> {
    let single = folder.join("model.safetensors");
    if single.exists() {
        return Ok(vec![single]);
    }
    let index_path = folder.join("model.safetensors.index.json");
    if !index_path.exists() {
        return Err(LlmError::BadFile {
            path: folder.to_path_buf(),
            message: "no `model.safetensors` or `model.safetensors.index.json`".into(),
        });
    }
    let text = std::fs::read_to_string(&index_path).map_err(|source| LlmError::Read {
        path: index_path.clone(),
        source,
    })?;
    let index: serde_json::Value = serde_json::from_str(&text).map_err(|e| LlmError::BadFile {
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
    Ok(shards.into_iter().map(|s| folder.join(s)).collect())
}

/// The elements of `entry` read from `file`, each decoded from little-endian.
///
/// The buffer is a `Vec<T>`, not bytes: burn keeps a vector as a tensor's storage as it
/// is, but copies a byte vector into a 16-byte-aligned one (`Bytes::from_bytes_vec`), which
/// for the embeddings of a 150k-token vocabulary is a transient 300 MB more.
fn read_elements<T: bytemuck::Pod + burn::tensor::Element>(
    file: &File,
    entry: &TensorEntry,
) -> std::io::Result<TensorData> {
    let mut values: Vec<T> = bytemuck::zeroed_vec(entry.len / size_of::<T>());
    let bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut values);
    file.read_exact_at(bytes, entry.offset)?;
    if cfg!(target_endian = "big") {
        for element in bytes.chunks_exact_mut(size_of::<T>()) {
            element.reverse();
        }
    }
    Ok(TensorData::new(values, entry.shape.clone()))
}

/// The 16-bit floats of `entry` (bf16 or f16, as `widen` reads their bits) as f32, widened
/// inside the f32 buffer itself: the stored values are read into its upper half, and
/// element `i` is written over halves `2i` and `2i + 1`, at or below stored element `i`
/// (at half `n + i`), once it is read. No 16-bit copy of the tensor is held.
fn read_widened(
    file: &File,
    entry: &TensorEntry,
    widen: fn(u16) -> f32,
) -> std::io::Result<TensorData> {
    let n = entry.len / 2;
    let mut values: Vec<f32> = bytemuck::zeroed_vec(n);
    let halves: &mut [u16] = bytemuck::cast_slice_mut(&mut values);
    file.read_exact_at(bytemuck::cast_slice_mut(&mut halves[n..]), entry.offset)?;
    for i in 0..n {
        let bytes = widen(u16::from_le(halves[n + i])).to_ne_bytes();
        halves[2 * i] = u16::from_ne_bytes([bytes[0], bytes[1]]);
        halves[2 * i + 1] = u16::from_ne_bytes([bytes[2], bytes[3]]);
    }
    Ok(TensorData::new(values, entry.shape.clone()))
}

impl WeightSource for SafetensorsWeights {
    fn path(&self) -> &Path {
        &self.folder
    }

    /// In the stored dtype, or widened to f32 when f32 is wanted.
    fn get(&mut self, name: &str, wanted: DType) -> Result<Option<TensorData>, LlmError> {
        let Some((file, entry)) = self.index.get(name) else {
            return Ok(None);
        };
        let (path, file) = &self.files[*file];
        // The header was checked: each byte length fits its shape and dtype.
        let data = match (entry.dtype, wanted) {
            (Dtype::F16, DType::F32) => {
                read_widened(file, entry, |bits| half::f16::from_bits(bits).to_f32())
            }
            (Dtype::BF16, DType::F32) => {
                read_widened(file, entry, |bits| half::bf16::from_bits(bits).to_f32())
            }
            (Dtype::F32, _) => read_elements::<f32>(file, entry),
            (Dtype::F16, _) => read_elements::<half::f16>(file, entry),
            (Dtype::BF16, _) => read_elements::<half::bf16>(file, entry),
            (other, _) => {
                return Err(LlmError::BadFile {
                    path: path.clone(),
                    message: format!(
                        "tensor `{name}` has dtype {other:?}; supported: F32, F16, BF16"
                    ),
                });
            }
        };
        data.map(Some).map_err(|source| LlmError::Read {
            path: path.clone(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use burn::tensor::{DType, Device, TensorData};
    use safetensors::Dtype;
    use safetensors::tensor::TensorView;

    use super::SafetensorsWeights;
    use crate::llm::model_spec::Dtype as ModelDtype;
    use crate::llm::weights::WeightSource;
    use crate::llm::{KvCache, LlamaModel, ModelConfig};

    const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/llm/qwen2-tied");

    /// Every tensor of the tiny fixture, rounded to bf16, by name.
    fn fixture_in_bf16() -> Vec<(String, TensorData)> {
        let mut weights = SafetensorsWeights::open(Path::new(FIXTURE)).unwrap();
        let names: Vec<String> = weights.index.keys().cloned().collect();
        names
            .into_iter()
            .map(|name| {
                let data = weights.get(&name, DType::F32).unwrap().unwrap();
                assert_eq!(data.dtype(), DType::F32);
                (name, data.convert_dtype(DType::BF16))
            })
            .collect()
    }

    fn write_file(path: &Path, tensors: &[(String, TensorData)]) {
        let views: Vec<(String, TensorView)> = tensors
            .iter()
            .map(|(name, data)| {
                let dtype = match data.dtype() {
                    DType::BF16 => Dtype::BF16,
                    DType::F32 => Dtype::F32,
                    other => panic!("{other:?}"),
                };
                let view = TensorView::new(dtype, data.shape().to_vec(), data.as_bytes()).unwrap();
                (name.clone(), view)
            })
            .collect();
        safetensors::serialize_to_file(views, None, path).unwrap();
    }

    /// The fixture in bf16 as two shards with an index, and as one f32 file of the same
    /// (bf16-representable) values: `(sharded, single)`.
    fn write_copies(root: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
        let tensors = fixture_in_bf16();
        let (sharded, single) = (root.join("sharded"), root.join("single"));
        for dir in [&sharded, &single] {
            std::fs::create_dir_all(dir).unwrap();
            std::fs::copy(
                Path::new(FIXTURE).join("config.json"),
                dir.join("config.json"),
            )
            .unwrap();
        }
        let half = tensors.len() / 2;
        let mut weight_map = serde_json::Map::new();
        for (shard, part) in [&tensors[..half], &tensors[half..]].iter().enumerate() {
            let file = format!("model-0000{}-of-00002.safetensors", shard + 1);
            write_file(&sharded.join(&file), part);
            for (name, _) in part.iter() {
                weight_map.insert(name.clone(), file.clone().into());
            }
        }
        let index = serde_json::json!({"metadata": {}, "weight_map": weight_map});
        std::fs::write(
            sharded.join("model.safetensors.index.json"),
            index.to_string(),
        )
        .unwrap();
        let widened: Vec<(String, TensorData)> = tensors
            .into_iter()
            .map(|(name, data)| (name, data.convert_dtype(DType::F32)))
            .collect();
        write_file(&single.join("model.safetensors"), &widened);
        (sharded, single)
    }

    fn load(dir: &Path, dtype: ModelDtype) -> LlamaModel {
        let config = ModelConfig::from_hf_json(&dir.join("config.json")).unwrap();
        let mut weights = SafetensorsWeights::open(dir).unwrap();
        LlamaModel::load(config, &mut weights, &Device::flex(), dtype).unwrap()
    }

    fn logits(model: &LlamaModel) -> Vec<f32> {
        let ids = vec![1u32, 5, 17, 42, 100, 7];
        let valid = vec![vec![true; ids.len()]];
        let out = model.forward(&[ids], &valid, &mut KvCache::default(), false);
        out.try_into_vec_as::<f32>().unwrap()
    }

    #[test]
    fn shards_are_read_in_their_stored_dtype_or_widened_to_f32() {
        let root = tempfile::tempdir().unwrap();
        let (sharded, _) = write_copies(root.path());
        let mut weights = SafetensorsWeights::open(&sharded).unwrap();
        let mut embed = |wanted| {
            weights
                .get("model.embed_tokens.weight", wanted)
                .unwrap()
                .unwrap()
        };
        assert_eq!(embed(DType::BF16).dtype(), DType::BF16);
        assert_eq!(embed(DType::F16).dtype(), DType::BF16);
        let widened = embed(DType::F32);
        assert_eq!(widened.dtype(), DType::F32);
        assert_eq!(widened, embed(DType::BF16).convert_dtype(DType::F32));
        let model = load(&sharded, ModelDtype::Bf16);
        assert_eq!(model.embed_tokens.weight.val().dtype(), DType::BF16);
        assert_eq!(
            model.layers[1].mlp.down_proj.weight.val().dtype(),
            DType::BF16
        );
    }

    #[test]
    fn bf16_shards_give_the_logits_of_an_f32_copy() {
        let root = tempfile::tempdir().unwrap();
        let (sharded, single) = write_copies(root.path());
        // bf16 → f32 is exact, so loading as f32 gives the f32 copy's logits bit for bit;
        // as bf16, both round the same values to the same bf16 weights.
        let reference = logits(&load(&single, ModelDtype::F32));
        assert_eq!(logits(&load(&sharded, ModelDtype::F32)), reference);
        let bf16 = logits(&load(&sharded, ModelDtype::Bf16));
        assert_eq!(bf16, logits(&load(&single, ModelDtype::Bf16)));
        // And bf16 arithmetic stays within bf16's precision of the f32 logits.
        let largest = reference.iter().fold(0f32, |m, x| m.max(x.abs()));
        let worst = bf16
            .iter()
            .zip(&reference)
            .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(worst <= 5e-2 * largest, "{worst} vs largest {largest}");
    }

    #[test]
    fn a_truncated_shard_is_named_at_open() {
        let root = tempfile::tempdir().unwrap();
        let (sharded, _) = write_copies(root.path());
        let shard = sharded.join("model-00002-of-00002.safetensors");
        let bytes = std::fs::read(&shard).unwrap();
        std::fs::write(&shard, &bytes[..bytes.len() * 6 / 10]).unwrap();
        let message = SafetensorsWeights::open(&sharded)
            .err()
            .expect("a truncated shard fails to open")
            .to_string();
        assert!(
            message.contains("model-00002-of-00002.safetensors")
                && message.contains("is not a readable safetensors file (its tensors end at byte"),
            "{message}"
        );
    }
}
