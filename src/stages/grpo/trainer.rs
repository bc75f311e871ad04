//! The training state of a `grpo` stage and one optimiser step on it.
//!
//! The trainer holds the policy being trained (all weights, or LoRA adapters on frozen
//! base weights), its optimiser and the frozen opponent. It starts fresh or from the state
//! an interrupted run saved, and each [`Trainer::step`] rolls out the step's groups,
//! turns rewards into advantages and updates the policy on its turns.

use std::sync::Arc;
use std::time::Instant;

use burn::module::Module;
use burn::optim::{AdamWConfig, ModuleOptimizer};

use super::groups::Rollouts;
use super::metrics::{Observed, Progress, StepMetrics};
use super::params::{Opponent, Params};
use crate::llm::export::{NamedTensor, save_hf_folder};
use crate::llm::loaded::LoadedModel;
use crate::llm::{LlamaModel, LlmError};
use crate::stage::{StageContext, StageError};
use crate::train::advantage::advantages;
use crate::train::checkpoint::StateDir;
use crate::train::lora;
use crate::train::objective::Objective;
use crate::train::sequences::{TrainingRow, training_rows};
use crate::train::update::Update;

fn failed(what: &str, e: LlmError) -> StageError {
    StageError::Failed(format!("{what}: {e}"))
}

pub struct Trainer<'a> {
    params: &'a Params,
    ctx: &'a StageContext<'a>,
    /// The base model: the weights training starts from, and the KL reference.
    base: Arc<LoadedModel>,
    objective: Objective,
    state: StateDir,
    policy: LlamaModel,
    optimizer: ModuleOptimizer,
    /// The frozen opponent, once the first step has set it.
    opponent: Option<Arc<LoadedModel>>,
}

impl<'a> Trainer<'a> {
    /// The trainer of `params`, from the state an interrupted run saved if there is one,
    /// and the progress that state records.
    pub fn start(
        params: &'a Params,
        ctx: &'a StageContext<'a>,
    ) -> Result<(Self, Progress), StageError> {
        let base = ctx
            .models
            .load(&params.policy)
            .map_err(|e| failed(&params.policy, e))?;
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
            .load::<Progress>(&base.model, &device, dtype, new_optimizer(params))
            .map_err(|e| failed("resuming", e))?;
        let mut trainer = Trainer {
            params,
            ctx,
            objective: params.objective(),
            state,
            policy: base.model.clone(),
            optimizer: new_optimizer(params),
            opponent: None,
            base,
        };
        let progress = match restored {
            Some(restored) => {
                trainer.policy =
                    trainer.trainable(Some(restored.policy), restored.adapters.as_deref());
                trainer.optimizer = restored.optimizer;
                trainer.opponent = restored.opponent.map(|m| trainer.snapshot(m));
                restored.progress
            }
            None => {
                trainer.policy = trainer.trainable(None, None);
                Progress::default()
            }
        };
        Ok((trainer, progress))
    }

    /// The model that trains: with LoRA, adapters (restored, or fresh) on the frozen base;
    /// otherwise the restored policy or the base's weights.
    fn trainable(
        &self,
        restored: Option<LlamaModel>,
        adapters: Option<&[NamedTensor]>,
    ) -> LlamaModel {
        let model = match (&self.params.lora, restored) {
            (Some(spec), _) => lora::apply(self.base.model.clone(), spec, self.ctx.seed, adapters),
            (None, Some(policy)) => policy,
            (None, None) => self.base.model.clone(),
        };
        model.train()
    }

    /// `model` with the base's tokenizer, ready to generate.
    fn snapshot(&self, model: LlamaModel) -> Arc<LoadedModel> {
        Arc::new(LoadedModel {
            model,
            tokenizer: self.base.tokenizer.clone(),
            chat_template: self.base.chat_template.clone(),
            chat_template_kwargs: self.base.chat_template_kwargs.clone(),
            stop_tokens: self.base.stop_tokens.clone(),
        })
    }

    /// One optimiser step, `step` counted from 0.
    pub fn step(&mut self, step: usize, rollouts: &Rollouts) -> Result<StepMetrics, StageError> {
        let params = self.params;
        let started = Instant::now();
        let current = self.snapshot(self.policy.valid().materialize());
        if params.opponent == Opponent::Policy
            || self.opponent.is_none()
            || step % params.opponent_refresh == 0
        {
            self.opponent = Some(current.clone());
        }
        let opponent = self.opponent.clone().expect("set above");
        let groups = rollouts.step(step, &current, &opponent)?;
        let rollout_seconds = started.elapsed().as_secs_f64();
        let advantage = advantages(
            &groups.rewards,
            params.group_size,
            params.scale,
            params.rank,
        );

        let mut training: Vec<TrainingRow> = groups
            .dialogues
            .iter()
            .enumerate()
            .flat_map(|(sample, d)| training_rows(d, sample, params.train_agents))
            .collect();
        // A group's turns at one position share their prompt, or most of it: side by side
        // in a micro-batch it runs once (`completion_logprobs`).
        training.sort_by_key(|row| (row.sample / params.group_size, row.turn, row.sample));
        let lr = params.learning_rate(step);
        let update = Update {
            step: step + 1,
            objective: &self.objective,
            micro_batch: params.micro_batch,
            inner_steps: params.inner_steps,
            max_grad_norm: params.max_grad_norm,
            lr,
            reference: (params.kl_beta > 0.0).then_some(&self.base.model),
        };
        // Moved out (the base's weights stand in), so the optimiser owns the only copy.
        let policy = std::mem::replace(&mut self.policy, self.base.model.clone());
        let (policy, measured) =
            update.run(policy, &mut self.optimizer, &training, &advantage, || {
                self.ctx.check_cancelled()
            })?;
        self.policy = policy;
        Ok(StepMetrics::of(&Observed {
            step,
            rewards: &groups.rewards,
            group_size: params.group_size,
            dialogues: &groups.dialogues,
            tied_first: groups.tied_first,
            update: measured,
            lr,
            generated: groups.generated,
            rollout_seconds,
            step_seconds: started.elapsed().as_secs_f64(),
        }))
    }

    /// Saves the training state after the steps `progress` records, so an interruption
    /// resumes from here.
    pub fn save(&self, progress: &Progress) -> Result<(), StageError> {
        let params = self.params;
        // A frozen opponent that outlives the step is part of the state.
        let frozen = (params.opponent == Opponent::Frozen && params.opponent_refresh > 1)
            .then(|| self.opponent.as_ref().map(|o| &o.model))
            .flatten();
        let adapters = params
            .lora
            .as_ref()
            .map(|spec| lora::adapters(&self.policy, spec));
        self.state
            .save(
                &self.base,
                &self.policy.valid().materialize(),
                &self.optimizer,
                frozen,
                adapters.as_deref(),
                progress,
            )
            .map_err(|e| failed("saving the training state", e))
    }

    /// Writes the trained model (adapters merged in) as a Hugging Face folder.
    pub fn export(&self, folder: &std::path::Path) -> Result<(), StageError> {
        save_hf_folder(
            &self.policy.valid().materialize(),
            &self.base.tokenizer,
            self.base.chat_template.as_ref(),
            folder,
        )
        .map_err(|e| failed("saving the checkpoint", e))
    }
}

fn new_optimizer(params: &Params) -> ModuleOptimizer {
    AdamWConfig::new()
        .with_weight_decay(params.weight_decay as f32)
        .with_epsilon(1e-8)
        .init()
}
