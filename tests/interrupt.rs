//! Ctrl-C or `kill -9` mid-stage leaves no entry for that stage; a later run completes it.

mod common;

use std::io::{BufRead, BufReader};
use std::process::Child;
use std::time::Duration;

use common::Workspace;

const SLOW: &str = "\
version: 1
name: slow
stages:
  dilemmas:
    kind: prompt_synthesis
    with: {count: 40}
  words:
    kind: word_count
    needs: [dilemmas]
    with: {delay_ms: 100}
";

/// Waits until the child's stderr says `words` is running, then a little longer.
fn wait_until_words_runs(child: &mut Child) -> std::thread::JoinHandle<String> {
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stderr).lines() {
            let line = line.unwrap();
            if line == "words: running" {
                let _ = tx.send(());
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    rx.recv_timeout(Duration::from_secs(60))
        .expect("`words` started");
    std::thread::sleep(Duration::from_millis(400));
    reader
}

fn words_status(ws: &Workspace) -> String {
    let out = ws.custom(&["status", "spec.yaml", "--json"]);
    let states: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    states[1]["state"].as_str().unwrap().to_string()
}

#[test]
fn kill_9_mid_stage_leaves_no_entry_and_a_rerun_completes() {
    let ws = Workspace::new();
    ws.write("spec.yaml", SLOW);
    let mut child = ws.spawn_custom(&["run", "spec.yaml"]);
    let reader = wait_until_words_runs(&mut child);
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    reader.join().unwrap();
    assert_eq!(ws.entries().len(), 1, "only `dilemmas` finished");
    assert_eq!(words_status(&ws), "missing");
    let out = ws.custom(&["run", "spec.yaml"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout.trim(), "1 ran, 1 cached");
    // The dead process's half-written files are gone.
    let tmp: Vec<_> = std::fs::read_dir(ws.path().join(".accord/tmp"))
        .map(|d| d.flatten().collect())
        .unwrap_or_default();
    assert!(tmp.is_empty(), "{tmp:?}");
}

#[test]
fn ctrl_c_stops_the_run_cleanly() {
    let ws = Workspace::new();
    ws.write("spec.yaml", SLOW);
    let mut child = ws.spawn_custom(&["run", "spec.yaml"]);
    let reader = wait_until_words_runs(&mut child);
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    let stderr = reader.join().unwrap();
    assert_eq!(exit.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert_eq!(ws.entries().len(), 1);
    let record = std::fs::read_dir(ws.path().join(".accord/runs"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(record).unwrap()).unwrap();
    assert_eq!(record["outcome"], "interrupted");
    let out = ws.custom(&["run", "spec.yaml"]);
    assert_eq!(out.stdout.trim(), "1 ran, 1 cached");
}
