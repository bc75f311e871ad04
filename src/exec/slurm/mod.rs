//! `executor: slurm`: each stale stage as a Slurm batch job, the run following them.
//!
//! Submission walks every variant's plan like `accord status`: fresh stages are cached,
//! every other stage becomes one `sbatch` job running `accord run … --stage NAME` (the
//! job keys the stage itself once its inputs exist, and computes nothing else). A job
//! waits for the jobs of its stale inputs with `--dependency=afterok`, and
//! `--kill-on-invalid-dep` has Slurm cancel it when one of them fails. Stages that
//! variants share (same kind, parameters, seed, models and upstream) are one job. The
//! script, log and a record of each job live in the store's `slurm/` folder, so the store
//! must be on a filesystem the compute nodes share (its locks work there, see
//! [`crate::store::lock`]).
//!
//! Following polls `squeue` (then `sacct`) every few seconds (`ACCORD_SLURM_POLL_SECS`,
//! default 5): a running job shows the last progress line of its log; a failed one, the
//! end of its log. Ctrl-C cancels every job this run submitted. Once every job has ended,
//! each variant gets a run record like a local run's, and the summary lines are read off
//! those records.
//!
//! The parts: [`submit`] decides which jobs to submit and submits them, [`job`] is what a
//! job is and how stages share one, [`script`] writes its batch script, [`follow`] polls
//! until the jobs end, [`log`] reads their logs, and [`scheduler`] is the only module that
//! runs Slurm's commands.

mod follow;
mod job;
mod log;
pub mod scheduler;
mod script;
mod submit;

use std::sync::atomic::AtomicBool;
use std::time::Instant;

use crate::exec::OnError;
use crate::exec::keying::{Stored, stored};
use crate::exec::outcome::{Tally, skipped_line};
use crate::exec::record::run_record;
use crate::plan::Plan;
use crate::progress::Progress;
use crate::store::jobs::JobRecord;
use crate::store::{RunOutcome, RunRecord, StageOutcome, StageRecord, Store};
use job::{Job, Tracked};
use scheduler::{JobState, SlurmError};

pub use job::stage_identity;

/// How to submit and follow.
#[derive(Debug, Clone)]
pub struct SlurmOptions {
    pub on_error: OnError,
    /// The `--set` overrides (and `--backend`) the spec was loaded with; each job gets them.
    pub overrides: Vec<String>,
}

/// A result line on stdout (a closed pipe is not an error).
fn say(line: &str) {
    use std::io::Write;
    let mut out = anstream::stdout();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Submits the stale stages of `plans` and follows their jobs; returns the exit code.
pub fn run(
    plans: &[Plan],
    store: &Store,
    options: &SlurmOptions,
    progress: &Progress,
    cancel: &AtomicBool,
) -> Result<i32, SlurmError> {
    let spec_name = plans[0].loaded.spec.name.clone();
    let several = plans.len() > 1;
    let started_at = jiff::Timestamp::now();
    let started = Instant::now();
    // `accord gc` waits while this run follows its jobs.
    let _lease = store.lock_shared_for_run()?;
    // Jobs an earlier run submitted that are still queued or running.
    let live: Vec<(JobRecord, JobState)> = live_jobs(store)
        .into_iter()
        .filter(|(r, _)| r.spec_name == spec_name)
        .collect();
    let (mut jobs, stage_jobs) = submit::plan_jobs(plans, store, &live);
    submit::submit_all(
        &mut jobs,
        &plans[0].loaded.file,
        &spec_name,
        store,
        &options.overrides,
    )?;

    let interrupted = follow::follow(&mut jobs, store, options.on_error, progress, cancel)?;
    for job in &jobs {
        if let Tracked::Ended(StageOutcome::Skipped(reason)) = &job.tracked {
            progress.println(&skipped_line(&job.label, reason));
        }
    }
    // One complete record per variant, as a local run writes: the jobs' own records cover
    // only their stage and its inputs, and `accord gc` keeps each variant's latest. The
    // summary lines are read off them.
    let (mut total, mut failed) = (Tally::default(), false);
    for (plan, by_stage) in plans.iter().zip(&stage_jobs) {
        let record = variant_record(
            plan,
            store,
            options,
            by_stage,
            &jobs,
            (started_at, started.elapsed().as_secs_f64()),
        );
        let _ = store.save_run(&record);
        let tally = Tally::of(record.stages.iter().map(|s| &s.outcome));
        total += tally;
        failed |= record.outcome == RunOutcome::Failed;
        match (&plan.variant, several) {
            (Some(name), true) => say(&format!("{name}: {tally}")),
            _ => say(&tally.to_string()),
        }
    }
    if several {
        say(&total.over_variants(plans.len()));
    }
    Ok(if interrupted {
        130
    } else if failed {
        1
    } else {
        0
    })
}

/// The run record of `plan` after its jobs: each stage's key and digest as the store now
/// has them, and what happened to it.
fn variant_record(
    plan: &Plan,
    store: &Store,
    options: &SlurmOptions,
    by_stage: &[Option<usize>],
    jobs: &[Job],
    started: (jiff::Timestamp, f64),
) -> RunRecord {
    let now = stored(plan, store);
    let stages: Vec<StageRecord> = plan
        .stages
        .iter()
        .zip(&now)
        .zip(by_stage)
        .map(|((stage, stored), job)| {
            let outcome = match job.map(|j| &jobs[j]) {
                None => StageOutcome::Cached,
                Some(job) => match &job.tracked {
                    // The job ran it for another variant's plan.
                    Tracked::Ended(StageOutcome::Ran) if job.variants[0] != plan.variant => {
                        StageOutcome::Cached
                    }
                    Tracked::Ended(outcome) => outcome.clone(),
                    Tracked::Queued | Tracked::Running => StageOutcome::Interrupted,
                },
            };
            let (key, digest) = match stored {
                Stored::Present { key, digest } => (Some(key.clone()), Some(digest.clone())),
                _ => (None, None),
            };
            StageRecord {
                name: stage.name.clone(),
                kind: stage.kind.kind().into(),
                key,
                digest,
                outcome,
                seconds: 0.0,
            }
        })
        .collect();
    run_record(plan, &options.overrides, started, stages)
}

/// The recorded jobs that are still queued or running, with their state; records of jobs
/// that have ended are removed.
pub fn live_jobs(store: &Store) -> Vec<(JobRecord, JobState)> {
    let records = store.jobs();
    if records.is_empty() {
        return Vec::new();
    }
    let ids: Vec<String> = records.iter().map(|r| r.job.clone()).collect();
    // Without an answer nothing is known: keep every record.
    let Ok(states) = scheduler::states(&ids) else {
        return Vec::new();
    };
    let mut live = Vec::new();
    for record in records {
        match states.get(&record.job) {
            Some(state @ (JobState::Pending { .. } | JobState::Running { .. })) => {
                live.push((record, state.clone()));
            }
            _ => store.remove_job(&record.job),
        }
    }
    live
}
