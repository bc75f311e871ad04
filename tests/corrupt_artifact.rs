//! A corrupt artifact is reported, never trusted, and recomputed.

mod common;

use common::{PIPELINE, Workspace};

fn setup() -> Workspace {
    let ws = Workspace::new();
    ws.write("spec.yaml", PIPELINE);
    assert_eq!(ws.accord(&["run", "spec.yaml"]).code, 0);
    ws
}

fn entry_of(ws: &Workspace, stage: &str) -> std::path::PathBuf {
    ws.entries()
        .into_iter()
        .find(|e| {
            std::fs::read_to_string(e.join("meta.json"))
                .unwrap()
                .contains(&format!("\"stage\": \"{stage}\""))
        })
        .unwrap()
}

#[test]
fn flipped_bytes_are_detected_and_recomputed() {
    let ws = setup();
    let data = entry_of(&ws, "pairs").join("data.parquet");
    let original = std::fs::read(&data).unwrap();
    let mut bytes = original.clone();
    bytes[original.len() / 3] ^= 0x01;
    std::fs::write(&data, &bytes).unwrap();
    let out = ws.accord(&["run", "spec.yaml"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("the stored output of `pairs` is corrupt"),
        "{}",
        out.stderr
    );
    assert_eq!(out.stdout.trim(), "1 ran, 1 cached");
    assert_eq!(
        std::fs::read(&data).unwrap(),
        original,
        "recomputing gives the same bytes"
    );
    assert_eq!(
        ws.accord(&["run", "spec.yaml"]).stdout.trim(),
        "0 ran, 2 cached"
    );
}

#[test]
fn an_input_corrupted_behind_an_unchanged_mtime_is_caught_when_read() {
    let ws = setup();
    let data = entry_of(&ws, "dilemmas").join("data.parquet");
    let mtime = std::fs::metadata(&data).unwrap().modified().unwrap();
    let mut bytes = std::fs::read(&data).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 0x01;
    std::fs::write(&data, &bytes).unwrap();
    let file = std::fs::File::options().write(true).open(&data).unwrap();
    file.set_modified(mtime).unwrap();
    drop(file);
    // Make `pairs` need to run, so that it reads `dilemmas`.
    let out = ws.accord(&[
        "run",
        "spec.yaml",
        "--set",
        "stages.pairs.with.pairs_per_dilemma=1",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("the stored output of `dilemmas` cannot be used"),
        "{}",
        out.stderr
    );
    assert_eq!(ws.accord(&["verify"]).code, 0);
}

#[test]
fn broken_meta_json_is_recomputed() {
    let ws = setup();
    std::fs::write(entry_of(&ws, "dilemmas").join("meta.json"), "{ not json").unwrap();
    let out = ws.accord(&["run", "spec.yaml"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("corrupt"), "{}", out.stderr);
    assert_eq!(out.stdout.trim(), "1 ran, 1 cached");
}

#[test]
fn a_missing_data_file_is_recomputed() {
    let ws = setup();
    std::fs::remove_file(entry_of(&ws, "dilemmas").join("data.parquet")).unwrap();
    let out = ws.accord(&["run", "spec.yaml"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout.trim(), "1 ran, 1 cached");
}
