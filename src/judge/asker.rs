//! Asking a judge questions whose reply is one of a few digits: a rating 0–5, or which of
//! two outcomes is better (1 or 2).
//!
//! An in-process judge answers in batches, read from its next-token distribution; an
//! endpoint judge answers one request at a time through [`super::openai::rate`]. Either
//! way a question gets the distribution over the offered digits, or `None` when an
//! endpoint's reply held none of them. It does not cache: callers key and cache rows.

use std::sync::Arc;

use crate::llm::chat::Message;
use crate::llm::choice::{answer_distribution, answer_tokens, next_token_logprobs};
use crate::llm::endpoint::Endpoint;
use crate::llm::loaded::LoadedModel;
use crate::stage::{StageContext, StageError};

use super::openai::{self, Rating};

/// A judge model, opened for asking.
pub enum Asker {
    Local {
        name: String,
        model: Arc<LoadedModel>,
        batch: usize,
    },
    Endpoint {
        name: String,
        endpoint: Endpoint,
    },
}

impl Asker {
    /// Opens spec model `name`: loaded in-process (questions answered `batch` at a time),
    /// or its endpoint with `timeout_s` per request and `attempts` tries.
    pub fn open(
        ctx: &StageContext,
        name: &str,
        batch: usize,
        timeout_s: f64,
        attempts: u32,
    ) -> Result<Self, StageError> {
        if ctx.models.in_process(name) {
            let model = ctx
                .models
                .load(name)
                .map_err(|e| StageError::Failed(format!("judge `{name}`: {e}")))?;
            Ok(Asker::Local {
                name: name.into(),
                model,
                batch: batch.max(1),
            })
        } else {
            Ok(Asker::Endpoint {
                name: name.into(),
                endpoint: crate::stages::judge::endpoint(ctx, name, timeout_s, attempts)?,
            })
        }
    }

    /// For each question, the distribution over `digits` (each a digit 0–5), or `None`
    /// when the reply held none of them.
    pub fn ask(
        &self,
        questions: &[String],
        digits: &[&str],
        ctx: &StageContext,
    ) -> Result<Vec<Option<Vec<f64>>>, StageError> {
        match self {
            Asker::Local { name, model, batch } => {
                let failed =
                    |e: crate::llm::LlmError| StageError::Failed(format!("judge `{name}`: {e}"));
                let answers = answer_tokens(&model.tokenizer, digits).map_err(failed)?;
                let mut out = Vec::with_capacity(questions.len());
                for chunk in questions.chunks(*batch) {
                    ctx.check_cancelled()?;
                    let mut prompts = Vec::with_capacity(chunk.len());
                    for question in chunk {
                        let text = model
                            .chat_prompt(&[Message::new("user", question)])
                            .map_err(failed)?;
                        prompts.push(model.tokenizer.encode(&text).map_err(failed)?);
                    }
                    for row in next_token_logprobs(&model.model, &prompts).map_err(failed)? {
                        out.push(Some(answer_distribution(&row, &answers, 1.0)));
                    }
                }
                Ok(out)
            }
            Asker::Endpoint { name, endpoint } => {
                let answers = Self::ask_endpoint(name, endpoint, questions, digits, ctx);
                for notice in endpoint.take_notices() {
                    ctx.progress.note(&format!("{}: {notice}", ctx.name));
                }
                answers
            }
        }
    }

    fn ask_endpoint(
        name: &str,
        endpoint: &Endpoint,
        questions: &[String],
        digits: &[&str],
        ctx: &StageContext,
    ) -> Result<Vec<Option<Vec<f64>>>, StageError> {
        questions
            .iter()
            .map(|question| {
                ctx.check_cancelled()?;
                let rating = openai::rate(endpoint, &[Message::new("user", question)])
                    .map_err(|e| StageError::Failed(format!("judge `{name}`: {e}")))?;
                let Rating::Distribution(over_digits) = rating else {
                    return Ok(None);
                };
                let mass: Vec<f64> = digits
                    .iter()
                    .map(|d| d.parse::<usize>().map_or(0.0, |d| over_digits[d.min(5)]))
                    .collect();
                let total: f64 = mass.iter().sum();
                Ok((total > 0.0).then(|| mass.iter().map(|m| m / total).collect()))
            })
            .collect()
    }
}
