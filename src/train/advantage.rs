//! Group-relative advantages: how much better each sample's reward is than its group's.
//!
//! GRPO samples `group_size` completions per prompt and scores each against the others of
//! its group, so no value model is needed. The centred reward is divided by a spread
//! (`scale`): the group's standard deviation (GRPO), the whole batch's (more stable when a
//! group's rewards nearly tie), or nothing (Dr. GRPO). `rank` replaces rewards by their
//! centred ranks within the group first, which ignores the reward's scale altogether.

use serde::{Deserialize, Serialize};

use crate::stats::{mean, std_dev};

/// What the centred rewards are divided by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AdvantageScale {
    /// The group's standard deviation.
    Group,
    /// The standard deviation of every reward in the batch.
    Batch,
    /// Nothing: advantages are the centred rewards.
    None,
}

/// Added to a standard deviation before dividing, as TRL does.
const EPSILON: f64 = 1e-4;

/// One advantage per reward; `rewards` holds consecutive groups of `group_size`.
pub fn advantages(
    rewards: &[f64],
    group_size: usize,
    scale: AdvantageScale,
    rank: bool,
) -> Vec<f64> {
    let group_size = group_size.max(1);
    let values: Vec<f64> = if rank {
        rewards.chunks(group_size).flat_map(ranks).collect()
    } else {
        rewards.to_vec()
    };
    let batch_std = std_dev(&values);
    values
        .chunks(group_size)
        .flat_map(|group| {
            let mean = mean(group);
            let spread = match scale {
                AdvantageScale::Group => std_dev(group) + EPSILON,
                AdvantageScale::Batch => batch_std + EPSILON,
                AdvantageScale::None => 1.0,
            };
            group.iter().map(move |r| (r - mean) / spread)
        })
        .collect()
}

/// Whether every reward of the group is the same (the group teaches nothing).
pub fn group_ties(group: &[f64]) -> bool {
    group.windows(2).all(|w| w[0] == w[1])
}

/// Ranks `0..n` (ties share their mean rank).
fn ranks(group: &[f64]) -> Vec<f64> {
    group
        .iter()
        .map(|r| {
            let below = group.iter().filter(|o| *o < r).count() as f64;
            let equal = group.iter().filter(|o| *o == r).count() as f64;
            below + (equal - 1.0) / 2.0
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_are_centred_and_scaled_on_their_own() {
        let rewards = [1.0, 3.0, 10.0, 10.0];
        let a = advantages(&rewards, 2, AdvantageScale::Group, false);
        let spread = std_dev(&[1.0, 3.0]) + EPSILON;
        assert!((a[0] + 1.0 / spread).abs() < 1e-12 && (a[1] - 1.0 / spread).abs() < 1e-12);
        assert_eq!(&a[2..], &[0.0, 0.0], "a tied group has no advantage");
        let none = advantages(&rewards, 2, AdvantageScale::None, false);
        assert_eq!(none, vec![-1.0, 1.0, 0.0, 0.0]);
        let batch = advantages(&rewards, 2, AdvantageScale::Batch, false);
        assert!((batch[1] - 1.0 / (std_dev(&rewards) + EPSILON)).abs() < 1e-12);
    }

    #[test]
    fn ranks_ignore_the_reward_scale() {
        let a = advantages(&[0.0, 100.0, 5.0], 3, AdvantageScale::None, true);
        assert_eq!(a, vec![-1.0, 1.0, 0.0]);
        assert_eq!(ranks(&[2.0, 2.0, 1.0]), vec![1.5, 1.5, 0.0]);
        assert!(group_ties(&[2.0, 2.0]) && !group_ties(&[2.0, 1.0]));
    }
}
