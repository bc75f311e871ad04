#!/usr/bin/env python3
"""Peak memory while loading a sharded bf16 checkpoint as bf16 on flex (issue: checkpoints
as they ship). Goal: peak RSS under 1.3x the checkpoint's size.

Writes a random checkpoint of Qwen3-0.6B's shape (hidden 1024, intermediate 3072, 28
layers, 16 heads of 128, 8 KV heads, vocab 151936, with an LM head: 1.5 GB, as the
published file) as a Hugging Face
folder of three bf16 shards with `model.safetensors.index.json`, using numpy only (random
bf16 bit patterns of magnitude below 1/64, norms 1). Then runs

    accord generate --model path:DIR --backend flex --dtype bf16 --max-new-tokens 0 --prompt hi

which loads the model and tokenizer and generates nothing, and reads the process's peak
RSS from `wait4` (what `/usr/bin/time -v` calls "Maximum resident set size"). The same
command on the tiny test fixture gives the process's own baseline (binary, tokenizer,
allocator). Prints the CPU, the checkpoint's size, each peak and the ratio.

    scripts/bench-load.py                       # builds `accord` into $CARGO_TARGET_DIR
    scripts/bench-load.py --bin B --old-bin O   # also measure another build, e.g. main's
    scripts/bench-load.py --dtypes bf16,f32     # f32 too (the model is then 2x the file)

The checkpoint is a Qwen3 one (`model_type: qwen3`, with `q_norm`/`k_norm`); `--llama`
writes the same shape as `model_type: llama` with `head_dim: 128` and no Q/K norms. It is
kept in `--dir` and rewritten only when its description changes.
"""

import argparse
import json
import multiprocessing
import os
import shutil
import subprocess
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/accord-target"))
FIXTURE = os.path.join(ROOT, "tests", "fixtures", "llm", "qwen2-tied")
SHAPE = dict(vocab=151936, hidden=1024, intermediate=3072, layers=28, heads=16, kv_heads=8, head_dim=128)
SHARDS = 3
ONE_BF16 = 0x3F80


def tensors(shape, qwen3):
    """(name, dims) of every tensor, in Hugging Face's order."""
    c, f, d = shape["hidden"], shape["intermediate"], shape["head_dim"]
    h, k = shape["heads"], shape["kv_heads"]
    out = [("model.embed_tokens.weight", (shape["vocab"], c))]
    for i in range(shape["layers"]):
        p = f"model.layers.{i}"
        out += [(f"{p}.input_layernorm.weight", (c,)),
                (f"{p}.self_attn.q_proj.weight", (h * d, c)),
                (f"{p}.self_attn.k_proj.weight", (k * d, c)),
                (f"{p}.self_attn.v_proj.weight", (k * d, c)),
                (f"{p}.self_attn.o_proj.weight", (c, h * d))]
        if qwen3:
            out += [(f"{p}.self_attn.q_norm.weight", (d,)), (f"{p}.self_attn.k_norm.weight", (d,))]
        out += [(f"{p}.post_attention_layernorm.weight", (c,)),
                (f"{p}.mlp.gate_proj.weight", (f, c)),
                (f"{p}.mlp.up_proj.weight", (f, c)),
                (f"{p}.mlp.down_proj.weight", (c, f))]
    out.append(("model.norm.weight", (c,)))
    # Qwen3-0.6B's published file holds its LM head beside the embeddings (1.5 GB); here
    # the head is untied, so the engine reads every byte of the file.
    out.append(("lm_head.weight", (shape["vocab"], c)))
    return out


def config(shape, qwen3):
    return {
        "architectures": ["Qwen3ForCausalLM" if qwen3 else "LlamaForCausalLM"],
        "model_type": "qwen3" if qwen3 else "llama",
        "vocab_size": shape["vocab"],
        "hidden_size": shape["hidden"],
        "intermediate_size": shape["intermediate"],
        "num_hidden_layers": shape["layers"],
        "num_attention_heads": shape["heads"],
        "num_key_value_heads": shape["kv_heads"],
        "head_dim": shape["head_dim"],
        "hidden_act": "silu",
        "rms_norm_eps": 1e-6,
        "rope_theta": 1000000.0,
        "max_position_embeddings": 40960,
        "tie_word_embeddings": False,
        # The ids of the fixture tokenizer this folder borrows.
        "bos_token_id": 1,
        "eos_token_id": 2,
        "torch_dtype": "bfloat16",
    }


def random_bf16(rng, count):
    """`count` random bf16 bit patterns: any sign and mantissa, exponents 2^-15 .. 2^-8."""
    r = rng.integers(0, 1 << 16, size=count, dtype=np.uint16)
    exponent = ((r >> 7) & 7) + 112
    return (r & 0x807F) | (exponent << 7)


def write_shard(path, part, rng):
    header, offset = {"__metadata__": {"format": "pt"}}, 0
    for name, dims in part:
        size = int(np.prod(dims)) * 2
        header[name] = {"dtype": "BF16", "shape": list(dims), "data_offsets": [offset, offset + size]}
        offset += size
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as out:
        out.write(len(text).to_bytes(8, "little"))
        out.write(text)
        for name, dims in part:
            count = int(np.prod(dims))
            if name.endswith("norm.weight"):
                values = np.full(count, ONE_BF16, dtype=np.uint16)
            else:
                values = random_bf16(rng, count)
            out.write(values.astype("<u2").tobytes())


def write_checkpoint(folder, qwen3):
    """Writes the checkpoint into `folder` unless the one there has the same description."""
    description = {"shape": SHAPE, "qwen3": qwen3, "shards": SHARDS, "seed": 0, "lm_head": True}
    stamp = os.path.join(folder, "bench-load.json")
    if os.path.exists(stamp) and json.load(open(stamp)) == description:
        return
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    rng = np.random.default_rng(0)
    every = tensors(SHAPE, qwen3)
    total = sum(int(np.prod(d)) * 2 for _, d in every)
    parts, part, filled = [], [], 0
    for name, dims in every:
        part.append((name, dims))
        filled += int(np.prod(dims)) * 2
        if filled >= total * (len(parts) + 1) / SHARDS and len(parts) < SHARDS - 1:
            parts.append(part)
            part = []
    parts.append(part)
    weight_map = {}
    for i, part in enumerate(parts):
        file = f"model-{i + 1:05d}-of-{len(parts):05d}.safetensors"
        print(f"writing {file}", file=sys.stderr)
        write_shard(os.path.join(folder, file), part, rng)
        weight_map.update({name: file for name, _ in part})
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    json.dump(index, open(os.path.join(folder, "model.safetensors.index.json"), "w"), indent=2)
    json.dump(config(SHAPE, qwen3), open(os.path.join(folder, "config.json"), "w"), indent=2)
    # The engine needs a tokenizer beside the weights; it does not compare its vocabulary
    # with the model's.
    for name in ["tokenizer.json", "tokenizer_config.json"]:
        shutil.copy(os.path.join(FIXTURE, name), folder)
    json.dump(description, open(stamp, "w"))


def peak_rss(command):
    """Runs `command`; returns (exit status, its peak RSS in bytes, stderr)."""
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    stderr = child.stderr.read().decode(errors="replace")
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    return child.returncode, usage.ru_maxrss * 1024, stderr


def load(binary, folder, dtype):
    command = [binary, "generate", "--model", f"path:{folder}", "--backend", "flex", "--dtype", dtype,
               "--max-new-tokens", "0", "--prompt", "hi"]
    code, peak, stderr = peak_rss(command)
    if code != 0:
        sys.exit(f"{' '.join(command)} failed:\n{stderr}")
    loaded = [line for line in stderr.splitlines() if line.startswith("loaded")]
    return peak, (loaded[0].split(" in ")[-1] if loaded else "?")


def cpu_model():
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    except FileNotFoundError:
        text = open("/proc/cpuinfo").read()
    names = [line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith(("Model name", "model name"))]
    return names[0] if names else "unknown"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default=os.path.join(os.environ.get("TMPDIR", "/tmp"), "accord-bench-load"))
    parser.add_argument("--bin", help="the accord binary to measure (default: build it)")
    parser.add_argument("--old-bin", help="another accord build to measure the same way")
    parser.add_argument("--dtypes", default="bf16")
    parser.add_argument("--llama", action="store_true", help="write the shape as a Llama checkpoint")
    args = parser.parse_args()
    binary = args.bin
    if binary is None:
        subprocess.run(["cargo", "build", "--quiet", "--bin", "accord"], cwd=ROOT, check=True,
                       env={**os.environ, "CARGO_TARGET_DIR": TARGET})
        binary = os.path.join(TARGET, "debug", "accord")
    folder = os.path.join(args.dir, "qwen3-0.6b-shape" + ("-as-llama" if args.llama else ""))
    # Written in a fresh interpreter: a child forked from a parent holding the arrays would
    # start its peak RSS at the parent's size.
    writer = multiprocessing.get_context("spawn").Process(target=write_checkpoint,
                                                           args=(folder, not args.llama))
    writer.start()
    writer.join()
    if writer.exitcode != 0:
        sys.exit("writing the checkpoint failed")
    size = sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder) if f.endswith(".safetensors"))
    print(f"cpu: {cpu_model()}")
    print(f"checkpoint: {folder}: {size / 1e9:.3f} GB in {SHARDS} bf16 shards")
    builds = [("new", binary)] + ([("old", args.old_bin)] if args.old_bin else [])
    for label, build in builds:
        baseline, _ = load(build, FIXTURE, "f32")
        print(f"{label}: baseline (tiny fixture model): peak RSS {baseline / 1e6:.0f} MB")
        for dtype in args.dtypes.split(","):
            peak, took = load(build, folder, dtype)
            print(f"{label}: load as {dtype} on flex: peak RSS {peak / 1e6:.0f} MB, "
                  f"{peak / size:.2f}x the checkpoint (loaded in {took})")


if __name__ == "__main__":
    main()
