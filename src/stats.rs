//! Summary statistics for evaluation metrics: mean, standard deviation, and seeded
//! percentile-bootstrap confidence intervals, plain and paired.
//!
//! An evaluation scores items (a dilemma, a question) once per repeat. A metric's spread
//! across repeats is the standard deviation of the per-repeat means (what the paper
//! reports as ± SD); its uncertainty as an estimate is a bootstrap over items, each item
//! carrying its mean over repeats. A paired bootstrap resamples the items two models share
//! and reports the difference of their means. Every resampling takes a seed, so a report
//! is reproducible to the digit.

use serde::{Deserialize, Serialize};

use crate::seed::SeededRng;

/// Bootstrap resamples unless a caller asks for another number.
pub const RESAMPLES: usize = 2000;

/// The mean of `values`; NaN when there are none.
pub fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len() as f64
}

/// The sample standard deviation (n - 1, as `torch.std`); 0 for fewer than two values.
pub fn std_dev(values: &[f64]) -> f64 {
    if values.len() < 2 {
        return 0.0;
    }
    let m = mean(values);
    let squares: f64 = values.iter().map(|v| (v - m).powi(2)).sum();
    (squares / (values.len() - 1) as f64).sqrt()
}

/// A two-sided 95% interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    pub low: f64,
    pub high: f64,
}

impl Interval {
    /// Whether the interval leaves out zero (a difference is significant at 5%).
    pub fn excludes_zero(&self) -> bool {
        self.low > 0.0 || self.high < 0.0
    }
}

/// The 2.5th and 97.5th percentiles of `statistic` over `resamples` bootstrap resamples
/// of `n` items (indices drawn with replacement from a stream seeded by `seed`).
fn percentile_interval(
    n: usize,
    resamples: usize,
    seed: u64,
    statistic: impl Fn(&[usize]) -> f64,
) -> Interval {
    let mut rng = SeededRng::new(seed, &[b"bootstrap"]);
    let mut indices = vec![0usize; n];
    let mut values: Vec<f64> = (0..resamples)
        .map(|_| {
            for index in indices.iter_mut() {
                *index = rng.below(n);
            }
            statistic(&indices)
        })
        .collect();
    values.sort_by(f64::total_cmp);
    let at = |q: f64| values[((q * (resamples - 1) as f64).round() as usize).min(resamples - 1)];
    Interval {
        low: at(0.025),
        high: at(0.975),
    }
}

/// A 95% percentile-bootstrap interval for the mean of `items`; `None` when empty.
pub fn bootstrap_mean(items: &[f64], resamples: usize, seed: u64) -> Option<Interval> {
    if items.is_empty() || resamples == 0 {
        return None;
    }
    Some(percentile_interval(items.len(), resamples, seed, |pick| {
        pick.iter().map(|&i| items[i]).sum::<f64>() / pick.len() as f64
    }))
}

/// A 95% paired-bootstrap interval for mean(`a`) − mean(`b`), where `a[i]` and `b[i]`
/// score the same item; `None` when there are no pairs.
pub fn paired_bootstrap(a: &[f64], b: &[f64], resamples: usize, seed: u64) -> Option<Interval> {
    assert_eq!(
        a.len(),
        b.len(),
        "paired samples have one value per item each"
    );
    let differences: Vec<f64> = a.iter().zip(b).map(|(x, y)| x - y).collect();
    bootstrap_mean(&differences, resamples, seed)
}

/// What an evaluation reports for one metric of one model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// The mean over repeats of each repeat's mean over items.
    pub mean: f64,
    /// The standard deviation of the per-repeat means (0 with one repeat).
    pub std_dev: f64,
    /// The 95% bootstrap interval over items (each item's mean over repeats).
    pub ci: Option<Interval>,
    /// Items with a value.
    pub items: usize,
    pub repeats: usize,
}

/// Summarises `values[repeat][item]` (`None`: the item has no value in that repeat, such
/// as rounds to agreement for a dialogue that never agreed).
pub fn summarise(values: &[Vec<Option<f64>>], resamples: usize, seed: u64) -> Summary {
    let per_repeat: Vec<f64> = values
        .iter()
        .map(|repeat| repeat.iter().flatten().copied().collect::<Vec<_>>())
        .filter(|present| !present.is_empty())
        .map(|present| mean(&present))
        .collect();
    let items = values.iter().map(Vec::len).max().unwrap_or(0);
    let per_item: Vec<f64> = (0..items)
        .filter_map(|item| {
            let present: Vec<f64> = values
                .iter()
                .filter_map(|repeat| repeat.get(item).copied().flatten())
                .collect();
            (!present.is_empty()).then(|| mean(&present))
        })
        .collect();
    Summary {
        mean: mean(&per_repeat),
        std_dev: std_dev(&per_repeat),
        ci: bootstrap_mean(&per_item, resamples, seed),
        items: per_item.len(),
        repeats: per_repeat.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_and_sample_standard_deviation() {
        assert_eq!(mean(&[1.0, 2.0, 3.0, 6.0]), 3.0);
        // Squares 4 + 1 + 0 + 9 = 14 over n - 1 = 3.
        assert!((std_dev(&[1.0, 2.0, 3.0, 6.0]) - (14.0f64 / 3.0).sqrt()).abs() < 1e-12);
        assert_eq!(std_dev(&[5.0]), 0.0);
    }

    /// The interval holds the mean, narrows with more items, repeats under a seed, and
    /// for a constant sample is that constant.
    #[test]
    fn bootstrap_intervals_behave() {
        let mut rng = SeededRng::new(9, &[]);
        let small: Vec<f64> = (0..20).map(|_| rng.unit()).collect();
        let large: Vec<f64> = (0..2000).map(|_| rng.unit()).collect();
        let a = bootstrap_mean(&small, RESAMPLES, 1).unwrap();
        let b = bootstrap_mean(&large, RESAMPLES, 1).unwrap();
        assert!(a.low < mean(&small) && mean(&small) < a.high);
        assert!(b.high - b.low < (a.high - a.low) / 4.0);
        assert_eq!(bootstrap_mean(&small, RESAMPLES, 1), Some(a));
        assert_eq!(
            bootstrap_mean(&[2.5; 7], 100, 3),
            Some(Interval {
                low: 2.5,
                high: 2.5
            })
        );
        assert_eq!(bootstrap_mean(&[], 100, 3), None);
    }

    /// A consistent shift is significant paired even when item variance would hide it
    /// unpaired.
    #[test]
    fn pairing_finds_a_shift_that_item_variance_hides() {
        let mut rng = SeededRng::new(4, &[]);
        let base: Vec<f64> = (0..30).map(|_| rng.unit() * 10.0).collect();
        let shifted: Vec<f64> = base.iter().map(|x| x + 0.3 + rng.unit() * 0.1).collect();
        let paired = paired_bootstrap(&shifted, &base, RESAMPLES, 2).unwrap();
        assert!(paired.excludes_zero(), "{paired:?}");
        let (a, b) = (
            bootstrap_mean(&shifted, RESAMPLES, 2).unwrap(),
            bootstrap_mean(&base, RESAMPLES, 2).unwrap(),
        );
        assert!(a.low < b.high, "unpaired intervals overlap");
    }

    /// ± SD is across repeat means; missing values drop out of both.
    #[test]
    fn summaries_spread_across_repeats() {
        let values = vec![
            vec![Some(1.0), Some(3.0), None],
            vec![Some(3.0), Some(5.0), Some(4.0)],
        ];
        let summary = summarise(&values, 200, 1);
        assert_eq!(summary.mean, (2.0 + 4.0) / 2.0);
        assert!((summary.std_dev - 2f64.sqrt()).abs() < 1e-12);
        assert_eq!((summary.items, summary.repeats), (3, 2));
    }
}
