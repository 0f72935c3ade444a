#!/usr/bin/env python3
"""Writes fixtures/golden_optim.safetensors, the 50-step golden of finesse's masked optimizers
(`golden_optim.rs`), from `torch.optim.AdamW` and `torch.optim.SGD`.

    python3 -m pip install torch safetensors
    python3 crates/finesse-sparse/tests/golden_optim.py

Parameters: five tensors of the tiny BERT with a 2-label head, under their HF names and in
PyTorch layout: a Linear weight (stored transposed in Burn), a non-transposed embedding table, a
LayerNorm weight and two biases. Only the weights other than LayerNorm's decay (the BERT recipe
that `finesse_sparse::optim` follows). Everything is seeded, so a rerun writes the same bytes
(with the same torch version).

Each case runs 50 steps over the same initial values and gradients, with a per-step learning
rate: linear warm-up over 10 steps from 0, then linear decay towards 0 at step 50
(transformers' `get_linear_schedule_with_warmup`; step 0 has lr 0, so its only effect is on the
optimizer state). Cases:

- `adamw_dense`: AdamW (decoupled weight decay) on every entry.
- `adamw_masked`: AdamW with state for the kept entries only, as `SparseOptimizer` documents:
  the kept entries evolve exactly as `torch.optim.AdamW` run on a parameter made of just them
  (with their gradients); the others never change.
- `sgd_dense`, `sgd_masked`: SGD with momentum (coupled weight decay), likewise.

Fixture tensors (f32 unless said):
- `init.<name>`: initial values, the parameter's shape.
- `grad.<name>`: `[50, *shape]`, the gradient of each step.
- `mask.<name>`: i64 `[k]`, sorted kept flat indices (PyTorch layout) for the masked cases.
- `lr.adamw`, `lr.sgd`: f64 `[50]`, the learning rate of each step.
- `expected.<case>.<name>`: `[50, *shape]`, the parameter after each step.
Metadata: `format=finesse-golden-optim`, `torch` (version), `steps`, `hyper` (JSON).
"""

import json
import os

import torch
from safetensors.torch import save_file

STEPS = 50
WARMUP = 10
SHAPES = {
    "classifier.weight": [2, 32],
    "classifier.bias": [2],
    "bert.pooler.dense.bias": [32],
    "bert.encoder.layer.1.output.LayerNorm.weight": [32],
    "bert.embeddings.token_type_embeddings.weight": [2, 32],
}
ADAMW = {"lr": 1e-2, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.1}
SGD = {"lr": 1e-3, "momentum": 0.9, "weight_decay": 0.01}
KEEP_RATIO = 0.4


def decays(name):
    return name.endswith(".weight") and "LayerNorm" not in name


def schedule(peak):
    """lr of the optimizer step with 0-based index t (finesse-train's `LinearSchedule`)."""
    return [
        peak * (t / WARMUP if t < WARMUP else (STEPS - t) / (STEPS - WARMUP))
        for t in range(STEPS)
    ]


def run(kind, init, grads, masks, lrs, dtype=torch.float32):
    """The parameters after each step: {name: [STEPS, *shape]}, computed in `dtype`."""
    names = list(SHAPES)
    init = {n: v.to(dtype) for n, v in init.items()}
    grads = {n: v.to(dtype) for n, v in grads.items()}
    params = {}
    for name in names:
        flat = init[name].flatten().clone()
        if masks is not None:
            flat = flat[masks[name]].clone()
        params[name] = torch.nn.Parameter(flat)
    hyper = ADAMW if kind == "adamw" else SGD
    groups = [
        {"params": [params[n] for n in names if decays(n)], "weight_decay": hyper["weight_decay"]},
        {"params": [params[n] for n in names if not decays(n)], "weight_decay": 0.0},
    ]
    if kind == "adamw":
        opt = torch.optim.AdamW(
            groups, lr=hyper["lr"], betas=hyper["betas"], eps=hyper["eps"], foreach=False
        )
    else:
        opt = torch.optim.SGD(groups, lr=hyper["lr"], momentum=hyper["momentum"], foreach=False)
    out = {name: [] for name in names}
    for t in range(STEPS):
        for group in opt.param_groups:
            group["lr"] = lrs[t]
        for name in names:
            g = grads[name][t].flatten()
            params[name].grad = (g[masks[name]] if masks is not None else g).clone()
        opt.step()
        for name in names:
            full = init[name].flatten().clone()
            if masks is not None:
                full[masks[name]] = params[name].detach()
            else:
                full = params[name].detach().clone()
            out[name].append(full.reshape(SHAPES[name]))
    return {name: torch.stack(v) for name, v in out.items()}


def main():
    gen = torch.Generator().manual_seed(20240516)
    init, grads, masks = {}, {}, {}
    for name, shape in SHAPES.items():
        init[name] = torch.randn(shape, generator=gen) * 0.5
        # Per-entry gradient scales over three orders of magnitude exercise the second moment.
        scale = torch.exp(torch.randn(shape, generator=gen) * 1.5)
        grads[name] = torch.randn([STEPS, *shape], generator=gen) * scale
        numel = init[name].numel()
        k = max(1, round(KEEP_RATIO * numel))
        masks[name] = torch.randperm(numel, generator=gen)[:k].sort().values
    lrs = {"adamw": schedule(ADAMW["lr"]), "sgd": schedule(SGD["lr"])}
    tensors = {f"lr.{kind}": torch.tensor(v, dtype=torch.float64) for kind, v in lrs.items()}
    for name in SHAPES:
        tensors[f"init.{name}"] = init[name]
        tensors[f"grad.{name}"] = grads[name]
        tensors[f"mask.{name}"] = masks[name].to(torch.int64)
    for kind in ["adamw", "sgd"]:
        for masked in [False, True]:
            case = f"{kind}_{'masked' if masked else 'dense'}"
            out = run(kind, init, grads, masks if masked else None, lrs[kind])
            for name, v in out.items():
                tensors[f"expected.{case}.{name}"] = v
            # torch's own f32 rounding, for scale: the same run in f64, measured as the test
            # measures finesse (max over tensors and steps of max|Δ| / max|exact|).
            exact = run(kind, init, grads, masks if masked else None, lrs[kind], torch.float64)
            worst = max(
                float(((out[n].double() - exact[n]).abs().flatten(1).max(1).values
                       / exact[n].abs().flatten(1).max(1).values).max())
                for n in SHAPES
            )
            print(f"{case}: torch f32 vs f64: max |Δ| / max|value| = {worst:.3e}")
    hyper = {
        "steps": STEPS,
        "warmup_steps": WARMUP,
        "adamw": {**ADAMW, "betas": list(ADAMW["betas"])},
        "sgd": SGD,
        "decay": "weights other than LayerNorm weights",
    }
    metadata = {
        "format": "finesse-golden-optim",
        "torch": torch.__version__,
        "steps": str(STEPS),
        "hyper": json.dumps(hyper, sort_keys=True),
    }
    here = os.path.dirname(os.path.abspath(__file__))
    os.makedirs(os.path.join(here, "fixtures"), exist_ok=True)
    path = os.path.join(here, "fixtures", "golden_optim.safetensors")
    save_file({k: v.contiguous() for k, v in tensors.items()}, path, metadata=metadata)
    print(f"wrote {path} ({os.path.getsize(path)} bytes, torch {torch.__version__})")


if __name__ == "__main__":
    main()
