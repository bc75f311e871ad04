//! A checked spec as a DAG of stages in topological order, and the ways to draw it.
//!
//! The plan knows each stage's kind, resolved parameters, dependencies and derived seed.
//! It does not know keys: a key includes the digests of upstream *outputs*, which exist only
//! once those stages have run (see [`crate::exec`]). Order is topological and, among stages
//! that are ready together, the order they are written in the spec.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::sync::Arc;

use petgraph::graph::DiGraph;

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

/// How `accord dag` draws the graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DagFormat {
    Text,
    Dot,
    Mermaid,
}

impl Plan {
    /// Orders the stages of a checked spec; `registry` must be the one it was checked with.
    pub fn new(loaded: LoadedSpec, registry: &Registry) -> Plan {
        let names: Vec<&String> = loaded.spec.stages.keys().collect();
        let needs: Vec<Vec<usize>> = loaded
            .spec
            .stages
            .values()
            .map(|s| {
                s.needs
                    .iter()
                    .map(|n| {
                        loaded
                            .spec
                            .stages
                            .get_index_of(n)
                            .expect("needs were checked")
                    })
                    .collect()
            })
            .collect();
        // Models trained by a stage (`source: stage:NAME`) make their users wait for it.
        let all_deps: Vec<Vec<usize>> = loaded
            .spec
            .stages
            .iter()
            .enumerate()
            .map(|(i, (name, spec))| {
                let mut all = needs[i].clone();
                let kind = registry.get(&spec.kind).expect("kinds were checked");
                for (_, model) in kind.models(&loaded.params[name]) {
                    if let Some(stage) = loaded
                        .spec
                        .models
                        .get(&model)
                        .and_then(crate::spec::ModelSpec::trained_by)
                        && let Some(index) = loaded.spec.stages.get_index_of(stage)
                        && !all.contains(&index)
                    {
                        all.push(index);
                    }
                }
                all
            })
            .collect();
        let deps = all_deps;
        let mut remaining: Vec<usize> = deps.iter().map(Vec::len).collect();
        let mut ready: BTreeSet<usize> = (0..names.len()).filter(|i| remaining[*i] == 0).collect();
        let mut order = Vec::with_capacity(names.len());
        while let Some(next) = ready.pop_first() {
            order.push(next);
            for (i, d) in deps.iter().enumerate() {
                let uses = d.iter().filter(|x| **x == next).count();
                if uses > 0 {
                    remaining[i] -= uses;
                    if remaining[i] == 0 {
                        ready.insert(i);
                    }
                }
            }
        }
        assert_eq!(order.len(), names.len(), "cycles were checked");
        let position: Vec<usize> = {
            let mut p = vec![0; order.len()];
            for (pos, i) in order.iter().enumerate() {
                p[*i] = pos;
            }
            p
        };
        let stages = order
            .iter()
            .map(|&i| {
                let name = names[i].clone();
                let spec = &loaded.spec.stages[i];
                PlannedStage {
                    kind: registry
                        .get(&spec.kind)
                        .expect("kinds were checked")
                        .clone(),
                    params: loaded.params[&name].clone(),
                    needs: needs[i].iter().map(|d| position[*d]).collect(),
                    after: deps[i].iter().map(|d| position[*d]).collect(),
                    seed: derive_stage_seed(loaded.spec.seed, &name),
                    name,
                }
            })
            .collect();
        let models = Arc::new(ModelHub::new(
            loaded.spec.models.clone(),
            &loaded.dir,
            loaded.spec.backend,
        ));
        Plan {
            loaded,
            stages,
            models,
            variant: None,
        }
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

    /// Stages that name stage `i` in their `needs`.
    pub fn dependents(&self, i: usize) -> impl Iterator<Item = usize> + '_ {
        self.stages
            .iter()
            .enumerate()
            .filter(move |(_, s)| s.needs.contains(&i))
            .map(|(j, _)| j)
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

/// Every dependency cycle, as the stages on it starting from the earliest-declared one.
/// `deps[i]` lists the stages that stage `i` needs.
pub fn find_cycles(deps: &[Vec<usize>]) -> Vec<Vec<usize>> {
    let mut graph = DiGraph::<usize, ()>::new();
    let nodes: Vec<_> = (0..deps.len()).map(|i| graph.add_node(i)).collect();
    for (i, d) in deps.iter().enumerate() {
        for j in d {
            graph.add_edge(nodes[i], nodes[*j], ());
        }
    }
    let mut cycles = Vec::new();
    for scc in petgraph::algo::tarjan_scc(&graph) {
        let members: BTreeSet<usize> = scc.iter().map(|n| graph[*n]).collect();
        let start = *members.first().expect("components are not empty");
        if members.len() == 1 && !deps[start].contains(&start) {
            continue;
        }
        cycles.push(shortest_cycle(deps, &members, start));
    }
    cycles.sort();
    cycles
}

/// The shortest path from `start` back to itself inside `members` (breadth-first).
fn shortest_cycle(deps: &[Vec<usize>], members: &BTreeSet<usize>, start: usize) -> Vec<usize> {
    let mut parent = vec![usize::MAX; deps.len()];
    let mut queue = std::collections::VecDeque::from([start]);
    while let Some(node) = queue.pop_front() {
        for &next in &deps[node] {
            if !members.contains(&next) {
                continue;
            }
            if next == start {
                let mut path = vec![node];
                let mut at = node;
                while at != start {
                    at = parent[at];
                    path.push(at);
                }
                path.reverse();
                return path;
            }
            if parent[next] == usize::MAX {
                parent[next] = node;
                queue.push_back(next);
            }
        }
    }
    vec![start]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_each_cycle_once() {
        // 0 -> 1 -> 2 -> 0, 3 -> 3, 4 -> 0
        let deps = vec![vec![1], vec![2], vec![0], vec![3], vec![0]];
        assert_eq!(find_cycles(&deps), vec![vec![0, 1, 2], vec![3]]);
    }

    #[test]
    fn acyclic_graphs_have_no_cycles() {
        let deps = vec![vec![], vec![0], vec![0, 1]];
        assert!(find_cycles(&deps).is_empty());
    }
}
