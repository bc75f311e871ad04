//! Gradients of a model's parameters: summed across micro-batches, and scaled down to a
//! global norm.

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::Tensor;

use crate::llm::LlamaModel;

/// The sum of two sets of gradients of `model`'s parameters.
pub fn add_gradients(
    model: &LlamaModel,
    mut sum: GradientsParams,
    mut more: GradientsParams,
) -> GradientsParams {
    struct Add<'a> {
        sum: &'a mut GradientsParams,
        more: &'a mut GradientsParams,
    }
    impl ModuleVisitor for Add<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(extra) = self.more.remove::<D>(param.id) {
                let total = match self.sum.remove::<D>(param.id) {
                    Some(current) => current + extra,
                    None => extra,
                };
                self.sum.register(param.id, total);
            }
        }
    }
    model.visit(&mut Add {
        sum: &mut sum,
        more: &mut more,
    });
    sum
}

/// Scales `grads` down to global norm `max_norm` (0: no clipping); returns the norm
/// before clipping.
pub fn clip_gradients(model: &LlamaModel, grads: &mut GradientsParams, max_norm: f64) -> f64 {
    struct SquaredNorm<'a> {
        grads: &'a GradientsParams,
        total: f64,
    }
    impl ModuleVisitor for SquaredNorm<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(grad) = self.grads.get::<D>(param.id) {
                self.total += grad.powi_scalar(2).sum().into_scalar::<f64>();
            }
        }
    }
    struct Scale<'a> {
        grads: &'a mut GradientsParams,
        factor: f64,
    }
    impl ModuleVisitor for Scale<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(grad) = self.grads.remove::<D>(param.id) {
                self.grads.register(param.id, grad * self.factor);
            }
        }
    }
    let mut norm = SquaredNorm { grads, total: 0.0 };
    model.visit(&mut norm);
    let norm = norm.total.sqrt();
    if max_norm > 0.0 && norm > max_norm {
        model.visit(&mut Scale {
            grads,
            factor: max_norm / (norm + 1e-6),
        });
    }
    norm
}
