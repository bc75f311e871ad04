//! The SwiGLU feed-forward block: `down(silu(gate(x)) · up(x))`.

use burn::module::Module;
use burn::tensor::Tensor;
use burn::tensor::activation::silu;

use super::dense::Dense;

#[derive(Module, Debug)]
pub struct Mlp {
    pub gate_proj: Dense,
    pub up_proj: Dense,
    pub down_proj: Dense,
}

impl Mlp {
    /// `x: [B, T, C]` → `[B, T, C]` through width F.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let gate = silu(self.gate_proj.forward(x.clone())); // [B, T, F]
        let up = self.up_proj.forward(x); // [B, T, F]
        self.down_proj.forward(gate * up)
    }
}
