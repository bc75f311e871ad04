//! A linear layer kept in Hugging Face's layout, weight `[out, in]`.
//!
//! burn's `Linear` stores `[in, out]` and computes `x · W`. With few rows (decoding a
//! batch one token at a time) that walks the weight across its rows and runs at half the
//! speed of `W · xᵀ`, which streams the weight once in storage order; with many rows
//! (prefill, training) `x · Wᵀ` is as fast as burn's form. So the weight stays as the
//! checkpoint has it, and the product is arranged by the number of rows; on flex, few rows
//! go to the kernel in `few_rows`.

use burn::module::{Module, Param};
use burn::tensor::Tensor;

use super::few_rows;

/// Up to this many rows, the product is computed as `(W · xᵀ)ᵀ`.
const FEW_ROWS: usize = 16;

#[derive(Module, Debug)]
pub struct Dense {
    /// `[out, in]`
    pub weight: Param<Tensor<2>>,
    /// `[out]`
    pub bias: Option<Param<Tensor<1>>>,
}

/// `x · Wᵀ` for `x: [M, in]` and `weight: [out, in]`: `[M, out]`.
pub fn project(x: Tensor<2>, weight: Tensor<2>) -> Tensor<2> {
    if x.dims()[0] > FEW_ROWS {
        return x.matmul(weight.transpose());
    }
    let product = few_rows::weight_times_rows(&x, &weight) // [out, M]
        .unwrap_or_else(|| weight.matmul(x.transpose()));
    product.transpose() // [M, out]
}

impl Dense {
    /// `x: [B, T, in]` → `[B, T, out]`.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let [b, t, d_in] = x.dims();
        let weight = self.weight.val();
        let d_out = weight.dims()[0];
        let y = project(x.reshape([b * t, d_in]), weight);
        let y = match &self.bias {
            Some(bias) => y + bias.val().unsqueeze::<2>(),
            None => y,
        };
        y.reshape([b, t, d_out])
    }
}
