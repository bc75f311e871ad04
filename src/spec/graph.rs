//! The stage graph: which stage waits for which, and why.
//!
//! One node per stage, numbered in the order the spec declares them; an edge `a -> b`
//! says that `a` waits for `b`, either because `a` lists `b` in its `needs`
//! ([`Dependency::Needs`]) or because a model `a` uses is `b`'s checkpoint (`source:
//! stage:b`, [`Dependency::Checkpoint`]). The spec checker builds it once per loaded spec,
//! with both kinds of edge, and the same graph answers every question about it: its
//! cycles (each reported with the edges it goes through), and, only when there are none,
//! the one order the plan runs in — topological and, among stages that are ready together,
//! the order they are written in. Only [`StageGraph::into_dag`] sorts, and a graph it
//! cannot sort comes back as its cycles, so no later step needs to trust that cycles
//! "were checked". Building, sorting and finding cycles are each O(V + E) (plus a
//! logarithm for the ready set).
//!
//! It deliberately knows nothing of YAML, field paths or stage kinds: callers say what each
//! edge means and turn cycles into located errors themselves (see `super::check`).

use std::collections::{BTreeSet, VecDeque};

use petgraph::Direction;
use petgraph::graph::{DiGraph, EdgeIndex, EdgeReference, NodeIndex};
use petgraph::visit::EdgeRef;

/// Why one stage waits for another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dependency {
    /// The stage lists the other in its `needs`, at this position.
    Needs { position: usize },
    /// The stage uses `model`, named by its `with` field `field`, and that model is the
    /// other stage's checkpoint.
    Checkpoint { field: &'static str, model: String },
}

/// One edge of a cycle: `stage` waits for `on` because of `why`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub stage: usize,
    pub on: usize,
    pub why: Dependency,
}

/// A cycle of waiting stages: each step's `on` is the next step's `stage`, and the last
/// step leads back to the first stage, the earliest declared on the cycle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cycle {
    pub steps: Vec<Step>,
}

impl Cycle {
    /// The stages on the cycle in order, the first one not repeated.
    pub fn stages(&self) -> impl Iterator<Item = usize> + '_ {
        self.steps.iter().map(|s| s.stage)
    }
}

/// The stages and what each waits for, possibly with cycles.
#[derive(Debug, Clone, Default)]
pub struct StageGraph {
    graph: DiGraph<(), Dependency>,
}

/// A stage graph without cycles, with its order.
#[derive(Debug, Clone, Default)]
pub struct StageDag {
    graph: DiGraph<(), Dependency>,
    order: Vec<usize>,
}

impl StageGraph {
    /// A graph of `stages` stages that wait for nothing yet.
    pub fn new(stages: usize) -> Self {
        let mut graph = DiGraph::with_capacity(stages, stages);
        for _ in 0..stages {
            graph.add_node(());
        }
        Self { graph }
    }

    /// Records that `stage` waits for `on` because of `why`. Only the first reason given
    /// for a pair is kept (add `needs` first, so a cycle is reported at a `needs` entry
    /// when there is one); stages out of range are ignored.
    pub fn add(&mut self, stage: usize, on: usize, why: Dependency) {
        let count = self.graph.node_count();
        if stage >= count || on >= count {
            return;
        }
        let (from, to) = (NodeIndex::new(stage), NodeIndex::new(on));
        if self.graph.find_edge(from, to).is_none() {
            self.graph.add_edge(from, to, why);
        }
    }

    /// The graph with its order, or every cycle in it (one per strongly connected
    /// component that has one, the shortest through its earliest-declared stage), sorted
    /// by their first stage.
    pub fn into_dag(self) -> Result<StageDag, Vec<Cycle>> {
        let count = self.graph.node_count();
        let mut waiting: Vec<usize> = (0..count)
            .map(|i| self.graph.edges(NodeIndex::new(i)).count())
            .collect();
        let mut ready: BTreeSet<usize> = (0..count).filter(|i| waiting[*i] == 0).collect();
        let mut order = Vec::with_capacity(count);
        while let Some(next) = ready.pop_first() {
            order.push(next);
            for edge in self
                .graph
                .edges_directed(NodeIndex::new(next), Direction::Incoming)
            {
                let waiter = edge.source().index();
                waiting[waiter] -= 1;
                if waiting[waiter] == 0 {
                    ready.insert(waiter);
                }
            }
        }
        if order.len() == count {
            Ok(StageDag {
                graph: self.graph,
                order,
            })
        } else {
            Err(self.cycles())
        }
    }

    /// One cycle per strongly connected component that has one.
    fn cycles(&self) -> Vec<Cycle> {
        let count = self.graph.node_count();
        let mut component = vec![usize::MAX; count];
        let components = petgraph::algo::tarjan_scc(&self.graph);
        for (c, members) in components.iter().enumerate() {
            for node in members {
                component[node.index()] = c;
            }
        }
        // Reused by every search; only the entries of the component searched are set.
        let mut reached_by: Vec<Option<EdgeIndex>> = vec![None; count];
        let mut cycles = Vec::new();
        for (c, members) in components.iter().enumerate() {
            let Some(start) = members.iter().map(|n| n.index()).min() else {
                continue;
            };
            let cyclic = members.len() > 1
                || self
                    .graph
                    .find_edge(NodeIndex::new(start), NodeIndex::new(start))
                    .is_some();
            if cyclic
                && let Some(cycle) = self.shortest_cycle(start, c, &component, &mut reached_by)
            {
                cycles.push(cycle);
            }
            for node in members {
                reached_by[node.index()] = None;
            }
        }
        cycles.sort_by_key(|cycle| cycle.steps.first().map(|s| s.stage));
        cycles
    }

    /// The shortest path from `start` back to itself within its component (breadth-first,
    /// edges in the order they were added).
    fn shortest_cycle(
        &self,
        start: usize,
        inside: usize,
        component: &[usize],
        reached_by: &mut [Option<EdgeIndex>],
    ) -> Option<Cycle> {
        let mut queue = VecDeque::from([start]);
        while let Some(node) = queue.pop_front() {
            for edge in out_edges(&self.graph, node) {
                let next = edge.target().index();
                if component[next] != inside {
                    continue;
                }
                if next == start {
                    let mut steps = vec![self.step(edge.id())];
                    let mut at = node;
                    while at != start {
                        let via = reached_by[at]?;
                        steps.push(self.step(via));
                        at = self.graph.edge_endpoints(via)?.0.index();
                    }
                    steps.reverse();
                    return Some(Cycle { steps });
                }
                if reached_by[next].is_none() {
                    reached_by[next] = Some(edge.id());
                    queue.push_back(next);
                }
            }
        }
        None
    }

    fn step(&self, edge: EdgeIndex) -> Step {
        let (stage, on) = self
            .graph
            .edge_endpoints(edge)
            .map_or((0, 0), |(a, b)| (a.index(), b.index()));
        Step {
            stage,
            on,
            why: self.graph[edge].clone(),
        }
    }
}

impl StageDag {
    /// Every stage, each after all it waits for; among stages ready together, the
    /// earliest declared first.
    pub fn order(&self) -> &[usize] {
        &self.order
    }

    /// The stages `stage` lists in `needs`, in the order written.
    pub fn needs(&self, stage: usize) -> Vec<usize> {
        let mut needs: Vec<(usize, usize)> = out_edges(&self.graph, stage)
            .filter_map(|e| match e.weight() {
                Dependency::Needs { position } => Some((*position, e.target().index())),
                Dependency::Checkpoint { .. } => None,
            })
            .collect();
        needs.sort_unstable();
        needs.into_iter().map(|(_, on)| on).collect()
    }

    /// Every stage `stage` waits for, each once, in the order the reasons were added (its
    /// `needs` as written, then the stages whose checkpoints its models are).
    pub fn waits_for(&self, stage: usize) -> Vec<usize> {
        out_edges(&self.graph, stage)
            .map(|e| e.target().index())
            .collect()
    }
}

/// The edges leaving `node`, in the order they were added.
fn out_edges(
    graph: &DiGraph<(), Dependency>,
    node: usize,
) -> impl Iterator<Item = EdgeReference<'_, Dependency>> {
    let mut edges: Vec<EdgeReference<'_, Dependency>> = if node < graph.node_count() {
        graph.edges(NodeIndex::new(node)).collect()
    } else {
        Vec::new()
    };
    edges.sort_unstable_by_key(|e| e.id());
    edges.into_iter()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn needs(position: usize) -> Dependency {
        Dependency::Needs { position }
    }

    fn graph(edges: &[(usize, usize)], stages: usize) -> StageGraph {
        let mut graph = StageGraph::new(stages);
        for (position, (a, b)) in edges.iter().enumerate() {
            graph.add(*a, *b, needs(position));
        }
        graph
    }

    fn cycle_stages(cycles: &[Cycle]) -> Vec<Vec<usize>> {
        cycles.iter().map(|c| c.stages().collect()).collect()
    }

    #[test]
    fn finds_each_cycle_once() {
        // 0 -> 1 -> 2 -> 0, 3 -> 3, 4 -> 0
        let cycles = graph(&[(0, 1), (1, 2), (2, 0), (3, 3), (4, 0)], 5)
            .into_dag()
            .unwrap_err();
        assert_eq!(cycle_stages(&cycles), vec![vec![0, 1, 2], vec![3]]);
    }

    #[test]
    fn a_cycle_is_the_shortest_through_its_first_stage() {
        // 0 -> 1 -> 2 -> 3 -> 0 and the shortcut 1 -> 3.
        let cycles = graph(&[(0, 1), (1, 2), (2, 3), (3, 0), (1, 3)], 4)
            .into_dag()
            .unwrap_err();
        assert_eq!(cycle_stages(&cycles), vec![vec![0, 1, 3]]);
        let whys: Vec<&Dependency> = cycles[0].steps.iter().map(|s| &s.why).collect();
        assert_eq!(whys, [&needs(0), &needs(4), &needs(3)]);
    }

    #[test]
    fn ready_stages_run_in_declaration_order() {
        // 0 waits for 2; 1 and 2 wait for nothing; 3 waits for 0.
        let dag = graph(&[(0, 2), (3, 0)], 4).into_dag().unwrap();
        assert_eq!(dag.order(), [1, 2, 0, 3]);
    }

    #[test]
    fn the_first_reason_for_a_pair_is_kept() {
        let mut graph = StageGraph::new(2);
        graph.add(1, 0, needs(0));
        graph.add(
            1,
            0,
            Dependency::Checkpoint {
                field: "policy",
                model: "m".into(),
            },
        );
        let dag = graph.into_dag().unwrap();
        assert_eq!(dag.waits_for(1), [0]);
        assert_eq!(dag.needs(1), [0]);
    }

    #[test]
    fn needs_come_back_by_position_and_reasons_in_the_order_added() {
        let mut graph = StageGraph::new(4);
        graph.add(3, 1, needs(1));
        graph.add(3, 2, needs(0));
        graph.add(
            3,
            0,
            Dependency::Checkpoint {
                field: "policy",
                model: "m".into(),
            },
        );
        let dag = graph.into_dag().unwrap();
        assert_eq!(dag.needs(3), [2, 1]);
        assert_eq!(dag.waits_for(3), [1, 2, 0]);
    }

    #[test]
    fn acyclic_graphs_have_no_cycles() {
        assert!(graph(&[(1, 0), (2, 0), (2, 1)], 3).into_dag().is_ok());
    }
}
