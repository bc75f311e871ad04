//! `grpo`: trains the policy online with group-relative policy optimisation.
//!
//! Each step samples `batch_prompts` pairs, holds `group_size` dialogues per pair with the
//! current policy as the first agent (the rollout stage's protocol, not a copy) against an
//! `opponent`, rewards each dialogue (the judge's Collective Agency score, or a
//! programmatic reward), turns rewards into group-relative advantages and updates the
//! policy on the tokens it generated ([`crate::train`]). The output is one metrics row
//! per step.

use std::sync::Arc;
use std::time::Instant;

use arrow::array::{ArrayRef, Float64Array, UInt32Array};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::RecordBatch;
use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::{AdamWConfig, GradientsParams};
use burn::tensor::Tensor;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::dialogue::{Dialogue, Task, transcript};
use super::judge::{Case, DIGITS, Party as JudgedParty, RUBRIC, expectation};
use super::rollout::{self, Agreement, ContextTurns};
use crate::judge::asker::Asker;
use crate::llm::LlamaModel;
use crate::llm::export::NamedTensor;
use crate::llm::export::save_hf_folder;
use crate::llm::loaded::LoadedModel;
use crate::seed::SeededRng;
use crate::stage::{Resource, Stage, StageContext, StageError, Upstream};
use crate::stats;
use crate::table;
use crate::train::advantage::{self, AdvantageScale, advantages};
use crate::train::checkpoint::StateDir;
use crate::train::logprobs::{Scored, completion_logprobs};
use crate::train::lora::{self, LoraSpec};
use crate::train::objective::{Aggregation, BatchTotals, Objective, RowShape};
use crate::train::sequences::{TrainAgents, TrainingRow, training_rows};

/// GRPO training.
pub struct Grpo;

/// The single-agent request (`mode: single_agent`).
pub const SINGLE_AGENT: &str = include_str!("../../data/prompts/single_agent.jinja");

/// Internal agent names: the policy being trained and its opponent.
const POLICY: &str = "\u{0}policy";
const OPPONENT: &str = "\u{0}opponent";

/// What a dialogue earns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Reward {
    /// The `judge` model's expected Collective Agency rating (0–5).
    Judge,
    /// How often the trained agent's turns contain this text, per trained turn: a
    /// programmatic reward for checking that training works.
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
    /// Gradients are scaled down to this global norm; 0 turns clipping off.
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
    #[serde(default = "rollout::default_max_turns")]
    pub max_turns: usize,
    #[serde(default = "rollout::default_context_turns")]
    pub context_turns: ContextTurns,
    #[serde(default = "rollout::default_temperature")]
    pub temperature: f32,
    #[serde(default = "rollout::default_top_p")]
    pub top_p: f32,
    #[serde(default = "rollout::default_max_new_tokens")]
    pub max_new_tokens: usize,
    #[serde(default)]
    pub agreement: Agreement,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agreement_model: Option<String>,
    #[serde(default = "rollout::default_marker")]
    pub marker: String,
    #[serde(default = "rollout::default_batch_size")]
    pub batch_size: usize,
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

impl Params {
    /// The rollout parameters of the dialogues (the protocol's built-in templates).
    fn rollout(&self) -> rollout::Params {
        rollout::Params {
            model: None,
            agents: Some(
                std::iter::once(POLICY.to_string())
                    .chain(std::iter::repeat_n(OPPONENT.to_string(), self.parties - 1))
                    .collect(),
            ),
            group_size: self.group_size,
            max_turns: self.max_turns,
            context_turns: self.context_turns.clone(),
            temperature: self.temperature,
            top_p: self.top_p,
            max_new_tokens: self.max_new_tokens,
            agreement: self.agreement,
            agreement_model: Some(self.agreement_model.clone().unwrap_or(self.policy.clone())),
            marker: self.marker.clone(),
            protocol_file: None,
            agreement_file: None,
            summary_file: None,
            batch_size: self.batch_size,
        }
    }

    /// The learning rate at step `step` (from 0).
    fn learning_rate(&self, step: usize) -> f64 {
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
}

/// Rolled-out groups: `group_size` consecutive tasks, dialogues and rewards each.
struct Groups {
    tasks: Vec<Task>,
    dialogues: Vec<Dialogue>,
    rewards: Vec<f64>,
}

/// DAPO's soft penalty for turns that run into `max_new_tokens`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OverlongPenalty {
    /// The last this many tokens before `max_new_tokens`: a trained turn reaching into
    /// them loses reward linearly, down to -1 at `max_new_tokens`.
    pub cache: usize,
}

/// The metrics of the steps so far, a column each.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Metrics {
    reward_mean: Vec<f64>,
    reward_std: Vec<f64>,
    reward_min: Vec<f64>,
    reward_max: Vec<f64>,
    group_min: Vec<f64>,
    agreement_rate: Vec<f64>,
    turns: Vec<f64>,
    kl: Vec<f64>,
    clip_fraction: Vec<f64>,
    tied_groups: Vec<f64>,
    loss: Vec<f64>,
    grad_norm: Vec<f64>,
    lr: Vec<f64>,
    tokens_per_s: Vec<f64>,
    step_seconds: Vec<f64>,
}

/// What the training state records besides the models.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Progress {
    steps_done: usize,
    metrics: Metrics,
}

impl Stage for Grpo {
    type Params = Params;
    const KIND: &'static str = "grpo";
    const VERSION: u32 = 1;
    const SUMMARY: &'static str =
        "GRPO training of a policy on its negotiation turns; one metrics row per step.";

    fn output_schema(&self) -> SchemaRef {
        let f = |name: &'static str, doc: &'static str| table::column(name, DataType::Float64, doc);
        table::schema(vec![
            table::column("step", DataType::UInt32, "The optimiser step, from 1."),
            f("reward_mean", "Mean reward of the step's dialogues."),
            f("reward_std", "Standard deviation of the rewards."),
            f("reward_min", "Lowest reward."),
            f("reward_max", "Highest reward."),
            f(
                "group_min",
                "Mean over groups of each group's lowest reward (the paper's curve).",
            ),
            f(
                "agreement_rate",
                "Fraction of dialogues that reached agreement.",
            ),
            f("turns", "Mean turns per dialogue."),
            f(
                "kl",
                "Mean KL estimate (k3) to the base policy per trained token; 0 when kl_beta is 0.",
            ),
            f(
                "clip_fraction",
                "Fraction of trained tokens whose ratio was clipped.",
            ),
            f(
                "tied_groups",
                "Fraction of groups whose rewards all tie (no signal), before any resampling.",
            ),
            f(
                "loss",
                "The objective, summed over micro-batches (last inner step).",
            ),
            f(
                "grad_norm",
                "Global gradient norm before clipping (last inner step).",
            ),
            f("lr", "Learning rate of the step."),
            f(
                "tokens_per_s",
                "Turn tokens generated per second of rolling out and rewarding (resampled groups included).",
            ),
            f("step_seconds", "Wall-clock seconds of the whole step."),
        ])
    }

    fn check_params(&self, params: &Params) -> Vec<(String, String)> {
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
        at_least_one("max_new_tokens", params.max_new_tokens);
        if params.max_turns < 2 {
            problems.push((
                "max_turns".into(),
                "a negotiation needs at least 2 turns".into(),
            ));
        }
        if params.parties < 2 {
            problems.push((
                "parties".into(),
                "a negotiation needs at least 2 parties".into(),
            ));
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
        if params.agreement == Agreement::Marker && params.marker.trim().is_empty() {
            problems.push(("marker".into(), "`agreement: marker` needs a marker".into()));
        }
        if let Some(penalty) = &params.overlong_penalty
            && (penalty.cache == 0 || penalty.cache >= params.max_new_tokens)
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
        problems
    }

    fn check_inputs(&self, _params: &Params, inputs: &[Upstream]) -> Result<(), String> {
        match inputs {
            [_] => Ok(()),
            _ => Err("`grpo` reads one input: pairs from `persona_pairing`".into()),
        }
    }

    fn resources(&self, params: &Params) -> Vec<Resource> {
        let embedded = |name: &'static str, text: &'static str| Resource::Embedded {
            name,
            bytes: text.as_bytes(),
        };
        let mut resources = vec![match params.mode {
            Mode::SelfPlay => embedded("negotiation protocol", rollout::PROTOCOL),
            Mode::SingleAgent => embedded("single-agent request", SINGLE_AGENT),
        }];
        if params.mode == Mode::SelfPlay {
            resources.push(embedded("closing summary", rollout::SUMMARY));
            if params.agreement == Agreement::Judge {
                resources.push(embedded("agreement check", rollout::AGREEMENT));
            }
        }
        if params.reward == Reward::Judge {
            resources.push(embedded("CA rubric", RUBRIC));
        }
        resources
    }

    /// Training holds the policy, its optimiser state and often a frozen opponent: a
    /// whole GPU node's share for up to two days.
    fn cluster_resources(&self, _params: &Params) -> crate::spec::Resources {
        crate::spec::Resources {
            gpus: Some(1),
            cpus: Some(8),
            mem: Some("64G".into()),
            time: Some("2-00:00:00".into()),
            ..Default::default()
        }
    }

    fn models(&self, params: &Params) -> Vec<(&'static str, String)> {
        let mut models = vec![("policy", params.policy.clone())];
        if params.reward == Reward::Judge
            && let Some(judge) = &params.judge
            && *judge != params.policy
        {
            models.push(("judge", judge.clone()));
        }
        if params.agreement == Agreement::Judge
            && let Some(model) = &params.agreement_model
            && !models.iter().any(|(_, n)| n == model)
        {
            models.push(("agreement_model", model.clone()));
        }
        models
    }

    fn run(&self, params: &Params, ctx: &StageContext) -> Result<RecordBatch, StageError> {
        let [input] = ctx.inputs.as_slice() else {
            return Err(StageError::Failed("`grpo` needs exactly one input".into()));
        };
        let failed =
            |what: &str, e: crate::llm::LlmError| StageError::Failed(format!("{what}: {e}"));
        if !ctx.models.in_process(&params.policy) {
            return Err(StageError::Failed(format!(
                "model `{}` is an endpoint; `grpo` trains in-process models",
                params.policy
            )));
        }
        let rollout = params.rollout();
        let protocol = rollout.protocol(rollout.agent_models(), ctx)?;
        let all_parties = rollout::parties(input, params.parties)?;
        let dilemmas = table::string_column(input, "dilemma")?;
        if all_parties.is_empty() {
            return Err(StageError::Failed(format!(
                "`{}` has no pairs to train on",
                input.name
            )));
        }
        let base = ctx
            .models
            .load(&params.policy)
            .map_err(|e| failed(&params.policy, e))?;
        // In-process or an endpoint: base weights either way, never the policy's.
        let judge = match (&params.reward, &params.judge) {
            (Reward::Judge, Some(name)) => Some(Asker::open(
                ctx,
                name,
                params.batch_size,
                super::judge::default_timeout_s(),
                super::judge::default_attempts(),
            )?),
            _ => None,
        };
        let objective = Objective {
            epsilon_low: params.epsilon_low,
            epsilon_high: params.epsilon_high,
            kl_beta: params.kl_beta,
            aggregation: params.loss,
            max_sample_tokens: params.max_new_tokens * params.max_turns.div_ceil(2),
        };
        let snapshot = |model: LlamaModel| {
            Arc::new(LoadedModel {
                model,
                tokenizer: base.tokenizer.clone(),
                chat_template: base.chat_template.clone(),
                stop_tokens: base.stop_tokens.clone(),
            })
        };
        let new_optimizer = || {
            AdamWConfig::new()
                .with_weight_decay(params.weight_decay as f32)
                .with_epsilon(1e-8)
                .init()
        };
        let device = ctx
            .models
            .backend()
            .map_err(|e| failed("backend", e))?
            .device
            .clone();
        let dtype = ctx
            .models
            .spec(&params.policy)
            .map_err(|e| failed(&params.policy, e))?
            .dtype;
        let state = StateDir::new(&ctx.work_dir);
        let restored = state
            .load::<Progress>(&base.model, &device, dtype, new_optimizer())
            .map_err(|e| failed("resuming", e))?;
        // With LoRA the base stays frozen and the adapters (restored, or fresh) train.
        let trainable = |restored: Option<(LlamaModel, Option<&[NamedTensor]>)>| {
            match (&params.lora, restored) {
                (Some(spec), restored) => lora::apply(
                    base.model.clone(),
                    spec,
                    ctx.seed,
                    restored.and_then(|(_, a)| a),
                ),
                (None, Some((policy, _))) => policy,
                (None, None) => base.model.clone(),
            }
            .train()
        };
        let (mut policy, mut optimizer, mut opponent, progress) = match restored {
            Some(restored) => (
                trainable(Some((restored.policy, restored.adapters.as_deref()))),
                restored.optimizer,
                restored.opponent.map(snapshot),
                restored.progress,
            ),
            None => (trainable(None), new_optimizer(), None, Progress::default()),
        };
        let (first_step, mut metrics) = (progress.steps_done, progress.metrics);
        ctx.progress.set_total(params.steps as u64);
        if first_step > 0 {
            ctx.progress.advance(first_step as u64);
            ctx.progress.note(&format!(
                "resuming after step {first_step} of {}",
                params.steps
            ));
        }

        for step in first_step..params.steps {
            ctx.check_cancelled()?;
            let started = Instant::now();
            let current = snapshot(policy.valid().materialize());
            if params.opponent == Opponent::Policy
                || opponent.is_none()
                || step % params.opponent_refresh == 0
            {
                opponent = Some(current.clone());
            }
            let against = opponent.clone().expect("set above");

            // Roll out: `group_size` dialogues for each sampled pair.
            let mut rng = SeededRng::new(ctx.seed, &[b"grpo batch", &(step as u64).to_le_bytes()]);
            let rows: Vec<(usize, usize)> = (0..params.batch_prompts)
                .map(|slot| (slot, rng.below(all_parties.len())))
                .collect();
            let rollout_started = Instant::now();
            // Turn tokens of every group rolled out, resampled ones included.
            let generated = std::cell::Cell::new(0usize);
            let resolve = |name: &str| -> Result<Arc<LoadedModel>, StageError> {
                match name {
                    POLICY => Ok(current.clone()),
                    OPPONENT => Ok(against.clone()),
                    other => ctx.models.load(other).map_err(|e| failed(other, e)),
                }
            };
            // The groups of `rows` (slot, pair row), attempt `attempt`: tasks, dialogues
            // and rewards, `group_size` per row.
            let roll_out = |rows: &[(usize, usize)], attempt: u64| -> Result<Groups, StageError> {
                let tasks: Vec<Task> = rows
                    .iter()
                    .flat_map(|&(slot, row)| {
                        let parties = &all_parties[row];
                        let dilemma = dilemmas.value(row);
                        (0..params.group_size).map(move |sample| {
                            let mut labels: Vec<&[u8]> = vec![b"grpo dialogue"];
                            let (step, slot, sample) = (
                                (step as u64).to_le_bytes(),
                                (slot as u64).to_le_bytes(),
                                (sample as u64).to_le_bytes(),
                            );
                            let attempt = attempt.to_le_bytes();
                            labels.extend([&step[..], &slot[..], &sample[..]]);
                            if attempt != [0; 8] {
                                labels.push(&attempt[..]);
                            }
                            Task {
                                dilemma: dilemma.to_string(),
                                parties: parties.clone(),
                                seed: SeededRng::new(ctx.seed, &labels).next_u64(),
                            }
                        })
                    })
                    .collect();
                let mut dialogues: Vec<Option<Dialogue>> = vec![None; tasks.len()];
                match params.mode {
                    Mode::SelfPlay => protocol.run_with(&tasks, resolve, ctx, |i, dialogue| {
                        dialogues[i] = Some(dialogue);
                        Ok(())
                    })?,
                    Mode::SingleAgent => {
                        for (i, answer) in answers(&current, &tasks, &protocol, ctx)?
                            .into_iter()
                            .enumerate()
                        {
                            dialogues[i] = Some(answer);
                        }
                    }
                }
                let dialogues: Vec<Dialogue> = dialogues
                    .into_iter()
                    .map(|d| d.expect("every dialogue ran"))
                    .collect();
                generated.set(
                    generated.get()
                        + dialogues
                            .iter()
                            .flat_map(|d| &d.turns)
                            .map(|t| t.token_ids.len())
                            .sum::<usize>(),
                );
                let rewards = self.rewards(params, &tasks, &dialogues, judge.as_ref(), ctx)?;
                Ok(Groups {
                    tasks,
                    dialogues,
                    rewards,
                })
            };
            let Groups {
                mut tasks,
                mut dialogues,
                mut rewards,
            } = roll_out(&rows, 0)?;
            let tied_first = rewards
                .chunks(params.group_size)
                .filter(|g| advantage::group_ties(g))
                .count();
            // DAPO's dynamic sampling: groups whose rewards all tie teach nothing, so new
            // pairs replace them, up to `max_resamples` rounds.
            for attempt in 1..=params.max_resamples as u64 {
                if !params.filter_zero_std {
                    break;
                }
                let tied: Vec<usize> = rewards
                    .chunks(params.group_size)
                    .enumerate()
                    .filter(|(_, g)| advantage::group_ties(g))
                    .map(|(group, _)| group)
                    .collect();
                if tied.is_empty() {
                    break;
                }
                let again: Vec<(usize, usize)> = tied
                    .iter()
                    .map(|&group| (group, rng.below(all_parties.len())))
                    .collect();
                let fresh = roll_out(&again, attempt)?;
                for (k, &group) in tied.iter().enumerate() {
                    let (ours, theirs) = (group * params.group_size, k * params.group_size);
                    let (to, from) = (
                        ours..ours + params.group_size,
                        theirs..theirs + params.group_size,
                    );
                    tasks[to.clone()].clone_from_slice(&fresh.tasks[from.clone()]);
                    dialogues[to.clone()].clone_from_slice(&fresh.dialogues[from.clone()]);
                    rewards[to].copy_from_slice(&fresh.rewards[from]);
                }
            }
            let generated = generated.get();
            let rollout_seconds = rollout_started.elapsed().as_secs_f64();
            let advantage = advantages(&rewards, params.group_size, params.scale, params.rank);

            // Update the policy on the trained turns.
            let mut training: Vec<TrainingRow> = dialogues
                .iter()
                .enumerate()
                .flat_map(|(sample, d)| training_rows(d, sample, params.train_agents))
                .collect();
            // A group's turns at one position share their prompt, or most of it: side by
            // side in a micro-batch it runs once (`completion_logprobs`).
            training.sort_by_key(|row| (row.sample / params.group_size, row.turn, row.sample));
            let shapes: Vec<RowShape> = training
                .iter()
                .map(|r| RowShape {
                    sample: r.sample,
                    tokens: r.scored.completion.len(),
                })
                .collect();
            let totals = BatchTotals::new(&shapes);
            let mut old: Vec<Option<Tensor<2>>> =
                vec![None; training.len().div_ceil(params.micro_batch)];
            let mut reference: Vec<Option<Tensor<2>>> = vec![None; old.len()];
            let (mut loss_sum, mut clipped, mut kl_sum, mut grad_norm) = (0.0, 0.0, 0.0, 0.0);
            let lr = params.learning_rate(step);
            for inner in 0..params.inner_steps {
                let mut accumulated: Option<GradientsParams> = None;
                let (mut inner_loss, mut inner_clipped, mut inner_kl) = (0.0, 0.0, 0.0);
                for (chunk_index, (rows, shapes)) in training
                    .chunks(params.micro_batch)
                    .zip(shapes.chunks(params.micro_batch))
                    .enumerate()
                {
                    ctx.check_cancelled()?;
                    let scored: Vec<Scored> = rows.iter().map(|r| r.scored.clone()).collect();
                    let row_advantages: Vec<f32> =
                        rows.iter().map(|r| advantage[r.sample] as f32).collect();
                    if params.kl_beta > 0.0 && reference[chunk_index].is_none() {
                        reference[chunk_index] = Some(completion_logprobs(&base.model, &scored));
                    }
                    let logp = completion_logprobs(&policy, &scored);
                    if inner == 0 {
                        old[chunk_index] = Some(logp.clone().detach().without_autodiff());
                    }
                    let parts = objective.loss(
                        logp,
                        (inner > 0).then(|| old[chunk_index].clone()).flatten(),
                        reference[chunk_index].clone(),
                        &row_advantages,
                        shapes,
                        &totals,
                    );
                    inner_loss += parts.loss.clone().into_scalar::<f64>();
                    inner_clipped += parts.clipped_tokens;
                    inner_kl += parts.kl_sum;
                    let grads = GradientsParams::from_grads(parts.loss.backward(), &policy);
                    accumulated = Some(match accumulated {
                        None => grads,
                        Some(sum) => add_gradients(&policy, sum, grads),
                    });
                }
                let Some(mut grads) = accumulated else { break };
                grad_norm = clip_gradients(&policy, &mut grads, params.max_grad_norm);
                policy = optimizer.step(lr, policy, grads);
                (loss_sum, clipped, kl_sum) = (inner_loss, inner_clipped, inner_kl);
            }

            // Metrics.
            let groups: Vec<&[f64]> = rewards.chunks(params.group_size).collect();
            let trained_tokens = totals.tokens().max(1) as f64;
            metrics.reward_mean.push(stats::mean(&rewards));
            metrics.reward_std.push(stats::std_dev(&rewards));
            metrics
                .reward_min
                .push(rewards.iter().copied().fold(f64::INFINITY, f64::min));
            metrics
                .reward_max
                .push(rewards.iter().copied().fold(f64::NEG_INFINITY, f64::max));
            metrics.group_min.push(stats::mean(
                &groups
                    .iter()
                    .map(|g| g.iter().copied().fold(f64::INFINITY, f64::min))
                    .collect::<Vec<_>>(),
            ));
            metrics.agreement_rate.push(
                dialogues.iter().filter(|d| d.agreed).count() as f64 / dialogues.len() as f64,
            );
            metrics.turns.push(stats::mean(
                &dialogues
                    .iter()
                    .map(|d| d.turns.len() as f64)
                    .collect::<Vec<_>>(),
            ));
            metrics.kl.push(kl_sum / trained_tokens);
            metrics.clip_fraction.push(clipped / trained_tokens);
            // Before any resampling: how often groups carried no signal.
            metrics
                .tied_groups
                .push(tied_first as f64 / groups.len() as f64);
            metrics.loss.push(loss_sum);
            metrics.grad_norm.push(grad_norm);
            metrics.lr.push(lr);
            metrics
                .tokens_per_s
                .push(generated as f64 / rollout_seconds.max(1e-9));
            metrics.step_seconds.push(started.elapsed().as_secs_f64());
            ctx.progress.advance(1);
            ctx.progress.message(&format!(
                "reward {:.3} (group min {:.3})",
                metrics.reward_mean[step], metrics.group_min[step]
            ));
            let done = step + 1;
            if params.save_every > 0 && done % params.save_every == 0 && done < params.steps {
                // A frozen opponent that outlives the step is part of the state.
                let frozen = (params.opponent == Opponent::Frozen && params.opponent_refresh > 1)
                    .then(|| opponent.as_ref().map(|o| &o.model))
                    .flatten();
                let progress = Progress {
                    steps_done: done,
                    metrics,
                };
                let adapters = params
                    .lora
                    .as_ref()
                    .map(|spec| lora::adapters(&policy, spec));
                state
                    .save(
                        &base,
                        &policy.valid().materialize(),
                        &optimizer,
                        frozen,
                        adapters.as_deref(),
                        &progress,
                    )
                    .map_err(|e| failed("saving the training state", e))?;
                metrics = progress.metrics;
            }
        }
        save_hf_folder(
            &policy.valid().materialize(),
            &base.tokenizer,
            base.chat_template.as_ref(),
            &ctx.output_dir().join("checkpoint"),
        )
        .map_err(|e| failed("saving the checkpoint", e))?;

        let floats = |v: &Vec<f64>| -> ArrayRef { Arc::new(Float64Array::from(v.clone())) };
        let m = &metrics;
        let columns: Vec<ArrayRef> = vec![
            Arc::new(UInt32Array::from_iter_values(1..=params.steps as u32)),
            floats(&m.reward_mean),
            floats(&m.reward_std),
            floats(&m.reward_min),
            floats(&m.reward_max),
            floats(&m.group_min),
            floats(&m.agreement_rate),
            floats(&m.turns),
            floats(&m.kl),
            floats(&m.clip_fraction),
            floats(&m.tied_groups),
            floats(&m.loss),
            floats(&m.grad_norm),
            floats(&m.lr),
            floats(&m.tokens_per_s),
            floats(&m.step_seconds),
        ];
        table::batch(&Stage::output_schema(self), columns)
    }
}

impl Grpo {
    /// One reward per dialogue.
    fn rewards(
        &self,
        params: &Params,
        tasks: &[Task],
        dialogues: &[Dialogue],
        judge: Option<&Asker>,
        ctx: &StageContext,
    ) -> Result<Vec<f64>, StageError> {
        let scores: Vec<f64> = match &params.reward {
            Reward::Contains(text) => dialogues
                .iter()
                .map(|d| {
                    let trained: Vec<&str> = d
                        .turns
                        .iter()
                        .filter(|t| params.train_agents == TrainAgents::All || t.speaker == 0)
                        .map(|t| t.text.as_str())
                        .collect();
                    let hits: usize = trained
                        .iter()
                        .map(|t| t.matches(text.as_str()).count())
                        .sum();
                    hits as f64 / trained.len().max(1) as f64
                })
                .collect(),
            Reward::Judge => {
                let judge = judge.expect("checked: `reward: judge` has a judge");
                let cases: Vec<Case> = tasks
                    .iter()
                    .zip(dialogues)
                    .map(|(task, d)| Case {
                        dialogue_id: String::new(),
                        group_id: String::new(),
                        sample: 0,
                        dilemma: task.dilemma.clone(),
                        parties: task
                            .parties
                            .iter()
                            .map(|p| JudgedParty {
                                name: p.name.clone(),
                                profile: format!("{} ({})", p.name, p.persona),
                            })
                            .collect(),
                        transcript: match params.mode {
                            Mode::SelfPlay => transcript(task, &d.turns),
                            Mode::SingleAgent => d.turns[0].text.clone(),
                        },
                        summary: d.summary.text.clone(),
                        agreed: d.agreed,
                    })
                    .collect();
                let questions = cases
                    .iter()
                    .map(|c| c.rubric_question(RUBRIC))
                    .collect::<Result<Vec<_>, _>>()?;
                // A reply without a rating (an endpoint's) earns nothing.
                judge
                    .ask(&questions, &DIGITS, ctx)?
                    .into_iter()
                    .map(|d| d.map_or(0.0, |d| expectation(&d)))
                    .collect()
            }
        };
        let overlong = |d: &Dialogue| -> f64 {
            let Some(OverlongPenalty { cache }) = &params.overlong_penalty else {
                return 0.0;
            };
            let (limit, cache) = (params.max_new_tokens as f64, (*cache).max(1) as f64);
            let penalties: Vec<f64> = d
                .turns
                .iter()
                .filter(|t| params.train_agents == TrainAgents::All || t.speaker == 0)
                .map(|t| overlong_penalty(t.token_ids.len(), limit, cache))
                .collect();
            if penalties.is_empty() {
                0.0
            } else {
                stats::mean(&penalties)
            }
        };
        Ok(scores
            .into_iter()
            .zip(dialogues)
            .map(|(score, d)| {
                let earned = if d.agreed || params.reward != Reward::Judge {
                    score
                } else {
                    params.no_agreement_reward
                };
                earned + overlong(d)
            })
            .collect())
    }
}

/// Each task's single-agent answer, as a one-turn "dialogue" that counts as agreed (so
/// the judge rates it) with an empty summary.
fn answers(
    policy: &LoadedModel,
    tasks: &[Task],
    protocol: &super::dialogue::Protocol,
    ctx: &StageContext,
) -> Result<Vec<Dialogue>, StageError> {
    let failed = |e: crate::llm::LlmError| StageError::Failed(format!("policy: {e}"));
    let mut requests = Vec::with_capacity(tasks.len());
    for task in tasks {
        let personas: Vec<String> = task.parties.iter().map(|p| p.name.clone()).collect();
        let question = super::judge::render(
            SINGLE_AGENT,
            minijinja::context! { dilemma => task.dilemma.clone(), personas => personas },
        )?;
        let text = policy
            .chat_prompt(&[crate::llm::chat::Message::new("user", &question)])
            .map_err(failed)?;
        requests.push(crate::llm::generate::Request {
            prompt: policy.tokenizer.encode(&text).map_err(failed)?,
            sampling: protocol.sampling,
            max_new_tokens: protocol.max_new_tokens,
            seed: SeededRng::new(task.seed, &[b"answer"]).next_u64(),
            stop_strings: Vec::new(),
            top_logprobs: 0,
        });
    }
    let mut out = Vec::with_capacity(tasks.len());
    for chunk in requests.chunks(protocol.batch_size.max(1)) {
        ctx.check_cancelled()?;
        let completions = crate::llm::generate::generate(
            &policy.model,
            &policy.tokenizer,
            chunk,
            &policy.stop_tokens,
            |_, _| {},
        )
        .map_err(failed)?;
        for (request, completion) in chunk.iter().zip(completions) {
            let answer = super::dialogue::Utterance {
                speaker: 0,
                text: completion.text.trim().to_string(),
                prompt_ids: request.prompt.clone(),
                token_ids: completion.tokens,
                logprobs: completion.logprobs,
                p_agree: None,
            };
            out.push(Dialogue {
                summary: super::dialogue::Utterance {
                    text: answer.text.clone(),
                    prompt_ids: Vec::new(),
                    token_ids: Vec::new(),
                    logprobs: Vec::new(),
                    ..answer.clone()
                },
                turns: vec![answer],
                agreed: true,
            });
        }
    }
    Ok(out)
}

/// DAPO's soft overlong punishment of a turn of `tokens` tokens: 0 up to `limit - cache`,
/// then falling linearly to -1 at `limit`.
fn overlong_penalty(tokens: usize, limit: f64, cache: f64) -> f64 {
    ((limit - cache - tokens as f64) / cache).clamp(-1.0, 0.0)
}

/// The sum of two sets of gradients of `model`'s parameters.
fn add_gradients(
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
fn clip_gradients(model: &LlamaModel, grads: &mut GradientsParams, max_norm: f64) -> f64 {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlong_turns_lose_reward_linearly_over_the_cache() {
        assert_eq!(overlong_penalty(10, 64.0, 16.0), 0.0);
        assert_eq!(overlong_penalty(48, 64.0, 16.0), 0.0);
        assert_eq!(overlong_penalty(56, 64.0, 16.0), -0.5);
        assert_eq!(overlong_penalty(64, 64.0, 16.0), -1.0);
    }

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
