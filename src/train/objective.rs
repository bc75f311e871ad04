//! The GRPO objective: a clipped policy-gradient loss per token, an optional KL penalty,
//! and how token losses are averaged.
//!
//! For token `t` of a trained row with advantage `A` (its sample's), policy log-prob
//! `logp`, log-prob `old` under the policy that sampled the batch, and `ref` under a frozen
//! reference model:
//!
//! ```text
//! ratio    = exp(logp - old)
//! clipped  = clamp(ratio, 1 - ε_low, 1 + ε_high)
//! pg       = -min(ratio · A, clipped · A)
//! kl       = exp(ref - logp) - (ref - logp) - 1          (Schulman's k3 estimator)
//! token    = pg + β · kl
//! loss     = Σ_t w_t · token_t
//! ```
//!
//! The weights `w` carry the aggregation ([`Aggregation`]) and the mask (0 for prompt and
//! padding tokens). They are computed over the whole batch, so summing the loss of
//! micro-batches gives the loss of the batch.

use std::collections::BTreeMap;

use burn::tensor::{Tensor, TensorData};
use serde::{Deserialize, Serialize};

/// How token losses are averaged into the batch loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Aggregation {
    /// GRPO: the mean over each sample's tokens, then the mean over samples.
    Grpo,
    /// DAPO: the mean over every token of the batch (long samples weigh more).
    Dapo,
    /// Dr. GRPO: the sum over tokens divided by samples × the most tokens a sample can have.
    DrGrpo,
}

/// The objective's settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Objective {
    pub epsilon_low: f64,
    pub epsilon_high: f64,
    pub kl_beta: f64,
    pub aggregation: Aggregation,
    /// Dr. GRPO's normaliser: the most trained tokens one sample can have.
    pub max_sample_tokens: usize,
}

/// A trained row as the objective sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RowShape {
    pub sample: usize,
    /// Completion tokens.
    pub tokens: usize,
}

/// Token counts of the whole batch, which every micro-batch's weights divide by.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchTotals {
    tokens_per_sample: BTreeMap<usize, usize>,
    tokens: usize,
}

impl BatchTotals {
    pub fn new(rows: &[RowShape]) -> Self {
        let mut tokens_per_sample = BTreeMap::new();
        for row in rows {
            *tokens_per_sample.entry(row.sample).or_default() += row.tokens;
        }
        Self {
            tokens: rows.iter().map(|r| r.tokens).sum(),
            tokens_per_sample,
        }
    }

    /// Samples with at least one trained token.
    pub fn samples(&self) -> usize {
        self.tokens_per_sample.values().filter(|&&n| n > 0).count()
    }

    pub fn tokens(&self) -> usize {
        self.tokens
    }
}

/// One micro-batch's loss and what it shows.
pub struct LossParts {
    /// `[1]`, with the gradient.
    pub loss: Tensor<1>,
    /// Trained tokens whose ratio was clipped, and of those how many in all.
    pub clipped_tokens: f64,
    /// Σ over trained tokens of the KL estimate (0 without a reference).
    pub kl_sum: f64,
    pub tokens: usize,
}

impl Objective {
    /// `[R, C]` weights for right-aligned rows (see
    /// [`completion_logprobs`](super::logprobs::completion_logprobs)).
    pub fn weights(&self, rows: &[RowShape], c: usize, totals: &BatchTotals) -> Vec<f32> {
        let samples = totals.samples().max(1) as f64;
        let mut weights = vec![0f32; rows.len() * c];
        for (r, row) in rows.iter().enumerate() {
            let per_token = match self.aggregation {
                Aggregation::Grpo => {
                    let own = totals
                        .tokens_per_sample
                        .get(&row.sample)
                        .copied()
                        .unwrap_or(0);
                    1.0 / (own.max(1) as f64 * samples)
                }
                Aggregation::Dapo => 1.0 / totals.tokens.max(1) as f64,
                Aggregation::DrGrpo => 1.0 / (samples * self.max_sample_tokens.max(1) as f64),
            };
            weights[r * c + c - row.tokens..(r + 1) * c].fill(per_token as f32);
        }
        weights
    }

    /// The loss of one micro-batch: `logp` (`[R, C]`, with gradient), `old` and
    /// `reference` (`[R, C]`, constants; `old` defaults to `logp`'s values), one advantage
    /// per row, and the rows' shapes.
    pub fn loss(
        &self,
        logp: Tensor<2>,
        old: Option<Tensor<2>>,
        reference: Option<Tensor<2>>,
        advantages: &[f32],
        rows: &[RowShape],
        totals: &BatchTotals,
    ) -> LossParts {
        let [r, c] = logp.dims();
        let device = logp.device();
        let weights = Tensor::<2>::from_data(
            TensorData::new(self.weights(rows, c, totals), [r, c]),
            &device,
        );
        let mask = weights.clone().greater_elem(0.0).float();
        let advantage =
            Tensor::<2>::from_data(TensorData::new(advantages.to_vec(), [r, 1]), &device);
        let old = old.unwrap_or_else(|| logp.clone().detach());

        let ratio = (logp.clone() - old).exp();
        let clipped = ratio
            .clone()
            .clamp(1.0 - self.epsilon_low, 1.0 + self.epsilon_high);
        let unclipped_term = ratio.clone() * advantage.clone();
        let clipped_term = clipped * advantage;
        let pg = -unclipped_term.clone().min_pair(clipped_term.clone());
        let kl = reference.map(|reference| {
            let delta = reference - logp;
            delta.clone().exp() - delta - 1.0
        });
        let token = match &kl {
            Some(kl) => pg + kl.clone() * self.kl_beta,
            None => pg,
        };
        let loss = (token * weights).sum();

        let clipped_tokens = (clipped_term.lower(unclipped_term).float() * mask.clone())
            .sum()
            .into_scalar::<f64>();
        let kl_sum = kl.map_or(0.0, |kl| (kl * mask.clone()).sum().into_scalar::<f64>());
        LossParts {
            loss,
            clipped_tokens,
            kl_sum,
            tokens: rows.iter().map(|r| r.tokens).sum(),
        }
    }
}
