#!/usr/bin/env bash
# Reproduces the README's per-method tables on full epochs (all-MiniLM-L6-v2, dev metrics). Usage:
#   scripts/method-results.sh [FINESSE_BIN] [ROW ...]
# A ROW is TASK/METHOD[-ARGS][@LR] (@LR overrides the weights lr below; the run dir gets -lrLR):
#   TASK/dense                            dense, lr 1e-4, model saved (for `finesse distance`)
#   TASK/fish[-RATIO][-nSAMPLES][-KIND]   e.g. mrpc/fish-0.005, sst2/fish-0.005-n256-expected
#   TASK/random[-RATIO], TASK/bitfit      the FISH baselines
#   TASK/freeze-SPEC[+SPEC...]            L0-close fine-tuning, e.g. mrpc/freeze-wk+deepest:2
#   TASK/supermask-INITIAL_SPARSITY       e.g. mrpc/supermask-0.05 (score lr 0.2)
#   TASK/prune-FINAL_SPARSITY             e.g. mrpc/prune-0.3
# Same recipe as scripts/glue-results.sh (batch 32, warm-up 10%, weight decay 0.01, length 128,
# seed 42; SST-2 1 epoch, others 3). Weights lr 1e-4 (dense, freeze, prune, supermask head),
# sparse masks (FISH, random, BitFit) lr ${SPARSE_LR:-1e-3}.
# GLUE comes from $GLUE_DIR (default ../shared/data/glue); runs go to
# ${FINESSE_RUNS:-runs/methods}/TASK-METHOD-ARGS (':' and '+' kept as they are).
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${1:-cargo run --release --}"
shift || true
rows=("${@:-mrpc/fish-0.005 mrpc/random-0.005 mrpc/bitfit}")
glue="${GLUE_DIR:-../shared/data/glue}"
common=(--batch-size 32 --warmup-ratio 0.1 --weight-decay 0.01 --max-seq-len 128 --seed 42 --device flex)
for row in ${rows[@]}; do
  lr=""
  case "$row" in *@*) lr="${row#*@}"; row="${row%@*}" ;; esac
  task="${row%%/*}"
  spec="${row#*/}"
  method="${spec%%-*}"
  rest=""
  [ "$spec" != "$method" ] && rest="${spec#*-}"
  args=(--method "$method")
  case "$method" in
    dense) args+=(--lr 1e-4 --save-model) ;;
    fish|random|bitfit)
      args+=(--lr "${SPARSE_LR:-1e-3}")
      for part in ${rest//-/ }; do
        case "$part" in
          n*) args+=(--fisher-samples "${part#n}") ;;
          expected|sampled|empirical) args+=(--fisher-kind "$part") ;;
          *) args+=(--keep-ratio "$part") ;;
        esac
      done ;;
    freeze)
      args+=(--lr 1e-4)
      for part in ${rest//+/ }; do args+=(--freeze "$part"); done ;;
    supermask) args+=(--lr 1e-4 --score-lr 0.2 --supermask-init-sparsity "$rest" --save-model) ;;
    prune) args+=(--lr 1e-4 --final-sparsity "$rest" --save-model) ;;
    *) echo "unknown method in row $row" >&2; exit 2 ;;
  esac
  case "$task" in
    sst2) epochs=1 ;;
    *) epochs=3 ;;
  esac
  out="${FINESSE_RUNS:-runs/methods}/${row//\//-}"
  if [ -n "$lr" ]; then # replace the method's --lr
    for i in "${!args[@]}"; do [ "${args[$i]}" = --lr ] && args[i+1]="$lr"; done
    out="$out-lr$lr"
  fi
  if [ -f "$out/metrics.json" ]; then echo "$row: done already ($out)"; continue; fi
  rm -rf "$out"
  echo "== $row: $epochs epochs, ${args[*]}"
  $bin finetune --task "$task" --data-dir "$glue" --epochs "$epochs" "${common[@]}" "${args[@]}" \
    --log-every 20 --output-dir "$out"
done
