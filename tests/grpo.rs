//! `grpo`: the mask over a dialogue's tokens, and training that raises a programmatic
//! reward on the tiny fixture model within a few steps.

mod common;

use accord::dialogue::{Dialogue, Utterance};
use accord::train::sequences::{TrainAgents, token_mask, training_rows};
use arrow::array::{Array, Float64Array, UInt32Array};
use common::{Workspace, read_parquet};

fn utterance(speaker: usize, prompt: &[u32], tokens: &[u32]) -> Utterance {
    Utterance {
        speaker,
        text: String::new(),
        prompt_ids: prompt.to_vec(),
        token_ids: tokens.to_vec(),
        logprobs: vec![-1.0; tokens.len()],
        p_agree: None,
    }
}

/// Three turns (agent 0, agent 1, agent 0) and a summary by agent 0: with `first`, only
/// agent 0's turn tokens carry gradient; prompts (which hold the other agent's words),
/// agent 1's turn and the summary do not. With `all`, agent 1's turn trains too.
#[test]
fn only_the_trained_agents_generated_tokens_carry_gradient() {
    let dialogue = Dialogue {
        turns: vec![
            utterance(0, &[1, 2], &[10, 11]),
            utterance(1, &[3, 10, 11], &[20, 21, 22]),
            utterance(0, &[4, 20, 21, 22], &[12]),
        ],
        agreed: false,
        summary: utterance(0, &[5, 10, 20], &[30, 31]),
    };
    let first: Vec<(u32, bool)> = token_mask(&dialogue, TrainAgents::First);
    let (t, f) = (true, false);
    assert_eq!(
        first,
        vec![
            (1, f),
            (2, f),
            (10, t),
            (11, t),
            (3, f),
            (10, f),
            (11, f),
            (20, f),
            (21, f),
            (22, f),
            (4, f),
            (20, f),
            (21, f),
            (22, f),
            (12, t),
            (5, f),
            (10, f),
            (20, f),
            (30, f),
            (31, f),
        ]
    );
    let all = token_mask(&dialogue, TrainAgents::All);
    let trained: Vec<u32> = all.iter().filter(|(_, m)| *m).map(|(id, _)| *id).collect();
    assert_eq!(trained, vec![10, 11, 20, 21, 22, 12]);

    // Training scores each trained turn as its own (prompt, completion) row.
    let rows = training_rows(&dialogue, 7, TrainAgents::First);
    let completions: Vec<&[u32]> = rows
        .iter()
        .map(|r| r.scored.completion.as_slice())
        .collect();
    assert_eq!(completions, vec![&[10, 11][..], &[12][..]]);
    assert_eq!(rows[1].scored.prompt, vec![4, 20, 21, 22]);
    assert!(rows.iter().all(|r| r.sample == 7));
}

fn spec(model: &str, train: &str) -> String {
    format!(
        "version: 1\nname: learn\nseed: 3\nmodels:\n  policy:\n    source: {model}\nstages:\n  \
         dilemmas:\n    kind: prompt_synthesis\n    with: {{count: 4}}\n  \
         pairs:\n    kind: persona_pairing\n    needs: [dilemmas]\n  \
         train:\n    kind: grpo\n    needs: [pairs]\n    with: {{policy: policy, {train}}}\n"
    )
}

fn floats(batch: &arrow::record_batch::RecordBatch, name: &str) -> Vec<f64> {
    let column = batch.column_by_name(name).unwrap();
    column
        .as_any()
        .downcast_ref::<Float64Array>()
        .unwrap()
        .values()
        .to_vec()
}

/// The reward counts the letter `e` in the trained agent's turns. Seeded, 20 steps of 8
/// dialogues: the last five steps' mean reward must clear the first five's by a wide
/// margin (on this fixture it goes from about 0.3 to about 8, the most 8 tokens allow).
#[test]
fn training_raises_a_programmatic_reward() {
    let ws = Workspace::new();
    let model = common::tiny_long_context(&ws);
    let train = "reward: {contains: \"e\"}, steps: 20, batch_prompts: 2, group_size: 4, \
                 max_turns: 2, max_new_tokens: 8, temperature: 1.0, top_p: 1.0, \
                 agreement: marker, lr: 0.01, loss: dapo";
    ws.write("spec.yaml", &spec(&model, train));
    let run = ws.accord(&["run", "spec.yaml", "--backend", "flex"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let out = ws.accord(&["show", "spec.yaml", "train", "--path"]);
    let metrics = read_parquet(&ws.path().join(out.stdout.trim()));
    assert_eq!(metrics.num_rows(), 20, "one row per step");
    let steps = metrics.column_by_name("step").unwrap();
    let steps = steps.as_any().downcast_ref::<UInt32Array>().unwrap();
    assert_eq!(steps.values().to_vec(), (1..=20).collect::<Vec<u32>>());
    let reward = floats(&metrics, "reward_mean");
    let first: f64 = reward[..5].iter().sum::<f64>() / 5.0;
    let last: f64 = reward[15..].iter().sum::<f64>() / 5.0;
    println!("mean reward: first 5 steps {first:.3}, last 5 steps {last:.3}");
    assert!(last > first + 2.0, "reward did not rise: {reward:?}");
    for column in ["lr", "step_seconds", "tokens_per_s"] {
        let values = floats(&metrics, column);
        assert!(values.iter().all(|v| v.is_finite() && *v > 0.0), "{column}");
    }
    // A step whose groups all tie (every dialogue at the most reward) has no gradient.
    let grad_norm = floats(&metrics, "grad_norm");
    assert!(grad_norm.iter().all(|v| v.is_finite() && *v >= 0.0) && grad_norm[0] > 0.0);
    assert!(
        floats(&metrics, "kl").iter().all(|v| *v == 0.0),
        "no reference without kl_beta"
    );
}

/// An unknown field, and a judge reward without a judge, are spec errors with locations.
#[test]
fn grpo_settings_are_checked() {
    let ws = Workspace::new();
    ws.write(
        "spec.yaml",
        &spec("path:tiny", "steps: 2, lerning_rate: 0.1"),
    );
    let out = ws.accord(&["validate", "spec.yaml"]);
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("spec.yaml:17:"), "{}", out.stderr);
    assert!(
        out.stderr.contains("unknown field `lerning_rate`"),
        "{}",
        out.stderr
    );

    ws.write("spec.yaml", &spec("path:tiny", "steps: 2"));
    let out = ws.accord(&["validate", "spec.yaml"]);
    assert_ne!(out.code, 0);
    assert!(
        out.stderr.contains("`stages.train.with.judge`"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("`reward: judge` needs a `judge` model"),
        "{}",
        out.stderr
    );
}

fn short_training(steps: usize) -> String {
    format!(
        "reward: {{contains: \"e\"}}, steps: {steps}, save_every: 2, batch_prompts: 1, \
         group_size: 2, max_turns: 2, max_new_tokens: 6, temperature: 1.0, agreement: marker, \
         lr: 0.01"
    )
}

fn checkpoint(ws: &Workspace) -> std::path::PathBuf {
    let out = ws.accord(&["show", "spec.yaml", "train", "--checkpoint"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    ws.path().join(out.stdout.trim())
}

/// The final checkpoint is a Hugging Face folder whose logits a plain numpy forward pass
/// (`scripts/reference_forward.py`) reproduces; a run killed with SIGKILL after a saved
/// state resumes from it and ends with the same weights, byte for byte, as a run that was
/// never interrupted.
#[test]
fn checkpoints_load_elsewhere_and_a_killed_run_resumes_to_the_same_weights() {
    let steps = 6;
    let whole = Workspace::new();
    let model = common::tiny_long_context(&whole);
    whole.write("spec.yaml", &spec(&model, &short_training(steps)));
    let out = whole.accord(&["run", "spec.yaml", "--backend", "flex"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let folder = checkpoint(&whole);
    for file in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
    ] {
        assert!(folder.join(file).is_file(), "{file} missing");
    }

    // The engine and numpy agree on the exported weights.
    let ids = [5u32, 17, 42, 99, 3, 250, 7, 12];
    let backend = accord::llm::resolve_backend(accord::spec::Backend::Flex).unwrap();
    let loaded =
        accord::llm::loaded::LoadedModel::load(&folder, &backend, accord::spec::Dtype::F32)
            .unwrap();
    let ours: Vec<f32> = loaded
        .model
        .forward(
            &[ids.to_vec()],
            &[vec![true; ids.len()]],
            &mut accord::llm::KvCache::default(),
            false,
        )
        .try_into_vec_as::<f32>()
        .unwrap();
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/reference_forward.py");
    let ids_arg = ids.map(|i| i.to_string()).join(",");
    let reference = std::process::Command::new("python3")
        .args([script.to_str().unwrap(), folder.to_str().unwrap(), &ids_arg])
        .output()
        .unwrap();
    assert!(
        reference.status.success(),
        "{}",
        String::from_utf8_lossy(&reference.stderr)
    );
    let theirs: Vec<Vec<f64>> = serde_json::from_slice(&reference.stdout).unwrap();
    let theirs: Vec<f32> = theirs.concat().into_iter().map(|v| v as f32).collect();
    let largest = ours
        .iter()
        .zip(&theirs)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    println!("checkpoint logits: largest difference from numpy {largest:e}");
    assert_eq!(ours.len(), theirs.len());
    assert!(largest < 1e-4);

    // Kill a second run once it has saved a state, then finish it.
    let killed = Workspace::new();
    common::tiny_long_context(&killed);
    killed.write("spec.yaml", &spec(&model, &short_training(steps)));
    let mut child = killed
        .command(
            &common::accord_bin(),
            &["run", "spec.yaml", "--backend", "flex"],
        )
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let saved = || {
        common::files_below(&killed.path().join(".accord/work"))
            .iter()
            .any(|p| p.ends_with("state/progress.json"))
    };
    let started = std::time::Instant::now();
    while !saved() {
        assert!(started.elapsed().as_secs() < 300, "no state was saved");
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before it could be killed"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let out = killed.accord(&["run", "spec.yaml", "--backend", "flex"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("resuming after step"), "{}", out.stderr);
    let resumed = std::fs::read(checkpoint(&killed).join("model.safetensors")).unwrap();
    let uninterrupted = std::fs::read(folder.join("model.safetensors")).unwrap();
    assert!(
        resumed == uninterrupted,
        "the resumed run ended with different weights"
    );
    let metrics = read_parquet(
        &killed.path().join(
            killed
                .accord(&["show", "spec.yaml", "train", "--path"])
                .stdout
                .trim(),
        ),
    );
    assert_eq!(
        metrics.num_rows(),
        steps,
        "one metrics row per step across the resume"
    );
}

/// `mode: single_agent` trains on one answer per sample: one turn, always "agreed".
#[test]
fn single_agent_mode_trains_on_answers_alone() {
    let ws = Workspace::new();
    let model = common::tiny_long_context(&ws);
    let train = "mode: single_agent, reward: {contains: \"e\"}, steps: 3, batch_prompts: 2, \
                 group_size: 2, max_new_tokens: 6, temperature: 1.0, lr: 0.01";
    ws.write("spec.yaml", &spec(&model, train));
    let run = ws.accord(&["run", "spec.yaml", "--backend", "flex"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let out = ws.accord(&["show", "spec.yaml", "train", "--path"]);
    let metrics = read_parquet(&ws.path().join(out.stdout.trim()));
    assert_eq!(metrics.num_rows(), 3);
    assert!(floats(&metrics, "turns").iter().all(|t| *t == 1.0));
    assert!(floats(&metrics, "agreement_rate").iter().all(|a| *a == 1.0));
}

/// A model with `source: stage:train` is the checkpoint `train` wrote: stages that use it
/// wait for `train`, run on its weights, and re-run when it retrains; a stage cannot use
/// its own checkpoint.
#[test]
fn later_stages_use_the_trained_checkpoint_as_a_model() {
    let ws = Workspace::new();
    let model = common::tiny_long_context(&ws);
    let spec = |lr: &str| {
        format!(
            "version: 1\nname: trained\nseed: 3\nmodels:\n  policy:\n    source: {model}\n  \
             trained:\n    source: stage:train\nstages:\n  \
             dilemmas:\n    kind: prompt_synthesis\n    with: {{count: 2}}\n  \
             pairs:\n    kind: persona_pairing\n    needs: [dilemmas]\n  \
             train:\n    kind: grpo\n    needs: [pairs]\n    with: {{policy: policy, {}, lr: {lr}}}\n  \
             after:\n    kind: rollout\n    needs: [pairs]\n    with: {{model: trained, group_size: 1, max_turns: 2, max_new_tokens: 4, agreement: marker}}\n",
            short_training(2).replace(", lr: 0.01", "")
        )
    };
    ws.write("spec.yaml", &spec("0.01"));
    let out = ws.accord(&["run", "spec.yaml", "--backend", "flex"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let train_done = out.stderr.find("train: ran").expect("train ran");
    let after_done = out.stderr.find("after: ran").expect("after ran");
    assert!(train_done < after_done, "{}", out.stderr);

    // Retraining changes the model, so its user is stale too.
    ws.write("spec.yaml", &spec("0.02"));
    let status = ws.accord(&["status", "spec.yaml", "--backend", "flex"]);
    let line = |name: &str| {
        status
            .stdout
            .lines()
            .find(|l| l.trim_start().starts_with(name))
            .unwrap_or_default()
            .to_string()
    };
    assert!(line("train").contains("stale"), "{}", status.stdout);
    assert!(!line("after").contains("fresh"), "{}", status.stdout);
    let out = ws.accord(&["run", "spec.yaml", "--backend", "flex"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("after: ran"), "{}", out.stderr);

    // A stage cannot train on its own checkpoint.
    let own = spec("0.01").replace("with: {policy: policy,", "with: {policy: trained,");
    ws.write("spec.yaml", &own);
    let out = ws.accord(&["validate", "spec.yaml"]);
    assert_ne!(out.code, 0);
    assert!(
        out.stderr.contains(
            "dependency cycle `train -> train` (`train` uses model `trained`, the checkpoint of `train`)"
        ),
        "{}",
        out.stderr
    );
}

/// With `lora:`, only the adapted projections change (the checkpoint has the adapters
/// merged in; every other weight equals the base model's), and a seeded run repeats
/// exactly.
#[test]
fn lora_trains_only_the_adapted_projections_and_repeats() {
    let train = format!(
        "{}, lora: {{rank: 2, alpha: 4, targets: [q_proj, v_proj]}}",
        short_training(3)
    );
    let run = || {
        let ws = Workspace::new();
        let model = common::tiny_long_context(&ws);
        ws.write("spec.yaml", &spec(&model, &train));
        let out = ws.accord(&["run", "spec.yaml", "--backend", "flex"]);
        assert_eq!(out.code, 0, "{}", out.stderr);
        let folder = checkpoint(&ws);
        (std::fs::read(folder.join("model.safetensors")).unwrap(), ws)
    };
    let (first, ws) = run();
    let (second, _) = run();
    assert!(first == second, "a seeded LoRA run repeats exactly");

    let base = std::fs::read(ws.path().join("tiny/model.safetensors")).unwrap();
    let base = safetensors::SafeTensors::deserialize(&base).unwrap();
    let trained = safetensors::SafeTensors::deserialize(&first).unwrap();
    let mut changed = Vec::new();
    for (name, view) in trained.tensors() {
        let before = base.tensor(&name).unwrap();
        assert_eq!(before.shape(), view.shape(), "{name}");
        let floats = |bytes: &[u8]| -> Vec<f32> {
            bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect()
        };
        if floats(before.data()) != floats(view.data()) {
            changed.push(name);
        }
    }
    changed.sort();
    let expected: Vec<String> = (0..2)
        .flat_map(|i| {
            ["q_proj", "v_proj"].map(|p| format!("model.layers.{i}.self_attn.{p}.weight"))
        })
        .collect();
    assert_eq!(changed, expected);
}

/// With `filter_zero_std`, groups whose rewards all tie are rolled out again on new pairs;
/// when every round ties (a reward nothing earns) the step still completes, and the
/// metrics say every group tied.
#[test]
fn tied_groups_are_resampled_and_reported() {
    let ws = Workspace::new();
    let model = common::tiny_long_context(&ws);
    let train = "reward: {contains: \"\\u0007\"}, steps: 2, batch_prompts: 2, group_size: 2, \
                 max_turns: 2, max_new_tokens: 4, agreement: marker, filter_zero_std: true, \
                 max_resamples: 2";
    ws.write("spec.yaml", &spec(&model, train));
    let run = ws.accord(&["run", "spec.yaml", "--backend", "flex"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let out = ws.accord(&["show", "spec.yaml", "train", "--path"]);
    let metrics = read_parquet(&ws.path().join(out.stdout.trim()));
    assert!(floats(&metrics, "tied_groups").iter().all(|t| *t == 1.0));
    assert!(floats(&metrics, "reward_max").iter().all(|r| *r == 0.0));
}

/// Three agents train like two: the policy and two opponents; pairs without a third
/// party are a clear error.
#[test]
fn three_party_negotiations_train() {
    let ws = Workspace::new();
    let model = common::tiny_long_context(&ws);
    let train = "reward: {contains: \"e\"}, steps: 1, batch_prompts: 1, group_size: 2, \
                 max_turns: 3, max_new_tokens: 4, agreement: marker, parties: 3";
    ws.write("spec.yaml", &spec(&model, train));
    let out = ws.accord(&["run", "spec.yaml", "--backend", "flex"]);
    assert_ne!(out.code, 0);
    assert!(
        out.stderr.contains("3 agents need 3 parties per row") && out.stderr.contains("parties: 3"),
        "{}",
        out.stderr
    );
    let three = spec(&model, train).replace(
        "    kind: persona_pairing\n    needs: [dilemmas]\n",
        "    kind: persona_pairing\n    needs: [dilemmas]\n    with: {parties: 3}\n",
    );
    ws.write("spec.yaml", &three);
    let out = ws.accord(&["run", "spec.yaml", "--backend", "flex"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
}

/// The spec of `train` (two short steps) and a rollout `after` on its checkpoint.
fn trained_then_used(model: &str, train: &str) -> String {
    format!(
        "version: 1\nname: trained\nseed: 3\nmodels:\n  policy:\n    source: {model}\n  \
         trained:\n    source: stage:train\nstages:\n  \
         dilemmas:\n    kind: prompt_synthesis\n    with: {{count: 2}}\n  \
         pairs:\n    kind: persona_pairing\n    needs: [dilemmas]\n  \
         train:\n    kind: grpo\n    needs: [pairs]\n    with: {{policy: policy, {train}}}\n  \
         after:\n    kind: rollout\n    needs: [pairs]\n    with: {{model: trained, group_size: 1, max_turns: 2, max_new_tokens: 4, agreement: marker}}\n"
    )
}

/// Flips one byte in the middle of `path`, keeping its mtime when `keep_mtime`.
fn flip_a_byte(path: &std::path::Path, keep_mtime: bool) {
    let mtime = std::fs::metadata(path).unwrap().modified().unwrap();
    let mut bytes = std::fs::read(path).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 0x40;
    std::fs::write(path, &bytes).unwrap();
    if keep_mtime {
        let file = std::fs::File::options().write(true).open(path).unwrap();
        file.set_modified(mtime).unwrap();
    }
}

/// A checkpoint is part of its stage's output: a flipped byte makes `status` call the
/// stage stale with the reason and `run` recompute it (to the same weights); flipped
/// behind an unchanged mtime, it is caught when a later stage is about to load it.
#[test]
fn a_corrupt_checkpoint_is_stale_and_never_loaded() {
    let ws = Workspace::new();
    let model = common::tiny_long_context(&ws);
    ws.write("spec.yaml", &trained_then_used(&model, &short_training(2)));
    let out = ws.accord(&["run", "spec.yaml", "--backend", "flex"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let weights = checkpoint(&ws).join("model.safetensors");
    let original = std::fs::read(&weights).unwrap();

    flip_a_byte(&weights, false);
    let status = ws.accord(&["status", "spec.yaml"]);
    println!("{}", status.stdout);
    assert!(
        status
            .stdout
            .contains("`checkpoint/model.safetensors` has digest"),
        "{}",
        status.stdout
    );
    let out = ws.accord(&["run", "spec.yaml", "--backend", "flex"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("the stored output of `train` is corrupt"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("train: ran"), "{}", out.stderr);
    assert_eq!(
        std::fs::read(checkpoint(&ws).join("model.safetensors")).unwrap(),
        original
    );

    // Behind an unchanged mtime the no-op path trusts the stamp, but loading re-hashes.
    flip_a_byte(&weights, true);
    let out = ws.accord(&[
        "run",
        "spec.yaml",
        "--backend",
        "flex",
        "--set",
        "stages.after.with.max_new_tokens=5",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("the stored checkpoint of `train` cannot be used"),
        "{}",
        out.stderr
    );
    assert_eq!(
        std::fs::read(checkpoint(&ws).join("model.safetensors")).unwrap(),
        original
    );
    assert_eq!(ws.accord(&["verify"]).code, 0);
}

/// With a learning rate far too high the loss turns NaN: the stage fails naming the step
/// and the quantity, stores nothing, and keeps the state it saved before diverging.
#[test]
fn divergence_fails_the_stage_with_the_step_and_quantity() {
    let ws = Workspace::new();
    let model = common::tiny_long_context(&ws);
    let train = short_training(4).replace("lr: 0.01", "lr: 1e10");
    ws.write("spec.yaml", &spec(&model, &train));
    let out = ws.accord(&["run", "spec.yaml", "--backend", "flex"]);
    println!("{}", out.stderr);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("stage `train` failed: training diverged at step "),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("hint: lower `lr`"), "{}", out.stderr);
    let status = ws.accord(&["status", "spec.yaml"]);
    assert!(!status.stdout.contains("train  fresh"), "{}", status.stdout);
    assert_eq!(
        ws.accord(&["show", "spec.yaml", "train", "--path"]).code,
        1,
        "nothing was stored"
    );
}
