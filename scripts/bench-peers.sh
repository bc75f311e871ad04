#!/usr/bin/env bash
# Peer speed figures (issue: "DVC, Snakemake take 0.6-0.9 s to decide that nothing
# changed in a 3-stage pipeline ... we are to be far faster"):
#   the same 3-stage pipeline (a -> b, a -> c) is built for accord, DVC and Snakemake,
#   brought up to date once, then each "decide nothing changed" command is timed over
#   10 wall-clock runs, process start included: `accord run` vs `dvc repro` and
#   `snakemake --cores 1`; `accord status` vs `dvc status` and `snakemake -n`.
#   Prints median/min/max ms per command and the ratio peer median / accord median.
# The peers live in a private virtualenv ($HOME/.cache/accord-bench-venv), installed
# from PyPI on first use. Expects the accord binary already built (see bench-core.sh).
set -euo pipefail
bin="${CARGO_TARGET_DIR:-$HOME/.cache/accord-target}/debug/accord"
venv="$HOME/.cache/accord-bench-venv"
[ -x "$bin" ] || { echo "no accord binary at $bin; build it first" >&2; exit 1; }
if ! [ -x "$venv/bin/dvc" ] || ! [ -x "$venv/bin/snakemake" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet dvc==3.67.1 snakemake==9.27.1
fi
export PATH="$venv/bin:$PATH" DVC_NO_ANALYTICS=1
echo "peers: dvc $(dvc --version), snakemake $(snakemake --version)"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work"/{accord,dvc,snakemake}

cat > "$work/accord/three.yaml" <<'YAML'
version: 1
name: three
stages:
  dilemmas: {kind: prompt_synthesis, with: {count: 32}}
  pairs: {kind: persona_pairing, needs: [dilemmas]}
  pairs_random: {kind: persona_pairing, needs: [dilemmas], with: {strategy: random}}
YAML
(cd "$work/accord" && "$bin" --quiet run three.yaml >/dev/null)

cd "$work/dvc"
echo seed > a.txt
cat > dvc.yaml <<'YAML'
stages:
  a: {cmd: cp a.txt a.out, deps: [a.txt], outs: [a.out]}
  b: {cmd: cp a.out b.out, deps: [a.out], outs: [b.out]}
  c: {cmd: cp a.out c.out, deps: [a.out], outs: [c.out]}
YAML
git init --quiet && dvc init --quiet && dvc repro --quiet

cd "$work/snakemake"
echo seed > a.txt
cat > Snakefile <<'SMK'
rule all:
    input: "b.out", "c.out"
rule a:
    input: "a.txt"
    output: "a.out"
    shell: "cp {input} {output}"
rule b:
    input: "a.out"
    output: "b.out"
    shell: "cp {input} {output}"
rule c:
    input: "a.out"
    output: "c.out"
    shell: "cp {input} {output}"
SMK
snakemake --cores 1 --quiet >/dev/null 2>&1

python3 - "$bin" "$work" <<'PY'
import statistics, subprocess, sys, time
bin, work = sys.argv[1], sys.argv[2]

def bench(name, argv, cwd, ok):
    times = []
    for _ in range(10):
        start = time.perf_counter()
        out = subprocess.run(argv, cwd=f"{work}/{cwd}", capture_output=True, text=True)
        times.append((time.perf_counter() - start) * 1000)
        said = out.stdout + out.stderr
        assert out.returncode == 0 and ok(said), f"{name} did not report a no-op:\n{said}"
    return name, statistics.median(times), min(times), max(times)

dvc_ok = lambda said: "Data and pipelines are up to date." in said
smk_ok = lambda said: "Nothing to be done" in said
groups = [
    (bench("accord run", [bin, "--quiet", "run", "three.yaml"], "accord",
           lambda said: said.strip() == "0 ran, 3 cached"),
     [bench("dvc repro", ["dvc", "repro"], "dvc",
            lambda said: dvc_ok(said) and said.count("didn't change, skipping") == 3),
      bench("snakemake --cores 1", ["snakemake", "--cores", "1"], "snakemake", smk_ok)]),
    (bench("accord status", [bin, "--quiet", "status", "three.yaml"], "accord",
           lambda said: [l.split()[1] for l in said.splitlines()] == ["fresh"] * 3),
     [bench("dvc status", ["dvc", "status"], "dvc", dvc_ok),
      bench("snakemake -n", ["snakemake", "-n"], "snakemake", smk_ok)]),
]
print("no-op runs, 3-stage pipeline, everything up to date, 10 wall-clock runs each:")
for (name, median, lo, hi), peers in groups:
    print(f"  {name:20} median {median:7.1f} ms (min {lo:6.1f}, max {hi:6.1f})")
    for pname, pmedian, plo, phi in peers:
        print(f"  {pname:20} median {pmedian:7.1f} ms (min {plo:6.1f}, max {phi:6.1f})"
              f"  = {pmedian / median:5.1f}x {name}")
PY
