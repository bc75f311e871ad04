//! What each optimiser step measured: one row of `grpo`'s output per step, and the
//! progress a saved training state records.

use serde::{Deserialize, Deserializer, Serialize};

use crate::dialogue::Dialogue;
use crate::stats;
use crate::table::table_row;
use crate::train::update::Measured;

table_row! {
    /// One optimiser step's metrics.
    #[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
    pub struct StepMetrics {
        /// The optimiser step, from 1.
        pub step: u32,
        /// Mean reward of the step's dialogues.
        pub reward_mean: f64,
        /// Standard deviation of the rewards.
        pub reward_std: f64,
        /// Lowest reward.
        pub reward_min: f64,
        /// Highest reward.
        pub reward_max: f64,
        /// Mean over groups of each group's lowest reward (the paper's curve).
        pub group_min: f64,
        /// Fraction of dialogues that reached agreement.
        pub agreement_rate: f64,
        /// Mean turns per dialogue.
        pub turns: f64,
        /// Mean KL estimate (k3) to the base policy per trained token; 0 when kl_beta is 0.
        pub kl: f64,
        /// Fraction of trained tokens whose ratio was clipped.
        pub clip_fraction: f64,
        /// Fraction of groups whose rewards all tie (no signal), before any resampling.
        pub tied_groups: f64,
        /// The objective, summed over micro-batches (last inner step).
        pub loss: f64,
        /// Global gradient norm before clipping (last inner step).
        pub grad_norm: f64,
        /// Learning rate of the step.
        pub lr: f64,
        /// Turn tokens generated per second of rolling out and rewarding (resampled groups
        /// included).
        pub tokens_per_s: f64,
        /// Wall-clock seconds of the whole step.
        pub step_seconds: f64,
    }
}

/// What a step saw, from which its metrics follow.
pub struct Observed<'a> {
    /// From 0.
    pub step: usize,
    pub rewards: &'a [f64],
    pub group_size: usize,
    pub dialogues: &'a [Dialogue],
    /// Groups whose rewards all tied before any resampling.
    pub tied_first: usize,
    pub update: Measured,
    pub lr: f64,
    /// Turn tokens generated, resampled groups included, and the seconds rolling out and
    /// rewarding took.
    pub generated: usize,
    pub rollout_seconds: f64,
    pub step_seconds: f64,
}

impl StepMetrics {
    pub fn of(seen: &Observed) -> Self {
        let rewards = seen.rewards;
        let groups: Vec<&[f64]> = rewards.chunks(seen.group_size.max(1)).collect();
        let lowest = |values: &[f64]| values.iter().copied().fold(f64::INFINITY, f64::min);
        let trained_tokens = seen.update.tokens.max(1) as f64;
        let dialogues = seen.dialogues.len().max(1) as f64;
        StepMetrics {
            step: seen.step as u32 + 1,
            reward_mean: stats::mean(rewards),
            reward_std: stats::std_dev(rewards),
            reward_min: lowest(rewards),
            reward_max: rewards.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            group_min: stats::mean(&groups.iter().map(|g| lowest(g)).collect::<Vec<_>>()),
            agreement_rate: seen.dialogues.iter().filter(|d| d.agreed).count() as f64 / dialogues,
            turns: stats::mean(
                &seen
                    .dialogues
                    .iter()
                    .map(|d| d.turns.len() as f64)
                    .collect::<Vec<_>>(),
            ),
            kl: seen.update.kl_sum / trained_tokens,
            clip_fraction: seen.update.clipped_tokens / trained_tokens,
            tied_groups: seen.tied_first as f64 / groups.len().max(1) as f64,
            loss: seen.update.loss,
            grad_norm: seen.update.grad_norm,
            lr: seen.lr,
            tokens_per_s: seen.generated as f64 / seen.rollout_seconds.max(1e-9),
            step_seconds: seen.step_seconds,
        }
    }
}

/// What the training state records besides the models.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Progress {
    pub steps_done: usize,
    #[serde(deserialize_with = "rows_or_columns")]
    pub metrics: Vec<StepMetrics>,
}

/// The metrics of a saved state: a row per step, or (states saved by accord before rows
/// existed) a column per metric.
fn rows_or_columns<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<StepMetrics>, D::Error> {
    #[derive(Deserialize)]
    struct Columns {
        reward_mean: Vec<f64>,
        reward_std: Vec<f64>,
        reward_min: Vec<f64>,
        reward_max: Vec<f64>,
        group_min: Vec<f64>,
        agreement_rate: Vec<f64>,
        turns: Vec<f64>,
        kl: Vec<f64>,
        clip_fraction: Vec<f64>,
        tied_groups: Vec<f64>,
        loss: Vec<f64>,
        grad_norm: Vec<f64>,
        lr: Vec<f64>,
        tokens_per_s: Vec<f64>,
        step_seconds: Vec<f64>,
    }
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Saved {
        Rows(Vec<StepMetrics>),
        Columns(Columns),
    }
    Ok(match Saved::deserialize(d)? {
        Saved::Rows(rows) => rows,
        Saved::Columns(c) => (0..c.reward_mean.len())
            .map(|i| StepMetrics {
                step: i as u32 + 1,
                reward_mean: c.reward_mean[i],
                reward_std: c.reward_std[i],
                reward_min: c.reward_min[i],
                reward_max: c.reward_max[i],
                group_min: c.group_min[i],
                agreement_rate: c.agreement_rate[i],
                turns: c.turns[i],
                kl: c.kl[i],
                clip_fraction: c.clip_fraction[i],
                tied_groups: c.tied_groups[i],
                loss: c.loss[i],
                grad_norm: c.grad_norm[i],
                lr: c.lr[i],
                tokens_per_s: c.tokens_per_s[i],
                step_seconds: c.step_seconds[i],
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_and_the_columns_come_from_the_row_type() {
        let schema = StepMetrics::schema();
        assert_eq!(schema.fields().len(), 16);
        assert_eq!(schema.field(0).name(), "step");
        assert_eq!(
            schema.field(14).metadata()["description"],
            "Turn tokens generated per second of rolling out and rewarding (resampled groups included)."
        );
        let row: StepMetrics = serde_json::from_value(serde_json::json!({
            "step": 1, "reward_mean": 1.5, "reward_std": 0.5, "reward_min": 1.0,
            "reward_max": 2.0, "group_min": 1.0, "agreement_rate": 1.0, "turns": 2.0,
            "kl": 0.0, "clip_fraction": 0.0, "tied_groups": 0.0, "loss": -0.1,
            "grad_norm": 0.3, "lr": 1e-5, "tokens_per_s": 10.0, "step_seconds": 3.0
        }))
        .unwrap();
        let columns = StepMetrics::columns(&[row, row]);
        assert_eq!(columns.len(), 16);
        assert!(columns.iter().all(|c| c.len() == 2));
    }

    #[test]
    fn states_saved_as_columns_still_resume() {
        let names = [
            "reward_mean",
            "reward_std",
            "reward_min",
            "reward_max",
            "group_min",
            "agreement_rate",
            "turns",
            "kl",
            "clip_fraction",
            "tied_groups",
            "loss",
            "grad_norm",
            "lr",
            "tokens_per_s",
            "step_seconds",
        ];
        let mut metrics = serde_json::Map::new();
        for (i, name) in names.iter().enumerate() {
            metrics.insert(
                name.to_string(),
                serde_json::json!([i as f64, 2.0 * i as f64]),
            );
        }
        let saved = serde_json::json!({"steps_done": 2, "metrics": metrics});
        let progress: Progress = serde_json::from_value(saved).unwrap();
        assert_eq!(progress.metrics.len(), 2);
        assert_eq!(progress.metrics[1].step, 2);
        assert_eq!(progress.metrics[1].turns, 12.0);
    }
}
