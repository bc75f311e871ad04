//! `accord status`: whether each stage's output is in the store, and if not, why.
//!
//! This walks the plan like a run would but computes nothing ([`crate::exec::keying`]): a
//! stage whose inputs are all fresh gets its key, which is either in the store (`fresh`) or
//! not; then the key of the spec's latest run for that stage says *why* (`stale`, with the
//! changed field and its old → new value) or that it has never run (`missing`). A stage
//! downstream of a stale one cannot be keyed until that one runs; it is `stale` because of
//! its input. Which stages a cluster job is computing (`queued`, `running`) is added by the
//! `accord status` command, which asks Slurm; this module asks only the store.

use serde::Serialize;

use crate::exec::keying::{Stored, stored};
use crate::plan::Plan;
use crate::store::key::explain;
use crate::store::{StaleReason, Store};

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

/// The state of every stage of `plan`, in plan order.
pub fn status(plan: &Plan, store: &Store) -> Vec<StageStatus> {
    let head = store.head(&plan.loaded.spec.name, plan.variant.as_deref());
    let mut out = Vec::with_capacity(plan.stages.len());
    for (stage, stored) in plan.stages.iter().zip(stored(plan, store)) {
        let previous = head.as_ref().and_then(|h| h.keys.get(&stage.name));
        let status = |state, reason: String, key| StageStatus {
            stage: stage.name.clone(),
            state,
            reason,
            key,
            job: None,
        };
        out.push(match stored {
            Stored::Unkeyable { waits_for } => match previous {
                None => status(State::Missing, StaleReason::NeverRun.to_string(), None),
                Some(_) => status(
                    State::Stale,
                    StaleReason::InputStale {
                        input: plan.stages[waits_for].name.clone(),
                    }
                    .to_string(),
                    None,
                ),
            },
            Stored::KeyError(message) => status(State::Stale, message, None),
            Stored::Present { key, .. } => status(State::Fresh, String::new(), Some(key)),
            Stored::Corrupt { key, reason } => status(
                State::Stale,
                format!("its stored output is corrupt ({reason})"),
                Some(key),
            ),
            Stored::Absent { key, parts } => match previous {
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
            },
        });
    }
    out
}
