#!/usr/bin/env python3
"""Reference fixtures for the model engine's numeric tests.

Builds two tiny random models with Hugging Face `transformers` and records what
`transformers` computes with them, so the Rust engine can be checked against it:

* `llama-gqa`: Llama with grouped-query attention (4 heads, 2 KV heads), untied embeddings
  and Llama-3 RoPE scaling; tokenizer pre-tokenised like SmolLM2 (GGUF pre `smollm`).
* `qwen2-tied`: Qwen2 with QKV bias and tied embeddings; Qwen2 pre-tokeniser (`qwen2`).
* `qwen3-untied`: Qwen3 with per-head query/key RMSNorm, `head_dim` 16 where hidden/heads is
  12, and an untied LM head; GGUF architecture `qwen3` (no Q/K permutation).
* `llama3-long` and `llama-linear`: Llama with `llama3` and `linear` RoPE scaling, each with
  a prompt of a few hundred tokens, long enough that the scaling changes the logits.

Each model is saved as a Hugging Face folder (config.json, model.safetensors, tokenizer.json,
tokenizer_config.json with a ChatML template) and as GGUF files (F32, and Q8_0 for the
dequantisation path) written with the `gguf` package the way llama.cpp's converter does
(Q/K rows permuted for Llama; Llama-3 scaling as a `rope_freqs` tensor). `reference.json`
holds prompts, their token ids, greedy continuations and rendered chat prompts;
`reference.safetensors` holds the logits. `quants.safetensors` holds random blocks of each
GGUF quantisation type with `gguf`'s own dequantisation, to check our dequantisers.

Run: `python3 scripts/make_fixtures.py [NAME ...]` (needs torch, transformers 5, tokenizers,
gguf, numpy, safetensors); with names, only those fixtures are rebuilt. Output:
tests/fixtures/llm/. Deterministic for a given library version.
"""

import json
import pathlib
import sys

import gguf
import numpy as np
import torch
from safetensors.numpy import save_file
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (AutoModelForCausalLM, LlamaConfig, PreTrainedTokenizerFast,
                          Qwen2Config, Qwen3Config)

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "llm"
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
# Meta-Llama-3-8B-Instruct's chat template, to check the Llama-3 format renders alike.
LLAMA3 = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + "
    "message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
    "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)
QWEN2_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
PROMPTS = [
    "Two agents negotiate over a shared budget.",
    "Hello",
    "The committee must decide whether 12 families keep their garden plots?",
]
MESSAGES = [
    {"role": "system", "content": "You are a careful negotiator."},
    {"role": "user", "content": "Should we split the cost evenly?"},
    {"role": "assistant", "content": "Let us weigh who benefits."},
    {"role": "user", "content": "Propose a split."},
]


def long_prompt():
    """A few hundred tokens of the dilemma library: positions past the RoPE scaling's
    `original_max_position_embeddings`."""
    return " ".join(corpus()[:8])


def corpus():
    text = (ROOT / "data" / "dilemmas.yaml").read_text() + (ROOT / "data" / "personas.yaml").read_text()
    return [line for line in text.splitlines() if line.strip()]


def train_tokenizer(style):
    tok = Tokenizer(models.BPE())
    if style == "smollm":
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ])
    else:
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(QWEN2_PATTERN), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=320, special_tokens=SPECIALS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(corpus(), trainer)
    return tok


def permute(w, n_head):
    """llama.cpp's permutation of Q/K rows (HF rotate_half layout -> interleaved)."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def write_gguf(path, arch, cfg, state, tok, qtype, pre):
    w = gguf.GGUFWriter(str(path), arch)
    w.add_name(path.stem)
    w.add_context_length(cfg.max_position_embeddings)
    w.add_embedding_length(cfg.hidden_size)
    w.add_block_count(cfg.num_hidden_layers)
    w.add_feed_forward_length(cfg.intermediate_size)
    w.add_head_count(cfg.num_attention_heads)
    w.add_head_count_kv(cfg.num_key_value_heads)
    w.add_rope_freq_base(cfg.rope_parameters["rope_theta"])
    w.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    if arch == "qwen3":
        w.add_key_length(cfg.head_dim)
        w.add_value_length(cfg.head_dim)
    vocab = tok.get_vocab()
    tokens = [t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1])]
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(pre)
    w.add_token_list(tokens)
    w.add_token_types([gguf.TokenType.CONTROL if t in SPECIALS else gguf.TokenType.NORMAL for t in tokens])
    w.add_token_merges([" ".join(m) for m in json.loads(tok.to_str())["model"]["merges"]])
    w.add_bos_token_id(vocab["<|im_start|>"])
    w.add_eos_token_id(vocab["<|im_end|>"])
    w.add_add_bos_token(False)
    w.add_chat_template(CHATML)
    n_head, n_kv = cfg.num_attention_heads, cfg.num_key_value_heads

    def put(name, array):
        array = np.ascontiguousarray(array.astype(np.float32))
        if qtype == gguf.GGMLQuantizationType.Q8_0 and array.ndim == 2 and array.shape[1] % 32 == 0:
            w.add_tensor(name, gguf.quants.quantize(array, qtype), raw_dtype=qtype)
        else:
            w.add_tensor(name, array)

    if cfg.rope_parameters.get("rope_type") == "llama3":
        put("rope_freqs.weight", llama3_rope_factors(cfg))
    elif cfg.rope_parameters.get("rope_type") == "linear":
        w.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        w.add_rope_scaling_factor(cfg.rope_parameters["factor"])
    put("token_embd.weight", state["model.embed_tokens.weight"])
    put("output_norm.weight", state["model.norm.weight"])
    if "lm_head.weight" in state and not cfg.tie_word_embeddings:
        put("output.weight", state["lm_head.weight"])
    for i in range(cfg.num_hidden_layers):
        p = f"model.layers.{i}."
        q, k = state[p + "self_attn.q_proj.weight"], state[p + "self_attn.k_proj.weight"]
        if arch == "llama":
            q, k = permute(q, n_head), permute(k, n_kv)
        put(f"blk.{i}.attn_q.weight", q)
        put(f"blk.{i}.attn_k.weight", k)
        put(f"blk.{i}.attn_v.weight", state[p + "self_attn.v_proj.weight"])
        put(f"blk.{i}.attn_output.weight", state[p + "self_attn.o_proj.weight"])
        for bias in ("q", "k", "v"):
            if p + f"self_attn.{bias}_proj.bias" in state:
                put(f"blk.{i}.attn_{bias}.bias", state[p + f"self_attn.{bias}_proj.bias"])
        for norm in ("q", "k"):
            if p + f"self_attn.{norm}_norm.weight" in state:
                put(f"blk.{i}.attn_{norm}_norm.weight", state[p + f"self_attn.{norm}_norm.weight"])
        put(f"blk.{i}.attn_norm.weight", state[p + "input_layernorm.weight"])
        put(f"blk.{i}.ffn_norm.weight", state[p + "post_attention_layernorm.weight"])
        put(f"blk.{i}.ffn_gate.weight", state[p + "mlp.gate_proj.weight"])
        put(f"blk.{i}.ffn_up.weight", state[p + "mlp.up_proj.weight"])
        put(f"blk.{i}.ffn_down.weight", state[p + "mlp.down_proj.weight"])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def llama3_rope_factors(cfg):
    """Per-frequency divisors, as llama.cpp's converter writes them (`rope_freqs`)."""
    s = cfg.rope_parameters
    head_dim = cfg.hidden_size // cfg.num_attention_heads
    base = s["rope_theta"]
    freqs = 1.0 / (base ** (np.arange(0, head_dim, 2, dtype=np.float32) / head_dim))
    low_wavelen = s["original_max_position_embeddings"] / s["low_freq_factor"]
    high_wavelen = s["original_max_position_embeddings"] / s["high_freq_factor"]
    factors = []
    for f in freqs:
        wavelen = 2 * np.pi / f
        if wavelen < high_wavelen:
            factors.append(1.0)
        elif wavelen > low_wavelen:
            factors.append(s["factor"])
        else:
            smooth = (s["original_max_position_embeddings"] / wavelen - s["low_freq_factor"]) / (
                s["high_freq_factor"] - s["low_freq_factor"])
            factors.append(1.0 / ((1 - smooth) / s["factor"] + smooth))
    return np.array(factors, dtype=np.float32)


LLAMA3_ROPE = {"rope_type": "llama3", "rope_theta": 10000.0, "factor": 8.0, "low_freq_factor": 1.0,
               "high_freq_factor": 4.0, "original_max_position_embeddings": 64}


def build(name, arch, tok_style, rope=None, seed=None, long=False):
    torch.manual_seed(seed if seed is not None else 7 if arch == "llama" else 11)
    tok = train_tokenizer(tok_style)
    vocab_size = tok.get_vocab_size()
    common = dict(vocab_size=vocab_size, hidden_size=48, intermediate_size=96, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2,
                  max_position_embeddings=512 if long else 256,
                  initializer_range=0.15, bos_token_id=tok.token_to_id("<|im_start|>"),
                  eos_token_id=tok.token_to_id("<|im_end|>"))
    if arch == "llama":
        cfg = LlamaConfig(**common, rms_norm_eps=1e-5, tie_word_embeddings=False,
                          rope_parameters=rope or LLAMA3_ROPE)
    elif arch == "qwen3":
        cfg = Qwen3Config(**common, head_dim=16, rms_norm_eps=1e-6, tie_word_embeddings=False,
                          use_sliding_window=False, attention_bias=False,
                          rope_parameters={"rope_type": "default", "rope_theta": 1000000.0})
    else:
        cfg = Qwen2Config(**common, rms_norm_eps=1e-6, tie_word_embeddings=True, use_sliding_window=False,
                          rope_parameters={"rope_type": "default", "rope_theta": 1000000.0})
    model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32).eval()
    with torch.no_grad():  # Non-trivial norms, so the tests see their effect.
        for n, p in model.named_parameters():
            if n.endswith("norm.weight"):
                p.copy_(1.0 + 0.3 * torch.randn_like(p))
    folder = OUT / name
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|im_start|>", eos_token="<|im_end|>",
                                   pad_token="<|endoftext|>", chat_template=CHATML)
    fast.save_pretrained(folder)
    state = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    write_gguf(OUT / f"{name}.f32.gguf", arch, cfg, state, tok, gguf.GGMLQuantizationType.F32,
               "smollm" if tok_style == "smollm" else "qwen2")
    if not long:
        write_gguf(OUT / f"{name}.q8_0.gguf", arch, cfg, state, tok, gguf.GGMLQuantizationType.Q8_0,
                   "smollm" if tok_style == "smollm" else "qwen2")

    reference = {"prompts": [], "chat": {}}
    tensors = {}
    prompts = PROMPTS + [long_prompt()] if long else PROMPTS
    for i, prompt in enumerate(prompts):
        ids = fast(prompt, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0].numpy()
            greedy = model.generate(torch.tensor([ids]), max_new_tokens=10, do_sample=False,
                                    attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                                    pad_token_id=fast.pad_token_id, eos_token_id=None)[0, len(ids):].tolist()
        tensors[f"logits_{i}"] = logits.astype(np.float32)
        reference["prompts"].append({"text": prompt, "ids": ids, "greedy": greedy})
    reference["chat"]["messages"] = MESSAGES
    reference["chat"]["with_generation_prompt"] = fast.apply_chat_template(
        MESSAGES, tokenize=False, add_generation_prompt=True)
    reference["chat"]["without_generation_prompt"] = fast.apply_chat_template(
        MESSAGES, tokenize=False, add_generation_prompt=False)
    reference["chat"]["llama3_template"] = LLAMA3
    reference["chat"]["llama3"] = fast.apply_chat_template(
        MESSAGES, tokenize=False, add_generation_prompt=True, chat_template=LLAMA3)
    # Teacher-forced log-probs of a continuation, for the scoring call.
    ids = reference["prompts"][0]["ids"]
    with torch.no_grad():
        logp = torch.log_softmax(model(torch.tensor([ids])).logits[0], dim=-1)
    reference["scored"] = [float(logp[t - 1, ids[t]]) for t in range(1, len(ids))]
    save_file(tensors, str(folder / "reference.safetensors"))
    (folder / "reference.json").write_text(json.dumps(reference, indent=1) + "\n")


def quant_blocks():
    """Random blocks of each quantisation type and gguf's dequantisation of them."""
    rng = np.random.default_rng(3)
    out = {}
    T = gguf.GGMLQuantizationType
    for qtype in (T.Q4_0, T.Q4_1, T.Q5_0, T.Q8_0):
        values = rng.normal(size=(4, 64)).astype(np.float32)
        data = gguf.quants.quantize(values, qtype)
        out[f"{qtype.name}.data"] = np.frombuffer(data.tobytes(), dtype=np.uint8).copy()
        out[f"{qtype.name}.dequantized"] = gguf.quants.dequantize(data, qtype).astype(np.float32).reshape(-1)
    for qtype, block, scale_offsets in ((T.Q4_K, 144, (0, 2)), (T.Q6_K, 210, (208,))):
        raw = rng.integers(0, 256, size=(4, block), dtype=np.uint8)
        for off in scale_offsets:  # sane f16 scales instead of random bits (which may be NaN)
            raw[:, off:off + 2] = np.frombuffer(np.array([0.01], dtype=np.float16).tobytes(), dtype=np.uint8)
        out[f"{qtype.name}.data"] = raw.reshape(-1).copy()
        out[f"{qtype.name}.dequantized"] = gguf.quants.dequantize(raw, qtype).astype(np.float32).reshape(-1)
    for qtype, dtype in ((T.F16, np.float16), (T.BF16, None)):
        values = rng.normal(size=(64,)).astype(np.float32)
        if dtype is not None:
            raw = values.astype(dtype)
            out[f"{qtype.name}.data"] = np.frombuffer(raw.tobytes(), dtype=np.uint8).copy()
            out[f"{qtype.name}.dequantized"] = raw.astype(np.float32)
        else:
            bits = (values.view(np.uint32) >> 16).astype(np.uint16)
            out[f"{qtype.name}.data"] = np.frombuffer(bits.tobytes(), dtype=np.uint8).copy()
            out[f"{qtype.name}.dequantized"] = (bits.astype(np.uint32) << 16).view(np.float32)
    save_file(out, str(OUT / "quants.safetensors"))


FIXTURES = {
    "llama-gqa": lambda: build("llama-gqa", "llama", "smollm"),
    "qwen2-tied": lambda: build("qwen2-tied", "qwen2", "qwen2"),
    "qwen3-untied": lambda: build("qwen3-untied", "qwen3", "qwen2", seed=13, long=True),
    "llama3-long": lambda: build("llama3-long", "llama", "smollm", seed=17, long=True),
    "llama-linear": lambda: build("llama-linear", "llama", "smollm", seed=19, long=True,
                                  rope={"rope_type": "linear", "rope_theta": 10000.0, "factor": 4.0}),
    "quants": quant_blocks,
}

if __name__ == "__main__":
    OUT.mkdir(parents=True, exist_ok=True)
    for name in sys.argv[1:] or FIXTURES:
        FIXTURES[name]()
    total = sum(f.stat().st_size for f in OUT.rglob("*") if f.is_file())
    print(f"fixtures in {OUT.relative_to(ROOT)}: {total / 1e6:.2f} MB")
