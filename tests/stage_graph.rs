//! The stage graph: over random specs whose stages wait for each other through `needs` and
//! through models that are other stages' checkpoints (`source: stage:NAME`), loading never
//! panics, rejects exactly the cyclic specs (with one located cycle error per cyclic group
//! of stages, each a real cycle of the spec), and plans the others in the spec's order:
//! topological, ties broken by the order stages are written in.
//!
//! The oracle is independent of the code under test: a reachability matrix (transitive
//! closure by Floyd–Warshall) and a quadratic "earliest ready stage first" ordering.

use std::path::Path;

use accord::Registry;
use accord::plan::Plan;
use accord::spec::{LoadFailure, LoadOptions, SpecError, load_text};
use accord::stage::{Stage, StageContext, StageError};
use accord::table;
use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::RecordBatch;
use proptest::prelude::*;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A kind that uses the models it lists and accepts any inputs, so that only a cycle can
/// make a spec of it invalid.
struct Uses;

#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct UsesParams {
    #[serde(default)]
    models: Vec<String>,
}

impl Stage for Uses {
    type Params = UsesParams;
    const KIND: &'static str = "uses";
    const VERSION: u32 = 1;
    const SUMMARY: &'static str = "Uses the models it lists.";

    fn output_schema(&self) -> SchemaRef {
        table::schema(vec![table::column("x", DataType::Utf8, "Nothing.")])
    }

    fn models(&self, params: &UsesParams) -> Vec<(&'static str, String)> {
        params
            .models
            .iter()
            .map(|m| ("models", m.clone()))
            .collect()
    }

    fn run(&self, _: &UsesParams, _: &StageContext) -> Result<RecordBatch, StageError> {
        unreachable!("graph tests never run stages")
    }
}

/// A random pipeline: stage `i` lists `needs[i]` (stage indices, in the order written) and
/// uses the checkpoints of the stages in `uses[i]` (model `m{j}` is `stage:s{j}`).
#[derive(Debug, Clone)]
struct Pipeline {
    needs: Vec<Vec<usize>>,
    uses: Vec<Vec<usize>>,
}

impl Pipeline {
    fn len(&self) -> usize {
        self.needs.len()
    }

    fn spec(&self) -> String {
        let mut text = String::from("version: 1\nname: random\nmodels:\n");
        for j in 0..self.len() {
            text.push_str(&format!("  m{j}: {{source: \"stage:s{j}\"}}\n"));
        }
        text.push_str("stages:\n");
        for i in 0..self.len() {
            let list = |items: &[usize], prefix: &str| {
                let names: Vec<String> = items.iter().map(|j| format!("{prefix}{j}")).collect();
                names.join(", ")
            };
            text.push_str(&format!(
                "  s{i}:\n    kind: uses\n    needs: [{}]\n    with: {{models: [{}]}}\n",
                list(&self.needs[i], "s"),
                list(&self.uses[i], "m"),
            ));
        }
        text
    }

    /// `waits[i][j]`: stage `i` waits for stage `j` directly.
    fn waits(&self) -> Vec<Vec<bool>> {
        let n = self.len();
        let mut waits = vec![vec![false; n]; n];
        for i in 0..n {
            for &j in self.needs[i].iter().chain(&self.uses[i]) {
                waits[i][j] = true;
            }
        }
        waits
    }

    /// `reach[i][j]`: stage `i` waits for stage `j` through one or more edges.
    fn reach(&self) -> Vec<Vec<bool>> {
        let n = self.len();
        let mut reach = self.waits();
        for k in 0..n {
            for i in 0..n {
                for j in 0..n {
                    reach[i][j] = reach[i][j] || (reach[i][k] && reach[k][j]);
                }
            }
        }
        reach
    }

    /// The groups of stages that lie on a cycle (mutually reachable), by their first stage.
    fn cyclic_groups(&self) -> Vec<Vec<usize>> {
        let reach = self.reach();
        let mut groups: Vec<Vec<usize>> = Vec::new();
        for i in (0..self.len()).filter(|i| reach[*i][*i]) {
            match groups.iter_mut().find(|g| reach[g[0]][i] && reach[i][g[0]]) {
                Some(group) => group.push(i),
                None => groups.push(vec![i]),
            }
        }
        groups
    }

    /// Repeatedly the earliest-written stage whose dependencies have all been placed.
    fn expected_order(&self) -> Vec<usize> {
        let waits = self.waits();
        let n = self.len();
        let mut placed = vec![false; n];
        let mut order = Vec::new();
        while let Some(next) =
            (0..n).find(|&i| !placed[i] && (0..n).all(|j| !waits[i][j] || placed[j]))
        {
            placed[next] = true;
            order.push(next);
        }
        order
    }
}

/// Up to `max` distinct indices below `n`, in random order.
fn distinct(n: usize, max: usize) -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(0..n, 0..=max).prop_map(move |mut items| {
        let mut seen = vec![false; n];
        items.retain(|i| !std::mem::replace(&mut seen[*i], true));
        items
    })
}

fn pipelines() -> impl Strategy<Value = Pipeline> {
    (1usize..=8).prop_flat_map(|n| {
        (
            prop::collection::vec(distinct(n, 3), n),
            prop::collection::vec(distinct(n, 2), n),
        )
            .prop_map(|(needs, uses)| Pipeline { needs, uses })
    })
}

fn index(name: &str) -> usize {
    name.trim_start_matches('s')
        .parse()
        .expect("stage names are s{i}")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn loading_rejects_exactly_the_cyclic_graphs_and_plans_the_rest(pipeline in pipelines()) {
        let registry = Registry::empty().with(Uses);
        let text = pipeline.spec();
        let loaded = load_text(
            Path::new("spec.yaml"),
            Path::new("."),
            text.clone(),
            &LoadOptions::default(),
            &registry,
        );
        let groups = pipeline.cyclic_groups();
        let waits = pipeline.waits();
        match loaded {
            Ok(loaded) => {
                prop_assert!(groups.is_empty(), "accepted a cyclic spec:\n{}", text);
                let plan = Plan::new(loaded, &registry).expect("a loaded spec plans");
                let order: Vec<usize> = plan.stages.iter().map(|s| index(&s.name)).collect();
                prop_assert_eq!(&order, &pipeline.expected_order());
                for (position, stage) in plan.stages.iter().enumerate() {
                    let i = order[position];
                    let needs: Vec<usize> = stage.needs.iter().map(|d| order[*d]).collect();
                    prop_assert_eq!(&needs, &pipeline.needs[i]);
                    let mut after: Vec<usize> = stage.after.iter().map(|d| order[*d]).collect();
                    prop_assert!(stage.after.iter().all(|d| *d < position));
                    after.sort_unstable();
                    let direct: Vec<usize> = (0..pipeline.len()).filter(|j| waits[i][*j]).collect();
                    prop_assert_eq!(after, direct);
                }
            }
            Err(LoadFailure::Invalid { diagnostics, .. }) => {
                prop_assert!(!groups.is_empty(), "rejected an acyclic spec:\n{}", text);
                prop_assert_eq!(diagnostics.len(), groups.len());
                for diagnostic in &diagnostics {
                    prop_assert!(diagnostic.location.is_some());
                    let SpecError::Cycle { cycle, checkpoints } = &diagnostic.error else {
                        return Err(TestCaseError::fail(format!("not a cycle: {}", diagnostic.error)));
                    };
                    let stages: Vec<usize> = cycle.iter().map(|s| index(s)).collect();
                    prop_assert_eq!(stages.first(), stages.last());
                    let group = groups.iter().find(|g| g.contains(&stages[0]));
                    prop_assert!(group.is_some_and(|g| stages.iter().all(|s| g.contains(s))));
                    prop_assert_eq!(Some(&stages[0]), group.and_then(|g| g.first()));
                    let mut through_models = Vec::new();
                    for step in stages.windows(2) {
                        let (a, b) = (step[0], step[1]);
                        prop_assert!(waits[a][b], "{} -> {} is no edge", a, b);
                        if !pipeline.needs[a].contains(&b) {
                            through_models.push((format!("s{a}"), format!("m{b}"), format!("s{b}")));
                        }
                    }
                    let reported: Vec<(String, String, String)> = checkpoints
                        .iter()
                        .map(|c| (c.stage.clone(), c.model.clone(), c.trainer.clone()))
                        .collect();
                    prop_assert_eq!(reported, through_models);
                }
            }
            Err(LoadFailure::Read { .. }) => unreachable!("nothing is read from disk"),
        }
    }
}
