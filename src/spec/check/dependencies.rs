//! Checking what stages wait for: `needs`, and the stage graph with its cycles.
//!
//! A stage waits for the stages in its `needs` and for the stages whose checkpoints its
//! models are (`source: stage:NAME`). Both kinds of edge go into one [`StageGraph`], built
//! once here; any cycle through either kind is reported at `file:line:column` with its
//! stages in order (`a -> b -> a`), saying which steps go through a model. A graph without
//! cycles comes back with its order, which the plan runs in without sorting again. It
//! deliberately does not check whether a kind can use its inputs (see `stages`) or
//! whether a model exists (see `models`).

use std::collections::BTreeSet;

use indexmap::IndexMap;

use super::{Checker, Place};
use crate::registry::Registry;
use crate::spec::error::{CheckpointUse, SpecError};
use crate::spec::graph::{Cycle, Dependency, StageDag, StageGraph};
use crate::spec::path::FieldPath;
use crate::spec::{ModelSpec, StageSpec};
use crate::stage::Resolved;

impl Checker<'_> {
    /// Each `needs` entry names another stage of this spec, once. A stage in
    /// `declared` whose own entry has errors is not reported again here.
    pub(super) fn check_needs(
        &mut self,
        stages: &IndexMap<String, StageSpec>,
        declared: &[String],
    ) {
        for (name, stage) in stages {
            let mut seen = BTreeSet::new();
            for (i, need) in stage.needs.iter().enumerate() {
                let path = FieldPath::root()
                    .key("stages")
                    .key(name.clone())
                    .key("needs")
                    .index(i);
                if !seen.insert(need) {
                    self.report(
                        path,
                        Place::Value,
                        SpecError::DuplicateNeed { need: need.clone() },
                    );
                } else if !declared.contains(need) {
                    let known = stages.keys().filter(|k| *k != name).cloned().collect();
                    self.report(
                        path,
                        Place::Value,
                        SpecError::UnknownNeed {
                            need: need.clone(),
                            known,
                        },
                    );
                }
            }
        }
    }

    /// Builds the stage graph from `needs` and from the models each stage uses that are
    /// checkpoints of stages (`source: stage:NAME`), and reports each of its cycles; the
    /// graph with its order when it has none.
    pub(super) fn check_graph(
        &mut self,
        registry: &Registry,
        stages: &IndexMap<String, StageSpec>,
        params: &IndexMap<String, Resolved>,
        models: &IndexMap<String, ModelSpec>,
    ) -> Option<StageDag> {
        let mut graph = StageGraph::new(stages.len());
        // `needs` first, so that a cycle through both kinds of edge between the same two
        // stages is reported at the `needs` entry.
        for (stage, spec) in stages.values().enumerate() {
            for (position, need) in spec.needs.iter().enumerate() {
                if let Some(on) = stages.get_index_of(need) {
                    graph.add(stage, on, Dependency::Needs { position });
                }
            }
        }
        for (name, resolved) in params {
            let Some((stage, _, spec)) = stages.get_full(name) else {
                continue;
            };
            let Some(kind) = registry.get(&spec.kind) else {
                continue;
            };
            for (field, model) in kind.models(resolved) {
                if let Some(on) = models
                    .get(&model)
                    .and_then(ModelSpec::trained_by)
                    .and_then(|trainer| stages.get_index_of(trainer))
                {
                    graph.add(stage, on, Dependency::Checkpoint { field, model });
                }
            }
        }
        match graph.into_dag() {
            Ok(dag) => Some(dag),
            Err(cycles) => {
                for cycle in &cycles {
                    self.report_cycle(stages, cycle);
                }
                None
            }
        }
    }

    /// Reports `cycle` at the edge leaving its first stage: the `needs` entry, or the
    /// `with` field naming the model.
    fn report_cycle(&mut self, stages: &IndexMap<String, StageSpec>, cycle: &Cycle) {
        let name = |stage: usize| -> String {
            stages
                .get_index(stage)
                .map(|(name, _)| name.clone())
                .unwrap_or_default()
        };
        let Some(first) = cycle.steps.first() else {
            return;
        };
        let stage_path = FieldPath::root().key("stages").key(name(first.stage));
        let path = match &first.why {
            Dependency::Needs { position } => stage_path.key("needs").index(*position),
            Dependency::Checkpoint { field, .. } => stage_path.key("with").key(*field),
        };
        let mut printed: Vec<String> = cycle.stages().map(name).collect();
        printed.push(name(first.stage));
        let checkpoints = cycle
            .steps
            .iter()
            .filter_map(|step| match &step.why {
                Dependency::Checkpoint { model, .. } => Some(CheckpointUse {
                    stage: name(step.stage),
                    model: model.clone(),
                    trainer: name(step.on),
                }),
                Dependency::Needs { .. } => None,
            })
            .collect();
        self.report(
            path,
            Place::Value,
            SpecError::Cycle {
                cycle: printed,
                checkpoints,
            },
        );
    }
}
