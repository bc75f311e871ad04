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
//! end of its log. Ctrl-C cancels every job this run submitted.

pub mod scheduler;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::exec::OnError;
use crate::plan::Plan;
use crate::progress::{Progress, StageProgress};
use crate::spec::Backend;
use crate::stage::Resources;
use crate::status::{State, status};
use crate::store::jobs::JobRecord;
use crate::store::{RunRecord, StageRecord, Store};
use scheduler::{JobState, SlurmError};

/// How to submit and follow.
#[derive(Debug, Clone)]
pub struct SlurmOptions {
    pub on_error: OnError,
    /// The `--set` overrides (and `--backend`) the spec was loaded with; each job gets them.
    pub overrides: Vec<String>,
}

/// How often the queue is polled.
fn poll_interval() -> Duration {
    std::env::var("ACCORD_SLURM_POLL_SECS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| *s > 0.0)
        .map_or(Duration::from_secs(5), Duration::from_secs_f64)
}

/// Where a submitted stage is, as this run sees it.
#[derive(Debug, Clone, PartialEq)]
enum Tracked {
    Queued,
    Running,
    Done,
    Failed,
    Skipped(String),
}

/// One stage to compute on the cluster.
struct Job {
    /// See [`structural_ids`].
    identity: String,
    /// `stage`, or `stage [variant]` when the spec has variants.
    label: String,
    stage: String,
    /// The variants this job serves; it runs the first one's plan.
    variants: Vec<Option<String>>,
    /// Jobs (indices) whose stages this one needs.
    deps: Vec<usize>,
    resources: Resources,
    id: String,
    log: PathBuf,
    tracked: Tracked,
    bar: Option<StageProgress>,
    last_line: String,
    /// Submitted by an earlier `accord run` that is still queued or running.
    adopted: bool,
}

/// An identity for stage `i` that does not need its inputs to exist: two variants' stages
/// with equal identities compute the same artifact, so one job serves both.
fn structural_ids(plan: &Plan) -> Vec<String> {
    let mut ids: Vec<String> = Vec::with_capacity(plan.stages.len());
    for stage in &plan.stages {
        let models: Vec<serde_json::Value> = stage
            .kind
            .models(&stage.params)
            .into_iter()
            .map(|(_, name)| {
                serde_json::json!([
                    name,
                    plan.loaded
                        .spec
                        .models
                        .get(&name)
                        .map(|m| { serde_json::to_value(m).unwrap_or_default() })
                ])
            })
            .collect();
        let identity = serde_json::json!({
            "kind": stage.kind.kind(),
            "version": stage.kind.version(),
            "params": stage.params.json,
            "seed": stage.seed,
            "after": stage.after.iter().map(|d| ids[*d].clone()).collect::<Vec<_>>(),
            "models": models,
            "backend": plan.loaded.spec.backend,
        });
        ids.push(crate::canonical::digest(&identity));
    }
    ids
}

/// The identity of stage `i` (see [`structural_ids`]): a job checks that the stage it
/// was submitted for is still the one the spec describes.
pub fn stage_identity(plan: &Plan, i: usize) -> String {
    structural_ids(plan).swap_remove(i)
}

/// The resources of stage `i`'s job: the stage's, the spec's, then its kind's defaults
/// (without a GPU when none of its models runs in-process on a GPU backend).
fn resources(plan: &Plan, i: usize) -> Resources {
    let stage = &plan.stages[i];
    let spec = &plan.loaded.spec;
    let written = spec.stages[&stage.name].resources.or(&spec.resources);
    let mut defaults = stage.kind.cluster_resources(&stage.params);
    let on_gpu = spec.backend != Backend::Flex
        && stage
            .kind
            .models(&stage.params)
            .iter()
            .any(|(_, name)| plan.models.in_process(name));
    if !on_gpu {
        defaults.gpus = None;
    }
    written.or(&defaults)
}

/// Quotes `word` for a POSIX shell.
fn shell_quote(word: &str) -> String {
    if !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,@%+".contains(&b))
    {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// The batch script computing `job`'s stage.
fn script(plan_file: &Path, store: &Store, options: &SlurmOptions, job: &Job) -> String {
    let accord = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("accord"));
    let mut words = vec![
        accord.display().to_string(),
        "--store".into(),
        absolute(store.root()).display().to_string(),
        "run".into(),
        absolute(plan_file).display().to_string(),
    ];
    for set in &options.overrides {
        words.push("--set".into());
        words.push(set.clone());
    }
    if let Some(Some(variant)) = job.variants.first() {
        words.push("--variant".into());
        words.push(variant.clone());
    }
    words.extend([
        "--stage".into(),
        job.stage.clone(),
        "--identity".into(),
        job.identity.clone(),
        "--executor".into(),
        "local".into(),
        "--jobs".into(),
        "1".into(),
    ]);
    let command: Vec<String> = words.iter().map(|w| shell_quote(w)).collect();
    format!(
        "#!/bin/sh\n\
         # Stage `{}`, written by `accord run --executor slurm`.\n\
         if [ -n \"${{SLURM_CPUS_PER_TASK:-}}\" ]; then export RAYON_NUM_THREADS=$SLURM_CPUS_PER_TASK; fi\n\
         exec {}\n",
        job.stage,
        command.join(" ")
    )
}

/// The last 16 KiB of a log (a training job's log grows for days; it is read every poll).
fn read_end(log: &Path) -> std::io::Result<String> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = std::fs::File::open(log)?;
    let length = file.metadata()?.len();
    file.seek(SeekFrom::Start(length.saturating_sub(16 * 1024)))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// The last `n` lines of a log, or a note that it cannot be read.
fn log_tail(log: &Path, n: usize) -> String {
    match read_end(log) {
        Ok(text) => {
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(n)..]
                .iter()
                .map(|l| format!("    {l}\n"))
                .collect()
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            "    (no log: the job never started)\n".into()
        }
        Err(e) => format!("    (cannot read `{}`: {e})\n", log.display()),
    }
}

/// The last progress line a running job's log holds about `stage` (`12/40 (9.8/s, ETA
/// 3s)`), without the stage's name.
fn last_progress(log: &Path, stage: &str) -> Option<String> {
    let text = read_end(log).ok()?;
    let line = text.lines().rev().map(str::trim).find(|l| !l.is_empty())?;
    let line = line.strip_prefix(&format!("{stage}: ")).unwrap_or(line);
    (line != "running").then(|| line.chars().take(120).collect())
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
    let mut jobs: Vec<Job> = Vec::new();
    let mut by_identity: HashMap<String, usize> = HashMap::new();
    // Per plan and stage: the job computing it (`None`: cached).
    let mut stage_jobs: Vec<Vec<Option<usize>>> = Vec::new();
    for plan in plans {
        let states = status(plan, store);
        let ids = structural_ids(plan);
        let mut by_stage = vec![None; plan.stages.len()];
        for (i, stage) in plan.stages.iter().enumerate() {
            if states[i].state == State::Fresh {
                continue;
            }
            if let Some(&j) = by_identity.get(&ids[i]) {
                jobs[j].variants.push(plan.variant.clone());
                by_stage[i] = Some(j);
                continue;
            }
            by_stage[i] = Some(jobs.len());
            // The same stage with the same settings and upstream, not merely the same name.
            let adopted = live.iter().find(|(r, _)| r.identity == ids[i]);
            let deps = stage
                .after
                .iter()
                .filter_map(|d| by_identity.get(&ids[*d]).copied())
                .collect();
            by_identity.insert(ids[i].clone(), jobs.len());
            jobs.push(Job {
                identity: ids[i].clone(),
                label: String::new(),
                stage: stage.name.clone(),
                variants: vec![plan.variant.clone()],
                deps,
                resources: resources(plan, i),
                id: adopted.map(|(r, _)| r.job.clone()).unwrap_or_default(),
                log: adopted
                    .map(|(r, _)| PathBuf::from(&r.log))
                    .unwrap_or_default(),
                tracked: Tracked::Queued,
                bar: None,
                last_line: String::new(),
                adopted: adopted.is_some(),
            });
        }
        stage_jobs.push(by_stage);
    }

    // A stage every variant shares is named plainly; others name their variants.
    for job in &mut jobs {
        if several && job.variants.len() < plans.len() {
            let names: Vec<&str> = job.variants.iter().flatten().map(String::as_str).collect();
            job.label = format!("{} [{}]", job.stage, names.join("; "));
        } else {
            job.label = job.stage.clone();
        }
    }

    // Submit in plan order: a job's dependencies have ids by then.
    let folder = store.root().join("slurm");
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let plan_file = &plans[0].loaded.file;
    for j in 0..jobs.len() {
        if jobs[j].adopted {
            say(&format!(
                "{}: already submitted as job {}",
                jobs[j].label, jobs[j].id
            ));
            continue;
        }
        let name = format!("{}-{}", jobs[j].stage, &jobs[j].identity[..8]);
        let script_path = folder.join("scripts").join(format!("{name}.sh"));
        let text = script(plan_file, store, options, &jobs[j]);
        let written = std::fs::create_dir_all(folder.join("scripts"))
            .and_then(|()| std::fs::create_dir_all(folder.join("logs")))
            .and_then(|()| std::fs::write(&script_path, text));
        if let Err(e) = written {
            return Err(SlurmError::Refused {
                stage: jobs[j].label.clone(),
                message: format!("cannot write `{}`: {e}", script_path.display()),
            });
        }
        let mut args = vec![
            format!("--job-name=accord-{}", jobs[j].stage),
            format!(
                "--output={}",
                absolute(&folder.join("logs").join(format!("{name}-%j.log"))).display()
            ),
            format!("--chdir={}", cwd.display()),
            "--kill-on-invalid-dep=yes".into(),
        ];
        let after: Vec<String> = jobs[j].deps.iter().map(|d| jobs[*d].id.clone()).collect();
        if !after.is_empty() {
            args.push(format!("--dependency=afterok:{}", after.join(":")));
        }
        args.extend(jobs[j].resources.sbatch_args());
        let id = match scheduler::submit(&jobs[j].label, &args, &script_path) {
            Ok(id) => id,
            Err(e) => {
                let submitted: Vec<String> = jobs[..j]
                    .iter()
                    .filter(|job| !job.adopted)
                    .map(|job| job.id.clone())
                    .collect();
                scheduler::cancel(&submitted);
                for id in &submitted {
                    store.remove_job(id);
                }
                return Err(e);
            }
        };
        jobs[j].log = absolute(&folder.join("logs").join(format!("{name}-{id}.log")));
        jobs[j].id = id;
        let _ = store.save_job(&JobRecord {
            job: jobs[j].id.clone(),
            identity: jobs[j].identity.clone(),
            spec_name: spec_name.clone(),
            stage: jobs[j].stage.clone(),
            variants: jobs[j].variants.clone(),
            log: jobs[j].log.display().to_string(),
            submitted_at: jiff::Timestamp::now()
                .strftime("%Y-%m-%dT%H:%M:%SZ")
                .to_string(),
        });
        say(&format!("{}: submitted job {}", jobs[j].label, jobs[j].id));
    }

    let interrupted = follow(&mut jobs, store, options, progress, cancel)?;
    // One complete record per variant, as a local run writes: the jobs' own records cover
    // only their stage and its inputs, and `accord gc` keeps each variant's latest. The
    // summary lines are read off them.
    for job in &jobs {
        if let Tracked::Skipped(reason) = &job.tracked {
            progress.println(&format!("{}: skipped: {reason}", job.label));
        }
    }
    let (mut all_ran, mut all_cached, mut failed) = (0, 0, false);
    for (plan, by_stage) in plans.iter().zip(&stage_jobs) {
        let record = run_record(
            plan,
            store,
            options,
            by_stage,
            &jobs,
            (started_at, started.elapsed().as_secs_f64()),
        );
        let _ = store.save_run(&record);
        let states = record.stages.iter().map(|s| s.state.as_str());
        all_ran += states.clone().filter(|s| *s == "ran").count();
        all_cached += states.clone().filter(|s| *s == "cached").count();
        failed |= record.outcome == "failed";
        let line = crate::exec::outcome_line(states);
        match (&plan.variant, several) {
            (Some(name), true) => say(&format!("{name}: {line}")),
            _ => say(&line),
        }
    }
    if several {
        say(&format!(
            "{all_ran} ran, {all_cached} cached over {} variants",
            plans.len()
        ));
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
fn run_record(
    plan: &Plan,
    store: &Store,
    options: &SlurmOptions,
    by_stage: &[Option<usize>],
    jobs: &[Job],
    started: (jiff::Timestamp, f64),
) -> RunRecord {
    let now = status(plan, store);
    let stages: Vec<StageRecord> =
        plan.stages
            .iter()
            .zip(&now)
            .zip(by_stage)
            .map(|((stage, state), job)| {
                let job = job.map(|j| &jobs[j]);
                let (name, error) = match job.map(|j| &j.tracked) {
                    None => ("cached", None),
                    Some(Tracked::Done) if job.is_some_and(|j| j.variants[0] != plan.variant) => {
                        ("cached", None)
                    }
                    Some(Tracked::Done) => ("ran", None),
                    Some(Tracked::Skipped(reason)) => ("skipped", Some(reason.clone())),
                    Some(Tracked::Queued | Tracked::Running) => ("interrupted", None),
                    Some(Tracked::Failed) => (
                        "failed",
                        job.map(|j| format!("job {} failed; see {}", j.id, j.log.display())),
                    ),
                };
                let fresh = state.state == State::Fresh;
                StageRecord {
                    name: stage.name.clone(),
                    kind: stage.kind.kind().into(),
                    key: state.key.clone().filter(|_| fresh),
                    digest: state.key.as_ref().filter(|_| fresh).and_then(|k| {
                        match store.lookup(k) {
                            crate::store::Lookup::Hit(meta) => Some(meta.digest),
                            _ => None,
                        }
                    }),
                    state: name.into(),
                    seconds: 0.0,
                    error,
                }
            })
            .collect();
    crate::exec::run_record(plan, &options.overrides, started, stages)
}

/// Polls until every job has finished; `true` if Ctrl-C cancelled them.
fn follow(
    jobs: &mut [Job],
    store: &Store,
    options: &SlurmOptions,
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
                    job.tracked = Tracked::Done;
                    store.remove_job(&job.id);
                }
                JobState::Ended { state, reason } => {
                    let dependency = reason == "DependencyNeverSatisfied";
                    let failed_dep = jobs[j]
                        .deps
                        .iter()
                        .find(|d| {
                            matches!(jobs[**d].tracked, Tracked::Failed | Tracked::Skipped(_))
                        })
                        .map(|d| jobs[*d].label.clone());
                    let job = &mut jobs[j];
                    if let Some(bar) = job.bar.take() {
                        bar.finish();
                    }
                    store.remove_job(&job.id);
                    let never_ran = job.tracked == Tracked::Queued;
                    if state == "CANCELLED" && (dependency || stopping) && never_ran {
                        job.tracked = Tracked::Skipped(match (stopping, failed_dep) {
                            (_, Some(dep)) => format!("it needs `{dep}`, whose job did not finish"),
                            _ => "an earlier stage failed (`--on-error keep-going` runs the rest)"
                                .into(),
                        });
                        continue;
                    }
                    job.tracked = Tracked::Failed;
                    anstream::eprintln!(
                        "{}: stage `{}` failed: job {} ended {state}{}; the end of {}:\n{}",
                        crate::output::error_label(),
                        job.label,
                        job.id,
                        if reason.is_empty() || reason == "None" {
                            String::new()
                        } else {
                            format!(" ({reason})")
                        },
                        job.log.display(),
                        log_tail(&job.log, 15).trim_end()
                    );
                    if options.on_error == OnError::Fail && !stopping {
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
                    job.tracked = Tracked::Failed;
                    anstream::eprintln!(
                        "{}: stage `{}`: job {} left the queue and Slurm no longer knows how it \
                         ended; see {}",
                        crate::output::error_label(),
                        job.label,
                        job.id,
                        job.log.display()
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
