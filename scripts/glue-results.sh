#!/usr/bin/env bash
# Reproduces the README's dense fine-tuning table: all-MiniLM-L6-v2 on SST-2, MRPC, STS-B and
# CoLA (full training sets, dev metrics). Usage:
#   scripts/glue-results.sh [FINESSE_BIN] [TASK ...]
# GLUE comes from $GLUE_DIR (default ../shared/data/glue); runs go to ${FINESSE_RUNS:-runs/results}/<task>.
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${1:-cargo run --release --}"
shift || true
tasks=("${@:-mrpc stsb cola sst2}")
glue="${GLUE_DIR:-../shared/data/glue}"
common=(--batch-size 32 --lr 1e-4 --warmup-ratio 0.1 --weight-decay 0.01 --max-seq-len 128 --seed 42 --device flex)
for task in ${tasks[@]}; do
  case "$task" in
    sst2) epochs=1 ;;
    *) epochs=3 ;;
  esac
  out="${FINESSE_RUNS:-runs/results}/$task"
  if [ -f "$out/metrics.json" ]; then echo "$task: done already ($out)"; continue; fi
  rm -rf "$out"
  echo "== $task: $epochs epochs"
  $bin finetune --task "$task" --data-dir "$glue" --epochs "$epochs" "${common[@]}" \
    --log-every 20 --save-model --output-dir "$out"
done
