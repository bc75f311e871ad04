#!/usr/bin/env bash
# Checks the wgpu backend on a real GPU and times it, on a machine with no Rust toolchain
# and no copy of the weights (the lent GPU machine of the development workplace).
#
#   scripts/gpu-check.sh prepare   # here: build, strip and compress the binaries into .devbin/
#   scripts/gpu-check.sh run [numerics]  # there: numerics on the GPU, then (unless told
#                                        # `numerics`) the speed benchmark
#
# `run` expects .devbin/ (and the Vulkan loader's .deb files in .gl/ when the machine lacks
# it) beside the working tree, torch and transformers in python3, and writes its log to
# $OUT when that is set.
set -euo pipefail
cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-$HOME/.cache/accord-target}

case "${1:-}" in
prepare)
    cargo build --quiet --example engine_speed --test llm_reference
    mkdir -p .devbin
    # The test binary this checkout built (the target folder may hold other clones' too).
    test_bin=$(cargo test --quiet --no-run --test llm_reference --message-format=json |
        python3 -c 'import json,sys; print([m["executable"] for m in map(json.loads, sys.stdin) if m.get("executable")][-1])')
    for pair in "engine_speed:$target/debug/examples/engine_speed" "llm_reference:$test_bin"; do
        name=${pair%%:*}
        strip -o ".devbin/$name" "${pair#*:}"
        xz -T2 -6 -f ".devbin/$name"
    done
    pwd -P >.devbin/manifest_dir
    ls -la .devbin
    ;;
run)
    what=${2:-all}
    log=${OUT:-/tmp}/gpu-check.log
    exec > >(tee "$log") 2>&1
    if ! ldconfig -p | grep -q libvulkan && ls .gl/*.deb >/dev/null 2>&1; then
        for f in .gl/*.deb; do dpkg -x "$f" /; done
        ldconfig
    fi
    icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
    [ -f "$icd" ] && export VK_DRIVER_FILES=$icd
    export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp/xdg} && mkdir -p "$XDG_RUNTIME_DIR"
    nvidia-smi -L || true
    for f in .devbin/*.xz; do python3 -c "import lzma,sys; open(sys.argv[2],'wb').write(lzma.open(sys.argv[1]).read())" "$f" "${f%.xz}"; chmod +x "${f%.xz}"; done
    # The test binary finds its fixtures where it was built.
    manifest=$(cat .devbin/manifest_dir)
    if [ ! -e "$manifest" ]; then mkdir -p "$(dirname "$manifest")" && ln -s "$PWD" "$manifest"; fi
    echo "== numerics on the GPU"
    time .devbin/llm_reference --include-ignored --nocapture --test-threads 1 wgpu half_precision || echo "NUMERICS FAILED"
    [ "$what" = numerics ] && exit 0
    echo "== speed"
    time python3 scripts/bench-engine.py --config scripts/smollm2-135m.config.json --engine-bin .devbin/engine_speed \
        --backends auto --dtypes f32,f16 --torch-device cuda --threads 0 || echo "BENCH FAILED"
    ;;
*)
    echo "usage: $0 prepare|run" >&2
    exit 2
    ;;
esac
