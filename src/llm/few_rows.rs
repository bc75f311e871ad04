//! `x · Wᵀ` for a handful of rows on the CPU, at the speed of reading the weight.
//!
//! Decoding multiplies each weight by a few rows (one per sequence in the batch), so the
//! product is bound by how fast the weight streams from memory, not by arithmetic. flex
//! hands these products to `gemm`, which runs them on one thread and, at 8 rows, walks
//! the weight twice (its tiles are 6 columns wide). This kernel reads each weight row
//! once, multiplies it with every input row while it is in cache, and splits the weight's
//! rows across rayon's threads (the kernel is in the `accord-kernels` crate). It takes over
//! only where it applies: f32 tensors on flex, outside autodiff, on x86-64 with AVX2 and
//! FMA; everything else keeps burn's path.

use burn::backend::Flex;
use burn::backend::flex::FlexTensor;
use burn::tensor::{Shape, Tensor};
use rayon::prelude::*;

/// Weight rows one rayon task computes; enough work to hide the task's overhead.
const ROWS_PER_TASK: usize = 64;

/// `(W · xᵀ)`, `[out, M]`, for `x: [M, in]` and `weight: [out, in]`, or `None` where
/// the kernel does not apply.
pub fn weight_times_rows(x: &Tensor<2>, weight: &Tensor<2>) -> Option<Tensor<2>> {
    if !accord_kernels::supported() {
        return None;
    }
    let weight = weight.clone().try_into_primitive::<Flex>().ok()?;
    let x = x.clone().try_into_primitive::<Flex>().ok()?;
    let x = if x.is_contiguous() {
        x
    } else {
        x.to_contiguous()
    };
    let (w, rows) = (weight.as_slice::<f32>()?, x.as_slice::<f32>()?);
    let [d_out, d_in] = dims(&weight)?;
    let [m, x_in] = dims(&x)?;
    if x_in != d_in || m == 0 || d_in == 0 {
        return None;
    }
    let mut out = vec![0f32; d_out * m]; // [out, M]
    out.par_chunks_mut(ROWS_PER_TASK * m)
        .enumerate()
        .for_each(|(task, out)| {
            let first = task * ROWS_PER_TASK;
            let count = out.len() / m;
            let w = &w[first * d_in..(first + count) * d_in];
            accord_kernels::rows_times_weight(rows, w, d_in, out);
        });
    let out = FlexTensor::from_data(burn::tensor::TensorData::new(out, Shape::new([d_out, m])));
    Some(Tensor::from_primitive::<Flex>(out))
}

fn dims(tensor: &FlexTensor) -> Option<[usize; 2]> {
    match tensor.layout().shape().as_slice() {
        [a, b] => Some([*a, *b]),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    fn filled(shape: [usize; 2], step: usize) -> Tensor<2> {
        let values = (0..shape[0] * shape[1])
            .map(|i| ((i * step % 23) as f32 - 11.0) / 7.0)
            .collect();
        Tensor::from_data(TensorData::new(values, shape), &Device::flex())
    }

    /// Every tile the kernel has (pairs and a lone last weight row; input rows in eights,
    /// fours and ones; a width with a tail past the vector lanes), and more weight rows
    /// than one task takes, agree with burn's product.
    #[test]
    fn agrees_with_burn_on_every_tile_shape() {
        if !accord_kernels::supported() {
            return;
        }
        for (out, rows, width) in [(7, 13, 21), (131, 8, 576), (2, 1, 16), (65, 4, 40)] {
            let weight = filled([out, width], 7);
            let x = filled([rows, width], 5);
            let ours = weight_times_rows(&x, &weight).expect("the kernel applies");
            // Rounding grows with the sum of the products' magnitudes, not with the result.
            let scale = (weight.clone().abs().matmul(x.clone().abs().transpose()))
                .max()
                .into_scalar::<f32>();
            let burns = weight.matmul(x.transpose());
            let largest = (ours - burns).abs().max().into_scalar::<f32>();
            println!("{out}x{width} by {rows} rows: largest difference {largest:e} of {scale}");
            assert!(largest <= 1e-5 * scale, "{largest} of {scale}");
        }
    }
}
