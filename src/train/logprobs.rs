//! Log-probabilities of completions under a model, with gradients when the model has them.
//!
//! Each training row is a prompt followed by a completion. The prompt tokens all rows
//! start with (a group's rows share their whole prompt) run once at batch 1 and every
//! row continues from a copy of that cache, so a group of `G` completions costs one prompt,
//! not `G`. The rest of each row (its own prompt tokens, then its completion) is
//! right-padded to one length. The LM head runs only over the positions that predict
//! completion tokens, gathered into a right-aligned `[R, C]` layout.

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
/// values callers mask out. `C` is the longest completion. Every prompt must hold at
/// least one token.
pub fn completion_logprobs(model: &LlamaModel, rows: &[Scored]) -> Tensor<2> {
    debug_assert!(rows.iter().all(|r| !r.prompt.is_empty()));
    let r = rows.len();
    let c = rows.iter().map(|r| r.completion.len()).max().unwrap_or(0);
    let device = model.embed_tokens.weight.val().device();
    if c == 0 {
        return Tensor::zeros([r, 0], &device);
    }
    // The shared prompt runs once; every row continues from a copy of its cache.
    let shared = shared_prefix(rows);
    let mut cache = KvCache::default();
    let prefix_last = (shared > 0).then(|| {
        let prefix = vec![rows[0].prompt[..shared].to_vec()];
        let hidden = model.hidden(&prefix, &[vec![true; shared]], &mut cache); // [1, P, H]
        cache = cache.select(&vec![0; r]);
        hidden.narrow(1, shared - 1, 1) // [1, 1, H]
    });
    // Each row's tail: the rest of its prompt, then its completion, right-padded.
    let tails: Vec<Vec<u32>> = rows
        .iter()
        .map(|row| {
            row.prompt[shared..]
                .iter()
                .chain(&row.completion)
                .copied()
                .collect()
        })
        .collect();
    let t = tails.iter().map(Vec::len).max().unwrap_or(0);
    let valid: Vec<Vec<bool>> = tails
        .iter()
        .map(|tail| (0..t).map(|i| i < tail.len()).collect())
        .collect();
    let tokens: Vec<Vec<u32>> = tails
        .iter()
        .map(|tail| {
            let mut ids = tail.clone();
            ids.resize(t, 0);
            ids
        })
        .collect();
    let tail_hidden = model.hidden(&tokens, &valid, &mut cache); // [R, T, H]
    let width = tail_hidden.dims()[2];
    // Position 0 of `hidden` is the shared prompt's last token when there is one.
    let (hidden, offset) = match prefix_last {
        Some(last) => (
            Tensor::cat(vec![last.expand([r, 1, width]), tail_hidden], 1),
            1,
        ),
        None => (tail_hidden, 0),
    }; // [R, offset + T, H]
    // The position whose output predicts each right-aligned completion token, and the token.
    let mut predictors = Vec::with_capacity(r * c);
    let mut targets = Vec::with_capacity(r * c);
    for row in rows {
        let own_prompt = row.prompt.len() - shared;
        let pad = c - row.completion.len();
        for column in 0..c {
            match column.checked_sub(pad) {
                Some(i) => {
                    predictors.push((offset + own_prompt + i - 1) as i64);
                    targets.push(row.completion[i] as i64);
                }
                None => {
                    predictors.push(0);
                    targets.push(0);
                }
            }
        }
    }
    let predictors = Tensor::<3, Int>::from_data(TensorData::new(predictors, [r, c, 1]), &device)
        .expand([r, c, width]);
    let logits = model.logits(hidden.gather(1, predictors)); // [R, C, V]
    let targets = Tensor::<3, Int>::from_data(TensorData::new(targets, [r, c, 1]), &device);
    log_softmax(logits, 2).gather(2, targets).reshape([r, c]) // [R, C]
}

/// How many leading prompt tokens every row has in common.
fn shared_prefix(rows: &[Scored]) -> usize {
    let Some((first, rest)) = rows.split_first() else {
        return 0;
    };
    rest.iter().fold(first.prompt.len(), |shared, row| {
        first.prompt[..shared]
            .iter()
            .zip(&row.prompt)
            .take_while(|(a, b)| a == b)
            .count()
    })
}
