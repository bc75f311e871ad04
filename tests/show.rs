//! `accord show`: a stage's output as a table a person reads (fitted to the terminal), as
//! CSV or JSON (every column, in full), or its path.

mod common;

use common::{Output, PIPELINE, Workspace};

/// `accord show ARGS` as if on a terminal `columns` wide (`COLUMNS`).
fn show(ws: &Workspace, columns: usize, args: &[&str]) -> Output {
    let mut all = vec!["show"];
    all.extend(args);
    let mut cmd = ws.command(&common::accord_bin(), &all);
    cmd.env("COLUMNS", columns.to_string());
    common::run(cmd)
}

/// The display width of a line (every character of these tables is one column wide).
fn width(line: &str) -> usize {
    line.chars().count()
}

#[test]
fn prints_rows_in_every_format() {
    let ws = Workspace::new();
    ws.write("spec.yaml", PIPELINE);
    ws.accord(&["run", "spec.yaml"]);
    let table = ws.accord(&["show", "spec.yaml", "dilemmas", "--rows", "3"]);
    assert_eq!(table.code, 0, "{}", table.stderr);
    // A header and three rows, with no frame shape or type row.
    assert!(!table.stdout.contains("shape:"), "{}", table.stdout);
    assert!(!table.stdout.contains(" str "), "{}", table.stdout);
    assert!(
        table.stdout.starts_with("id            tier"),
        "{}",
        table.stdout
    );
    assert_eq!(table.stdout.lines().count(), 6, "{}", table.stdout);
    assert!(
        table
            .stdout
            .ends_with("\n3 of 12 rows\nnot shown: template (`--format csv` or `--format json` has every column)\n"),
        "{}",
        table.stdout
    );
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

/// The tables as a person reads them: persona ids rather than profiles, long text cut
/// with `…` to the width, and the columns left out named.
#[test]
fn tables_show_the_columns_a_person_reads_within_the_width() {
    let ws = Workspace::new();
    ws.write("spec.yaml", PIPELINE);
    ws.accord(&["run", "spec.yaml"]);
    let dilemmas = show(&ws, 100, &["spec.yaml", "dilemmas", "--rows", "3"]);
    let pairs = show(&ws, 100, &["spec.yaml", "pairs", "--rows", "3"]);
    // Ids are content hashes of the template library's text: the same on every machine.
    insta::with_settings!({prepend_module_to_snapshot => false}, {
        insta::assert_snapshot!("show_dilemmas", dilemmas.stdout);
        insta::assert_snapshot!("show_pairs", pairs.stdout);
    });
    for (columns, stage) in [(100, "pairs"), (60, "pairs"), (60, "dilemmas")] {
        let out = show(&ws, columns, &["spec.yaml", stage, "--rows", "5"]);
        assert_eq!(out.code, 0, "{}", out.stderr);
        let (table, footer) = out.stdout.split_at(out.stdout.find("5 of ").unwrap());
        assert!(
            table.lines().all(|l| width(l) <= columns),
            "wider than {columns}:\n{}",
            out.stdout
        );
        assert!(table.contains('…'), "long text is cut:\n{}", out.stdout);
        if stage == "pairs" {
            // The profiles are left out; the persona ids that name them are not.
            assert!(
                footer.contains("not shown: dilemma_id, tier, domain"),
                "{footer}"
            );
            assert!(footer.contains("persona_a_profile"), "{footer}");
            assert!(table.starts_with("pair_id       persona_a "), "{table}");
        }
    }
    // The full text stays in CSV.
    let csv = ws.accord(&["show", "spec.yaml", "pairs", "--format", "csv"]);
    assert!(csv.stdout.contains("Your core values"), "{}", csv.stdout);
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
