//! An artifact's first rows as a table a person reads (`accord show SPEC STAGE`): the
//! columns worth reading, numbers rounded, long text cut with `…` to fit the width.
//!
//! Which columns a person reads, and in what order, depends on the artifact
//! ([`reading_columns`]); the reasons are given there, kind by kind. An artifact of a kind not listed (a library
//! user's own kind) shows every column but lists of numbers, which are token ids,
//! log-probs and distributions by convention. Whatever is left out, or does not fit the
//! width, is named in [`ArtifactTable::not_shown`]; `--format csv|json` keeps every column
//! and every digit, and is not this module's business.

use std::path::Path;

use polars::prelude::*;

use super::text_table::{self, Column as TextColumn};

/// The first rows of an artifact, as text.
#[derive(Debug, Clone, PartialEq)]
pub struct ArtifactTable {
    /// The header and one line per row.
    pub text: String,
    /// How many rows the table has.
    pub rows: usize,
    /// The artifact's columns that the table does not show, in artifact order.
    pub not_shown: Vec<String>,
}

/// The columns of a `kind`'s artifact a reader reads, in the order shown (`None`: the
/// kind is not listed). Identifiers and numbers come first, the longest text last, where
/// the width left over goes.
///
/// - `prompt_synthesis`: the dilemma with its tier and domain; the template id names
///   where the text came from, not what it says.
/// - `persona_pairing`: which personas face each other, how opposed they are, and on
///   what; the profiles (which the persona ids name), the conflict axis (which the ids
///   imply), the dilemma's id, tier and domain (in the dilemma stage) and the ids of extra
///   parties are left out.
/// - `rollout`: who said what, and the agreement check after it; the prompt, token ids
///   and log-probs are for training, and the dilemma, parties, group, sample, speaker
///   index, model, persona id and dialogue length repeat on every row of a dialogue
///   (`--transcript` shows them once per dialogue).
/// - `judge`: the score, whether it agreed and was judged, per-party satisfaction and the
///   rationale; the rating distribution, reliability repeats and raw unparseable replies
///   are for checking the judge, and the group is in the dialogue id.
/// - `grpo`: reward and group minimum, agreement, length, KL, loss, gradient norm and step
///   time; spread, extremes, clipping, ties, learning rate and throughput are for
///   diagnosing a run.
/// - `evaluate`, `judge_pairwise`: every column.
pub fn reading_columns(kind: &str) -> Option<&'static [&'static str]> {
    Some(match kind {
        "prompt_synthesis" => &["id", "tier", "domain", "text"],
        "persona_pairing" => &[
            "pair_id",
            "persona_a",
            "persona_b",
            "conflict_score",
            "dilemma",
        ],
        "rollout" => &["dialogue_id", "turn", "kind", "name", "p_agree", "text"],
        "judge" => &[
            "dialogue_id",
            "ca_score",
            "agreed",
            "judged",
            "satisfaction",
            "rationale",
        ],
        "grpo" => &[
            "step",
            "reward_mean",
            "group_min",
            "agreement_rate",
            "turns",
            "kl",
            "loss",
            "grad_norm",
            "step_seconds",
        ],
        "evaluate" => &["model", "suite", "metric", "item", "repeat", "value"],
        "judge_pairwise" => &[
            "group_id",
            "sample",
            "dialogue_a",
            "dialogue_b",
            "p_a_first",
            "p_a_second",
            "winner",
        ],
        _ => return None,
    })
}

/// The names of the columns of `df` a reader of a `kind` artifact sees, in order: the
/// kind's [`reading_columns`] that `df` has, or for a kind not listed every column but
/// lists of numbers.
fn shown(kind: &str, df: &DataFrame) -> Vec<String> {
    match reading_columns(kind) {
        Some(names) => names
            .iter()
            .filter(|n| df.column(n).is_ok())
            .map(|n| n.to_string())
            .collect(),
        None => df
            .columns()
            .iter()
            .filter(|c| !matches!(c.dtype(), DataType::List(item) if item.is_primitive_numeric()))
            .map(|c| c.name().to_string())
            .collect(),
    }
}

/// A float as a reader wants it: three decimals, or three significant digits in
/// scientific notation when that would hide it (`5.000e-6`).
fn float(x: f64) -> String {
    if !x.is_finite() {
        return x.to_string();
    }
    if x != 0.0 && (x.abs() < 1e-3 || x.abs() >= 1e9) {
        format!("{x:.3e}")
    } else {
        format!("{:.3}", x + 0.0)
    }
}

/// One cell: null as `-`, floats rounded, lists as `[a, b]`.
fn cell(value: &AnyValue) -> String {
    match value {
        AnyValue::Null => "-".into(),
        AnyValue::String(s) => (*s).to_string(),
        AnyValue::StringOwned(s) => s.to_string(),
        AnyValue::Float64(x) => float(*x),
        AnyValue::Float32(x) => float(f64::from(*x)),
        AnyValue::List(items) => format!(
            "[{}]",
            items
                .iter()
                .map(|v| cell(&v))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        other => other.to_string(),
    }
}

/// The first `rows` rows of the `kind` artifact at `path`, in at most `width` columns.
pub fn read(path: &Path, kind: &str, rows: usize, width: usize) -> PolarsResult<ArtifactTable> {
    let df = ParquetReader::new(std::fs::File::open(path)?)
        .with_slice(Some((0, rows)))
        .finish()?;
    let names = shown(kind, &df);
    let mut columns = Vec::new();
    for name in &names {
        let column = df.column(name)?;
        let cells: Vec<String> = column
            .as_materialized_series()
            .iter()
            .map(|v| cell(&v))
            .collect();
        columns.push(if column.dtype().is_primitive_numeric() {
            TextColumn::number(name.as_str(), cells)
        } else if column.dtype() == &DataType::Boolean {
            TextColumn::fixed(name.as_str(), cells)
        } else {
            TextColumn::text(name.as_str(), cells)
        });
    }
    let fitted = text_table::render(&columns, Some(width));
    // Left out by choice or for want of room, in artifact order.
    let not_shown = df
        .columns()
        .iter()
        .map(|c| c.name().to_string())
        .filter(|n| !names.contains(n) || fitted.left_out.contains(n))
        .collect();
    Ok(ArtifactTable {
        text: fitted.text,
        rows: df.height(),
        not_shown,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_round_to_three_decimals_unless_that_hides_them() {
        assert_eq!(float(3.04219), "3.042");
        assert_eq!(float(-0.0), "0.000");
        assert_eq!(float(5e-6), "5.000e-6");
        assert_eq!(float(0.0), "0.000");
    }

    #[test]
    fn token_lists_are_left_out_of_unknown_kinds_and_listed_kinds_keep_their_order() {
        let list = |item: Series| Series::new("".into(), vec![item]);
        let df = DataFrame::new(
            1,
            vec![
                Column::new("text".into(), ["hello there"]),
                Column::new("parties".into(), list(Series::new("".into(), ["a", "b"]))),
                Column::new("token_ids".into(), list(Series::new("".into(), [1u32, 2]))),
                Column::new("p_agree".into(), [0.5f64]),
            ],
        )
        .unwrap();
        assert_eq!(shown("my_kind", &df), vec!["text", "parties", "p_agree"]);
        assert_eq!(shown("rollout", &df), vec!["p_agree", "text"]);
    }
}
