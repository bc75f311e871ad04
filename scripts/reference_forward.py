#!/usr/bin/env python3
"""A Llama-family forward pass in plain numpy, to check exported checkpoints.

Reads a Hugging Face folder (`config.json`, `model.safetensors`) the way `transformers`
does and prints the logits of a token sequence as JSON (`[T][V]`). It implements exactly
what the engine supports (RMSNorm, RoPE with `rotate_half`,
grouped-query attention, SwiGLU, optional QKV bias, Qwen3's per-head query/key RMSNorm,
`llama3` or `linear` RoPE scaling, tied or untied embeddings), so a test
can compare an exported checkpoint's logits with the engine's without torch.

    python3 scripts/reference_forward.py FOLDER 1,2,3
"""

import json
import math
import struct
import sys

import numpy as np


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (size,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + size])
    body = data[8 + size:]
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info["dtype"] != "F32":
            raise SystemExit(f"{name}: expected F32, found {info['dtype']}")
        start, end = info["data_offsets"]
        tensors[name] = np.frombuffer(body[start:end], dtype="<f4").reshape(info["shape"]).astype(np.float64)
    return tensors


def rms_norm(x, weight, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * weight


def inverse_frequencies(config, head_dim):
    params = config.get("rope_parameters") or {}
    theta = params.get("rope_theta", config.get("rope_theta", 10000.0))
    inv = 1.0 / theta ** (np.arange(0, head_dim, 2) / head_dim)
    scaling = config.get("rope_scaling") or params
    kind = scaling.get("rope_type", scaling.get("type")) if scaling else None
    if kind == "linear":
        inv = inv / scaling["factor"]
    if kind == "llama3":
        factor, low, high = scaling["factor"], scaling["low_freq_factor"], scaling["high_freq_factor"]
        original = scaling["original_max_position_embeddings"]
        wavelen = 2 * math.pi / inv
        smooth = (original / wavelen - low) / (high - low)
        scaled = np.where(wavelen > original / low, inv / factor, inv)
        medium = (wavelen <= original / low) & (wavelen >= original / high)
        inv = np.where(medium, (1 - smooth) * inv / factor + smooth * inv, scaled)
    return inv


def rotate_half(x):
    half = x.shape[-1] // 2
    return np.concatenate([-x[..., half:], x[..., :half]], axis=-1)


def forward(folder, ids):
    config = json.load(open(f"{folder}/config.json"))
    w = read_safetensors(f"{folder}/model.safetensors")
    heads, kv_heads = config["num_attention_heads"], config["num_key_value_heads"]
    head_dim = config.get("head_dim") or config["hidden_size"] // heads
    eps = config["rms_norm_eps"]
    t = len(ids)
    x = w["model.embed_tokens.weight"][ids]
    angles = np.outer(np.arange(t), inverse_frequencies(config, head_dim))
    cos = np.cos(np.concatenate([angles, angles], axis=-1))
    sin = np.sin(np.concatenate([angles, angles], axis=-1))
    causal = np.triu(np.full((t, t), -np.inf), k=1)
    for i in range(config["num_hidden_layers"]):
        p = f"model.layers.{i}"

        def linear(name, h):
            y = h @ w[f"{p}.{name}.weight"].T
            return y + w[f"{p}.{name}.bias"] if f"{p}.{name}.bias" in w else y

        h = rms_norm(x, w[f"{p}.input_layernorm.weight"], eps)
        q = linear("self_attn.q_proj", h).reshape(t, heads, head_dim).transpose(1, 0, 2)
        k = linear("self_attn.k_proj", h).reshape(t, kv_heads, head_dim).transpose(1, 0, 2)
        v = linear("self_attn.v_proj", h).reshape(t, kv_heads, head_dim).transpose(1, 0, 2)
        if f"{p}.self_attn.q_norm.weight" in w:  # Qwen3: each head's queries and keys
            q = rms_norm(q, w[f"{p}.self_attn.q_norm.weight"], eps)
            k = rms_norm(k, w[f"{p}.self_attn.k_norm.weight"], eps)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        group = heads // kv_heads
        k = np.repeat(k, group, axis=0)
        v = np.repeat(v, group, axis=0)
        scores = q @ k.transpose(0, 2, 1) / math.sqrt(head_dim) + causal
        scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
        weights = scores / scores.sum(axis=-1, keepdims=True)
        attended = (weights @ v).transpose(1, 0, 2).reshape(t, heads * head_dim)
        x = x + linear("self_attn.o_proj", attended)
        h = rms_norm(x, w[f"{p}.post_attention_layernorm.weight"], eps)
        gate = linear("mlp.gate_proj", h)
        x = x + linear("mlp.down_proj", gate / (1 + np.exp(-gate)) * linear("mlp.up_proj", h))
    x = rms_norm(x, w["model.norm.weight"], eps)
    head = w["lm_head.weight"] if "lm_head.weight" in w else w["model.embed_tokens.weight"]
    return x @ head.T


def main():
    folder, ids = sys.argv[1], [int(i) for i in sys.argv[2].split(",")]
    json.dump(forward(folder, ids).tolist(), sys.stdout)


if __name__ == "__main__":
    main()
