//! Picking the next token from logits: greedy, temperature, top-k, top-p.
//!
//! Sampling runs on the host from the logits the backend returns, with the caller's seeded
//! stream, so a seed gives the same tokens on a backend whatever else is in the batch.
//! The log-prob reported for a token is under the temperature-scaled distribution before
//! top-k/top-p truncation (what GRPO's ratio uses, as in TRL); greedy reports it at
//! temperature 1.

use serde::{Deserialize, Serialize};

use crate::seed::SeededRng;

/// How to pick each next token.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Sampling {
    /// 0 picks the most likely token.
    pub temperature: f32,
    /// Keep only the `top_k` most likely tokens (0: all).
    pub top_k: usize,
    /// Keep the smallest set of tokens whose probability reaches `top_p` (1: all).
    pub top_p: f32,
}

impl Sampling {
    pub fn greedy() -> Self {
        Self {
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
        }
    }
}

/// Why `temperature` cannot be sampled at, if it cannot: it is a finite number, 0 or
/// more. The one check of the spec's sampling fields and `accord generate`'s flags.
pub fn temperature_problem(temperature: f32) -> Option<&'static str> {
    if temperature.is_nan() || temperature < 0.0 {
        Some("must be 0 or more")
    } else if temperature.is_infinite() {
        Some("must be finite")
    } else {
        None
    }
}

/// Why `top_p` cannot be sampled with, if it cannot: it is in (0, 1].
pub fn top_p_problem(top_p: f32) -> Option<&'static str> {
    (!(top_p > 0.0 && top_p <= 1.0)).then_some("must be in (0, 1]")
}

/// `log_softmax(logits / temperature)` at `index`.
fn log_prob(logits: &[f32], temperature: f32, index: usize) -> f32 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = logits
        .iter()
        .map(|&x| (((x - max) / temperature) as f64).exp())
        .sum();
    (logits[index] - max) / temperature - sum.ln() as f32
}

/// Picks a token from `logits` (`[V]`); returns it and its log-prob.
pub fn pick(sampling: &Sampling, logits: &[f32], rng: &mut SeededRng) -> (u32, f32) {
    if sampling.temperature <= 0.0 {
        let best = logits
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1).then(b.0.cmp(&a.0)))
            .map_or(0, |(i, _)| i);
        return (best as u32, log_prob(logits, 1.0, best));
    }
    let t = sampling.temperature;
    let mut candidates: Vec<usize> = (0..logits.len()).collect();
    let by_logit = |a: &usize, b: &usize| logits[*b].total_cmp(&logits[*a]).then(a.cmp(b));
    if sampling.top_k > 0 && sampling.top_k < candidates.len() {
        candidates.select_nth_unstable_by(sampling.top_k - 1, by_logit);
        candidates.truncate(sampling.top_k);
    }
    let max = candidates
        .iter()
        .map(|&i| logits[i])
        .fold(f32::NEG_INFINITY, f32::max);
    // Each candidate's unnormalised probability, computed once: at a 49k vocabulary the
    // exponentials are most of the cost of picking a token.
    let mut weights = vec![0f64; logits.len()];
    for &i in &candidates {
        weights[i] = f64::from(((logits[i] - max) / t).exp());
    }
    let total: f64 = candidates.iter().map(|&i| weights[i]).sum();
    // The nucleus: the fewest most likely tokens whose probability reaches `top_p`, most
    // likely first. It is usually a few dozen tokens, so the candidates are ordered a
    // growing prefix at a time rather than all of them (a full sort of a 49k vocabulary
    // per token was a quarter of a batch-8 decode step). With `top_p` 1 every candidate
    // stays and their order does not matter.
    let mut keep = candidates.len();
    let mut sorted = if sampling.top_p >= 1.0 {
        candidates.len()
    } else {
        0
    };
    while sorted < candidates.len() {
        let prefix = (sorted.max(32) * 4).min(candidates.len());
        if prefix < candidates.len() {
            candidates[sorted..].select_nth_unstable_by(prefix - sorted - 1, by_logit);
        }
        candidates[sorted..prefix].sort_unstable_by(by_logit);
        sorted = prefix;
        let mut cumulative = 0.0;
        if let Some(n) = candidates[..sorted].iter().position(|&i| {
            cumulative += weights[i] / total;
            cumulative >= sampling.top_p as f64
        }) {
            keep = n + 1;
            break;
        }
    }
    let kept: Vec<f64> = candidates[..keep].iter().map(|&i| weights[i]).collect();
    let index = candidates[rng.weighted(&kept)];
    // Without top-k the candidates are the whole vocabulary, so `total` is already the
    // normaliser the log-prob needs.
    let logprob = if candidates.len() == logits.len() {
        ((logits[index] - max) / t) as f64 - total.ln()
    } else {
        f64::from(log_prob(logits, t, index))
    };
    (index as u32, logprob as f32)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The nucleus found a prefix at a time is the one a full sort finds.
    #[test]
    fn the_nucleus_matches_a_full_sort() {
        let mut noise = SeededRng::new(3, &[]);
        for top_p in [0.5f32, 0.9, 0.95, 0.999] {
            let logits: Vec<f32> = (0..5000).map(|_| (noise.unit() * 12.0) as f32).collect();
            let sampling = Sampling {
                temperature: 0.8,
                top_k: 0,
                top_p,
            };
            let mut order: Vec<usize> = (0..logits.len()).collect();
            order.sort_by(|a, b| logits[*b].total_cmp(&logits[*a]).then(a.cmp(b)));
            let max = logits[order[0]];
            let w: Vec<f64> = order
                .iter()
                .map(|&i| (((logits[i] - max) / 0.8) as f64).exp())
                .collect();
            let total: f64 = w.iter().sum();
            let mut cumulative = 0.0;
            let size = w
                .iter()
                .position(|x| {
                    cumulative += x / total;
                    cumulative >= top_p as f64
                })
                .unwrap()
                + 1;
            let nucleus: std::collections::BTreeSet<usize> =
                order[..size].iter().copied().collect();
            let mut rng = SeededRng::new(9, &[]);
            for _ in 0..200 {
                let (token, _) = pick(&sampling, &logits, &mut rng);
                assert!(
                    nucleus.contains(&(token as usize)),
                    "top_p {top_p}: {token} is outside the nucleus of {size}"
                );
            }
        }
    }

    #[test]
    fn greedy_takes_the_largest_logit() {
        let mut rng = SeededRng::new(0, &[]);
        let (token, lp) = pick(&Sampling::greedy(), &[0.1, 3.0, -1.0], &mut rng);
        assert_eq!(token, 1);
        assert!(lp < 0.0 && lp > -0.2);
    }

    #[test]
    fn top_k_and_top_p_restrict_the_candidates() {
        let logits = [5.0, 4.9, 0.0, -3.0];
        let top1 = Sampling {
            temperature: 1.0,
            top_k: 1,
            top_p: 1.0,
        };
        let nucleus = Sampling {
            temperature: 1.0,
            top_k: 0,
            top_p: 0.9,
        };
        for seed in 0..50 {
            let mut rng = SeededRng::new(seed, &[]);
            assert_eq!(pick(&top1, &logits, &mut rng).0, 0);
            assert!(pick(&nucleus, &logits, &mut rng).0 <= 1);
        }
    }

    #[test]
    fn sampling_follows_the_distribution() {
        let logits = [0.0f32, (3.0f32).ln()]; // probabilities 1/4 and 3/4
        let sampling = Sampling {
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
        };
        let mut rng = SeededRng::new(9, &[]);
        let ones = (0..4000)
            .filter(|_| pick(&sampling, &logits, &mut rng).0 == 1)
            .count();
        assert!((2800..3200).contains(&ones), "{ones}");
    }
}
