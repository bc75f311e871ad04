//! `grpo`'s parameters: what is trained, against whom, rewarded how, and the optimiser's
//! settings, with the checks values get beyond their types.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::dialogue::DialogueSettings;
use crate::dialogue::MAX_PARTIES;
use crate::stage::limits::{MAX_BATCH, MAX_REPEATS, MAX_ROWS, at_most};
use crate::train::advantage::AdvantageScale;
use crate::train::lora::{self, LoraSpec};
use crate::train::objective::{Aggregation, Objective};
use crate::train::sequences::TrainAgents;

/// What a dialogue earns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Reward {
    /// The `judge` model's expected Collective Agency rating (0–5).
    Judge,
    /// How often the trained agent's turns contain this text (outside `<think>`
    /// reasoning), per trained turn: a programmatic reward for checking that training works.
    Contains(String),
}

/// What the policy is trained on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Negotiation dialogues against an opponent (the method).
    #[default]
    SelfPlay,
    /// One answer to the dilemma, alone (the paper's single-agent baseline).
    SingleAgent,
}

/// Who the policy negotiates with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Opponent {
    /// A copy of the policy refreshed every `opponent_refresh` steps (the paper: every step).
    Frozen,
    /// The current policy itself.
    Policy,
}

/// How the learning rate moves after warm-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Schedule {
    Constant,
    /// Cosine decay to 0 at the last step.
    Cosine,
}

/// Parameters of `grpo`. The dialogue fields (`max_turns` to `batch_size`) mean what they
/// mean for `rollout`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// The spec model trained (an in-process model).
    pub policy: String,
    /// `self_play` (negotiation dialogues) or `single_agent` (the model answers each
    /// dilemma alone; the baseline).
    #[serde(default)]
    pub mode: Mode,
    /// The spec model that rates dialogues for `reward: judge`: base weights, never the
    /// ones being trained.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub judge: Option<String>,
    #[serde(default = "default_reward")]
    pub reward: Reward,
    /// The reward of a dialogue without agreement.
    #[serde(default)]
    pub no_agreement_reward: f64,
    /// Optimiser steps.
    #[serde(default = "default_steps")]
    pub steps: usize,
    /// Pairs sampled per step.
    #[serde(default = "default_batch_prompts")]
    pub batch_prompts: usize,
    /// Dialogues per pair.
    #[serde(default = "default_group_size")]
    pub group_size: usize,
    #[serde(default = "default_opponent")]
    pub opponent: Opponent,
    /// Steps between refreshes of a `frozen` opponent.
    #[serde(default = "one")]
    pub opponent_refresh: usize,
    #[serde(default)]
    pub train_agents: TrainAgents,
    /// Agents per dialogue: the policy and `parties - 1` opponents (three or more need
    /// pairs made with `persona_pairing` `parties: N`).
    #[serde(default = "default_parties", skip_serializing_if = "is_two")]
    pub parties: usize,
    #[serde(default = "default_lr")]
    pub lr: f64,
    /// Steps over which the learning rate rises linearly from 0.
    #[serde(default)]
    pub warmup_steps: usize,
    #[serde(default = "default_schedule")]
    pub schedule: Schedule,
    #[serde(default)]
    pub weight_decay: f64,
    /// Gradients are scaled down to this global norm (0 or more); 0 turns clipping off.
    #[serde(default = "default_max_grad_norm")]
    pub max_grad_norm: f64,
    /// The ratio is clipped to [1 - epsilon_low, 1 + epsilon_high].
    #[serde(default = "default_epsilon_low")]
    pub epsilon_low: f64,
    #[serde(default = "default_epsilon_high")]
    pub epsilon_high: f64,
    /// Weight of the KL penalty to the base policy (k3 estimator); 0 loads no reference.
    #[serde(default)]
    pub kl_beta: f64,
    /// How token losses are averaged: `grpo`, `dapo` or `dr_grpo`.
    #[serde(default = "default_loss")]
    pub loss: Aggregation,
    /// What centred rewards are divided by: `group`, `batch` or `none`.
    #[serde(default = "default_scale")]
    pub scale: AdvantageScale,
    /// Rank rewards within their group before centring.
    #[serde(default)]
    pub rank: bool,
    /// Updates per batch of dialogues (μ).
    #[serde(default = "one")]
    pub inner_steps: usize,
    /// Replace groups whose rewards all tie with groups of new pairs (DAPO's dynamic
    /// sampling), up to `max_resamples` rounds per step.
    #[serde(default)]
    pub filter_zero_std: bool,
    #[serde(default = "default_max_resamples")]
    pub max_resamples: usize,
    /// DAPO's soft overlong punishment: `{cache: N}`; added to each dialogue's reward as
    /// the mean over its trained turns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overlong_penalty: Option<OverlongPenalty>,
    /// Train low-rank adapters instead of every weight: `{rank, alpha, targets}`. The
    /// checkpoint has them merged in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lora: Option<LoraSpec>,
    /// Trained turns per forward and backward pass; gradients accumulate across them.
    /// A group's turns at one position share their prompt, which a pass runs once: on 2
    /// CPU cores 4 (one group of the paper's self-play shape) trained a third faster than
    /// 2 for 0.4 GiB more, and 8 needed twice the memory.
    #[serde(default = "default_micro_batch")]
    pub micro_batch: usize,
    /// Steps between saves of the training state (an interrupted run resumes from the
    /// last one); 0 saves only the final checkpoint.
    #[serde(default = "default_save_every")]
    pub save_every: usize,
    #[serde(flatten)]
    pub dialogue: DialogueSettings,
}

fn default_parties() -> usize {
    2
}
/// Left out of keys at its default, so keys from before `parties` existed still hold.
fn is_two(parties: &usize) -> bool {
    *parties == 2
}
fn default_reward() -> Reward {
    Reward::Judge
}
fn default_steps() -> usize {
    100
}
fn default_batch_prompts() -> usize {
    16
}
fn default_group_size() -> usize {
    8
}
fn default_opponent() -> Opponent {
    Opponent::Frozen
}
fn one() -> usize {
    1
}
fn default_lr() -> f64 {
    5e-6
}
fn default_schedule() -> Schedule {
    Schedule::Constant
}
fn default_max_grad_norm() -> f64 {
    1.0
}
fn default_epsilon_low() -> f64 {
    0.2
}
fn default_epsilon_high() -> f64 {
    0.28
}
fn default_loss() -> Aggregation {
    Aggregation::Dapo
}
fn default_scale() -> AdvantageScale {
    AdvantageScale::Group
}
fn default_micro_batch() -> usize {
    4
}
fn default_max_resamples() -> usize {
    3
}
fn default_save_every() -> usize {
    50
}

/// DAPO's soft penalty for turns that run into `max_new_tokens`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OverlongPenalty {
    /// The last this many tokens before `max_new_tokens`: a trained turn reaching into
    /// them loses reward linearly, down to -1 at `max_new_tokens`.
    pub cache: usize,
}

impl Params {
    /// The learning rate at step `step` (from 0).
    pub fn learning_rate(&self, step: usize) -> f64 {
        if step < self.warmup_steps {
            return self.lr * (step + 1) as f64 / self.warmup_steps as f64;
        }
        match self.schedule {
            Schedule::Constant => self.lr,
            Schedule::Cosine => {
                let span = self.steps.saturating_sub(self.warmup_steps).max(1) as f64;
                let progress = (step - self.warmup_steps) as f64 / span;
                self.lr * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
            }
        }
    }

    /// The objective these parameters describe.
    pub fn objective(&self) -> Objective {
        Objective {
            epsilon_low: self.epsilon_low,
            epsilon_high: self.epsilon_high,
            kl_beta: self.kl_beta,
            aggregation: self.loss,
            max_sample_tokens: self.dialogue.max_new_tokens * self.dialogue.max_turns.div_ceil(2),
        }
    }

    /// Values the fields' types allow but training cannot use: `(field, problem)`.
    pub fn problems(&self) -> Vec<(String, String)> {
        let params = self;
        let mut problems = Vec::new();
        let mut at_least_one = |field: &str, value: usize| {
            if value == 0 {
                problems.push((field.to_string(), "must be at least 1".to_string()));
            }
        };
        at_least_one("steps", params.steps);
        at_least_one("batch_prompts", params.batch_prompts);
        at_least_one("group_size", params.group_size);
        at_least_one("opponent_refresh", params.opponent_refresh);
        at_least_one("inner_steps", params.inner_steps);
        at_least_one("micro_batch", params.micro_batch);
        if params.parties < 2 || params.parties > MAX_PARTIES {
            problems.push((
                "parties".into(),
                format!("a negotiation needs 2 to {MAX_PARTIES} parties"),
            ));
        }
        problems.extend(
            [
                at_most("steps", params.steps, MAX_ROWS, "steps"),
                at_most("batch_prompts", params.batch_prompts, MAX_BATCH, "pairs"),
                at_most(
                    "group_size",
                    params.group_size,
                    MAX_BATCH,
                    "dialogues per pair",
                ),
                at_most("inner_steps", params.inner_steps, MAX_REPEATS, "updates"),
                at_most("max_resamples", params.max_resamples, MAX_REPEATS, "rounds"),
                at_most("micro_batch", params.micro_batch, MAX_BATCH, "turns"),
                at_most("warmup_steps", params.warmup_steps, MAX_ROWS, "steps"),
                at_most(
                    "lora.rank",
                    params.lora.as_ref().map_or(0, |l| l.rank),
                    MAX_BATCH,
                    "dimensions",
                ),
            ]
            .into_iter()
            .flatten(),
        );
        for (field, value) in [
            ("weight_decay", params.weight_decay),
            ("max_grad_norm", params.max_grad_norm),
        ] {
            if !(value.is_finite() && value >= 0.0) {
                problems.push((
                    field.into(),
                    format!("`{field}` is {value}, but must be 0 or more"),
                ));
            }
        }
        if !(params.lr.is_finite() && params.lr > 0.0) {
            problems.push(("lr".into(), "must be a number above 0".into()));
        }
        for (field, value) in [
            ("epsilon_low", params.epsilon_low),
            ("epsilon_high", params.epsilon_high),
        ] {
            if !(value.is_finite() && value >= 0.0) {
                problems.push((field.into(), "must be 0 or more".into()));
            }
        }
        if !(params.kl_beta.is_finite() && params.kl_beta >= 0.0) {
            problems.push(("kl_beta".into(), "must be 0 or more".into()));
        }
        if params.reward == Reward::Judge && params.judge.is_none() {
            problems.push((
                "judge".into(),
                "`reward: judge` needs a `judge` model (a spec model name)".into(),
            ));
        }
        if let Some(penalty) = &params.overlong_penalty
            && (penalty.cache == 0 || penalty.cache >= params.dialogue.max_new_tokens)
        {
            problems.push((
                "overlong_penalty.cache".into(),
                "must be at least 1 and below `max_new_tokens`".into(),
            ));
        }
        if let Some(spec) = &params.lora {
            if spec.rank == 0 {
                problems.push(("lora.rank".into(), "must be at least 1".into()));
            }
            if spec.targets.is_empty() {
                problems.push(("lora.targets".into(), "name at least one projection".into()));
            }
            for target in &spec.targets {
                if !lora::PROJECTIONS.contains(&target.as_str()) {
                    problems.push((
                        "lora.targets".into(),
                        format!("`{target}` is not one of {}", lora::PROJECTIONS.join(", ")),
                    ));
                }
            }
        }
        problems.extend(params.dialogue.problems());
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learning_rate_warms_up_then_follows_the_schedule() {
        let mut params: Params = serde_json::from_value(serde_json::json!({
            "policy": "p", "reward": {"contains": "x"}, "lr": 1.0, "steps": 10,
            "warmup_steps": 2, "schedule": "cosine"
        }))
        .unwrap();
        assert_eq!(params.learning_rate(0), 0.5);
        assert_eq!(params.learning_rate(1), 1.0);
        assert!((params.learning_rate(2) - 1.0).abs() < 1e-12);
        assert!(params.learning_rate(9) < 0.05);
        params.schedule = Schedule::Constant;
        assert_eq!(params.learning_rate(9), 1.0);
    }
}
