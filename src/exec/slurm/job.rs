//! A stage to compute on the cluster: the job for it, where it is, and the identity that
//! lets one job serve every variant whose stage is the same.
//!
//! Nothing here talks to Slurm ([`super::scheduler`] does) or decides what to submit
//! ([`super::submit`] does).

use std::path::PathBuf;

use crate::plan::Plan;
use crate::progress::StageProgress;
use crate::spec::Backend;
use crate::stage::Resources;
use crate::store::StageOutcome;

/// Where a submitted stage is, as this run sees it.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Tracked {
    Queued,
    Running,
    /// Its job has left the queue: the stage ran, failed or was skipped.
    Ended(StageOutcome),
}

impl Tracked {
    /// Whether the job ended without its stage's output.
    pub(super) fn did_not_finish(&self) -> bool {
        matches!(self, Tracked::Ended(outcome) if !outcome.succeeded())
    }
}

/// One stage to compute on the cluster.
pub(super) struct Job {
    /// See [`structural_ids`].
    pub(super) identity: String,
    /// `stage`, or `stage [variant]` when the spec has variants.
    pub(super) label: String,
    pub(super) stage: String,
    /// The variants this job serves; it runs the first one's plan.
    pub(super) variants: Vec<Option<String>>,
    /// Jobs (indices) whose stages this one needs.
    pub(super) deps: Vec<usize>,
    pub(super) resources: Resources,
    pub(super) id: String,
    pub(super) log: PathBuf,
    pub(super) tracked: Tracked,
    pub(super) bar: Option<StageProgress>,
    pub(super) last_line: String,
    /// Submitted by an earlier `accord run` that is still queued or running.
    pub(super) adopted: bool,
}

impl Job {
    /// The outcome its run record gives the stage when the job failed.
    pub(super) fn failure(&self) -> StageOutcome {
        StageOutcome::Failed(format!(
            "job {} failed; see {}",
            self.id,
            self.log.display()
        ))
    }
}

/// An identity for stage `i` that does not need its inputs to exist: two variants' stages
/// with equal identities compute the same artifact, so one job serves both.
pub(super) fn structural_ids(plan: &Plan) -> Vec<String> {
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
pub(super) fn resources(plan: &Plan, i: usize) -> Resources {
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
