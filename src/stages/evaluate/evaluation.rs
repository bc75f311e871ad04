//! What the suites share while they run: the models, the judge (asked through the row
//! cache), each item's seeds, single-agent answers, and the pairwise rule against the
//! baseline.

use std::cell::OnceCell;
use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;

use super::Params;
use crate::dialogue::{Answering, answer_alone, thinking};
use crate::judge::{Asking, JudgeModel, Verdict, Winner};
use crate::llm::loaded::LoadedModel;
use crate::llm::sampling::Sampling;
use crate::seed::SeededRng;
use crate::stage::{Stage, StageContext, StageError};
use crate::store::row_cache::RowKey;

/// Per item: 1/0 for a win and for a loss against the baseline (`None`: a reply held no
/// verdict).
pub type WinLoss = (Option<f64>, Option<f64>);

/// A model as evaluation keys record it: its weights and the backend it runs on.
#[derive(Debug, Clone, Serialize)]
pub struct ModelIdentity {
    model: Value,
    backend: Option<&'static str>,
}

/// What an answer depends on.
#[derive(Serialize)]
struct AnswerKey<'a> {
    version: u32,
    model: &'a ModelIdentity,
    prompt: &'a str,
    sampling: Sampling,
    max_new_tokens: usize,
    seed: u64,
}

impl RowKey for AnswerKey<'_> {
    const WHAT: &'static str = "evaluate answer";
}

/// What a judge's rating of one question depends on.
#[derive(Serialize)]
struct JudgeQuestionKey<'a> {
    judge: &'a ModelIdentity,
    question: &'a str,
    digits: &'a [&'a str],
}

impl RowKey for JudgeQuestionKey<'_> {
    const WHAT: &'static str = "evaluate judge question";
}

pub struct Evaluation<'a, 'c> {
    pub params: &'a Params,
    pub ctx: &'a StageContext<'c>,
    /// Opened when first asked, so a run whose judgements are all cached loads no judge.
    judge: OnceCell<JudgeModel>,
}

impl<'a, 'c> Evaluation<'a, 'c> {
    pub fn new(params: &'a Params, ctx: &'a StageContext<'c>) -> Self {
        Self {
            params,
            ctx,
            judge: OnceCell::new(),
        }
    }

    pub fn load(&self, name: &str) -> Result<Arc<LoadedModel>, StageError> {
        self.ctx
            .models
            .load(name)
            .map_err(|e| StageError::Failed(format!("model `{name}`: {e}")))
    }

    /// The identity of a model in row keys.
    pub fn identity(&self, name: &str) -> ModelIdentity {
        ModelIdentity {
            model: self.ctx.models.identity_seen(name),
            backend: self.ctx.models.backend_name_of(name).ok().flatten(),
        }
    }

    /// The seed of item `item` in repeat `repeat` (shared by every model: their samples
    /// differ only by the model).
    pub fn seed(&self, what: &[u8], item: &str, repeat: usize) -> u64 {
        SeededRng::new(
            self.ctx.seed,
            &[what, item.as_bytes(), &(repeat as u64).to_le_bytes()],
        )
        .next_u64()
    }

    fn judge(&self) -> Result<&JudgeModel, StageError> {
        if let Some(judge) = self.judge.get() {
            return Ok(judge);
        }
        let asking = Asking {
            batch_size: self.params.dialogue.batch_size,
            timeout_s: self.params.timeout_s,
            attempts: self.params.attempts,
            ..Asking::default()
        };
        let judge = JudgeModel::open(self.ctx, self.params.judge(), asking)?;
        Ok(self.judge.get_or_init(|| judge))
    }

    /// Distributions over `answers` for `questions` (`None` where a reply held none),
    /// cached per question.
    pub fn ask_judge(
        &self,
        questions: &[String],
        answers: &[&str],
    ) -> Result<Vec<Option<Vec<f64>>>, StageError> {
        let identity = self.identity(self.params.judge());
        let keys: Vec<JudgeQuestionKey> = questions
            .iter()
            .map(|question| JudgeQuestionKey {
                judge: &identity,
                question,
                digits: answers,
            })
            .collect();
        self.ctx
            .get_or_compute(&keys, self.params.dialogue.batch_size, |positions| {
                let asked: Vec<String> = positions.iter().map(|&i| questions[i].clone()).collect();
                Ok(self
                    .judge()?
                    .rate(&asked, answers, self.ctx)?
                    .into_iter()
                    .map(|rating| rating.distribution().map(<[f64]>::to_vec))
                    .collect())
            })
    }

    /// Win and loss against the baseline for each (ours, baseline's) question pair: the
    /// judge is asked with ours first and with ours second (the pairwise rule of
    /// [`crate::judge::verdict`]).
    pub fn pairwise(
        &self,
        first_ours: &[String],
        first_theirs: &[String],
    ) -> Result<Vec<WinLoss>, StageError> {
        let questions: Vec<String> = first_ours.iter().chain(first_theirs).cloned().collect();
        let answers = self.ask_judge(&questions, &["1", "2"])?;
        let n = first_ours.len();
        let first_preferred = |k: usize| answers[k].as_ref().map(|d| d[0]);
        Ok((0..n)
            .map(|i| {
                match Verdict::from_orders(first_preferred(i), first_preferred(n + i)).winner() {
                    Winner::A => (Some(1.0), Some(0.0)),
                    Winner::B => (Some(0.0), Some(1.0)),
                    Winner::Inconsistent => (Some(0.0), Some(0.0)),
                    Winner::Unparseable => (None, None),
                }
            })
            .collect())
    }

    /// Answers of `model` to `prompts` (chat user messages) with `seeds`, cached per row
    /// as the model wrote them, and given back without their reasoning (what is rated).
    pub fn answers(
        &self,
        model: &str,
        prompts: &[String],
        seeds: &[u64],
    ) -> Result<Vec<String>, StageError> {
        let identity = self.identity(model);
        let how = Answering {
            sampling: self.params.dialogue.sampling(),
            max_new_tokens: self.params.dialogue.max_new_tokens,
            batch_size: self.params.dialogue.batch_size,
        };
        let keys: Vec<AnswerKey> = prompts
            .iter()
            .zip(seeds)
            .map(|(prompt, &seed)| AnswerKey {
                version: super::Evaluate::VERSION,
                model: &identity,
                prompt,
                sampling: how.sampling,
                max_new_tokens: how.max_new_tokens,
                seed,
            })
            .collect();
        let written: Vec<String> = self
            .ctx
            .get_or_compute(&keys, how.batch_size, |positions| {
                let policy = self.load(model)?;
                let asked: Vec<String> = positions.iter().map(|&i| prompts[i].clone()).collect();
                let seeds: Vec<u64> = positions.iter().map(|&i| seeds[i]).collect();
                let answers = answer_alone(&policy, model, &asked, &seeds, how, self.ctx)?;
                Ok(answers.into_iter().map(|a| a.text).collect())
            })?;
        Ok(written
            .iter()
            .map(|text| thinking::visible(text).into_owned())
            .collect())
    }
}
