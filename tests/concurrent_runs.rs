//! Two `accord run`s on one workspace neither corrupt the store nor compute a key twice.

mod common;

use common::Workspace;

const SPEC: &str = "\
version: 1
name: shared
stages:
  dilemmas:
    kind: prompt_synthesis
    with: {count: 20}
  words:
    kind: word_count
    needs: [dilemmas]
    with: {delay_ms: 40}
  more_words:
    kind: word_count
    needs: [dilemmas]
    with: {delay_ms: 30}
";

#[test]
fn two_runs_at_once_compute_each_key_once() {
    let ws = Workspace::new();
    ws.write("spec.yaml", SPEC);
    let a = ws.spawn_custom(&["run", "spec.yaml", "--jobs", "2"]);
    let b = ws.spawn_custom(&["run", "spec.yaml", "--jobs", "2"]);
    let a = a.wait_with_output().unwrap();
    let b = b.wait_with_output().unwrap();
    assert!(
        a.status.success() && b.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&a.stderr),
        String::from_utf8_lossy(&b.stderr)
    );
    let count = |out: &std::process::Output, word: &str| -> usize {
        let line = String::from_utf8_lossy(&out.stdout).trim().to_string();
        line.split(", ")
            .find(|part| part.ends_with(word))
            .and_then(|part| part.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no `{word}` in {line:?}"))
    };
    assert_eq!(
        count(&a, "ran") + count(&b, "ran"),
        3,
        "each of the 3 stages computed exactly once"
    );
    assert_eq!(count(&a, "cached") + count(&b, "cached"), 3);
    assert_eq!(ws.entries().len(), 3);
    assert_eq!(ws.custom(&["verify"]).code, 0);
    assert_eq!(
        ws.custom(&["run", "spec.yaml"]).stdout.trim(),
        "0 ran, 3 cached"
    );
}

#[test]
fn gc_waits_for_no_run() {
    let ws = Workspace::new();
    ws.write("spec.yaml", SPEC);
    let mut run = ws.spawn_custom(&["run", "spec.yaml"]);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let gc = ws.custom(&["gc"]);
    run.wait().unwrap();
    assert_eq!(
        gc.code, 1,
        "gc must refuse while a run holds the store: {}",
        gc.stdout
    );
    assert!(
        gc.stderr
            .contains("another `accord run` is using this store"),
        "{}",
        gc.stderr
    );
}
