//! One stage made present in the store: key it, reuse its stored output, or compute and
//! publish it.
//!
//! Before computing, a stage takes its key's lock and looks again, so two `accord run`s on
//! one store never compute the same key twice: the second waits and then finds the first
//! one's artifact. A corrupt entry, or an input that cannot be read, is reported and
//! recomputed. Which stage runs when, and what a failure means for the others, is the
//! caller's ([`super::local`]).

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use super::keying::stage_key;
use super::summary::StageResult;
use crate::plan::Plan;
use crate::progress::{Progress, StageProgress};
use crate::stage::{Input, StageContext, StageError};
use crate::store::artifact::NewArtifact;
use crate::store::{Lookup, Meta, StageKey, StageOutcome, Store, StoreError};

/// A finished stage, as its dependents see it.
#[derive(Clone)]
pub(super) struct Done {
    pub(super) key: String,
    pub(super) digest: String,
    pub(super) parts: StageKey,
}

/// Keys stage `i` and makes sure the store has its output (only reads it, when
/// `compute_only` names another stage); with the key's parts when it does.
pub(super) fn execute(
    plan: &Plan,
    store: &Store,
    i: usize,
    done: &[OnceLock<Done>],
    compute_only: Option<&str>,
    progress: &Progress,
    cancel: &AtomicBool,
) -> (StageResult, Option<StageKey>) {
    let started = Instant::now();
    let stage = &plan.stages[i];
    let mut result = StageResult {
        name: stage.name.clone(),
        key: None,
        meta: None,
        outcome: StageOutcome::Cached,
        seconds: 0.0,
    };
    let inputs: BTreeMap<String, String> = stage
        .needs
        .iter()
        .map(|d| {
            let input = done[*d].get().expect("inputs are done");
            (plan.stages[*d].name.clone(), input.digest.clone())
        })
        .collect();
    for &d in &stage.after {
        let upstream = done[d].get().expect("earlier stages are done");
        plan.models.trained_by_stage(
            &plan.stages[d].name,
            &store.entry_dir(&upstream.key),
            &upstream.digest,
        );
    }
    let parts = match stage_key(plan, i, store, inputs) {
        Ok(parts) => parts,
        Err(message) => {
            result.outcome = StageOutcome::Failed(message);
            return (result, None);
        }
    };
    let key = parts.hash();
    result.key = Some(key.clone());
    let outcome = match compute_only {
        Some(only) if only != stage.name => match usable(store, &stage.name, &key, progress) {
            Some(meta) => Ok((meta, false)),
            None => Err(StageError::Failed(format!(
                "its output is not in the store, and this job computes only `{only}` (did \
                 the job computing `{}` fail?)",
                stage.name
            ))),
        },
        _ => ensure(plan, store, i, &key, &parts, done, progress, cancel),
    };
    result.seconds = started.elapsed().as_secs_f64();
    match outcome {
        Ok((meta, ran)) => {
            result.outcome = if ran {
                StageOutcome::Ran
            } else {
                StageOutcome::Cached
            };
            result.meta = Some(Box::new(meta));
            (result, Some(parts))
        }
        Err(StageError::Cancelled) => {
            result.outcome = StageOutcome::Interrupted;
            (result, None)
        }
        Err(e) => {
            result.outcome = StageOutcome::Failed(e.to_string());
            (result, None)
        }
    }
}

/// Returns the artifact for `key`, computing it when the store lacks it; `true` if computed.
#[allow(clippy::too_many_arguments)]
fn ensure(
    plan: &Plan,
    store: &Store,
    i: usize,
    key: &str,
    parts: &StageKey,
    done: &[OnceLock<Done>],
    progress: &Progress,
    cancel: &AtomicBool,
) -> Result<(Meta, bool), StageError> {
    let stage = &plan.stages[i];
    let store_err = |e: StoreError| StageError::Failed(e.to_string());
    store.record_key(key, parts).map_err(store_err)?;
    if let Some(meta) = usable(store, &stage.name, key, progress) {
        return Ok((meta, false));
    }
    let bar = progress.stage(&stage.name);
    let _lock = store
        .lock_key(key, || {
            bar.message("waiting for another accord process computing the same output")
        })
        .map_err(store_err)?;
    if let Some(meta) = usable(store, &stage.name, key, progress) {
        bar.finish();
        return Ok((meta, false));
    }
    let started = Instant::now();
    let outcome = compute(plan, store, i, key, done, progress, cancel, &bar);
    bar.finish();
    let batch = outcome?;
    let meta = store
        .publish(NewArtifact {
            key,
            stage: &stage.name,
            parts,
            batch: &batch,
            seconds: started.elapsed().as_secs_f64(),
            files: Some(&crate::stage::output_dir(&store.work_dir(key))),
        })
        .map_err(store_err)?;
    let _ = std::fs::remove_dir_all(store.work_dir(key));
    Ok((meta, true))
}

/// The store's entry for `key` if it can be trusted; a corrupt one is reported and removed.
fn usable(store: &Store, stage: &str, key: &str, progress: &Progress) -> Option<Meta> {
    match store.lookup(key) {
        Lookup::Hit(meta) => Some(*meta),
        Lookup::Missing => None,
        Lookup::Corrupt(reason) => {
            progress.println(&format!(
                "{}: the stored output of `{stage}` is corrupt ({reason}); recomputing it",
                crate::output::warning_label()
            ));
            let _ = store.remove(key);
            None
        }
    }
}

/// Stage `d`'s output as an input; an unreadable entry is reported and recomputed.
fn read_input(
    plan: &Plan,
    store: &Store,
    d: usize,
    done: &[OnceLock<Done>],
    progress: &Progress,
    cancel: &AtomicBool,
) -> Result<Input, StageError> {
    let Done {
        key: input_key,
        parts: input_parts,
        ..
    } = done[d].get().expect("inputs are done");
    let upstream = &plan.stages[d];
    let batch = match store.read(input_key) {
        Ok((_, batch)) => batch,
        Err(e) => {
            progress.println(&format!(
                "{}: the stored output of `{}` cannot be used ({e}); recomputing it",
                crate::output::warning_label(),
                upstream.name
            ));
            let _ = store.remove(input_key);
            ensure(
                plan,
                store,
                d,
                input_key,
                input_parts,
                done,
                progress,
                cancel,
            )?;
            store
                .read(input_key)
                .map_err(|e| StageError::Failed(e.to_string()))?
                .1
        }
    };
    Ok(Input {
        name: upstream.name.clone(),
        kind: upstream.kind.kind().to_string(),
        batch,
    })
}

/// Re-hashes the checkpoint stage `t` wrote before a stage loads it; a corrupt one is
/// reported, recomputed, and handed to the model hub in its place.
fn verify_checkpoint(
    plan: &Plan,
    store: &Store,
    t: usize,
    done: &[OnceLock<Done>],
    progress: &Progress,
    cancel: &AtomicBool,
) -> Result<(), StageError> {
    let Done { key, parts, .. } = done[t].get().expect("training stages are done");
    let trainer = &plan.stages[t];
    let Err(e) = store.verify_files(key) else {
        return Ok(());
    };
    progress.println(&format!(
        "{}: the stored checkpoint of `{}` cannot be used ({e}); recomputing it",
        crate::output::warning_label(),
        trainer.name
    ));
    let _ = store.remove(key);
    let (meta, _) = ensure(plan, store, t, key, parts, done, progress, cancel)?;
    plan.models
        .trained_by_stage(&trainer.name, &store.entry_dir(key), &meta.digest);
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn compute(
    plan: &Plan,
    store: &Store,
    i: usize,
    key: &str,
    done: &[OnceLock<Done>],
    progress: &Progress,
    cancel: &AtomicBool,
    bar: &StageProgress,
) -> Result<arrow::record_batch::RecordBatch, StageError> {
    let stage = &plan.stages[i];
    let read = |d: usize| read_input(plan, store, d, done, progress, cancel);
    let inputs = stage
        .needs
        .iter()
        .map(|&d| read(d))
        .collect::<Result<Vec<_>, _>>()?;
    // What the stage's trained models learnt from: the inputs of their training stages.
    let mut trained_on = Vec::new();
    for (_, model) in stage.kind.models(&stage.params) {
        let trainer = plan
            .loaded
            .spec
            .models
            .get(&model)
            .and_then(|m| m.trained_by());
        if let Some(t) = trainer.and_then(|t| plan.stages.iter().position(|s| s.name == t)) {
            verify_checkpoint(plan, store, t, done, progress, cancel)?;
            for &d in &plan.stages[t].needs {
                if !trained_on
                    .iter()
                    .any(|input: &Input| input.name == plan.stages[d].name)
                {
                    trained_on.push(read(d)?);
                }
            }
        }
    }
    let rows = store.row_cache(stage.kind.kind());
    let ctx = StageContext {
        name: &stage.name,
        seed: stage.seed,
        spec_dir: &plan.loaded.dir,
        inputs,
        trained_on,
        work_dir: store.work_dir(key),
        rows: &rows,
        models: &plan.models,
        progress: bar,
        cancel,
    };
    let outcome = stage.kind.run(&stage.params, &ctx);
    let (computed, cached) = rows.counts();
    if computed + cached > 0 {
        progress.println(&format!(
            "{}: {computed} computed, {cached} cached",
            stage.name
        ));
    }
    let batch = outcome?;
    ctx.check_cancelled()?;
    let expected = stage.kind.output_schema();
    let produced = batch.schema();
    let same = expected.fields().len() == produced.fields().len()
        && expected
            .fields()
            .iter()
            .zip(produced.fields())
            .all(|(a, b)| a.name() == b.name() && a.data_type() == b.data_type());
    if !same {
        return Err(StageError::Failed(format!(
            "kind `{}` produced columns that differ from its declared schema",
            stage.kind.kind()
        )));
    }
    Ok(batch)
}
