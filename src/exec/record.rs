//! The record of a run (`runs/<id>.json`), built the same way by both executors.
//!
//! The run's outcome is not chosen by the executor: it follows from its stages' outcomes
//! ([`RunOutcome::of`]). Saving the record is the store's ([`Store::save_run`]).
//!
//! [`Store::save_run`]: crate::store::Store::save_run

use crate::plan::Plan;
use crate::store::records::new_run_id;
use crate::store::{RunOutcome, RunRecord, StageRecord};

/// The record of a run of `plan` whose stages ended as `stages` say, started at
/// `started_at` and `seconds` long.
pub(crate) fn run_record(
    plan: &Plan,
    overrides: &[String],
    (started_at, seconds): (jiff::Timestamp, f64),
    stages: Vec<StageRecord>,
) -> RunRecord {
    RunRecord {
        id: new_run_id(),
        spec: plan.loaded.file.display().to_string(),
        spec_name: plan.loaded.spec.name.clone(),
        spec_digest: plan.loaded.digest.clone(),
        variant: plan.variant.clone(),
        overrides: overrides.to_vec(),
        started_at: started_at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        seconds,
        outcome: RunOutcome::of(stages.iter().map(|s| &s.outcome)),
        accord_version: crate::VERSION.into(),
        commit: crate::COMMIT.map(String::from),
        backend: plan.models.resolved_backend().map(ToString::to_string),
        adapter: plan
            .models
            .resolved_backend()
            .and_then(|b| b.adapter.clone()),
        threads: super::available_threads(),
        stages,
    }
}
