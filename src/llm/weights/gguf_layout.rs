//! A bounds-checked walk over a GGUF file's layout, before `ggus` parses it.
//!
//! `ggus` trusts the file: a truncated download makes it subtract past zero, a huge count
//! makes it ask for an impossible allocation, and an unknown tensor type code is read into
//! a Rust enum. So [`check_layout`] walks the header, every metadata value and every
//! tensor description with checked arithmetic first, and says what is wrong (naming the
//! tensor or key, and the byte counts) when the file is damaged: counts that cannot fit in
//! the file, strings and arrays running past the end, unknown value or tensor types, zero
//! or overflowing dimensions, tensor data beyond the end of the file.
//!
//! Format (GGUF v3, little-endian): magic `GGUF`, version `u32`, tensor count `u64`,
//! metadata count `u64`; each metadata entry is a string key, a `u32` value type and the
//! value; each tensor is a string name, a `u32` dimension count, `u64` dimensions, a `u32`
//! type and a `u64` offset into the data section, which starts at the next multiple of
//! `general.alignment` (32 by default).

/// The smallest metadata entry: an empty key (8), a type (4) and a one-byte value.
const MIN_KV_BYTES: u64 = 13;
/// The smallest tensor description: an empty name (8), one dimension (4 + 8), a type (4)
/// and an offset (8).
const MIN_TENSOR_BYTES: u64 = 32;
/// Metadata value type codes.
const STRING: u32 = 8;
const ARRAY: u32 = 9;

/// Checks that the GGUF file `bytes` is whole and consistent; the problem otherwise.
pub fn check_layout(bytes: &[u8]) -> Result<(), String> {
    let mut r = Reader { bytes, at: 0 };
    if bytes.len() < 4 || &bytes[..4] != b"GGUF" {
        return Err("does not start with `GGUF` (not a GGUF file)".into());
    }
    r.at = 4;
    let version = r.u32("the version")?;
    if version != 3 {
        return Err(format!("is GGUF version {version}; accord reads version 3"));
    }
    let tensor_count = r.u64("the tensor count")?;
    let kv_count = r.u64("the metadata count")?;
    let room = (bytes.len() - r.at) as u64;
    if kv_count.saturating_mul(MIN_KV_BYTES) > room
        || tensor_count.saturating_mul(MIN_TENSOR_BYTES) > room
    {
        return Err(format!(
            "its header claims {kv_count} metadata entries and {tensor_count} tensors, which \
             cannot fit in its {} bytes (a damaged file?)",
            bytes.len()
        ));
    }
    let mut alignment = 32u64;
    for index in 0..kv_count {
        let key = r.string(&format!("the key of metadata entry {index}"))?;
        let ty = r.u32(&format!("the type of `{key}`"))?;
        if key == "general.alignment" {
            alignment = match ty {
                4 => u64::from(r.u32("`general.alignment`")?),
                10 => r.u64("`general.alignment`")?,
                _ => return Err("`general.alignment` is not an unsigned integer".into()),
            };
            if alignment == 0 || !alignment.is_power_of_two() {
                return Err(format!(
                    "`general.alignment` is {alignment}, not a power of two"
                ));
            }
        } else {
            r.value(ty, &key)?;
        }
    }
    let mut tensors = Vec::with_capacity(tensor_count as usize);
    for index in 0..tensor_count {
        let name = r.string(&format!("the name of tensor {index}"))?;
        let dims = r.u32(&format!("the dimension count of tensor `{name}`"))?;
        if dims == 0 || dims > 4 {
            return Err(format!(
                "tensor `{name}` has {dims} dimensions (GGUF tensors have 1 to 4)"
            ));
        }
        let mut count: u64 = 1;
        for _ in 0..dims {
            let dim = r.u64(&format!("a dimension of tensor `{name}`"))?;
            if dim == 0 {
                return Err(format!("tensor `{name}` has a dimension of 0"));
            }
            count = count
                .checked_mul(dim)
                .ok_or_else(|| format!("tensor `{name}`'s dimensions overflow"))?;
        }
        let ty = r.u32(&format!("the type of tensor `{name}`"))?;
        let offset = r.u64(&format!("the offset of tensor `{name}`"))?;
        let (block, block_bytes) = tensor_type_size(ty).ok_or_else(|| {
            format!("tensor `{name}` has type code {ty}, which is not a GGML type accord knows")
        })?;
        if !count.is_multiple_of(block) {
            return Err(format!(
                "tensor `{name}` has {count} elements, not a whole number of {block}-element blocks"
            ));
        }
        let len = (count / block)
            .checked_mul(block_bytes)
            .ok_or_else(|| format!("tensor `{name}`'s size overflows"))?;
        let end = offset
            .checked_add(len)
            .ok_or_else(|| format!("tensor `{name}`'s offset overflows"))?;
        tensors.push((name, end));
    }
    let data_start = (r.at as u64).div_ceil(alignment) * alignment;
    let data_len = (bytes.len() as u64).saturating_sub(data_start);
    if let Some((name, end)) = tensors.iter().max_by_key(|(_, end)| *end)
        && *end > data_len
    {
        return Err(format!(
            "is truncated: tensor `{name}` needs {} bytes but the file has {} (a partial \
             download? fetch it again)",
            data_start + end,
            bytes.len()
        ));
    }
    Ok(())
}

/// Elements per block and bytes per block of a GGML tensor type.
fn tensor_type_size(code: u32) -> Option<(u64, u64)> {
    Some(match code {
        0 => (1, 4),      // F32
        1 => (1, 2),      // F16
        2 => (32, 18),    // Q4_0
        3 => (32, 20),    // Q4_1
        6 => (32, 22),    // Q5_0
        7 => (32, 24),    // Q5_1
        8 => (32, 34),    // Q8_0
        9 => (32, 36),    // Q8_1
        10 => (256, 84),  // Q2_K
        11 => (256, 110), // Q3_K
        12 => (256, 144), // Q4_K
        13 => (256, 176), // Q5_K
        14 => (256, 210), // Q6_K
        15 => (256, 292), // Q8_K
        24 => (1, 1),     // I8
        25 => (1, 2),     // I16
        26 => (1, 4),     // I32
        27 => (1, 8),     // I64
        28 => (1, 8),     // F64
        30 => (1, 2),     // BF16
        _ => return None,
    })
}

/// Bytes of one scalar metadata value of type `ty`; `None` for strings, arrays and
/// unknown types.
fn scalar_size(ty: u32) -> Option<u64> {
    match ty {
        0 | 1 | 7 => Some(1),
        2 | 3 => Some(2),
        4..=6 => Some(4),
        10..=12 => Some(8),
        _ => None,
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: u64, what: &str) -> Result<&[u8], String> {
        let end = usize::try_from(n)
            .ok()
            .and_then(|n| self.at.checked_add(n))
            .filter(|end| *end <= self.bytes.len())
            .ok_or_else(|| {
                format!(
                    "is truncated or damaged: {what} at byte {} runs past the end ({} bytes)",
                    self.at,
                    self.bytes.len()
                )
            })?;
        let taken = &self.bytes[self.at..end];
        self.at = end;
        Ok(taken)
    }

    fn u32(&mut self, what: &str) -> Result<u32, String> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self, what: &str) -> Result<u64, String> {
        let b = self.take(8, what)?;
        Ok(u64::from_le_bytes(b.try_into().expect("8 bytes")))
    }

    fn string(&mut self, what: &str) -> Result<String, String> {
        let len = self.u64(what)?;
        let bytes = self.take(len, what)?;
        std::str::from_utf8(bytes)
            .map(String::from)
            .map_err(|_| format!("{what} at byte {} is not UTF-8", self.at))
    }

    /// Skips one metadata value of type `ty` belonging to `key`.
    fn value(&mut self, ty: u32, key: &str) -> Result<(), String> {
        match ty {
            STRING => self.string(&format!("the value of `{key}`")).map(drop),
            ARRAY => {
                let item = self.u32(&format!("the item type of `{key}`"))?;
                let len = self.u64(&format!("the length of `{key}`"))?;
                if let Some(size) = scalar_size(item) {
                    let bytes = len.checked_mul(size).ok_or_else(|| {
                        format!("`{key}` claims {len} items, more than any file holds")
                    })?;
                    self.take(bytes, &format!("the items of `{key}`")).map(drop)
                } else if item == STRING {
                    if len > (self.bytes.len() - self.at) as u64 / 8 {
                        return Err(format!(
                            "`{key}` claims {len} strings, more than the file can hold"
                        ));
                    }
                    (0..len).try_for_each(|_| self.string(&format!("an item of `{key}`")).map(drop))
                } else if item == ARRAY {
                    Err(format!(
                        "`{key}` is an array of arrays, which accord does not read"
                    ))
                } else {
                    Err(format!(
                        "`{key}` is an array of type code {item}, which GGUF does not define"
                    ))
                }
            }
            _ => {
                let size = scalar_size(ty).ok_or_else(|| {
                    format!("`{key}` has value type code {ty}, which GGUF does not define")
                })?;
                self.take(size, &format!("the value of `{key}`")).map(drop)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn string(out: &mut Vec<u8>, s: &str) {
        out.extend((s.len() as u64).to_le_bytes());
        out.extend(s.as_bytes());
    }

    /// A GGUF file with one `u32` metadata entry and one F32 tensor of `dims`.
    fn file(dims: &[u64], data_bytes: usize) -> Vec<u8> {
        let mut out = b"GGUF".to_vec();
        out.extend(3u32.to_le_bytes());
        out.extend(1u64.to_le_bytes());
        out.extend(1u64.to_le_bytes());
        string(&mut out, "llama.block_count");
        out.extend(4u32.to_le_bytes());
        out.extend(2u32.to_le_bytes());
        string(&mut out, "token_embd.weight");
        out.extend((dims.len() as u32).to_le_bytes());
        for d in dims {
            out.extend(d.to_le_bytes());
        }
        out.extend(0u32.to_le_bytes());
        out.extend(0u64.to_le_bytes());
        out.resize(out.len().div_ceil(32) * 32 + data_bytes, 0);
        out
    }

    #[test]
    fn a_whole_file_passes() {
        check_layout(&file(&[4, 2], 32)).unwrap();
    }

    #[test]
    fn a_truncated_file_names_the_tensor_that_does_not_fit() {
        let error = check_layout(&file(&[4, 2], 31)).unwrap_err();
        assert!(
            error.contains("truncated: tensor `token_embd.weight` needs"),
            "{error}"
        );
    }

    #[test]
    fn every_cut_of_a_file_is_an_error_not_a_panic() {
        let whole = file(&[4, 2], 32);
        for cut in 0..whole.len() {
            assert!(check_layout(&whole[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn zero_and_overflowing_dimensions_are_errors() {
        assert!(
            check_layout(&file(&[4, 0], 32))
                .unwrap_err()
                .contains("dimension of 0")
        );
        let error = check_layout(&file(&[u64::MAX, 4], 32)).unwrap_err();
        assert!(error.contains("overflow"), "{error}");
    }

    #[test]
    fn impossible_counts_are_errors_before_any_allocation() {
        let mut bytes = file(&[4, 2], 32);
        bytes[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
        let error = check_layout(&bytes).unwrap_err();
        assert!(error.contains("cannot fit"), "{error}");
    }

    #[test]
    fn an_unknown_tensor_type_is_an_error() {
        let mut bytes = file(&[4, 2], 32);
        // The type code follows the name, the dimension count and two dimensions.
        let at = bytes
            .windows(17)
            .position(|w| w == b"token_embd.weight")
            .unwrap()
            + 17
            + 4
            + 16;
        bytes[at..at + 4].copy_from_slice(&99u32.to_le_bytes());
        let error = check_layout(&bytes).unwrap_err();
        assert!(error.contains("type code 99"), "{error}");
    }
}
