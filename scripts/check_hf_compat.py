#!/usr/bin/env python3
"""Checks that a model folder written by finesse loads in Hugging Face transformers and computes
what finesse computes.

    finesse forward --model RUN/model --inputs FIXTURE/forward.safetensors --out /tmp/f.safetensors
    python3 scripts/check_hf_compat.py RUN/model FIXTURE/forward.safetensors /tmp/f.safetensors

Needs: pip install torch transformers safetensors. Prints the max abs differences and exits 1 if
any exceeds 1e-4.
"""
import sys

import torch
from safetensors.torch import load_file
from transformers import BertForSequenceClassification

folder, inputs_path, finesse_path = sys.argv[1:4]
inputs = load_file(inputs_path)
ours = load_file(finesse_path)
model = BertForSequenceClassification.from_pretrained(folder, attn_implementation="eager").eval()
with torch.no_grad():
    out = model(
        input_ids=inputs["input_ids"],
        token_type_ids=inputs["token_type_ids"],
        attention_mask=inputs["attention_mask"],
        output_hidden_states=True,
    )
worst = 0.0
checks = {"last_hidden_state": out.hidden_states[-1], "logits": out.logits}
for name, theirs in checks.items():
    if name not in ours:
        continue
    d = (theirs - ours[name]).abs().max().item()
    worst = max(worst, d)
    print(f"{name}: max |transformers - finesse| = {d:.2e}")
print(f"loaded {type(model).__name__} with {model.num_labels} labels from {folder}")
sys.exit(0 if worst <= 1e-4 else 1)
