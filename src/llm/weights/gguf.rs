//! GGUF files (what llama.cpp and Ollama use): metadata, tokenizer data and weights.
//!
//! The container is read with `ggus`; blocks are dequantised by [`super::dequantise`]
//! (F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q4_K, Q6_K). Tensor names are mapped to
//! `transformers` names, dimensions (stored fastest-first) are reversed to PyTorch's order,
//! and for the `llama` and `mistral` architectures the row permutation llama.cpp's
//! converter applies to the Q and K projections is undone, so the decoder sees Hugging
//! Face's RoPE layout (`qwen2` and `qwen3` files are not permuted). A file using a block
//! format, an architecture or a RoPE scaling the engine lacks is refused when opened,
//! naming the tensor or metadata key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::tensor::{DType, TensorData};
use ggus::{GGmlType, GGuf, GGufMetaMapExt};
use memmap2::Mmap;

use super::WeightSource;
use super::dequantise::{SUPPORTED, dequantise, unsupported_type};
use super::gguf_layout::check_layout;
use crate::llm::config::{Architecture, ModelConfig, RopeScaling};
use crate::llm::error::LlmError;

/// What the tokenizer needs from a GGUF file's metadata.
#[derive(Debug, Clone, Default)]
pub struct GgufTokenizerData {
    /// `tokenizer.ggml.model`, e.g. `gpt2`.
    pub model: String,
    /// `tokenizer.ggml.pre`, e.g. `smollm`, `qwen2`, `llama-bpe`.
    pub pre: Option<String>,
    pub tokens: Vec<String>,
    pub token_types: Vec<i32>,
    pub merges: Vec<String>,
    pub bos_token_id: Option<u32>,
    pub eos_token_id: Option<u32>,
    pub add_bos_token: Option<bool>,
    pub chat_template: Option<String>,
}

struct TensorEntry {
    ty: GGmlType,
    /// Dimensions in PyTorch order (slowest first).
    shape: Vec<usize>,
    /// Byte range in the file.
    start: usize,
    len: usize,
}

/// The weights of a GGUF file.
pub struct GgufWeights {
    path: PathBuf,
    map: Mmap,
    architecture: Architecture,
    num_heads: usize,
    num_kv_heads: usize,
    tensors: BTreeMap<String, TensorEntry>,
}

fn bad(path: &Path, message: impl Into<String>) -> LlmError {
    LlmError::BadFile {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

impl GgufWeights {
    /// Opens a GGUF file: its weights, the model's configuration and its tokenizer data.
    pub fn open(path: &Path) -> Result<(Self, ModelConfig, GgufTokenizerData), LlmError> {
        let file = std::fs::File::open(path).map_err(|source| LlmError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        // SAFETY: the file is only read through this map.
        let map = unsafe { Mmap::map(&file) }.map_err(|source| LlmError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        check_layout(&map).map_err(|problem| bad(path, problem))?;
        let gguf =
            GGuf::new(&map).map_err(|e| bad(path, format!("not a readable GGUF v3 file: {e}")))?;
        let meta_err = |key: &str| {
            bad(
                path,
                format!("metadata `{key}` is missing or has the wrong type"),
            )
        };
        let arch_name = gguf
            .get_str("general.architecture")
            .map_err(|_| meta_err("general.architecture"))?
            .to_string();
        let Some(architecture) = Architecture::from_name(&arch_name) else {
            return Err(LlmError::Unsupported {
                path: path.to_path_buf(),
                field: "general.architecture".into(),
                problem: format!("is `{arch_name}`; supported: {}", Architecture::supported()),
            });
        };
        let key = |name: &str| format!("{arch_name}.{name}");
        if let Ok(experts) = gguf.get_usize(&key("expert_count"))
            && experts > 0
        {
            return Err(LlmError::Unsupported {
                path: path.to_path_buf(),
                field: key("expert_count"),
                problem: format!("is {experts}: mixture-of-experts models are not supported"),
            });
        }
        let usize_of = |name: &str| gguf.get_usize(&key(name)).map_err(|_| meta_err(&key(name)));
        let hidden_size = usize_of("embedding_length")?;
        let num_heads = usize_of("attention.head_count")?;
        let num_kv_heads = gguf
            .get_usize(&key("attention.head_count_kv"))
            .unwrap_or(num_heads);
        let data_start = gguf.data.as_ptr() as usize - map.as_ptr() as usize;
        let mut tensors = BTreeMap::new();
        for (name, meta) in &gguf.tensors {
            let info = meta.to_info();
            let mut shape: Vec<usize> = info.shape().iter().map(|&d| d as usize).collect();
            shape.reverse();
            if !SUPPORTED.contains(&info.ty()) {
                return Err(LlmError::Unsupported {
                    path: path.to_path_buf(),
                    field: name.to_string(),
                    problem: unsupported_type(info.ty()),
                });
            }
            tensors.insert(
                name.to_string(),
                TensorEntry {
                    ty: info.ty(),
                    shape,
                    start: data_start + info.offset(),
                    len: info.nbytes(),
                },
            );
        }
        let strings = |name: &str| -> Vec<String> {
            gguf.get_str_arr(name)
                .map(|arr| arr.filter_map(Result::ok).map(String::from).collect())
                .unwrap_or_default()
        };
        let tokenizer = GgufTokenizerData {
            model: gguf
                .get_str("tokenizer.ggml.model")
                .unwrap_or("")
                .to_string(),
            pre: gguf.get_str("tokenizer.ggml.pre").ok().map(String::from),
            tokens: strings("tokenizer.ggml.tokens"),
            token_types: gguf
                .get_i32_arr("tokenizer.ggml.token_type")
                .map(|arr| arr.filter_map(Result::ok).collect())
                .unwrap_or_default(),
            merges: strings("tokenizer.ggml.merges"),
            bos_token_id: gguf.get_u32("tokenizer.ggml.bos_token_id").ok(),
            eos_token_id: gguf.get_u32("tokenizer.ggml.eos_token_id").ok(),
            add_bos_token: gguf.get_bool("tokenizer.ggml.add_bos_token").ok(),
            chat_template: gguf
                .get_str("tokenizer.chat_template")
                .ok()
                .map(String::from),
        };
        let vocab_size = match tensors.get("token_embd.weight") {
            Some(t) => t.shape[0],
            None => return Err(bad(path, "no tensor `token_embd.weight`")),
        };
        let head_dim = gguf
            .get_usize(&key("attention.key_length"))
            .or_else(|_| gguf.get_usize(&key("rope.dimension_count")))
            .unwrap_or_else(|_| hidden_size.checked_div(num_heads).unwrap_or(0));
        let max_positions = usize_of("context_length")?;
        let rope_scaling = match tensors.get("rope_freqs.weight") {
            Some(entry) => Some(RopeScaling::Divisors(read_entry(
                path,
                "rope_freqs.weight",
                entry,
                &map,
            )?)),
            None => match gguf.get_str(&key("rope.scaling.type")).unwrap_or("none") {
                "none" => None,
                "linear" => Some(RopeScaling::Linear {
                    factor: gguf
                        .get_f32(&key("rope.scaling.factor"))
                        .map_err(|_| meta_err(&key("rope.scaling.factor")))?
                        .into(),
                }),
                other => {
                    return Err(LlmError::Unsupported {
                        path: path.to_path_buf(),
                        field: key("rope.scaling.type"),
                        problem: format!("is `{other}`; supported: `none`, `linear`"),
                    });
                }
            },
        };
        let config = ModelConfig {
            architecture,
            vocab_size,
            hidden_size,
            intermediate_size: usize_of("feed_forward_length")?,
            num_layers: usize_of("block_count")?,
            num_heads,
            num_kv_heads,
            head_dim,
            rms_norm_eps: gguf
                .get_f32(&key("attention.layer_norm_rms_epsilon"))
                .map_err(|_| meta_err(&key("attention.layer_norm_rms_epsilon")))?
                as f64,
            rope_theta: gguf
                .get_f32(&key("rope.freq_base"))
                .map(f64::from)
                .unwrap_or(10_000.0),
            rope_scaling,
            qkv_bias: tensors.contains_key("blk.0.attn_q.bias"),
            o_bias: tensors.contains_key("blk.0.attn_output.bias"),
            tie_word_embeddings: !tensors.contains_key("output.weight"),
            max_positions,
            bos_token_id: tokenizer.bos_token_id,
            eos_token_ids: tokenizer.eos_token_id.into_iter().collect(),
        };
        config
            .check()
            .map_err(|(field, problem)| LlmError::Unsupported {
                path: path.to_path_buf(),
                field: field.into(),
                problem,
            })?;
        drop(gguf);
        let weights = Self {
            path: path.to_path_buf(),
            map,
            architecture,
            num_heads,
            num_kv_heads,
            tensors,
        };
        Ok((weights, config, tokenizer))
    }
}

/// Reads and dequantises one tensor: its f32 values, row-major.
fn read_entry(
    path: &Path,
    name: &str,
    entry: &TensorEntry,
    map: &[u8],
) -> Result<Vec<f32>, LlmError> {
    let bytes = map
        .get(entry.start..entry.start + entry.len)
        .ok_or_else(|| {
            bad(
                path,
                format!("tensor `{name}` runs past the end of the file"),
            )
        })?;
    let count: usize = entry.shape.iter().product();
    dequantise(entry.ty, bytes, count)
        .map_err(|message| bad(path, format!("tensor `{name}`: {message}")))
}

/// The GGUF name of a `transformers` tensor name.
fn gguf_name(hf: &str) -> Option<String> {
    let fixed = match hf {
        "model.embed_tokens.weight" => Some("token_embd.weight"),
        "model.norm.weight" => Some("output_norm.weight"),
        "lm_head.weight" => Some("output.weight"),
        _ => None,
    };
    if let Some(name) = fixed {
        return Some(name.to_string());
    }
    let rest = hf.strip_prefix("model.layers.")?;
    let (layer, part) = rest.split_once('.')?;
    let (module, kind) = part.rsplit_once('.')?;
    let short = match module {
        "self_attn.q_proj" => "attn_q",
        "self_attn.k_proj" => "attn_k",
        "self_attn.v_proj" => "attn_v",
        "self_attn.o_proj" => "attn_output",
        "self_attn.q_norm" => "attn_q_norm",
        "self_attn.k_norm" => "attn_k_norm",
        "input_layernorm" => "attn_norm",
        "post_attention_layernorm" => "ffn_norm",
        "mlp.gate_proj" => "ffn_gate",
        "mlp.up_proj" => "ffn_up",
        "mlp.down_proj" => "ffn_down",
        _ => return None,
    };
    Some(format!("blk.{layer}.{short}.{kind}"))
}

/// Undoes llama.cpp's permutation of Q/K rows for `heads` heads (`shape`: rows `[heads·D]`,
/// any trailing width): within a head, row `2j + s` of the file is row `s·D/2 + j` of HF's.
fn unpermute(values: &[f32], shape: &[usize], heads: usize) -> Vec<f32> {
    let rows = shape[0];
    let width: usize = shape[1..].iter().product();
    let d = rows / heads;
    let mut data = vec![0.0; values.len()];
    for head in 0..heads {
        for j in 0..d / 2 {
            for s in 0..2 {
                let from = head * d + 2 * j + s;
                let to = head * d + s * (d / 2) + j;
                data[to * width..(to + 1) * width]
                    .copy_from_slice(&values[from * width..(from + 1) * width]);
            }
        }
    }
    data
}

impl WeightSource for GgufWeights {
    fn path(&self) -> &Path {
        &self.path
    }

    /// Dequantised to f32, whatever is wanted.
    fn get(&mut self, name: &str, _wanted: DType) -> Result<Option<TensorData>, LlmError> {
        let Some(gguf) = gguf_name(name) else {
            return Ok(None);
        };
        let Some(entry) = self.tensors.get(&gguf) else {
            return Ok(None);
        };
        let values = read_entry(&self.path, &gguf, entry, &self.map)?;
        let permuted = matches!(
            self.architecture,
            Architecture::Llama | Architecture::Mistral
        );
        let heads = match () {
            _ if !permuted => None,
            _ if gguf.ends_with("attn_q.weight") || gguf.ends_with("attn_q.bias") => {
                Some(self.num_heads)
            }
            _ if gguf.ends_with("attn_k.weight") || gguf.ends_with("attn_k.bias") => {
                Some(self.num_kv_heads)
            }
            _ => None,
        };
        let values = match heads {
            Some(heads) => unpermute(&values, &entry.shape, heads),
            None => values,
        };
        Ok(Some(TensorData::new(values, entry.shape.clone())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_hf_names_to_gguf_names() {
        assert_eq!(
            gguf_name("model.layers.3.self_attn.q_proj.weight").unwrap(),
            "blk.3.attn_q.weight"
        );
        assert_eq!(
            gguf_name("model.layers.0.self_attn.k_proj.bias").unwrap(),
            "blk.0.attn_k.bias"
        );
        assert_eq!(
            gguf_name("model.layers.1.post_attention_layernorm.weight").unwrap(),
            "blk.1.ffn_norm.weight"
        );
        assert_eq!(gguf_name("lm_head.weight").unwrap(), "output.weight");
        assert!(gguf_name("model.layers.1.unknown.weight").is_none());
    }

    #[test]
    fn unpermute_inverts_llama_cpp_permutation() {
        // Two heads of D = 4 rows, width 1: HF rows 0..8; llama.cpp interleaves the halves.
        let hf: Vec<f32> = (0..8).map(|i| i as f32).collect();
        let permuted = vec![0.0, 2.0, 1.0, 3.0, 4.0, 6.0, 5.0, 7.0];
        assert_eq!(unpermute(&permuted, &[8, 1], 2), hf);
    }
}
