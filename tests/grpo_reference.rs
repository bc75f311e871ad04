//! The GRPO objective against PyTorch: per-token log-probs, the loss under each
//! aggregation and the gradients of a few parameters, from the fixtures
//! `scripts/make_grpo_reference.py` made with the tiny Llama of `tests/fixtures/llm`.

use std::path::{Path, PathBuf};

use accord::llm::weights::safetensors::SafetensorsWeights;
use accord::llm::{LlamaModel, ModelConfig};
use accord::spec::Dtype;
use accord::train::logprobs::{Scored, completion_logprobs};
use accord::train::objective::{Aggregation, BatchTotals, Objective, RowShape};
use burn::module::{Module, Param};
use burn::tensor::{Device, Tensor, TensorData};
use safetensors::SafeTensors;
use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

/// Right-aligns each row's values in `[R, C]`, zeros before them.
fn right_aligned(rows: &[Vec<f32>], c: usize, device: &Device) -> Tensor<2> {
    let mut data = vec![0f32; rows.len() * c];
    for (r, row) in rows.iter().enumerate() {
        data[r * c + c - row.len()..(r + 1) * c].copy_from_slice(row);
    }
    Tensor::from_data(TensorData::new(data, [rows.len(), c]), device)
}

fn largest_difference(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// The parameter the Hugging Face name refers to.
fn param<'m>(model: &'m LlamaModel, name: &str) -> &'m Param<Tensor<2>> {
    match name {
        "model.layers.0.self_attn.q_proj.weight" => &model.layers[0].self_attn.q_proj.weight,
        "model.layers.1.mlp.down_proj.weight" => &model.layers[1].mlp.down_proj.weight,
        "lm_head.weight" => &model.lm_head.as_ref().unwrap().weight,
        "model.embed_tokens.weight" => &model.embed_tokens.weight,
        other => panic!("no mapping for {other}"),
    }
}

/// The tiny Llama fixture, with gradients.
fn fixture_model(device: &Device) -> LlamaModel {
    let dir = root().join("llm/llama-gqa");
    let config = ModelConfig::from_hf_json(&dir.join("config.json")).unwrap();
    let mut weights = SafetensorsWeights::open(&dir).unwrap();
    LlamaModel::load(config, &mut weights, device, Dtype::F32)
        .unwrap()
        .train()
}

#[test]
fn objective_matches_pytorch() {
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(root().join("grpo/reference.json")).unwrap())
            .unwrap();
    let bytes = std::fs::read(root().join("grpo/reference.safetensors")).unwrap();
    let grads_ref = SafeTensors::deserialize(&bytes).unwrap();
    let settings = &json["settings"];
    let rows = json["rows"].as_array().unwrap();
    let scored: Vec<Scored> = rows
        .iter()
        .map(|r| Scored {
            prompt: ids(&r["prompt"]),
            completion: ids(&r["completion"]),
        })
        .collect();
    let shapes: Vec<RowShape> = rows
        .iter()
        .map(|r| RowShape {
            sample: r["sample"].as_u64().unwrap() as usize,
            tokens: r["completion"].as_array().unwrap().len(),
        })
        .collect();
    let advantages: Vec<f32> = rows
        .iter()
        .map(|r| r["advantage"].as_f64().unwrap() as f32)
        .collect();
    let c = shapes.iter().map(|s| s.tokens).max().unwrap();
    let totals = BatchTotals::new(&shapes);

    let device = Device::flex();
    let model = fixture_model(&device);

    let old = right_aligned(
        &rows.iter().map(|r| floats(&r["old"])).collect::<Vec<_>>(),
        c,
        &device,
    );
    let reference = right_aligned(
        &rows.iter().map(|r| floats(&r["ref"])).collect::<Vec<_>>(),
        c,
        &device,
    );
    let expected_logp: Vec<Vec<f32>> = rows.iter().map(|r| floats(&r["logp"])).collect();

    let mut worst_grad = 0f32;
    for (name, aggregation) in [
        ("grpo", Aggregation::Grpo),
        ("dapo", Aggregation::Dapo),
        ("dr_grpo", Aggregation::DrGrpo),
    ] {
        let objective = Objective {
            epsilon_low: settings["epsilon_low"].as_f64().unwrap(),
            epsilon_high: settings["epsilon_high"].as_f64().unwrap(),
            kl_beta: settings["kl_beta"].as_f64().unwrap(),
            aggregation,
            max_sample_tokens: settings["max_sample_tokens"].as_u64().unwrap() as usize,
        };
        let logp = completion_logprobs(&model, &scored); // [R, C]
        let values: Vec<f32> = logp.clone().try_into_vec_as::<f32>().unwrap();
        let ours: Vec<f32> = shapes
            .iter()
            .enumerate()
            .flat_map(|(r, s)| values[r * c + c - s.tokens..(r + 1) * c].to_vec())
            .collect();
        let theirs: Vec<f32> = expected_logp.concat();
        let logp_difference = largest_difference(&ours, &theirs);
        println!("{name}: log-probs largest difference {logp_difference:e}");
        assert!(logp_difference < 1e-4);

        let parts = objective.loss(
            logp,
            Some(old.clone()),
            Some(reference.clone()),
            &advantages,
            &shapes,
            &totals,
        );
        assert!(parts.clipped_tokens > 0.0, "the fixture clips some tokens");
        let loss = parts.loss.clone().into_scalar::<f32>();
        let expected = json["losses"][name].as_f64().unwrap() as f32;
        println!(
            "{name}: loss {loss} vs PyTorch {expected} (difference {:e})",
            (loss - expected).abs()
        );
        assert!((loss - expected).abs() < 1e-5);

        let grads = parts.loss.backward();
        for grad_name in [
            "model.layers.0.self_attn.q_proj.weight",
            "model.layers.1.mlp.down_proj.weight",
            "lm_head.weight",
            "model.embed_tokens.weight",
        ] {
            let grad = param(&model, grad_name)
                .grad(&grads)
                .expect("the parameter has a gradient");
            let ours: Vec<f32> = grad.try_into_vec_as::<f32>().unwrap();
            let view = grads_ref.tensor(&format!("{name}/{grad_name}")).unwrap();
            let theirs: Vec<f32> = view
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            let scale = theirs.iter().fold(0f32, |m, x| m.max(x.abs()));
            let difference = largest_difference(&ours, &theirs);
            println!(
                "{name}: {grad_name} gradient largest difference {difference:e} (largest entry {scale:e})"
            );
            assert!(difference <= 1e-4 * scale.max(1e-3), "{grad_name}");
            worst_grad = worst_grad.max(difference / scale.max(1e-3));
        }
    }
    println!("largest relative gradient difference: {worst_grad:e}");
}

/// Rows that share their prompt run it once (the group case); their log-probs and
/// gradients equal those of a batch with nothing shared, which the test above checks
/// against PyTorch.
#[test]
fn a_shared_prompt_scores_as_if_each_row_ran_it() {
    let device = Device::flex();
    let model = fixture_model(&device);
    let prompt: Vec<u32> = vec![17, 45, 203, 9, 88, 151, 30];
    let shared = vec![
        Scored {
            prompt: prompt.clone(),
            completion: vec![5, 77, 190, 12],
        },
        Scored {
            prompt: prompt.clone(),
            completion: vec![64, 3],
        },
        Scored {
            prompt: [&prompt[..], &[250, 11]].concat(),
            completion: vec![42, 99, 7],
        },
    ];
    // A row whose first token differs leaves nothing shared.
    let mut unshared = shared.clone();
    unshared.push(Scored {
        prompt: vec![300, 2],
        completion: vec![8],
    });
    let c = 4;
    // Sum of the first three rows' real log-probs, and those log-probs.
    let total = |rows: &[Scored]| {
        let logp = completion_logprobs(&model, rows); // [R, C]
        let mask: Vec<f32> = rows
            .iter()
            .enumerate()
            .flat_map(|(r, row)| {
                (0..c).map(move |j| (r < 3 && j >= c - row.completion.len()) as u8 as f32)
            })
            .collect();
        let mask = Tensor::<2>::from_data(TensorData::new(mask, [rows.len(), c]), &device);
        let masked = logp.clone() * mask;
        let values: Vec<f32> = masked
            .clone()
            .slice([0..3, 0..c])
            .try_into_vec_as()
            .unwrap();
        (masked.sum(), values)
    };
    let (sum_shared, logp_shared) = total(&shared);
    let (sum_unshared, logp_unshared) = total(&unshared);
    let difference = largest_difference(&logp_shared, &logp_unshared);
    println!("shared prompt: log-probs largest difference {difference:e}");
    assert!(difference < 1e-5);
    let (grads_shared, grads_unshared) = (sum_shared.backward(), sum_unshared.backward());
    for name in [
        "model.layers.0.self_attn.q_proj.weight",
        "model.embed_tokens.weight",
    ] {
        let read = |grads| -> Vec<f32> {
            param(&model, name)
                .grad(grads)
                .unwrap()
                .try_into_vec_as()
                .unwrap()
        };
        let (ours, theirs) = (read(&grads_shared), read(&grads_unshared));
        let scale = theirs.iter().fold(0f32, |m, x| m.max(x.abs()));
        let difference = largest_difference(&ours, &theirs);
        println!(
            "shared prompt: {name} gradient largest difference {difference:e} (largest entry {scale:e})"
        );
        assert!(difference <= 1e-5 * scale.max(1e-3), "{name}");
    }
}
