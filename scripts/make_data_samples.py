#!/usr/bin/env python3
"""Builds the bundled data samples in data/ from the full datasets.

    python3 scripts/make_data_samples.py [--src ../shared/data] [--dst data] [folder ...]

With no folder names every folder is built: mnist fashion-mnist cifar10
speech-digits translation air-quality. Every source file is verified against
SRC/<folder>/SHA256SUMS first; each output folder gets a SHA256SUMS of what was
written (check with `cd data/<folder> && sha256sum -c SHA256SUMS`).

mnist/
  t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz: the full MNIST test
      set, copied byte for byte;
  train-20k-{images-idx3,labels-idx1}-ubyte.gz: the FIRST 20,000 training
      images / labels (original order) as valid IDX files (count set to 20000).
fashion-mnist/
  train-5k-{images-idx3,labels-idx1}-ubyte.gz: the first 5,000 training items;
  t10k-2k-{images-idx3,labels-idx1}-ubyte.gz: the first 2,000 test items.
cifar10/
  data_batch_1_1k.bin, test_batch_1k.bin: the first 100 records of each class
      (0..9) of data_batch_1.bin / test_batch.bin, in their original relative
      order, same 3,073-byte record layout; batches.meta.txt copied.
speech-digits/
  recordings/*.wav: all 3,000 FSDD recordings, copied byte for byte.
translation/
  the 12 Multi30k en/de .gz files, copied byte for byte.
air-quality/
  PRSA_Data_<station>_20130301-20170228.csv.gz for Aotizhongxin, Changping,
      Dongsi, Guanyuan: the original CSV bytes, gzip-compressed.

Every gzip written here is deterministic (level 9, mtime 0, no stored file
name), so re-running the script reproduces the same bytes. Python 3 standard
library only. Outputs are verified by reading them back.
"""

import argparse
import gzip
import hashlib
import io
import os
import shutil
import struct
import sys

ALL = ["mnist", "fashion-mnist", "cifar10", "speech-digits", "translation", "air-quality"]


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


def verified(src, names):
    """Checks that every named file in src exists and matches src/SHA256SUMS."""
    sums_path = os.path.join(src, "SHA256SUMS")
    if not os.path.exists(sums_path):
        raise SystemExit(f"missing {sums_path}")
    known = read_sums(sums_path)
    for name in names:
        path = os.path.join(src, name)
        if not os.path.exists(path):
            raise SystemExit(f"missing source file {path}")
        if name not in known:
            raise SystemExit(f"{path} is not listed in {sums_path}")
        if sha256(path) != known[name]:
            raise SystemExit(f"{path}: sha256 does not match {sums_path}")


def gzip_bytes(data):
    buf = io.BytesIO()
    # filename="" -> no FNAME field; mtime=0 -> reproducible bytes.
    with gzip.GzipFile(filename="", mode="wb", compresslevel=9, fileobj=buf, mtime=0) as gz:
        gz.write(data)
    return buf.getvalue()


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
    with open(path, "wb") as f:
        f.write(gzip_bytes(header + payload))


def idx_subsets(src, dst, subsets):
    """subsets: (source, destination, magic, item shape, count)."""
    written = []
    for src_name, dst_name, magic, item_shape, count in subsets:
        with gzip.open(os.path.join(src, src_name), "rb") as f:
            raw = f.read()
        dims, payload = parse_idx(raw, src_name)
        if struct.unpack(">I", raw[:4])[0] != magic or tuple(dims[1:]) != item_shape:
            raise SystemExit(f"{src_name}: unexpected magic or dims {dims}")
        if dims[0] < count:
            raise SystemExit(f"{src_name}: only {dims[0]} items, need {count}")
        item = 1
        for d in item_shape:
            item *= d
        out_dims = (count,) + tuple(item_shape)
        out = os.path.join(dst, dst_name)
        write_idx_gz(out, magic, out_dims, payload[: count * item])
        # Read back: the subset must equal the first items of the original.
        with gzip.open(out, "rb") as f:
            back_dims, back = parse_idx(f.read(), dst_name)
        assert back_dims == out_dims and back == payload[: count * item]
        written.append(dst_name)
    return written


def copy_files(src, dst, names):
    for name in names:
        os.makedirs(os.path.dirname(os.path.join(dst, name)), exist_ok=True)
        shutil.copyfile(os.path.join(src, name), os.path.join(dst, name))
        assert sha256(os.path.join(src, name)) == sha256(os.path.join(dst, name))
    return list(names)


def make_mnist(src, dst):
    copied = ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]
    subsets = [
        ("train-images-idx3-ubyte.gz", "train-20k-images-idx3-ubyte.gz", 0x00000803, (28, 28), 20_000),
        ("train-labels-idx1-ubyte.gz", "train-20k-labels-idx1-ubyte.gz", 0x00000801, (), 20_000),
    ]
    verified(src, copied + [s[0] for s in subsets])
    return copy_files(src, dst, copied) + idx_subsets(src, dst, subsets)


def make_fashion_mnist(src, dst):
    subsets = [
        ("train-images-idx3-ubyte.gz", "train-5k-images-idx3-ubyte.gz", 0x00000803, (28, 28), 5_000),
        ("train-labels-idx1-ubyte.gz", "train-5k-labels-idx1-ubyte.gz", 0x00000801, (), 5_000),
        ("t10k-images-idx3-ubyte.gz", "t10k-2k-images-idx3-ubyte.gz", 0x00000803, (28, 28), 2_000),
        ("t10k-labels-idx1-ubyte.gz", "t10k-2k-labels-idx1-ubyte.gz", 0x00000801, (), 2_000),
    ]
    verified(src, [s[0] for s in subsets])
    return idx_subsets(src, dst, subsets)


CIFAR_RECORD = 1 + 3 * 32 * 32
CIFAR_PER_CLASS = 100


def make_cifar10(src, dst):
    pairs = [("data_batch_1.bin", "data_batch_1_1k.bin"), ("test_batch.bin", "test_batch_1k.bin")]
    verified(src, [p[0] for p in pairs] + ["batches.meta.txt"])
    written = copy_files(src, dst, ["batches.meta.txt"])
    for src_name, dst_name in pairs:
        with open(os.path.join(src, src_name), "rb") as f:
            raw = f.read()
        if len(raw) % CIFAR_RECORD:
            raise SystemExit(f"{src_name}: {len(raw)} bytes is not a multiple of {CIFAR_RECORD}")
        taken = [0] * 10
        out = bytearray()
        for i in range(len(raw) // CIFAR_RECORD):
            rec = raw[i * CIFAR_RECORD : (i + 1) * CIFAR_RECORD]
            label = rec[0]
            if label > 9:
                raise SystemExit(f"{src_name}: label {label} at offset {i * CIFAR_RECORD}")
            if taken[label] < CIFAR_PER_CLASS:
                taken[label] += 1
                out += rec
        if taken != [CIFAR_PER_CLASS] * 10:
            raise SystemExit(f"{src_name}: not {CIFAR_PER_CLASS} records of every class: {taken}")
        with open(os.path.join(dst, dst_name), "wb") as f:
            f.write(out)
        with open(os.path.join(dst, dst_name), "rb") as f:
            assert f.read() == bytes(out)
        written.append(dst_name)
    return written


def make_speech_digits(src, dst):
    names = sorted(read_sums(os.path.join(src, "SHA256SUMS")))
    names = [n for n in names if n.startswith("recordings/") and n.endswith(".wav")]
    if len(names) != 3000:
        raise SystemExit(f"{src}/SHA256SUMS lists {len(names)} recordings, expected 3000")
    verified(src, names)
    return copy_files(src, dst, names)


def make_translation(src, dst):
    names = sorted(n for n in read_sums(os.path.join(src, "SHA256SUMS")) if n.endswith(".gz"))
    if len(names) != 12:
        raise SystemExit(f"{src}/SHA256SUMS lists {len(names)} .gz files, expected 12")
    verified(src, names)
    return copy_files(src, dst, names)


AIR_STATIONS = ["Aotizhongxin", "Changping", "Dongsi", "Guanyuan"]


def make_air_quality(src, dst):
    names = [f"PRSA_Data_{s}_20130301-20170228.csv" for s in AIR_STATIONS]
    verified(src, names)
    written = []
    for name in names:
        with open(os.path.join(src, name), "rb") as f:
            raw = f.read()
        out = os.path.join(dst, name + ".gz")
        with open(out, "wb") as f:
            f.write(gzip_bytes(raw))
        with gzip.open(out, "rb") as f:
            assert f.read() == raw
        written.append(name + ".gz")
    return written


MAKERS = {
    "mnist": make_mnist,
    "fashion-mnist": make_fashion_mnist,
    "cifar10": make_cifar10,
    "speech-digits": make_speech_digits,
    "translation": make_translation,
    "air-quality": make_air_quality,
}


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--src", default=os.path.join(root, "..", "shared", "data"),
                    help="folder holding the full datasets (default: ../shared/data)")
    ap.add_argument("--dst", default=os.path.join(root, "data"), help="output data folder (default: data)")
    ap.add_argument("folders", nargs="*", default=[], help=f"folders to build (default: all of {ALL})")
    args = ap.parse_args()
    for folder in args.folders:
        if folder not in MAKERS:
            raise SystemExit(f"unknown folder '{folder}'; known: {' '.join(ALL)}")

    for folder in args.folders or ALL:
        src = os.path.join(args.src, folder)
        dst = os.path.join(args.dst, folder)
        os.makedirs(dst, exist_ok=True)
        written = sorted(MAKERS[folder](src, dst))
        with open(os.path.join(dst, "SHA256SUMS"), "w", encoding="ascii") as f:
            for name in written:
                f.write(f"{sha256(os.path.join(dst, name))}  {name}\n")
        total = sum(os.path.getsize(os.path.join(dst, n)) for n in written)
        print(f"wrote {dst}: {len(written)} files, {total} bytes")
        if len(written) <= 20:
            print("| file | bytes | sha256 |\n| --- | ---: | --- |")
            for name in written:
                p = os.path.join(dst, name)
                print(f"| `{name}` | {os.path.getsize(p)} | `{sha256(p)}` |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
