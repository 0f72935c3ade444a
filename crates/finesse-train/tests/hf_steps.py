#!/usr/bin/env python3
"""Writes fixtures/hf_steps.safetensors: 30 training steps of all-MiniLM-L6-v2 by Hugging Face
transformers, step for step, that `hf_steps.rs` repeats with finesse's trainer.

    python3 -m pip install torch transformers accelerate safetensors
    python3 crates/finesse-train/tests/hf_steps.py [MODEL_DIR]

MODEL_DIR is the folder `finesse model fetch` writes (default:
`$FINESSE_HOME/models/all-MiniLM-L6-v2`, FINESSE_HOME defaulting to `~/.cache/finesse`).

The recipe. `BertForSequenceClassification` with 2 labels and every dropout off
(`hidden_dropout_prob`, `attention_probs_dropout_prob`, `classifier_dropout` = 0; finesse's
`--no-dropout`), eager attention, float32 on the CPU; its fresh head (seeded, HF's own
initialisation) is stored in the fixture and given to finesse. The data: the first 240 rows of
the repository's `tests/data/glue/SST-2/train.tsv` in file order (finesse's `--no-shuffle`),
tokenised by `AutoTokenizer` (truncation at 128), batches of 8 consecutive rows padded to
their longest row (`DataCollatorWithPadding`): 30 steps, one epoch.

The optimizer and schedule are transformers' own: `Trainer.create_optimizer_and_scheduler`
with `lr_scheduler_type="linear"`, 3 warm-up steps (finesse's `--warmup-ratio 0.1` of 30:
ceil(3.0)), weight decay 0.01 on the parameters `Trainer.get_decay_parameter_names` picks (every
parameter but biases and LayerNorm weights; the script checks that this is finesse's rule), and
`max_grad_norm` 1.0. Each step is the body of `Trainer`'s inner loop with one device and no
gradient accumulation: `loss = model(**batch).loss` (mean cross-entropy), `loss.backward()`,
`torch.nn.utils.clip_grad_norm_` (what `accelerator.clip_grad_norm_` calls), `optimizer.step()`,
`lr_scheduler.step()`, `zero_grad()`. (The `Trainer` loop itself is not run: it logs the loss
rounded to 4 digits.) Cases:

- `adamw`: dense AdamW (`optim="adamw_torch"`), lr 5e-5.
- `sgd`: dense SGD with momentum 0.9 (`optim="sgd"`, `optim_args="momentum=0.9"`), lr 1e-2.
- `fish`: AdamW, lr 5e-4, on a FISH mask fixed before training: the empirical Fisher
  (squared gradient of log p(y_i | x_i), one sample at a time, the first 32 training rows) with
  the fresh head, global top-k of 0.5% of all entries, the classifier always kept. Where finesse
  differs from an HF loop on purpose, the golden encodes finesse: the optimizer holds state for
  the kept entries only and nothing else changes (an HF loop that zeroes the other gradients
  would still apply weight decay to every entry, and the diff would not be sparse); the
  gradient norm that clipping uses is that of the kept entries. So the step runs
  `torch.optim.AdamW` (the groups above) on parameters made of the kept entries alone and
  writes them back.

Fixture tensors (f32 unless said):
- `head.classifier.weight` [2, 384], `head.classifier.bias` [2]: the initial head.
- `data.input_ids` i32 [240, W] (0-padded), `data.lengths` i32 [240], `data.labels` i32 [240].
- `<case>.loss`, `<case>.grad_norm` (before clipping), `<case>.lr` (used by the step): f64 [30].
- `<case>.whole.<name>` (dense cases): the final parameter, for parameters of at most 4,096
  entries.
- `<case>.sample.<name>` (dense cases): for larger ones, the final values at flat indices 0,
  STRIDE, 2·STRIDE, … (PyTorch layout; STRIDE = 307).
- `<case>.l1_change.<name>`: f64 [1], sum over all entries of |final − initial|.
- `fish.mask.<name>`: i32 [k], the kept flat indices (sorted); `fish.kept.<name>`: their final
  values (every other entry keeps its initial value).
Metadata: `format=finesse-hf-steps`, `torch`, `transformers`, `steps`, `hyper` (JSON),
`names` (JSON list, module order).
"""

import json
import math
import os
import sys
import tempfile
from pathlib import Path

import torch
import transformers
from safetensors.torch import save_file
from transformers import (
    AutoTokenizer,
    BertForSequenceClassification,
    Trainer,
    TrainingArguments,
)

ROOT = Path(__file__).resolve().parents[3]
OUT = Path(__file__).resolve().parent / "fixtures" / "hf_steps.safetensors"
STEPS = 30
BATCH = 8
MAX_LEN = 128
WARMUP_STEPS = 3
MAX_GRAD_NORM = 1.0
WEIGHT_DECAY = 0.01
STRIDE = 307
WHOLE_MAX = 4096
FISHER_SAMPLES = 32
KEEP_RATIO = 0.005
HEAD_SEED = 7
CASES = {
    "adamw": {"optim": "adamw_torch", "lr": 5e-5},
    "sgd": {"optim": "sgd", "optim_args": "momentum=0.9", "lr": 1e-2},
    "fish": {"optim": "adamw_torch", "lr": 5e-4, "mask": "fish"},
}


def model_dir():
    if len(sys.argv) > 1:
        return Path(sys.argv[1])
    home = Path(os.environ.get("FINESSE_HOME", Path.home() / ".cache" / "finesse"))
    return home / "models" / "all-MiniLM-L6-v2"


def rows():
    """The first STEPS * BATCH rows of the SST-2 slice: (sentence, label), split on tabs."""
    lines = (ROOT / "tests/data/glue/SST-2/train.tsv").read_text(encoding="utf-8").splitlines()
    out = []
    for line in lines[1 : 1 + STEPS * BATCH]:
        sentence, label = line.split("\t")
        out.append((sentence, int(label)))
    return out


def load_model(folder):
    torch.manual_seed(HEAD_SEED)
    model = BertForSequenceClassification.from_pretrained(
        folder,
        num_labels=2,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        classifier_dropout=0.0,
        attn_implementation="eager",
        dtype=torch.float32,
    )
    model.train()
    return model


def finesse_decays(name):
    """finesse-sparse's weight-decay rule (`optim::decays`)."""
    return name.endswith(".weight") and "LayerNorm" not in name


def hf_optimizer(model, case, params=None):
    """transformers' optimizer and schedule for `case`; with `params` ({name: tensor}), the same
    groups and settings over those tensors instead of the model's parameters."""
    spec = CASES[case]
    with tempfile.TemporaryDirectory() as tmp:
        args = TrainingArguments(
            output_dir=tmp,
            learning_rate=spec["lr"],
            weight_decay=WEIGHT_DECAY,
            max_grad_norm=MAX_GRAD_NORM,
            lr_scheduler_type="linear",
            warmup_steps=WARMUP_STEPS,
            optim=spec["optim"],
            optim_args=spec.get("optim_args"),
            report_to=[],
            use_cpu=True,
        )
        trainer = Trainer(model=model, args=args)
        decay = set(trainer.get_decay_parameter_names(model))
        names = [n for n, _ in model.named_parameters()]
        mismatch = [n for n in names if (n in decay) != finesse_decays(n)]
        assert not mismatch, f"HF decays differently from finesse: {mismatch}"
        trainer.create_optimizer_and_scheduler(num_training_steps=STEPS)
        optimizer, scheduler = trainer.optimizer, trainer.lr_scheduler
        if params is not None:
            # The same class, settings and groups over the kept entries.
            groups = [
                {
                    **{k: v for k, v in g.items() if k not in ("params", "initial_lr")},
                    "lr": g["initial_lr"],
                    "params": [],
                }
                for g in optimizer.param_groups
            ]
            by_id = {id(p): i for i, g in enumerate(optimizer.param_groups) for p in g["params"]}
            for name, p in model.named_parameters():
                groups[by_id[id(p)]]["params"].append(params[name])
            optimizer = type(optimizer)(groups)
            scheduler = transformers.get_linear_schedule_with_warmup(
                optimizer, WARMUP_STEPS, STEPS
            )
        return optimizer, scheduler


def batches(tokenizer, data):
    out = []
    for b in range(STEPS):
        chunk = data[b * BATCH : (b + 1) * BATCH]
        enc = tokenizer(
            [s for s, _ in chunk],
            truncation=True,
            max_length=MAX_LEN,
            padding="longest",
            return_tensors="pt",
        )
        enc["labels"] = torch.tensor([label for _, label in chunk])
        out.append(enc)
    return out


def fisher_mask(model, tokenizer, data):
    """FISH: the empirical Fisher over the first FISHER_SAMPLES rows, global top-k with the
    classifier kept. {name: sorted kept flat indices}."""
    params = dict(model.named_parameters())
    scores = {n: torch.zeros_like(p) for n, p in params.items()}
    for sentence, label in data[:FISHER_SAMPLES]:
        enc = tokenizer([sentence], truncation=True, max_length=MAX_LEN, return_tensors="pt")
        model.zero_grad()
        logits = model(**enc).logits
        torch.log_softmax(logits, dim=-1)[0, label].backward()
        for n, p in params.items():
            scores[n] += p.grad.detach() ** 2
    model.zero_grad()
    total = sum(p.numel() for p in params.values())
    head = [n for n in params if n.startswith("classifier.")]
    k = int(KEEP_RATIO * total) - sum(params[n].numel() for n in head)
    body = [n for n in params if n not in head]
    flat = torch.cat([scores[n].flatten() / FISHER_SAMPLES for n in body])
    chosen = torch.zeros(flat.numel(), dtype=torch.bool)
    chosen[torch.topk(flat, k).indices] = True
    masks, at = {}, 0
    for n in body:
        m = params[n].numel()
        masks[n] = torch.nonzero(chosen[at : at + m]).flatten()
        at += m
    for n in head:
        masks[n] = torch.arange(params[n].numel())
    return masks


def train(folder, tokenizer, data, case, masks, fixture):
    model = load_model(folder)
    params = dict(model.named_parameters())
    for n in ("classifier.weight", "classifier.bias"):
        assert torch.equal(params[n], fixture[f"head.{n}"]), "the head differs between loads"
    initial = {n: p.detach().clone() for n, p in params.items()}
    kept = None
    if masks is not None:
        kept = {
            n: torch.nn.Parameter(p.detach().flatten()[masks[n]].clone())
            for n, p in params.items()
        }
    optimizer, scheduler = hf_optimizer(model, case, kept)
    losses, norms, lrs = [], [], []
    for batch in batches(tokenizer, data):
        lrs.append(scheduler.get_last_lr()[0])
        loss = model(**batch).loss
        loss.backward()
        if kept is None:
            norm = torch.nn.utils.clip_grad_norm_(model.parameters(), MAX_GRAD_NORM)
        else:
            for n, p in params.items():
                kept[n].grad = p.grad.flatten()[masks[n]].clone()
            norm = torch.nn.utils.clip_grad_norm_(list(kept.values()), MAX_GRAD_NORM)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
        model.zero_grad()
        if kept is not None:
            with torch.no_grad():
                for n, p in params.items():
                    p.view(-1)[masks[n]] = kept[n]
        losses.append(loss.item())
        norms.append(norm.item())
        print(f"{case} step {len(losses)}: loss {losses[-1]:.6f} grad_norm {norms[-1]:.6f} lr {lrs[-1]:.3g}")
    fixture[f"{case}.loss"] = torch.tensor(losses, dtype=torch.float64)
    fixture[f"{case}.grad_norm"] = torch.tensor(norms, dtype=torch.float64)
    fixture[f"{case}.lr"] = torch.tensor(lrs, dtype=torch.float64)
    for n, p in params.items():
        final = p.detach()
        change = (final.double() - initial[n].double()).abs().sum()
        fixture[f"{case}.l1_change.{n}"] = change.reshape(1)
        if masks is None and final.numel() <= WHOLE_MAX:
            fixture[f"{case}.whole.{n}"] = final.clone().contiguous()
        elif masks is None:
            fixture[f"{case}.sample.{n}"] = final.flatten()[::STRIDE].clone().contiguous()
        else:
            fixture[f"{case}.mask.{n}"] = masks[n].to(torch.int32).contiguous()
            fixture[f"{case}.kept.{n}"] = final.flatten()[masks[n]].clone().contiguous()
    return model


def main():
    torch.use_deterministic_algorithms(True)
    folder = model_dir()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    data = rows()
    fixture = {}
    model = load_model(folder)
    head = {n: p.detach().clone() for n, p in model.named_parameters() if n.startswith("classifier.")}
    for n, t in head.items():
        fixture[f"head.{n}"] = t.contiguous()
    encoded = [
        tokenizer(s, truncation=True, max_length=MAX_LEN)["input_ids"] for s, _ in data
    ]
    width = max(len(e) for e in encoded)
    fixture["data.input_ids"] = torch.tensor(
        [e + [0] * (width - len(e)) for e in encoded], dtype=torch.int32
    )
    fixture["data.lengths"] = torch.tensor([len(e) for e in encoded], dtype=torch.int32)
    fixture["data.labels"] = torch.tensor([label for _, label in data], dtype=torch.int32)
    names = [n for n, _ in model.named_parameters()]
    masks = fisher_mask(model, tokenizer, data)
    print("fish mask:", sum(m.numel() for m in masks.values()), "kept entries")
    for case, spec in CASES.items():
        train(folder, tokenizer, data, case, masks if spec.get("mask") else None, fixture)
    hyper = {
        "steps": STEPS,
        "batch_size": BATCH,
        "max_seq_len": MAX_LEN,
        "warmup_steps": WARMUP_STEPS,
        "max_grad_norm": MAX_GRAD_NORM,
        "weight_decay": WEIGHT_DECAY,
        "stride": STRIDE,
        "whole_max": WHOLE_MAX,
        "fisher_samples": FISHER_SAMPLES,
        "keep_ratio": KEEP_RATIO,
        "head_seed": HEAD_SEED,
        "cases": CASES,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    save_file(
        fixture,
        str(OUT),
        metadata={
            "format": "finesse-hf-steps",
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "steps": str(STEPS),
            "hyper": json.dumps(hyper, sort_keys=True),
            "names": json.dumps(names),
        },
    )
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
