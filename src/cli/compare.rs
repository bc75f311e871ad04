//! `accord compare SPEC [--baseline VARIANT] [--format …]`: every variant's evaluation
//! side by side.

use super::{SpecArgs, plans_or_report, print};
use crate::Registry;
use crate::report::compare::{EvaluationTable, compare as compare_tables, read_evaluation};
use crate::report::table::{CompareFormat, render};
use crate::status::{State, status};
use crate::store::Store;

pub fn compare(
    spec: &SpecArgs,
    registry: &Registry,
    store: &Store,
    baseline: Option<&str>,
    format: CompareFormat,
    resamples: usize,
) -> std::io::Result<i32> {
    let Some(plans) = plans_or_report(spec, registry)? else {
        return Ok(1);
    };
    let mut tables = Vec::new();
    let mut missing = Vec::new();
    for plan in &plans {
        let variant = plan
            .variant
            .clone()
            .unwrap_or_else(|| plan.loaded.spec.name.clone());
        let states = status(plan, store);
        for (stage, state) in plan.stages.iter().zip(&states) {
            if stage.kind.kind() != "evaluate" {
                continue;
            }
            match (&state.state, &state.key) {
                (State::Fresh, Some(key)) => {
                    let path = store.data_path(key);
                    let rows = read_evaluation(&path).map_err(|e| {
                        std::io::Error::other(format!("cannot read `{}`: {e}", path.display()))
                    })?;
                    tables.push(EvaluationTable {
                        variant: variant.clone(),
                        stage: stage.name.clone(),
                        rows,
                    });
                }
                _ => missing.push(format!("{variant}: {}", stage.name)),
            }
        }
    }
    if !missing.is_empty() {
        anstream::eprintln!(
            "{}: not evaluated yet (left out): {}\n  = hint: run `accord run {}` first",
            crate::output::warning_label(),
            missing.join("; "),
            spec.spec.display()
        );
    }
    if tables.is_empty() {
        anstream::eprintln!(
            "{}: nothing to compare: `{}` has no finished `evaluate` stage",
            crate::output::error_label(),
            spec.spec.display()
        );
        return Ok(1);
    }
    if let Some(name) = baseline
        && !tables
            .iter()
            .any(|t| t.variant == name || t.rows.iter().any(|r| r.model == name))
    {
        let mut known: Vec<&str> = tables.iter().map(|t| t.variant.as_str()).collect();
        for table in &tables {
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
        return Ok(1);
    }
    let seed = plans[0].loaded.spec.seed;
    let comparison = compare_tables(&tables, baseline, resamples, seed);
    match render(&comparison, format) {
        Ok(text) => print(&text),
        Err(e) => Err(std::io::Error::other(e.to_string())),
    }
}
