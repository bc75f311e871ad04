//! A [`Comparison`] as text: a polars table for the terminal, Markdown, CSV or JSON.
//!
//! The terminal and Markdown forms round to three decimals and mark significant
//! differences with `*`; CSV and JSON keep every number, one column each.

use polars::prelude::*;

use super::compare::Comparison;

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
                    Some(d) => format!(
                        "{:+.3} [{}, {}]{}",
                        thousandths(d.mean),
                        round(d.ci.low),
                        round(d.ci.high),
                        if d.significant { " *" } else { "" }
                    ),
                    None => "-".into(),
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
        CompareFormat::Table => {
            let columns: Vec<Column> = text_columns(comparison)
                .into_iter()
                .map(|(name, values)| Column::new(name.as_str().into(), values))
                .collect();
            Ok(format!(
                "{}\n",
                DataFrame::new(comparison.metrics.len(), columns)?
            ))
        }
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
