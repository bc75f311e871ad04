//! One safetensors file's header, read without reading its tensors.
//!
//! A safetensors file is an 8-byte little-endian header length `n`, `n` bytes of JSON
//! naming each tensor's dtype, shape and byte range, then the tensors back to back. Opening
//! a Hugging Face folder reads only these headers (a few kilobytes per shard), so a
//! checkpoint of any size costs nothing resident until the model asks for a tensor.
//!
//! The JSON is parsed by the `safetensors` crate's own [`Metadata`], which checks that the
//! ranges follow each other without gaps and that each fits its dtype and shape; what it
//! checks against the whole file when it is handed all of it (that the tensors end where
//! the file ends), [`ShardHeader::read`] checks against the file's length, so a truncated
//! download is named here, before any tensor is read.

use std::fs::File;
use std::os::unix::fs::FileExt;

use safetensors::Dtype;
use safetensors::tensor::Metadata;

/// The largest header the `safetensors` crate accepts.
const MAX_HEADER: u64 = 100_000_000;

/// Where one tensor lies in its file.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorEntry {
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    /// Byte offset of the first element from the start of the file.
    pub offset: u64,
    pub len: usize,
}

/// The tensors of one safetensors file, by name.
#[derive(Debug)]
pub struct ShardHeader {
    pub tensors: Vec<(String, TensorEntry)>,
}

/// Why a file is not a readable safetensors file.
#[derive(Debug, thiserror::Error)]
pub enum HeaderError {
    #[error("cannot read it: {0}")]
    Io(#[from] std::io::Error),
    #[error("it is {len} bytes long, too short to hold a header")]
    TooShort { len: u64 },
    #[error("its header claims {claimed} bytes, more than the {MAX_HEADER} allowed")]
    TooLarge { claimed: u64 },
    #[error("its header of {claimed} bytes runs past the end of the file ({len} bytes)")]
    HeaderPastEnd { claimed: u64, len: u64 },
    #[error("its header is not valid: {0}")]
    Invalid(String),
    #[error("its tensors end at byte {end}, but the file is {len} bytes long")]
    WrongLength { end: u64, len: u64 },
}

impl ShardHeader {
    /// Reads the header of `file`, checking the tensors' byte ranges against its length.
    pub fn read(file: &File) -> Result<Self, HeaderError> {
        let len = file.metadata()?.len();
        if len < 8 {
            return Err(HeaderError::TooShort { len });
        }
        let mut prefix = [0u8; 8];
        file.read_exact_at(&mut prefix, 0)?;
        let claimed = u64::from_le_bytes(prefix);
        if claimed > MAX_HEADER {
            return Err(HeaderError::TooLarge { claimed });
        }
        if 8 + claimed > len {
            return Err(HeaderError::HeaderPastEnd { claimed, len });
        }
        let mut json = vec![0u8; claimed as usize];
        file.read_exact_at(&mut json, 8)?;
        let metadata: Metadata =
            serde_json::from_slice(&json).map_err(|e| HeaderError::Invalid(e.to_string()))?;
        let start = 8 + claimed;
        let end = start + metadata.data_len() as u64;
        if end != len {
            return Err(HeaderError::WrongLength { end, len });
        }
        let tensors = metadata
            .tensors()
            .into_iter()
            .map(|(name, info)| {
                let (begin, finish) = info.data_offsets;
                let entry = TensorEntry {
                    dtype: info.dtype,
                    shape: info.shape.clone(),
                    offset: start + begin as u64,
                    len: finish - begin,
                };
                (name, entry)
            })
            .collect();
        Ok(Self { tensors })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use safetensors::tensor::TensorView;

    /// A safetensors file of two bf16 tensors, `a: [2, 3]` and `b: [4]`.
    fn two_tensors() -> Vec<u8> {
        let a = vec![1u8; 12];
        let b = vec![2u8; 8];
        let views = vec![
            ("a", TensorView::new(Dtype::BF16, vec![2, 3], &a).unwrap()),
            ("b", TensorView::new(Dtype::BF16, vec![4], &b).unwrap()),
        ];
        safetensors::serialize(views, None).unwrap()
    }

    fn header_of(bytes: &[u8]) -> Result<ShardHeader, HeaderError> {
        let mut file = tempfile::tempfile().unwrap();
        std::io::Write::write_all(&mut file, bytes).unwrap();
        ShardHeader::read(&file)
    }

    #[test]
    fn entries_point_at_each_tensors_bytes_in_the_file() {
        let bytes = two_tensors();
        let header = header_of(&bytes).unwrap();
        let mut tensors = header.tensors;
        tensors.sort_by(|x, y| x.0.cmp(&y.0));
        let (a, b) = (&tensors[0].1, &tensors[1].1);
        assert_eq!(
            (a.dtype, a.shape.as_slice(), a.len),
            (Dtype::BF16, &[2, 3][..], 12)
        );
        assert_eq!(b.offset, a.offset + 12);
        let at = |e: &TensorEntry| &bytes[e.offset as usize..e.offset as usize + e.len];
        assert_eq!(at(a), &[1u8; 12]);
        assert_eq!(at(b), &[2u8; 8]);
    }

    #[test]
    fn a_truncated_file_is_named_by_where_its_tensors_end() {
        let bytes = two_tensors();
        let cut = &bytes[..bytes.len() - 3];
        let error = header_of(cut).unwrap_err();
        assert!(
            matches!(error, HeaderError::WrongLength { end, len } if end == bytes.len() as u64 && len == cut.len() as u64),
            "{error}"
        );
    }

    #[test]
    fn a_header_cut_short_runs_past_the_end() {
        let bytes = two_tensors();
        let error = header_of(&bytes[..20]).unwrap_err();
        assert!(
            matches!(error, HeaderError::HeaderPastEnd { .. }),
            "{error}"
        );
        assert!(matches!(
            header_of(&bytes[..5]).unwrap_err(),
            HeaderError::TooShort { len: 5 }
        ));
    }

    #[test]
    fn an_absurd_header_length_is_refused_before_allocating() {
        let mut bytes = two_tensors();
        bytes[..8].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(
            header_of(&bytes).unwrap_err(),
            HeaderError::TooLarge { .. }
        ));
    }

    #[test]
    fn ranges_that_do_not_fit_their_shapes_are_invalid() {
        let bytes = two_tensors();
        let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        let json = String::from_utf8(bytes[8..8 + n].to_vec()).unwrap();
        // `a` claims 3 × 3 elements in 12 bytes.
        let edited = json.replacen("[2,3]", "[3,3]", 1);
        assert_ne!(edited, json);
        let mut damaged = (edited.len() as u64).to_le_bytes().to_vec();
        damaged.extend_from_slice(edited.as_bytes());
        damaged.extend_from_slice(&bytes[8 + n..]);
        assert!(matches!(
            header_of(&damaged).unwrap_err(),
            HeaderError::Invalid(_)
        ));
    }
}
