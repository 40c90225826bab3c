// polymath/ops/cuda/conv.cuh — channels-last depthwise convolution on CUDA.
//
//   depthwise_conv1d(x [N, L, C], w [K, C], bias = {}, dilation = 1, padding = Same)   -> [N, Lo, C]
//   depthwise_conv1d_backward(g, x, w, dilation, padding, need_dx, need_dw, need_db) -> ConvGradsCuda<T>
//
// Same semantics, names and argument order as ops/conv.hpp (the CPU has only
// the 1-D depthwise op — 2-D depthwise goes through conv2d with groups — and no
// stride), on Tensor<T, Cuda>; T = float, double, bfloat16, half (16-bit types
// compute in float and round once per output).
//
// Kernels (all channels-last, the CPU's layout):
//  * dw_conv_tiled — forward, and dx (dx is the same op on g with the taps
//    flipped and pad_left' = d (K - 1) - pad_left). A block owns an output tile
//    [TL steps] x [CT·VEC channels] of one sequence; it stages the input rows of
//    the tile plus the halo (TL + d (K - 1) rows, zero-filled outside [0, L)) and
//    the K taps in shared memory, then each thread computes VEC adjacent channels
//    of TL / RY outputs. Threads run over channels fastest, so every global load
//    and store of a row is one contiguous (16-byte-vectorised where C and the
//    pointers allow) segment; the K-fold reuse of x happens in shared memory.
//  * dw_conv_direct — fallback when the halo does not fit in 48 KiB of shared
//    memory (very large dilation·K): one thread per (row, channel vector),
//    taps read through L1.
//  * dw_grad_weight_partial + dw_grad_weight_finalize — dw and db without
//    float atomics: stage 1 gives each block a fixed run of (sequence, time
//    tile) items (the split depends on the shapes only); per item and tap the
//    threads sum their rows, the block reduces them with a fixed tree and adds
//    the result to its own partial row [K + 1, C] (K rows of dw, one of db) in
//    item order. Stage 2 sums the partials in block order. Bit-identical on
//    every run.
//
// PaddingMode comes from ops/padding_mode.hpp, shared with the CPU ops.
#pragma once
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <ostream>
#include <type_traits>

#include "polymath/cuda/check.hpp"
#include "polymath/cuda/launch.cuh"
#include "polymath/cuda/runtime.hpp"
#include "polymath/cuda/tensor_backend.cuh"
#include "polymath/tensor/tensor.hpp"

#include "polymath/ops/padding_mode.hpp"

namespace polymath::ops {

template <class T>
struct ConvGradsCuda {
    Tensor<T, Cuda> dx;  // shape of x (undefined when not requested)
    Tensor<T, Cuda> dw;  // shape of w
    Tensor<T, Cuda> db;  // [C]
};

namespace cuda_kernels {

template <class T>
inline constexpr bool kConvCudaDType = std::is_same_v<T, float> || std::is_same_v<T, double> ||
                                       std::is_same_v<T, bfloat16> || std::is_same_v<T, polymath::half>;

// VEC consecutive elements moved as one (up to 16-byte) access.
template <class T, int VEC>
struct alignas(sizeof(T) * VEC) ConvVec {
    T v[VEC];
};

template <class T, int VEC>
__device__ __forceinline__ ConvVec<T, VEC> conv_load(const T* p) {
    return *reinterpret_cast<const ConvVec<T, VEC>*>(p);
}
template <class T, int VEC>
__device__ __forceinline__ void conv_store(T* p, const ConvVec<T, VEC>& v) {
    *reinterpret_cast<ConvVec<T, VEC>*>(p) = v;
}
template <class T, int VEC>
__device__ __forceinline__ ConvVec<T, VEC> conv_zero() {
    ConvVec<T, VEC> z;
#pragma unroll
    for (int i = 0; i < VEC; ++i) z.v[i] = dtype_cast<T>(0.0f);
    return z;
}

__device__ __forceinline__ std::int64_t conv_min64(std::int64_t a, std::int64_t b) { return a < b ? a : b; }

// Geometry of one pass: out[n, t, c] = bias[c] + sum_k w[k', c] · in[n, t + k d - pad, c],
// k' = flip ? K - 1 - k : k, in-range reads only.
struct DwGeo {
    std::int64_t N, Lin, Lout, C, K, d, pad;
};

// Forward / dx, shared-memory tiled. blockDim = (CT, RY); blockIdx.x = n · ntiles + tile,
// blockIdx.y = channel tile. Dynamic shared memory: K·CT·VEC taps (compute type),
// then (TL + d (K - 1)) · CT·VEC input elements (storage type).
template <class T, int VEC>
__global__ void dw_conv_tiled(const T* __restrict__ x, const T* __restrict__ w, const T* __restrict__ bias,
                              T* __restrict__ y, DwGeo g, bool flip, int TL, std::int64_t ntiles) {
    using A = cuda::compute_t<T>;
    extern __shared__ __align__(16) unsigned char conv_smem[];
    const int CT = int(blockDim.x), RY = int(blockDim.y);
    const int CTV = CT * VEC;
    const int tid = int(threadIdx.y) * CT + int(threadIdx.x), nthreads = CT * RY;
    const std::int64_t n = std::int64_t(blockIdx.x) / ntiles, tile = std::int64_t(blockIdx.x) % ntiles;
    const std::int64_t t0 = tile * TL;
    const std::int64_t c0 = std::int64_t(blockIdx.y) * CTV;
    const std::int64_t span = g.d * (g.K - 1);
    const int rows = TL + int(span);

    A* ws = reinterpret_cast<A*>(conv_smem);
    const std::size_t ws_bytes = ((std::size_t(g.K) * CTV * sizeof(A)) + 15) / 16 * 16;
    T* xs = reinterpret_cast<T*>(conv_smem + ws_bytes);

    for (int i = tid; i < int(g.K) * CTV; i += nthreads) {
        const int k = i / CTV, cc = i - k * CTV;
        const std::int64_t c = c0 + cc;
        const std::int64_t kk = flip ? g.K - 1 - k : k;
        ws[i] = c < g.C ? A(w[kk * g.C + c]) : A(0);
    }
    const T* xn = x + n * g.Lin * g.C;
    for (int i = tid; i < rows * CT; i += nthreads) {
        const int r = i / CT, q = i - r * CT;
        const std::int64_t s = t0 - g.pad + r;
        const std::int64_t c = c0 + std::int64_t(q) * VEC;
        ConvVec<T, VEC> v = conv_zero<T, VEC>();
        if (s >= 0 && s < g.Lin && c < g.C) v = conv_load<T, VEC>(xn + s * g.C + c);
        conv_store<T, VEC>(xs + std::size_t(r) * CTV + std::size_t(q) * VEC, v);
    }
    __syncthreads();

    const int tx = int(threadIdx.x);
    const std::int64_t c = c0 + std::int64_t(tx) * VEC;
    if (c >= g.C) return;  // after the only barrier
    A b[VEC];
#pragma unroll
    for (int v = 0; v < VEC; ++v) b[v] = bias ? A(bias[c + v]) : A(0);
    const std::int64_t tl = conv_min64(TL, g.Lout - t0);
    T* yn = y + n * g.Lout * g.C;
    const int d = int(g.d), K = int(g.K);
    for (int r = int(threadIdx.y); r < tl; r += RY) {
        A acc[VEC];
#pragma unroll
        for (int v = 0; v < VEC; ++v) acc[v] = b[v];
        for (int k = 0; k < K; ++k) {
            const ConvVec<T, VEC> xv = conv_load<T, VEC>(xs + std::size_t(r + k * d) * CTV + std::size_t(tx) * VEC);
            const A* wk = ws + k * CTV + tx * VEC;
#pragma unroll
            for (int v = 0; v < VEC; ++v) acc[v] += wk[v] * A(xv.v[v]);
        }
        ConvVec<T, VEC> o;
#pragma unroll
        for (int v = 0; v < VEC; ++v) o.v[v] = dtype_cast<T>(acc[v]);
        conv_store<T, VEC>(yn + (t0 + r) * g.C + c, o);
    }
}

// Fallback for halos too large for shared memory: one thread per (n, t, channel vector).
template <class T, int VEC>
__global__ void dw_conv_direct(const T* __restrict__ x, const T* __restrict__ w, const T* __restrict__ bias,
                               T* __restrict__ y, DwGeo g, bool flip) {
    using A = cuda::compute_t<T>;
    const std::int64_t cg = g.C / VEC;
    const std::int64_t total = g.N * g.Lout * cg;
    for (std::int64_t e = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; e < total;
         e += std::int64_t(gridDim.x) * blockDim.x) {
        const std::int64_t q = e % cg, row = e / cg;
        const std::int64_t n = row / g.Lout, t = row % g.Lout;
        const std::int64_t c = q * VEC;
        A acc[VEC];
#pragma unroll
        for (int v = 0; v < VEC; ++v) acc[v] = bias ? A(bias[c + v]) : A(0);
        for (std::int64_t k = 0; k < g.K; ++k) {
            const std::int64_t s = t + k * g.d - g.pad;
            if (s < 0 || s >= g.Lin) continue;
            const std::int64_t kk = flip ? g.K - 1 - k : k;
            const ConvVec<T, VEC> xv = conv_load<T, VEC>(x + (n * g.Lin + s) * g.C + c);
            const ConvVec<T, VEC> wv = conv_load<T, VEC>(w + kk * g.C + c);
#pragma unroll
            for (int v = 0; v < VEC; ++v) acc[v] += A(wv.v[v]) * A(xv.v[v]);
        }
        ConvVec<T, VEC> o;
#pragma unroll
        for (int v = 0; v < VEC; ++v) o.v[v] = dtype_cast<T>(acc[v]);
        conv_store<T, VEC>(y + row * g.C + c, o);
    }
}

// dw / db stage 1. blockDim = (CT, RY); blockIdx.x = partial b (items [b·per, (b+1)·per)
// of the N · ntiles (sequence, time tile) items), blockIdx.y = channel tile.
// g [N, Lo, C], x [N, L, C]; geo.Lin = L, geo.Lout = Lo. partial [P, K + 1, C] (compute type).
// Dynamic shared memory: TL · CT·VEC gradient rows (storage type), then RY · CT·VEC sums.
template <class T, int VEC>
__global__ void dw_grad_weight_partial(const T* __restrict__ gy, const T* __restrict__ x,
                                       cuda::compute_t<T>* __restrict__ partial, DwGeo geo, int TL,
                                       std::int64_t ntiles, std::int64_t items, std::int64_t per, bool need_dw,
                                       bool need_db) {
    using A = cuda::compute_t<T>;
    extern __shared__ __align__(16) unsigned char conv_smem[];
    const int CT = int(blockDim.x), RY = int(blockDim.y);
    const int CTV = CT * VEC;
    const int tx = int(threadIdx.x), ty = int(threadIdx.y);
    const int tid = ty * CT + tx, nthreads = CT * RY;
    T* gs = reinterpret_cast<T*>(conv_smem);
    const std::size_t gs_bytes = (std::size_t(TL) * CTV * sizeof(T) + 15) / 16 * 16;
    A* red = reinterpret_cast<A*>(conv_smem + gs_bytes);

    const std::int64_t b = blockIdx.x;
    const std::int64_t c0 = std::int64_t(blockIdx.y) * CTV;
    const std::int64_t c = c0 + std::int64_t(tx) * VEC;
    const bool active = c < geo.C;
    const std::int64_t i0 = b * per, i1 = conv_min64(items, i0 + per);
    const std::int64_t K = geo.K, L = geo.Lin, Lo = geo.Lout, C = geo.C;
    A* pb = partial + b * (K + 1) * C;

    for (std::int64_t item = i0; item < i1; ++item) {
        const std::int64_t n = item / ntiles, t0 = (item % ntiles) * TL;
        const int tl = int(conv_min64(TL, Lo - t0));
        __syncthreads();  // the previous item's reads of gs are done
        const T* gn = gy + n * Lo * C;
        for (int i = tid; i < tl * CT; i += nthreads) {
            const int r = i / CT, q = i - r * CT;
            const std::int64_t cc = c0 + std::int64_t(q) * VEC;
            ConvVec<T, VEC> v = conv_zero<T, VEC>();
            if (cc < C) v = conv_load<T, VEC>(gn + (t0 + r) * C + cc);
            conv_store<T, VEC>(gs + std::size_t(r) * CTV + std::size_t(q) * VEC, v);
        }
        __syncthreads();
        const T* xn = x + n * L * C;
        for (std::int64_t k = 0; k <= K; ++k) {
            if (k < K ? !need_dw : !need_db) continue;  // uniform over the block
            A acc[VEC];
#pragma unroll
            for (int v = 0; v < VEC; ++v) acc[v] = A(0);
            if (active) {
                for (int r = ty; r < tl; r += RY) {
                    const ConvVec<T, VEC> gv = conv_load<T, VEC>(gs + std::size_t(r) * CTV + std::size_t(tx) * VEC);
                    if (k == K) {
#pragma unroll
                        for (int v = 0; v < VEC; ++v) acc[v] += A(gv.v[v]);
                    } else {
                        const std::int64_t s = t0 + r + k * geo.d - geo.pad;
                        if (s < 0 || s >= L) continue;
                        const ConvVec<T, VEC> xv = conv_load<T, VEC>(xn + s * C + c);
#pragma unroll
                        for (int v = 0; v < VEC; ++v) acc[v] += A(gv.v[v]) * A(xv.v[v]);
                    }
                }
            }
#pragma unroll
            for (int v = 0; v < VEC; ++v) red[std::size_t(ty) * CTV + tx * VEC + v] = acc[v];
            __syncthreads();
            // Fixed tree over the RY row sums (any RY): deterministic.
            for (int act = RY; act > 1;) {
                const int half = (act + 1) / 2;
                if (ty < act - half) {
#pragma unroll
                    for (int v = 0; v < VEC; ++v)
                        red[std::size_t(ty) * CTV + tx * VEC + v] += red[std::size_t(ty + half) * CTV + tx * VEC + v];
                }
                __syncthreads();
                act = half;
            }
            if (ty == 0 && active) {
                A* p = pb + k * C + c;
#pragma unroll
                for (int v = 0; v < VEC; ++v) p[v] = (item == i0 ? A(0) : p[v]) + red[std::size_t(tx) * VEC + v];
            }
            __syncthreads();  // red is rewritten by the next tap
        }
    }
}

// dw / db stage 2: out[e] = sum_b partial[b, e] in block order, e over (K + 1) · C.
template <class T>
__global__ void dw_grad_weight_finalize(const cuda::compute_t<T>* __restrict__ partial, std::int64_t P,
                                        std::int64_t K, std::int64_t C, T* __restrict__ dw, T* __restrict__ db) {
    using A = cuda::compute_t<T>;
    const std::int64_t E = (K + 1) * C;
    for (std::int64_t e = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; e < E;
         e += std::int64_t(gridDim.x) * blockDim.x) {
        const bool is_db = e >= K * C;
        if (is_db ? db == nullptr : dw == nullptr) continue;
        A acc = A(0);
        std::int64_t b = 0;
        for (; b + 4 <= P; b += 4) {  // four independent loads in flight, summed in order
            const A p0 = partial[b * E + e], p1 = partial[(b + 1) * E + e];
            const A p2 = partial[(b + 2) * E + e], p3 = partial[(b + 3) * E + e];
            acc += p0;
            acc += p1;
            acc += p2;
            acc += p3;
        }
        for (; b < P; ++b) acc += partial[b * E + e];
        if (is_db) db[e - K * C] = dtype_cast<T>(acc);
        else dw[e] = dtype_cast<T>(acc);
    }
}

}  // namespace cuda_kernels

namespace detail {

struct DepthwiseGeometryCuda {
    std::int64_t N = 0, L = 0, C = 0, K = 0, d = 1, pad_left = 0, Lo = 0;
};

template <class T>
DepthwiseGeometryCuda depthwise_geometry_cuda(const Tensor<T, Cuda>& x, const Tensor<T, Cuda>& w,
                                              const Tensor<T, Cuda>& bias, std::int64_t dilation, PaddingMode mode,
                                              const char* op) {
    static_assert(cuda_kernels::kConvCudaDType<T>,
                  "polymath CUDA depthwise convolution: T must be float, double, bfloat16 or half");
    x.check_defined(op);
    w.check_defined(op);
    POLYMATH_CHECK(x.dim() == 3 && w.dim() == 2, op, "expects input [N, L, C] and weight [K, C], got shapes ", x.shape(),
                   " and ", w.shape());
    POLYMATH_CHECK(w.shape()[1] == x.shape()[2], op, "weight of shape ", w.shape(), " does not match the ", x.shape()[2],
                   " channels of the input of shape ", x.shape(), " (channels-last [N, L, C])");
    POLYMATH_CHECK(w.shape()[0] >= 1, op, "weight of shape ", w.shape(), " has no taps");
    POLYMATH_CHECK(dilation >= 1, op, "dilation must be >= 1, got ", dilation);
    POLYMATH_CHECK(!bias.defined() || bias.shape() == (Shape{x.shape()[2]}), op, "bias of shape ", bias.shape(),
                   " does not match the ", x.shape()[2], " channels of the input of shape ", x.shape());
    cuda::check_same_device(op, x, w, bias);
    DepthwiseGeometryCuda g;
    g.N = x.shape()[0];
    g.L = x.shape()[1];
    g.C = x.shape()[2];
    g.K = w.shape()[0];
    g.d = dilation;
    const std::int64_t span = dilation * (g.K - 1);
    switch (mode) {
        case PaddingMode::Same:
            g.pad_left = span / 2;
            g.Lo = g.L;
            break;
        case PaddingMode::Causal:
            g.pad_left = span;
            g.Lo = g.L;
            break;
        case PaddingMode::Valid:
            POLYMATH_CHECK(g.L >= span + 1, op, "input of shape ", x.shape(), " is shorter than the dilated kernel (",
                           span + 1, " steps) of the weight of shape ", w.shape(), " with Valid padding");
            g.pad_left = 0;
            g.Lo = g.L - span;
            break;
    }
    return g;
}

inline bool conv_aligned(const void* p, std::size_t bytes) {
    return p == nullptr || reinterpret_cast<std::uintptr_t>(p) % bytes == 0;
}

// Channel tile: CT threads of VEC channels (about 128 bytes of a row), RY rows of threads.
struct DwTile {
    int CT = 1, RY = 1;
};
template <class T, int VEC>
DwTile dw_tile(std::int64_t C) {
    const std::int64_t groups = C / VEC;
    const int row_threads = std::max<int>(1, int(128 / (sizeof(T) * VEC)));  // threads covering 128 bytes
    DwTile t;
    t.CT = int(std::min<std::int64_t>(groups, row_threads));
    t.CT = std::max(t.CT, 1);
    t.RY = std::max(1, cuda::kThreads / t.CT);
    return t;
}

inline constexpr std::size_t kDwSmemBudget = 48 * 1024;

// out = depthwise pass (forward or flipped dx pass) of `in` with taps w.
template <class T, int VEC>
void dw_conv_launch(const T* in, const T* w, const T* bias, T* out, const cuda_kernels::DwGeo& g, bool flip) {
    using A = cuda::compute_t<T>;
    const cudaStream_t s = cuda::current_stream();
    const DwTile tile = dw_tile<T, VEC>(g.C);
    const int CTV = tile.CT * VEC;
    const std::int64_t span = g.d * (g.K - 1);
    const std::size_t ws_bytes = (std::size_t(g.K) * CTV * sizeof(A) + 15) / 16 * 16;
    // Outputs per block: up to 8 per thread, no more than the sequence needs; halve while the
    // staged rows do not fit.
    const std::int64_t need = (g.Lout + tile.RY - 1) / tile.RY * tile.RY;
    std::int64_t TL = std::min<std::int64_t>(std::int64_t(tile.RY) * 8, need);
    auto smem_of = [&](std::int64_t tl) { return ws_bytes + std::size_t(tl + span) * CTV * sizeof(T); };
    while (TL > tile.RY && smem_of(TL) > kDwSmemBudget) TL = std::max<std::int64_t>(tile.RY, TL / 2);
    const std::int64_t ctiles = (g.C / VEC + tile.CT - 1) / tile.CT;
    const std::int64_t ntiles = (g.Lout + TL - 1) / TL;
    if (smem_of(TL) <= kDwSmemBudget && g.N * ntiles <= 0x7FFFFFFF && ctiles <= 65535) {
        const dim3 grid{unsigned(g.N * ntiles), unsigned(ctiles)};
        const dim3 block{unsigned(tile.CT), unsigned(tile.RY)};
        cuda_kernels::dw_conv_tiled<T, VEC>
            <<<grid, block, smem_of(TL), s>>>(in, w, bias, out, g, flip, int(TL), ntiles);
        POLYMATH_CUDA_CHECK_LAUNCH("depthwise_conv1d");
    } else {
        const std::int64_t total = g.N * g.Lout * (g.C / VEC);
        cuda_kernels::dw_conv_direct<T, VEC><<<cuda::grid_for(total), cuda::kThreads, 0, s>>>(in, w, bias, out, g, flip);
        POLYMATH_CUDA_CHECK_LAUNCH("depthwise_conv1d");
    }
}

template <class T>
constexpr int conv_vec_width() {
    return int(16 / sizeof(T));
}

// Picks the vector width: 16-byte accesses when C and every pointer allow it.
template <class T, class F>
void dw_dispatch_vec(std::int64_t C, std::initializer_list<const void*> ptrs, F&& f) {
    constexpr int V = conv_vec_width<T>();
    bool ok = C % V == 0;
    for (const void* p : ptrs) ok = ok && conv_aligned(p, sizeof(T) * V);
    if (ok) f(std::integral_constant<int, V>());
    else f(std::integral_constant<int, 1>());
}

}  // namespace detail

template <class T>
Tensor<T, Cuda> depthwise_conv1d(const Tensor<T, Cuda>& x_in, const Tensor<T, Cuda>& w_in,
                                 const Tensor<T, Cuda>& bias = {}, std::int64_t dilation = 1,
                                 PaddingMode padding = PaddingMode::Same) {
    const detail::DepthwiseGeometryCuda g =
        detail::depthwise_geometry_cuda(x_in, w_in, bias, dilation, padding, "depthwise_conv1d");
    Tensor<T, Cuda> y = Tensor<T, Cuda>::empty({g.N, g.Lo, g.C});
    if (y.numel() == 0) return y;
    const Tensor<T, Cuda> x = x_in.contiguous(), w = w_in.contiguous();
    const Tensor<T, Cuda> b = bias.defined() ? bias.contiguous() : bias;
    const T* bp = b.defined() ? b.data() : nullptr;
    const cuda_kernels::DwGeo geo{g.N, g.L, g.Lo, g.C, g.K, g.d, g.pad_left};
    detail::dw_dispatch_vec<T>(g.C, {x.data(), w.data(), bp, y.data()}, [&](auto vec) {
        detail::dw_conv_launch<T, decltype(vec)::value>(x.data(), w.data(), bp, y.data(), geo, false);
    });
    return y;
}

// Gradients of depthwise_conv1d from g = dL/dy [N, Lo, C].
template <class T>
ConvGradsCuda<T> depthwise_conv1d_backward(const Tensor<T, Cuda>& g_in, const Tensor<T, Cuda>& x_in,
                                           const Tensor<T, Cuda>& w_in, std::int64_t dilation = 1,
                                           PaddingMode padding = PaddingMode::Same, bool need_dx = true,
                                           bool need_dw = true, bool need_db = true) {
    using A = cuda::compute_t<T>;
    const detail::DepthwiseGeometryCuda geo = detail::depthwise_geometry_cuda(
        x_in, w_in, Tensor<T, Cuda>(), dilation, padding, "depthwise_conv1d_backward");
    g_in.check_defined("depthwise_conv1d_backward");
    const Shape ys{geo.N, geo.Lo, geo.C};
    POLYMATH_CHECK(g_in.shape() == ys, "depthwise_conv1d_backward", "gradient of shape ", g_in.shape(),
                   " does not match the output shape ", ys);
    cuda::check_same_device("depthwise_conv1d_backward", x_in, g_in);
    const Tensor<T, Cuda> gy = g_in.contiguous(), x = x_in.contiguous(), w = w_in.contiguous();
    const std::int64_t C = geo.C, K = geo.K, L = geo.L, Lo = geo.Lo, span = geo.d * (K - 1);
    const cudaStream_t s = cuda::current_stream();
    ConvGradsCuda<T> r;
    if (need_dx) {
        r.dx = Tensor<T, Cuda>::empty(x.shape());
        if (r.dx.numel() > 0) {
            if (gy.numel() == 0) {
                r.dx.fill_(dtype_cast<T>(0.0f));
            } else {
                // dx[n, s, c] = sum_k w[k, c] · g[n, s - k d + pad_left, c]
                //             = sum_k' w[K-1-k', c] · g[n, s + k' d - (span - pad_left), c]
                const cuda_kernels::DwGeo dg{geo.N, Lo, L, C, K, geo.d, span - geo.pad_left};
                detail::dw_dispatch_vec<T>(C, {gy.data(), w.data(), r.dx.data()}, [&](auto vec) {
                    detail::dw_conv_launch<T, decltype(vec)::value>(gy.data(), w.data(), nullptr, r.dx.data(), dg, true);
                });
            }
        }
    }
    if (need_dw || need_db) {
        if (need_dw) r.dw = Tensor<T, Cuda>::empty({K, C});
        if (need_db) r.db = Tensor<T, Cuda>::empty({C});
        const std::int64_t rows = geo.N * Lo;
        if (C > 0 && rows == 0) {
            if (need_dw) r.dw.fill_(dtype_cast<T>(0.0f));
            if (need_db) r.db.fill_(dtype_cast<T>(0.0f));
        } else if (C > 0) {
            detail::dw_dispatch_vec<T>(C, {gy.data(), x.data()}, [&](auto vec) {
                constexpr int VEC = decltype(vec)::value;
                const detail::DwTile tile = detail::dw_tile<T, VEC>(C);
                const int CTV = tile.CT * VEC;
                const std::int64_t need = (Lo + tile.RY - 1) / tile.RY * tile.RY;
                std::int64_t TL = std::min<std::int64_t>(std::int64_t(tile.RY) * 16, need);
                const std::size_t red_bytes = std::size_t(tile.RY) * CTV * sizeof(A);
                auto smem_of = [&](std::int64_t tl) {
                    return (std::size_t(tl) * CTV * sizeof(T) + 15) / 16 * 16 + red_bytes;
                };
                while (TL > tile.RY && smem_of(TL) > detail::kDwSmemBudget)
                    TL = std::max<std::int64_t>(tile.RY, TL / 2);
                const std::int64_t ntiles = (Lo + TL - 1) / TL;
                const std::int64_t items = geo.N * ntiles;
                const std::int64_t per = (items + 1023) / 1024;  // shapes only: at most 1024 partials
                const std::int64_t P = (items + per - 1) / per;
                const std::int64_t ctiles = (C / VEC + tile.CT - 1) / tile.CT;
                POLYMATH_CHECK(ctiles <= 65535, "depthwise_conv1d_backward", "too many channels: ", C);
                Tensor<A, Cuda> partial = Tensor<A, Cuda>::empty({P, K + 1, C});
                const dim3 grid{unsigned(P), unsigned(ctiles)};
                const dim3 block{unsigned(tile.CT), unsigned(tile.RY)};
                const cuda_kernels::DwGeo wg{geo.N, L, Lo, C, K, geo.d, geo.pad_left};
                cuda_kernels::dw_grad_weight_partial<T, VEC><<<grid, block, smem_of(TL), s>>>(
                    gy.data(), x.data(), partial.data(), wg, int(TL), ntiles, items, per, need_dw, need_db);
                POLYMATH_CUDA_CHECK_LAUNCH("depthwise_conv1d_backward");
                cuda_kernels::dw_grad_weight_finalize<T><<<cuda::grid_for((K + 1) * C), cuda::kThreads, 0, s>>>(
                    partial.data(), P, K, C, need_dw ? r.dw.data() : nullptr, need_db ? r.db.data() : nullptr);
                POLYMATH_CUDA_CHECK_LAUNCH("depthwise_conv1d_backward");
            });
        }
    }
    return r;
}

}  // namespace polymath::ops
