#!/usr/bin/env python3
"""Formats README table rows from run directories. It only formats: every number comes from
`finesse runs show RUN_DIR --json` (the run directory read through finesse's typed readers) or
from `finesse distance --json`.

    scripts/results-row.py dense RUN_DIR...    # the dense GLUE table
    scripts/results-row.py sparse RUN_DIR...   # the sparse-methods table
    scripts/results-row.py freeze RUN_DIR...   # the Table-3-like L0-close table
    scripts/results-row.py lr RUN_DIR...       # learning-rate sweep: method × lr grid, best in bold
    scripts/results-row.py distance LABEL DISTANCE_JSON   # `finesse distance --vs-random --json`
    scripts/results-row.py sparsity LABEL RUN_DIR          # layer × matrix sparsity of a run's mask

The binary is $FINESSE (default: `finesse` on PATH).
"""
import json
import os
import re
import subprocess
import sys


def show(d):
    """The run through the typed readers: {status, info, metrics, analysis, mask_stats, progress}."""
    out = subprocess.run([os.environ.get("FINESSE", "finesse"), "runs", "show", "--json", d],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def load(d):
    s = show(d)
    return s["metrics"], s["info"]["config"], s


def metric_text(m):
    keys = [k for k in ("accuracy", "f1", "matthews", "pearson", "spearman") if k in m]
    return ", ".join(f"{k} {m[k]:.4f}" for k in keys)


def dense(d):
    m, c, _ = load(d)
    ep = c["epochs"] if c["max_steps"] is None else f'{c["max_steps"]} steps'
    print(f'| {c["task"].upper()} | {metric_text(m)} | {ep} | {c["batch_size"]} | {c["lr"]:g} '
          f'| {c["max_seq_len"]} | {m["steps"]} | {m["duration_secs"] / 60:.1f} min | flex (2 cores) '
          f'| {m["train_examples_per_sec"]:.1f} | {m["train_tokens_per_sec"]:.0f} '
          f'| {m["peak_rss_mib"]:.0f} MiB |')


def sparse(d):
    m, c, s_all = load(d)
    method = c["method"]
    kind = method["kind"]
    keep, fisher = "all", ""
    s = m.get("sparse") or {}
    if kind in ("fish", "random"):
        # From what the mask kept (a --mask file overrides the configured budget).
        keep = f'{100 * s["kept"] / s["total"]:.2f}%'
    if kind == "fish":
        fisher = method["mask_file"] or f'{method["fisher"]["kind"]["kind"]}, N={method["fisher"]["samples"]}'
        fisher = fisher.split("/")[-1]
    if kind == "bitfit":
        keep = "biases"
    if kind == "prune":
        a = s_all["analysis"]["prune_sparsity"]
        keep = f'WQ…WO {100 * sum(a.values()) / len(a):.0f}% pruned'
    if kind == "supermask":
        sm = m["supermask"]
        k = next(iter(sm["sampled_mean"]))
        keep = (f'mask sparsity {100 * sm["sparsity"]:.2f}%; {len(sm["sampled"])} samples: '
                f'{sm["sampled_mean"][k]:.4f} ± {sm["sampled_std"][k]:.4f}')
    if kind == "freeze":
        keep = "frozen: " + ", ".join(method["groups"])
    trained = s.get("kept", "all")
    diff = f'{s["diff_bytes"] / 1e6:.2f} MB' if s else "—"
    print(f'| {kind} | {keep} | {fisher} | {c["lr"]:g} | {metric_text(m)} | {trained} '
          f'| {m.get("optimizer_state_entries", 0):,} | {diff} | {m["duration_secs"] / 60:.1f} min '
          f'| {m["train_examples_per_sec"]:.1f} |')


def freeze(d):
    m, c, s = load(d)
    method = c["method"]
    excluded = ", ".join(method["groups"]) if method["kind"] == "freeze" else "none (dense)"
    trainable, total = s["progress"]["trainable_params"], s["progress"]["total_params"]
    print(f'| {excluded} | {trainable:,} ({100 * trainable / total:.1f}%) | {metric_text(m)} '
          f'| {m["duration_secs"] / 60:.1f} min |')


def variant(method):
    """`fish`, or `fish (nopooler)` for a run on mask file `mask-…-nopooler.safetensors`."""
    mask = method.get("mask_file") or ""
    stem = mask.split("/")[-1].removesuffix(".safetensors")
    tag = re.sub(r"^mask(-n\d+)?(-[0-9.]+)?-?", "", stem)
    tag = {"pt": "pertensor"}.get(tag, tag)  # the per-tensor mask's first file name
    return f'{method["kind"]} ({tag})' if tag else method["kind"]


def lr_grid(runs):
    main = ("accuracy", "f1", "matthews", "pearson")
    cells = {}
    for d in runs:
        m, c, _ = load(d)
        key = next(k for k in main if k in m)
        cells[(variant(c["method"]), c["lr"])] = (key, m[key])
    lrs = sorted({lr for _, lr in cells})
    print("| method | " + " | ".join(f"lr {lr:g}" for lr in lrs) + " |")
    print("|---" * (len(lrs) + 1) + "|")
    for method in dict.fromkeys(kind for kind, _ in cells):
        best = max(v for (k, _), (_, v) in cells.items() if k == method)
        row = []
        for lr in lrs:
            if (method, lr) not in cells:
                row.append("—")
                continue
            key, v = cells[(method, lr)]
            row.append(f"**{v:.4f}**" if v == best else f"{v:.4f}")
        print(f"| {method} ({key}) | " + " | ".join(row) + " |")


def distance(label, path):
    d = json.load(open(path))
    run = d["distance"]
    print(f"| {label}: mean \\|Δ\\| / angular | " + " | ".join(run["matrices"]) + " |")
    print("|---" * (len(run["matrices"]) + 1) + "|")
    for i, layer in enumerate(run["layers"]):
        cells = [f'{x["mean_abs"]:.2e} / {x["angular"]:.4f}' for x in layer]
        print(f"| layer {i} | " + " | ".join(cells) + " |")
    print()
    print("| pair | mean \\|Δ\\| | angular | entries changed | relative L2 |")
    print("|---|---|---|---|---|")
    for name, text in [("distance", f"{label} vs pre-trained"),
                       ("random_uniform", "two random inits, uniform ±1/√H"),
                       ("random_normal", "two random inits, normal σ = 1/√H")]:
        o = d[name]["overall"]
        print(f'| {text} | {o["mean_abs"]:.3e} | {o["angular"]:.4f} | {100 * o["l0_fraction"]:.1f}% '
              f'| {o["relative_l2"]:.4f} |')


def sparsity(label, run):
    st = show(run)["mask_stats"]
    print(f"| {label}: sparsity | " + " | ".join(st["matrices"]) + " | layer |")
    print("|---" * (len(st["matrices"]) + 2) + "|")
    for i, layer in enumerate(st["layers"]):
        dropped = sum(x["total"] - x["kept"] for x in layer) / sum(x["total"] for x in layer)
        cells = [f'{100 * (1 - x["fraction"]):.2f}%' for x in layer]
        print(f"| layer {i} | " + " | ".join(cells) + f" | {100 * dropped:.2f}% |")


if __name__ == "__main__":
    if sys.argv[1] in ("distance", "sparsity"):
        {"distance": distance, "sparsity": sparsity}[sys.argv[1]](sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "lr":
        lr_grid(sys.argv[2:])
    else:
        table = {"dense": dense, "sparse": sparse, "freeze": freeze}[sys.argv[1]]
        for run in sys.argv[2:]:
            table(run)
