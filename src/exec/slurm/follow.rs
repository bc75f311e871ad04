//! Following submitted jobs until each has ended: `squeue` (then `sacct`) every few
//! seconds (`ACCORD_SLURM_POLL_SECS`, default 5). A running job shows its log's last
//! progress line; a failed one is reported with the end of its log; with
//! `--on-error fail` the jobs still queued are cancelled. Ctrl-C cancels every job this run
//! submitted (never one it adopted from another run).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::job::{Job, Tracked};
use super::log::{last_progress, log_tail};
use super::scheduler::{self, JobState, SlurmError};
use crate::exec::OnError;
use crate::exec::outcome::{SkipReason, report_failure};
use crate::progress::Progress;
use crate::store::{StageOutcome, Store};

/// How often the queue is polled.
fn poll_interval() -> Duration {
    std::env::var("ACCORD_SLURM_POLL_SECS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| *s > 0.0)
        .map_or(Duration::from_secs(5), Duration::from_secs_f64)
}

/// Polls until every job has finished; `true` if Ctrl-C cancelled them.
pub(super) fn follow(
    jobs: &mut [Job],
    store: &Store,
    on_error: OnError,
    progress: &Progress,
    cancel: &AtomicBool,
) -> Result<bool, SlurmError> {
    let poll = poll_interval();
    let mut stopping = false;
    let mut query_failures = 0;
    loop {
        let open: Vec<String> = jobs
            .iter()
            .filter(|j| matches!(j.tracked, Tracked::Queued | Tracked::Running))
            .map(|j| j.id.clone())
            .collect();
        if open.is_empty() {
            return Ok(false);
        }
        if cancel.load(Ordering::SeqCst) {
            // Only this run's jobs: ones it found already queued belong to another run.
            let mine: Vec<String> = jobs
                .iter()
                .filter(|j| !j.adopted && open.contains(&j.id))
                .map(|j| j.id.clone())
                .collect();
            scheduler::cancel(&mine);
            for job in jobs.iter_mut() {
                if let Some(bar) = job.bar.take() {
                    bar.finish();
                }
                if mine.contains(&job.id) {
                    store.remove_job(&job.id);
                }
            }
            anstream::eprintln!("interrupted: cancelled {} Slurm jobs", mine.len());
            return Ok(true);
        }
        // A failed query (a busy controller) is not a verdict on the jobs: ask again.
        let states = match scheduler::states(&open) {
            Ok(states) => {
                query_failures = 0;
                states
            }
            Err(e @ SlurmError::Missing { .. }) => return Err(e),
            Err(e) => {
                query_failures += 1;
                if query_failures == 1 {
                    progress.println(&format!(
                        "{}: {e}; asking again",
                        crate::output::warning_label()
                    ));
                }
                wait(poll, cancel);
                continue;
            }
        };
        for j in 0..jobs.len() {
            let Some(state) = states.get(&jobs[j].id) else {
                continue;
            };
            match state {
                JobState::Pending { .. } => {}
                JobState::Running { node } => {
                    let job = &mut jobs[j];
                    if job.tracked == Tracked::Queued {
                        job.tracked = Tracked::Running;
                        let bar = progress.stage(&job.label);
                        bar.message(&format!("job {} on {node}", job.id));
                        job.bar = Some(bar);
                    } else if let Some(line) = last_progress(&job.log, &job.stage)
                        && line != job.last_line
                    {
                        if let Some(bar) = &job.bar {
                            bar.message(&line);
                        }
                        job.last_line = line;
                    }
                }
                JobState::Completed { elapsed } => {
                    let job = &mut jobs[j];
                    if let Some(bar) = job.bar.take() {
                        bar.finish();
                    }
                    progress.println(&format!("{}: ran in {elapsed} (job {})", job.label, job.id));
                    job.tracked = Tracked::Ended(StageOutcome::Ran);
                    store.remove_job(&job.id);
                }
                JobState::Ended { state, reason } => {
                    let dependency = reason == "DependencyNeverSatisfied";
                    let failed_dep = jobs[j]
                        .deps
                        .iter()
                        .find(|d| jobs[**d].tracked.did_not_finish())
                        .map(|d| jobs[*d].label.clone());
                    let job = &mut jobs[j];
                    if let Some(bar) = job.bar.take() {
                        bar.finish();
                    }
                    store.remove_job(&job.id);
                    let never_ran = job.tracked == Tracked::Queued;
                    if state == "CANCELLED" && (dependency || stopping) && never_ran {
                        let reason = match failed_dep {
                            Some(input) => SkipReason::InputDidNotFinish { input },
                            None => SkipReason::EarlierFailure,
                        };
                        job.tracked = Tracked::Ended(reason.into());
                        continue;
                    }
                    job.tracked = Tracked::Ended(job.failure());
                    report_failure(
                        &job.label,
                        &format!(
                            "job {} ended {state}{}; the end of {}:\n{}",
                            job.id,
                            if reason.is_empty() || reason == "None" {
                                String::new()
                            } else {
                                format!(" ({reason})")
                            },
                            job.log.display(),
                            log_tail(&job.log, 15).trim_end()
                        ),
                    );
                    if on_error == OnError::Fail && !stopping {
                        stopping = true;
                        let queued: Vec<String> = jobs
                            .iter()
                            .filter(|j| j.tracked == Tracked::Queued && !j.adopted)
                            .map(|j| j.id.clone())
                            .collect();
                        scheduler::cancel(&queued);
                    }
                }
                JobState::Unknown => {
                    let job = &mut jobs[j];
                    if let Some(bar) = job.bar.take() {
                        bar.finish();
                    }
                    store.remove_job(&job.id);
                    job.tracked = Tracked::Ended(job.failure());
                    report_failure(
                        &job.label,
                        &format!(
                            "job {} left the queue and Slurm no longer knows how it ended; see {}",
                            job.id,
                            job.log.display()
                        ),
                    );
                }
            }
        }
        wait(poll, cancel);
    }
}

/// Sleeps for `poll`, or until Ctrl-C.
fn wait(poll: Duration, cancel: &AtomicBool) {
    let started = Instant::now();
    while started.elapsed() < poll && !cancel.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(100));
    }
}
