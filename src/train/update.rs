//! One GRPO policy update on a batch of trained turns.
//!
//! The batch is scored in micro-batches whose gradients accumulate; the summed gradient
//! is clipped to a global norm and the optimiser steps once. That is repeated
//! `inner_steps` times (μ): the first pass records the log-probs the batch was sampled
//! under (`old`), later passes reuse them, so the ratio measures how far the policy moved
//! within the update. With a reference model the KL penalty's reference log-probs are
//! computed once per micro-batch. A loss, gradient norm or parameter that stops being
//! finite ends the update with a [`super::divergence::Divergence`].

use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::tensor::Tensor;

use super::divergence::{finite, finite_parameters};
use super::gradients::{add_gradients, clip_gradients};
use super::logprobs::{Scored, completion_logprobs};
use super::objective::{BatchTotals, Objective, RowShape};
use super::sequences::TrainingRow;
use crate::llm::LlamaModel;
use crate::stage::StageError;

/// How an update runs.
pub struct Update<'a> {
    /// The optimiser step this update is (from 1), for messages.
    pub step: usize,
    pub objective: &'a Objective,
    /// Trained turns per forward and backward pass.
    pub micro_batch: usize,
    /// Passes over the batch (μ), each ending in an optimiser step.
    pub inner_steps: usize,
    /// 0 turns clipping off.
    pub max_grad_norm: f64,
    pub lr: f64,
    /// The frozen model of the KL penalty, when it has a weight.
    pub reference: Option<&'a LlamaModel>,
}

/// What the last pass of an update measured.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Measured {
    /// The objective, summed over micro-batches.
    pub loss: f64,
    /// Trained tokens whose ratio was clipped.
    pub clipped_tokens: f64,
    /// Σ over trained tokens of the KL estimate.
    pub kl_sum: f64,
    /// Global gradient norm before clipping.
    pub grad_norm: f64,
    /// Trained tokens in the batch.
    pub tokens: usize,
}

impl Update<'_> {
    /// Updates `policy` on `rows` (sorted so that a group's turns at one position sit
    /// side by side), each weighted by its sample's `advantages` entry; `check` is called
    /// before every micro-batch and stops the update when it fails.
    pub fn run(
        &self,
        mut policy: LlamaModel,
        optimizer: &mut ModuleOptimizer,
        rows: &[TrainingRow],
        advantages: &[f64],
        check: impl Fn() -> Result<(), StageError>,
    ) -> Result<(LlamaModel, Measured), StageError> {
        let micro_batch = self.micro_batch.max(1);
        let shapes: Vec<RowShape> = rows
            .iter()
            .map(|r| RowShape {
                sample: r.sample,
                tokens: r.scored.completion.len(),
            })
            .collect();
        let totals = BatchTotals::new(&shapes);
        let chunks = rows.len().div_ceil(micro_batch);
        let mut old: Vec<Option<Tensor<2>>> = vec![None; chunks];
        let mut reference: Vec<Option<Tensor<2>>> = vec![None; chunks];
        let mut measured = Measured {
            tokens: totals.tokens(),
            ..Measured::default()
        };
        for inner in 0..self.inner_steps {
            let mut accumulated: Option<GradientsParams> = None;
            let mut pass = Measured::default();
            for (chunk, (rows, shapes)) in rows
                .chunks(micro_batch)
                .zip(shapes.chunks(micro_batch))
                .enumerate()
            {
                check()?;
                let scored: Vec<Scored> = rows.iter().map(|r| r.scored.clone()).collect();
                let row_advantages: Vec<f32> =
                    rows.iter().map(|r| advantages[r.sample] as f32).collect();
                if let Some(model) = self.reference
                    && reference[chunk].is_none()
                {
                    reference[chunk] = Some(completion_logprobs(model, &scored));
                }
                let logp = completion_logprobs(&policy, &scored);
                if inner == 0 {
                    old[chunk] = Some(logp.clone().detach().without_autodiff());
                }
                let parts = self.objective.loss(
                    logp,
                    (inner > 0).then(|| old[chunk].clone()).flatten(),
                    reference[chunk].clone(),
                    &row_advantages,
                    shapes,
                    &totals,
                );
                pass.loss += finite(
                    self.step,
                    "the loss",
                    parts.loss.clone().into_scalar::<f64>(),
                )?;
                pass.clipped_tokens += parts.clipped_tokens;
                pass.kl_sum += parts.kl_sum;
                let grads = GradientsParams::from_grads(parts.loss.backward(), &policy);
                accumulated = Some(match accumulated {
                    None => grads,
                    Some(sum) => add_gradients(&policy, sum, grads),
                });
            }
            let Some(mut grads) = accumulated else { break };
            measured.grad_norm = finite(
                self.step,
                "the gradient norm",
                clip_gradients(&policy, &mut grads, self.max_grad_norm),
            )?;
            policy = optimizer.step(self.lr, policy, grads);
            finite_parameters(self.step, &policy)?;
            (measured.loss, measured.clipped_tokens, measured.kl_sum) =
                (pass.loss, pass.clipped_tokens, pass.kl_sum);
        }
        Ok((policy, measured))
    }
}
