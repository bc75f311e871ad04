//! A checked spec as a DAG of stages in topological order, and the ways to draw it.
//!
//! The plan knows each stage's kind, resolved parameters, dependencies and derived seed.
//! It does not know keys: a key includes the digests of upstream *outputs*, which exist only
//! once those stages have run (see [`crate::exec`]). Order is topological and, among stages
//! that are ready together, the order they are written in the spec. The plan does not walk
//! or sort the graph itself: the one stage graph ([`crate::spec::graph`], with `needs`
//! and `stage:` checkpoint edges) is built, checked for cycles and ordered while the spec
//! is loaded, because the checker needs it for its cycle errors and the checker must not
//! depend on the plan.

use std::fmt::Write as _;
use std::sync::Arc;

use crate::llm::hub::ModelHub;
use crate::registry::Registry;
use crate::seed::derive_stage_seed;
use crate::spec::LoadedSpec;
use crate::stage::{Resolved, StageKind};

/// One stage, ready to key and run.
#[derive(Clone)]
pub struct PlannedStage {
    pub name: String,
    pub kind: Arc<dyn StageKind>,
    pub params: Resolved,
    /// Indices of the stages in `needs`, in the order written (each is before this one).
    pub needs: Vec<usize>,
    /// Every stage that must finish first: `needs`, then the stages whose checkpoints its
    /// models are (`source: stage:NAME`).
    pub after: Vec<usize>,
    /// Derived from the spec's seed (or a variant's, see [`Plan::reseed`]) and the
    /// stage's name.
    pub seed: u64,
}

/// A checked spec's stages in topological order.
#[derive(Clone)]
pub struct Plan {
    pub loaded: LoadedSpec,
    pub stages: Vec<PlannedStage>,
    /// The spec's models, fetched and loaded only when a stage needs them.
    pub models: Arc<ModelHub>,
    /// The ablation variant this plan is (see [`crate::spec::variants`]), if any.
    pub variant: Option<String>,
}

/// Why a [`LoadedSpec`] cannot be planned: it was checked with another registry, or put
/// together by hand rather than by [`crate::spec::load`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error(
        "stage `{stage}` has kind `{kind}`, which this registry does not have; hint: plan with the registry the spec was loaded with"
    )]
    UnknownKind { stage: String, kind: String },
    #[error(
        "stage `{stage}` has no resolved parameters; hint: load the spec with `accord::spec::load`, which resolves every stage's"
    )]
    Unresolved { stage: String },
}

/// How `accord dag` draws the graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DagFormat {
    Text,
    Dot,
    Mermaid,
}

impl Plan {
    /// Lays out the stages of a checked spec in the order its stage graph gives (see
    /// [`crate::spec::graph`]; nothing is sorted here); `registry` must be the one it was
    /// checked with, else a stage's kind may be unknown to it.
    pub fn new(loaded: LoadedSpec, registry: &Registry) -> Result<Plan, PlanError> {
        let graph = &loaded.graph;
        let mut position = vec![0; loaded.spec.stages.len()];
        for (pos, i) in graph.order().iter().enumerate() {
            position[*i] = pos;
        }
        let mut placed: Vec<Option<PlannedStage>> = vec![None; position.len()];
        for (i, (name, spec)) in loaded.spec.stages.iter().enumerate() {
            let kind = registry
                .get(&spec.kind)
                .ok_or_else(|| PlanError::UnknownKind {
                    stage: name.clone(),
                    kind: spec.kind.clone(),
                })?;
            let params = loaded
                .params
                .get(name)
                .ok_or_else(|| PlanError::Unresolved {
                    stage: name.clone(),
                })?;
            placed[position[i]] = Some(PlannedStage {
                kind: kind.clone(),
                params: params.clone(),
                needs: graph.needs(i).iter().map(|d| position[*d]).collect(),
                after: graph.waits_for(i).iter().map(|d| position[*d]).collect(),
                seed: derive_stage_seed(loaded.spec.seed, name),
                name: name.clone(),
            });
        }
        let stages = placed.into_iter().flatten().collect();
        let models = Arc::new(ModelHub::new(
            loaded.spec.models.clone(),
            &loaded.dir,
            loaded.spec.backend,
        ));
        Ok(Plan {
            loaded,
            stages,
            models,
            variant: None,
        })
    }

    /// Gives the stages that sample from a model seeds derived from `seed` instead of the
    /// spec's (an ablation's `seeds` axis); data stages keep theirs.
    pub fn reseed(&mut self, seed: u64) {
        for stage in &mut self.stages {
            if stage.kind.samples(&stage.params) {
                stage.seed = derive_stage_seed(seed, &stage.name);
            }
        }
    }

    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.stages.iter().position(|s| s.name == name)
    }

    /// The plan of stage `i` and everything it waits for (a cluster job's plan).
    pub fn upstream_of(&self, i: usize) -> Plan {
        let mut keep = vec![false; self.stages.len()];
        keep[i] = true;
        for j in (0..=i).rev() {
            if keep[j] {
                for &d in &self.stages[j].after {
                    keep[d] = true;
                }
            }
        }
        let mut new_index = vec![usize::MAX; self.stages.len()];
        let mut stages = Vec::new();
        for (j, stage) in self.stages.iter().enumerate() {
            if keep[j] {
                new_index[j] = stages.len();
                let mut stage = stage.clone();
                stage.needs = stage.needs.iter().map(|d| new_index[*d]).collect();
                stage.after = stage.after.iter().map(|d| new_index[*d]).collect();
                stages.push(stage);
            }
        }
        Plan {
            stages,
            ..self.clone()
        }
    }

    /// Draws the graph.
    pub fn render(&self, format: DagFormat) -> String {
        let mut out = String::new();
        match format {
            DagFormat::Text => {
                let width = self
                    .stages
                    .iter()
                    .map(|s| s.name.len())
                    .max()
                    .unwrap_or(0)
                    .max(5);
                let kind_width = self
                    .stages
                    .iter()
                    .map(|s| s.kind.kind().len())
                    .max()
                    .unwrap_or(0)
                    .max(4);
                let _ = writeln!(out, "{:width$}  {:kind_width$}  needs", "stage", "kind");
                for stage in &self.stages {
                    let needs: Vec<&str> = stage
                        .needs
                        .iter()
                        .map(|n| self.stages[*n].name.as_str())
                        .collect();
                    let needs = if needs.is_empty() {
                        "-".to_string()
                    } else {
                        needs.join(", ")
                    };
                    let _ = writeln!(
                        out,
                        "{:width$}  {:kind_width$}  {needs}",
                        stage.name,
                        stage.kind.kind()
                    );
                }
            }
            DagFormat::Dot => {
                let _ = writeln!(out, "digraph {} {{", quote(&self.loaded.spec.name));
                let _ = writeln!(out, "  rankdir=LR;");
                let _ = writeln!(out, "  node [shape=box];");
                for stage in &self.stages {
                    let label = format!("{}\\n{}", stage.name, stage.kind.kind());
                    let _ = writeln!(out, "  {} [label=\"{label}\"];", quote(&stage.name));
                }
                for stage in &self.stages {
                    for need in &stage.needs {
                        let _ = writeln!(
                            out,
                            "  {} -> {};",
                            quote(&self.stages[*need].name),
                            quote(&stage.name)
                        );
                    }
                }
                let _ = writeln!(out, "}}");
            }
            DagFormat::Mermaid => {
                let _ = writeln!(out, "flowchart LR");
                for (i, stage) in self.stages.iter().enumerate() {
                    let _ = writeln!(out, "  s{i}[\"{}<br/>{}\"]", stage.name, stage.kind.kind());
                }
                for (i, stage) in self.stages.iter().enumerate() {
                    for need in &stage.needs {
                        let _ = writeln!(out, "  s{need} --> s{i}");
                    }
                }
            }
        }
        out
    }
}

fn quote(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::spec::{LoadOptions, load_text};

    fn loaded() -> LoadedSpec {
        let text = "version: 1\nname: t\nstages:\n  d: {kind: prompt_synthesis}\n";
        load_text(
            Path::new("spec.yaml"),
            Path::new("."),
            text.into(),
            &LoadOptions::default(),
            &Registry::builtin(),
        )
        .unwrap()
    }

    /// A spec put together by hand, or planned with another registry, is an error for the
    /// library's caller, not a panic.
    #[test]
    fn a_stage_without_parameters_or_kind_is_an_error() {
        let mut missing = loaded();
        missing.params.clear();
        assert_eq!(
            Plan::new(missing, &Registry::builtin()).err(),
            Some(PlanError::Unresolved { stage: "d".into() })
        );
        assert_eq!(
            Plan::new(loaded(), &Registry::empty()).err(),
            Some(PlanError::UnknownKind {
                stage: "d".into(),
                kind: "prompt_synthesis".into()
            })
        );
        assert!(Plan::new(loaded(), &Registry::builtin()).is_ok());
        let messages = [
            PlanError::Unresolved { stage: "d".into() },
            PlanError::UnknownKind {
                stage: "d".into(),
                kind: "prompt_synthesis".into(),
            },
        ]
        .map(|e| e.to_string())
        .join("\n");
        insta::assert_snapshot!("plan_errors", messages);
    }
}
