//! How much a judge agrees with itself: the same dialogues rated several times.
//!
//! For every pair of repeats of a dialogue: exact agreement and agreement within ±1; over
//! dialogues, between the first two repeats: quadratically weighted Cohen's kappa and
//! Pearson's r. The paper's judge agreed with itself exactly only ~28% of the time.

use serde::Serialize;

/// Agreement statistics of repeated ratings.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reliability {
    pub dialogues: usize,
    pub repeats: usize,
    pub exact: f64,
    pub within_one: f64,
    pub weighted_kappa: f64,
    pub pearson_r: f64,
}

/// Statistics of `ratings[dialogue][repeat]` on the scale `0..=max`; `None` with fewer
/// than two repeats or dialogues.
pub fn reliability(ratings: &[Vec<u32>], max: u32) -> Option<Reliability> {
    let repeats = ratings.first()?.len();
    if repeats < 2 || ratings.len() < 2 || ratings.iter().any(|r| r.len() != repeats) {
        return None;
    }
    let (mut pairs, mut exact, mut close) = (0usize, 0usize, 0usize);
    for r in ratings {
        for i in 0..repeats {
            for j in i + 1..repeats {
                pairs += 1;
                exact += usize::from(r[i] == r[j]);
                close += usize::from(r[i].abs_diff(r[j]) <= 1);
            }
        }
    }
    let a: Vec<f64> = ratings.iter().map(|r| r[0] as f64).collect();
    let b: Vec<f64> = ratings.iter().map(|r| r[1] as f64).collect();
    Some(Reliability {
        dialogues: ratings.len(),
        repeats,
        exact: exact as f64 / pairs as f64,
        within_one: close as f64 / pairs as f64,
        weighted_kappa: weighted_kappa(&a, &b, max),
        pearson_r: pearson(&a, &b),
    })
}

/// `distribution` at `temperature`: p^(1/T) renormalised, in log space so that a small
/// T cannot underflow. Repeated ratings are sampled from it.
pub fn at_temperature(distribution: &[f64], temperature: f64) -> Vec<f64> {
    let logs: Vec<f64> = distribution
        .iter()
        .map(|p| p.max(1e-300).ln() / temperature)
        .collect();
    let max = logs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let weights: Vec<f64> = logs.iter().map(|l| (l - max).exp()).collect();
    let total: f64 = weights.iter().sum();
    weights.iter().map(|w| w / total).collect()
}

/// Quadratically weighted kappa of two raters on `0..=max`: 1 − Σ w·observed / Σ w·expected.
fn weighted_kappa(a: &[f64], b: &[f64], max: u32) -> f64 {
    let k = max as usize + 1;
    let n = a.len() as f64;
    let mut observed = vec![vec![0.0; k]; k];
    let (mut row, mut col) = (vec![0.0; k], vec![0.0; k]);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (x as usize, y as usize);
        observed[x][y] += 1.0 / n;
        row[x] += 1.0 / n;
        col[y] += 1.0 / n;
    }
    let (mut disagreement, mut chance) = (0.0, 0.0);
    for i in 0..k {
        for j in 0..k {
            let weight = ((i as f64 - j as f64) / (k as f64 - 1.0)).powi(2);
            disagreement += weight * observed[i][j];
            chance += weight * row[i] * col[j];
        }
    }
    if chance == 0.0 {
        // Both raters gave one and the same rating throughout.
        return 1.0;
    }
    1.0 - disagreement / chance
}

fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let cov: f64 = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f64 = a.iter().map(|x| (x - ma).powi(2)).sum();
    let vb: f64 = b.iter().map(|y| (y - mb).powi(2)).sum();
    if va == 0.0 || vb == 0.0 {
        return f64::NAN;
    }
    cov / (va * vb).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_repeats_agree_perfectly() {
        let r = reliability(&[vec![1, 1], vec![3, 3], vec![5, 5]], 5).unwrap();
        assert_eq!((r.exact, r.within_one), (1.0, 1.0));
        assert!((r.weighted_kappa - 1.0).abs() < 1e-12);
        assert!((r.pearson_r - 1.0).abs() < 1e-12);
    }

    #[test]
    fn statistics_match_hand_computed_values() {
        // Pairs: (0,1) (2,2) (4,2) (5,5): exact 2/4, within ±1 3/4.
        let r = reliability(&[vec![0, 1], vec![2, 2], vec![4, 2], vec![5, 5]], 5).unwrap();
        assert_eq!(r.exact, 0.5);
        assert_eq!(r.within_one, 0.75);
        // a = [0,2,4,5], b = [1,2,2,5]: r = 9.5 / sqrt(14.75 · 9) = 0.8245…
        assert!((r.pearson_r - 9.5 / (14.75f64 * 9.0).sqrt()).abs() < 1e-12);
        // Weighted kappa from the definition: Σ w·o = (1 + 4) / 25 / 4 = 0.05;
        // Σ w·e over the marginals = 6 / 25 = 0.24, so κw = 1 - 0.05 / 0.24.
        assert!(
            (r.weighted_kappa - (1.0 - 0.05 / 0.24)).abs() < 1e-9,
            "{}",
            r.weighted_kappa
        );
        assert!(reliability(&[vec![1]], 5).is_none());
    }
}
