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
# Steps (STEPS, default "doctor backends golden kit bench"; any subset, in this order):
#   doctor   `finesse doctor` and the wgpu adapters (the GPU must be adapter 0's pick: discrete first);
#   backends the backend tests (tests/backends.rs: every method on flex, ndarray and wgpu, here wgpu
#            on the GPU); skipped, with a line saying so, when no BACKENDS binary is given;
#   golden   the real model's forward pass on the GPU against HF transformers' golden values:
#            built here, the golden test (`FINESSE_WGPU_GOLDEN=1`); prebuilt, `finesse forward` on
#            GOLDEN_MODEL (the all-MiniLM-L6-v2 folder) with FIXTURES' inputs and head, compared
#            with FIXTURES' hidden states, pooler output and logits (max |Δ|, tolerance 1e-4);
#   kit      the side-by-side kit (KIT, default ../shared/reference/gpu) under DEADLINE: forward
#            parity on random MiniLM- and BERT-base-shaped models against PyTorch CUDA and CPU,
#            finetune runs, PyTorch fp32/bf16 steps, flex vs PyTorch on the CPU cores;
#   models   only the kit's random models, the long SST-2 and (unless TORCH_REF=0) PyTorch's CUDA
#            fp32 reference steps (dense, masked, Fisher): what `bench` needs, in a fraction of the time;
#   bench    `finesse bench` (dense-step, fish-step, fisher, eval) on $DEVICE (default wgpu) with
#            the kit's models, each bounded by BENCH_TIMEOUT (the first training step on a new GPU
#            spends tens of seconds compiling and tuning kernels: FIRST_TIMEOUT for the first);
#   cpu      the dense step on flex with every core, beside PyTorch CPU with as many threads.
# Variables: OUT (default runs/gpu-check), DEADLINE (seconds for the kit, default 360), TOK, SST2,
# KIT, FIN, BACKENDS, GL_DEBS, CUDA=1, TEST_TIMEOUT, BENCH_TIMEOUT (60), FIRST_TIMEOUT (150),
# BENCH_MODELS (default "minilm bertbase"), BENCH_MODES (default "dense-step fish-step fisher
# eval"), GOLDEN_MODEL, FIXTURES (default ../shared/fixtures/all-MiniLM-L6-v2), DEVICE.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
out="${OUT:-runs/gpu-check}"
mkdir -p "$out"
out=$(cd "$out" && pwd)
res="$out/results.jsonl"
kit="${KIT:-../shared/reference/gpu}"
[ -d "$kit" ] && kit=$(cd "$kit" && pwd)
steps=" ${STEPS:-doctor backends golden kit bench} "
device="${DEVICE:-wgpu}"
work="${WORK:-/tmp/gpu-work}"
mkdir -p "$work"
fixtures="${FIXTURES:-../shared/fixtures/all-MiniLM-L6-v2}"
has() { [[ "$steps" == *" $1 "* ]]; }
say() { echo "== [$SECONDS s] $*" >&2; }
# The GPU, not a CPU adapter: no CUBECL_WGPU_DEFAULT_DEVICE, and a missing adapter is a failure.
if [ "$device" = wgpu ]; then
  unset CUBECL_WGPU_DEFAULT_DEVICE VK_ICD_FILENAMES
  export FINESSE_REQUIRE_WGPU=1
fi
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
  say "build ($features)"
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
  if has golden; then
    say "golden forward test on wgpu (the real model, fetched or cached)"
    FINESSE_WGPU_GOLDEN=1 cargo test --locked -p finesse-bert --features "$features" --test golden >&2 \
      && echo '{"check": "golden-forward-wgpu", "passed": true}' | tee -a "$res"
  fi
elif has golden; then
  say "golden forward: the real model on $device against HF transformers' values"
  if [ -z "${GOLDEN_MODEL:-}" ]; then
    echo '{"check": "golden-forward", "skipped": "no GOLDEN_MODEL folder given"}' | tee -a "$res"
  else
    started=$SECONDS
    "$FIN" forward --device "$device" --model "$GOLDEN_MODEL" --inputs "$fixtures/forward.safetensors" \
      --head "$fixtures/classifier.safetensors" --out "$work/golden-$device.safetensors" >&2
    python3 - "$work/golden-$device.safetensors" "$fixtures" "$device" $(( SECONDS - started )) <<'EOF' | tee -a "$res"
import json, sys
from safetensors.numpy import load_file
got, fx, device, secs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
a = load_file(got)
want = {**load_file(f"{fx}/forward.safetensors"), **load_file(f"{fx}/classifier.safetensors")}
diff = {k: float(abs(a[k].astype("float64") - want[k].astype("float64")).max())
        for k in ("last_hidden_state", "pooler_output", "logits")}
print(json.dumps({"check": "golden-forward", "device": device, "max_abs": diff,
                  "passed": max(diff.values()) <= 1e-4, "seconds": secs}))
EOF
  fi
fi

if has doctor; then
  say "doctor"
  "$FIN" doctor >&2
  "$FIN" forward --device wgpu:list >&2 || true
fi

if has backends; then
  if [ -z "${BACKENDS:-}" ]; then
    say "backend tests skipped: no BACKENDS binary given"
    echo '{"check": "backend-tests", "skipped": "no BACKENDS binary given"}' | tee -a "$res"
  else
    say "backend tests (flex, ndarray, wgpu on the GPU)"
    started=$SECONDS
    CARGO_MANIFEST_DIR="$root/crates/finesse-cli" timeout -k 5 "${TEST_TIMEOUT:-180}" "$BACKENDS" --nocapture \
      >"$out/backends.log" 2>&1
    rc=$?
    tail -25 "$out/backends.log" >&2
    echo "{\"check\": \"backend-tests\", \"rc\": $rc, \"seconds\": $(( SECONDS - started ))}" | tee -a "$res"
  fi
fi

if has kit; then
  say "side by side with PyTorch (kit: $kit)"
  FIN="$FIN" TOK="${TOK:?a folder with tokenizer.json}" SST2="${SST2:?a folder with train.tsv and dev.tsv}" \
    DEADLINE="${DEADLINE:-360}" OUT="$out/kit" WORK="$work" bash "$kit/side_by_side.sh" >&2
  cat "$out/kit/results.jsonl" | tee -a "$res"
fi

if has models; then
  say "random models, long SST-2, PyTorch's CUDA reference steps"
  python3 "$kit/make_random_bert.py" "${TOK:?a folder with tokenizer.json}" "${SST2:?}/dev.tsv" "$work" | tee -a "$res"
  python3 "$kit/make_long_sst2.py" "$SST2/train.tsv" "$work/long" >&2
  [ "${TORCH_REF:-1}" = 1 ] && for m in ${BENCH_MODELS:-minilm bertbase}; do
    timeout -k 5 120 python3 "$kit/torch_gpu_reference.py" "$work/$m" "$work/long/SST-2/train.tsv" cuda fp32 10 \
      | tee -a "$res"
  done
fi

# `finesse bench` on the GPU, on the kit's random models and long SST-2 (every example >= 128
# tokens, so padded = real): medians of in-process timings, each bounded.
if has bench; then
  first=1
  for m in ${BENCH_MODELS:-minilm bertbase}; do
    for mode in ${BENCH_MODES:-dense-step fish-step fisher eval}; do
      say "bench $mode $m on $device"
      extra=(--batch-size 32 --pad-to-max --steps 10 --warmup 3)
      [ "$mode" = fisher ] && extra=(--steps 32 --warmup 4)
      [ "$mode" = fish-step ] && extra+=(--fisher-samples 64)
      limit="${BENCH_TIMEOUT:-60}"
      [ "$first" = 1 ] && limit="${FIRST_TIMEOUT:-150}"
      first=0
      timeout -k 5 "$limit" "$FIN" bench --device "$device" --mode "$mode" --model "$work/$m" \
        --data-dir "$work/long" --max-seq-len 128 --no-bucketing "${extra[@]}" 2>>"$out/bench.log" \
        | tail -1 | python3 -c 'import json,sys; d=json.loads(sys.stdin.read()); d["model_shape"]=sys.argv[1]; print(json.dumps(d))' "$m" \
        | tee -a "$res" || echo "{\"bench\": \"$mode\", \"model_shape\": \"$m\", \"failed\": true}" | tee -a "$res"
    done
  done
fi

if has cpu; then
  cores=$(nproc)
  say "flex dense step on $cores cores, beside PyTorch CPU"
  timeout -k 5 "${BENCH_TIMEOUT:-60}" "$FIN" bench --device flex --threads "$cores" --mode dense-step \
    --model "$work/minilm" --data-dir "$work/long" --max-seq-len 128 --batch-size 32 --pad-to-max \
    --no-bucketing --steps 5 --warmup 2 2>>"$out/bench.log" | tail -1 | tee -a "$res"
  timeout -k 5 90 python3 "$kit/torch_gpu_reference.py" "$work/minilm" \
    "$work/long/SST-2/train.tsv" cpu fp32 4 | tee -a "$res"
fi
say "done"
