#!/usr/bin/env bash
# Core speed figures (issue: pipeline core):
#   - a no-op `accord run` and `accord status` on a 6-stage pipeline with everything
#     cached: median of 10 wall-clock runs, process start included (goal: <= 20 ms each);
#   - the same on wide pipelines of 100, 400 and 800 stages (`prompt_synthesis` ->
#     `persona_pairing` pairs) and a 200-variant ablation of 2 stages: cost grows with the
#     number of stage instances, not its square (goal: <= 100 ms for 800 stages);
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

# Wide pipelines and a many-variant ablation, all cached before timing.
python3 - "$work" <<'PY'
import sys
work = sys.argv[1]
for n in (100, 400, 800):
    lines = ["version: 1", f"name: wide{n}", "seed: 1", "stages:"]
    for i in range(n // 2):
        lines.append(f"  d{i}: {{kind: prompt_synthesis, with: {{count: 2}}}}")
        lines.append(f"  p{i}: {{kind: persona_pairing, needs: [d{i}]}}")
    open(f"{work}/wide{n}.yaml", "w").write("\n".join(lines) + "\n")
temperatures = ", ".join(f"{0.5 + i / 100:.2f}" for i in range(200))
open(f"{work}/ablation200.yaml", "w").write(
    "version: 1\nname: ablation200\nseed: 1\nstages:\n"
    "  d: {kind: prompt_synthesis, with: {count: 2}}\n"
    "  p: {kind: persona_pairing, needs: [d]}\n"
    f"ablations:\n  t: {{stages.p.with.temperature: [{temperatures}]}}\n"
)
PY
for spec in wide100 wide400 wide800 ablation200; do
  (cd "$work" && "$bin" --quiet run "$spec.yaml" >/dev/null)
done

python3 - "$bin" "$work" <<'PY'
import statistics, subprocess, sys, time
bin, work = sys.argv[1], sys.argv[2]
def median_ms(command):
    times = []
    for _ in range(10):
        start = time.perf_counter()
        out = subprocess.run([bin, "--quiet", *command], cwd=work, capture_output=True, text=True)
        times.append((time.perf_counter() - start) * 1000)
        assert out.returncode == 0, out.stderr
    return out, times

for command in (["run", "six.yaml"], ["status", "six.yaml"]):
    out, times = median_ms(command)
    if command[0] == "run":
        assert out.stdout.strip() == "0 ran, 6 cached", out.stdout
    print(f"no-op `accord {command[0]}` (6 stages, all cached): median {statistics.median(times):.1f} ms "
          f"(min {min(times):.1f}, max {max(times):.1f}) over 10 runs; goal <= 20 ms")
for spec, instances in (("wide100", 100), ("wide400", 400), ("wide800", 800), ("ablation200", 400)):
    for command in ("run", "status"):
        out, times = median_ms([command, f"{spec}.yaml"])
        what = "200 variants of 2 stages" if spec == "ablation200" else f"{instances} stages"
        goal = "; goal <= 100 ms" if instances == 800 else ""
        print(f"no-op `accord {command}` ({what}, all cached): median {statistics.median(times):.1f} ms, "
              f"{statistics.median(times) / instances * 1000:.0f} µs per stage instance{goal}")
PY

"$big" "$work/big-store" 1024 >/dev/null
sync
echo "digest verification of a 1 GiB artifact (page cache warm, 2 runs):"
"$bin" --store "$work/big-store" verify
"$bin" --store "$work/big-store" verify
