//! The local executor: a plan's stages on this machine, each on its own thread.
//!
//! Stages start in topological order as soon as their inputs are done, up to `--jobs` at
//! once. A stage's key needs its upstream outputs' digests, so it is keyed when it becomes
//! ready ([`super::compute`] keys it and makes its output present).
//!
//! Failure policy ([`OnError`]): with `fail` (the default) no new stage starts after a
//! failure; with `keep-going` independent stages go on. Either way the stages that could
//! not run are named with the reason. A panic in stage code is caught and is that stage's
//! failure ([`crate::caught_panic`]), so a bug never leaves the run waiting. Ctrl-C sets a
//! flag stages poll between rows; the stage in progress stops, leaves no artifact, and a
//! later run computes it.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{OnceLock, mpsc};
use std::time::Instant;

use super::OnError;
use super::compute::{Done, execute};
use super::outcome::{SkipReason, report_failure, skipped_line};
use super::record::run_record;
use super::summary::{RunSummary, StageResult};
use crate::caught_panic::{CaughtPanic, catching};
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

/// Where a stage is in this run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Pending,
    Running,
    Done,
    Failed,
    Skipped,
}

/// The result of a stage whose code panicked: a failure like any other.
fn panicked(name: &str, panic: CaughtPanic) -> StageResult {
    StageResult {
        name: name.to_string(),
        key: None,
        meta: None,
        outcome: StageOutcome::Failed(panic.to_string()),
        seconds: 0.0,
    }
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
    // Who waits for each stage, and how many unfinished stages each one waits for.
    let mut waiters: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (j, stage) in plan.stages.iter().enumerate() {
        for &d in &stage.after {
            waiters[d].push(j);
        }
    }
    let mut unfinished: Vec<usize> = plan.stages.iter().map(|s| s.after.len()).collect();
    // Ready stages start in plan order.
    let mut ready: BTreeSet<usize> = (0..n).filter(|&i| unfinished[i] == 0).collect();
    let finished: Vec<OnceLock<Done>> = (0..n).map(|_| OnceLock::new()).collect();
    let mut slots = vec![Slot::Pending; n];
    let mut results: Vec<Option<StageResult>> = vec![None; n];
    let mut stop = false;
    let (tx, rx) = mpsc::channel::<(usize, StageResult, Option<StageKey>)>();
    std::thread::scope(|scope| {
        let finished = &finished;
        let mut running = 0;
        loop {
            while !stop && !cancel.load(Ordering::Relaxed) && running < options.jobs.max(1) {
                let Some(i) = ready.pop_first() else { break };
                slots[i] = Slot::Running;
                running += 1;
                let tx = tx.clone();
                scope.spawn(move || {
                    let (result, parts) = catching(|| {
                        execute(
                            plan,
                            store,
                            i,
                            finished,
                            options.compute_only.as_deref(),
                            progress,
                            cancel,
                        )
                    })
                    .unwrap_or_else(|panic| (panicked(&plan.stages[i].name, panic), None));
                    let _ = tx.send((i, result, parts));
                });
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
            let done = match (&result.key, &result.meta, parts) {
                (Some(key), Some(meta), Some(parts)) if result.outcome.succeeded() => Some(Done {
                    key: key.clone(),
                    digest: meta.digest.clone(),
                    parts,
                }),
                _ => None,
            };
            if let Some(done) = done {
                let _ = finished[i].set(done);
                slots[i] = Slot::Done;
                for &j in &waiters[i] {
                    unfinished[j] -= 1;
                    if unfinished[j] == 0 && slots[j] == Slot::Pending {
                        ready.insert(j);
                    }
                }
            } else {
                slots[i] = Slot::Failed;
                if result.outcome == StageOutcome::Interrupted || options.on_error == OnError::Fail
                {
                    stop = true;
                }
                // Everything downstream of a failure cannot run.
                let mut blocked: Vec<usize> = waiters[i].clone();
                while let Some(j) = blocked.pop() {
                    if slots[j] != Slot::Pending {
                        continue;
                    }
                    slots[j] = Slot::Skipped;
                    ready.remove(&j);
                    blocked.extend(&waiters[j]);
                    results[j] = Some(StageResult {
                        name: plan.stages[j].name.clone(),
                        key: None,
                        meta: None,
                        outcome: SkipReason::InputDidNotFinish {
                            input: name.clone(),
                        }
                        .into(),
                        seconds: 0.0,
                    });
                }
            }
            results[i] = Some(result);
        }
    });
    let interrupted = cancel.load(Ordering::Relaxed);
    for (i, slot) in slots.iter().enumerate() {
        if *slot == Slot::Pending {
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
