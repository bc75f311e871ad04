//! `evaluate`: a trained checkpoint against its base model on held-out rows, every suite,
//! with per-item rows and summaries; and the check that held-out rows are held out.

mod common;

use std::collections::BTreeSet;

use arrow::array::{Array, Float64Array, UInt32Array};
use common::{Workspace, read_parquet, strings};

fn spec(model: &str, heldout_split: &str, evaluate: &str) -> String {
    format!(
        "version: 1\nname: evaluate\nseed: 5\nmodels:\n  base:\n    source: {model}\n  \
         trained:\n    source: stage:train\nstages:\n  \
         dilemmas:\n    kind: prompt_synthesis\n    with: {{count: 3, split: train}}\n  \
         pairs:\n    kind: persona_pairing\n    needs: [dilemmas]\n  \
         train:\n    kind: grpo\n    needs: [pairs]\n    with: {{policy: base, reward: {{contains: \"e\"}}, \
         steps: 2, batch_prompts: 2, group_size: 4, max_turns: 2, max_new_tokens: 8, \
         temperature: 1.0, top_p: 1.0, agreement: marker, lr: 0.01}}\n  \
         heldout_dilemmas:\n    kind: prompt_synthesis\n    with: {{count: 2, {heldout_split}}}\n  \
         heldout:\n    kind: persona_pairing\n    needs: [heldout_dilemmas]\n  \
         eval:\n    kind: evaluate\n    needs: [heldout]\n    with: {{models: [trained], baseline: base, judge: base, \
         {evaluate}}}\n"
    )
}

/// Every suite on the tiny fixture: one row per (model, metric, item, repeat), the
/// pairwise rates only for the trained model, deterministic metrics once, summaries in
/// the table's metadata and the run output; a second run reuses every cached row.
#[test]
fn every_suite_scores_each_item_and_summarises_it() {
    let ws = Workspace::new();
    let model = common::tiny_long_context(&ws);
    let evaluate = "repeats: 2, items: 2, max_turns: 2, max_new_tokens: 6, agreement: marker, \
                    resamples: 200";
    ws.write("spec.yaml", &spec(&model, "split: heldout", evaluate));
    let run = ws.accord(&["run", "spec.yaml", "--backend", "flex"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains("eval: trained ca_score: "),
        "{}",
        run.stderr
    );

    let out = ws.accord(&["show", "spec.yaml", "eval", "--path"]);
    let path = ws.path().join(out.stdout.trim());
    let table = read_parquet(&path);
    let (models, metrics, items) = (
        strings(&table, "model"),
        strings(&table, "metric"),
        strings(&table, "item"),
    );
    let repeats = table.column_by_name("repeat").unwrap();
    let repeats = repeats.as_any().downcast_ref::<UInt32Array>().unwrap();
    let values = table.column_by_name("value").unwrap();
    let values = values.as_any().downcast_ref::<Float64Array>().unwrap();
    let count = |model: &str, metric: &str| {
        (0..table.num_rows())
            .filter(|&i| models[i] == model && metrics[i] == metric)
            .count()
    };
    // Two held-out dilemmas and two open-ended questions, twice.
    assert_eq!(count("trained", "ca_score"), 8);
    assert_eq!(count("base", "ca_score"), 8);
    assert_eq!(count("trained", "ca_win_rate"), 8);
    assert_eq!(
        count("base", "ca_win_rate"),
        0,
        "no pairwise rows for the baseline"
    );
    assert_eq!(count("trained", "agreement_rate"), 4);
    assert_eq!(count("trained", "cr_win_rate"), 4);
    // The trained checkpoint is what was evaluated: its perplexity is not the base's.
    let perplexity = |model: &str| -> Vec<f64> {
        (0..table.num_rows())
            .filter(|&i| models[i] == model && metrics[i] == "perplexity")
            .map(|i| values.value(i))
            .collect()
    };
    assert_ne!(perplexity("trained"), perplexity("base"));
    // Deterministic metrics run once: 8 paragraphs and 30 multiple-choice items.
    assert_eq!(count("trained", "perplexity"), 8);
    assert_eq!(count("base", "mc_accuracy"), 30);
    let questions: BTreeSet<&String> = items.iter().filter(|i| i.starts_with('q')).collect();
    assert_eq!(questions.len(), 2);
    for (i, metric) in metrics.iter().enumerate() {
        let v = values.is_valid(i).then(|| values.value(i));
        match metric.as_str() {
            "ca_score" => assert!(v.is_some_and(|v| (0.0..=5.0).contains(&v))),
            "perplexity" => assert!(v.is_some_and(|v| v > 1.0 && v.is_finite())),
            "rounds_to_agreement" => {}
            _ => assert!(v.is_some_and(|v| v == 0.0 || v == 1.0), "{metric}"),
        }
        if metric == "perplexity" {
            assert_eq!(repeats.value(i), 0);
        }
    }
    // A win and a loss never both hold for one item.
    for i in 0..table.num_rows() {
        if metrics[i] == "ca_win_rate" && values.value(i) == 1.0 {
            assert_eq!(metrics[i + 1], "ca_loss_rate");
            assert_eq!(values.value(i + 1), 0.0);
        }
    }

    let summaries = common::parquet_metadata(&path, "accord.evaluation").unwrap();
    let summaries: serde_json::Value = serde_json::from_str(&summaries).unwrap();
    let ca = summaries
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["model"] == "trained" && s["metric"] == "ca_score")
        .unwrap();
    assert_eq!(ca["repeats"], 2);
    assert_eq!(ca["items"], 4);
    assert!(ca["ci"]["low"].as_f64().unwrap() <= ca["mean"].as_f64().unwrap());
    assert!(ca["ci"]["high"].as_f64().unwrap() >= ca["mean"].as_f64().unwrap());

    // A new bootstrap re-runs the stage, from cached answers, dialogues and verdicts.
    let again = ws.accord(&[
        "run",
        "spec.yaml",
        "--backend",
        "flex",
        "--set",
        "stages.eval.with.resamples=300",
    ]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(
        again.stderr.contains("eval: 0 computed"),
        "{}",
        again.stderr
    );
}

/// Held-out pairs drawn from the training part of the library overlap training rows:
/// the stage refuses them and says how to split.
#[test]
fn held_out_rows_that_were_trained_on_are_refused() {
    let ws = Workspace::new();
    let model = common::tiny_long_context(&ws);
    // Pairs of the training dilemmas themselves.
    let spec = spec(&model, "split: train", "suites: [general]").replace(
        "  heldout:\n    kind: persona_pairing\n    needs: [heldout_dilemmas]\n",
        "  heldout:\n    kind: persona_pairing\n    needs: [dilemmas]\n",
    );
    ws.write("spec.yaml", &spec);
    let run = ws.accord(&["run", "spec.yaml", "--backend", "flex"]);
    assert_ne!(run.code, 0);
    assert!(
        run.stderr.contains("held-out dilemma(s) of `heldout` are also in `pairs`, which an evaluated model was trained on"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("split: heldout"), "{}", run.stderr);
}
