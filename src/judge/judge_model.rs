//! Asking a judge model: the one way every stage that judges asks.
//!
//! A judge is a spec model, in-process or behind an OpenAI-compatible endpoint. It gets
//! two kinds of question: rating questions, whose reply is one of a few offered answers
//! (a 0–5 rating, or 1 or 2), answered with a distribution over them ([`Rating`]); and
//! requests for a short explanation, answered greedily. An in-process judge answers
//! `batch_size` questions at once from its next-token distribution; an endpoint judge
//! sends `concurrency` requests at a time, each with a timeout and retries (spread over
//! the model's URLs by [`crate::llm::endpoint`]).
//!
//! It does not cache: callers key and cache their rows, handing questions over in chunks
//! of [`JudgeModel::batch`] so that an interruption loses at most one chunk.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use super::openai;
use super::rating::Rating;
use crate::llm::LlmError;
use crate::llm::chat::Message;
use crate::llm::endpoint::{Endpoint, EndpointError};
use crate::llm::generate::Request;
use crate::llm::loaded::LoadedModel;
use crate::llm::sampling::Sampling;
use crate::stage::{StageContext, StageError};

/// Seconds one endpoint request may take, by default.
pub fn default_timeout_s() -> f64 {
    120.0
}

/// Tries per endpoint request, the first included, by default.
pub fn default_attempts() -> u32 {
    4
}

/// Endpoint requests in flight at once, by default.
pub fn default_concurrency() -> usize {
    4
}

/// Why a `timeout_s` cannot be used, if it cannot.
pub fn timeout_problem(timeout_s: f64) -> Option<String> {
    (!(timeout_s.is_finite() && timeout_s > 0.0 && timeout_s <= 86_400.0))
        .then(|| "must be a number of seconds in (0, 86400]".into())
}

/// How a judge is asked: its batch in-process, its concurrency, timeout and tries behind
/// an endpoint.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Asking {
    pub batch_size: usize,
    pub concurrency: usize,
    pub timeout_s: f64,
    pub attempts: u32,
}

impl Default for Asking {
    fn default() -> Self {
        Self {
            batch_size: 16,
            concurrency: default_concurrency(),
            timeout_s: default_timeout_s(),
            attempts: default_attempts(),
        }
    }
}

enum Provider {
    InProcess {
        model: Arc<LoadedModel>,
        batch_size: usize,
    },
    Endpoint {
        endpoint: Endpoint,
        concurrency: usize,
    },
}

/// A judge model, opened for asking.
pub struct JudgeModel {
    name: String,
    provider: Provider,
}

/// The endpoint of spec model `name`, with a per-request timeout and tries.
pub fn open_endpoint(
    ctx: &StageContext,
    name: &str,
    timeout_s: f64,
    attempts: u32,
) -> Result<Endpoint, StageError> {
    let spec = ctx
        .models
        .spec(name)
        .map_err(|e| StageError::Failed(e.to_string()))?;
    let timeout = Duration::from_secs_f64(timeout_s.max(0.001));
    Endpoint::new(name, spec, timeout, attempts).map_err(|e| StageError::Failed(e.to_string()))
}

impl JudgeModel {
    /// Opens spec model `name`: loaded in-process, or its endpoint.
    pub fn open(ctx: &StageContext, name: &str, asking: Asking) -> Result<Self, StageError> {
        let provider = if ctx.models.in_process(name) {
            let model = ctx
                .models
                .load(name)
                .map_err(|e| StageError::Failed(format!("judge `{name}`: {e}")))?;
            Provider::InProcess {
                model,
                batch_size: asking.batch_size.max(1),
            }
        } else {
            Provider::Endpoint {
                endpoint: open_endpoint(ctx, name, asking.timeout_s, asking.attempts)?,
                concurrency: asking.concurrency.max(1),
            }
        };
        Ok(Self {
            name: name.to_string(),
            provider,
        })
    }

    /// How many questions to hand over at once: the in-process batch, or the endpoint's
    /// concurrency.
    pub fn batch(&self) -> usize {
        match &self.provider {
            Provider::InProcess { batch_size, .. } => *batch_size,
            Provider::Endpoint { concurrency, .. } => *concurrency,
        }
    }

    /// For each question (a user message), the distribution over `answers` (each one
    /// character), or the reply when it held none of them.
    pub fn rate(
        &self,
        questions: &[String],
        answers: &[&str],
        ctx: &StageContext,
    ) -> Result<Vec<Rating>, StageError> {
        match &self.provider {
            Provider::InProcess { model, batch_size } => {
                let mut out = Vec::with_capacity(questions.len());
                for chunk in questions.chunks(*batch_size) {
                    ctx.check_cancelled()?;
                    let distributions = model
                        .answer_distributions(chunk, answers)
                        .map_err(|e| self.model_failed(e))?;
                    out.extend(distributions.into_iter().map(Rating::Distribution));
                }
                Ok(out)
            }
            Provider::Endpoint {
                endpoint,
                concurrency,
            } => self.over_endpoint(endpoint, *concurrency, questions, ctx, |question| {
                openai::rate(endpoint, &[Message::new("user", question)], answers)
            }),
        }
    }

    /// A short answer to each conversation (a rationale), greedy, at most `max_tokens`
    /// tokens (an in-process judge stops at a blank line).
    pub fn explain(
        &self,
        conversations: &[Vec<Message>],
        max_tokens: usize,
        ctx: &StageContext,
    ) -> Result<Vec<String>, StageError> {
        match &self.provider {
            Provider::InProcess { model, batch_size } => {
                let mut out = Vec::with_capacity(conversations.len());
                for chunk in conversations.chunks(*batch_size) {
                    ctx.check_cancelled()?;
                    let requests = chunk
                        .iter()
                        .map(|messages| {
                            Ok(Request {
                                prompt: model
                                    .encode_chat(messages)
                                    .map_err(|e| self.model_failed(e))?,
                                sampling: Sampling::greedy(),
                                max_new_tokens: max_tokens,
                                seed: 0,
                                stop_strings: vec!["\n\n".into()],
                                top_logprobs: 0,
                            })
                        })
                        .collect::<Result<Vec<_>, StageError>>()?;
                    let completions = model
                        .generate_while(&requests, || !ctx.is_cancelled())
                        .map_err(|e| self.model_failed(e))?;
                    ctx.check_cancelled()?;
                    out.extend(completions.into_iter().map(|c| c.text.trim().to_string()));
                }
                Ok(out)
            }
            Provider::Endpoint {
                endpoint,
                concurrency,
            } => self.over_endpoint(endpoint, *concurrency, conversations, ctx, |messages| {
                openai::answer(endpoint, messages, max_tokens)
            }),
        }
    }

    fn model_failed(&self, e: LlmError) -> StageError {
        StageError::Failed(format!("judge `{}`: {e}", self.name))
    }

    /// `ask(item)` for every item, `concurrency` requests at a time, in order; the first
    /// failure (or Ctrl-C) stops the rest. The endpoint's notices (a server taken out or
    /// back) are reported as the stage's.
    fn over_endpoint<T: Sync, R: Send>(
        &self,
        endpoint: &Endpoint,
        concurrency: usize,
        items: &[T],
        ctx: &StageContext,
        ask: impl Fn(&T) -> Result<R, EndpointError> + Sync,
    ) -> Result<Vec<R>, StageError> {
        let next = AtomicUsize::new(0);
        let answers: Mutex<Vec<Option<R>>> = Mutex::new((0..items.len()).map(|_| None).collect());
        let failure: Mutex<Option<StageError>> = Mutex::new(None);
        let failed = || {
            failure
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .is_some()
        };
        std::thread::scope(|scope| {
            for _ in 0..concurrency.min(items.len()) {
                scope.spawn(|| {
                    loop {
                        let k = next.fetch_add(1, Ordering::Relaxed);
                        if k >= items.len() || ctx.check_cancelled().is_err() || failed() {
                            return;
                        }
                        match ask(&items[k]) {
                            Ok(answer) => {
                                answers.lock().unwrap_or_else(PoisonError::into_inner)[k] =
                                    Some(answer)
                            }
                            Err(e) => {
                                let e = StageError::Failed(format!("judge `{}`: {e}", self.name));
                                failure
                                    .lock()
                                    .unwrap_or_else(PoisonError::into_inner)
                                    .get_or_insert(e);
                                return;
                            }
                        }
                    }
                });
            }
        });
        for notice in endpoint.take_notices() {
            ctx.progress.note(&format!("{}: {notice}", ctx.name));
        }
        ctx.check_cancelled()?;
        if let Some(e) = failure.into_inner().unwrap_or_else(PoisonError::into_inner) {
            return Err(e);
        }
        Ok(answers
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner)
            .into_iter()
            .map(|a| a.expect("every item was asked"))
            .collect())
    }
}
