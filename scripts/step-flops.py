#!/usr/bin/env python3
"""Matrix-product work of one training step of a BERT encoder, dense and under a fixed sparse
mask, and the fastest a masked step can be against the dense one when only products count.

    scripts/step-flops.py [--wgrad-share S] [--batch B] [--seq L] [--no-embeddings]
                          [--full-last-layer] [--dense-secs T --fish-secs T]

A step's products, per encoder layer, for N = B·L rows, hidden h, feed-forward f, H heads of
d = h/H, multiply-adds counted as 2 FLOP:
    forward        linear 2N(4h² + 2hf), attention QKᵀ and PV 2·2·B·H·L²·d
    input grads    the same linear work (∂x = ∂y·Wᵀ), attention's four products (∂Q, ∂K, ∂P, ∂V)
    weight grads   the same linear work (∂W = xᵀ·∂y)
A masked step computes the forward and every input gradient down to the lowest trained
parameter (exact gradients at the kept entries need them) and S of the dense weight-gradient
work (S: the share finesse logs as "the encoder's weight-gradient products: X% of dense" when
slices are planned). With the embeddings trained (a global FISH mask keeps some of their
entries), backpropagation reaches the first layer's input; `--no-embeddings` drops that
layer's input-gradient products. The pooler and classifier (B rows) are left out: < 0.1%.
The last layer runs for the [CLS] position only, as finesse's classification forward does
(`BertModel::pooled`): K and V on all N rows, the rest on B rows, one query per head;
`--full-last-layer` counts it as a full layer (the reference's way).

With --dense-secs and --fish-secs (measured step times) it also prints the rate the products
would run at if they were the whole step, and the time left for everything else.
"""
import argparse


def layer_flops(b, l, h, f, heads):
    n = b * l
    d = h // heads
    linear = 2 * n * (4 * h * h + 2 * h * f)
    attn = 2 * b * heads * l * l * d  # one [L, d]·[d, L] product per head, 2 FLOP per MAC
    return {
        "forward": linear + 2 * attn,
        "input": linear + 4 * attn,
        "weight": linear,
        "first_input": 2 * n * 3 * h * h,  # ∂x of the first layer's Q, K, V (its input)
    }


def last_layer_flops(b, l, h, f, heads):
    """The [CLS]-only last layer: K and V on every row, Q, WD and the feed-forward block on
    one row per sequence, one query per head."""
    n = b * l
    d = h // heads
    linear = 2 * n * 2 * h * h + 2 * b * (2 * h * h + 2 * h * f)
    attn = 2 * b * heads * l * d  # one [1, d]·[d, L] product per head
    return {
        "forward": linear + 2 * attn,
        "input": linear + 4 * attn,
        "weight": linear,
        "first_input": 2 * n * 2 * h * h,  # ∂x of K and V only: Q runs on B rows
    }


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--layers", type=int, default=6)
    p.add_argument("--hidden", type=int, default=384)
    p.add_argument("--ffn", type=int, default=1536)
    p.add_argument("--heads", type=int, default=12)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--wgrad-share", type=float, default=0.0)
    p.add_argument("--no-embeddings", action="store_true")
    p.add_argument("--full-last-layer", action="store_true")
    p.add_argument("--dense-secs", type=float)
    p.add_argument("--fish-secs", type=float)
    a = p.parse_args()
    per = layer_flops(a.batch, a.seq, a.hidden, a.ffn, a.heads)
    last = per if a.full_last_layer else last_layer_flops(a.batch, a.seq, a.hidden, a.ffn, a.heads)
    fwd = (a.layers - 1) * per["forward"] + last["forward"]
    inp = (a.layers - 1) * per["input"] + last["input"]
    wgt = (a.layers - 1) * per["weight"] + last["weight"]
    dense = fwd + inp + wgt
    first = per if a.layers > 1 else last  # with one layer, the first is the last
    masked_inp = inp - (first["first_input"] if a.no_embeddings else 0)
    masked = fwd + masked_inp + a.wgrad_share * wgt
    g = 1e9
    print(f"B {a.batch}, L {a.seq}, {a.layers} layers, hidden {a.hidden}, ffn {a.ffn}, {a.heads} heads, "
          f"last layer {'full' if a.full_last_layer else '[CLS] only'}")
    print(f"forward {fwd / g:.1f} GFLOP, input gradients {inp / g:.1f}, weight gradients {wgt / g:.1f}")
    print(f"dense step {dense / g:.1f} GFLOP; masked step {masked / g:.1f} GFLOP "
          f"(weight-gradient share {a.wgrad_share:.3f}{', no embedding gradient' if a.no_embeddings else ''})")
    print(f"dense / masked, products only (no other work): {dense / masked:.3f}x")
    if a.dense_secs and a.fish_secs:
        rate = dense / a.dense_secs
        rest_d = a.dense_secs - dense / rate
        print(f"measured: dense {a.dense_secs:.3f} s, masked {a.fish_secs:.3f} s, ratio {a.dense_secs / a.fish_secs:.3f}x")
        for r in (150e9, 185e9, 210e9):
            rest_d = a.dense_secs - dense / r
            rest_m = a.fish_secs - masked / r
            print(f"  at {r / g:.0f} GFLOP/s: other work dense {rest_d:.3f} s, masked {rest_m:.3f} s; "
                  f"1.5x would need the masked step's other work at most "
                  f"{max(0.0, (dense / r + rest_d) / 1.5 - masked / r):.3f} s")


if __name__ == "__main__":
    main()
