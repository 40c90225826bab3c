#!/usr/bin/env python3
"""PyTorch peer of benchmarks/gpu/bench_gpu.cu: the same cases and shapes, eager
and torch.compile, timed with CUDA events. Prints CSV on stdout:

    case,shape,dtype,mode,ms_median,ms_min

Case names and shapes must match bench_gpu.cu (gpu_ratios.py joins on
case+shape+dtype). Run on the GPU machine (PyTorch 2.11 ships there):
    python3 benchmarks/peers/torch_gpu.py [--reps N] [--no-compile]
"""
import argparse
import statistics
import sys

import torch
import torch.nn.functional as F


def timed(fn, reps, warmup=3):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        a = torch.cuda.Event(enable_timing=True)
        b = torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b))
    return statistics.median(times), min(times)


def cases():
    """(case, shape, dtype, make) with make() -> a zero-argument callable."""
    dev = "cuda"
    out = []

    def copy_case():
        n = 64 << 20
        x = torch.randn(n, device=dev)
        y = torch.empty_like(x)
        return lambda: y.copy_(x)
    out.append(("copy_d2d", "67108864", "f32", copy_case))

    for m, dt, name in ((8192, torch.bfloat16, "bf16"), (4096, torch.float32, "f32")):
        def gemm_case(m=m, dt=dt):
            a = torch.randn(m, m, device=dev, dtype=dt)
            b = torch.randn(m, m, device=dev, dtype=dt)
            return lambda: torch.matmul(a, b)
        out.append(("gemm", f"{m}x{m}x{m}", name, gemm_case))

    def ln_fwd():
        x = torch.randn(16384, 1024, device=dev)
        w = torch.randn(1024, device=dev)
        b = torch.randn(1024, device=dev)
        return lambda: F.layer_norm(x, (1024,), w, b, 1e-6)
    out.append(("layer_norm_fwd", "16384x1024", "f32", ln_fwd))

    def softmax_fwd():
        x = torch.randn(16384, 1024, device=dev)
        return lambda: torch.softmax(x, -1)
    out.append(("softmax_fwd", "16384x1024", "f32", softmax_fwd))

    def add_case():
        a = torch.randn(64 << 20, device=dev)
        b = torch.randn(64 << 20, device=dev)
        return lambda: a + b
    out.append(("add", "67108864", "f32", add_case))

    def gelu_case():
        a = torch.randn(64 << 20, device=dev)
        return lambda: F.gelu(a)
    out.append(("gelu", "67108864", "f32", gelu_case))

    def dwconv_case():
        # polymath's depthwise conv is channels-last [N, L, C]; torch's is [N, C, L].
        n, l, c, k, d = 32, 1024, 512, 15, 1
        x = torch.randn(n, c, l, device=dev)
        w = torch.randn(c, 1, k, device=dev)
        return lambda: F.conv1d(x, w, padding=d * (k - 1) // 2, dilation=d, groups=c)
    out.append(("depthwise_conv1d_fwd", "32x1024x512_k15_d1", "f32", dwconv_case))

    for causal in (False, True):
        def attn_case(causal=causal):
            bsz, h, l, dk = 8, 16, 1024, 64
            q = torch.randn(bsz, h, l, dk, device=dev, dtype=torch.bfloat16, requires_grad=True)
            k = torch.randn(bsz, h, l, dk, device=dev, dtype=torch.bfloat16, requires_grad=True)
            v = torch.randn(bsz, h, l, dk, device=dev, dtype=torch.bfloat16, requires_grad=True)
            g = torch.randn(bsz, h, l, dk, device=dev, dtype=torch.bfloat16)

            def step():
                o = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
                o.backward(g)
            return step
        out.append(("attention_fwd_bwd", f"8x16x1024x64{'_causal' if causal else ''}", "bf16", attn_case))

    def moe_case():
        # 16,384 tokens, d 1024, 64 experts, FFN 4096, top-2, bf16; sorted-by-expert dispatch.
        t, d, e, f, k = 16384, 1024, 64, 4096, 2
        dt = torch.bfloat16
        x = torch.randn(t, d, device=dev, dtype=dt, requires_grad=True)
        wg = torch.randn(d, e, device=dev, dtype=dt, requires_grad=True)
        w1 = (torch.randn(e, d, f, device=dev, dtype=dt) * d ** -0.5).requires_grad_()
        w2 = (torch.randn(e, f, d, device=dev, dtype=dt) * f ** -0.5).requires_grad_()

        def moe(x):
            logits = x @ wg
            top, idx = torch.topk(logits, k, dim=-1)
            gates = torch.softmax(top.float(), dim=-1).to(dt)
            flat = idx.reshape(-1)
            order = torch.argsort(flat, stable=True)
            counts = torch.bincount(flat, minlength=e).tolist()
            xs = x.repeat_interleave(k, dim=0)[order]
            outs = []
            start = 0
            for j, c in enumerate(counts):
                if c:
                    h = F.relu(xs[start:start + c] @ w1[j])
                    outs.append(h @ w2[j])
                start += c
            ys = torch.cat(outs)
            y = torch.empty_like(ys)
            y[order] = ys
            return (y.view(t, k, d) * gates.unsqueeze(-1)).sum(1)

        g = torch.randn(t, d, device=dev, dtype=dt)

        def step():
            moe(x).backward(g)
        return step
    out.append(("moe_fwd_bwd", "16384x1024_e64_f4096_k2", "bf16", moe_case))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--no-compile", action="store_true")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("torch_gpu.py: no CUDA device", file=sys.stderr)
        return 1
    torch.backends.cuda.matmul.allow_tf32 = False  # fp32 GEMM as polymath's default
    print("case,shape,dtype,mode,ms_median,ms_min")
    for name, shape, dtype, make in cases():
        fn = make()
        med, mn = timed(fn, args.reps)
        print(f"{name},{shape},{dtype},eager,{med:.4f},{mn:.4f}", flush=True)
        if not args.no_compile and name != "copy_d2d":
            try:
                cfn = torch.compile(fn)
                med, mn = timed(cfn, args.reps, warmup=3)
                print(f"{name},{shape},{dtype},compile,{med:.4f},{mn:.4f}", flush=True)
            except Exception as e:  # report, keep going
                print(f"torch_gpu.py: torch.compile failed for {name}: {e}", file=sys.stderr)
        del fn
        torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    sys.exit(main())
