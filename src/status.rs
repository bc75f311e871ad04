//! `accord status`: whether each stage's output is in the store, and if not, why.
//!
//! This walks the plan like a run would but computes nothing: a stage whose inputs are all
//! fresh gets its key, which is either in the store (`fresh`) or not; then the key of the
//! spec's latest run for that stage says *why* (`stale`, with the changed field and its
//! old → new value) or that it has never run (`missing`). A stage downstream of a stale one
//! cannot be keyed until that one runs; it is `stale` because of its input.

use serde::Serialize;

use crate::exec::stage_key;
use crate::plan::Plan;
use crate::slurm::scheduler::JobState;
use crate::store::jobs::JobRecord;
use crate::store::key::explain;
use crate::store::{Lookup, StaleReason, Store};

/// A stage's state.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Fresh,
    Stale,
    Missing,
    /// Waiting in the cluster's queue (`executor: slurm`).
    Queued,
    /// Running as a cluster job.
    Running,
}

/// One line of `accord status`.
#[derive(Debug, Clone, Serialize)]
pub struct StageStatus {
    pub stage: String,
    pub state: State,
    /// Why the stage is stale or missing; empty when fresh.
    pub reason: String,
    /// The stage's current key, when it can be computed.
    pub key: Option<String>,
    /// The cluster job computing it, when one is queued or running.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
}

/// Marks the stages of `states` that a live cluster job (see [`crate::slurm::live_jobs`])
/// is computing as queued or running.
pub fn mark_jobs(plan: &Plan, states: &mut [StageStatus], jobs: &[(JobRecord, JobState)]) {
    for status in states.iter_mut().filter(|s| s.state != State::Fresh) {
        let Some((record, state)) = jobs.iter().find(|(r, _)| {
            r.spec_name == plan.loaded.spec.name
                && r.stage == status.stage
                && r.variants.contains(&plan.variant)
        }) else {
            continue;
        };
        status.job = Some(record.job.clone());
        match state {
            JobState::Pending { reason } => {
                status.state = State::Queued;
                status.reason = match reason.as_str() {
                    "" | "None" => format!("job {}", record.job),
                    _ => format!("job {} ({reason})", record.job),
                };
            }
            JobState::Running { node } => {
                status.state = State::Running;
                status.reason = format!("job {} on {node}", record.job);
            }
            _ => {}
        }
    }
}

/// The state of every stage of `plan`, in plan order.
pub fn status(plan: &Plan, store: &Store) -> Vec<StageStatus> {
    let head = store.head(&plan.loaded.spec.name, plan.variant.as_deref());
    let mut digests: Vec<Option<String>> = vec![None; plan.stages.len()];
    let mut keys: Vec<Option<String>> = vec![None; plan.stages.len()];
    let mut out = Vec::with_capacity(plan.stages.len());
    for (i, stage) in plan.stages.iter().enumerate() {
        let previous = head.as_ref().and_then(|h| h.keys.get(&stage.name)).cloned();
        let unkeyed = stage.after.iter().find(|d| digests[**d].is_none());
        let status = |state, reason: String, key| StageStatus {
            stage: stage.name.clone(),
            state,
            reason,
            key,
            job: None,
        };
        if let Some(d) = unkeyed {
            let input = plan.stages[*d].name.clone();
            out.push(match previous {
                None => status(State::Missing, StaleReason::NeverRun.to_string(), None),
                Some(_) => status(
                    State::Stale,
                    StaleReason::InputStale { input }.to_string(),
                    None,
                ),
            });
            continue;
        }
        let inputs = stage
            .needs
            .iter()
            .map(|d| {
                (
                    plan.stages[*d].name.clone(),
                    digests[*d].clone().expect("inputs are keyed"),
                )
            })
            .collect();
        for &d in &stage.after {
            if let (Some(key), Some(digest)) = (&keys[d], &digests[d]) {
                plan.models
                    .trained_by_stage(&plan.stages[d].name, &store.entry_dir(key), digest);
            }
        }
        let parts = match stage_key(plan, i, store, inputs) {
            Ok(parts) => parts,
            Err(message) => {
                out.push(status(State::Stale, message, None));
                continue;
            }
        };
        let key = parts.hash();
        match store.lookup(&key) {
            Lookup::Hit(meta) => {
                digests[i] = Some(meta.digest);
                keys[i] = Some(key.clone());
                out.push(status(State::Fresh, String::new(), Some(key)));
            }
            Lookup::Corrupt(reason) => {
                out.push(status(
                    State::Stale,
                    format!("its stored output is corrupt ({reason})"),
                    Some(key),
                ));
            }
            Lookup::Missing => {
                let reason = match &previous {
                    None => status(State::Missing, StaleReason::NeverRun.to_string(), Some(key)),
                    Some(old) if *old == key => status(
                        State::Stale,
                        StaleReason::OutputMissing.to_string(),
                        Some(key),
                    ),
                    Some(old) => {
                        let sentence = match store.key_parts(old) {
                            Some(old_parts) => {
                                let reasons = explain(&stage.name, &old_parts, &parts);
                                if reasons.is_empty() {
                                    "its key changed".to_string()
                                } else {
                                    reasons
                                        .iter()
                                        .map(ToString::to_string)
                                        .collect::<Vec<_>>()
                                        .join("; ")
                                }
                            }
                            None => "its parameters or inputs changed".into(),
                        };
                        status(State::Stale, sentence, Some(key))
                    }
                };
                out.push(reason);
            }
        }
    }
    out
}
