//! Running a plan: key each stage, reuse what the store has, compute the rest.
//!
//! Stages start in topological order as soon as their inputs are done, up to `--jobs` at
//! once, each on its own thread. A stage's key needs its upstream outputs' digests, so it
//! is computed when the stage becomes ready. Before computing, a stage takes its key's
//! lock and looks again, so two `accord run`s on one store never compute the same key
//! twice: the second waits and then finds the first one's artifact.
//!
//! Failure policy: with `fail` (the default) no new stage starts after a failure; with
//! `keep-going` independent stages go on. Either way the stages that could not run are
//! named with the reason. Ctrl-C sets a flag stages poll between rows; the stage in
//! progress stops, leaves no artifact, and a later run computes it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Instant;

use crate::plan::Plan;
use crate::progress::{Progress, StageProgress};
use crate::stage::{Input, Resource, StageContext, StageError};
use crate::store::artifact::NewArtifact;
use crate::store::records::new_run_id;
use crate::store::{Lookup, Meta, RunRecord, StageKey, StageRecord, Store, StoreError};

/// What to do when a stage fails.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum OnError {
    /// Start no new stage; report the ones that did not run.
    #[default]
    Fail,
    /// Run every stage that does not depend on the failed one.
    KeepGoing,
}

/// How to run a plan.
#[derive(Debug, Clone)]
pub struct ExecOptions {
    /// Stages running at once.
    pub jobs: usize,
    pub on_error: OnError,
    /// The `--set` overrides the spec was loaded with, for the run record.
    pub overrides: Vec<String>,
    /// Compute only this stage; every other stage must already be in the store (a
    /// cluster job, whose inputs other jobs computed).
    pub compute_only: Option<String>,
}

impl Default for ExecOptions {
    fn default() -> Self {
        Self {
            jobs: 1,
            on_error: OnError::Fail,
            overrides: Vec::new(),
            compute_only: None,
        }
    }
}

/// What happened to a stage.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Ran,
    Cached,
    Failed(String),
    Skipped(String),
    Interrupted,
}

impl Outcome {
    pub fn name(&self) -> &'static str {
        match self {
            Outcome::Ran => "ran",
            Outcome::Cached => "cached",
            Outcome::Failed(_) => "failed",
            Outcome::Skipped(_) => "skipped",
            Outcome::Interrupted => "interrupted",
        }
    }
}

/// One stage's result.
#[derive(Debug, Clone)]
pub struct StageResult {
    pub name: String,
    pub key: Option<String>,
    pub meta: Option<Box<Meta>>,
    pub outcome: Outcome,
    pub seconds: f64,
}

/// The results of a run, in plan order, and the record saved for it.
#[derive(Debug)]
pub struct RunSummary {
    pub results: Vec<StageResult>,
    pub record: RunRecord,
}

impl RunSummary {
    pub fn count(&self, name: &str) -> usize {
        self.results
            .iter()
            .filter(|r| r.outcome.name() == name)
            .count()
    }

    pub fn succeeded(&self) -> bool {
        self.results
            .iter()
            .all(|r| matches!(r.outcome, Outcome::Ran | Outcome::Cached))
    }

    pub fn interrupted(&self) -> bool {
        self.results
            .iter()
            .any(|r| r.outcome == Outcome::Interrupted)
    }

    /// `2 ran, 4 cached` (and failures, skips, interruptions when there are any).
    pub fn line(&self) -> String {
        outcome_line(self.results.iter().map(|r| r.outcome.name()))
    }
}

/// `2 ran, 4 cached` (and failures, skips, interruptions when there are any) for stages
/// that ended in `states` (`ran`, `cached`, …).
pub(crate) fn outcome_line<'a>(states: impl Iterator<Item = &'a str> + Clone) -> String {
    let count = |name: &str| states.clone().filter(|s| *s == name).count();
    let mut line = format!("{} ran, {} cached", count("ran"), count("cached"));
    for state in ["failed", "skipped", "interrupted"] {
        let n = count(state);
        if n > 0 {
            line.push_str(&format!(", {n} {state}"));
        }
    }
    line
}

/// The key of stage `i`, given the digests of its inputs' outputs.
pub fn stage_key(
    plan: &Plan,
    i: usize,
    store: &Store,
    inputs: BTreeMap<String, String>,
) -> Result<StageKey, String> {
    let stage = &plan.stages[i];
    let mut files = BTreeMap::new();
    let mut embedded = BTreeMap::new();
    for resource in stage.kind.resources(&stage.params) {
        match resource {
            Resource::File { field, path } => {
                let full = plan.loaded.dir.join(&path);
                let digest = store.file_digest(&full).map_err(|e| {
                    format!(
                        "cannot read `{}` (from `with.{field}`): {e}",
                        path.display()
                    )
                })?;
                files.insert(field, digest);
            }
            Resource::Embedded { name, bytes } => {
                embedded.insert(name.to_string(), blake3::hash(bytes).to_hex().to_string());
            }
        }
    }
    let mut models = BTreeMap::new();
    let mut backend = None;
    for (field, name) in stage.kind.models(&stage.params) {
        let identity = plan
            .models
            .identity(&name, store)
            .map_err(|e| format!("model `{name}` (from `with.{field}`): {e}"))?;
        models.insert(name.clone(), identity);
        if plan.models.in_process(&name) {
            let resolved = plan.models.backend().map_err(|e| e.to_string())?;
            backend = Some(resolved.name.to_string());
        }
    }
    Ok(StageKey {
        kind: stage.kind.kind().to_string(),
        version: stage.kind.version(),
        params: stage.params.json.clone(),
        seed: stage.seed,
        inputs,
        files,
        embedded,
        models,
        backend,
    })
}

/// A finished stage, as its dependents see it.
#[derive(Clone)]
struct Done {
    key: String,
    digest: String,
    parts: StageKey,
}

#[derive(Clone)]
enum Slot {
    Pending,
    Running,
    Done(Box<Done>),
    Failed,
    Skipped,
}

/// Runs every stage of `plan` that the store does not already have.
pub fn run(
    plan: &Plan,
    store: &Store,
    options: &ExecOptions,
    progress: &Progress,
    cancel: &AtomicBool,
) -> Result<RunSummary, StoreError> {
    let started = Instant::now();
    let started_at = jiff::Timestamp::now();
    let _run_lock = store.lock_shared_for_run()?;
    store.clean_abandoned_writes();
    let n = plan.stages.len();
    let mut slots = vec![Slot::Pending; n];
    let mut results: Vec<Option<StageResult>> = vec![None; n];
    let mut stop = false;
    let (tx, rx) = mpsc::channel::<(usize, StageResult, Option<StageKey>)>();
    std::thread::scope(|scope| {
        let mut running = 0;
        loop {
            if !stop && !cancel.load(Ordering::Relaxed) {
                for i in 0..n {
                    if running >= options.jobs.max(1) {
                        break;
                    }
                    let ready = matches!(slots[i], Slot::Pending)
                        && plan.stages[i]
                            .after
                            .iter()
                            .all(|d| matches!(slots[*d], Slot::Done(_)));
                    if !ready {
                        continue;
                    }
                    slots[i] = Slot::Running;
                    running += 1;
                    let done: Vec<Option<Done>> = slots
                        .iter()
                        .map(|s| match s {
                            Slot::Done(done) => Some((**done).clone()),
                            _ => None,
                        })
                        .collect();
                    let tx = tx.clone();
                    scope.spawn(move || {
                        let (result, parts) =
                            execute(plan, store, i, &done, options, progress, cancel);
                        let _ = tx.send((i, result, parts));
                    });
                }
            }
            if running == 0 {
                break;
            }
            let (i, result, parts) = rx.recv().expect("workers send before exiting");
            running -= 1;
            let name = &plan.stages[i].name;
            match &result.outcome {
                Outcome::Ran => {
                    let rows = result.meta.as_ref().map_or(0, |m| m.rows);
                    progress.println(&format!(
                        "{name}: ran in {:.2}s ({rows} rows)",
                        result.seconds
                    ));
                }
                Outcome::Cached => progress.println(&format!("{name}: cached")),
                Outcome::Failed(message) => {
                    anstream::eprintln!(
                        "{}: stage `{name}` failed: {message}",
                        crate::output::error_label()
                    );
                }
                _ => {}
            }
            slots[i] = match (&result.outcome, parts) {
                (Outcome::Ran | Outcome::Cached, Some(parts)) => Slot::Done(Box::new(Done {
                    key: result.key.clone().expect("finished stages have keys"),
                    digest: result
                        .meta
                        .as_ref()
                        .expect("finished stages have artifacts")
                        .digest
                        .clone(),
                    parts,
                })),
                (Outcome::Interrupted, _) => {
                    stop = true;
                    Slot::Failed
                }
                _ => {
                    if options.on_error == OnError::Fail {
                        stop = true;
                    }
                    // Everything downstream of a failure cannot run.
                    for j in i + 1..n {
                        let blocked = plan.stages[j]
                            .after
                            .iter()
                            .any(|d| matches!(slots[*d], Slot::Failed | Slot::Skipped) || *d == i);
                        if blocked && matches!(slots[j], Slot::Pending) {
                            let failed = &plan.stages[i].name;
                            slots[j] = Slot::Skipped;
                            results[j] = Some(StageResult {
                                name: plan.stages[j].name.clone(),
                                key: None,
                                meta: None,
                                outcome: Outcome::Skipped(format!(
                                    "it needs `{failed}`, which did not finish"
                                )),
                                seconds: 0.0,
                            });
                        }
                    }
                    Slot::Failed
                }
            };
            results[i] = Some(result);
        }
    });
    let interrupted = cancel.load(Ordering::Relaxed);
    for (i, slot) in slots.iter().enumerate() {
        if matches!(slot, Slot::Pending) {
            results[i] = Some(StageResult {
                name: plan.stages[i].name.clone(),
                key: None,
                meta: None,
                outcome: if interrupted {
                    Outcome::Interrupted
                } else {
                    Outcome::Skipped(
                        "an earlier stage failed (`--on-error keep-going` runs the rest)".into(),
                    )
                },
                seconds: 0.0,
            });
        }
    }
    let results: Vec<StageResult> = results
        .into_iter()
        .map(|r| r.expect("every stage has a result"))
        .collect();
    for r in &results {
        if let Outcome::Skipped(reason) = &r.outcome {
            progress.println(&format!("{}: skipped: {reason}", r.name));
        }
    }
    let stages = results
        .iter()
        .zip(&plan.stages)
        .map(|(r, s)| StageRecord {
            name: r.name.clone(),
            kind: s.kind.kind().into(),
            key: r.key.clone(),
            digest: r.meta.as_ref().map(|m| m.digest.clone()),
            state: r.outcome.name().into(),
            seconds: r.seconds,
            error: match &r.outcome {
                Outcome::Failed(e) | Outcome::Skipped(e) => Some(e.clone()),
                _ => None,
            },
        })
        .collect();
    let record = run_record(
        plan,
        &options.overrides,
        (started_at, started.elapsed().as_secs_f64()),
        stages,
    );
    store.save_run(&record)?;
    Ok(RunSummary { results, record })
}

/// The record of a run of `plan` whose stages ended as `stages` say; its outcome follows
/// from theirs.
pub(crate) fn run_record(
    plan: &Plan,
    overrides: &[String],
    (started_at, seconds): (jiff::Timestamp, f64),
    stages: Vec<StageRecord>,
) -> RunRecord {
    let outcome = if stages.iter().any(|s| s.state == "interrupted") {
        "interrupted"
    } else if stages
        .iter()
        .all(|s| matches!(s.state.as_str(), "ran" | "cached"))
    {
        "succeeded"
    } else {
        "failed"
    };
    RunRecord {
        id: new_run_id(),
        spec: plan.loaded.file.display().to_string(),
        spec_name: plan.loaded.spec.name.clone(),
        spec_digest: plan.loaded.digest.clone(),
        variant: plan.variant.clone(),
        overrides: overrides.to_vec(),
        started_at: started_at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        seconds,
        outcome: outcome.into(),
        accord_version: crate::VERSION.into(),
        commit: crate::COMMIT.map(String::from),
        backend: plan.models.resolved_backend().map(ToString::to_string),
        adapter: plan
            .models
            .resolved_backend()
            .and_then(|b| b.adapter.clone()),
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        stages,
    }
}

/// Keys stage `i` and makes sure the store has its output.
fn execute(
    plan: &Plan,
    store: &Store,
    i: usize,
    done: &[Option<Done>],
    options: &ExecOptions,
    progress: &Progress,
    cancel: &AtomicBool,
) -> (StageResult, Option<StageKey>) {
    let started = Instant::now();
    let stage = &plan.stages[i];
    let mut result = StageResult {
        name: stage.name.clone(),
        key: None,
        meta: None,
        outcome: Outcome::Cached,
        seconds: 0.0,
    };
    let inputs: BTreeMap<String, String> = stage
        .needs
        .iter()
        .map(|d| {
            let input = done[*d].as_ref().expect("inputs are done");
            (plan.stages[*d].name.clone(), input.digest.clone())
        })
        .collect();
    for &d in &stage.after {
        let upstream = done[d].as_ref().expect("earlier stages are done");
        plan.models.trained_by_stage(
            &plan.stages[d].name,
            &store.entry_dir(&upstream.key),
            &upstream.digest,
        );
    }
    let parts = match stage_key(plan, i, store, inputs) {
        Ok(parts) => parts,
        Err(message) => {
            result.outcome = Outcome::Failed(message);
            return (result, None);
        }
    };
    let key = parts.hash();
    result.key = Some(key.clone());
    let outcome = match &options.compute_only {
        Some(only) if *only != stage.name => match usable(store, &stage.name, &key, progress) {
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
            result.outcome = if ran { Outcome::Ran } else { Outcome::Cached };
            result.meta = Some(Box::new(meta));
            (result, Some(parts))
        }
        Err(StageError::Cancelled) => {
            result.outcome = Outcome::Interrupted;
            (result, None)
        }
        Err(e) => {
            result.outcome = Outcome::Failed(e.to_string());
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
    done: &[Option<Done>],
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
    done: &[Option<Done>],
    progress: &Progress,
    cancel: &AtomicBool,
) -> Result<Input, StageError> {
    let Done {
        key: input_key,
        parts: input_parts,
        ..
    } = done[d].as_ref().expect("inputs are done");
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

#[allow(clippy::too_many_arguments)]
fn compute(
    plan: &Plan,
    store: &Store,
    i: usize,
    key: &str,
    done: &[Option<Done>],
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
