//! The store: layout, metadata, run records, location overrides, plain Parquet.

mod common;

use common::{PIPELINE, Workspace, read_parquet, strings};
use serde_json::Value;

#[test]
fn artifacts_are_parquet_plus_meta_under_their_key() {
    let ws = Workspace::new();
    ws.write("spec.yaml", PIPELINE);
    assert_eq!(ws.accord(&["run", "spec.yaml"]).code, 0);
    let entries = ws.entries();
    assert_eq!(entries.len(), 2);
    for entry in &entries {
        let key = entry.file_name().unwrap().to_str().unwrap();
        assert_eq!(key.len(), 64);
        assert_eq!(
            entry
                .parent()
                .unwrap()
                .file_name()
                .unwrap()
                .to_str()
                .unwrap(),
            &key[..2]
        );
        let meta: Value =
            serde_json::from_str(&std::fs::read_to_string(entry.join("meta.json")).unwrap())
                .unwrap();
        for field in [
            "schema",
            "rows",
            "digest",
            "key_parts",
            "seconds",
            "accord_version",
            "created_at",
        ] {
            assert!(meta.get(field).is_some(), "meta.json lacks `{field}`");
        }
        let bytes = std::fs::read(entry.join("data.parquet")).unwrap();
        assert_eq!(meta["digest"], blake3::hash(&bytes).to_hex().as_str());
        assert_eq!(meta["key"], key);
        // The key is the hash of the recorded parts.
        let parts: accord::store::StageKey =
            serde_json::from_value(meta["key_parts"].clone()).unwrap();
        assert_eq!(parts.hash(), key);
        let batch = read_parquet(&entry.join("data.parquet"));
        assert_eq!(meta["rows"], batch.num_rows() as u64);
    }
    // Nothing half-written is left behind.
    let tmp = ws.path().join(".accord/tmp");
    assert!(std::fs::read_dir(&tmp).map(|d| d.count()).unwrap_or(0) == 0);
}

#[test]
fn run_records_say_what_ran() {
    let ws = Workspace::new();
    ws.write("spec.yaml", PIPELINE);
    ws.accord(&["run", "spec.yaml"]);
    ws.accord(&["run", "spec.yaml"]);
    let runs: Vec<_> = std::fs::read_dir(ws.path().join(".accord/runs"))
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(runs.len(), 2);
    let mut records: Vec<Value> = runs
        .iter()
        .map(|r| serde_json::from_str(&std::fs::read_to_string(r.path()).unwrap()).unwrap())
        .collect();
    records.sort_by_key(|r| r["id"].as_str().unwrap().to_string());
    for field in [
        "spec_digest",
        "accord_version",
        "commit",
        "backend",
        "adapter",
        "threads",
        "stages",
        "seconds",
    ] {
        assert!(
            records[0].get(field).is_some(),
            "run record lacks `{field}`"
        );
    }
    let states = |r: &Value| -> Vec<String> {
        r["stages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["state"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(states(&records[0]), ["ran", "ran"]);
    assert_eq!(states(&records[1]), ["cached", "cached"]);
    assert_eq!(
        records[0]["stages"][1]["key"],
        records[1]["stages"][1]["key"]
    );
    assert_eq!(records[0]["spec_digest"], records[1]["spec_digest"]);
}

#[test]
fn store_location_follows_flag_env_and_parent_folders() {
    let ws = Workspace::new();
    ws.write("specs/spec.yaml", PIPELINE);
    // --store
    let out = ws.accord(&["--store", "elsewhere", "run", "specs/spec.yaml"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(ws.path().join("elsewhere/store").is_dir());
    assert!(!ws.path().join(".accord").exists());
    // ACCORD_STORE
    let mut cmd = ws.command(&common::accord_bin(), &["run", "specs/spec.yaml"]);
    cmd.env("ACCORD_STORE", ws.path().join("elsewhere"));
    let out = common::run(cmd);
    assert_eq!(out.stdout.trim(), "0 ran, 2 cached");
    // The nearest .accord above the current folder.
    std::fs::create_dir_all(ws.path().join(".accord")).unwrap();
    let mut cmd = ws.command(&common::accord_bin(), &["run", "spec.yaml"]);
    cmd.current_dir(ws.path().join("specs"));
    let out = common::run(cmd);
    assert_eq!(out.stdout.trim(), "2 ran, 0 cached");
    assert!(ws.path().join(".accord/store").is_dir());
    assert!(!ws.path().join("specs/.accord").exists());
}

#[test]
fn other_parquet_readers_open_artifacts() {
    let ws = Workspace::new();
    ws.write("spec.yaml", PIPELINE);
    ws.accord(&["run", "spec.yaml"]);
    let path = ws
        .accord(&["show", "spec.yaml", "pairs", "--path"])
        .stdout
        .trim()
        .to_string();
    let path = ws.path().join(path);
    let batch = read_parquet(&path);
    let script = format!(
        "import pyarrow.parquet as pq, duckdb\n\
         t = pq.read_table({p:?})\n\
         n = duckdb.connect().execute(\"select count(*) from read_parquet('{p}')\").fetchall()[0][0]\n\
         print(t.num_rows, n, ','.join(t.column_names))\n",
        p = path.display().to_string()
    );
    let out = std::process::Command::new("python3")
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pyarrow/duckdb failed (is `.ci/run`'s pip install done?): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8_lossy(&out.stdout);
    let expected_columns: Vec<String> = batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(
        printed.trim(),
        format!(
            "{} {} {}",
            batch.num_rows(),
            batch.num_rows(),
            expected_columns.join(",")
        )
    );
    assert_eq!(strings(&batch, "dilemma_id").len(), 24);
}

#[test]
fn verify_rehashes_every_artifact() {
    let ws = Workspace::new();
    ws.write("spec.yaml", PIPELINE);
    ws.accord(&["run", "spec.yaml"]);
    let out = ws.accord(&["verify"]);
    assert_eq!(out.code, 0);
    assert!(
        out.stdout.starts_with("verified 2 artifacts"),
        "{}",
        out.stdout
    );
    let entry = &ws.entries()[0];
    let data = entry.join("data.parquet");
    let mut bytes = std::fs::read(&data).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&data, bytes).unwrap();
    let out = ws.accord(&["verify"]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("is corrupt"), "{}", out.stderr);
}

/// An empty `ACCORD_STORE` counts as unset: the default store, not an error about
/// `--store`.
#[test]
fn an_empty_accord_store_means_the_default() {
    let ws = Workspace::new();
    ws.write("spec.yaml", PIPELINE);
    let mut cmd = ws.command(&common::accord_bin(), &["run", "spec.yaml"]);
    cmd.env("ACCORD_STORE", "");
    let out = common::run(cmd);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(ws.path().join(".accord/store").is_dir());
}

/// `verify` and `gc` where there is no store say so, and create none.
#[test]
fn verify_and_gc_without_a_store_say_so_and_create_nothing() {
    let ws = Workspace::new();
    let mut said = String::new();
    for args in [&["verify"][..], &["gc"], &["gc", "--dry-run"]] {
        let out = ws.accord(args);
        assert_eq!(out.code, 1, "{args:?}: {}", out.stderr);
        assert_eq!(out.stdout, "");
        said.push_str(&out.stderr);
    }
    assert!(!ws.path().join(".accord").exists());
    let said = said.replace(&ws.path().display().to_string(), "[WS]");
    insta::assert_snapshot!("verify_and_gc_without_a_store", said);
}
