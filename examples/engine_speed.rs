//! Engine speed on one model: prefill of a 256-token prompt, then decode tokens/s at
//! batch 1 and batch 8. Prints one JSON object per measurement; `scripts/bench-engine.py`
//! runs it beside `transformers` and prints ratios.
//!
//! `engine_speed MODEL_PATH BACKEND` (BACKEND: flex or wgpu).

use std::time::Instant;

use accord::llm::loaded::LoadedModel;
use accord::llm::{KvCache, resolve_backend};
use accord::spec::Backend;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(path), Some(backend)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: engine_speed MODEL_PATH flex|wgpu");
        std::process::exit(2);
    };
    let choice = if backend == "wgpu" {
        Backend::Wgpu
    } else {
        Backend::Flex
    };
    let backend = resolve_backend(choice).expect("backend");
    let loaded = LoadedModel::load(std::path::Path::new(path), &backend).expect("model loads");
    let model = &loaded.model;
    let prompt: Vec<u32> = (0..256).map(|i| (i * 37 % 4000 + 100) as u32).collect();
    for batch in [1usize, 8] {
        let rows = vec![prompt.clone(); batch];
        let valid = vec![vec![true; prompt.len()]; batch];
        // Warm-up (shader compilation and autotune on wgpu).
        let mut cache = KvCache::default();
        let _ = model.forward(&rows, &valid, &mut cache, true).into_data();
        let mut cache = KvCache::default();
        let started = Instant::now();
        let _ = model.forward(&rows, &valid, &mut cache, true).into_data();
        let prefill = started.elapsed().as_secs_f64();
        let steps = 32;
        let started = Instant::now();
        for _ in 0..steps {
            let next = vec![vec![101u32]; batch];
            let _ = model
                .forward(&next, &vec![vec![true]; batch], &mut cache, true)
                .into_data();
        }
        let decode = started.elapsed().as_secs_f64();
        println!(
            "{{\"engine\": \"accord-{}\", \"batch\": {batch}, \"prefill_tok_s\": {:.1}, \"decode_tok_s\": {:.1}}}",
            backend.name,
            (batch * prompt.len()) as f64 / prefill,
            (batch * steps) as f64 / decode
        );
    }
}
