//! `accord show SPEC STAGE`: print a stage's output with polars.

use super::{SpecArgs, display_path, print, single_plan_or_report};
use crate::Registry;
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShowTarget {
    /// The first `rows` rows.
    Table { rows: usize, format: ShowFormat },
    /// The path of `data.parquet`.
    DataPath,
    /// The path of the entry's `checkpoint/` folder.
    Checkpoint,
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
    };
    match render(&path, rows, format) {
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

fn render(
    path: &std::path::Path,
    rows: usize,
    format: ShowFormat,
) -> polars::prelude::PolarsResult<String> {
    use polars::prelude::*;
    let file = std::fs::File::open(path)?;
    let mut df = ParquetReader::new(file).finish()?.head(Some(rows));
    let mut out = Vec::new();
    match format {
        ShowFormat::Table => {
            let shown = df.height();
            return Ok(format!("{df}\n{shown} of {} rows\n", total_rows(path)));
        }
        ShowFormat::Csv => {
            lists_as_text(&mut df)?;
            CsvWriter::new(&mut out).finish(&mut df)?
        }
        ShowFormat::Json => {
            JsonWriter::new(&mut out)
                .with_json_format(JsonFormat::Json)
                .finish(&mut df)?;
            out.push(b'\n');
        }
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
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
