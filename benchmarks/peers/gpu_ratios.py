#!/usr/bin/env python3
"""Joins bench_gpu.csv (polymath) and torch_gpu.csv (PyTorch) on case+shape+dtype
and prints a Markdown table of ratios (peer ms / polymath ms: > 1 means polymath
is faster), plus polymath's bandwidth as a fraction of the device copy.

    python3 benchmarks/peers/gpu_ratios.py bench_gpu.csv torch_gpu.csv
"""
import csv
import sys


def read(path):
    try:
        with open(path) as f:
            return list(csv.DictReader(f))
    except OSError:
        return []


def main():
    ours = read(sys.argv[1])
    peer = read(sys.argv[2]) if len(sys.argv) > 2 else []
    if not ours:
        print("(no polymath GPU figures)")
        return 0
    key = lambda r: (r["case"], r["shape"], r["dtype"])
    torch_ms = {}
    for r in peer:
        torch_ms[key(r) + (r["mode"],)] = float(r["ms_median"])
    print("| case | shape | dtype | polymath ms (median / min) | GB/s | TFLOP/s | % of copy BW | torch eager ms | ratio vs eager | torch.compile ms | ratio vs compile |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in ours:
        ms = float(r["ms_median"])
        e = torch_ms.get(key(r) + ("eager",))
        c = torch_ms.get(key(r) + ("compile",))
        fmt = lambda v: "" if v is None else f"{v:.3f}"
        rat = lambda v: "" if v is None or ms <= 0 else f"{v / ms:.2f}x"
        print(f"| {r['case']} | {r['shape']} | {r['dtype']} | {ms:.3f} / {float(r['ms_min']):.3f} | {r.get('gbps', '')} | "
              f"{r.get('tflops', '')} | {r.get('pct_copy_bw', '')} | {fmt(e)} | {rat(e)} | {fmt(c)} | {rat(c)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
