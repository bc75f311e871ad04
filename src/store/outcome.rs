//! What happened to a stage in a run ([`StageOutcome`]) and how the run ended
//! ([`RunOutcome`]), as run records keep them.
//!
//! One enum serves the local and Slurm executors, `accord run`'s summary line, `compare`
//! and the records under `runs/`: a stage ran, was cached, failed (with its error), was
//! skipped (with why) or was interrupted. In a record it is two fields, `state` (`ran`,
//! `cached`, `failed`, `skipped`, `interrupted`) and `error` (the error or the reason), the
//! words every record has had, so records written by any earlier accord still load.
//!
//! It lives in the store because records do; the store does not know *why* a stage is
//! skipped. The executors' typed reasons and their sentences are
//! [`crate::exec::outcome::SkipReason`]; here a reason is the sentence as recorded.

use serde::{Deserialize, Serialize};

/// What happened to a stage in a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StageOutcome {
    /// Computed, and its output published.
    Ran,
    /// Its output was already in the store.
    Cached,
    /// It failed; the error.
    Failed(String),
    /// It could not run; why, as a sentence.
    Skipped(String),
    /// Ctrl-C stopped it, or the run stopped before it started.
    Interrupted,
}

impl StageOutcome {
    /// The word a record's `state` holds and the summary line counts (`ran`, `cached`, …).
    pub fn name(&self) -> &'static str {
        match self {
            StageOutcome::Ran => "ran",
            StageOutcome::Cached => "cached",
            StageOutcome::Failed(_) => "failed",
            StageOutcome::Skipped(_) => "skipped",
            StageOutcome::Interrupted => "interrupted",
        }
    }

    /// Whether the stage's output is in the store after the run: it ran or was cached.
    pub fn succeeded(&self) -> bool {
        matches!(self, StageOutcome::Ran | StageOutcome::Cached)
    }

    /// The error of a failed stage or the reason a skipped one did not run.
    pub fn detail(&self) -> Option<&str> {
        match self {
            StageOutcome::Failed(text) | StageOutcome::Skipped(text) => Some(text),
            _ => None,
        }
    }

    /// The outcome a record's `state` and `error` describe; `None` for a state no accord
    /// writes.
    pub(crate) fn from_record(state: &str, error: Option<String>) -> Option<StageOutcome> {
        Some(match state {
            "ran" => StageOutcome::Ran,
            "cached" => StageOutcome::Cached,
            "failed" => StageOutcome::Failed(error.unwrap_or_default()),
            "skipped" => StageOutcome::Skipped(error.unwrap_or_default()),
            "interrupted" => StageOutcome::Interrupted,
            _ => return None,
        })
    }
}

impl std::fmt::Display for StageOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// How a run ended, following from its stages' outcomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunOutcome {
    /// Every stage ran or was cached.
    Succeeded,
    /// A stage failed or was skipped, and none was interrupted.
    Failed,
    /// A stage was interrupted.
    Interrupted,
}

impl RunOutcome {
    /// The outcome of a run whose stages ended as `stages` say.
    pub fn of<'a>(stages: impl IntoIterator<Item = &'a StageOutcome> + Clone) -> RunOutcome {
        if stages
            .clone()
            .into_iter()
            .any(|s| *s == StageOutcome::Interrupted)
        {
            RunOutcome::Interrupted
        } else if stages.into_iter().all(StageOutcome::succeeded) {
            RunOutcome::Succeeded
        } else {
            RunOutcome::Failed
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_outcome_reads_back_from_its_record_fields() {
        for outcome in [
            StageOutcome::Ran,
            StageOutcome::Cached,
            StageOutcome::Failed("no disk".into()),
            StageOutcome::Skipped("it needs `a`, which did not finish".into()),
            StageOutcome::Interrupted,
        ] {
            let back = StageOutcome::from_record(outcome.name(), outcome.detail().map(Into::into));
            assert_eq!(back, Some(outcome));
        }
        assert_eq!(StageOutcome::from_record("fresh", None), None);
    }

    #[test]
    fn a_run_is_interrupted_before_it_is_failed() {
        let failed = StageOutcome::Failed("x".into());
        assert_eq!(
            RunOutcome::of(&[StageOutcome::Ran, StageOutcome::Cached]),
            RunOutcome::Succeeded
        );
        assert_eq!(
            RunOutcome::of(&[StageOutcome::Ran, failed.clone()]),
            RunOutcome::Failed
        );
        assert_eq!(
            RunOutcome::of(&[failed, StageOutcome::Interrupted]),
            RunOutcome::Interrupted
        );
        assert_eq!(
            RunOutcome::of(&[] as &[StageOutcome]),
            RunOutcome::Succeeded
        );
    }
}
