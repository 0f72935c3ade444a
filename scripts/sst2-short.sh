#!/usr/bin/env bash
# The README's short-budget comparisons on SST-2 (all-MiniLM-L6-v2): every run gets the same
# 250 steps of batch 32 (8,000 examples, 12% of an epoch) and is evaluated on the full dev set
# (872 sentences). Usage:
#   scripts/sst2-short.sh [FINESSE_BIN] [GROUP ...]     GROUP: fish (default), fish-ablations, fish-variants, paper, lr-METHOD
# - fish: dense (lr 1e-4) vs FISH / random mask at 0.5% vs BitFit (lr 1e-3); FISH's mask comes
#   from one empirical Fisher over 1024 shuffled training examples (`finesse fisher` + `finesse mask`).
# - fish-ablations: FISH at 0.1% and 2%, Fisher from 32 and 256 samples, expected Fisher.
# - paper: supermask (initial sparsity 5%), iterative pruning to 10/30/50%, L0-close freezing.
# - lr-dense, lr-fish, lr-random, lr-bitfit: the learning-rate sweep of one method (runs in lr/;
#   the lr of the fish group is not run again). Grid: $LRS if set, else dense 3e-5 1e-4 3e-4 and
#   sparse 3e-4 1e-3 3e-3 1e-2.
# - fish-variants: FISH 0.5% with the pooler set aside (`--exclude pooler`) and per-tensor top-k
#   (runs in lr/fish-nopooler-LR, lr/fish-pertensor-LR; grid $LRS or 1e-3 3e-3).
# - figures: the runs of the README's figures (see the group).
# - seeds-fish, seeds-random, seeds-bitfit, seeds-dense: the method at its tuned lr (FISH 1e-3,
#   random 1e-2, BitFit 1e-2, dense 1e-4) with other seeds ($SEEDS, else 43 44; runs in
#   seeds/METHOD-SEED). FISH computes its Fisher (1024 shuffled examples) and head with that seed.
# GLUE comes from $GLUE_DIR (default ../shared/data/glue); runs go to ${FINESSE_RUNS:-runs/sst2-short}/.
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${1:-cargo run --release --}"
shift || true
groups=("${@:-fish}")
glue="${GLUE_DIR:-../shared/data/glue}"
out="${FINESSE_RUNS:-runs/sst2-short}"
mkdir -p "$out"
common=(--task sst2 --data-dir "$glue" --max-steps 250 --batch-size 32 --warmup-ratio 0.1
  --weight-decay 0.01 --max-seq-len 128 --device flex --log-every "${LOG_EVERY:-25}"
  --eval-every "${EVAL_EVERY:-250}")
seed=42 # the seeds-METHOD groups change it

fisher() { # NAME SAMPLES KIND
  [ -f "$out/fisher-$1.safetensors" ] || $bin fisher --task sst2 --data-dir "$glue" --samples "$2" \
    --kind "$3" --seed 42 --out "$out/fisher-$1.safetensors"
}
mask() { # FISHER RATIO
  [ -f "$out/mask-$1-$2.safetensors" ] || $bin mask --fisher "$out/fisher-$1.safetensors" \
    --keep-ratio "$2" --out "$out/mask-$1-$2.safetensors" > /dev/null
}
run() { # NAME ARGS...
  local name="$1"; shift
  if [ -f "$out/$name/metrics.json" ]; then echo "$name: done already"; return; fi
  rm -rf "${out:?}/$name"
  echo "== $name: $*"
  $bin finetune "${common[@]}" --seed "$seed" "$@" --output-dir "$out/$name"
}

for group in ${groups[@]}; do
  case "$group" in
    fish)
      fisher n1024 1024 empirical
      mask n1024 0.005
      run dense --method dense --lr 1e-4 --save-model
      run fish-0.005 --method fish --lr 1e-3 --mask "$out/mask-n1024-0.005.safetensors"
      run random-0.005 --method random --lr 1e-3 --keep-ratio 0.005
      run bitfit --method bitfit --lr 1e-3
      ;;
    fish-ablations)
      fisher n1024 1024 empirical
      for r in 0.001 0.02; do mask n1024 "$r"; done
      run fish-0.001 --method fish --lr 1e-3 --mask "$out/mask-n1024-0.001.safetensors"
      run fish-0.02 --method fish --lr 1e-3 --mask "$out/mask-n1024-0.02.safetensors"
      fisher n32 32 empirical; mask n32 0.005
      run fish-0.005-n32 --method fish --lr 1e-3 --mask "$out/mask-n32-0.005.safetensors"
      fisher n256 256 empirical; mask n256 0.005
      run fish-0.005-n256 --method fish --lr 1e-3 --mask "$out/mask-n256-0.005.safetensors"
      fisher expected 1024 expected; mask expected 0.005
      run fish-0.005-expected --method fish --lr 1e-3 --mask "$out/mask-expected-0.005.safetensors"
      ;;
    paper)
      run supermask-0.05 --method supermask --supermask-init-sparsity 0.05 --score-lr 0.2 --lr 1e-4 --save-model
      for s in 0.1 0.3 0.5; do
        run "prune-$s" --method prune --final-sparsity "$s" --lr 1e-4 --save-model
      done
      run freeze-key --method freeze --freeze wk --lr 1e-4
      run freeze-deepest2 --method freeze --freeze deepest:2 --lr 1e-4
      run freeze-word-embeddings --method freeze --freeze word-embeddings --lr 1e-4
      ;;
    lr-dense|lr-fish|lr-random|lr-bitfit)
      method="${group#lr-}"
      if [ "$method" = dense ]; then default=1e-4; grid="${LRS:-3e-5 1e-4 3e-4}"
      else default=1e-3; grid="${LRS:-3e-4 1e-3 3e-3 1e-2}"; fi
      args=(--method "$method")
      case "$method" in
        fish) fisher n1024 1024 empirical; mask n1024 0.005
          args+=(--mask "$out/mask-n1024-0.005.safetensors") ;;
        random) args+=(--keep-ratio 0.005) ;;
      esac
      for lr in $grid; do
        [ "$lr" = "$default" ] && continue # that run is the fish group's
        run "lr/$method-$lr" "${args[@]}" --lr "$lr"
      done
      ;;
    fish-variants)
      # all-MiniLM-L6-v2's pooler holds 81% of a global 0.5% FISH mask: set it aside, or take
      # the top-k per tensor. Grid: $LRS if set, else 1e-3 3e-3.
      fisher n1024 1024 empirical
      [ -f "$out/mask-n1024-0.005-nopooler.safetensors" ] || $bin mask --exclude pooler \
        --fisher "$out/fisher-n1024.safetensors" --keep-ratio 0.005 \
        --out "$out/mask-n1024-0.005-nopooler.safetensors" > /dev/null
      [ -f "$out/mask-n1024-0.005-pertensor.safetensors" ] || $bin mask --scope per-tensor \
        --fisher "$out/fisher-n1024.safetensors" --keep-ratio 0.005 \
        --out "$out/mask-n1024-0.005-pertensor.safetensors" > /dev/null
      for lr in ${LRS:-1e-3 3e-3}; do
        for v in nopooler pertensor; do
          run "lr/fish-$v-$lr" --method fish --lr "$lr" --mask "$out/mask-n1024-0.005-$v.safetensors"
        done
      done
      ;;
    seeds-fish|seeds-random|seeds-bitfit|seeds-dense)
      method="${group#seeds-}"
      case "$method" in
        fish) args=(--lr 1e-3 --keep-ratio 0.005 --fisher-samples 1024) ;;
        random) args=(--lr 1e-2 --keep-ratio 0.005) ;;
        bitfit) args=(--lr 1e-2) ;;
        dense) args=(--lr 1e-4) ;;
      esac
      for seed in ${SEEDS:-43 44}; do
        run "seeds/$method-$seed" --method "$method" "${args[@]}"
      done
      seed=42
      ;;
    figures)
      # The README's figures: the fish group's methods at their tuned lr plus a supermask, each
      # with its own Fisher (FISH) and dev evaluations every 50 steps for the curves
      # (LOG_EVERY=10 EVAL_EVERY=50 FINESSE_RUNS=runs/figures).
      run dense --method dense --lr 1e-4
      run fish-0.005 --method fish --lr 1e-3 --keep-ratio 0.005 --fisher-samples 1024
      run random-0.005 --method random --lr 1e-2 --keep-ratio 0.005
      run bitfit --method bitfit --lr 1e-2
      run supermask-0.05 --method supermask --supermask-init-sparsity 0.05 --score-lr 0.2 --lr 1e-4
      ;;
    *) echo "unknown group $group (fish, fish-ablations, fish-variants, paper, lr-METHOD, seeds-METHOD)" >&2; exit 2 ;;
  esac
done
