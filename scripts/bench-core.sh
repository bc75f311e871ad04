#!/usr/bin/env bash
# Core speed figures (issue: pipeline core):
#   - a no-op `accord run` and `accord status` on a 6-stage pipeline with everything
#     cached: median of 10 wall-clock runs, process start included (goal: <= 20 ms each);
#   - digest verification of a 1 GiB artifact with `accord verify` (goal: >= 1 GB/s).
# Uses the same profile as the tests, so nothing is compiled twice.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/accord-target}"
cargo build --quiet --bin accord --example big_artifact
bin="$CARGO_TARGET_DIR/debug/accord"
big="$CARGO_TARGET_DIR/debug/examples/big_artifact"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cat > "$work/six.yaml" <<'YAML'
version: 1
name: six-stages
seed: 1
stages:
  dilemmas:   {kind: prompt_synthesis, with: {count: 64}}
  everyday:   {kind: prompt_synthesis, with: {count: 32, tiers: [everyday]}}
  pairs:      {kind: persona_pairing, needs: [dilemmas], with: {pairs_per_dilemma: 2}}
  random:     {kind: persona_pairing, needs: [dilemmas], with: {strategy: random}}
  everyday_pairs: {kind: persona_pairing, needs: [everyday]}
  wide:       {kind: persona_pairing, needs: [everyday], with: {pairs_per_dilemma: 4, temperature: 1.0}}
YAML
(cd "$work" && "$bin" --quiet run six.yaml >/dev/null)

python3 - "$bin" "$work" <<'PY'
import statistics, subprocess, sys, time
bin, work = sys.argv[1], sys.argv[2]
for command in (["run", "six.yaml"], ["status", "six.yaml"]):
    times = []
    for _ in range(10):
        start = time.perf_counter()
        out = subprocess.run([bin, "--quiet", *command], cwd=work, capture_output=True, text=True)
        times.append((time.perf_counter() - start) * 1000)
        assert out.returncode == 0, out.stderr
    if command[0] == "run":
        assert out.stdout.strip() == "0 ran, 6 cached", out.stdout
    print(f"no-op `accord {command[0]}` (6 stages, all cached): median {statistics.median(times):.1f} ms "
          f"(min {min(times):.1f}, max {max(times):.1f}) over 10 runs; goal <= 20 ms")
PY

"$big" "$work/big-store" 1024 >/dev/null
sync
echo "digest verification of a 1 GiB artifact (page cache warm, 2 runs):"
"$bin" --store "$work/big-store" verify
"$bin" --store "$work/big-store" verify
