//! `prompt_synthesis`: exact counts, distinct rows, stable prefixes, custom libraries.

mod common;

use std::collections::BTreeSet;

use common::{Workspace, read_parquet, strings};

fn dilemmas(ws: &Workspace, spec: &str) -> arrow::record_batch::RecordBatch {
    ws.write("spec.yaml", spec);
    let out = ws.accord(&["run", "spec.yaml"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let path = ws.accord(&["show", "spec.yaml", "d", "--path"]).stdout;
    read_parquet(&ws.path().join(path.trim()))
}

fn spec(with: &str) -> String {
    format!(
        "version: 1\nname: t\nseed: 3\nstages:\n  d:\n    kind: prompt_synthesis\n    with: {with}\n"
    )
}

#[test]
fn exactly_count_distinct_rows_cycling_tiers() {
    let ws = Workspace::new();
    let batch = dilemmas(&ws, &spec("{count: 300}"));
    assert_eq!(batch.num_rows(), 300);
    let texts: BTreeSet<String> = strings(&batch, "text").into_iter().collect();
    assert_eq!(texts.len(), 300, "rows are distinct");
    let tiers = strings(&batch, "tier");
    assert_eq!(&tiers[..3], ["professional", "interpersonal", "everyday"]);
    let domains: BTreeSet<String> = strings(&batch, "domain").into_iter().collect();
    assert!(domains.len() >= 8, "{domains:?}");
    assert!(
        strings(&batch, "text").iter().all(|t| !t.contains('{')),
        "every slot is filled"
    );
}

#[test]
fn raising_count_keeps_earlier_rows() {
    let ws = Workspace::new();
    let small = dilemmas(&ws, &spec("{count: 20}"));
    let large = dilemmas(&ws, &spec("{count: 50}"));
    assert_eq!(strings(&small, "id"), strings(&large, "id")[..20]);
    assert_eq!(strings(&small, "text"), strings(&large, "text")[..20]);
}

#[test]
fn the_seed_changes_the_rows() {
    let ws = Workspace::new();
    let a = dilemmas(&ws, &spec("{count: 10}"));
    let b = dilemmas(&ws, &spec("{count: 10}").replace("seed: 3", "seed: 4"));
    assert_ne!(strings(&a, "text"), strings(&b, "text"));
}

#[test]
fn tiers_and_domains_filter() {
    let ws = Workspace::new();
    let batch = dilemmas(
        &ws,
        &spec("{count: 12, tiers: [everyday], domains: [family, finance]}"),
    );
    assert!(strings(&batch, "tier").iter().all(|t| t == "everyday"));
    assert!(
        strings(&batch, "domain")
            .iter()
            .all(|d| d == "family" || d == "finance")
    );
}

#[test]
fn asking_for_more_than_the_library_holds_is_an_error() {
    let ws = Workspace::new();
    ws.write("lib.yaml", "version: 1\ntemplates:\n  - id: a\n    tier: everyday\n    domain: family\n    text: '{x} meets {y}?'\n    slots: {x: [p, q], y: [r, s]}\n");
    ws.write(
        "spec.yaml",
        &spec("{count: 5, tiers: [everyday], library: lib.yaml}"),
    );
    let out = ws.accord(&["run", "spec.yaml"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .contains("can supply only 4 distinct `everyday` dilemmas, but `count: 5` needs 5"),
        "{}",
        out.stderr
    );
    // Exactly the capacity works, walking the last combinations deterministically.
    let batch = dilemmas(
        &ws,
        &spec("{count: 4, tiers: [everyday], library: lib.yaml}"),
    );
    let texts: BTreeSet<String> = strings(&batch, "text").into_iter().collect();
    assert_eq!(
        texts,
        ["p meets r?", "p meets s?", "q meets r?", "q meets s?"]
            .map(String::from)
            .into_iter()
            .collect()
    );
}

#[test]
fn a_broken_library_names_the_file_and_line() {
    let ws = Workspace::new();
    ws.write(
        "lib.yaml",
        "version: 1\ntemplates:\n  - id: a\n    tier: everyday\n    domain: family\n    txt: 'x'\n",
    );
    ws.write("spec.yaml", &spec("{library: lib.yaml}"));
    let out = ws.accord(&["run", "spec.yaml"]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("lib.yaml"), "{}", out.stderr);
    assert!(out.stderr.contains("unknown field `txt`"), "{}", out.stderr);
    assert!(out.stderr.contains("line 6"), "{}", out.stderr);
}

#[test]
fn a_missing_library_file_is_a_validation_error() {
    let ws = Workspace::new();
    ws.write("spec.yaml", &spec("{library: nowhere.yaml}"));
    let out = ws.accord(&["validate", "spec.yaml"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .contains("`stages.d.with.library`: file `nowhere.yaml` does not exist"),
        "{}",
        out.stderr
    );
}
