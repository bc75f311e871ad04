//! One decoder layer: attention then MLP, each on the RMS-normalised input, each added back.

use burn::module::Module;
use burn::nn::RmsNorm;
use burn::tensor::{Bool, Tensor};

use super::attention::Attention;
use super::layer_cache::LayerCache;
use super::mlp::Mlp;

#[derive(Module, Debug)]
pub struct DecoderLayer {
    pub input_layernorm: RmsNorm,
    pub self_attn: Attention,
    pub post_attention_layernorm: RmsNorm,
    pub mlp: Mlp,
}

impl DecoderLayer {
    /// `x: [B, T, C]` → `[B, T, C]`.
    pub fn forward(
        &self,
        x: Tensor<3>,
        cos: &Tensor<4>,
        sin: &Tensor<4>,
        mask: &Tensor<4, Bool>,
        cache: &mut Option<LayerCache>,
    ) -> Tensor<3> {
        let x = x.clone()
            + self
                .self_attn
                .forward(self.input_layernorm.forward(x), cos, sin, mask, cache);
        x.clone() + self.mlp.forward(self.post_attention_layernorm.forward(x))
    }
}
