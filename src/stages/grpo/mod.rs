//! `grpo`: trains the policy online with group-relative policy optimisation.
//!
//! Each step samples `batch_prompts` pairs, holds `group_size` dialogues per pair with the
//! current policy as the first agent (the protocol of [`crate::dialogue`]) against an
//! `opponent`, rewards each dialogue (the judge's Collective Agency score, or a
//! programmatic reward), turns rewards into group-relative advantages and updates the
//! policy on the tokens it generated ([`crate::train`]). The output is one metrics row
//! per step ([`metrics::StepMetrics`]) and the trained checkpoint.
//!
//! The parts: [`params`] (what the spec sets), [`groups`] (a step's dialogues and their
//! resampling), [`reward`], [`trainer`] (the state and one optimiser step) and
//! [`metrics`].

pub mod groups;
pub mod metrics;
pub mod params;
pub mod reward;
pub mod trainer;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;

use crate::dialogue::templates::{AGREEMENT, PROTOCOL, SINGLE_AGENT, SUMMARY};
use crate::dialogue::{Agreement, Templates, parties};
use crate::judge::{Asking, JudgeModel, rubrics};
use crate::stage::{Resource, Resources, Stage, StageContext, StageError, Upstream};
use crate::table;
use groups::{OPPONENT, POLICY, Rollouts};
use metrics::StepMetrics;
use trainer::Trainer;

pub use params::{Mode, Opponent, OverlongPenalty, Params, Reward, Schedule};

/// GRPO training.
pub struct Grpo;

impl Stage for Grpo {
    type Params = Params;
    const KIND: &'static str = "grpo";
    const VERSION: u32 = 1;
    const SUMMARY: &'static str =
        "GRPO training of a policy on its negotiation turns; one metrics row per step.";

    fn output_schema(&self) -> SchemaRef {
        StepMetrics::schema()
    }

    fn check_params(&self, params: &Params) -> Vec<(String, String)> {
        params.problems()
    }

    fn check_inputs(&self, _params: &Params, inputs: &[Upstream]) -> Result<(), String> {
        match inputs {
            [_] => Ok(()),
            _ => Err("`grpo` reads one input: pairs from `persona_pairing`".into()),
        }
    }

    fn resources(&self, params: &Params) -> Vec<Resource> {
        let mut resources = vec![match params.mode {
            Mode::SelfPlay => Resource::embedded("negotiation protocol", PROTOCOL),
            Mode::SingleAgent => Resource::embedded("single-agent request", SINGLE_AGENT),
        }];
        if params.mode == Mode::SelfPlay {
            resources.push(Resource::embedded("closing summary", SUMMARY));
            if params.dialogue.agreement == Agreement::Judge {
                resources.push(Resource::embedded("agreement check", AGREEMENT));
            }
        }
        if params.reward == Reward::Judge {
            resources.push(Resource::embedded("CA rubric", rubrics::COLLECTIVE_AGENCY));
        }
        resources
    }

    /// Training holds the policy, its optimiser state and often a frozen opponent: a
    /// whole GPU node's share for up to two days.
    fn cluster_resources(&self, _params: &Params) -> Resources {
        Resources {
            gpus: Some(1),
            cpus: Some(8),
            mem: Some("64G".into()),
            time: Some("2-00:00:00".into()),
            ..Default::default()
        }
    }

    /// An `agreement_model` naming the policy (its base weights) is the default.
    fn spelled_defaults(&self, params: &Params) -> Vec<&'static str> {
        if params.dialogue.agreement_model.as_ref() == Some(&params.policy) {
            vec!["agreement_model"]
        } else {
            Vec::new()
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
        if let Some(model) = params.dialogue.named_agreement_model()
            && !models.iter().any(|(_, n)| n == model)
        {
            models.push(("agreement_model", model.to_string()));
        }
        models
    }

    fn run(&self, params: &Params, ctx: &StageContext) -> Result<RecordBatch, StageError> {
        let [input] = ctx.inputs.as_slice() else {
            return Err(StageError::Failed("`grpo` needs exactly one input".into()));
        };
        if !ctx.models.in_process(&params.policy) {
            return Err(StageError::Failed(format!(
                "model `{}` is an endpoint; `grpo` trains in-process models",
                params.policy
            )));
        }
        let pairs = parties(input, params.parties)?;
        if pairs.is_empty() {
            return Err(StageError::Failed(format!(
                "`{}` has no pairs to train on",
                input.name
            )));
        }
        let agents = std::iter::once(POLICY.to_string())
            .chain(std::iter::repeat_n(
                OPPONENT.to_string(),
                params.parties - 1,
            ))
            .collect();
        let protocol = params
            .dialogue
            .protocol(agents, &params.policy, Templates::builtin());
        // In-process or an endpoint: base weights either way, never the policy's.
        let judge = match (&params.reward, &params.judge) {
            (Reward::Judge, Some(name)) => {
                let asking = Asking {
                    batch_size: params.dialogue.batch_size,
                    ..Asking::default()
                };
                Some(JudgeModel::open(ctx, name, asking)?)
            }
            _ => None,
        };
        let rollouts = Rollouts {
            params,
            protocol: &protocol,
            parties: &pairs,
            dilemmas: table::string_column(input, "dilemma")?,
            judge: judge.as_ref(),
            ctx,
        };
        let (mut trainer, mut progress) = Trainer::start(params, ctx)?;
        ctx.progress.set_total(params.steps as u64);
        if progress.steps_done > 0 {
            ctx.progress.advance(progress.steps_done as u64);
            ctx.progress.note(&format!(
                "resuming after step {} of {}",
                progress.steps_done, params.steps
            ));
        }
        for step in progress.steps_done..params.steps {
            ctx.check_cancelled()?;
            let metrics = trainer.step(step, &rollouts)?;
            progress.metrics.push(metrics);
            progress.steps_done = step + 1;
            ctx.progress.advance(1);
            ctx.progress.message(&format!(
                "reward {:.3} (group min {:.3})",
                metrics.reward_mean, metrics.group_min
            ));
            let done = progress.steps_done;
            if params.save_every > 0 && done % params.save_every == 0 && done < params.steps {
                trainer.save(&progress)?;
            }
        }
        trainer.export(&ctx.output_dir().join("checkpoint"))?;
        table::batch(
            &StepMetrics::schema(),
            StepMetrics::columns(&progress.metrics),
        )
    }
}
