#!/usr/bin/env python3
"""Reference numerics for the GRPO objective, computed with PyTorch on a fixture model.

Loads the tiny Llama fixture (`tests/fixtures/llm/llama-gqa`, made by
`scripts/make_fixtures.py`) with `transformers` and, for four (prompt, completion) rows of
three samples, records what the objective in `src/train/objective.rs` must compute:

* the per-token log-probs of each completion;
* for each aggregation (`grpo`, `dapo`, `dr_grpo`), with given sampling-time log-probs
  (`old`, so ratios differ from 1 and some clip) and reference log-probs (so the k3 KL
  term is not zero): the loss and the gradients of a few parameters.

The objective, per trained token (advantage A, clip range [1 - eps_low, 1 + eps_high]):

    ratio = exp(logp - old); pg = -min(ratio * A, clamp(ratio) * A)
    kl = exp(ref - logp) - (ref - logp) - 1; token = pg + beta * kl

averaged per sample then over samples (grpo), over all tokens (dapo), or summed and
divided by samples x max_sample_tokens (dr_grpo).

Run: `python3 scripts/make_grpo_reference.py` (torch, transformers, safetensors). Output:
tests/fixtures/grpo/reference.json and reference.safetensors.
"""

import json
import pathlib

import torch
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM

ROOT = pathlib.Path(__file__).resolve().parent.parent
MODEL = ROOT / "tests" / "fixtures" / "llm" / "llama-gqa"
OUT = ROOT / "tests" / "fixtures" / "grpo"
EPS_LOW, EPS_HIGH, BETA, MAX_SAMPLE_TOKENS = 0.2, 0.28, 0.04, 16
GRADS = ["model.layers.0.self_attn.q_proj.weight", "model.layers.1.mlp.down_proj.weight",
         "model.norm.weight", "lm_head.weight", "model.embed_tokens.weight"]


def rows():
    g = torch.Generator().manual_seed(7)
    shapes = [(9, 5, 0), (6, 7, 0), (11, 3, 1), (4, 6, 2)]  # prompt len, completion len, sample
    out = []
    for prompt_len, completion_len, sample in shapes:
        ids = torch.randint(3, 320, (prompt_len + completion_len,), generator=g).tolist()
        out.append({"prompt": ids[:prompt_len], "completion": ids[prompt_len:], "sample": sample})
    return out


def completion_logprobs(model, row):
    ids = torch.tensor([row["prompt"] + row["completion"]])
    logits = model(ids).logits[0, :-1]  # position p predicts p + 1
    logp = torch.log_softmax(logits.float(), dim=-1)
    targets = ids[0, 1:]
    picked = logp.gather(1, targets[:, None])[:, 0]
    return picked[-len(row["completion"]):]


def loss_of(logps, data, aggregation):
    samples = sorted({r["sample"] for r in data})
    per_sample = {s: sum(len(r["completion"]) for r in data if r["sample"] == s) for s in samples}
    total = sum(per_sample.values())
    loss = 0.0
    for logp, row in zip(logps, data):
        old = torch.tensor(row["old"])
        ref = torch.tensor(row["ref"])
        a = row["advantage"]
        ratio = torch.exp(logp - old)
        pg = -torch.minimum(ratio * a, torch.clamp(ratio, 1 - EPS_LOW, 1 + EPS_HIGH) * a)
        delta = ref - logp
        kl = torch.exp(delta) - delta - 1
        token = pg + BETA * kl
        if aggregation == "grpo":
            loss = loss + token.sum() / per_sample[row["sample"]] / len(samples)
        elif aggregation == "dapo":
            loss = loss + token.sum() / total
        else:
            loss = loss + token.sum() / (len(samples) * MAX_SAMPLE_TOKENS)
    return loss


def main():
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(MODEL, dtype=torch.float32)
    model.eval()
    data = rows()
    g = torch.Generator().manual_seed(11)
    advantages = [0.8, 0.8, -1.2, 0.4]
    with torch.no_grad():
        for row, a in zip(data, advantages):
            logp = completion_logprobs(model, row)
            row["logp"] = logp.tolist()
            row["old"] = (logp + (torch.rand(logp.shape, generator=g) - 0.5) * 0.8).tolist()
            row["ref"] = (logp + (torch.rand(logp.shape, generator=g) - 0.5) * 0.6).tolist()
            row["advantage"] = a
    tensors = {}
    losses = {}
    params = dict(model.named_parameters())
    for aggregation in ["grpo", "dapo", "dr_grpo"]:
        model.zero_grad()
        logps = [completion_logprobs(model, row) for row in data]
        loss = loss_of(logps, data, aggregation)
        loss.backward()
        losses[aggregation] = loss.item()
        for name in GRADS:
            tensors[f"{aggregation}/{name}"] = params[name].grad.detach().clone().contiguous()
    OUT.mkdir(parents=True, exist_ok=True)
    save_file(tensors, OUT / "reference.safetensors")
    settings = {"epsilon_low": EPS_LOW, "epsilon_high": EPS_HIGH, "kl_beta": BETA,
                "max_sample_tokens": MAX_SAMPLE_TOKENS}
    (OUT / "reference.json").write_text(json.dumps(
        {"settings": settings, "rows": data, "losses": losses, "grads": GRADS}, indent=1) + "\n")
    print(f"wrote {OUT}: losses {losses}")


if __name__ == "__main__":
    main()
