//! Grouped-query self-attention with a key/value cache.

use burn::module::Module;
use burn::nn::RmsNorm;
use burn::tensor::activation::softmax;
use burn::tensor::{Bool, DType, Tensor};

use super::dense::Dense;
use super::layer_cache::LayerCache;
use super::rope;

/// Self-attention with `H` query heads sharing `K` key/value heads.
#[derive(Module, Debug)]
pub struct Attention {
    pub q_proj: Dense,
    pub k_proj: Dense,
    pub v_proj: Dense,
    pub o_proj: Dense,
    /// Qwen3: RMSNorm over each query head's `D` dimensions, before RoPE.
    pub q_norm: Option<RmsNorm>,
    /// Qwen3: RMSNorm over each key head's `D` dimensions, before RoPE.
    pub k_norm: Option<RmsNorm>,
    pub num_heads: usize,
    pub num_kv_heads: usize,
    pub head_dim: usize,
}

impl Attention {
    /// `x: [B, T, C]`; `cos, sin: [B, 1, T, D]`; `mask: [B, 1, T, S]`, true where a query may
    /// not look. Appends this step's keys and values to `cache`.
    pub fn forward(
        &self,
        x: Tensor<3>,
        cos: &Tensor<4>,
        sin: &Tensor<4>,
        mask: &Tensor<4, Bool>,
        cache: &mut Option<LayerCache>,
    ) -> Tensor<3> {
        let [b, t, _] = x.dims();
        let (h, k, d) = (self.num_heads, self.num_kv_heads, self.head_dim);
        // q: [B, T, H, D]; key: [B, T, K, D]
        let q = self.q_proj.forward(x.clone()).reshape([b, t, h, d]);
        let key = self.k_proj.forward(x.clone()).reshape([b, t, k, d]);
        let q = match &self.q_norm {
            Some(norm) => norm.forward(q),
            None => q,
        };
        let key = match &self.k_norm {
            Some(norm) => norm.forward(key),
            None => key,
        };
        // q: [B, H, T, D]; k, v: [B, K, T, D]
        let q = q.swap_dims(1, 2);
        let key = key.swap_dims(1, 2);
        let value = self.v_proj.forward(x).reshape([b, t, k, d]).swap_dims(1, 2);
        let q = rope::apply(q, cos, sin);
        let key = rope::apply(key, cos, sin);
        // keys, values: [B, K, S, D]
        let layer_cache = LayerCache::append(cache.take(), key, value);
        let (keys, values) = layer_cache.filled();
        *cache = Some(layer_cache);
        let s = keys.dims()[2];
        let group = h / k;
        // Each key/value head serves `group` query heads: fold them into the query rows,
        // q: [B, K, G·T, D], so one batched product per key/value head serves them all.
        let q = q.reshape([b, k, group * t, d]);
        // scores: [B, K, G·T, S]
        let scores = q.matmul(keys.swap_dims(2, 3)) * (1.0 / (d as f64).sqrt());
        let mask = mask
            .clone()
            .repeat_dim(2, group)
            .expand([b, k, group * t, s]);
        // The most negative value f16 holds: a row with every key masked (a padding query)
        // then stays finite instead of turning to NaN and poisoning the values it touches.
        let hidden = if scores.dtype() == DType::F16 {
            -65504.0
        } else {
            -1.0e9
        };
        let weights = softmax(scores.mask_fill(mask, hidden), 3);
        // out: [B, K, G·T, D] = [B, H, T, D] -> [B, T, H·D]
        let out = weights
            .matmul(values)
            .reshape([b, h, t, d])
            .swap_dims(1, 2)
            .reshape([b, t, h * d]);
        self.o_proj.forward(out)
    }
}
