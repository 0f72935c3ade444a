#!/usr/bin/env python3
"""Writes assets/glue-sample/SST-2: the demo's SST-2 sample shipped in the repository.

    scripts/make-sst2-sample.py GLUE_DIR [ROWS]

A seeded (seed 20261204) choice of ROWS (default 4000) rows of GLUE's SST-2 train.tsv, kept in
file order, and the whole dev.tsv (872 rows), byte for byte as in the GLUE distribution.
"""
import random
import sys

glue, rows = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 4000
lines = open(f"{glue}/SST-2/train.tsv", encoding="utf-8").read().split("\n")
header, body = lines[0], [l for l in lines[1:] if l]
picked = sorted(random.Random(20261204).sample(range(len(body)), rows))
with open("assets/glue-sample/SST-2/train.tsv", "w", encoding="utf-8", newline="\n") as f:
    f.write(header + "\n" + "".join(body[i] + "\n" for i in picked))
with open(f"{glue}/SST-2/dev.tsv", "rb") as src, open("assets/glue-sample/SST-2/dev.tsv", "wb") as dst:
    dst.write(src.read())
