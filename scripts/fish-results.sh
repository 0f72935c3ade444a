#!/usr/bin/env bash
# Reproduces the README's sparse fine-tuning table (all-MiniLM-L6-v2, dev metrics). Usage:
#   scripts/fish-results.sh [FINESSE_BIN] [ROW ...]
# A ROW is TASK/METHOD[-RATIO][-nSAMPLES][-expected], e.g. mrpc/fish-0.005, mrpc/random-0.005,
# mrpc/bitfit, sst2/fish-0.001, sst2/fish-0.005-n256, sst2/fish-0.005-expected.
# Same recipe as scripts/glue-results.sh (batch 32, warm-up 10%, weight decay 0.01, length 128,
# seed 42; SST-2 1 epoch, others 3) with the sparse methods' lr 1e-3 (dense: 1e-4).
# GLUE comes from $GLUE_DIR (default ../shared/data/glue); runs go to ${FINESSE_RUNS:-runs/fish}/<row>.
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${1:-cargo run --release --}"
shift || true
rows=("${@:-mrpc/fish-0.005 mrpc/random-0.005 mrpc/bitfit}")
glue="${GLUE_DIR:-../shared/data/glue}"
common=(--batch-size 32 --warmup-ratio 0.1 --weight-decay 0.01 --max-seq-len 128 --seed 42 --device flex)
for row in ${rows[@]}; do
  task="${row%%/*}"
  spec="${row#*/}"
  IFS=- read -r method rest <<<"$spec"
  args=(--method "$method" --lr "${SPARSE_LR:-1e-3}")
  for part in ${rest//-/ }; do
    case "$part" in
      n*) args+=(--fisher-samples "${part#n}") ;;
      expected|sampled|empirical) args+=(--fisher-kind "$part") ;;
      *) args+=(--keep-ratio "$part") ;;
    esac
  done
  case "$task" in
    sst2) epochs=1 ;;
    *) epochs=3 ;;
  esac
  out="${FINESSE_RUNS:-runs/fish}/${row//\//-}"
  if [ -f "$out/metrics.json" ]; then echo "$row: done already ($out)"; continue; fi
  rm -rf "$out"
  echo "== $row: $epochs epochs, ${args[*]}"
  $bin finetune --task "$task" --data-dir "$glue" --epochs "$epochs" "${common[@]}" "${args[@]}" \
    --log-every 20 --output-dir "$out"
done
