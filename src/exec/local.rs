//! The local executor: a plan's stages on this machine, each on its own thread.
//!
//! Stages start in topological order as soon as their inputs are done, up to `--jobs` at
//! once. A stage's key needs its upstream outputs' digests, so it is keyed when it becomes
//! ready ([`super::compute`] keys it and makes its output present).
//!
//! Failure policy ([`OnError`]): with `fail` (the default) no new stage starts after a
//! failure; with `keep-going` independent stages go on. Either way the stages that could
//! not run are named with the reason. Ctrl-C sets a flag stages poll between rows; the
//! stage in progress stops, leaves no artifact, and a later run computes it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Instant;

use super::OnError;
use super::compute::{Done, execute};
use super::outcome::{SkipReason, report_failure, skipped_line};
use super::record::run_record;
use super::summary::{RunSummary, StageResult};
use crate::plan::Plan;
use crate::progress::Progress;
use crate::store::{StageKey, StageOutcome, StageRecord, Store, StoreError};

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
                        let (result, parts) = execute(
                            plan,
                            store,
                            i,
                            &done,
                            options.compute_only.as_deref(),
                            progress,
                            cancel,
                        );
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
                StageOutcome::Ran => {
                    let rows = result.meta.as_ref().map_or(0, |m| m.rows);
                    progress.println(&format!(
                        "{name}: ran in {:.2}s ({rows} rows)",
                        result.seconds
                    ));
                }
                StageOutcome::Cached => progress.println(&format!("{name}: cached")),
                StageOutcome::Failed(message) => report_failure(name, message),
                _ => {}
            }
            slots[i] = match (&result.outcome, parts) {
                (StageOutcome::Ran | StageOutcome::Cached, Some(parts)) => {
                    Slot::Done(Box::new(Done {
                        key: result.key.clone().expect("finished stages have keys"),
                        digest: result
                            .meta
                            .as_ref()
                            .expect("finished stages have artifacts")
                            .digest
                            .clone(),
                        parts,
                    }))
                }
                (StageOutcome::Interrupted, _) => {
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
                                outcome: SkipReason::InputDidNotFinish {
                                    input: failed.clone(),
                                }
                                .into(),
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
                    StageOutcome::Interrupted
                } else {
                    SkipReason::EarlierFailure.into()
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
        if let StageOutcome::Skipped(reason) = &r.outcome {
            progress.println(&skipped_line(&r.name, reason));
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
            outcome: r.outcome.clone(),
            seconds: r.seconds,
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
