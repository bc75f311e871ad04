//! GGML block formats, dequantised to f32 following llama.cpp's reference code
//! (`ggml-quants.c`). Written out because no maintained crate implements all of them
//! (`ggml-quants` leaves the K-quants unimplemented); checked value by value against the
//! `gguf` Python package in `tests/llm_reference.rs`.

use ggus::GGmlType;

fn f16_at(bytes: &[u8], at: usize) -> f32 {
    half::f16::from_le_bytes([bytes[at], bytes[at + 1]]).to_f32()
}

/// Splits `bytes` into blocks of `size` bytes holding `per_block` values each.
fn blocks(
    bytes: &[u8],
    count: usize,
    per_block: usize,
    size: usize,
) -> Result<std::slice::ChunksExact<'_, u8>, String> {
    if !count.is_multiple_of(per_block) || bytes.len() != count / per_block * size {
        return Err(format!(
            "{} bytes do not hold {count} values in blocks of {per_block}",
            bytes.len()
        ));
    }
    Ok(bytes.chunks_exact(size))
}

fn q4_0(block: &[u8], out: &mut Vec<f32>) {
    let d = f16_at(block, 0);
    let qs = &block[2..18];
    out.extend(qs.iter().map(|q| ((q & 0xF) as i32 - 8) as f32 * d));
    out.extend(qs.iter().map(|q| ((q >> 4) as i32 - 8) as f32 * d));
}

fn q4_1(block: &[u8], out: &mut Vec<f32>) {
    let (d, m) = (f16_at(block, 0), f16_at(block, 2));
    let qs = &block[4..20];
    out.extend(qs.iter().map(|q| (q & 0xF) as f32 * d + m));
    out.extend(qs.iter().map(|q| (q >> 4) as f32 * d + m));
}

fn q5_0(block: &[u8], out: &mut Vec<f32>) {
    let d = f16_at(block, 0);
    let qh = u32::from_le_bytes([block[2], block[3], block[4], block[5]]);
    let qs = &block[6..22];
    let low = qs.iter().enumerate().map(|(j, q)| {
        let high = ((qh >> j) << 4) & 0x10;
        (((q & 0xF) as u32 | high) as i32 - 16) as f32 * d
    });
    out.extend(low);
    let high = qs.iter().enumerate().map(|(j, q)| {
        let high = (qh >> (j + 12)) & 0x10;
        (((q >> 4) as u32 | high) as i32 - 16) as f32 * d
    });
    out.extend(high);
}

fn q8_0(block: &[u8], out: &mut Vec<f32>) {
    let d = f16_at(block, 0);
    out.extend(block[2..34].iter().map(|&q| q as i8 as f32 * d));
}

/// The 6-bit scale and min of sub-block `j` of a Q4_K block.
fn scale_min_k4(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

fn q4_k(block: &[u8], out: &mut Vec<f32>) {
    let (d, min) = (f16_at(block, 0), f16_at(block, 2));
    let scales = &block[4..16];
    let qs = &block[16..144];
    for (chunk, q) in qs.chunks_exact(32).enumerate() {
        let (sc1, m1) = scale_min_k4(2 * chunk, scales);
        let (sc2, m2) = scale_min_k4(2 * chunk + 1, scales);
        let (d1, m1) = (d * sc1 as f32, min * m1 as f32);
        let (d2, m2) = (d * sc2 as f32, min * m2 as f32);
        out.extend(q.iter().map(|x| d1 * (x & 0xF) as f32 - m1));
        out.extend(q.iter().map(|x| d2 * (x >> 4) as f32 - m2));
    }
}

fn q6_k(block: &[u8], out: &mut Vec<f32>) {
    let d = f16_at(block, 208);
    for half in 0..2 {
        let ql = &block[64 * half..64 * half + 64];
        let qh = &block[128 + 32 * half..128 + 32 * half + 32];
        let sc = &block[192 + 8 * half..192 + 8 * half + 8];
        let mut y = [0.0f32; 128];
        for l in 0..32 {
            let is = l / 16;
            let q1 = ((ql[l] & 0xF) | ((qh[l] & 3) << 4)) as i32 - 32;
            let q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) as i32 - 32;
            let q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i32 - 32;
            let q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i32 - 32;
            y[l] = d * (sc[is] as i8) as f32 * q1 as f32;
            y[l + 32] = d * (sc[is + 2] as i8) as f32 * q2 as f32;
            y[l + 64] = d * (sc[is + 4] as i8) as f32 * q3 as f32;
            y[l + 96] = d * (sc[is + 6] as i8) as f32 * q4 as f32;
        }
        out.extend_from_slice(&y);
    }
}

/// The block formats [`dequantise`] reads.
pub const SUPPORTED: [GGmlType; 9] = [
    GGmlType::F32,
    GGmlType::F16,
    GGmlType::BF16,
    GGmlType::Q8_0,
    GGmlType::Q4_0,
    GGmlType::Q4_1,
    GGmlType::Q5_0,
    GGmlType::Q4K,
    GGmlType::Q6K,
];

/// "has type X; supported: …": why a tensor of type `ty` cannot be read.
pub fn unsupported_type(ty: GGmlType) -> String {
    let names: Vec<String> = SUPPORTED.iter().map(|t| format!("{t:?}")).collect();
    format!("has type {ty:?}; supported: {}", names.join(", "))
}

/// Appends the values of one block to the output.
type BlockDecoder = fn(&[u8], &mut Vec<f32>);

/// Dequantises `count` values of type `ty` from `bytes`.
pub fn dequantise(ty: GGmlType, bytes: &[u8], count: usize) -> Result<Vec<f32>, String> {
    let mut out = Vec::with_capacity(count);
    let (per_block, size, decode): (usize, usize, BlockDecoder) = match ty {
        GGmlType::F32 => (1, 4, |b, out| {
            out.push(f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        }),
        GGmlType::F16 => (1, 2, |b, out| out.push(f16_at(b, 0))),
        GGmlType::BF16 => (1, 2, |b, out| {
            out.push(half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
        }),
        GGmlType::Q4_0 => (32, 18, q4_0),
        GGmlType::Q4_1 => (32, 20, q4_1),
        GGmlType::Q5_0 => (32, 22, q5_0),
        GGmlType::Q8_0 => (32, 34, q8_0),
        GGmlType::Q4K => (256, 144, q4_k),
        GGmlType::Q6K => (256, 210, q6_k),
        other => return Err(unsupported_type(other)),
    };
    for block in blocks(bytes, count, per_block, size)? {
        decode(block, &mut out);
    }
    Ok(out)
}
