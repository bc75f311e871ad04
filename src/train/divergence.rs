//! Divergence: training whose numbers stopped being numbers.
//!
//! With too high a learning rate the loss and the gradient norm turn NaN or infinite, the
//! optimiser writes NaN into the weights, and every later step "trains" a broken model
//! whose rollouts the judge still scores. So an update checks what it computes: the loss of
//! every micro-batch, the gradient norm before the optimiser steps, and the parameters
//! after it ([`first_non_finite_parameter`]). The first non-finite one stops training with
//! a [`Divergence`] naming the step and the quantity; the saved training state is left as
//! it was, from before the divergence.

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::Tensor;

use crate::llm::LlamaModel;
use crate::llm::export::hf_tensors;
use crate::stage::StageError;

/// Training diverged: `quantity` was `value` at optimiser step `step` (counted from 1).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error(
    "training diverged at step {step}: {quantity} is {value}\nhint: lower `lr` (or the \
     schedule's peak), or set `max_grad_norm` to clip gradients"
)]
pub struct Divergence {
    pub step: usize,
    pub quantity: String,
    pub value: f64,
}

impl From<Divergence> for StageError {
    fn from(divergence: Divergence) -> Self {
        StageError::Failed(divergence.to_string())
    }
}

/// `Err` when `value` of `quantity` is not finite.
pub fn finite(step: usize, quantity: &str, value: f64) -> Result<f64, Divergence> {
    if value.is_finite() {
        Ok(value)
    } else {
        Err(Divergence {
            step,
            quantity: quantity.to_string(),
            value,
        })
    }
}

/// The Hugging Face name of a parameter of `model` holding a NaN or an infinity, and that
/// value; `None` when every parameter is finite. One device reduction in the common case;
/// the parameters are read back to the host only to name the culprit.
pub fn first_non_finite_parameter(model: &LlamaModel) -> Option<(String, f64)> {
    struct Sums(Vec<Tensor<1>>);
    impl ModuleVisitor for Sums {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            // A NaN or an infinity anywhere makes the sum of absolute values non-finite.
            self.0.push(param.val().abs().sum());
        }
    }
    let mut sums = Sums(Vec::new());
    model.visit(&mut sums);
    if sums.0.is_empty() {
        return None;
    }
    let total = Tensor::cat(sums.0, 0).sum().into_scalar::<f64>();
    if total.is_finite() {
        return None;
    }
    let found = hf_tensors(model).into_iter().find_map(|t| {
        t.values
            .iter()
            .find(|v| !v.is_finite())
            .map(|v| (t.name.clone(), f64::from(*v)))
    });
    // The sum overflowed although every value is finite: weights that large have diverged
    // just the same.
    Some(found.unwrap_or_else(|| ("the sum of |parameters|".into(), total)))
}

/// `Err` naming the first non-finite parameter of `model`, after optimiser step `step`.
pub fn finite_parameters(step: usize, model: &LlamaModel) -> Result<(), Divergence> {
    match first_non_finite_parameter(model) {
        None => Ok(()),
        Some((name, value)) => Err(Divergence {
            step,
            quantity: format!("parameter `{name}`"),
            value,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_finite_value_passes_and_nan_names_the_step() {
        assert_eq!(finite(3, "the loss", 1.5), Ok(1.5));
        let error = finite(2, "the loss", f64::NAN).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("training diverged at step 2: the loss is NaN"),
            "{error}"
        );
        assert!(finite(1, "the gradient norm", f64::INFINITY).is_err());
    }
}
