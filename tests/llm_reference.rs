//! The model engine against `transformers`: logits, greedy continuations and teacher-forced
//! log-probs of the fixtures `scripts/make_fixtures.py` made, on flex and on wgpu, from
//! safetensors and from GGUF; and the GGUF dequantisers against the `gguf` package.

use std::path::{Path, PathBuf};

use accord::llm::weights::WeightSource;
use accord::llm::weights::dequantise::dequantise;
use accord::llm::weights::gguf::GgufWeights;
use accord::llm::weights::safetensors::SafetensorsWeights;
use accord::llm::{KvCache, LlamaModel, ModelConfig};
use accord::spec::Dtype;
use burn::tensor::Device;
use safetensors::SafeTensors;

/// Every model fixture: Llama (GQA, Llama-3 RoPE scaling), Qwen2 (QKV bias, tied), Qwen3
/// (query/key norms, `head_dim` ≠ hidden/heads, untied), and Llama with `llama3` and
/// `linear` scaling over a prompt of a few hundred positions.
const MODELS: [&str; 5] = [
    "llama-gqa",
    "qwen2-tied",
    "qwen3-untied",
    "llama3-long",
    "llama-linear",
];

/// The fixtures with a Q8_0 GGUF file too.
const QUANTISED: [&str; 2] = ["llama-gqa", "qwen2-tied"];

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/llm")
}

struct Reference {
    prompts: Vec<(Vec<u32>, Vec<u32>)>,
    logits: Vec<Vec<f32>>,
    scored: Vec<f32>,
}

fn reference(model: &str) -> Reference {
    let dir = fixtures().join(model);
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json")).unwrap())
            .unwrap();
    let ids = |v: &serde_json::Value| -> Vec<u32> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as u32)
            .collect()
    };
    let prompts: Vec<(Vec<u32>, Vec<u32>)> = json["prompts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (ids(&p["ids"]), ids(&p["greedy"])))
        .collect();
    let bytes = std::fs::read(dir.join("reference.safetensors")).unwrap();
    let tensors = SafeTensors::deserialize(&bytes).unwrap();
    let logits = (0..prompts.len())
        .map(|i| {
            let view = tensors.tensor(&format!("logits_{i}")).unwrap();
            view.data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect()
        })
        .collect();
    let scored = json["scored"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect();
    Reference {
        prompts,
        logits,
        scored,
    }
}

fn load_hf(model: &str, device: &Device) -> LlamaModel {
    let dir = fixtures().join(model);
    let config = ModelConfig::from_hf_json(&dir.join("config.json")).unwrap();
    let mut weights = SafetensorsWeights::open(&dir).unwrap();
    LlamaModel::load(config, &mut weights, device, Dtype::F32).unwrap()
}

fn load_gguf(file: &str, device: &Device) -> LlamaModel {
    let (mut weights, config, _) = GgufWeights::open(&fixtures().join(file)).unwrap();
    LlamaModel::load(
        config,
        &mut weights as &mut dyn WeightSource,
        device,
        Dtype::F32,
    )
    .unwrap()
}

fn logits(model: &LlamaModel, ids: &[u32]) -> Vec<f32> {
    let mut cache = KvCache::default();
    let out = model.forward(&[ids.to_vec()], &[vec![true; ids.len()]], &mut cache, false);
    out.try_into_vec_as::<f32>().unwrap()
}

fn greedy(model: &LlamaModel, ids: &[u32], n: usize) -> Vec<u32> {
    let mut cache = KvCache::default();
    let mut step = ids.to_vec();
    let mut out = Vec::new();
    for _ in 0..n {
        let logits = model.forward(&[step.clone()], &[vec![true; step.len()]], &mut cache, true);
        let values = logits.try_into_vec_as::<f32>().unwrap();
        let best = values
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .unwrap()
            .0 as u32;
        out.push(best);
        step = vec![best];
    }
    out
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Checks `model` against the reference; returns the largest logit difference.
fn check(name: &str, label: &str, model: &LlamaModel, tolerance: f32) -> f32 {
    let reference = reference(name);
    let mut largest: f32 = 0.0;
    for (i, (ids, expected_greedy)) in reference.prompts.iter().enumerate() {
        let diff = max_diff(&logits(model, ids), &reference.logits[i]);
        largest = largest.max(diff);
        assert_eq!(
            &greedy(model, ids, expected_greedy.len()),
            expected_greedy,
            "{name} {label}: greedy continuation of prompt {i}"
        );
    }
    println!("{name} ({label}): largest logit difference from transformers {largest:.3e}");
    assert!(
        largest <= tolerance,
        "{name} {label}: logits differ by {largest}"
    );
    largest
}

#[test]
fn safetensors_models_match_transformers_on_flex() {
    let device = Device::flex();
    for name in MODELS {
        check(name, "safetensors, flex", &load_hf(name, &device), 1e-4);
    }
}

#[test]
fn gguf_models_match_transformers_on_flex() {
    let device = Device::flex();
    for name in MODELS {
        check(
            name,
            "GGUF f32, flex",
            &load_gguf(&format!("{name}.f32.gguf"), &device),
            1e-4,
        );
    }
}

/// Loads each fixture in f16 and bf16 on `device` and compares logits with the f32
/// reference, relative to the largest logit (f16 keeps 11 significant bits, bf16 8).
fn check_half_precision(device: &Device, label: &str) {
    for name in ["llama-gqa", "qwen2-tied", "qwen3-untied"] {
        let dir = fixtures().join(name);
        let reference = reference(name);
        let scale = reference
            .logits
            .iter()
            .flatten()
            .fold(0f32, |m, x| m.max(x.abs()));
        for (dtype, relative) in [(Dtype::F16, 5e-3), (Dtype::Bf16, 5e-2)] {
            let config = ModelConfig::from_hf_json(&dir.join("config.json")).unwrap();
            let mut weights = SafetensorsWeights::open(&dir).unwrap();
            let model = match LlamaModel::load(config, &mut weights, device, dtype) {
                Ok(model) => model,
                Err(e) => {
                    println!(
                        "{name} ({}, {label}): not supported here: {e}",
                        dtype.name()
                    );
                    continue;
                }
            };
            assert_eq!(
                model.norm.gamma.val().dtype(),
                accord::llm::model::burn_dtype(dtype),
                "weights are stored in the asked precision"
            );
            let mut largest: f32 = 0.0;
            for (i, (ids, _)) in reference.prompts.iter().enumerate() {
                largest = largest.max(max_diff(&logits(&model, ids), &reference.logits[i]));
            }
            println!(
                "{name} ({}, {label}): largest logit difference from transformers f32 \
                 {largest:.3e} (largest logit {scale:.2})",
                dtype.name()
            );
            assert!(largest <= relative * scale, "{name} {dtype:?}: {largest}");
        }
    }
}

#[test]
fn half_precision_stays_close_to_the_f32_reference() {
    check_half_precision(&Device::flex(), "flex");
}

/// On a GPU (lavapipe would compile a second set of shaders for little news):
/// `cargo test --test llm_reference -- --ignored`.
#[test]
#[ignore = "needs a hardware GPU"]
fn half_precision_on_a_gpu() {
    let backend = accord::llm::resolve_backend(accord::spec::Backend::Auto).unwrap();
    assert_eq!(backend.name, "wgpu", "auto picks wgpu on a GPU: {backend}");
    println!("{backend}");
    check_half_precision(&backend.device, "wgpu");
}

#[test]
fn gguf_and_safetensors_loads_agree() {
    let device = Device::flex();
    for name in MODELS {
        let ids = &reference(name).prompts[0].0;
        let a = logits(&load_hf(name, &device), ids);
        let b = logits(&load_gguf(&format!("{name}.f32.gguf"), &device), ids);
        println!("{name}: GGUF f32 vs safetensors {:.3e}", max_diff(&a, &b));
        assert!(max_diff(&a, &b) <= 1e-5);
        if QUANTISED.contains(&name) {
            let q = logits(&load_gguf(&format!("{name}.q8_0.gguf"), &device), ids);
            println!("{name}: GGUF Q8_0 vs safetensors {:.3e}", max_diff(&a, &q));
            assert!(max_diff(&a, &q) <= 0.15, "Q8_0 should stay close to f32");
        }
    }
}

#[test]
fn batched_rows_of_different_lengths_match_single_rows() {
    let device = Device::flex();
    let model = load_hf("llama-gqa", &device);
    let reference = reference("llama-gqa");
    let rows: Vec<Vec<u32>> = reference.prompts.iter().map(|p| p.0.clone()).collect();
    let longest = rows.iter().map(Vec::len).max().unwrap();
    let pad = 0u32;
    let padded: Vec<Vec<u32>> = rows
        .iter()
        .map(|r| [vec![pad; longest - r.len()], r.clone()].concat())
        .collect();
    let valid: Vec<Vec<bool>> = rows
        .iter()
        .map(|r| [vec![false; longest - r.len()], vec![true; r.len()]].concat())
        .collect();
    let mut cache = KvCache::default();
    let batch = model
        .forward(&padded, &valid, &mut cache, false)
        .try_into_vec_as::<f32>()
        .unwrap();
    let v = model.config.vocab_size;
    let mut largest: f32 = 0.0;
    for (b, row) in rows.iter().enumerate() {
        let start = (b * longest + longest - row.len()) * v;
        largest = largest.max(max_diff(
            &batch[start..start + row.len() * v],
            &reference.logits[b],
        ));
    }
    println!("left-padded batch vs transformers: largest difference {largest:.3e}");
    assert!(largest <= 1e-4);
}

#[test]
fn teacher_forced_log_probs_match_transformers() {
    let device = Device::flex();
    for name in MODELS {
        let model = load_hf(name, &device);
        let reference = reference(name);
        let ids = &reference.prompts[0].0;
        let scored = model.score(std::slice::from_ref(ids), &[1]);
        let diff = max_diff(&scored[0], &reference.scored);
        println!("{name}: largest log-prob difference {diff:.3e}");
        assert!(diff <= 1e-4);
    }
}

#[test]
fn models_match_transformers_on_wgpu() {
    let backend = match accord::llm::resolve_backend(accord::spec::Backend::Wgpu) {
        Ok(backend) => backend,
        Err(e) => panic!("wgpu must be available (Mesa's lavapipe in CI): {e}"),
    };
    println!(
        "wgpu adapter: {}",
        backend.adapter.as_deref().unwrap_or("?")
    );
    // wgpu opens a device once per process; asking again hands out the same one.
    let again = accord::llm::resolve_backend(accord::spec::Backend::Wgpu).unwrap();
    assert_eq!(again.adapter, backend.adapter);
    for name in MODELS {
        check(
            name,
            "safetensors, wgpu",
            &load_hf(name, &backend.device),
            1e-4,
        );
    }
}

/// The scaled fixtures' last prompt runs past `original_max_position_embeddings`: without
/// the scaling, their logits would be far from `transformers'`, so the match above tests
/// the scaling and not only the unscaled frequencies.
#[test]
fn rope_scaling_changes_the_logits_of_long_prompts() {
    let device = Device::flex();
    for name in ["llama3-long", "llama-linear"] {
        let dir = fixtures().join(name);
        let mut config = ModelConfig::from_hf_json(&dir.join("config.json")).unwrap();
        assert!(config.rope_scaling.is_some(), "{name} has RoPE scaling");
        config.rope_scaling = None;
        let mut weights = SafetensorsWeights::open(&dir).unwrap();
        let unscaled = LlamaModel::load(config, &mut weights, &device, Dtype::F32).unwrap();
        let reference = reference(name);
        let (ids, _) = reference.prompts.last().unwrap();
        assert!(
            ids.len() > 200,
            "{name}: the long prompt has {} tokens",
            ids.len()
        );
        let diff = max_diff(&logits(&unscaled, ids), reference.logits.last().unwrap());
        println!(
            "{name}: {} tokens; logits without the scaling differ from transformers' by {diff:.3e}",
            ids.len()
        );
        assert!(
            diff > 1e-2,
            "{name}: the scaling should matter at these positions"
        );
    }
}

/// Options the engine lacks are refused when the model loads, naming the field.
#[test]
fn unsupported_configurations_name_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let base: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("qwen3-untied/config.json")).unwrap(),
    )
    .unwrap();
    let cases = [
        (
            serde_json::json!({"model_type": "gemma3"}),
            "model_type",
            "is `gemma3`; supported: `llama`, `mistral`, `qwen2`, `qwen3`",
        ),
        (
            serde_json::json!({"model_type": "qwen3_moe", "num_experts": 128}),
            "model_type",
            "is `qwen3_moe`",
        ),
        (
            serde_json::json!({"num_experts": 8}),
            "num_experts",
            "is 8: mixture-of-experts models are not supported",
        ),
        (
            serde_json::json!({"num_local_experts": 8}),
            "num_local_experts",
            "mixture-of-experts",
        ),
        (
            serde_json::json!({"rope_parameters": {"rope_type": "yarn", "factor": 4.0, "rope_theta": 1e6}}),
            "rope_parameters.rope_type",
            "is `yarn`; supported: `default`, `linear`, `llama3`",
        ),
        (
            serde_json::json!({"rope_scaling": {"type": "dynamic", "factor": 2.0}, "rope_parameters": null}),
            "rope_scaling.rope_type",
            "is `dynamic`",
        ),
        (
            serde_json::json!({"rope_parameters": {"rope_type": "linear", "rope_theta": 1e6}}),
            "rope_parameters.factor",
            "is missing",
        ),
        (
            serde_json::json!({"use_sliding_window": true}),
            "use_sliding_window",
            "is true; supported: false",
        ),
    ];
    for (change, field, problem) in cases {
        let mut config = base.clone();
        for (key, value) in change.as_object().unwrap() {
            config[key] = value.clone();
        }
        let path = dir.path().join("config.json");
        std::fs::write(&path, config.to_string()).unwrap();
        let message = ModelConfig::from_hf_json(&path).unwrap_err().to_string();
        println!("{message}");
        assert!(
            message.contains(&format!("`{field}`")) && message.contains(problem),
            "{change}: {message}"
        );
    }
}

#[test]
fn dequantisers_match_the_gguf_package() {
    use ggus::GGmlType;
    let bytes = std::fs::read(fixtures().join("quants.safetensors")).unwrap();
    let tensors = SafeTensors::deserialize(&bytes).unwrap();
    for (name, ty) in [
        ("Q4_0", GGmlType::Q4_0),
        ("Q4_1", GGmlType::Q4_1),
        ("Q5_0", GGmlType::Q5_0),
        ("Q8_0", GGmlType::Q8_0),
        ("Q4_K", GGmlType::Q4K),
        ("Q6_K", GGmlType::Q6K),
        ("F16", GGmlType::F16),
        ("BF16", GGmlType::BF16),
    ] {
        let data = tensors.tensor(&format!("{name}.data")).unwrap();
        let expected: Vec<f32> = tensors
            .tensor(&format!("{name}.dequantized"))
            .unwrap()
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let got = dequantise(ty, data.data(), expected.len()).unwrap();
        let diff = max_diff(&got, &expected);
        println!("{name}: largest difference from gguf {diff:.3e}");
        assert!(diff <= 1e-6, "{name} dequantises differently");
    }
}

fn requests(
    prompts: &[Vec<u32>],
    sampling: accord::llm::sampling::Sampling,
    seed: u64,
) -> Vec<accord::llm::generate::Request> {
    prompts
        .iter()
        .map(|p| accord::llm::generate::Request {
            prompt: p.clone(),
            sampling,
            max_new_tokens: 10,
            seed,
            stop_strings: Vec::new(),
            top_logprobs: 0,
        })
        .collect()
}

/// The tied Qwen2 fixture through the loader `accord generate` uses: model and tokenizer.
fn loaded_qwen2() -> (LlamaModel, accord::llm::tokenizer::Tokenizer) {
    let backend = accord::llm::resolve_backend(accord::spec::Backend::Flex).unwrap();
    let loaded = accord::llm::loaded::LoadedModel::load(
        &fixtures().join("qwen2-tied"),
        &backend,
        Dtype::F32,
    )
    .unwrap();
    (loaded.model, loaded.tokenizer)
}

#[test]
fn batched_generation_matches_greedy_references_and_is_batch_independent() {
    use accord::llm::generate::generate;
    use accord::llm::sampling::Sampling;
    let (model, tokenizer) = loaded_qwen2();
    let reference = reference("qwen2-tied");
    let prompts: Vec<Vec<u32>> = reference.prompts.iter().map(|p| p.0.clone()).collect();
    let batch = generate(
        &model,
        &tokenizer,
        &requests(&prompts, Sampling::greedy(), 0),
        &[],
        |_, _| true,
    )
    .unwrap();
    for (completion, (_, greedy)) in batch.iter().zip(&reference.prompts) {
        assert_eq!(
            &completion.tokens, greedy,
            "batched greedy decoding equals transformers'"
        );
        assert!(completion.logprobs.iter().all(|lp| *lp <= 0.0));
    }
    // Sampling: a seed reproduces a row, whatever else is in the batch.
    let hot = Sampling {
        temperature: 1.0,
        top_k: 0,
        top_p: 0.95,
    };
    let run = |prompts: &[Vec<u32>], seed| {
        generate(
            &model,
            &tokenizer,
            &requests(prompts, hot, seed),
            &[],
            |_, _| true,
        )
        .unwrap()
    };
    let together = run(&prompts, 42);
    let alone = run(&prompts[1..2], 42);
    assert_eq!(together[1].tokens, alone[0].tokens);
    assert_eq!(together, run(&prompts, 42));
    let other = run(&prompts, 43);
    assert_ne!(together, other);
}

#[test]
fn generation_stops_at_stop_tokens_and_strings() {
    use accord::llm::generate::{Finish, generate};
    use accord::llm::sampling::Sampling;
    let (model, tokenizer) = loaded_qwen2();
    let reference = reference("qwen2-tied");
    let (prompt, greedy) = &reference.prompts[0];
    let stop = greedy[3];
    let out = generate(
        &model,
        &tokenizer,
        &requests(std::slice::from_ref(prompt), Sampling::greedy(), 0),
        &[stop],
        |_, _| true,
    )
    .unwrap();
    assert_eq!(out[0].finish, Finish::StopToken);
    assert_eq!(out[0].tokens, greedy[..4]);
    let full = tokenizer.decode(greedy).unwrap();
    let cut = tokenizer.decode(&greedy[..5]).unwrap();
    let needle: String = cut
        .chars()
        .rev()
        .take(2)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    let mut request = requests(std::slice::from_ref(prompt), Sampling::greedy(), 0);
    request[0].stop_strings = vec![needle.clone()];
    let out = generate(&model, &tokenizer, &request, &[], |_, _| true).unwrap();
    assert_eq!(out[0].finish, Finish::StopString);
    assert!(
        !out[0].text.contains(&needle) && full.starts_with(&out[0].text),
        "{:?} / {:?}",
        out[0].text,
        needle
    );
    // The token that completed the stop string is dropped, with its log-prob.
    assert!(!tokenizer.decode(&out[0].tokens).unwrap().contains(&needle));
    assert_eq!(out[0].logprobs.len(), out[0].tokens.len());
}

#[test]
fn a_row_its_caller_drops_leaves_the_batch_and_the_others_decode_as_before() {
    use accord::llm::generate::{Finish, generate};
    use accord::llm::sampling::Sampling;
    let (model, tokenizer) = loaded_qwen2();
    let reference = reference("qwen2-tied");
    let prompts: Vec<Vec<u32>> = reference.prompts.iter().map(|p| p.0.clone()).collect();
    // The middle row is dropped after its second token: its cache rows leave the batch.
    let mut seen = 0;
    let out = generate(
        &model,
        &tokenizer,
        &requests(&prompts, Sampling::greedy(), 0),
        &[],
        |row, _| {
            seen += usize::from(row == 1);
            row != 1 || seen < 2
        },
    )
    .unwrap();
    assert_eq!(out[1].finish, Finish::Dropped);
    assert_eq!(out[1].tokens, reference.prompts[1].1[..2]);
    for row in [0, 2] {
        assert_eq!(
            out[row].tokens, reference.prompts[row].1,
            "row {row} decodes as transformers' greedy reference"
        );
    }
}
