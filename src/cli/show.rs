//! `accord show SPEC STAGE`: a stage's output as a table a person reads (the columns
//! worth reading, fitted to the terminal: [`crate::report::artifact_table`]), as CSV or
//! JSON with every column and digit, as its path, or — for a `rollout` stage, with
//! `--transcript` — as transcripts of its dialogues with their judges' verdicts.

use super::transcripts::{self, Chosen};
use super::{SpecArgs, display_path, print, single_plan_or_report};
use crate::Registry;
use crate::report::artifact_table;
use crate::report::terminal_text::{output_width, wrap};
use crate::status::{State, status};
use crate::store::Store;

/// How `accord show` prints a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ShowFormat {
    Table,
    Csv,
    Json,
}

/// What `accord show` prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShowTarget {
    /// The first `rows` rows.
    Table { rows: usize, format: ShowFormat },
    /// The path of `data.parquet`.
    DataPath,
    /// The path of the entry's `checkpoint/` folder.
    Checkpoint,
    /// A `rollout` stage's dialogues as transcripts: the one whose id starts with
    /// `dialogue`, or the first `rows`.
    Transcripts {
        rows: usize,
        dialogue: Option<String>,
    },
}

pub fn show(
    spec: &SpecArgs,
    registry: &Registry,
    store: &Store,
    stage: &str,
    target: ShowTarget,
) -> std::io::Result<i32> {
    let Some(plan) = single_plan_or_report(spec, registry)? else {
        return Ok(1);
    };
    let Some(index) = plan.index_of(stage) else {
        let names: Vec<String> = plan.stages.iter().map(|s| s.name.clone()).collect();
        let hint = match crate::spec::error::closest(stage, &names) {
            Some(best) => format!("did you mean `{best}`?"),
            None => format!("stages in this spec: {}", names.join(", ")),
        };
        anstream::eprintln!(
            "{}: `{}` has no stage `{stage}`\n  = hint: {hint}",
            crate::output::error_label(),
            spec.spec.display()
        );
        return Ok(1);
    };
    let states = status(&plan, store);
    let state = &states[index];
    let key = match (&state.state, &state.key) {
        (State::Fresh, Some(key)) => key.clone(),
        _ => {
            anstream::eprintln!(
                "{}: stage `{stage}` has no current output: {}\n  = hint: run `accord run {}` first",
                crate::output::error_label(),
                state.reason,
                spec.spec.display()
            );
            return Ok(1);
        }
    };
    let path = store.data_path(&key);
    let kind = plan.stages[index].kind.kind().to_string();
    let (rows, format) = match target {
        ShowTarget::DataPath => return print(&format!("{}\n", display_path(&path))),
        ShowTarget::Checkpoint => {
            let folder = store.entry_dir(&key).join("checkpoint");
            if !folder.is_dir() {
                anstream::eprintln!(
                    "{}: stage `{stage}` has no checkpoint\n  = hint: `grpo` stages write one; `--path` prints the table's path",
                    crate::output::error_label(),
                );
                return Ok(1);
            }
            return print(&format!("{}\n", display_path(&folder)));
        }
        ShowTarget::Table { rows, format } => (rows, format),
        ShowTarget::Transcripts { rows, dialogue } => {
            let chosen = match dialogue {
                Some(prefix) => Chosen::Dialogue(prefix),
                None => Chosen::First(rows),
            };
            let text = transcripts::text(&plan, &states, store, index, &chosen, output_width());
            return match text {
                Ok(text) => print(&text),
                Err(e) => {
                    anstream::eprintln!("{}: {e}", crate::output::error_label());
                    Ok(1)
                }
            };
        }
    };
    match render(&path, &kind, rows, format) {
        Ok(text) => print(&text),
        Err(e) => {
            anstream::eprintln!(
                "{}: cannot read `{}`: {e}",
                crate::output::error_label(),
                path.display()
            );
            Ok(1)
        }
    }
}

/// The first `rows` rows of the `kind` artifact at `path` in `format`.
fn render(
    path: &std::path::Path,
    kind: &str,
    rows: usize,
    format: ShowFormat,
) -> polars::prelude::PolarsResult<String> {
    use polars::prelude::*;
    let head = || -> PolarsResult<DataFrame> {
        let file = std::fs::File::open(path)?;
        Ok(ParquetReader::new(file).finish()?.head(Some(rows)))
    };
    let mut out = Vec::new();
    match format {
        ShowFormat::Table => return table_text(path, kind, rows),
        ShowFormat::Csv => {
            let mut df = head()?;
            lists_as_text(&mut df)?;
            CsvWriter::new(&mut out).finish(&mut df)?
        }
        ShowFormat::Json => {
            JsonWriter::new(&mut out)
                .with_json_format(JsonFormat::Json)
                .finish(&mut head()?)?;
            out.push(b'\n');
        }
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// The table a person reads, `N of M rows`, and which columns it leaves out.
fn table_text(
    path: &std::path::Path,
    kind: &str,
    rows: usize,
) -> polars::prelude::PolarsResult<String> {
    let width = output_width();
    let table = artifact_table::read(path, kind, rows, width)?;
    let mut text = table.text;
    text.push_str(&format!("{} of {} rows\n", table.rows, total_rows(path)));
    if !table.not_shown.is_empty() {
        let note = format!(
            "not shown: {} (`--format csv` or `--format json` has every column)",
            table.not_shown.join(", ")
        );
        for line in wrap(&note, width) {
            text.push_str(&line);
            text.push('\n');
        }
    }
    Ok(text)
}

/// Replaces list columns (token ids, log-probs), which CSV cannot hold, with their text
/// `[1, 2, 3]`.
fn lists_as_text(df: &mut polars::prelude::DataFrame) -> polars::prelude::PolarsResult<()> {
    use polars::prelude::*;
    let lists: Vec<PlSmallStr> = df
        .columns()
        .iter()
        .filter(|c| matches!(c.dtype(), DataType::List(_)))
        .map(|c| c.name().clone())
        .collect();
    for name in lists {
        let series = df.column(&name)?.as_materialized_series().clone();
        let text: Vec<Option<String>> = (0..series.len())
            .map(|i| match series.get(i) {
                Ok(AnyValue::List(items)) => Some(format!(
                    "[{}]",
                    items
                        .iter()
                        .map(|x| x.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
                _ => None,
            })
            .collect();
        df.replace(&name, Series::new(name.clone(), text).into())?;
    }
    Ok(())
}

fn total_rows(path: &std::path::Path) -> u64 {
    std::fs::File::open(path)
        .ok()
        .and_then(|f| parquet::file::reader::SerializedFileReader::new(f).ok())
        .map(|r| {
            use parquet::file::reader::FileReader;
            r.metadata().file_metadata().num_rows() as u64
        })
        .unwrap_or(0)
}
