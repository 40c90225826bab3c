// benchmarks/ops_cpu — polymath CPU ops against LibTorch and OpenBLAS, side by side.
//
// Prints CSV: case,shape,threads,polymath_ms,peer_ms,ratio,polymath_min_ms,peer_min_ms
//   *_ms      median over passes of the per-pass median time
//   *_min_ms  the fastest single run
//   ratio     peer_ms / polymath_ms (> 1: polymath is faster)
// The peer is named in the case: gemm[openblas], gemm[libtorch], add[libtorch], ...
// Within a pass polymath and the peer run alternately, so machine noise hits
// both. Options: --threads 1,2  --passes N  --reps N  --filter substring
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include <polymath/polymath.hpp>

#if POLYMATH_BENCH_HAVE_TORCH
#include <torch/torch.h>
#endif
#if POLYMATH_BENCH_HAVE_OPENBLAS
#include <cblas.h>
extern "C" void openblas_set_num_threads(int);
#endif

#include "bench_util.hpp"

using namespace polymath;
using namespace polymath::bench;

namespace {

void bench_gemm(const Options& o, int th) {
    for (int n : {256, 512, 1024, 2048}) {
        Generator g(1);
        auto a = randn<float>({n, n}, g), b = randn<float>({n, n}, g);
        const std::string shape = std::to_string(n) + "x" + std::to_string(n) + "x" + std::to_string(n);
#if POLYMATH_BENCH_HAVE_OPENBLAS
        auto c = zeros<float>({n, n});
        compare(o, "gemm[openblas]", shape, th, [&] { g_sink = g_sink + ops::matmul(a, b).data()[0]; },
                [&] {
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a.data(), n, b.data(), n,
                                0.0f, c.data(), n);
                    g_sink = g_sink + c.data()[0];
                });
#endif
#if POLYMATH_BENCH_HAVE_TORCH
        auto ta = to_torch(a), tb = to_torch(b);
        compare(o, "gemm[libtorch]", shape, th, [&] { g_sink = g_sink + ops::matmul(a, b).data()[0]; },
                [&] { g_sink = g_sink + torch::mm(ta, tb).data_ptr<float>()[0]; });
#endif
    }
}

void bench_elementwise(const Options& o, int th) {
#if POLYMATH_BENCH_HAVE_TORCH
    const std::int64_t n = 16 * 1024 * 1024;
    Generator g(2);
    auto a = randn<float>({n}, g), b = randn<float>({n}, g);
    auto ta = to_torch(a), tb = to_torch(b);
    compare(o, "add[libtorch]", "16M", th, [&] { g_sink = g_sink + ops::add(a, b).data()[0]; },
            [&] { g_sink = g_sink + torch::add(ta, tb).data_ptr<float>()[0]; });
    compare(o, "mul[libtorch]", "16M", th, [&] { g_sink = g_sink + ops::mul(a, b).data()[0]; },
            [&] { g_sink = g_sink + torch::mul(ta, tb).data_ptr<float>()[0]; });
    compare(o, "gelu_erf[libtorch]", "16M", th, [&] { g_sink = g_sink + ops::gelu(a).data()[0]; },
            [&] { g_sink = g_sink + torch::gelu(ta).data_ptr<float>()[0]; });
    compare(o, "gelu_tanh[libtorch]", "16M", th,
            [&] { g_sink = g_sink + ops::gelu(a, GeluApprox::Tanh).data()[0]; },
            [&] { g_sink = g_sink + torch::gelu(ta, "tanh").data_ptr<float>()[0]; });
    // The same kernels with LibTorch writing into a preallocated output
    // (out= variants): LibTorch's allocator returns 64 MB blocks to the
    // kernel and page-faults them back on every call, which dominates the
    // plain calls above; these rows compare the kernels alone.
    auto tout = torch::empty_like(ta);
    compare(o, "add[libtorch_out]", "16M", th, [&] { g_sink = g_sink + ops::add(a, b).data()[0]; },
            [&] { g_sink = g_sink + torch::add_out(tout, ta, tb).data_ptr<float>()[0]; });
    compare(o, "mul[libtorch_out]", "16M", th, [&] { g_sink = g_sink + ops::mul(a, b).data()[0]; },
            [&] { g_sink = g_sink + torch::mul_out(tout, ta, tb).data_ptr<float>()[0]; });
    compare(o, "gelu_erf[libtorch_out]", "16M", th, [&] { g_sink = g_sink + ops::gelu(a).data()[0]; },
            [&] { g_sink = g_sink + torch::gelu_out(tout, ta).data_ptr<float>()[0]; });
#else
    (void)o;
    (void)th;
#endif
}

void bench_reduce(const Options& o, int th) {
#if POLYMATH_BENCH_HAVE_TORCH
    Generator g(3);
    auto x = randn<float>({4096, 4096}, g);
    auto tx = to_torch(x);
    compare(o, "sum_axis0[libtorch]", "4096x4096", th, [&] { g_sink = g_sink + ops::sum(x, {0}).data()[0]; },
            [&] { g_sink = g_sink + tx.sum(0).data_ptr<float>()[0]; });
    compare(o, "sum_axis1[libtorch]", "4096x4096", th, [&] { g_sink = g_sink + ops::sum(x, {1}).data()[0]; },
            [&] { g_sink = g_sink + tx.sum(1).data_ptr<float>()[0]; });
#else
    (void)o;
    (void)th;
#endif
}

void bench_softmax_layernorm(const Options& o, int th) {
#if POLYMATH_BENCH_HAVE_TORCH
    Generator g(4);
    auto x = randn<float>({4096, 512}, g), gy = randn<float>({4096, 512}, g);
    auto w = randn<float>({512}, g), b = randn<float>({512}, g);
    auto tx = to_torch(x), tgy = to_torch(gy), tw = to_torch(w), tb = to_torch(b);
    // fwd + bwd through the autograd of each library, as a user would run it.
    compare(
        o, "softmax_fwd_bwd[libtorch]", "4096x512", th,
        [&] {
            Var<float> xv(x, true);
            auto y = softmax(xv, -1);
            y.backward(gy);
            g_sink = g_sink + xv.grad().data()[0];
        },
        [&] {
            auto xv = tx.detach().requires_grad_(true);
            auto y = torch::softmax(xv, -1);
            y.backward(tgy);
            g_sink = g_sink + xv.grad().data_ptr<float>()[0];
        });
    compare(
        o, "layer_norm_fwd_bwd[libtorch]", "4096x512", th,
        [&] {
            Var<float> xv(x, true), wv(w, true), bv(b, true);
            auto y = layer_norm(xv, {512}, wv, bv);
            y.backward(gy);
            g_sink = g_sink + xv.grad().data()[0];
        },
        [&] {
            auto xv = tx.detach().requires_grad_(true), wv = tw.detach().requires_grad_(true),
                 bv = tb.detach().requires_grad_(true);
            auto y = torch::layer_norm(xv, {512}, wv, bv);
            y.backward(tgy);
            g_sink = g_sink + xv.grad().data_ptr<float>()[0];
        });
#else
    (void)o;
    (void)th;
#endif
}

// 10,000 small ops on 8x8 tensors, forward + backward: per-op overhead.
void bench_tiny_chain(const Options& o, int th) {
#if POLYMATH_BENCH_HAVE_TORCH
    Generator g(5);
    auto x0 = randn<float>({8, 8}, g), a0 = rand<float>({8, 8}, g), b0 = randn<float>({8, 8}, g);
    auto tx0 = to_torch(x0), ta0 = to_torch(a0), tb0 = to_torch(b0);
    constexpr int kOps = 10000;  // each loop iteration records 4 ops
    compare(
        o, "tiny_op_chain_fwd_bwd[libtorch]", "8x8x10000", th,
        [&] {
            Var<float> x(x0, true), a(a0, true), b(b0, true);
            Var<float> y = x;
            for (int i = 0; i < kOps / 4; ++i) y = tanh(y * a + b) - x;
            sum(y).backward();
            g_sink = g_sink + x.grad().data()[0];
        },
        [&] {
            auto x = tx0.detach().requires_grad_(true), a = ta0.detach().requires_grad_(true),
                 b = tb0.detach().requires_grad_(true);
            auto y = x;
            for (int i = 0; i < kOps / 4; ++i) y = torch::tanh(y * a + b) - x;
            y.sum().backward();
            g_sink = g_sink + x.grad().data_ptr<float>()[0];
        });
#else
    (void)o;
    (void)th;
#endif
}

}  // namespace

int main(int argc, char** argv) {
    const Options o = parse(argc, argv, "ops_cpu");
#if !POLYMATH_BENCH_HAVE_TORCH
    std::cerr << "ops_cpu: built without LibTorch (install libtorch-dev): only the OpenBLAS GEMM peer runs\n";
#endif
#if !POLYMATH_BENCH_HAVE_OPENBLAS
    std::cerr << "ops_cpu: built without OpenBLAS (install libopenblas-dev): no GEMM ceiling\n";
#endif
    std::printf("case,shape,threads,polymath_ms,peer_ms,ratio,polymath_min_ms,peer_min_ms\n");
    for (int th : o.threads) {
        set_num_threads(th);
#if POLYMATH_BENCH_HAVE_TORCH
        torch::set_num_threads(th);
#endif
#if POLYMATH_BENCH_HAVE_OPENBLAS
        openblas_set_num_threads(th);
#endif
        bench_gemm(o, th);
        bench_elementwise(o, th);
        bench_reduce(o, th);
        bench_softmax_layernorm(o, th);
        bench_tiny_chain(o, th);
    }
    return 0;
}
