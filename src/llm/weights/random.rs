//! Seeded random weights of any shape, for tests and speed measurements that need a model
//! of a given size but not a trained one.
//!
//! Each tensor is drawn from its own stream, seeded by the source's seed and the tensor's
//! name, so a tensor does not depend on the order the model asks for them. Norm weights are
//! ones and biases zeros, as `transformers` initialises them; everything else is uniform
//! with standard deviation 0.02 (the `initializer_range` of Llama configs).

use std::path::Path;

use burn::tensor::{DType, TensorData};

use super::WeightSource;
use crate::llm::error::LlmError;
use crate::seed::SeededRng;

/// Makes up whatever tensor the model asks for.
pub struct RandomWeights {
    seed: u64,
}

impl RandomWeights {
    pub fn new(seed: u64) -> Self {
        Self { seed }
    }
}

impl WeightSource for RandomWeights {
    fn path(&self) -> &Path {
        Path::new("<random weights>")
    }

    /// Random weights know no shapes by name alone: only [`WeightSource::take`] makes them.
    fn get(&mut self, _name: &str, _wanted: DType) -> Result<Option<TensorData>, LlmError> {
        Ok(None)
    }

    fn take(
        &mut self,
        name: &str,
        shape: &[usize],
        _wanted: DType,
    ) -> Result<TensorData, LlmError> {
        let len = shape.iter().product();
        let data = if name.ends_with("norm.weight") {
            vec![1.0; len]
        } else if name.ends_with(".bias") {
            vec![0.0; len]
        } else {
            let mut rng = SeededRng::new(self.seed, &[b"random-weights", name.as_bytes()]);
            let half_width = 0.02 * 3f32.sqrt();
            (0..len)
                .map(|_| (rng.unit() as f32 * 2.0 - 1.0) * half_width)
                .collect()
        };
        Ok(TensorData::new(data, shape.to_vec()))
    }
}
