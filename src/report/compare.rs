//! Variants side by side: each `evaluate` stage's metrics per variant and model, with
//! their spread and confidence interval, the ablation settings that tell variants apart,
//! and, against a baseline variant (or a baseline model), paired-bootstrap differences.
//!
//! The per-item rows are read with polars from the store; a metric's summary is the one
//! the stage itself reports ([`stats::summarise`]). A difference pairs the items both
//! variants scored (each item's mean over repeats) and is significant when its 95%
//! interval leaves out zero. Rendering lives in [`super::table`]; this module only
//! gathers and computes.

use std::collections::BTreeMap;
use std::path::Path;

use polars::prelude::*;

use super::columns::{floats, strings, u32s};
use serde::Serialize;

use crate::seed::SeededRng;
use crate::spec::variants::settings_of;
use crate::stats::{self, Interval, Summary};

/// One variant's output of one `evaluate` stage.
pub struct EvaluationTable {
    /// The variant's name (`axis=value,…`), or the spec's name without ablations.
    pub variant: String,
    pub stage: String,
    /// The stage's seed and `resamples`: the intervals resample as the stage's own
    /// summaries do, so they agree with what the run printed.
    pub seed: u64,
    pub resamples: usize,
    pub rows: Vec<ItemValue>,
}

/// One row of an `evaluate` table.
#[derive(Debug, Clone)]
pub struct ItemValue {
    pub model: String,
    pub suite: String,
    pub metric: String,
    pub item: String,
    pub repeat: u32,
    pub value: Option<f64>,
}

/// Reads an `evaluate` stage's table.
pub fn read_evaluation(path: &Path) -> PolarsResult<Vec<ItemValue>> {
    let df = ParquetReader::new(std::fs::File::open(path)?).finish()?;
    let (model, suite, metric, item) = (
        strings(&df, "model")?,
        strings(&df, "suite")?,
        strings(&df, "metric")?,
        strings(&df, "item")?,
    );
    let (repeat, value) = (u32s(&df, "repeat")?, floats(&df, "value")?);
    Ok((0..df.height())
        .map(|i| ItemValue {
            model: model[i].clone(),
            suite: suite[i].clone(),
            metric: metric[i].clone(),
            item: item[i].clone(),
            repeat: repeat[i],
            value: value[i],
        })
        .collect())
}

/// A difference from the baseline variant.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Delta {
    /// Mean over shared items of (this variant − baseline).
    pub mean: f64,
    pub ci: Interval,
    pub significant: bool,
    /// Items both variants scored.
    pub items: usize,
}

/// One line of the comparison: a metric of a model in a variant.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ComparedMetric {
    pub variant: String,
    /// The value of each differing setting (see [`Comparison::settings`]), in order.
    pub settings: Vec<String>,
    pub stage: String,
    pub model: String,
    pub suite: String,
    pub metric: String,
    #[serde(flatten)]
    pub summary: Summary,
    /// Against the baseline variant, for the other variants.
    pub delta: Option<Delta>,
}

/// Variants × metrics.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    /// The ablation axes whose values differ between the variants compared.
    pub settings: Vec<String>,
    pub baseline: Option<String>,
    pub metrics: Vec<ComparedMetric>,
}

/// Each item's mean over repeats for (model, metric): item → mean.
fn item_means(rows: &[ItemValue], model: &str, metric: &str) -> BTreeMap<String, f64> {
    let mut sums: BTreeMap<String, (f64, usize)> = BTreeMap::new();
    for row in rows
        .iter()
        .filter(|r| r.model == model && r.metric == metric)
    {
        if let Some(v) = row.value {
            let entry = sums.entry(row.item.clone()).or_default();
            entry.0 += v;
            entry.1 += 1;
        }
    }
    sums.into_iter()
        .map(|(item, (sum, n))| (item, sum / n as f64))
        .collect()
}

/// Compares `tables` (one per variant and `evaluate` stage). With `baseline` naming a
/// variant, adds each other variant's paired difference from it (model by model); naming
/// a model, each other model's paired difference from it within the same variant. Each
/// table's intervals take its own `resamples` unless `resamples` overrides them all.
pub fn compare(
    tables: &[EvaluationTable],
    baseline: Option<&str>,
    resamples: Option<usize>,
) -> Comparison {
    // The axes whose values are not the same in every variant.
    let all: Vec<Vec<(String, String)>> = tables.iter().map(|t| settings_of(&t.variant)).collect();
    let mut settings: Vec<String> = Vec::new();
    for pairs in &all {
        for (axis, _) in pairs {
            if !settings.contains(axis) {
                settings.push(axis.clone());
            }
        }
    }
    let value_of = |pairs: &[(String, String)], axis: &str| {
        pairs
            .iter()
            .find(|(a, _)| a == axis)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    settings.retain(|axis| {
        let first = value_of(&all[0], axis);
        all.iter().any(|pairs| value_of(pairs, axis) != first)
    });
    // A baseline that is no variant but a model compares models within each variant.
    let by_model = baseline.is_some_and(|b| {
        !tables.iter().any(|t| t.variant == b)
            && tables.iter().any(|t| t.rows.iter().any(|r| r.model == b))
    });
    let mut metrics = Vec::new();
    for (table, pairs) in tables.iter().zip(&all) {
        // (model, suite, metric) in order of appearance.
        let mut seen: Vec<(String, String, String)> = Vec::new();
        for row in &table.rows {
            let id = (row.model.clone(), row.suite.clone(), row.metric.clone());
            if !seen.contains(&id) {
                seen.push(id);
            }
        }
        // The baseline variant's table (none for the baseline variant itself).
        let against_variant = baseline.filter(|b| *b != table.variant).and_then(|b| {
            tables
                .iter()
                .find(|t| t.variant == b && t.stage == table.stage)
        });
        let resamples = resamples.unwrap_or(table.resamples);
        for (model, suite, metric) in seen {
            let mut by_repeat: BTreeMap<u32, BTreeMap<String, Option<f64>>> = BTreeMap::new();
            for row in table
                .rows
                .iter()
                .filter(|r| r.model == model && r.metric == metric)
            {
                by_repeat
                    .entry(row.repeat)
                    .or_default()
                    .insert(row.item.clone(), row.value);
            }
            let items: Vec<String> = by_repeat
                .values()
                .flat_map(|m| m.keys().cloned())
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
            let values: Vec<Vec<Option<f64>>> = by_repeat
                .values()
                .map(|m| items.iter().map(|i| m.get(i).copied().flatten()).collect())
                .collect();
            // As the stage derives it (`evaluate`'s summaries).
            let stream =
                SeededRng::new(table.seed, &[model.as_bytes(), metric.as_bytes()]).next_u64();
            // Against the baseline variant's same model, or, when the baseline names a
            // model, against that model in this variant.
            let theirs = match (against_variant, baseline) {
                (Some(base), _) => Some(item_means(&base.rows, &model, &metric)),
                (None, Some(b)) if by_model && b != model => {
                    Some(item_means(&table.rows, b, &metric))
                }
                _ => None,
            };
            let delta = theirs.and_then(|theirs| {
                let ours = item_means(&table.rows, &model, &metric);
                let shared: Vec<&String> =
                    ours.keys().filter(|k| theirs.contains_key(*k)).collect();
                let a: Vec<f64> = shared.iter().map(|k| ours[*k]).collect();
                let b: Vec<f64> = shared.iter().map(|k| theirs[*k]).collect();
                let ci = stats::paired_bootstrap(&a, &b, resamples, stream)?;
                let differences: Vec<f64> = a.iter().zip(&b).map(|(x, y)| x - y).collect();
                Some(Delta {
                    mean: stats::mean(&differences),
                    significant: ci.excludes_zero(),
                    ci,
                    items: shared.len(),
                })
            });
            metrics.push(ComparedMetric {
                variant: table.variant.clone(),
                settings: settings.iter().map(|axis| value_of(pairs, axis)).collect(),
                stage: table.stage.clone(),
                model,
                suite,
                metric,
                summary: stats::summarise(&values, resamples, stream),
                delta,
            });
        }
    }
    Comparison {
        settings,
        baseline: baseline.map(String::from),
        metrics,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(model: &str, values: &[(u32, &str, f64)]) -> Vec<ItemValue> {
        values
            .iter()
            .map(|&(repeat, item, value)| ItemValue {
                model: model.into(),
                suite: "collective_agency".into(),
                metric: "ca_score".into(),
                item: item.into(),
                repeat,
                value: Some(value),
            })
            .collect()
    }

    /// Only differing axes are settings; a consistent gain over the baseline variant is
    /// significant, the baseline itself has no delta.
    #[test]
    fn differences_pair_items_against_the_baseline_variant() {
        let items: Vec<String> = (0..12).map(|i| format!("d{i}")).collect();
        let base: Vec<(u32, &str, f64)> = items
            .iter()
            .enumerate()
            .map(|(i, item)| (0, item.as_str(), (i % 5) as f64))
            .collect();
        let better: Vec<(u32, &str, f64)> = base.iter().map(|&(r, i, v)| (r, i, v + 0.5)).collect();
        let tables = vec![
            EvaluationTable {
                variant: "kl=0.0,seed=1".into(),
                stage: "eval".into(),
                seed: 1,
                resamples: 500,
                rows: rows("trained", &base),
            },
            EvaluationTable {
                variant: "kl=0.04,seed=1".into(),
                stage: "eval".into(),
                seed: 1,
                resamples: 500,
                rows: rows("trained", &better),
            },
        ];
        let comparison = compare(&tables, Some("kl=0.0,seed=1"), None);
        assert_eq!(comparison.settings, vec!["kl"]);
        assert_eq!(comparison.metrics[0].settings, vec!["0.0"]);
        assert_eq!(comparison.metrics[0].delta, None);
        let delta = comparison.metrics[1].delta.clone().unwrap();
        assert!((delta.mean - 0.5).abs() < 1e-12);
        assert!(delta.significant);
        assert_eq!(delta.items, 12);

        // A model as the baseline: models compared within one variant.
        let mut both = rows("base", &base);
        both.extend(rows("trained", &better));
        let one = vec![EvaluationTable {
            variant: "quickstart".into(),
            stage: "eval".into(),
            seed: 1,
            resamples: 500,
            rows: both,
        }];
        let comparison = compare(&one, Some("base"), None);
        assert!(comparison.settings.is_empty());
        assert_eq!(comparison.metrics[0].delta, None);
        let delta = comparison.metrics[1].delta.clone().unwrap();
        assert!((delta.mean - 0.5).abs() < 1e-12 && delta.significant);
    }
}
