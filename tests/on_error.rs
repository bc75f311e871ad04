//! Failure policy: `--on-error fail` stops, `keep-going` runs independent stages; skipped
//! stages are named.

mod common;

use common::Workspace;

const SPEC: &str = "\
version: 1
name: failing
stages:
  impossible:
    kind: prompt_synthesis
    with: {count: 100000, tiers: [everyday]}
  pairs:
    kind: persona_pairing
    needs: [impossible]
  fine:
    kind: prompt_synthesis
    with: {count: 5}
";

#[test]
fn fail_stops_and_names_what_did_not_run() {
    let ws = Workspace::new();
    ws.write("spec.yaml", SPEC);
    let out = ws.accord(&["run", "spec.yaml", "--jobs", "1"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .contains("stage `impossible` failed: the dilemma library can supply only"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("pairs: skipped: it needs `impossible`, which did not finish"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("fine: skipped: an earlier stage failed"),
        "{}",
        out.stderr
    );
    assert_eq!(out.stdout.trim(), "0 ran, 0 cached, 1 failed, 2 skipped");
    assert!(ws.entries().is_empty());
}

#[test]
fn keep_going_runs_independent_stages() {
    let ws = Workspace::new();
    ws.write("spec.yaml", SPEC);
    let out = ws.accord(&["run", "spec.yaml", "--on-error", "keep-going"]);
    assert_eq!(out.code, 1);
    assert_eq!(out.stdout.trim(), "1 ran, 0 cached, 1 failed, 1 skipped");
    assert!(out.stderr.contains("pairs: skipped"), "{}", out.stderr);
    assert_eq!(ws.entries().len(), 1);
}
