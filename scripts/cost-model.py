#!/usr/bin/env python3
"""The cost model of one data-parallel step (DISTRIBUTED.md): compute vs a ring all-reduce of
k x 4 bytes (FISH, 0.5%) or 4|theta| bytes (dense), for MiniLM-L6, BERT-base and BERT-large on
8 to 256 ranks over 10 and 100 Gb/s. Prints the Markdown tables DISTRIBUTED.md shows.

Ring all-reduce of S bytes over W ranks, per-message latency alpha, link bandwidth B:
    T = 2 (W - 1) alpha + 2 (W - 1) / W * S / B

Compute per rank and step: 6 x (encoder parameters) x tokens + 12 x L x H x s^2 x sequences
(attention scores and their backward), for a local batch of 32 sequences of 128 tokens, at
    CPU: the rate finesse reaches on this machine's 2 cores (dense step, BENCHMARKS.md),
    GPU: 100 TFLOP/s effective (an assumption: a current data-centre GPU in mixed precision).
A FISH step computes no weight gradients outside its slices: its compute is 0.73x a dense
step's (measured here, BENCHMARKS.md: 2.004 s vs 2.741 s).

Usage: scripts/cost-model.py [--cpu-flops F] [--alpha-10 S] [--alpha-100 S]
"""

import argparse

MODELS = {
    # name: (all parameters, encoder parameters outside the embeddings, layers, hidden)
    "MiniLM-L6 (22.7 M)": (22_713_986, 10_794_624, 6, 384),
    "BERT-base (110 M)": (109_483_778, 85_645_056, 12, 768),
    "BERT-large (335 M)": (335_143_938, 303_358_976, 24, 1024),
}
KEEP = 0.005
SEQS, SEQ_LEN = 32, 128
FISH_COMPUTE = 2.004 / 2.741
# Dense step on this machine: 2.741 s for MiniLM-L6, batch 32 padded to 128 (BENCHMARKS.md).
MEASURED_DENSE_STEP = 2.741


def flops(model):
    _, encoder, layers, hidden = MODELS[model]
    return 6 * encoder * SEQS * SEQ_LEN + 12 * layers * hidden * SEQ_LEN**2 * SEQS


def ring(bytes_, ranks, alpha, gbit):
    return 2 * (ranks - 1) * alpha + 2 * (ranks - 1) / ranks * bytes_ * 8 / (gbit * 1e9)


def fmt(secs):
    if secs >= 1:
        return f"{secs:.2f} s"
    if secs >= 1e-3:
        return f"{secs * 1e3:.1f} ms"
    return f"{secs * 1e6:.0f} µs"


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cpu-flops", type=float, default=flops("MiniLM-L6 (22.7 M)") / MEASURED_DENSE_STEP)
    p.add_argument("--gpu-flops", type=float, default=100e12)
    p.add_argument("--alpha-10", type=float, default=30e-6, help="latency per message at 10 Gb/s (TCP)")
    p.add_argument("--alpha-100", type=float, default=5e-6, help="latency per message at 100 Gb/s (RDMA)")
    a = p.parse_args()
    print(f"CPU rank: {a.cpu_flops / 1e9:.0f} GFLOP/s (this machine, 2 cores); GPU rank: {a.gpu_flops / 1e12:.0f} TFLOP/s (assumed)\n")
    print("| model | link | ranks | dense all-reduce | FISH all-reduce | step compute CPU / GPU (dense) | all-reduce share of a GPU step: dense → FISH |")
    print("|---|---|---|---|---|---|---|")
    for model, (total, *_rest) in MODELS.items():
        k = round(KEEP * total)
        c_cpu, c_gpu = flops(model) / a.cpu_flops, flops(model) / a.gpu_flops
        for gbit, alpha in ((10, a.alpha_10), (100, a.alpha_100)):
            for ranks in (8, 32, 256):
                dense = ring(4 * total, ranks, alpha, gbit)
                fish = ring(4 * k, ranks, alpha, gbit)
                share_dense = dense / (dense + c_gpu)
                share_fish = fish / (fish + FISH_COMPUTE * c_gpu)
                print(
                    f"| {model} | {gbit} Gb/s | {ranks} | {fmt(dense)} | {fmt(fish)} | "
                    f"{fmt(c_cpu)} / {fmt(c_gpu)} | {100 * share_dense:.0f}% → {100 * share_fish:.0f}% |"
                )


if __name__ == "__main__":
    main()
