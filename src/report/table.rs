//! A [`Comparison`] as text: an aligned table for the terminal, Markdown, CSV or JSON.
//!
//! The terminal and Markdown forms round to three decimals and mark significant
//! differences with `*` (on the terminal in a column of its own, so the numbers stay
//! aligned); CSV and JSON keep every number, one column each. The terminal table is
//! printed whole, never cut to the window: a comparison's cells are all numbers and names.

use polars::prelude::*;

use super::compare::{Comparison, Delta};
use super::text_table::{self, Column as TextColumn};

/// How `accord compare` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CompareFormat {
    Table,
    Markdown,
    Csv,
    Json,
}

/// `x` rounded to three decimals, without the sign of a negative zero.
fn thousandths(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0 + 0.0
}

/// `x` to three decimals (`0.000`, never `-0.000`).
fn round(x: f64) -> String {
    if x.is_finite() {
        format!("{:.3}", thousandths(x))
    } else {
        "-".into()
    }
}

/// The columns as text, for the terminal, Markdown and HTML.
pub(crate) fn text_columns(comparison: &Comparison) -> Vec<(String, Vec<String>)> {
    let m = &comparison.metrics;
    let mut columns: Vec<(String, Vec<String>)> = Vec::new();
    if comparison.settings.is_empty() {
        columns.push((
            "variant".into(),
            m.iter().map(|r| r.variant.clone()).collect(),
        ));
    }
    for (i, setting) in comparison.settings.iter().enumerate() {
        columns.push((
            setting.clone(),
            m.iter().map(|r| r.settings[i].clone()).collect(),
        ));
    }
    columns.push(("model".into(), m.iter().map(|r| r.model.clone()).collect()));
    columns.push((
        "metric".into(),
        m.iter().map(|r| r.metric.clone()).collect(),
    ));
    columns.push((
        "mean".into(),
        m.iter().map(|r| round(r.summary.mean)).collect(),
    ));
    columns.push((
        "± sd".into(),
        m.iter().map(|r| round(r.summary.std_dev)).collect(),
    ));
    columns.push((
        "95% CI".into(),
        m.iter()
            .map(|r| match r.summary.ci {
                Some(ci) => format!("[{}, {}]", round(ci.low), round(ci.high)),
                None => "-".into(),
            })
            .collect(),
    ));
    columns.push((
        "n".into(),
        m.iter()
            .map(|r| format!("{}×{}", r.summary.items, r.summary.repeats))
            .collect(),
    ));
    if let Some(baseline) = &comparison.baseline {
        columns.push((
            format!("Δ vs {baseline}"),
            m.iter()
                .map(|r| match &r.delta {
                    Some(d) if d.significant => format!("{} *", delta(d)),
                    Some(d) => delta(d),
                    None => "-".into(),
                })
                .collect(),
        ));
    }
    columns
}

/// A difference and its interval, `+0.145 [0.028, 0.292]`.
fn delta(d: &Delta) -> String {
    format!(
        "{:+.3} [{}, {}]",
        thousandths(d.mean),
        round(d.ci.low),
        round(d.ci.high)
    )
}

/// The terminal table: the columns of [`text_columns`], names left-aligned and numbers
/// right-aligned, with the significance mark in a last column of its own.
fn terminal_columns(comparison: &Comparison) -> Vec<TextColumn> {
    let labels = comparison.settings.len().max(1) + 2;
    let mut columns: Vec<TextColumn> = text_columns(comparison)
        .into_iter()
        .enumerate()
        .map(|(i, (name, cells))| {
            if i < labels {
                TextColumn::fixed(name, cells)
            } else {
                TextColumn::number(name, cells)
            }
        })
        .collect();
    if let Some(baseline) = &comparison.baseline {
        let m = &comparison.metrics;
        columns.pop();
        columns.push(TextColumn::number(
            format!("Δ vs {baseline}"),
            m.iter()
                .map(|r| r.delta.as_ref().map_or_else(|| "-".into(), delta))
                .collect(),
        ));
        columns.push(TextColumn::fixed(
            "",
            m.iter()
                .map(|r| match &r.delta {
                    Some(d) if d.significant => "*".into(),
                    _ => String::new(),
                })
                .collect(),
        ));
    }
    columns
}

/// Every number in its own column, for CSV.
fn numeric_frame(comparison: &Comparison) -> PolarsResult<DataFrame> {
    let m = &comparison.metrics;
    let text = |name: &str, values: Vec<String>| Column::new(name.into(), values);
    let number = |name: &str, values: Vec<Option<f64>>| Column::new(name.into(), values);
    let mut columns = vec![text(
        "variant",
        m.iter().map(|r| r.variant.clone()).collect(),
    )];
    for (i, setting) in comparison.settings.iter().enumerate() {
        columns.push(text(
            setting,
            m.iter().map(|r| r.settings[i].clone()).collect(),
        ));
    }
    columns.extend([
        text("stage", m.iter().map(|r| r.stage.clone()).collect()),
        text("model", m.iter().map(|r| r.model.clone()).collect()),
        text("suite", m.iter().map(|r| r.suite.clone()).collect()),
        text("metric", m.iter().map(|r| r.metric.clone()).collect()),
        number("mean", m.iter().map(|r| Some(r.summary.mean)).collect()),
        number(
            "std_dev",
            m.iter().map(|r| Some(r.summary.std_dev)).collect(),
        ),
        number(
            "ci_low",
            m.iter().map(|r| r.summary.ci.map(|c| c.low)).collect(),
        ),
        number(
            "ci_high",
            m.iter().map(|r| r.summary.ci.map(|c| c.high)).collect(),
        ),
        Column::new(
            "items".into(),
            m.iter().map(|r| r.summary.items as u32).collect::<Vec<_>>(),
        ),
        Column::new(
            "repeats".into(),
            m.iter()
                .map(|r| r.summary.repeats as u32)
                .collect::<Vec<_>>(),
        ),
        number(
            "delta",
            m.iter().map(|r| r.delta.as_ref().map(|d| d.mean)).collect(),
        ),
        number(
            "delta_low",
            m.iter()
                .map(|r| r.delta.as_ref().map(|d| d.ci.low))
                .collect(),
        ),
        number(
            "delta_high",
            m.iter()
                .map(|r| r.delta.as_ref().map(|d| d.ci.high))
                .collect(),
        ),
        Column::new(
            "significant".into(),
            m.iter()
                .map(|r| r.delta.as_ref().map(|d| d.significant))
                .collect::<Vec<_>>(),
        ),
    ]);
    DataFrame::new(comparison.metrics.len(), columns)
}

/// `comparison` in `format`.
pub fn render(comparison: &Comparison, format: CompareFormat) -> PolarsResult<String> {
    match format {
        CompareFormat::Table => Ok(text_table::render(&terminal_columns(comparison), None).text),
        CompareFormat::Markdown => Ok(markdown(comparison)),
        CompareFormat::Csv => {
            let mut out = Vec::new();
            CsvWriter::new(&mut out).finish(&mut numeric_frame(comparison)?)?;
            Ok(String::from_utf8_lossy(&out).into_owned())
        }
        CompareFormat::Json => {
            let mut text = serde_json::to_string_pretty(comparison).expect("comparisons serialise");
            text.push('\n');
            Ok(text)
        }
    }
}

/// A Markdown table (pipes in cells escaped).
pub fn markdown(comparison: &Comparison) -> String {
    let columns = text_columns(comparison);
    let cell = |s: &str| s.replace('|', "\\|");
    let mut out = format!(
        "| {} |\n|{}|\n",
        columns
            .iter()
            .map(|(n, _)| cell(n))
            .collect::<Vec<_>>()
            .join(" | "),
        columns
            .iter()
            .map(|_| " --- ")
            .collect::<Vec<_>>()
            .join("|")
    );
    for row in 0..comparison.metrics.len() {
        let cells: Vec<String> = columns.iter().map(|(_, v)| cell(&v[row])).collect();
        out.push_str(&format!("| {} |\n", cells.join(" | ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::compare::ComparedMetric;
    use crate::stats::{Interval, Summary};

    /// Two models' metrics, the trained one against the base: one significant difference.
    fn comparison() -> Comparison {
        let metric =
            |model: &str, metric: &str, mean: f64, delta: Option<(f64, f64, f64)>| ComparedMetric {
                variant: "quickstart".into(),
                settings: Vec::new(),
                stage: "eval".into(),
                model: model.into(),
                suite: "general".into(),
                metric: metric.into(),
                summary: Summary {
                    mean,
                    std_dev: 0.05,
                    ci: Some(Interval {
                        low: mean - 1.0,
                        high: mean + 1.0,
                    }),
                    items: 8,
                    repeats: 2,
                },
                delta: delta.map(|(mean, low, high)| Delta {
                    mean,
                    ci: Interval { low, high },
                    significant: Interval { low, high }.excludes_zero(),
                    items: 8,
                }),
            };
        Comparison {
            settings: Vec::new(),
            baseline: Some("policy".into()),
            metrics: vec![
                metric("policy", "ca_score", 3.047, None),
                metric("trained", "ca_score", 3.038, Some((-0.009, -0.17, 0.155))),
                metric("policy", "perplexity", 40.025, None),
                metric("trained", "perplexity", 40.17, Some((0.145, 0.028, 0.292))),
            ],
        }
    }

    #[test]
    fn the_terminal_table_is_aligned_and_marks_significant_differences() {
        let text = render(&comparison(), CompareFormat::Table).unwrap();
        let plain = anstream::adapter::strip_str(&text).to_string();
        assert!(
            !plain.contains("shape:") && !plain.contains("---"),
            "{plain}"
        );
        insta::assert_snapshot!(plain);
        // Every line ends at a cell, and the marked line is the significant one.
        assert!(plain.lines().all(|l| l == l.trim_end()));
        let marked: Vec<&str> = plain.lines().filter(|l| l.ends_with('*')).collect();
        assert_eq!(marked.len(), 1);
        assert!(marked[0].contains("trained") && marked[0].contains("perplexity"));
    }

    #[test]
    fn markdown_keeps_the_mark_in_the_difference_cell() {
        let text = render(&comparison(), CompareFormat::Markdown).unwrap();
        assert!(text.contains("| +0.145 [0.028, 0.292] * |"), "{text}");
        assert!(text.contains("| -0.009 [-0.170, 0.155] |"), "{text}");
    }
}
