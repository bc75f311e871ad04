//! What a judge's rating is: a distribution over the answers a question offers (the
//! digits 0–5 of a rubric, or 1 and 2 of a pairwise question), or a reply that held none.

/// The answers of a 0–5 rubric.
pub const DIGITS: [&str; 6] = ["0", "1", "2", "3", "4", "5"];

/// What a rating question got.
#[derive(Debug, Clone, PartialEq)]
pub enum Rating {
    /// P(answer = k) over the offered answers, in their order.
    Distribution(Vec<f64>),
    /// The reply, which held no offered answer (an endpoint's; an in-process judge's
    /// distribution always exists).
    Unparseable(String),
}

impl Rating {
    /// The distribution, when the reply held one.
    pub fn distribution(&self) -> Option<&[f64]> {
        match self {
            Rating::Distribution(d) => Some(d),
            Rating::Unparseable(_) => None,
        }
    }

    /// The expected rating, when the reply held one.
    pub fn expectation(&self) -> Option<f64> {
        self.distribution().map(expectation)
    }
}

/// The expected rating under `distribution` (P(rating = k), k = 0, 1, …).
pub fn expectation(distribution: &[f64]) -> f64 {
    distribution
        .iter()
        .enumerate()
        .map(|(k, p)| k as f64 * p)
        .sum()
}
