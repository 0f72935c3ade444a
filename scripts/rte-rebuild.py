#!/usr/bin/env python3
"""Rebuilds GLUE's RTE (train.tsv, dev.tsv) from two public copies, for machines that cannot
reach the GLUE server (`finesse data fetch rte` is the normal way; use it where it works).

    scripts/rte-rebuild.py SPLIT_DIR HF_DIR OUT_DIR

SPLIT_DIR: a re-split of the original GLUE files into train/dev/test.tsv whose rows are the
original lines byte for byte, dev rows with their index shifted by 2490 (GitHub
footprinthere/AttAttr-Cutoff, commit fbcc4eb5, glue_data/RTE/, made by its
glue_data/preprocess/split_RTE.py). HF_DIR: an export of the Hugging Face `glue/rte` dataset
(train.tsv, dev.tsv with columns sentence1, sentence2, label 0/1, idx; CSV-quoted; GitHub
Ji-Yishan/MIEC-FYP, commit 2506357, RTE/).

The first gives the rows, the second checks them: every row must be in both, with the same
index, sentences and label (HF: 0 = entailment, 1 = not_entailment), and the split sizes and
label counts must be GLUE's (train 2,490, dev 277). Writes OUT_DIR/RTE/{train,dev}.tsv in the
GLUE layout (`index sentence1 sentence2 label`, tab-separated, LF, rows in index order)
through a temporary file and a rename.
"""
import csv
import os
import sys
from collections import Counter

TRAIN_ROWS, DEV_ROWS = 2490, 277
HEADER = "index\tsentence1\tsentence2\tlabel"
HF_LABELS = {"0": "entailment", "1": "not_entailment"}


def fail(msg):
    sys.exit(f"rte-rebuild: {msg}")


def split_rows(split_dir):
    """index (0..2766 over train then dev) -> (sentence1, sentence2, label)."""
    rows = {}
    for name in ("train", "dev", "test"):
        path = os.path.join(split_dir, f"{name}.tsv")
        with open(path, encoding="utf-8", newline="") as f:
            lines = f.read().split("\n")
        if lines[0] != HEADER:
            fail(f"{path}: header {lines[0]!r}, expected {HEADER!r}")
        for n, line in enumerate(lines[1:], start=2):
            if not line:
                continue
            fields = line.split("\t")
            if len(fields) != 4:
                fail(f"{path}:{n}: {len(fields)} fields, expected 4")
            idx = int(fields[0])
            if idx in rows:
                fail(f"{path}:{n}: index {idx} twice")
            rows[idx] = tuple(fields[1:])
    if sorted(rows) != list(range(TRAIN_ROWS + DEV_ROWS)):
        fail(f"{split_dir}: {len(rows)} rows, expected indices 0..{TRAIN_ROWS + DEV_ROWS - 1}")
    return rows


def hf_rows(path):
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.reader(f, delimiter="\t", quotechar='"')
        header = next(reader)
        if header != ["sentence1", "sentence2", "label", "idx"]:
            fail(f"{path}: header {header}")
        return {int(r[3]): (r[0], r[1], HF_LABELS[r[2]]) for r in reader}


def write(out_dir, name, rows):
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, f"{name}.tsv")
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8", newline="\n") as f:
        f.write(HEADER + "\n")
        for i, (s1, s2, label) in enumerate(rows):
            f.write(f"{i}\t{s1}\t{s2}\t{label}\n")
    os.replace(tmp, path)
    counts = Counter(r[2] for r in rows)
    print(f"{path}: {len(rows)} rows, {dict(sorted(counts.items()))}")


def main():
    if len(sys.argv) != 4:
        fail(__doc__.strip().split("\n\n")[1])
    split_dir, hf_dir, out = sys.argv[1:]
    rows = split_rows(split_dir)
    train = [rows[i] for i in range(TRAIN_ROWS)]
    dev = [rows[TRAIN_ROWS + i] for i in range(DEV_ROWS)]
    for name, ours in (("train", train), ("dev", dev)):
        theirs = hf_rows(os.path.join(hf_dir, f"{name}.tsv"))
        if sorted(theirs) != list(range(len(ours))):
            fail(f"{hf_dir}/{name}.tsv: {len(theirs)} rows, expected {len(ours)}")
        for i, row in enumerate(ours):
            if theirs[i] != row:
                fail(f"{name} row {i} differs between the copies:\n  {row}\n  {theirs[i]}")
    write(os.path.join(out, "RTE"), "train", train)
    write(os.path.join(out, "RTE"), "dev", dev)


if __name__ == "__main__":
    main()
