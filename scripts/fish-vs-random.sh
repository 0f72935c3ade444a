#!/usr/bin/env bash
# Why does a random 0.5% mask beat FISH on all-MiniLM-L6-v2? The experiments of the README's
# "FISH against a random mask: hypotheses tested" section, each a group of real runs. Usage:
#   scripts/fish-vs-random.sh [FINESSE_BIN] [GROUP ...]
# Groups (SST-2 groups use the short budget of scripts/sst2-short.sh: 250 steps of batch 32,
# warm-up 10%, weight decay 0.01, seed 42, full dev set):
# - sgd: FISH vs random 0.5% with SGD (momentum 0.9; the update follows the gradient's size)
#   instead of AdamW (about lr per entry), lr $SGD_LRS (default 1e-2 3e-2 1e-1 3e-1 1).
# - warm-head: the head alone is trained first (400 steps, lr 3e-2, every other parameter
#   frozen: `--method freeze --freeze 'regex:^bert\.'`); then FISH with the Fisher through that
#   warmed head, FISH with the fresh-head mask, and random, all starting from the warmed model.
# - ratios: the random mask (lr 1e-2) and FISH (lr 1e-3, the fresh-head Fisher cut at each
#   ratio) at 0.1% and 2%, beside their 0.5% runs.
# - quotas: FISH 0.5% with the budget apportioned by size per encoder layer (`--scope
#   per-layer`: embeddings, each layer and the pooler get their share, top-k inside each) and
#   per tensor (`--scope per-tensor`), both cut from the fresh-head Fisher, lr 1e-3 and 3e-3.
# - mrpc-seeds: MRPC, 3 epochs, FISH 0.5% (lr 3e-3, Fisher over 1024 examples of its seed),
#   random 0.5% (lr 1e-2) and dense (lr 1e-4) through `finesse sweep`, seeds $SEEDS (default
#   42,43,44), in mrpc-fish/, mrpc-random/, mrpc-dense/.
# The FISH mask of the SST-2 groups is the one of the README's figures run (empirical Fisher
# over 1024 shuffled examples, seed 42, fresh head): $FRESH_FISHER cut by `finesse mask` into
# $FRESH_MASK, both made here when missing.
# GLUE comes from $GLUE_DIR (default ../shared/data/glue); runs go to
# ${FINESSE_RUNS:-runs/fish-vs-random}/GROUP/. Rows: `finesse report DIR [--group-by method,lr]`.
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${1:-cargo run --release --}"
shift || true
groups=("${@:-sgd warm-head ratios mrpc-seeds}")
glue="${GLUE_DIR:-../shared/data/glue}"
out="${FINESSE_RUNS:-runs/fish-vs-random}"
mkdir -p "$out"
short=(--task sst2 --data-dir "$glue" --max-steps 250 --batch-size 32 --warmup-ratio 0.1
  --weight-decay 0.01 --max-seq-len 128 --device flex --log-every 25 --eval-every 250)

run() { # DIR ARGS...
  local dir="$1"; shift
  if [ -f "$dir/metrics.json" ]; then echo "$dir: done already"; return; fi
  rm -rf "$dir"
  echo "== $dir: $*"
  $bin finetune "$@" --output-dir "$dir"
}

fresh_fisher="${FRESH_FISHER:-$out/fisher-fresh-n1024.safetensors}"
fresh_mask="${FRESH_MASK:-$out/mask-fresh-n1024-0.005.safetensors}"
fresh_mask() {
  [ -f "$fresh_fisher" ] || $bin fisher --task sst2 --data-dir "$glue" \
    --samples 1024 --seed 42 --out "$fresh_fisher"
  [ -f "$fresh_mask" ] || $bin mask --fisher "$fresh_fisher" --keep-ratio 0.005 \
    --out "$fresh_mask" > /dev/null
}

for group in ${groups[@]}; do
  case "$group" in
    sgd)
      fresh_mask
      for lr in ${SGD_LRS:-1e-2 3e-2 1e-1 3e-1 1}; do
        run "$out/sgd/fish-$lr" "${short[@]}" --seed 42 --optimizer sgd --momentum 0.9 \
          --lr "$lr" --method fish --mask "$fresh_mask"
        run "$out/sgd/random-$lr" "${short[@]}" --seed 42 --optimizer sgd --momentum 0.9 \
          --lr "$lr" --method random --keep-ratio 0.005
      done
      ;;
    quotas)
      fresh_mask
      for scope in per-layer per-tensor; do
        m="$out/quotas/mask-$scope-0.005.safetensors"
        mkdir -p "$out/quotas"
        [ -f "$m" ] || $bin mask --fisher "$fresh_fisher" --keep-ratio 0.005 --scope "$scope" \
          --out "$m" > /dev/null
        for lr in 1e-3 3e-3; do
          run "$out/quotas/fish-$scope-$lr" "${short[@]}" --seed 42 --lr "$lr" --method fish \
            --mask "$m"
        done
      done
      ;;
    warm-head)
      fresh_mask
      g="$out/warm-head"
      run "$g/head-only" --task sst2 --data-dir "$glue" --max-steps 400 --batch-size 32 \
        --warmup-ratio 0.1 --weight-decay 0.01 --device flex --log-every 25 --eval-every 400 \
        --seed 42 --lr 3e-2 --method freeze --freeze 'regex:^bert\.' --save-model
      warm="$g/head-only/model"
      [ -f "$g/fisher-warm-n1024.safetensors" ] || $bin fisher --model "$warm" --task sst2 \
        --data-dir "$glue" --samples 1024 --seed 42 --out "$g/fisher-warm-n1024.safetensors"
      [ -f "$g/mask-warm-0.005.safetensors" ] || $bin mask \
        --fisher "$g/fisher-warm-n1024.safetensors" --keep-ratio 0.005 \
        --out "$g/mask-warm-0.005.safetensors" > /dev/null
      for lr in 1e-3 3e-3; do
        run "$g/fish-warm-mask-$lr" "${short[@]}" --seed 42 --model "$warm" --lr "$lr" \
          --method fish --mask "$g/mask-warm-0.005.safetensors"
      done
      run "$g/fish-fresh-mask-1e-3" "${short[@]}" --seed 42 --model "$warm" --lr 1e-3 \
        --method fish --mask "$fresh_mask"
      run "$g/random-1e-2" "${short[@]}" --seed 42 --model "$warm" --lr 1e-2 \
        --method random --keep-ratio 0.005
      ;;
    ratios)
      fresh_mask
      # 0.5% from the mask file too, so all three FISH points are one line of `figure sweep`.
      run "$out/ratios/fish-0.005" "${short[@]}" --seed 42 --lr 1e-3 --method fish \
        --mask "$fresh_mask"
      run "$out/ratios/random-0.005" "${short[@]}" --seed 42 --lr 1e-2 --method random \
        --keep-ratio 0.005
      for ratio in 0.001 0.02; do
        run "$out/ratios/random-$ratio" "${short[@]}" --seed 42 --lr 1e-2 --method random \
          --keep-ratio "$ratio"
        [ -f "$out/mask-fresh-$ratio.safetensors" ] || $bin mask --fisher "$fresh_fisher" \
          --keep-ratio "$ratio" --out "$out/mask-fresh-$ratio.safetensors" > /dev/null
        run "$out/ratios/fish-$ratio" "${short[@]}" --seed 42 --lr 1e-3 --method fish \
          --mask "$out/mask-fresh-$ratio.safetensors"
      done
      ;;
    mrpc-seeds)
      # `finesse sweep`: one process per seed, resumable, mean ± std in DIR/report.md.
      mrpc=(--task mrpc --data-dir "$glue" --epochs 3 --batch-size 32 --warmup-ratio 0.1
        --weight-decay 0.01 --max-seq-len 128 --device flex)
      seeds="${SEEDS:-42,43,44}"
      $bin sweep --out "$out/mrpc-fish" --lrs 3e-3 --seeds "$seeds" -- "${mrpc[@]}" \
        --method fish --keep-ratio 0.005 --fisher-samples 1024
      $bin sweep --out "$out/mrpc-random" --lrs 1e-2 --seeds "$seeds" -- "${mrpc[@]}" \
        --method random --keep-ratio 0.005
      $bin sweep --out "$out/mrpc-dense" --lrs 1e-4 --seeds "$seeds" -- "${mrpc[@]}" \
        --method dense
      ;;
    *) echo "unknown group $group" >&2; exit 2 ;;
  esac
done
