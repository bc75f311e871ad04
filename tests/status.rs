//! `accord status`: fresh, stale with the reason, or missing.

mod common;

use common::{PIPELINE, Workspace, redacted};

#[test]
fn missing_then_fresh_then_stale_with_reason() {
    let ws = Workspace::new();
    ws.write("spec.yaml", PIPELINE);
    let before = ws.accord(&["status", "spec.yaml"]);
    assert_eq!(before.code, 0);
    ws.accord(&["run", "spec.yaml"]);
    let after = ws.accord(&["status", "spec.yaml"]);
    ws.write("spec.yaml", &PIPELINE.replace("count: 12", "count: 14"));
    let changed_upstream = ws.accord(&["status", "spec.yaml"]);
    ws.write(
        "spec.yaml",
        &PIPELINE.replace("pairs_per_dilemma: 2", "pairs_per_dilemma: 3"),
    );
    let changed_downstream = ws.accord(&["status", "spec.yaml"]);
    redacted().bind(|| {
        insta::assert_snapshot!("status_before_run", before.stdout);
        insta::assert_snapshot!("status_after_run", after.stdout);
        insta::assert_snapshot!("status_upstream_changed", changed_upstream.stdout);
        insta::assert_snapshot!("status_downstream_changed", changed_downstream.stdout);
    });
}

#[test]
fn json_is_one_array_of_objects() {
    let ws = Workspace::new();
    ws.write("spec.yaml", PIPELINE);
    ws.accord(&["run", "spec.yaml"]);
    ws.write(
        "spec.yaml",
        &PIPELINE.replace("pairs_per_dilemma: 2", "pairs_per_dilemma: 3"),
    );
    let out = ws.accord(&["status", "spec.yaml", "--json"]);
    let value: serde_json::Value = serde_json::from_str(&out.stdout).expect("stdout is only JSON");
    let items = value.as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["stage"], "dilemmas");
    assert_eq!(items[0]["state"], "fresh");
    assert_eq!(items[0]["reason"], "");
    assert_eq!(items[0]["key"].as_str().unwrap().len(), 64);
    assert_eq!(items[1]["state"], "stale");
    assert_eq!(
        items[1]["reason"],
        "`stages.pairs.with.pairs_per_dilemma` changed 2 → 3"
    );
    for item in items {
        let mut keys: Vec<&str> = item
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort();
        assert_eq!(keys, ["key", "reason", "stage", "state"]);
    }
}

#[test]
fn status_reads_no_parquet() {
    // Overwrite a data file with garbage of the same size and mtime: a status that read
    // Parquet would notice; status must not (the next read or `verify` will).
    let ws = Workspace::new();
    ws.write("spec.yaml", PIPELINE);
    ws.accord(&["run", "spec.yaml"]);
    for entry in ws.entries() {
        let data = entry.join("data.parquet");
        let mtime = std::fs::metadata(&data).unwrap().modified().unwrap();
        let len = std::fs::metadata(&data).unwrap().len() as usize;
        std::fs::write(&data, vec![0u8; len]).unwrap();
        std::fs::File::options()
            .write(true)
            .open(&data)
            .unwrap()
            .set_modified(mtime)
            .unwrap();
    }
    let out = ws.accord(&["status", "spec.yaml", "--json"]);
    assert_eq!(out.stdout.matches("\"fresh\"").count(), 2, "{}", out.stdout);
    assert_eq!(ws.accord(&["verify"]).code, 1);
}

/// A model file that is a device is reported as such, never read: `/dev/zero` would be
/// hashed forever.
#[test]
fn a_device_as_model_file_is_named_not_read() {
    let ws = Workspace::new();
    ws.write(
        "spec.yaml",
        &format!(
            "{PIPELINE}  talk:\n    kind: rollout\n    needs: [pairs]\n    with: {{model: m}}\n\
             models:\n  m: {{source: 'path:/dev/zero'}}\n"
        ),
    );
    // The same data stages without the rollout: stored, so the rollout is keyed.
    ws.write("data.yaml", PIPELINE);
    let out = ws.accord(&["run", "data.yaml"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = ws.accord(&["status", "spec.yaml"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout
            .contains("`/dev/zero` is a character device, not a regular file"),
        "{}",
        out.stdout
    );
}
