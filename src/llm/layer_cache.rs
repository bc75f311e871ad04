//! One layer's cached keys and values, grown in chunks and appended to in place.
//!
//! Concatenating the new position onto the cache each step copies the whole cache: at
//! batch 8 and ~300 cached tokens that is about 100 MB a step for SmolLM2-135M, a tenth of
//! a CPU decode step. Instead, once decoding starts, the tensors are grown to a multiple
//! of [`CHUNK`] positions and each new position is written into the room left; burn writes
//! in place when nothing else holds the tensor, which is the case between steps
//! (attention's views of the filled part are dropped by then). When the room runs out the
//! cache is copied once into a larger one.

use burn::tensor::{Int, Tensor};

/// Capacities are multiples of this many positions; fewer than this many stay unused.
const CHUNK: usize = 256;

/// `keys` and `values`, each `[B, K, capacity, D]`, of which the first `len` positions
/// are filled.
#[derive(Debug, Clone)]
pub struct LayerCache {
    keys: Tensor<4>,
    values: Tensor<4>,
    len: usize,
}

impl LayerCache {
    /// The cache after appending `key` and `value` (`[B, K, T, D]`) to `past`.
    pub fn append(past: Option<Self>, key: Tensor<4>, value: Tensor<4>) -> Self {
        let [_, _, t, _] = key.dims();
        // The first tokens (a prompt, or a whole training sequence) get no room: many
        // caches never grow, and the first decode step makes room anyway.
        let Some(mut cache) = past else {
            return Self {
                keys: key,
                values: value,
                len: t,
            };
        };
        let needed = cache.len + t;
        if needed > cache.keys.dims()[2] {
            let capacity = needed.next_multiple_of(CHUNK);
            let (keys, values) = cache.filled();
            cache.keys = with_room(keys, capacity);
            cache.values = with_room(values, capacity);
        }
        let [b, k, _, d] = cache.keys.dims();
        let at = [0..b, 0..k, cache.len..needed, 0..d];
        cache.keys = cache.keys.slice_assign(at.clone(), key);
        cache.values = cache.values.slice_assign(at, value);
        cache.len = needed;
        cache
    }

    /// A cache of the rows `rows` of this one, in that order (a row may repeat).
    pub fn select(&self, rows: &Tensor<1, Int>) -> Self {
        let (keys, values) = self.filled();
        Self {
            keys: keys.select(0, rows.clone()),
            values: values.select(0, rows.clone()),
            len: self.len,
        }
    }

    pub fn device(&self) -> burn::tensor::Device {
        self.keys.device()
    }

    /// Views of the filled keys and values, each `[B, K, len, D]`.
    pub fn filled(&self) -> (Tensor<4>, Tensor<4>) {
        let [b, k, _, d] = self.keys.dims();
        let filled = [0..b, 0..k, 0..self.len, 0..d];
        (
            self.keys.clone().slice(filled.clone()),
            self.values.clone().slice(filled),
        )
    }
}

/// `filled` (`[B, K, S, D]`) followed by unused positions up to `capacity`.
fn with_room(filled: Tensor<4>, capacity: usize) -> Tensor<4> {
    let [b, k, s, d] = filled.dims();
    let room = Tensor::zeros([b, k, capacity - s, d], (&filled.device(), filled.dtype()));
    Tensor::cat(vec![filled, room], 2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    fn positions(from: usize, count: usize) -> Tensor<4> {
        let values = (from..from + count)
            .flat_map(|p| [p as f32, -(p as f32)])
            .collect();
        Tensor::from_data(TensorData::new(values, [1, 1, count, 2]), &Device::flex())
    }

    /// A prefill, then single positions past the first chunk of room, then a block that
    /// needs more than one new chunk: the filled part is always everything appended.
    #[test]
    fn appends_keep_every_position_across_growth() {
        let mut cache = LayerCache::append(None, positions(0, 5), positions(0, 5).neg());
        let mut len = 5;
        for count in std::iter::repeat_n(1, CHUNK + 3).chain([2 * CHUNK + 7, 1]) {
            cache = LayerCache::append(
                Some(cache),
                positions(len, count),
                positions(len, count).neg(),
            );
            len += count;
            let (keys, values) = cache.filled();
            assert_eq!(keys.dims(), [1, 1, len, 2]);
            assert!(
                keys.clone()
                    .equal(positions(0, len))
                    .all()
                    .into_scalar::<bool>()
            );
            assert!(
                values
                    .equal(positions(0, len).neg())
                    .all()
                    .into_scalar::<bool>()
            );
        }
    }
}
