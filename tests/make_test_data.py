#!/usr/bin/env python3
"""Writes tests/fixtures/ and tests/data/ from the team's shared folder (Python 3 stdlib only).

    python3 tests/make_test_data.py [SHARED]     # SHARED: $FINESSE_SHARED, else ../shared

The tests read only what this writes, so a fresh clone runs every test without SHARED. It is
deterministic: running it again on the same SHARED gives byte-identical files.

Fixtures (tests/fixtures/all-MiniLM-L6-v2/): `forward.safetensors`, `classifier.safetensors`,
`fisher_topk.json` and the README are copied byte for byte. `fisher.safetensors` (7.1 MB) is cut
down to what finesse-sparse's golden test compares: its int inputs and every small Fisher tensor
whole, and the leading rows of the three big matrices (FISHER_ROWS below). Each cut tensor is
named in the file's metadata with its full shape, the rows kept and the largest |value| of the
full tensor (the test's absolute floor is relative to it, so the tolerance is unchanged).

GLUE slices (tests/data/glue/; the shared folder's README, with the sources and sha256 of the
whole files, copied as PROVENANCE.md): per file, the header, the first HEAD_ROWS data rows, the first
TRAP_ROWS later rows with a field starting with `"` (or, in files with none, containing one:
GLUE has no CSV quoting; a parser must split on tabs only)
and the file's last row, in file order, each row's bytes unchanged. The first and last bytes of
every file are the original's, so MRPC's UTF-8 BOM and CoLA dev's missing final newline stay.
SST-2 keeps 1,000 training rows (the real-model fine-tuning test trains 40 × 16 of them) and its
whole dev set (the accuracy is compared with the dev majority class, 444/872).
"""

import hashlib
import json
import os
import shutil
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
MODEL = "all-MiniLM-L6-v2"

# Fisher tensors cut to their leading rows (PyTorch layout [out, in]); all others are kept whole.
FISHER_ROWS = {
    "bert.encoder.layer.0.attention.self.query.weight": 32,
    "bert.encoder.layer.5.output.dense.weight": 8,
    "bert.pooler.dense.weight": 32,
}

HEAD_ROWS = 40
TRAP_ROWS = 5
# (file, has a header, rows to keep: None = HEAD_ROWS + traps + last, "all" = every row, or a
# number of leading rows)
GLUE_FILES = [
    ("SST-2/train.tsv", True, 1000),
    ("SST-2/dev.tsv", True, "all"),
    ("MRPC/train.tsv", True, None),
    ("MRPC/dev.tsv", True, None),
    ("CoLA/train.tsv", False, None),
    ("CoLA/dev.tsv", False, None),
    ("STS-B/train.tsv", True, None),
    ("STS-B/dev.tsv", True, None),
    ("QNLI/dev.tsv", True, None),
]

DTYPE_SIZE = {"F32": 4, "I64": 8}


def read_safetensors(path):
    data = open(path, "rb").read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    meta = header.pop("__metadata__", None)
    body = data[8 + n :]
    tensors = {}
    for name, info in header.items():
        start, end = info["data_offsets"]
        tensors[name] = (info["dtype"], info["shape"], body[start:end])
    return tensors, meta


def write_safetensors(path, tensors, meta):
    header, body = {}, b""
    for name in sorted(tensors):
        dtype, shape, raw = tensors[name]
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(body), len(body) + len(raw)]}
        body += raw
    header["__metadata__"] = meta
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + body)


def cut_fisher(src, dst):
    tensors, _ = read_safetensors(src)
    meta = {
        "note": "cut from the 7.1 MB fixture by tests/make_test_data.py; tensors named here "
        "hold only their leading rows"
    }
    for name in list(tensors):
        kind, _, bare = name.partition(".")
        if kind not in ("empirical", "expected") or bare not in FISHER_ROWS:
            continue
        dtype, shape, raw = tensors[name]
        assert dtype == "F32" and len(shape) == 2, name
        rows = FISHER_ROWS[bare]
        values = struct.unpack(f"<{len(raw) // 4}f", raw)
        row_bytes = shape[1] * DTYPE_SIZE[dtype]
        tensors[name] = (dtype, [rows, shape[1]], raw[: rows * row_bytes])
        meta[name] = json.dumps(
            {"full_shape": shape, "rows": rows, "max_abs": max(abs(v) for v in values)}
        )
    write_safetensors(dst, tensors, meta)


def slice_glue(src, dst, has_header, keep):
    data = open(src, "rb").read()
    lines = data.split(b"\n")
    final_newline = lines[-1] == b""
    if final_newline:
        lines.pop()
    header, rows = (lines[:1], lines[1:]) if has_header else ([], lines)
    if keep == "all":
        chosen = list(range(len(rows)))
    elif isinstance(keep, int):
        chosen = list(range(keep))
    else:
        later = range(HEAD_ROWS, len(rows) - 1)
        traps = [i for i in later if rows[i].startswith(b'"') or b'\t"' in rows[i]]
        traps = traps or [i for i in later if b'"' in rows[i]]
        traps = traps[:TRAP_ROWS]
        chosen = list(range(HEAD_ROWS)) + traps + [len(rows) - 1]
    out = b"\n".join(header + [rows[i] for i in chosen]) + (b"\n" if final_newline else b"")
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    open(dst, "wb").write(out)
    return len(chosen), hashlib.sha256(data).hexdigest()


def main():
    shared = sys.argv[1] if len(sys.argv) > 1 else os.environ.get(
        "FINESSE_SHARED", os.path.join(HERE, "..", "..", "shared")
    )
    fixtures_src = os.path.join(shared, "fixtures", MODEL)
    fixtures_dst = os.path.join(HERE, "fixtures", MODEL)
    os.makedirs(fixtures_dst, exist_ok=True)
    for name in ["README.md", "forward.safetensors", "classifier.safetensors", "fisher_topk.json"]:
        shutil.copyfile(os.path.join(fixtures_src, name), os.path.join(fixtures_dst, name))
    cut_fisher(
        os.path.join(fixtures_src, "fisher.safetensors"),
        os.path.join(fixtures_dst, "fisher.safetensors"),
    )
    glue_dst = os.path.join(HERE, "data", "glue")
    os.makedirs(glue_dst, exist_ok=True)
    shutil.copyfile(
        os.path.join(shared, "data", "glue", "README.md"), os.path.join(glue_dst, "PROVENANCE.md")
    )
    for name, has_header, keep in GLUE_FILES:
        rows, digest = slice_glue(
            os.path.join(shared, "data", "glue", name),
            os.path.join(glue_dst, name),
            has_header,
            keep,
        )
        print(f"{name}: {rows} rows (from sha256 {digest})")


if __name__ == "__main__":
    main()
