//! The decoder: embeddings, decoder layers, final norm and LM head, with a KV cache.
//!
//! Rows of a batch may have different lengths: they are left-padded, and `valid` says which
//! tokens are real. Each row's positions count only its real tokens (as `transformers` does
//! with an attention mask), and no query attends to padding or to the future. Every row of
//! the cache keeps its own positions.

use burn::module::{Module, Param, ParamId};
use burn::nn::{Embedding, RmsNorm};
use burn::tensor::{Bool, DType, Device, Int, Tensor, TensorData};

use super::attention::Attention;
use super::block::DecoderLayer;
use super::config::ModelConfig;
use super::dense::{Dense, project};
use super::error::LlmError;
use super::layer_cache::LayerCache;
use super::mlp::Mlp;
use super::model_spec::Dtype;
use super::rope::Rope;
use super::weights::WeightSource;

/// A Llama-family decoder. Weights keep Hugging Face's layouts (see [`Dense`]); with
/// tied embeddings the LM head multiplies by the `[V, C]` embedding matrix itself, so
/// training updates the one shared parameter.
#[derive(Module, Debug)]
pub struct LlamaModel {
    /// `[V, C]`
    pub embed_tokens: Embedding,
    pub layers: Vec<DecoderLayer>,
    pub norm: RmsNorm,
    /// `None` when the LM head is tied to the embeddings.
    pub lm_head: Option<Dense>,
    #[module(skip)]
    pub config: ModelConfig,
    #[module(skip)]
    rope: Rope,
    /// The precision of weights and activations; logits are always f32.
    #[module(skip)]
    dtype: DType,
}

/// Keys and values of everything a batch has seen, with which of those tokens are real.
#[derive(Debug, Clone, Default)]
pub struct KvCache {
    layers: Vec<Option<LayerCache>>,
    /// `[B][S]`: whether each cached token is real (not padding).
    valid: Vec<Vec<bool>>,
    /// `[B]`: the position the next real token of each row gets.
    next_position: Vec<usize>,
}

impl KvCache {
    /// How many tokens each row has cached (padding included).
    pub fn len(&self) -> usize {
        self.valid.first().map_or(0, Vec::len)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A cache of the rows `rows` of this one, in that order; a row may repeat, so a
    /// prompt several sequences share runs once and each continues from its own copy.
    pub fn select(&self, rows: &[usize]) -> Self {
        let indices = self.layers.iter().flatten().next().map(|layer| {
            let ids: Vec<i64> = rows.iter().map(|&r| r as i64).collect();
            Tensor::<1, Int>::from_data(TensorData::new(ids, [rows.len()]), &layer.device())
        });
        Self {
            layers: self
                .layers
                .iter()
                .map(|layer| Some(layer.as_ref()?.select(indices.as_ref()?)))
                .collect(),
            valid: rows.iter().map(|&r| self.valid[r].clone()).collect(),
            next_position: rows.iter().map(|&r| self.next_position[r]).collect(),
        }
    }
}

/// Where weights go: a device and the precision they are stored in there.
type Target<'a> = (&'a Device, DType);

/// A device tensor of `host`'s shape, stored as `target` says. When the dtypes agree the
/// host buffer becomes the tensor's storage (flex) or is uploaded as is (wgpu); otherwise
/// burn converts this one tensor on the host first.
fn tensor<const D: usize>(host: TensorData, target: Target) -> Tensor<D> {
    Tensor::from_data(host, target)
}

/// burn's name for a spec dtype.
pub fn burn_dtype(dtype: Dtype) -> DType {
    match dtype {
        Dtype::F32 => DType::F32,
        Dtype::F16 => DType::F16,
        Dtype::Bf16 => DType::BF16,
    }
}

/// The id of the parameter with Hugging Face name `name`: the same in every process, so
/// optimiser state saved by one run finds its parameters in the next.
pub fn param_id(name: &str) -> ParamId {
    let digest = blake3::hash(name.as_bytes());
    let first: [u8; 8] = digest.as_bytes()[..8].try_into().expect("8 bytes");
    ParamId::from(u64::from_le_bytes(first))
}

fn named_param<const D: usize>(name: &str, value: Tensor<D>) -> Param<Tensor<D>> {
    let mut param = Param::from_tensor(value);
    param.id = param_id(name);
    param
}

/// A linear layer from an HF `[out, in]` weight.
fn linear(
    weights: &mut dyn WeightSource,
    name: &str,
    d_in: usize,
    d_out: usize,
    bias: bool,
    target: Target,
) -> Result<Dense, LlmError> {
    let weight = weights.take(&format!("{name}.weight"), &[d_out, d_in], target.1)?;
    let bias = if bias {
        let bias_name = format!("{name}.bias");
        Some(named_param(
            &bias_name,
            tensor(weights.take(&bias_name, &[d_out], target.1)?, target),
        ))
    } else {
        None
    };
    Ok(Dense {
        weight: named_param(&format!("{name}.weight"), tensor(weight, target)),
        bias,
    })
}

fn rms_norm(
    weights: &mut dyn WeightSource,
    name: &str,
    size: usize,
    eps: f64,
    target: Target,
) -> Result<RmsNorm, LlmError> {
    let weight = format!("{name}.weight");
    Ok(RmsNorm {
        gamma: named_param(
            &weight,
            tensor(weights.take(&weight, &[size], target.1)?, target),
        ),
        epsilon: eps,
    })
}

impl LlamaModel {
    /// Builds the model from Hugging Face-named weights on `device`, stored as `dtype`.
    pub fn load(
        config: ModelConfig,
        weights: &mut dyn WeightSource,
        device: &Device,
        dtype: Dtype,
    ) -> Result<Self, LlmError> {
        let float = burn_dtype(dtype);
        if !device.supports_dtype(float) {
            return Err(LlmError::UnsupportedDtype(dtype.name()));
        }
        let target = (device, float);
        let (c, f, v) = (
            config.hidden_size,
            config.intermediate_size,
            config.vocab_size,
        );
        let (h, k, d) = (config.num_heads, config.num_kv_heads, config.head_dim);
        let eps = config.rms_norm_eps;
        let qk_norm = |weights: &mut dyn WeightSource, name: &str| {
            config
                .architecture
                .has_qk_norm()
                .then(|| rms_norm(weights, name, d, eps, target))
                .transpose()
        };
        let embed = weights.take("model.embed_tokens.weight", &[v, c], float)?;
        let mut layers = Vec::with_capacity(config.num_layers);
        for i in 0..config.num_layers {
            let p = format!("model.layers.{i}");
            layers.push(DecoderLayer {
                input_layernorm: rms_norm(
                    weights,
                    &format!("{p}.input_layernorm"),
                    c,
                    eps,
                    target,
                )?,
                self_attn: Attention {
                    q_proj: linear(
                        weights,
                        &format!("{p}.self_attn.q_proj"),
                        c,
                        h * d,
                        config.qkv_bias,
                        target,
                    )?,
                    k_proj: linear(
                        weights,
                        &format!("{p}.self_attn.k_proj"),
                        c,
                        k * d,
                        config.qkv_bias,
                        target,
                    )?,
                    v_proj: linear(
                        weights,
                        &format!("{p}.self_attn.v_proj"),
                        c,
                        k * d,
                        config.qkv_bias,
                        target,
                    )?,
                    o_proj: linear(
                        weights,
                        &format!("{p}.self_attn.o_proj"),
                        h * d,
                        c,
                        config.o_bias,
                        target,
                    )?,
                    q_norm: qk_norm(weights, &format!("{p}.self_attn.q_norm"))?,
                    k_norm: qk_norm(weights, &format!("{p}.self_attn.k_norm"))?,
                    num_heads: h,
                    num_kv_heads: k,
                    head_dim: d,
                },
                post_attention_layernorm: rms_norm(
                    weights,
                    &format!("{p}.post_attention_layernorm"),
                    c,
                    eps,
                    target,
                )?,
                mlp: Mlp {
                    gate_proj: linear(weights, &format!("{p}.mlp.gate_proj"), c, f, false, target)?,
                    up_proj: linear(weights, &format!("{p}.mlp.up_proj"), c, f, false, target)?,
                    down_proj: linear(weights, &format!("{p}.mlp.down_proj"), f, c, false, target)?,
                },
            });
        }
        let norm = rms_norm(weights, "model.norm", c, eps, target)?;
        let lm_head = if config.tie_word_embeddings {
            None
        } else {
            Some(linear(weights, "lm_head", c, v, false, target)?)
        };
        Ok(Self {
            embed_tokens: Embedding {
                weight: named_param("model.embed_tokens.weight", tensor(embed, target)),
            },
            layers,
            norm,
            lm_head,
            rope: Rope::new(&config),
            config,
            dtype: float,
        })
    }

    fn device(&self) -> Device {
        self.embed_tokens.weight.val().device()
    }

    /// Runs `tokens` (`[B][T]`, left-padded; `valid[b][t]` false for padding) through the
    /// model after what `cache` holds, and appends them to it. Returns logits `[B, T, V]`, or
    /// `[B, 1, V]` for the last token only when `last_only`.
    pub fn forward(
        &self,
        tokens: &[Vec<u32>],
        valid: &[Vec<bool>],
        cache: &mut KvCache,
        last_only: bool,
    ) -> Tensor<3> {
        let x = self.hidden(tokens, valid, cache); // [B, T, C]
        let [_, t, _] = x.dims();
        let x = if last_only && t > 1 {
            x.narrow(1, t - 1, 1)
        } else {
            x
        };
        self.logits(x)
    }

    /// The last decoder layer's output for `tokens` (`[B, T, C]`, before the final norm),
    /// run as [`forward`](Self::forward) runs them: training picks the positions it scores
    /// and computes the LM head over those only.
    pub fn hidden(
        &self,
        tokens: &[Vec<u32>],
        valid: &[Vec<bool>],
        cache: &mut KvCache,
    ) -> Tensor<3> {
        let device = self.device();
        let b = tokens.len();
        let t = tokens.first().map_or(0, Vec::len);
        if cache.layers.is_empty() {
            cache.layers = vec![None; self.layers.len()];
            cache.valid = vec![Vec::new(); b];
            cache.next_position = vec![0; b];
        }
        let past = cache.len();
        let s = past + t;
        // Positions count each row's real tokens only.
        let mut positions = vec![vec![0usize; t]; b];
        for row in 0..b {
            for i in 0..t {
                positions[row][i] = cache.next_position[row];
                if valid[row][i] {
                    cache.next_position[row] += 1;
                }
            }
            cache.valid[row].extend_from_slice(&valid[row]);
        }
        // mask: [B, 1, T, S], true where query i may not see key j.
        let mut mask = Vec::with_capacity(b * t * s);
        for row in 0..b {
            for i in 0..t {
                for j in 0..s {
                    mask.push(j > past + i || !cache.valid[row][j]);
                }
            }
        }
        let mask = Tensor::<4, Bool>::from_data(TensorData::new(mask, [b, 1, t, s]), &device);
        let (cos, sin) = self.rope.tables(&positions, (&device, self.dtype));
        let ids: Vec<i64> = tokens.iter().flatten().map(|&id| id as i64).collect();
        let ids = Tensor::<2, Int>::from_data(TensorData::new(ids, [b, t]), &device);
        let mut x = self.embed(ids); // [B, T, C]
        for (layer, layer_cache) in self.layers.iter().zip(cache.layers.iter_mut()) {
            x = layer.forward(x, &cos, &sin, &mask, layer_cache);
        }
        x
    }

    /// f32 logits for hidden states from [`hidden`](Self::hidden): the final norm, then
    /// the LM head. `[B, T, C]` → `[B, T, V]`.
    pub fn logits(&self, hidden: Tensor<3>) -> Tensor<3> {
        self.head(self.norm.forward(hidden))
    }

    /// Token embeddings: `[B, T]` ids → `[B, T, C]`.
    fn embed(&self, ids: Tensor<2, Int>) -> Tensor<3> {
        self.embed_tokens.forward(ids)
    }

    /// f32 logits for normalised hidden states: `[B, T, C]` → `[B, T, V]`.
    fn head(&self, x: Tensor<3>) -> Tensor<3> {
        let logits = match &self.lm_head {
            Some(head) => head.forward(x),
            None => {
                let [b, t, c] = x.dims();
                let weight = self.embed_tokens.weight.val(); // [V, C]
                let v = weight.dims()[0];
                project(x.reshape([b * t, c]), weight).reshape([b, t, v])
            }
        };
        logits.cast(DType::F32)
    }

    /// The model's log-probability of each token of `tokens` given the ones before it
    /// (teacher forcing), for each row from position `starts[b]` on: `[B][T - start]`.
    pub fn score(&self, tokens: &[Vec<u32>], starts: &[usize]) -> Vec<Vec<f32>> {
        let mut out = Vec::with_capacity(tokens.len());
        for (row, &start) in tokens.iter().zip(starts) {
            let mut cache = KvCache::default();
            let valid = vec![vec![true; row.len()]];
            let logits = self.forward(std::slice::from_ref(row), &valid, &mut cache, false); // [1, T, V]
            let logp = burn::tensor::activation::log_softmax(logits, 2);
            let values: Vec<f32> = logp.try_into_vec_as::<f32>().expect("logits read back");
            let v = self.config.vocab_size;
            out.push(
                (start.max(1)..row.len())
                    .map(|i| values[(i - 1) * v + row[i] as usize])
                    .collect(),
            );
        }
        out
    }
}
