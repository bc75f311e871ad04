//! Engine speed on one model: prefill of a 256-token prompt, then decode tokens/s at
//! batch 1 and batch 8. Prints one JSON object per measurement; `scripts/bench-engine.py`
//! runs it beside `transformers` and prints ratios.
//!
//! `engine_speed MODEL BACKEND [DTYPE]`: MODEL is a Hugging Face folder or a `.gguf` file,
//! or a `config.json` alone for seeded random weights of that shape (speed does not depend
//! on the values; this is how a machine without the weights measures); BACKEND is `auto`,
//! `flex` or `wgpu`; DTYPE is `f32` (default), `f16` or `bf16`.
//!
//! For profiling, `ENGINE_PROMPT` (tokens, default 256), `ENGINE_BATCHES` (default `1,8`)
//! and `ENGINE_STEPS` (decode steps, default 32) change the workload.

use std::path::Path;
use std::time::Instant;

use accord::llm::loaded::LoadedModel;
use accord::llm::weights::random::RandomWeights;
use accord::llm::{KvCache, LlamaModel, ModelConfig, resolve_backend};
use accord::spec::{Backend, Dtype};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(path), Some(backend)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: engine_speed MODEL auto|flex|wgpu [f32|f16|bf16]");
        std::process::exit(2);
    };
    use clap::ValueEnum;
    let choice = Backend::from_str(backend, true).expect("backend: auto, wgpu or flex");
    let dtype = Dtype::from_str(args.get(3).map_or("f32", String::as_str), true)
        .expect("dtype: f32, f16 or bf16");
    let backend = resolve_backend(choice).expect("backend");
    eprintln!("backend: {backend}");
    let path = Path::new(path);
    let model = if path.extension().is_some_and(|e| e == "json") {
        let config = ModelConfig::from_hf_json(path).expect("config");
        LlamaModel::load(config, &mut RandomWeights::new(0), &backend.device, dtype)
            .expect("model builds")
    } else {
        LoadedModel::load(path, &backend, dtype)
            .expect("model loads")
            .model
    };
    let setting = |name: &str, default: &str| std::env::var(name).unwrap_or(default.into());
    let numbers = |text: String| -> Vec<usize> {
        text.split(',')
            .map(|n| n.trim().parse().expect("a whole number"))
            .collect()
    };
    let prompt_len = numbers(setting("ENGINE_PROMPT", "256"))[0];
    let prompt: Vec<u32> = (0..prompt_len)
        .map(|i| (i * 37 % 4000 + 100) as u32)
        .collect();
    let batches = numbers(setting("ENGINE_BATCHES", "1,8"));
    for batch in batches {
        let rows = vec![prompt.clone(); batch];
        let valid = vec![vec![true; prompt.len()]; batch];
        // Warm-up: the same prefill and decode steps, so every shape the timed run meets
        // has had its shaders compiled and autotuned on wgpu.
        let steps = numbers(setting("ENGINE_STEPS", "32"))[0];
        let mut cache = KvCache::default();
        let _ = model.forward(&rows, &valid, &mut cache, true).into_data();
        for _ in 0..steps {
            let next = vec![vec![101u32]; batch];
            let _ = model
                .forward(&next, &vec![vec![true]; batch], &mut cache, true)
                .into_data();
        }
        let mut cache = KvCache::default();
        let started = Instant::now();
        let _ = model.forward(&rows, &valid, &mut cache, true).into_data();
        let prefill = started.elapsed().as_secs_f64();
        let started = Instant::now();
        for _ in 0..steps {
            let next = vec![vec![101u32]; batch];
            let _ = model
                .forward(&next, &vec![vec![true]; batch], &mut cache, true)
                .into_data();
        }
        let decode = started.elapsed().as_secs_f64();
        println!(
            "{{\"engine\": \"accord-{}-{}\", \"batch\": {batch}, \"prefill_tok_s\": {:.1}, \"decode_tok_s\": {:.1}}}",
            backend.name,
            dtype.name(),
            (batch * prompt.len()) as f64 / prefill,
            (batch * steps) as f64 / decode
        );
    }
}
