//! Log-probabilities of completions under a model, with gradients when the model has them.
//!
//! Each training row is a prompt followed by a completion. Rows are left-padded to one
//! length so every completion ends at the last position; completions of different lengths
//! are then right-aligned, and the LM head runs over the last `C` positions only (`C`: the
//! longest completion), not over the prompts.

use burn::tensor::activation::log_softmax;
use burn::tensor::{Int, Tensor, TensorData};

use crate::llm::{KvCache, LlamaModel};

/// A prompt and the completion whose tokens are scored.
#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    pub prompt: Vec<u32>,
    pub completion: Vec<u32>,
}

/// `[R, C]` log-probs of each row's completion tokens, right-aligned: row `r`'s `i`-th
/// completion token sits at column `C - len_r + i`, and the columns before it hold
/// values for prompt or padding tokens that callers mask out. `C` is the longest
/// completion. Every prompt must hold at least one token.
pub fn completion_logprobs(model: &LlamaModel, rows: &[Scored]) -> Tensor<2> {
    debug_assert!(rows.iter().all(|r| !r.prompt.is_empty()));
    let longest = rows
        .iter()
        .map(|r| r.prompt.len() + r.completion.len())
        .max()
        .unwrap_or(0);
    let c = rows.iter().map(|r| r.completion.len()).max().unwrap_or(0);
    let mut tokens = Vec::with_capacity(rows.len());
    let mut valid = Vec::with_capacity(rows.len());
    let mut targets = Vec::with_capacity(rows.len() * c);
    for row in rows {
        let len = row.prompt.len() + row.completion.len();
        let pad = longest - len;
        let mut ids = vec![0u32; pad];
        ids.extend(&row.prompt);
        ids.extend(&row.completion);
        targets.extend(ids[longest - c..].iter().map(|&id| id as i64));
        let mut real = vec![false; pad];
        real.extend(std::iter::repeat_n(true, len));
        tokens.push(ids);
        valid.push(real);
    }
    // Position p's logits predict the token at p + 1: the C + 1 last positions predict
    // the C last tokens and one token past the end, which is dropped.
    let logits = model.forward_last(&tokens, &valid, &mut KvCache::default(), c + 1); // [R, C + 1, V]
    let r = rows.len();
    let logits = logits.narrow(1, 0, c); // [R, C, V]
    let targets =
        Tensor::<3, Int>::from_data(TensorData::new(targets, [r, c, 1]), &logits.device());
    log_softmax(logits, 2).gather(2, targets).reshape([r, c]) // [R, C]
}
