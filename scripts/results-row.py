#!/usr/bin/env python3
"""Prints README table rows from finished run directories.

    scripts/results-row.py dense RUN_DIR...    # the dense GLUE table
    scripts/results-row.py sparse RUN_DIR...   # the sparse-methods table
"""
import json
import sys


def load(d):
    return json.load(open(f"{d}/metrics.json")), json.load(open(f"{d}/run.json"))["config"]


def metric_text(m):
    keys = [k for k in ("accuracy", "f1", "matthews", "pearson", "spearman") if k in m]
    return ", ".join(f"{k} {m[k]:.4f}" for k in keys)


def dense(d):
    m, c = load(d)
    ep = c["epochs"] if c["max_steps"] is None else f'{c["max_steps"]} steps'
    print(f'| {c["task"].upper()} | {metric_text(m)} | {ep} | {c["batch_size"]} | {c["lr"]:g} '
          f'| {c["max_seq_len"]} | {m["steps"]} | {m["duration_secs"] / 60:.1f} min | flex (2 cores) '
          f'| {m["train_examples_per_sec"]:.1f} | {m["train_tokens_per_sec"]:.0f} '
          f'| {m["peak_rss_mib"]:.0f} MiB |')


def sparse(d):
    m, c = load(d)
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
        a = json.load(open(f"{d}/analysis.json"))["prune_sparsity"]
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


if __name__ == "__main__":
    table = {"dense": dense, "sparse": sparse}[sys.argv[1]]
    for run in sys.argv[2:]:
        table(run)
