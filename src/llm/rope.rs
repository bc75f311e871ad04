//! Rotary position embeddings in Hugging Face's `rotate_half` layout.
//!
//! The first half of each head's dimensions pairs with the second half (burn's own
//! `RotaryEncoding` pairs neighbours instead, the layout llama.cpp uses; GGUF loading
//! undoes llama.cpp's row permutation so one layout serves both). Tables of cos and sin
//! are computed once on the host in f32, in the same order of operations as
//! `transformers`, and uploaded per forward pass for the positions it needs.

use burn::tensor::{DType, Device, Tensor, TensorData};

use super::config::{ModelConfig, RopeScaling};

/// Precomputed inverse frequencies.
#[derive(Debug, Clone)]
pub struct Rope {
    /// `[D/2]`
    inv_freq: Vec<f32>,
    half: usize,
}

impl Rope {
    pub fn new(config: &ModelConfig) -> Self {
        let d = config.head_dim;
        let half = d / 2;
        let mut inv_freq: Vec<f32> = (0..half)
            .map(|i| 1.0 / (config.rope_theta as f32).powf((2 * i) as f32 / d as f32))
            .collect();
        match &config.rope_scaling {
            None => {}
            Some(RopeScaling::Linear { factor }) => {
                for f in inv_freq.iter_mut() {
                    *f /= *factor as f32;
                }
            }
            Some(RopeScaling::Divisors(divisors)) => {
                for (f, div) in inv_freq.iter_mut().zip(divisors) {
                    *f /= div;
                }
            }
            Some(RopeScaling::Llama3 {
                factor,
                low_freq_factor,
                high_freq_factor,
                original_max_position_embeddings,
            }) => {
                let (factor, low, high, original) = (
                    *factor as f32,
                    *low_freq_factor as f32,
                    *high_freq_factor as f32,
                    *original_max_position_embeddings as f32,
                );
                let low_wavelen = original / low;
                let high_wavelen = original / high;
                for f in inv_freq.iter_mut() {
                    let wavelen = 2.0 * std::f32::consts::PI / *f;
                    if wavelen > low_wavelen {
                        *f /= factor;
                    } else if wavelen >= high_wavelen {
                        let smooth = (original / wavelen - low) / (high - low);
                        *f = (1.0 - smooth) * *f / factor + smooth * *f;
                    }
                }
            }
        }
        Self { inv_freq, half }
    }

    /// cos and sin for the given positions, each `[B, 1, T, D]`, computed in f32 and
    /// stored as `dtype`.
    pub fn tables(
        &self,
        positions: &[Vec<usize>],
        (device, dtype): (&Device, DType),
    ) -> (Tensor<4>, Tensor<4>) {
        let b = positions.len();
        let t = positions.first().map_or(0, Vec::len);
        let d = self.half * 2;
        let mut cos = Vec::with_capacity(b * t * d);
        let mut sin = Vec::with_capacity(b * t * d);
        for row in positions {
            for &p in row {
                for repeat in 0..2 {
                    let _ = repeat;
                    for f in &self.inv_freq {
                        let angle = p as f32 * f;
                        cos.push(angle.cos());
                        sin.push(angle.sin());
                    }
                }
            }
        }
        let cos = Tensor::<4>::from_data(TensorData::new(cos, [b, 1, t, d]), (device, dtype));
        let sin = Tensor::<4>::from_data(TensorData::new(sin, [b, 1, t, d]), (device, dtype));
        (cos, sin)
    }
}

/// Rotates the two halves of the last dimension: `[x1, x2] → [-x2, x1]`.
pub fn rotate_half(x: Tensor<4>) -> Tensor<4> {
    let half = x.dims()[3] / 2;
    let x1 = x.clone().narrow(3, 0, half);
    let x2 = x.narrow(3, half, half);
    Tensor::cat(vec![x2.neg(), x1], 3)
}

/// Applies rotary embeddings to `x: [B, H, T, D]` with `cos, sin: [B, 1, T, D]`.
pub fn apply(x: Tensor<4>, cos: &Tensor<4>, sin: &Tensor<4>) -> Tensor<4> {
    x.clone() * cos.clone() + rotate_half(x) * sin.clone()
}
