#!/usr/bin/env bash
# finesse against the PyTorch/transformers reference way (../shared/reference/bench_reference.py),
# side by side on this machine: the same model folder, data, batch, length and threads; the two
# take turns (finesse, PyTorch, finesse, PyTorch, … ROUNDS times per mode) so drift in the
# machine's speed hits both. Each side's figure is its own in-process median; the table gives
# the ratio finesse / PyTorch (time: below 1 means finesse is faster).
#
#   scripts/bench-vs-pytorch.sh [MODE…]        MODE: dense-step fish-step fisher eval (default all)
# Variables: FIN (the finesse binary, default the release build), PYTHON (with torch and
# transformers; default ~/.cache/finesse/pyref/bin/python, made by
# `python3 -m venv ~/.cache/finesse/pyref && ~/.cache/finesse/pyref/bin/pip install torch transformers`),
# MODEL_DIR (default the cached all-MiniLM-L6-v2), DATA (GLUE folder, default ../shared/data/glue),
# THREADS (2), B (32), L (128), STEPS (5), WARMUP (2), FISHER_N (32), ROUNDS (1),
# OUT (folder for the raw JSON lines, default runs/bench), PAD (1: pad to L as the reference does;
# 0: finesse pads each batch to its longest row, the way it trains).
set -euo pipefail
cd "$(dirname "$0")/.."
fin="${FIN:-$HOME/.cache/finesse/target-release/release/finesse}"
py="${PYTHON:-$HOME/.cache/finesse/pyref/bin/python}"
model="${MODEL_DIR:-${FINESSE_HOME:-$HOME/.cache/finesse}/models/all-MiniLM-L6-v2}"
data="${DATA:-../shared/data/glue}"
ref="${REFERENCE:-../shared/reference/bench_reference.py}"
threads="${THREADS:-2}" b="${B:-32}" l="${L:-128}" steps="${STEPS:-5}" warmup="${WARMUP:-2}"
fisher_n="${FISHER_N:-32}" rounds="${ROUNDS:-1}" pad="${PAD:-1}"
out="${OUT:-runs/bench}"
mkdir -p "$out"
modes=("$@")
[ ${#modes[@]} -eq 0 ] && modes=(dense-step fish-step fisher eval)
[ -x "$fin" ] || { echo "no finesse binary at $fin (build: cargo build --release -p finesse-cli)" >&2; exit 1; }
"$py" -c 'import torch, transformers' 2>/dev/null || { echo "$py lacks torch/transformers" >&2; exit 1; }
padflag=(); [ "$pad" = 1 ] && padflag=(--pad-to-max)
stamp=$(date -u +%Y%m%dT%H%M%SZ)
raw="$out/bench-$stamp.jsonl"
echo "# $(date -u) · $(nproc) cores · $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)" >&2
echo "# threads $threads, batch $b, length $l (pad=$pad), steps $steps after $warmup, fisher $fisher_n samples; raw: $raw" >&2

finesse_cmd() {
  case "$1" in
    fisher) echo "$fin bench --mode fisher --model $model --data-dir $data --max-seq-len $l ${padflag[*]} --steps $fisher_n --warmup 2 --threads $threads" ;;
    eval) echo "$fin bench --mode eval --model $model --data-dir $data --batch-size 64 --max-seq-len $l ${padflag[*]} --no-bucketing --steps 14 --warmup 0 --threads $threads" ;;
    *) echo "$fin bench --mode $1 --model $model --data-dir $data --batch-size $b --max-seq-len $l ${padflag[*]} --no-bucketing --steps $steps --warmup $warmup --threads $threads" ;;
  esac
}
reference_cmd() {
  local common="--model-dir $model --data-dir $data/SST-2 --threads $threads -L $l"
  case "$1" in
    dense-step) echo "$py $ref train-step $common -B $b -S $steps -W $warmup --weight-decay 0.01 --max-grad-norm 1.0" ;;
    fish-step) echo "$py $ref masked-train-step $common -B $b -S $steps -W $warmup --weight-decay 0.01 --max-grad-norm 1.0" ;;
    fisher) echo "$py $ref fisher $common -N $fisher_n" ;;
    eval) echo "$py $ref eval $common" ;;
  esac
}

for mode in "${modes[@]}"; do
  for round in $(seq "$rounds"); do
    for side in finesse pytorch; do
      cmd=$([ $side = finesse ] && finesse_cmd "$mode" || reference_cmd "$mode")
      echo "== $mode · $side · round $round: $cmd" >&2
      line=$(/usr/bin/env $cmd 2>"$out/last-$side.log" | tail -1) || { tail -5 "$out/last-$side.log" >&2; exit 1; }
      python3 -c 'import json,sys; d=json.loads(sys.argv[1]); d["side"]=sys.argv[2]; d["bench_mode"]=sys.argv[3]; d["round"]=int(sys.argv[4]); print(json.dumps(d))' \
        "$line" "$side" "$mode" "$round" >>"$raw"
    done
  done
done

python3 - "$raw" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
def figure(r):
    """(seconds per unit, unit, examples/s, peak RSS MiB, CPU %) of either side's JSON."""
    if r["side"] == "finesse":
        s = r["seconds_per_sample"] if r["mode"] == "fisher" else r["seconds_per_step"]
        return s, r["examples_per_sec"], r.get("peak_rss_mb"), r.get("cpu_percent")
    m = r["bench_mode"]
    if m == "fisher":
        return r["seconds_per_sample"], 1 / r["seconds_per_sample"], r["peak_rss_mib"], None
    if m == "eval":
        return 64 / r["rows_per_s"], r["rows_per_s"], r["peak_rss_mib"], None
    return r["median_s_per_step"], r["samples_per_s"], r["peak_rss_mib"], None
print("| mode | finesse s/unit | PyTorch s/unit | time ratio finesse/PyTorch | finesse ex/s | PyTorch ex/s | finesse peak RSS MiB | PyTorch peak RSS MiB | RSS ratio | finesse CPU % |")
print("|---|---|---|---|---|---|---|---|---|---|")
for mode in dict.fromkeys(r["bench_mode"] for r in rows):
    f = [figure(r) for r in rows if r["bench_mode"] == mode and r["side"] == "finesse"]
    p = [figure(r) for r in rows if r["bench_mode"] == mode and r["side"] == "pytorch"]
    ratios = [a[0] / b[0] for a, b in zip(f, p)]
    med = lambda xs: statistics.median(xs)
    fr, pr = med([x[2] for x in f]), med([x[2] for x in p])
    cpu = [x[3] for x in f if x[3] is not None]
    cpu = f"{med(cpu):.0f}" if cpu else "—"
    print(f"| {mode} | {med([x[0] for x in f]):.4f} | {med([x[0] for x in p]):.4f} | **{med(ratios):.2f}×** "
          f"| {med([x[1] for x in f]):.1f} | {med([x[1] for x in p]):.1f} | {fr:.0f} | {pr:.0f} | {fr / pr:.2f} "
          f"| {cpu} |")
PY
