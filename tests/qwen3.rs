//! Qwen3 along every path a user takes it: `generate` from a Hugging Face folder and from
//! GGUF, `serve`, LoRA training in a pipeline, and `models export` to a folder whose
//! logits a plain numpy forward pass (`scripts/reference_forward.py`) reproduces. The
//! logits themselves are checked against `transformers` in `tests/llm_reference.rs`.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use common::Workspace;

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/llm/qwen3-untied"
);

/// The tiny Qwen3 fixture copied into `ws/qwen3` with room for negotiation prompts (its
/// 512 positions are too few); returns its source, `path:qwen3`.
fn qwen3(ws: &Workspace) -> String {
    let to = ws.path().join("qwen3");
    std::fs::create_dir_all(&to).unwrap();
    for entry in std::fs::read_dir(FIXTURE).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
    let config = std::fs::read_to_string(to.join("config.json")).unwrap();
    let config = config.replace(
        "\"max_position_embeddings\": 512",
        "\"max_position_embeddings\": 4096",
    );
    std::fs::write(to.join("config.json"), config).unwrap();
    "path:qwen3".into()
}

/// The reference's prompts: `(text, greedy continuation ids)`.
fn reference_prompts() -> Vec<(String, Vec<u32>)> {
    let text = std::fs::read_to_string(Path::new(FIXTURE).join("reference.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    json["prompts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let ids = p["greedy"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as u32)
                .collect();
            (p["text"].as_str().unwrap().to_string(), ids)
        })
        .collect()
}

/// `accord generate` answers greedily with `transformers`' continuation, from the folder
/// and from the GGUF file alike.
#[test]
fn generate_continues_like_transformers_from_a_folder_and_from_gguf() {
    let ws = Workspace::new();
    let tokenizer = accord::llm::tokenizer::Tokenizer::from_hf_folder(Path::new(FIXTURE)).unwrap();
    let (prompt, greedy) = &reference_prompts()[0];
    // Generation stops at the end-of-turn token; the reference ran past it.
    let config: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(FIXTURE).join("config.json")).unwrap(),
    )
    .unwrap();
    let eos = config["eos_token_id"].as_u64().unwrap() as u32;
    let until_eos: Vec<u32> = greedy.iter().copied().take_while(|&t| t != eos).collect();
    let expected = tokenizer.decode(&until_eos).unwrap();
    let gguf = format!("path:{}.f32.gguf", FIXTURE);
    for model in [format!("path:{FIXTURE}"), gguf] {
        let out = ws.accord(&[
            "generate",
            "--model",
            &model,
            "--prompt",
            prompt,
            "--temperature",
            "0",
            "--max-new-tokens",
            &greedy.len().to_string(),
            "--backend",
            "flex",
        ]);
        assert_eq!(out.code, 0, "{model}: {}", out.stderr);
        assert_eq!(out.stdout.trim_end_matches('\n'), expected, "{model}");
    }
}

/// `accord serve` answers a chat completion with a Qwen3 model.
#[test]
fn serve_answers_chat_completions() {
    let ws = Workspace::new();
    let model = qwen3(&ws);
    let mut child = ws
        .command(
            &common::accord_bin(),
            &[
                "serve",
                "--model",
                &model,
                "--name",
                "qwen3",
                "--port",
                "0",
                "--backend",
                "flex",
            ],
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut url = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut url)
        .unwrap();
    let body = serde_json::json!({
        "model": "qwen3",
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello"}],
        "max_tokens": 5,
        "temperature": 0,
    });
    let reply: serde_json::Value = ureq::post(&format!("{}/chat/completions", url.trim()))
        .send_json(&body)
        .unwrap()
        .body_mut()
        .read_json()
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(reply["model"], "qwen3", "{reply}");
    assert_eq!(reply["usage"]["completion_tokens"], 5, "{reply}");
    assert!(
        reply["choices"][0]["message"]["content"].is_string(),
        "{reply}"
    );
}

/// Logits of `ids` from the numpy forward pass over the Hugging Face folder `folder`.
fn numpy_logits(folder: &Path, ids: &[u32]) -> Vec<f32> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/reference_forward.py");
    let ids: Vec<String> = ids.iter().map(u32::to_string).collect();
    let out = std::process::Command::new("python3")
        .arg(script)
        .arg(folder)
        .arg(ids.join(","))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<Vec<f64>> = serde_json::from_slice(&out.stdout).unwrap();
    rows.concat().into_iter().map(|v| v as f32).collect()
}

/// Logits of `ids` from the engine with the model of `folder`.
fn engine_logits(folder: &Path, ids: &[u32]) -> Vec<f32> {
    let backend = accord::llm::resolve_backend(accord::spec::Backend::Flex).unwrap();
    let loaded =
        accord::llm::loaded::LoadedModel::load(folder, &backend, accord::spec::Dtype::F32).unwrap();
    let mut cache = accord::llm::KvCache::default();
    loaded
        .model
        .forward(&[ids.to_vec()], &[vec![true; ids.len()]], &mut cache, false)
        .try_into_vec_as::<f32>()
        .unwrap()
}

fn largest_difference(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// The Qwen3 parts of a checkpoint folder: its config names the architecture, and the
/// weights hold every query/key norm.
fn assert_is_qwen3(folder: &Path) {
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(folder.join("config.json")).unwrap())
            .unwrap();
    assert_eq!(config["model_type"], "qwen3", "{config}");
    assert_eq!(config["architectures"][0], "Qwen3ForCausalLM", "{config}");
    assert_eq!(config["head_dim"], 16, "{config}");
    assert_eq!(config["tie_word_embeddings"], false, "{config}");
    let bytes = std::fs::read(folder.join("model.safetensors")).unwrap();
    let tensors = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    for layer in 0..2 {
        for norm in ["q_norm", "k_norm"] {
            let name = format!("model.layers.{layer}.self_attn.{norm}.weight");
            assert_eq!(tensors.tensor(&name).unwrap().shape(), [16], "{name}");
        }
    }
    assert!(tensors.tensor("lm_head.weight").is_ok());
}

/// `accord models export` turns the GGUF file into a Hugging Face Qwen3 folder; numpy's
/// forward pass over that folder gives `transformers`' logits.
#[test]
fn a_gguf_model_exports_to_a_qwen3_folder() {
    let ws = Workspace::new();
    let out = ws.accord(&[
        "models",
        "export",
        &format!("path:{FIXTURE}.f32.gguf"),
        "exported",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let folder = ws.path().join("exported");
    assert_is_qwen3(&folder);
    let tokenizer = accord::llm::tokenizer::Tokenizer::from_hf_folder(&folder).unwrap();
    let ids = tokenizer.encode(&reference_prompts()[0].0).unwrap();
    let diff = largest_difference(&numpy_logits(&folder, &ids), &engine_logits(&folder, &ids));
    println!("exported Qwen3: numpy vs engine, largest logit difference {diff:.3e}");
    assert!(diff < 1e-4);
}

fn checkpoint(ws: &Workspace) -> PathBuf {
    let out = ws.accord(&["show", "spec.yaml", "train", "--checkpoint"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    ws.path().join(out.stdout.trim())
}

/// GRPO with LoRA adapters on Qwen3's projections: the checkpoint is a Qwen3 folder in
/// which only the adapted projections changed (the query/key norms are frozen), and its
/// logits are reproduced by numpy.
#[test]
fn lora_training_on_qwen3_changes_only_the_adapted_projections() {
    let ws = Workspace::new();
    let model = qwen3(&ws);
    ws.write(
        "spec.yaml",
        &format!(
            "version: 1\nname: qwen3\nseed: 3\nmodels:\n  policy:\n    source: {model}\nstages:\n  \
             dilemmas:\n    kind: prompt_synthesis\n    with: {{count: 2}}\n  \
             pairs:\n    kind: persona_pairing\n    needs: [dilemmas]\n  \
             train:\n    kind: grpo\n    needs: [pairs]\n    with: {{policy: policy, \
             reward: {{contains: \"e\"}}, steps: 2, batch_prompts: 1, group_size: 2, \
             max_turns: 2, max_new_tokens: 6, temperature: 1.0, agreement: marker, lr: 0.01, \
             lora: {{rank: 2, alpha: 4, targets: [q_proj, k_proj]}}}}\n"
        ),
    );
    let out = ws.accord(&["run", "spec.yaml", "--backend", "flex"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let folder = checkpoint(&ws);
    assert_is_qwen3(&folder);

    let base = std::fs::read(ws.path().join("qwen3/model.safetensors")).unwrap();
    let base = safetensors::SafeTensors::deserialize(&base).unwrap();
    let trained = std::fs::read(folder.join("model.safetensors")).unwrap();
    let trained = safetensors::SafeTensors::deserialize(&trained).unwrap();
    let floats = |bytes: &[u8]| -> Vec<f32> {
        bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()
    };
    let mut changed: Vec<String> = trained
        .tensors()
        .into_iter()
        .filter(|(name, view)| floats(base.tensor(name).unwrap().data()) != floats(view.data()))
        .map(|(name, _)| name)
        .collect();
    changed.sort();
    let mut expected: Vec<String> = (0..2)
        .flat_map(|i| {
            ["q_proj", "k_proj"].map(|p| format!("model.layers.{i}.self_attn.{p}.weight"))
        })
        .collect();
    expected.sort();
    assert_eq!(changed, expected);

    let ids = [5u32, 17, 42, 99, 3, 250, 7, 12];
    let diff = largest_difference(&numpy_logits(&folder, &ids), &engine_logits(&folder, &ids));
    println!("trained Qwen3 checkpoint: numpy vs engine, largest logit difference {diff:.3e}");
    assert!(diff < 1e-4);
}
