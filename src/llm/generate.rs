//! Batched generation with a KV cache.
//!
//! Prompts of different lengths are left-padded into one batch (identical prompts run once
//! and their caches are copied); after the prefill every step decodes one token for every
//! unfinished row in one forward pass. A row stops at a
//! stop token, a stop string (the text is cut before it) or `max_new_tokens`. Each row
//! samples from its own seeded stream, so its tokens do not depend on the other rows.
//!
//! A finished row stays in the batch (decoding a token nobody reads keeps the batch
//! rectangular and its numerics unchanged). A row the caller no longer wants (the
//! server's client has gone) leaves it: its cache rows are dropped before the next step,
//! so the rest of the batch no longer pays for it.

use burn::tensor::{Int, Tensor, TensorData};

use super::error::LlmError;
use super::model::{KvCache, LlamaModel};
use super::sampling::{Sampling, pick};
use super::tokenizer::Tokenizer;
use crate::seed::SeededRng;

/// One sequence to continue.
#[derive(Debug, Clone)]
pub struct Request {
    pub prompt: Vec<u32>,
    pub sampling: Sampling,
    pub max_new_tokens: usize,
    /// Seeds the row's random stream.
    pub seed: u64,
    /// Texts that end generation; the completion's text stops before them.
    pub stop_strings: Vec<String>,
    /// How many of the most likely tokens to report at each step (0: none).
    pub top_logprobs: usize,
}

/// Why a row stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    StopToken,
    StopString,
    Length,
    /// The caller stopped wanting the row (see [`generate`]'s `on_token`).
    Dropped,
}

/// What a row generated.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    /// The generated tokens: with the stop token that ended it, if one did; without the
    /// token that completed a stop string, if one did.
    pub tokens: Vec<u32>,
    /// Per-token log-probs (see [`super::sampling`]).
    pub logprobs: Vec<f32>,
    pub text: String,
    pub finish: Finish,
    /// Per step, when asked: the most likely tokens and their log-probs (temperature 1).
    pub top_logprobs: Vec<Vec<(u32, f32)>>,
}

/// The `k` most likely tokens under `logits` and their log-probs, most likely first.
fn top_logprobs(logits: &[f32], k: usize) -> Vec<(u32, f32)> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let log_total = logits
        .iter()
        .map(|&x| ((x - max) as f64).exp())
        .sum::<f64>()
        .ln() as f32;
    let mut order: Vec<usize> = (0..logits.len()).collect();
    let k = k.min(order.len());
    let by_logit = |a: &usize, b: &usize| logits[*b].total_cmp(&logits[*a]).then(a.cmp(b));
    order.select_nth_unstable_by(k - 1, by_logit);
    order.truncate(k);
    order.sort_unstable_by(by_logit);
    order
        .into_iter()
        .map(|i| (i as u32, logits[i] - max - log_total))
        .collect()
}

/// Runs the (left-padded) prompts into `cache` and returns the last position's logits
/// `[B, 1, V]`. Identical prompts (a GRPO group's, or `n` completions of one request) run
/// once and their rows are copied.
fn prefill(
    model: &LlamaModel,
    tokens: &[Vec<u32>],
    valid: &[Vec<bool>],
    cache: &mut KvCache,
) -> Tensor<3> {
    // The first row with each prompt, and for each row the index of its prompt among those.
    let mut firsts: Vec<usize> = Vec::new();
    let mut of_row: Vec<usize> = Vec::with_capacity(tokens.len());
    for (row, ids) in tokens.iter().enumerate() {
        match firsts.iter().position(|&first| tokens[first] == *ids) {
            Some(index) => of_row.push(index),
            None => {
                of_row.push(firsts.len());
                firsts.push(row);
            }
        }
    }
    if firsts.len() == tokens.len() {
        return model.forward(tokens, valid, cache, true);
    }
    let distinct_tokens: Vec<Vec<u32>> = firsts.iter().map(|&r| tokens[r].clone()).collect();
    let distinct_valid: Vec<Vec<bool>> = firsts.iter().map(|&r| valid[r].clone()).collect();
    let mut distinct_cache = KvCache::default();
    let logits = model.forward(&distinct_tokens, &distinct_valid, &mut distinct_cache, true); // [U, 1, V]
    *cache = distinct_cache.select(&of_row);
    let ids: Vec<i64> = of_row.iter().map(|&i| i as i64).collect();
    let ids = Tensor::<1, Int>::from_data(TensorData::new(ids, [of_row.len()]), &logits.device());
    logits.select(0, ids) // [B, 1, V]
}

/// Generates a continuation for each request; `on_token(row, token)` sees tokens as they
/// come and returns whether the row is still wanted: one that is not ends there
/// ([`Finish::Dropped`]) and leaves the batch before the next step.
pub fn generate(
    model: &LlamaModel,
    tokenizer: &Tokenizer,
    requests: &[Request],
    stop_tokens: &[u32],
    mut on_token: impl FnMut(usize, u32) -> bool,
) -> Result<Vec<Completion>, LlmError> {
    let b = requests.len();
    if b == 0 {
        return Ok(Vec::new());
    }
    let longest = requests.iter().map(|r| r.prompt.len()).max().unwrap_or(0);
    if longest == 0 {
        return Err(LlmError::Generation("a prompt has no tokens".into()));
    }
    // Each row's room is what its own prompt leaves of the context (positions count each
    // row's real tokens, so a long neighbour takes nothing from it).
    let rooms: Vec<usize> = requests
        .iter()
        .map(|r| model.config.max_positions.saturating_sub(r.prompt.len()))
        .collect();
    if let Some(full) = requests
        .iter()
        .find(|r| r.prompt.len() >= model.config.max_positions)
    {
        return Err(LlmError::Generation(format!(
            "a prompt of {} tokens fills the model's context of {} tokens; shorten the prompt (fewer `context_turns`, a shorter template)",
            full.prompt.len(),
            model.config.max_positions
        )));
    }
    let mut rngs: Vec<SeededRng> = requests
        .iter()
        .map(|r| SeededRng::new(r.seed, &[b"sample"]))
        .collect();
    let mut out: Vec<Completion> = requests
        .iter()
        .map(|_| Completion {
            tokens: Vec::new(),
            logprobs: Vec::new(),
            text: String::new(),
            finish: Finish::Length,
            top_logprobs: Vec::new(),
        })
        .collect();
    let mut done: Vec<bool> = requests
        .iter()
        .zip(&rooms)
        .map(|(r, room)| r.max_new_tokens.min(*room) == 0)
        .collect();
    let mut step_tokens: Vec<Vec<u32>> = requests
        .iter()
        .map(|r| [vec![0; longest - r.prompt.len()], r.prompt.clone()].concat())
        .collect();
    let mut step_valid: Vec<Vec<bool>> = requests
        .iter()
        .map(|r| {
            [
                vec![false; longest - r.prompt.len()],
                vec![true; r.prompt.len()],
            ]
            .concat()
        })
        .collect();
    let mut cache = KvCache::default();
    let v = model.config.vocab_size;
    // The rows in the batch, in its order (every row until one is dropped).
    let mut batch: Vec<usize> = (0..b).collect();
    while batch.iter().any(|&row| !done[row]) {
        let logits = if cache.is_empty() {
            prefill(model, &step_tokens, &step_valid, &mut cache)
        } else {
            model.forward(&step_tokens, &step_valid, &mut cache, true) // [B, 1, V]
        };
        let logits: Vec<f32> = logits
            .try_into_vec_as::<f32>()
            .map_err(|e| LlmError::Generation(format!("reading logits: {e:?}")))?;
        let mut next = vec![0u32; batch.len()];
        let mut dropped = false;
        for (i, &row) in batch.iter().enumerate() {
            if done[row] {
                continue;
            }
            let request = &requests[row];
            let row_logits = &logits[i * v..(i + 1) * v];
            let (token, logprob) = pick(&request.sampling, row_logits, &mut rngs[row]);
            if request.top_logprobs > 0 {
                out[row]
                    .top_logprobs
                    .push(top_logprobs(row_logits, request.top_logprobs));
            }
            next[i] = token;
            let completion = &mut out[row];
            completion.tokens.push(token);
            completion.logprobs.push(logprob);
            if !on_token(row, token) {
                completion.finish = Finish::Dropped;
                done[row] = true;
                dropped = true;
            } else if stop_tokens.contains(&token) {
                completion.finish = Finish::StopToken;
                done[row] = true;
            } else if !request.stop_strings.is_empty() {
                let text = tokenizer.decode(&completion.tokens)?;
                if request
                    .stop_strings
                    .iter()
                    .any(|s| text.contains(s.as_str()))
                {
                    completion.finish = Finish::StopString;
                    done[row] = true;
                }
            }
            if !done[row] && completion.tokens.len() >= request.max_new_tokens.min(rooms[row]) {
                done[row] = true;
            }
        }
        if dropped {
            let kept: Vec<usize> = (0..batch.len())
                .filter(|&i| out[batch[i]].finish != Finish::Dropped)
                .collect();
            if !kept.is_empty() {
                cache = cache.select(&kept);
            }
            next = kept.iter().map(|&i| next[i]).collect();
            batch = kept.iter().map(|&i| batch[i]).collect();
        }
        step_tokens = next.iter().map(|t| vec![*t]).collect();
        // Finished rows go on decoding a token nobody reads; that keeps the batch rectangular.
        step_valid = vec![vec![true]; batch.len()];
    }
    for (completion, request) in out.iter_mut().zip(requests) {
        let tokens: Vec<u32> = match completion.finish {
            Finish::StopToken => completion.tokens[..completion.tokens.len() - 1].to_vec(),
            _ => completion.tokens.clone(),
        };
        let mut text = tokenizer.decode(&tokens)?;
        if let Some(cut) = request
            .stop_strings
            .iter()
            .filter_map(|s| text.find(s.as_str()))
            .min()
        {
            text.truncate(cut);
        }
        completion.text = text;
        // The token that completed a stop string is not part of the completion: its ids and
        // log-probs then match the text (what training and `usage` count).
        if completion.finish == Finish::StopString {
            completion.tokens.pop();
            completion.logprobs.pop();
            completion.top_logprobs.truncate(completion.tokens.len());
        }
    }
    Ok(out)
}
