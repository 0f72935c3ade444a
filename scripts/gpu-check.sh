#!/usr/bin/env bash
# The GPU check of issue 20, for a machine with an NVIDIA GPU (not run in CI). Logs go to stderr;
# figures are JSON lines in $OUT/results.jsonl (and on stdout).
#
# Two ways to get the binaries:
#   - built here (the default): `cargo build --release` with wgpu (and cuda when CUDA=1: that
#     build downloads an LLVM bundle, so it needs the network) and the test binaries;
#   - prebuilt (FIN=path/to/finesse built with `--features finesse-cli/wgpu`, BACKENDS=path/to/
#     the `backends` test binary from `cargo test-all --no-run`), as on a lent GPU machine where a
#     Burn build would take minutes of GPU time. `scripts/gpu-pack.sh` packs both and the kit.
# Steps:
#   1. `finesse doctor` and the wgpu adapters (the GPU must be adapter 0's pick: discrete first);
#   2. the backend tests (tests/backends.rs: every method on flex, ndarray and wgpu, here wgpu on
#      the GPU), and with a real model at hand the golden forward test on wgpu;
#   3. the side-by-side kit (KIT, default ../shared/reference/gpu): forward parity of finesse on
#      wgpu against PyTorch CUDA and CPU on random MiniLM- and BERT-base-shaped models, dense and
#      0.5% FISH step times against PyTorch fp32/bf16, Fisher per sample, flex vs PyTorch on the
#      CPU cores. It needs TOK (a folder with tokenizer.json) and SST2 (train.tsv, dev.tsv);
#   4. `finesse bench` (dense-step, fish-step, fisher, eval) on wgpu with the kit's models.
# Variables: OUT (default runs/gpu-check), DEADLINE (seconds for the kit, default 360), TOK, SST2,
# KIT, FIN, BACKENDS, GL_DEBS, CUDA=1, TEST_TIMEOUT, BENCH_TIMEOUT (60: the first training step on
# a new GPU spends tens of seconds compiling and tuning kernels).
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
out="${OUT:-runs/gpu-check}"
mkdir -p "$out"
out=$(cd "$out" && pwd)
res="$out/results.jsonl"
kit="${KIT:-../shared/reference/gpu}"
# The GPU, not a CPU adapter: no CUBECL_WGPU_DEFAULT_DEVICE, and a missing adapter is a failure.
unset CUBECL_WGPU_DEFAULT_DEVICE VK_ICD_FILENAMES
export FINESSE_REQUIRE_WGPU=1
# The NVIDIA Vulkan driver (libGLX_nvidia) needs the Vulkan loader and glvnd's libraries; a
# machine without them (a bare CUDA image) finds no adapter. Where they are missing, bring
# Debian's debs in GL_DEBS (libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2,
# `apt-get download …`); they are unpacked to / (root only).
if [ -n "${GL_DEBS:-}" ]; then
  for f in "$GL_DEBS"/*.deb; do dpkg -x "$f" /; done
  ldconfig
fi
for icd in /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json /usr/share/vulkan/icd.d/nvidia_icd.json \
  /etc/vulkan/icd.d/nvidia_icd.json; do
  [ -f "$icd" ] && { export VK_DRIVER_FILES="${VK_DRIVER_FILES:-$icd}"; break; }
done

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader >&2 || true
if [ -z "${FIN:-}" ]; then
  export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/finesse/target}"
  features="finesse-cli/ndarray,finesse-cli/wgpu"
  [ "${CUDA:-0}" = 1 ] && features="$features,finesse-cli/cuda"
  echo "== build ($features)" >&2
  cargo build --locked --release -p finesse-cli --features "$features" >&2 || exit 1
  FIN="$CARGO_TARGET_DIR/release/finesse"
  if [ -z "${BACKENDS:-}" ]; then
    BACKENDS=$(cargo test --locked --workspace --features "$features" --no-run --message-format json 2>/dev/null \
      | python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "backends" and m.get("executable"):
        print(m["executable"])')
  fi
  # The real model's golden forward pass on wgpu (the model is fetched or cached).
  FINESSE_WGPU_GOLDEN=1 cargo test --locked -p finesse-bert --features "$features" --test golden >&2 \
    && echo '{"check": "golden-forward-wgpu", "passed": true}' | tee -a "$res"
fi

echo "== doctor" >&2
"$FIN" doctor >&2
"$FIN" forward --device wgpu:list >&2 || true

echo "== backend tests (flex, ndarray, wgpu on the GPU)" >&2
started=$(date +%s)
CARGO_MANIFEST_DIR="$root/crates/finesse-cli" timeout -k 5 "${TEST_TIMEOUT:-180}" "$BACKENDS" --nocapture \
  >"$out/backends.log" 2>&1
rc=$?
tail -25 "$out/backends.log" >&2
echo "{\"check\": \"backend-tests\", \"rc\": $rc, \"seconds\": $(( $(date +%s) - started ))}" | tee -a "$res"

echo "== side by side with PyTorch (kit: $kit)" >&2
work="${WORK:-/tmp/gpu-work}"
FIN="$FIN" TOK="${TOK:?a folder with tokenizer.json}" SST2="${SST2:?a folder with train.tsv and dev.tsv}" \
  DEADLINE="${DEADLINE:-360}" OUT="$out/kit" WORK="$work" bash "$kit/side_by_side.sh" >&2
cat "$out/kit/results.jsonl" | tee -a "$res"

# 4. `finesse bench` on the GPU, on the kit's random models and long SST-2 (every example
#    >= 128 tokens, so padded = real): medians of in-process timings, each bounded.
echo "== finesse bench on wgpu" >&2
for m in minilm bertbase; do
  for mode in dense-step fish-step fisher eval; do
    extra=(--batch-size 32 --pad-to-max --steps 10 --warmup 3)
    [ "$mode" = fisher ] && extra=(--steps 32 --warmup 4)
    [ "$mode" = fish-step ] && extra+=(--fisher-samples 64)
    timeout -k 5 "${BENCH_TIMEOUT:-60}" "$FIN" bench --device wgpu --mode "$mode" --model "$work/$m" \
      --data-dir "$work/long" --max-seq-len 128 --no-bucketing "${extra[@]}" 2>>"$out/bench.log" \
      | tail -1 | python3 -c 'import json,sys; d=json.loads(sys.stdin.read()); d["model"]=sys.argv[1]; print(json.dumps(d))' "$m" \
      | tee -a "$res" || echo "{\"bench\": \"$mode\", \"model\": \"$m\", \"failed\": true}" | tee -a "$res"
  done
done
