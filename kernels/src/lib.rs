//! accord's hand-written CPU kernels.
//!
//! They live in their own crate so that every profile builds them optimised: accord's
//! development profile compiles its own code at a low level to keep builds quick, and a
//! kernel compiled that way spills its registers and runs at half speed.
//!
//! [`rows_times_weight`] multiplies a few input rows by a weight kept in Hugging Face's
//! `[out, in]` layout. Decoding does this for every projection at every step with one row
//! per sequence, so the product is bound by reading the weight: the kernel reads each
//! weight row once and multiplies it with every input row while it is in cache.

/// `out[o, r] = Σ_k weight[o, k] · rows[r, k]` for `weight: [n, d]`, `rows: [m, d]` and
/// `out: [n, m]`, all row-major. Returns `false`, leaving `out` untouched, on a CPU
/// without the kernel (it needs x86-64 with AVX2 and FMA).
///
/// # Panics
/// If `d` is zero or the lengths are not multiples of `d` with `out.len() == n · m`.
pub fn rows_times_weight(rows: &[f32], weight: &[f32], d: usize, out: &mut [f32]) -> bool {
    assert!(d > 0 && rows.len() % d == 0 && weight.len() % d == 0);
    assert_eq!(out.len(), rows.len() / d * (weight.len() / d));
    if !supported() {
        return false;
    }
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU has AVX-512F.
        unsafe { avx512::rows_times_weight(rows, weight, d, out) };
    } else {
        // SAFETY: `supported` checked for AVX2 and FMA.
        unsafe { avx2::rows_times_weight(rows, weight, d, out) };
    }
    true
}

/// Whether this CPU runs the kernels.
pub fn supported() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// One instruction set's kernel: `$vector` registers of `$lanes` floats.
#[cfg(target_arch = "x86_64")]
macro_rules! kernel {
    ($name:ident, $feature:literal, $vector:ty, $lanes:literal, $zero:ident, $load:ident, $fma:ident, $sum:ident) => {
        mod $name {
            use std::arch::x86_64::*;
            #[allow(unused_imports)]
            use crate::sum256;

            /// Weight rows go in pairs against input rows in eights, fours, then ones;
            /// a last odd weight row goes alone.
            #[target_feature(enable = $feature)]
            pub unsafe fn rows_times_weight(rows: &[f32], w: &[f32], d: usize, out: &mut [f32]) {
                let m = rows.len() / d;
                let n = w.len() / d;
                let mut o = 0;
                while o < n {
                    if o + 2 <= n {
                        pair_times_rows::<2>(rows, w, d, o, m, out);
                        o += 2;
                    } else {
                        pair_times_rows::<1>(rows, w, d, o, m, out);
                        o += 1;
                    }
                }
            }

            #[target_feature(enable = $feature)]
            fn pair_times_rows<const P: usize>(
                rows: &[f32],
                w: &[f32],
                d: usize,
                o: usize,
                m: usize,
                out: &mut [f32],
            ) {
                let mut r = 0;
                while r + 8 <= m {
                    tile::<P, 8>(rows, w, d, o, r, m, out);
                    r += 8;
                }
                while r + 4 <= m {
                    tile::<P, 4>(rows, w, d, o, r, m, out);
                    r += 4;
                }
                while r < m {
                    tile::<P, 1>(rows, w, d, o, r, m, out);
                    r += 1;
                }
            }

            /// Weight rows `o..o+P` against input rows `r..r+T`: `P·T` accumulators.
            #[target_feature(enable = $feature)]
            fn tile<const P: usize, const T: usize>(
                rows: &[f32],
                w: &[f32],
                d: usize,
                o: usize,
                r: usize,
                m: usize,
                out: &mut [f32],
            ) {
                let weights: [&[f32]; P] =
                    std::array::from_fn(|i| &w[(o + i) * d..(o + i + 1) * d]);
                let inputs: [&[f32]; T] =
                    std::array::from_fn(|t| &rows[(r + t) * d..(r + t + 1) * d]);
                let lanes = d / $lanes * $lanes;
                let mut acc: [[$vector; T]; P] = [[$zero(); T]; P];
                let mut k = 0;
                while k < lanes {
                    // SAFETY: k + lanes ≤ d, the length of every row.
                    unsafe {
                        let a: [$vector; P] =
                            std::array::from_fn(|i| $load(weights[i].as_ptr().add(k)));
                        // The same columns `P` rows on: the hardware prefetcher alone
                        // leaves these loads waiting on memory.
                        for i in 0..P {
                            let ahead = weights[i].as_ptr().wrapping_add(k + P * d);
                            _mm_prefetch::<_MM_HINT_T0>(ahead.cast());
                        }
                        for t in 0..T {
                            let x = $load(inputs[t].as_ptr().add(k));
                            for i in 0..P {
                                acc[i][t] = $fma(a[i], x, acc[i][t]);
                            }
                        }
                    }
                    k += $lanes;
                }
                for i in 0..P {
                    for t in 0..T {
                        let tail: f32 = weights[i][lanes..]
                            .iter()
                            .zip(&inputs[t][lanes..])
                            .map(|(a, b)| a * b)
                            .sum();
                        out[(o + i) * m + r + t] = $sum(acc[i][t]) + tail;
                    }
                }
            }
        }
    };
}

#[cfg(target_arch = "x86_64")]
kernel!(
    avx512,
    "avx512f",
    __m512,
    16,
    _mm512_setzero_ps,
    _mm512_loadu_ps,
    _mm512_fmadd_ps,
    _mm512_reduce_add_ps
);
#[cfg(target_arch = "x86_64")]
kernel!(
    avx2,
    "avx2,fma",
    __m256,
    8,
    _mm256_setzero_ps,
    _mm256_loadu_ps,
    _mm256_fmadd_ps,
    sum256
);

/// The sum of a register's eight floats.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn sum256(v: std::arch::x86_64::__m256) -> f32 {
    use std::arch::x86_64::*;
    let halves = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    let pairs = _mm_add_ps(halves, _mm_movehl_ps(halves, halves));
    _mm_cvtss_f32(_mm_add_ss(pairs, _mm_shuffle_ps(pairs, pairs, 1)))
}
