//! The library examples (`examples/`), built by `cargo test`, run as a user would run them.

mod common;

use std::path::PathBuf;

use common::{Workspace, run};

fn example(name: &str) -> PathBuf {
    let path = common::accord_bin()
        .parent()
        .unwrap()
        .join("examples")
        .join(name);
    assert!(
        path.exists(),
        "{} is missing: `cargo test` builds examples",
        path.display()
    );
    path
}

/// `run_pipeline` builds, plans and runs a spec from Rust; a second run finds every stage
/// in the store. `read_artifact` then reads a stage's output into a polars DataFrame.
#[test]
fn a_pipeline_runs_from_rust_and_its_artifact_reads_into_polars() {
    let ws = Workspace::new();
    let dir = ws.path().to_str().unwrap().to_string();
    let out = run(ws.command(&example("run_pipeline"), &[&dir]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(lines[0].starts_with("dilemmas: ran "), "{}", out.stdout);
    assert!(lines[1].starts_with("pairs: ran "), "{}", out.stdout);
    assert_eq!(lines[2], "2 ran, 0 cached");
    let again = run(ws.command(&example("run_pipeline"), &[&dir]));
    assert!(
        again.stdout.ends_with("0 ran, 2 cached\n"),
        "{}",
        again.stdout
    );

    ws.write(
        "spec.yaml",
        "version: 1\nname: from-rust\nseed: 3\nstages:\n  dilemmas:\n    kind: prompt_synthesis\n    \
         with: {count: 5, split: train}\n",
    );
    let out = run(ws.command(&example("read_artifact"), &["spec.yaml", "dilemmas"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout
            .starts_with("5 rows, columns: id, tier, domain, template, text\nshape: (3, 5)"),
        "{}",
        out.stdout
    );
}
