//! Cluster jobs submitted for stages (`slurm/jobs/<id>.json`), so that `accord status`
//! can say which stages are queued or running on the cluster, from any shell on any host
//! that sees the store.

use serde::{Deserialize, Serialize};

use super::{Store, StoreError, write_atomic};

/// One batch job computing one stage (shared by every variant listed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    /// The scheduler's job id.
    pub job: String,
    /// What the job computes: the stage's settings and upstream (see `crate::exec::slurm`), so
    /// that a later run adopts it only for the very same stage.
    #[serde(default)]
    pub identity: String,
    pub spec_name: String,
    pub stage: String,
    /// The variants whose plans this job serves (`None`: the spec has no ablations).
    pub variants: Vec<Option<String>>,
    /// The job's output log.
    pub log: String,
    pub submitted_at: String,
}

impl Store {
    fn job_path(&self, job: &str) -> std::path::PathBuf {
        self.dir("slurm").join("jobs").join(format!("{job}.json"))
    }

    /// Records a submitted job.
    pub fn save_job(&self, record: &JobRecord) -> Result<(), StoreError> {
        write_atomic(
            &self.job_path(&record.job),
            &serde_json::to_vec_pretty(record).expect("job records serialise"),
            false,
        )
    }

    /// Forgets a job that has left the queue.
    pub fn remove_job(&self, job: &str) {
        let _ = std::fs::remove_file(self.job_path(job));
    }

    /// Every recorded job, oldest id first.
    pub fn jobs(&self) -> Vec<JobRecord> {
        let Ok(entries) = std::fs::read_dir(self.dir("slurm").join("jobs")) else {
            return Vec::new();
        };
        let mut jobs: Vec<JobRecord> = entries
            .flatten()
            .filter_map(|e| serde_json::from_slice(&std::fs::read(e.path()).ok()?).ok())
            .collect();
        jobs.sort_by_key(|j| (j.job.len(), j.job.clone()));
        jobs
    }
}
