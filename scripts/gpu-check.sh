#!/usr/bin/env bash
# The GPU check of issue 20, for a machine with an NVIDIA GPU (not run in CI; nothing here has
# run on a GPU yet). It prints one JSON line per figure on stdout; logs go to stderr.
#   1. builds the test binaries with wgpu (and with cuda too when CUDA=1: that build downloads
#      an LLVM bundle, so it needs the network);
#   2. runs the real-model golden forward test on wgpu (FINESSE_WGPU_GOLDEN=1) and the backend
#      tests (tests/backends.rs: every method on flex, ndarray and wgpu) with wgpu on the GPU;
#   3. times a dense and a 0.5% FISH run of STEPS steps (batch 32, length 128) on wgpu and prints
#      the seconds per step of the steps after the first logged one, from the run's events.
# Variables: MODEL (default all-MiniLM-L6-v2: cached or fetched), GLUE_DIR (default the shared
# GLUE folder), STEPS (default 30), OUT (default runs/gpu-check), CUDA=1.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/finesse/target}"
model="${MODEL:-all-MiniLM-L6-v2}"
glue="${GLUE_DIR:-../shared/data/glue}"
steps="${STEPS:-30}"
out="${OUT:-runs/gpu-check}"
features="finesse-cli/ndarray,finesse-cli/wgpu"
[ "${CUDA:-0}" = 1 ] && features="$features,finesse-cli/cuda"
# The GPU, not a CPU adapter: no CUBECL_WGPU_DEFAULT_DEVICE, and a missing adapter is a failure.
unset CUBECL_WGPU_DEFAULT_DEVICE VK_ICD_FILENAMES
export FINESSE_REQUIRE_WGPU=1 FINESSE_WGPU_GOLDEN=1

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader >&2 || true
echo "== build ($features)" >&2
cargo build --locked --release -p finesse-cli --features "$features" >&2
cargo test --locked --workspace --features "$features" --no-run >&2
bin="$CARGO_TARGET_DIR/release/finesse"
"$bin" doctor >&2

echo "== golden forward on wgpu, backend tests" >&2
started=$(date +%s)
cargo test --locked -p finesse-bert --features "$features" --test golden >&2
cargo test --locked -p finesse-cli --features "$features" --test backends -- --nocapture >&2
echo "{\"check\": \"tests\", \"passed\": true, \"seconds\": $(( $(date +%s) - started ))}"

mkdir -p "$out"
for method in dense fish; do
  run="$out/$method-wgpu"
  rm -rf "$run"
  args=(--method "$method")
  [ "$method" = fish ] && args+=(--keep-ratio 0.005 --fisher-samples 256)
  "$bin" finetune --model "$model" --task sst2 --data-dir "$glue" --device wgpu \
    --max-steps "$steps" --batch-size 32 --max-seq-len 128 --log-every 1 --eval-every 100000 \
    --max-eval-examples 64 --lr 1e-4 "${args[@]}" --output-dir "$run" >&2
  python3 - "$run" "$method" <<'PY'
import json, sys
run, method = sys.argv[1], sys.argv[2]
steps = [json.loads(l) for l in open(f"{run}/events.jsonl") if '"type":"step"' in l.replace(" ", "")]
times = [s["time"] for s in steps]
per_step = (times[-1] - times[1]) / max(len(times) - 2, 1) if len(times) > 2 else None
print(json.dumps({"check": "steps", "method": method, "device": "wgpu", "steps": len(steps),
                  "seconds_per_step": per_step,
                  "examples_per_sec": steps[-1].get("examples_per_sec") if steps else None}))
PY
done
