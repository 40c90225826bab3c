#!/usr/bin/env python3
"""Builds the bundled MNIST sample in data/mnist from the full dataset.

    python3 scripts/make_data_samples.py [--src ../shared/data] [--dst data]

Reads SRC/mnist (the four original IDX .gz files, verified against
SRC/mnist/SHA256SUMS) and writes into DST/mnist:

  t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz
      the full MNIST test set, copied byte for byte;
  train-20k-images-idx3-ubyte.gz, train-20k-labels-idx1-ubyte.gz
      the FIRST 20,000 training images / labels (original order), written as
      valid IDX files (header count set to 20000) and gzip-compressed
      deterministically (level 9, mtime 0, no stored file name), so that
      re-running the script reproduces the same bytes;
  SHA256SUMS
      sha256 of the four files above (check with `sha256sum -c SHA256SUMS`).

Python 3 standard library only. Output is verified by reading it back.
"""

import argparse
import gzip
import hashlib
import io
import os
import shutil
import struct
import sys

TRAIN_SUBSET = 20_000
COPIED = ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]
SUBSETS = [
    # (source, destination, magic, item shape)
    ("train-images-idx3-ubyte.gz", "train-20k-images-idx3-ubyte.gz", 0x00000803, (28, 28)),
    ("train-labels-idx1-ubyte.gz", "train-20k-labels-idx1-ubyte.gz", 0x00000801, ()),
]


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_sums(path):
    sums = {}
    with open(path, encoding="ascii") as f:
        for line in f:
            if line.strip():
                digest, name = line.split()
                sums[name.lstrip("*")] = digest
    return sums


def parse_idx(raw, name):
    """Returns (dims, payload) of an unsigned-byte IDX file, with checks."""
    if len(raw) < 4:
        raise SystemExit(f"{name}: too short for an IDX header")
    zero, dtype, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype != 0x08:
        raise SystemExit(f"{name}: not an unsigned-byte IDX file (magic {raw[:4].hex()})")
    dims = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    payload = raw[4 + 4 * ndim :]
    expected = 1
    for d in dims:
        expected *= d
    if len(payload) != expected:
        raise SystemExit(f"{name}: payload has {len(payload)} bytes, dims {dims} need {expected}")
    return dims, payload


def write_idx_gz(path, magic, dims, payload):
    header = struct.pack(">I", magic) + struct.pack(f">{len(dims)}I", *dims)
    buf = io.BytesIO()
    # filename="" -> no FNAME field; mtime=0 -> reproducible bytes.
    with gzip.GzipFile(filename="", mode="wb", compresslevel=9, fileobj=buf, mtime=0) as gz:
        gz.write(header)
        gz.write(payload)
    with open(path, "wb") as f:
        f.write(buf.getvalue())


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--src", default=os.path.join(root, "..", "shared", "data"),
                    help="folder holding mnist/ with the original files (default: ../shared/data)")
    ap.add_argument("--dst", default=os.path.join(root, "data"), help="output data folder (default: data)")
    args = ap.parse_args()

    src = os.path.join(args.src, "mnist")
    dst = os.path.join(args.dst, "mnist")
    os.makedirs(dst, exist_ok=True)

    sums_path = os.path.join(src, "SHA256SUMS")
    known = read_sums(sums_path) if os.path.exists(sums_path) else {}
    for name in COPIED + [s[0] for s in SUBSETS]:
        path = os.path.join(src, name)
        if not os.path.exists(path):
            raise SystemExit(f"missing source file {path}")
        if name in known and sha256(path) != known[name]:
            raise SystemExit(f"{path}: sha256 does not match {sums_path}")

    written = []
    for name in COPIED:
        shutil.copyfile(os.path.join(src, name), os.path.join(dst, name))
        written.append(name)

    for src_name, dst_name, magic, item_shape in SUBSETS:
        with gzip.open(os.path.join(src, src_name), "rb") as f:
            raw = f.read()
        dims, payload = parse_idx(raw, src_name)
        if struct.unpack(">I", raw[:4])[0] != magic or tuple(dims[1:]) != item_shape:
            raise SystemExit(f"{src_name}: unexpected magic or dims {dims}")
        if dims[0] < TRAIN_SUBSET:
            raise SystemExit(f"{src_name}: only {dims[0]} items, need {TRAIN_SUBSET}")
        item = 1
        for d in item_shape:
            item *= d
        out_dims = (TRAIN_SUBSET,) + tuple(item_shape)
        out = os.path.join(dst, dst_name)
        write_idx_gz(out, magic, out_dims, payload[: TRAIN_SUBSET * item])
        # Read back: the subset must equal the first items of the original.
        with gzip.open(out, "rb") as f:
            back_dims, back = parse_idx(f.read(), dst_name)
        assert back_dims == out_dims and back == payload[: TRAIN_SUBSET * item]
        written.append(dst_name)

    with open(os.path.join(dst, "SHA256SUMS"), "w", encoding="ascii") as f:
        for name in sorted(written):
            f.write(f"{sha256(os.path.join(dst, name))}  {name}\n")

    print(f"wrote {dst}:")
    print("| file | bytes | sha256 |\n| --- | ---: | --- |")
    for name in sorted(written):
        p = os.path.join(dst, name)
        print(f"| `{name}` | {os.path.getsize(p)} | `{sha256(p)}` |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
