//! The evaluation's output rows, one per (model, metric, item, repeat), and their
//! summaries: mean ± SD over repeats and a bootstrap interval over items.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, UInt32Array};
use serde::{Deserialize, Serialize};

use super::Suite;
use crate::seed::SeededRng;
use crate::stats::{self, Summary};
use crate::table;

/// One metric of one model, summarised.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricSummary {
    pub model: String,
    pub suite: String,
    pub metric: String,
    #[serde(flatten)]
    pub summary: Summary,
}

/// repeat → item → value.
type ByRepeat = BTreeMap<u32, BTreeMap<String, Option<f64>>>;

/// The output rows being built.
#[derive(Default)]
pub struct Rows {
    model: Vec<String>,
    suite: Vec<&'static str>,
    metric: Vec<&'static str>,
    item: Vec<String>,
    repeat: Vec<u32>,
    value: Vec<Option<f64>>,
}

impl Rows {
    pub fn push(
        &mut self,
        model: &str,
        suite: Suite,
        metric: &'static str,
        item: &str,
        repeat: usize,
        value: Option<f64>,
    ) {
        self.model.push(model.to_string());
        self.suite.push(suite.name());
        self.metric.push(metric);
        self.item.push(item.to_string());
        self.repeat.push(repeat as u32);
        self.value.push(value);
    }

    /// The columns, in the stage's schema order.
    pub fn columns(&self) -> Vec<ArrayRef> {
        vec![
            table::strings(&self.model),
            table::strings(&self.suite),
            table::strings(&self.metric),
            table::strings(&self.item),
            Arc::new(UInt32Array::from(self.repeat.clone())),
            Arc::new(Float64Array::from(self.value.clone())),
        ]
    }

    /// Mean ± SD over repeats and a bootstrap interval over items, per (model, metric),
    /// in order of first appearance.
    pub fn summaries(&self, resamples: usize, seed: u64) -> Vec<MetricSummary> {
        let mut order: Vec<(String, &'static str, &'static str)> = Vec::new();
        // (model, metric) → repeat → item → value
        let mut grid: BTreeMap<(String, &str), ByRepeat> = BTreeMap::new();
        for i in 0..self.model.len() {
            let id = (self.model[i].clone(), self.metric[i]);
            if !grid.contains_key(&id) {
                order.push((self.model[i].clone(), self.suite[i], self.metric[i]));
            }
            grid.entry(id)
                .or_default()
                .entry(self.repeat[i])
                .or_default()
                .insert(self.item[i].clone(), self.value[i]);
        }
        order
            .into_iter()
            .map(|(model, suite, metric)| {
                let repeats = &grid[&(model.clone(), metric)];
                let items: Vec<&String> = repeats
                    .values()
                    .flat_map(BTreeMap::keys)
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect();
                let values: Vec<Vec<Option<f64>>> = repeats
                    .values()
                    .map(|by_item| {
                        items
                            .iter()
                            .map(|item| by_item.get(*item).copied().flatten())
                            .collect()
                    })
                    .collect();
                let seed = SeededRng::new(seed, &[model.as_bytes(), metric.as_bytes()]).next_u64();
                MetricSummary {
                    summary: stats::summarise(&values, resamples, seed),
                    model,
                    suite: suite.into(),
                    metric: metric.into(),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Summaries group by model and metric, spread over repeats, in order of appearance.
    #[test]
    fn rows_summarise_per_model_and_metric() {
        let mut rows = Rows::default();
        for (repeat, values) in [[4.0, 2.0], [5.0, 3.0]].iter().enumerate() {
            for (item, v) in ["d1", "d2"].iter().zip(values) {
                rows.push(
                    "trained",
                    Suite::CollectiveAgency,
                    "ca_score",
                    item,
                    repeat,
                    Some(*v),
                );
            }
        }
        rows.push(
            "trained",
            Suite::General,
            "mc_accuracy",
            "mc1",
            0,
            Some(1.0),
        );
        let summaries = rows.summaries(100, 1);
        assert_eq!(summaries.len(), 2);
        assert_eq!(summaries[0].metric, "ca_score");
        assert_eq!(summaries[0].summary.mean, 3.5);
        assert!((summaries[0].summary.std_dev - 0.5f64.sqrt()).abs() < 1e-12);
        assert_eq!(summaries[1].summary.repeats, 1);
    }
}
