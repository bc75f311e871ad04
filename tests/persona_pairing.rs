//! `persona_pairing`: opposing pairs per dilemma, stable as dilemmas are added.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::{Workspace, read_parquet, strings};

fn spec(count: usize, with: &str) -> String {
    format!(
        "version: 1\nname: t\nseed: 5\nstages:\n  d:\n    kind: prompt_synthesis\n    with: {{count: {count}}}\n  p:\n    kind: persona_pairing\n    needs: [d]\n    with: {with}\n"
    )
}

fn pairs(ws: &Workspace, text: &str) -> arrow::record_batch::RecordBatch {
    ws.write("spec.yaml", text);
    let out = ws.accord(&["run", "spec.yaml"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let path = ws.accord(&["show", "spec.yaml", "p", "--path"]).stdout;
    read_parquet(&ws.path().join(path.trim()))
}

#[test]
fn each_dilemma_gets_distinct_opposing_pairs_with_its_text() {
    let ws = Workspace::new();
    let batch = pairs(&ws, &spec(10, "{pairs_per_dilemma: 3}"));
    assert_eq!(batch.num_rows(), 30);
    let mut per_dilemma: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (d, p) in strings(&batch, "dilemma_id")
        .into_iter()
        .zip(strings(&batch, "pair_id"))
    {
        per_dilemma.entry(d).or_default().insert(p);
    }
    assert!(per_dilemma.values().all(|p| p.len() == 3));
    let a = strings(&batch, "persona_a");
    let b = strings(&batch, "persona_b");
    assert!(a.iter().zip(&b).all(|(a, b)| a != b));
    assert!(strings(&batch, "dilemma").iter().all(|t| t.ends_with('?')));
    assert!(
        strings(&batch, "conflict_axis")
            .iter()
            .all(|t| t.contains(" vs. "))
    );
}

#[test]
fn adding_dilemmas_keeps_earlier_pairs() {
    let ws = Workspace::new();
    let small = pairs(&ws, &spec(8, "{pairs_per_dilemma: 2}"));
    let large = pairs(&ws, &spec(16, "{pairs_per_dilemma: 2}"));
    assert_eq!(strings(&small, "pair_id"), strings(&large, "pair_id")[..16]);
}

#[test]
fn random_strategy_pairs_any_two_personas() {
    let ws = Workspace::new();
    let batch = pairs(&ws, &spec(30, "{strategy: random}"));
    let personas: BTreeSet<String> = strings(&batch, "persona_a")
        .into_iter()
        .chain(strings(&batch, "persona_b"))
        .collect();
    assert!(
        personas.len() > 30,
        "random pairing spreads over the library: {}",
        personas.len()
    );
}

#[test]
fn too_many_pairs_per_dilemma_is_an_error() {
    let ws = Workspace::new();
    ws.write("spec.yaml", &spec(2, "{pairs_per_dilemma: 500}"));
    let out = ws.accord(&["run", "spec.yaml"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .contains("asks for more pairs than the 38 curated pairs in the built-in library"),
        "{}",
        out.stderr
    );
}

#[test]
fn needs_exactly_one_input() {
    let ws = Workspace::new();
    ws.write(
        "spec.yaml",
        "version: 1\nname: t\nstages:\n  p:\n    kind: persona_pairing\n",
    );
    let out = ws.accord(&["validate", "spec.yaml"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("reads one table of dilemmas"),
        "{}",
        out.stderr
    );
}

/// More parties than a `library` file has personas is an error naming both numbers,
/// never rows with fewer parties than asked.
#[test]
fn more_parties_than_personas_is_an_error() {
    let ws = Workspace::new();
    ws.write(
        "personas.yaml",
        "version: 1\ntheory: t\nvalues: [a, b]\npersonas:\n  - {id: x, name: X, values: [a], stance: s, priorities: []}\n  - {id: y, name: Y, values: [b], stance: s, priorities: []}\npairs:\n  - {a: x, b: y, axis: q}\n",
    );
    ws.write(
        "spec.yaml",
        &spec(2, "{library: personas.yaml, parties: 3}"),
    );
    let out = ws.accord(&["run", "spec.yaml"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("`parties: 3` asks for more parties than the 2 personas in the `library`"),
        "{}",
        out.stderr
    );
}
