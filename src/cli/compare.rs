//! `accord compare SPEC|RUN… [--baseline VARIANT|MODEL] [--format …] [--plots DIR]` and
//! `accord report SPEC|RUN… [-o FILE.html]`: every variant's (or recorded run's)
//! evaluation side by side, as text or as one HTML file (which also shows each variant's
//! best- and worst-scored dialogues).

use std::path::{Path, PathBuf};

use polars::prelude::*;

use super::{SpecArgs, display_path, plans_or_report, print};
use crate::Registry;
use crate::report::columns;
use crate::report::compare::{
    Comparison, EvaluationTable, compare as compare_tables, read_evaluation,
};
use crate::report::plots::{RewardCurve, write_plots};
use crate::report::table::{CompareFormat, render};
use crate::status::{State, status};
use crate::store::Store;

/// What `compare` and `report` compare, and against what.
#[derive(Debug, clap::Args)]
pub struct ComparisonArgs {
    #[command(flatten)]
    pub spec: SpecArgs,
    /// More run ids, when SPEC is a run id (`accord compare RUN RUN…`): the runs'
    /// recorded evaluations are compared instead of a spec's variants.
    #[arg(value_name = "RUN")]
    pub runs: Vec<String>,
    /// The variant the others are compared with, or a model the others are compared with
    /// within each variant (paired bootstrap over items; `*` marks a difference whose 95%
    /// interval leaves out zero).
    #[arg(long, value_name = "VARIANT|MODEL")]
    pub baseline: Option<String>,
    /// Bootstrap resamples for every interval (default: each `evaluate` stage's own
    /// `resamples`, so that the intervals are the ones its run printed).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub resamples: Option<u64>,
}

/// What a comparison reads: each variant's `evaluate` tables and `grpo` reward curves.
struct Gathered {
    tables: Vec<EvaluationTable>,
    curves: Vec<RewardCurve>,
    name: String,
}

/// The reward columns of a `grpo` metrics table.
fn read_curve(path: &Path, label: String) -> PolarsResult<RewardCurve> {
    let df = ParquetReader::new(std::fs::File::open(path)?).finish()?;
    let floats = |name: &str| -> PolarsResult<Vec<f64>> {
        Ok(columns::floats(&df, name)?
            .into_iter()
            .map(|v| v.unwrap_or(f64::NAN))
            .collect())
    };
    let steps = columns::u32s(&df, "step")?
        .into_iter()
        .map(f64::from)
        .collect();
    Ok(RewardCurve {
        label,
        steps,
        mean: floats("reward_mean")?,
        group_min: floats("group_min")?,
    })
}

/// Reads what the comparison needs — from a spec's variants, or from the runs named by
/// `runs` when the spec argument is no file but a run id — or prints why it cannot and
/// returns `None`.
fn gather(
    spec: &SpecArgs,
    runs: &[String],
    registry: &Registry,
    store: &Store,
) -> std::io::Result<Option<Gathered>> {
    if !spec.spec.exists() {
        let mut ids = vec![spec.spec.display().to_string()];
        ids.extend(runs.iter().cloned());
        return gather_runs(&ids, store);
    }
    if !runs.is_empty() {
        anstream::eprintln!(
            "{}: give a spec or run ids, not both (`{}` is a file)",
            crate::output::error_label(),
            spec.spec.display()
        );
        return Ok(None);
    }
    let Some(plans) = plans_or_report(spec, registry)? else {
        return Ok(None);
    };
    let mut gathered = Gathered {
        tables: Vec::new(),
        curves: Vec::new(),
        name: plans[0].loaded.spec.name.clone(),
    };
    let mut missing = Vec::new();
    for plan in &plans {
        let variant = plan
            .variant
            .clone()
            .unwrap_or_else(|| plan.loaded.spec.name.clone());
        let states = status(plan, store);
        let trainers = plan
            .stages
            .iter()
            .filter(|s| s.kind.kind() == "grpo")
            .count();
        for (stage, state) in plan.stages.iter().zip(&states) {
            let kind = stage.kind.kind();
            if kind != "evaluate" && kind != "grpo" {
                continue;
            }
            let (State::Fresh, Some(key)) = (&state.state, &state.key) else {
                missing.push(format!("{variant}: {}", stage.name));
                continue;
            };
            let path = store.data_path(key);
            let unreadable = |e: PolarsError| {
                std::io::Error::other(format!("cannot read `{}`: {e}", path.display()))
            };
            if kind == "evaluate" {
                gathered.tables.push(EvaluationTable {
                    variant: variant.clone(),
                    stage: stage.name.clone(),
                    seed: stage.seed,
                    resamples: resamples_of(&stage.params.json),
                    rows: read_evaluation(&path).map_err(unreadable)?,
                });
            } else {
                let label = if trainers > 1 {
                    format!("{variant} {}", stage.name)
                } else {
                    variant.clone()
                };
                gathered
                    .curves
                    .push(read_curve(&path, label).map_err(unreadable)?);
            }
        }
    }
    if !missing.is_empty() {
        anstream::eprintln!(
            "{}: not run yet, left out: {}\n  = hint: run `accord run {}` first",
            crate::output::warning_label(),
            missing.join("; "),
            spec.spec.display()
        );
    }
    if gathered.tables.is_empty() {
        anstream::eprintln!(
            "{}: nothing to compare: `{}` has no finished `evaluate` stage",
            crate::output::error_label(),
            spec.spec.display()
        );
        return Ok(None);
    }
    Ok(Some(gathered))
}

/// What the recorded runs `ids` (or unique prefixes of them) evaluated and trained; each
/// run is labelled by its variant, or by its id.
fn gather_runs(ids: &[String], store: &Store) -> std::io::Result<Option<Gathered>> {
    let records = store
        .runs()
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let mut chosen = Vec::new();
    for id in ids {
        let matching: Vec<_> = records
            .iter()
            .filter(|r| r.id.starts_with(id.as_str()))
            .collect();
        match matching.as_slice() {
            [record] => chosen.push(*record),
            [] => {
                anstream::eprintln!(
                    "{}: `{id}` is neither a spec file nor a run in the store\n  = hint: run ids are the names of the files in `{}`",
                    crate::output::error_label(),
                    display_path(&store.root().join("runs"))
                );
                return Ok(None);
            }
            _ => {
                anstream::eprintln!(
                    "{}: `{id}` starts {} run ids; give more of it",
                    crate::output::error_label(),
                    matching.len()
                );
                return Ok(None);
            }
        }
    }
    let label = |record: &crate::store::RunRecord| match &record.variant {
        Some(variant)
            if chosen
                .iter()
                .filter(|r| r.variant.as_ref() == Some(variant))
                .count()
                == 1 =>
        {
            variant.clone()
        }
        _ => format!("run {}", record.id),
    };
    let mut gathered = Gathered {
        tables: Vec::new(),
        curves: Vec::new(),
        name: chosen[0].spec_name.clone(),
    };
    for record in &chosen {
        for stage in &record.stages {
            let Some(key) = stage.key.as_deref().filter(|_| stage.outcome.succeeded()) else {
                continue;
            };
            let path = store.data_path(key);
            let unreadable = |e: PolarsError| {
                std::io::Error::other(format!("cannot read `{}`: {e}", path.display()))
            };
            match stage.kind.as_str() {
                "evaluate" => {
                    let parts = store.key_parts(key);
                    gathered.tables.push(EvaluationTable {
                        variant: label(record),
                        stage: stage.name.clone(),
                        seed: parts.as_ref().map_or(0, |parts| parts.seed),
                        resamples: parts
                            .map_or(crate::stats::RESAMPLES, |parts| resamples_of(&parts.params)),
                        rows: read_evaluation(&path).map_err(unreadable)?,
                    })
                }
                "grpo" => {
                    let curve = read_curve(&path, format!("{} {}", label(record), stage.name));
                    gathered.curves.push(curve.map_err(unreadable)?);
                }
                _ => {}
            }
        }
    }
    if gathered.tables.is_empty() {
        anstream::eprintln!(
            "{}: nothing to compare: none of these runs has a finished `evaluate` stage",
            crate::output::error_label()
        );
        return Ok(None);
    }
    Ok(Some(gathered))
}

/// The bootstrap resamples of an `evaluate` stage with parameters `params` (its key's).
fn resamples_of(params: &serde_json::Value) -> usize {
    params["resamples"]
        .as_u64()
        .map_or(crate::stats::RESAMPLES, |n| n as usize)
}

/// The comparison against `baseline`, or `None` (printed) when it names nothing evaluated.
fn comparison(
    gathered: &Gathered,
    baseline: Option<&str>,
    resamples: Option<u64>,
) -> Option<Comparison> {
    let tables = &gathered.tables;
    if let Some(name) = baseline
        && !tables
            .iter()
            .any(|t| t.variant == name || t.rows.iter().any(|r| r.model == name))
    {
        let mut known: Vec<&str> = tables.iter().map(|t| t.variant.as_str()).collect();
        for table in tables {
            for row in &table.rows {
                if !known.contains(&row.model.as_str()) {
                    known.push(&row.model);
                }
            }
        }
        anstream::eprintln!(
            "{}: `--baseline {name}` is neither an evaluated variant nor an evaluated model; those are: {}",
            crate::output::error_label(),
            known.join(", ")
        );
        return None;
    }
    Some(compare_tables(
        tables,
        baseline,
        resamples.map(|n| n as usize),
    ))
}

pub fn compare(
    what: &ComparisonArgs,
    registry: &Registry,
    store: &Store,
    format: CompareFormat,
    plots: Option<&Path>,
) -> std::io::Result<i32> {
    let Some(gathered) = gather(&what.spec, &what.runs, registry, store)? else {
        return Ok(1);
    };
    let Some(comparison) = comparison(&gathered, what.baseline.as_deref(), what.resamples) else {
        return Ok(1);
    };
    if let Some(dir) = plots {
        let written = write_plots(dir, &comparison, &gathered.curves)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        for path in written {
            anstream::eprintln!("wrote {}", display_path(&path));
        }
    }
    match render(&comparison, format) {
        Ok(text) => print(&text),
        Err(e) => Err(std::io::Error::other(e.to_string())),
    }
}

pub fn report(
    what: &ComparisonArgs,
    registry: &Registry,
    store: &Store,
    output: Option<PathBuf>,
) -> std::io::Result<i32> {
    let Some(gathered) = gather(&what.spec, &what.runs, registry, store)? else {
        return Ok(1);
    };
    let Some(comparison) = comparison(&gathered, what.baseline.as_deref(), what.resamples) else {
        return Ok(1);
    };
    // The best and worst dialogues of each variant's judges (a spec's only: run records
    // do not say which rollout a judge scored).
    let extremes = if what.spec.spec.exists() {
        let Some(plans) = plans_or_report(&what.spec, registry)? else {
            return Ok(1);
        };
        super::transcripts::extremes(&plans, store)
            .map_err(|e| std::io::Error::other(e.to_string()))?
    } else {
        Vec::new()
    };
    let generated = jiff::Timestamp::now()
        .strftime("%Y-%m-%d %H:%M UTC")
        .to_string();
    let html = crate::report::html::report(
        &gathered.name,
        &generated,
        &comparison,
        &gathered.curves,
        &extremes,
    )
    .map_err(|e| std::io::Error::other(e.to_string()))?;
    let path = output.unwrap_or_else(|| default_report_path(&gathered.name));
    // Written whole, then renamed: a reader never sees half a report.
    let partial = path.with_extension("html.partial");
    let written = std::fs::write(&partial, html).and_then(|()| std::fs::rename(&partial, &path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&partial);
        anstream::eprintln!(
            "{}: cannot write `{}`: {e}",
            crate::output::error_label(),
            path.display()
        );
        return Ok(1);
    }
    print(&format!("{}\n", display_path(&path)))
}

/// `NAME-report.html` in the current folder. Specs with names that cannot be file names
/// are rejected by `validate`, but run records written before that was checked may hold
/// one: such a name is cut to a plain file name, never a path that leaves the folder.
fn default_report_path(name: &str) -> PathBuf {
    let mut safe: String = name
        .chars()
        .map(|c| {
            if matches!(c, '/' | '\\') || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect();
    while safe.len() > crate::spec::error::SPEC_NAME_MAX {
        safe.pop();
    }
    if matches!(safe.trim(), "" | "." | "..") {
        safe = "accord".into();
    }
    PathBuf::from(format!("{safe}-report.html"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_report_path_stays_in_the_current_folder() {
        for name in ["../../etc/x", "/abs", "..", "", "a\0b", &"é".repeat(300)] {
            let path = default_report_path(name);
            assert_eq!(path.components().count(), 1, "{name:?}: {path:?}");
            assert!(path.as_os_str().len() <= 255, "{name:?}");
        }
        assert_eq!(default_report_path("t"), PathBuf::from("t-report.html"));
    }
}
