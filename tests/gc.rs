//! `accord gc`: removes what no kept run refers to and says what it freed.

mod common;

use common::{PIPELINE, Workspace};

#[test]
fn removes_artifacts_of_superseded_runs() {
    let ws = Workspace::new();
    ws.write("spec.yaml", PIPELINE);
    ws.accord(&["run", "spec.yaml"]);
    ws.write(
        "spec.yaml",
        &PIPELINE.replace("pairs_per_dilemma: 2", "pairs_per_dilemma: 1"),
    );
    ws.accord(&["run", "spec.yaml"]);
    assert_eq!(ws.entries().len(), 3);
    let dry = ws.accord(&["gc", "--dry-run"]);
    assert!(
        dry.stdout.contains("would remove `pairs`"),
        "{}",
        dry.stdout
    );
    assert_eq!(ws.entries().len(), 3);
    let out = ws.accord(&["gc"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("removed `pairs`"), "{}", out.stdout);
    assert!(
        out.stdout
            .contains("removed 1 artifact and 1 old run record; freed"),
        "{}",
        out.stdout
    );
    assert_eq!(ws.entries().len(), 2);
    assert_eq!(
        ws.accord(&["run", "spec.yaml"]).stdout.trim(),
        "0 ran, 2 cached"
    );
    // Going back recomputes only what gc removed.
    ws.write("spec.yaml", PIPELINE);
    assert_eq!(
        ws.accord(&["run", "spec.yaml"]).stdout.trim(),
        "1 ran, 1 cached"
    );
}

#[test]
fn keep_runs_keeps_older_artifacts() {
    let ws = Workspace::new();
    ws.write("spec.yaml", PIPELINE);
    ws.accord(&["run", "spec.yaml"]);
    ws.write(
        "spec.yaml",
        &PIPELINE.replace("pairs_per_dilemma: 2", "pairs_per_dilemma: 1"),
    );
    ws.accord(&["run", "spec.yaml"]);
    let out = ws.accord(&["gc", "--keep-runs", "2"]);
    assert!(
        out.stdout.starts_with("removed 0 artifacts"),
        "{}",
        out.stdout
    );
    assert_eq!(ws.entries().len(), 3);
}
