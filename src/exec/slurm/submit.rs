//! Deciding which jobs a run needs and submitting them.
//!
//! Every stage the store lacks becomes a job; a stage several variants share (see
//! [`structural_ids`]) is one job, and one that an earlier, still live run submitted is
//! adopted rather than submitted again. Jobs are submitted in plan order, each waiting
//! for its inputs' jobs with `--dependency=afterok`. Following them is
//! [`super::follow`]'s.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::job::{Job, Tracked, resources, structural_ids};
use super::say;
use super::scheduler::{self, JobState, SlurmError};
use super::script::{absolute, script};
use crate::exec::keying::{Stored, stored};
use crate::plan::Plan;
use crate::store::Store;
use crate::store::jobs::JobRecord;

/// The jobs `plans` need, and per plan and stage the job computing it (`None`: the store
/// has it). `live` are the jobs earlier runs of this spec submitted that are still queued
/// or running.
pub(super) fn plan_jobs(
    plans: &[Plan],
    store: &Store,
    live: &[(JobRecord, JobState)],
) -> (Vec<Job>, Vec<Vec<Option<usize>>>) {
    let mut jobs: Vec<Job> = Vec::new();
    let mut by_identity: HashMap<String, usize> = HashMap::new();
    let mut stage_jobs: Vec<Vec<Option<usize>>> = Vec::new();
    for plan in plans {
        let stored = stored(plan, store);
        let ids = structural_ids(plan);
        let mut by_stage = vec![None; plan.stages.len()];
        for (i, stage) in plan.stages.iter().enumerate() {
            if matches!(stored[i], Stored::Present { .. }) {
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
    let several = plans.len() > 1;
    for job in &mut jobs {
        if several && job.variants.len() < plans.len() {
            let names: Vec<&str> = job.variants.iter().flatten().map(String::as_str).collect();
            job.label = format!("{} [{}]", job.stage, names.join("; "));
        } else {
            job.label = job.stage.clone();
        }
    }
    (jobs, stage_jobs)
}

/// Submits every job not adopted, in order (a job's dependencies have ids by then), and
/// records each in the store; on a refusal, cancels the ones already submitted.
pub(super) fn submit_all(
    jobs: &mut [Job],
    plan_file: &Path,
    spec_name: &str,
    store: &Store,
    overrides: &[String],
) -> Result<(), SlurmError> {
    let folder = store.root().join("slurm");
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
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
        let text = script(plan_file, store, overrides, &jobs[j]);
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
            spec_name: spec_name.to_string(),
            stage: jobs[j].stage.clone(),
            variants: jobs[j].variants.clone(),
            log: jobs[j].log.display().to_string(),
            submitted_at: jiff::Timestamp::now()
                .strftime("%Y-%m-%dT%H:%M:%SZ")
                .to_string(),
        });
        say(&format!("{}: submitted job {}", jobs[j].label, jobs[j].id));
    }
    Ok(())
}
