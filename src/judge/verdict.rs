//! The pairwise rule: a judge compares two outcomes in both orders, and one wins only
//! when it is preferred in both (the paper's rule); anything else is inconsistent, and
//! how often that happens says how much the verdicts depend on position.

use serde::{Deserialize, Serialize};

/// P(A preferred) with A shown first and with A shown second (`None` when the reply held
/// no answer).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Verdict {
    pub a_first: Option<f64>,
    pub a_second: Option<f64>,
}

/// Who a verdict prefers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Winner {
    A,
    B,
    /// The two orders disagree.
    Inconsistent,
    /// A reply held no answer.
    Unparseable,
}

impl Winner {
    /// The word written in tables.
    pub fn name(self) -> &'static str {
        match self {
            Winner::A => "a",
            Winner::B => "b",
            Winner::Inconsistent => "inconsistent",
            Winner::Unparseable => "unparseable",
        }
    }
}

impl Verdict {
    /// From P(first shown preferred) of the question with A first and of the one with B
    /// first.
    pub fn from_orders(a_shown_first: Option<f64>, b_shown_first: Option<f64>) -> Self {
        Verdict {
            a_first: a_shown_first,
            a_second: b_shown_first.map(|p| 1.0 - p),
        }
    }

    /// A or B when preferred in both orders, else inconsistent (or unparseable).
    pub fn winner(&self) -> Winner {
        match (self.a_first, self.a_second) {
            (Some(x), Some(y)) if x > 0.5 && y > 0.5 => Winner::A,
            (Some(x), Some(y)) if x < 0.5 && y < 0.5 => Winner::B,
            (Some(_), Some(_)) => Winner::Inconsistent,
            _ => Winner::Unparseable,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_win_needs_both_orders() {
        let v = |a_first, a_second| Verdict {
            a_first: Some(a_first),
            a_second: Some(a_second),
        };
        assert_eq!(v(0.8, 0.7).winner(), Winner::A);
        assert_eq!(v(0.2, 0.1).winner(), Winner::B);
        assert_eq!(v(0.8, 0.3).winner(), Winner::Inconsistent);
        let missing = Verdict {
            a_first: None,
            a_second: Some(0.9),
        };
        assert_eq!(missing.winner(), Winner::Unparseable);
        assert_eq!(
            Verdict::from_orders(Some(0.8), Some(0.4)).a_second,
            Some(0.6)
        );
    }
}
