//! `accord show`: a stage's output as a table, CSV or JSON, or its path.

mod common;

use common::{PIPELINE, Workspace};

#[test]
fn prints_rows_in_every_format() {
    let ws = Workspace::new();
    ws.write("spec.yaml", PIPELINE);
    ws.accord(&["run", "spec.yaml"]);
    let table = ws.accord(&["show", "spec.yaml", "dilemmas", "--rows", "3"]);
    assert_eq!(table.code, 0, "{}", table.stderr);
    assert!(table.stdout.contains("shape: (3, 5)"), "{}", table.stdout);
    assert!(table.stdout.ends_with("3 of 12 rows\n"), "{}", table.stdout);
    let csv = ws.accord(&[
        "show",
        "spec.yaml",
        "dilemmas",
        "--rows",
        "4",
        "--format",
        "csv",
    ]);
    let lines: Vec<&str> = csv.stdout.lines().collect();
    assert_eq!(lines[0], "id,tier,domain,template,text");
    assert_eq!(lines.len(), 5);
    let json = ws.accord(&[
        "show",
        "spec.yaml",
        "pairs",
        "--format",
        "json",
        "--rows",
        "2",
    ]);
    let value: serde_json::Value = serde_json::from_str(&json.stdout).expect("only JSON on stdout");
    assert_eq!(value.as_array().unwrap().len(), 2);
    assert!(
        value[0]["persona_a_profile"]
            .as_str()
            .unwrap()
            .contains("Your core values")
    );
}

#[test]
fn path_prints_only_the_path() {
    let ws = Workspace::new();
    ws.write("spec.yaml", PIPELINE);
    ws.accord(&["run", "spec.yaml"]);
    let out = ws.accord(&["show", "spec.yaml", "pairs", "--path"]);
    let path = out.stdout.trim_end();
    assert_eq!(out.stdout.lines().count(), 1);
    assert!(
        path.starts_with(".accord/store/") && path.ends_with("/data.parquet"),
        "{path}"
    );
    assert!(ws.path().join(path).is_file());
}

#[test]
fn stale_or_unknown_stages_are_clear_errors() {
    let ws = Workspace::new();
    ws.write("spec.yaml", PIPELINE);
    let out = ws.accord(&["show", "spec.yaml", "pairs"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("stage `pairs` has no current output"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("hint: run `accord run spec.yaml` first"),
        "{}",
        out.stderr
    );
    let out = ws.accord(&["show", "spec.yaml", "pair"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("did you mean `pairs`?"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_closed_pipe_is_not_an_error() {
    let ws = Workspace::new();
    ws.write("spec.yaml", PIPELINE);
    ws.accord(&["run", "spec.yaml"]);
    let mut child = ws
        .command(
            &common::accord_bin(),
            &[
                "show",
                "spec.yaml",
                "pairs",
                "--format",
                "csv",
                "--rows",
                "1000",
            ],
        )
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
}
