//! One agent answering alone: the single-agent baseline of training and the answers an
//! evaluation compares, each prompt a user message sampled from its own seeded stream.

use crate::llm::chat::Message;
use crate::llm::generate::Request;
use crate::llm::loaded::LoadedModel;
use crate::llm::sampling::Sampling;
use crate::stage::{StageContext, StageError};

use super::transcript::Utterance;

/// How answers are sampled.
#[derive(Debug, Clone, Copy)]
pub struct Answering {
    pub sampling: Sampling,
    pub max_new_tokens: usize,
    /// Prompts decoded in one batch.
    pub batch_size: usize,
}

/// `model`'s answer to each prompt (a user message), the `i`-th sampled with `seeds[i]`.
pub fn answer_alone(
    model: &LoadedModel,
    name: &str,
    prompts: &[String],
    seeds: &[u64],
    how: Answering,
    ctx: &StageContext,
) -> Result<Vec<Utterance>, StageError> {
    let failed = |e: crate::llm::LlmError| StageError::Failed(format!("model `{name}`: {e}"));
    let requests = prompts
        .iter()
        .zip(seeds)
        .map(|(prompt, &seed)| {
            Ok(Request {
                prompt: model
                    .encode_chat(&[Message::new("user", prompt)])
                    .map_err(failed)?,
                sampling: how.sampling,
                max_new_tokens: how.max_new_tokens,
                seed,
                stop_strings: Vec::new(),
                top_logprobs: 0,
            })
        })
        .collect::<Result<Vec<_>, StageError>>()?;
    let mut answers = Vec::with_capacity(prompts.len());
    for chunk in requests.chunks(how.batch_size.max(1)) {
        ctx.check_cancelled()?;
        let completions = model
            .generate_while(chunk, || !ctx.is_cancelled())
            .map_err(failed)?;
        ctx.check_cancelled()?;
        for (request, completion) in chunk.iter().zip(completions) {
            answers.push(Utterance {
                speaker: 0,
                text: completion.text.trim().to_string(),
                prompt_ids: request.prompt.clone(),
                token_ids: completion.tokens,
                logprobs: completion.logprobs,
                p_agree: None,
            });
        }
    }
    Ok(answers)
}
