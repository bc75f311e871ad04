//! Reading a model's answer from its next-token distribution: after each of several
//! prompts, in one batch, how likely each of a few short answers ("Yes"/"No", "0"…"5") is.
//!
//! An answer's probability is that of its first token, with and without a leading space
//! (tokenizers spell both), renormalised over the answers offered, so the result is always
//! a valid distribution whatever the model would have written instead.

use super::error::LlmError;
use super::model::{KvCache, LlamaModel};
use super::tokenizer::Tokenizer;

/// Log-probabilities of the next token after each prompt: `[B][V]`.
pub fn next_token_logprobs(
    model: &LlamaModel,
    prompts: &[Vec<u32>],
) -> Result<Vec<Vec<f32>>, LlmError> {
    let longest = prompts.iter().map(Vec::len).max().unwrap_or(0);
    if prompts.is_empty() {
        return Ok(Vec::new());
    }
    if longest == 0 {
        return Err(LlmError::Generation("a prompt has no tokens".into()));
    }
    let tokens: Vec<Vec<u32>> = prompts
        .iter()
        .map(|p| [vec![0; longest - p.len()], p.clone()].concat())
        .collect();
    let valid: Vec<Vec<bool>> = prompts
        .iter()
        .map(|p| [vec![false; longest - p.len()], vec![true; p.len()]].concat())
        .collect();
    let logits = model.forward(&tokens, &valid, &mut KvCache::default(), true); // [B, 1, V]
    let logprobs = burn::tensor::activation::log_softmax(logits, 2);
    let values: Vec<f32> = logprobs
        .try_into_vec_as::<f32>()
        .map_err(|e| LlmError::Generation(format!("reading logits: {e:?}")))?;
    let v = model.config.vocab_size;
    Ok(values.chunks(v).map(<[f32]>::to_vec).collect())
}

/// The first-token ids that spell each answer (with and without a leading space).
pub fn answer_tokens(tokenizer: &Tokenizer, answers: &[&str]) -> Result<Vec<Vec<u32>>, LlmError> {
    answers
        .iter()
        .map(|answer| {
            let mut ids = Vec::new();
            for spelling in [answer.to_string(), format!(" {answer}")] {
                let encoded = tokenizer.encode(&spelling)?;
                // Skip a BOS the tokenizer may prepend.
                let first = encoded
                    .iter()
                    .copied()
                    .find(|id| tokenizer.bos_token.as_ref().is_none_or(|(_, b)| b != id));
                if let Some(id) = first
                    && !ids.contains(&id)
                {
                    ids.push(id);
                }
            }
            if ids.is_empty() {
                return Err(LlmError::Tokenizer(format!(
                    "`{answer}` encodes to nothing"
                )));
            }
            Ok(ids)
        })
        .collect()
}

/// The distribution over answers given next-token log-probs, renormalised; `temperature`
/// sharpens or flattens it (1: as the model has it).
pub fn answer_distribution(logprobs: &[f32], answers: &[Vec<u32>], temperature: f64) -> Vec<f64> {
    let mass: Vec<f64> = answers
        .iter()
        .map(|ids| {
            let p: f64 = ids
                .iter()
                .map(|&id| (logprobs[id as usize] as f64).exp())
                .sum();
            p.max(1e-300).powf(1.0 / temperature.max(1e-6))
        })
        .collect();
    let total: f64 = mass.iter().sum();
    mass.iter().map(|m| m / total).collect()
}
