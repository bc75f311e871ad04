//! The Slurm commands accord uses: `sbatch` to submit, `squeue` (then `sacct`) to follow,
//! `scancel` to cancel. Nothing else of Slurm is assumed: no accounting database is
//! needed while jobs are young enough for `squeue --states=all` to list them.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

/// Errors from the Slurm commands.
#[derive(Debug, thiserror::Error)]
pub enum SlurmError {
    #[error("cannot run `{command}` ({source}); is Slurm installed and on PATH?")]
    Missing {
        command: &'static str,
        source: std::io::Error,
    },
    #[error("`sbatch` refused the job for `{stage}`: {message}")]
    Refused { stage: String, message: String },
    #[error("`{command}` failed: {message}")]
    Query {
        command: &'static str,
        message: String,
    },
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// Where a job is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobState {
    Pending {
        reason: String,
    },
    Running {
        node: String,
    },
    /// With the time the job took, as Slurm writes it (`1:02`).
    Completed {
        elapsed: String,
    },
    /// Failed, cancelled, timed out, out of memory, node failure…: Slurm's word and reason.
    Ended {
        state: String,
        reason: String,
    },
    /// The scheduler no longer knows the job.
    Unknown,
}

impl JobState {
    pub fn finished(&self) -> bool {
        matches!(
            self,
            JobState::Completed { .. } | JobState::Ended { .. } | JobState::Unknown
        )
    }

    fn parse(state: &str, reason: &str, node: &str, elapsed: &str) -> JobState {
        let state = state.split_whitespace().next().unwrap_or(state);
        match state {
            "PENDING" | "CONFIGURING" | "REQUEUED" | "REQUEUE_HOLD" | "RESIZING" | "SUSPENDED" => {
                JobState::Pending {
                    reason: reason.to_string(),
                }
            }
            "RUNNING" | "COMPLETING" | "STAGE_OUT" | "SIGNALING" => JobState::Running {
                node: node.to_string(),
            },
            "COMPLETED" => JobState::Completed {
                elapsed: elapsed.trim().to_string(),
            },
            other => JobState::Ended {
                state: other.to_string(),
                reason: reason.to_string(),
            },
        }
    }
}

/// Submits `script` with `args`; returns the job id.
pub fn submit(stage: &str, args: &[String], script: &Path) -> Result<String, SlurmError> {
    let out = Command::new("sbatch")
        .arg("--parsable")
        .args(args)
        .arg(script)
        .output()
        .map_err(|source| SlurmError::Missing {
            command: "sbatch",
            source,
        })?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(SlurmError::Refused {
            stage: stage.into(),
            message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    // `--parsable` prints `ID` or `ID;CLUSTER`.
    let id = stdout.trim().split(';').next().unwrap_or("").to_string();
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SlurmError::Refused {
            stage: stage.into(),
            message: format!("unexpected answer `{}`", stdout.trim()),
        });
    }
    Ok(id)
}

/// The state of each of `ids`: from `squeue --states=all`, then `sacct` for jobs that
/// have left the queue; `Unknown` when neither knows one.
pub fn states(ids: &[String]) -> Result<BTreeMap<String, JobState>, SlurmError> {
    let mut found = BTreeMap::new();
    if ids.is_empty() {
        return Ok(found);
    }
    let out = Command::new("squeue")
        .args([
            "--noheader",
            "--states=all",
            "--format=%i|%T|%r|%N|%M",
            "--jobs",
        ])
        .arg(ids.join(","))
        .output()
        .map_err(|source| SlurmError::Missing {
            command: "squeue",
            source,
        })?;
    // `squeue` fails for ids it no longer knows only when *all* are unknown; other
    // failures (a controller that times out) leave the states unknown, not ended.
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() && !stderr.contains("Invalid job id") {
        return Err(SlurmError::Query {
            command: "squeue",
            message: stderr.trim().to_string(),
        });
    }
    read_states(&out.stdout, &mut found);
    let missing: Vec<&String> = ids.iter().filter(|id| !found.contains_key(*id)).collect();
    if !missing.is_empty()
        && let Ok(out) = Command::new("sacct")
            .args(["--noheader", "--parsable2", "--allocations"])
            .args(["--format=JobID,State,Reason,NodeList,Elapsed", "--jobs"])
            .arg(
                missing
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(","),
            )
            .output()
        && out.status.success()
    {
        read_states(&out.stdout, &mut found);
    }
    for id in ids {
        found.entry(id.clone()).or_insert(JobState::Unknown);
    }
    Ok(found)
}

/// Reads `ID|STATE|REASON|NODES|ELAPSED` lines.
fn read_states(out: &[u8], found: &mut BTreeMap<String, JobState>) {
    for line in String::from_utf8_lossy(out).lines() {
        let fields: Vec<&str> = line.split('|').collect();
        if let [id, state, reason, node, elapsed] = fields[..] {
            found.insert(
                id.trim().to_string(),
                JobState::parse(state, reason, node, elapsed),
            );
        }
    }
}

/// Cancels `ids` (best effort: jobs that already ended are ignored by `scancel`).
pub fn cancel(ids: &[String]) {
    if !ids.is_empty() {
        let _ = Command::new("scancel").args(ids).output();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slurm_states_map_to_four_outcomes() {
        assert_eq!(
            JobState::parse("PENDING", "Dependency", "", "0:00"),
            JobState::Pending {
                reason: "Dependency".into()
            }
        );
        assert_eq!(
            JobState::parse("RUNNING", "None", "node3", "0:05"),
            JobState::Running {
                node: "node3".into()
            }
        );
        assert_eq!(
            JobState::parse("COMPLETED", "None", "", "1:02"),
            JobState::Completed {
                elapsed: "1:02".into()
            }
        );
        // sacct writes `CANCELLED by 0`.
        assert_eq!(
            JobState::parse("CANCELLED by 0", "DependencyNeverSatisfied", "", "0:00"),
            JobState::Ended {
                state: "CANCELLED".into(),
                reason: "DependencyNeverSatisfied".into()
            }
        );
        assert!(JobState::parse("OUT_OF_MEMORY", "", "", "2:00").finished());
    }
}
