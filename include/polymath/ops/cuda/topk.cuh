// polymath/ops/cuda/topk.cuh — ops::topk on Tensor<T, Cuda> (no autograd).
//
//   auto [values, indices] = ops::topk(x, k, axis = -1, largest = true, sorted = true);
//
// Same semantics as ops/topk.hpp: values and indices have x's shape with
// `axis` of size k; a strict total order ranks the entries (better value
// first, NaN above every number, ties to the lower index), so the result is
// unique and equals the CPU's bit for bit. sorted = true gives the k entries
// best first, sorted = false in ascending index order. The result struct is
// TopKCuda<T> (device tensors); T is an arithmetic type, as on the CPU.
//
// Kernels (a line along the axis is a "row"; another axis is first permuted
// to the last and made contiguous):
//   * topk_warp_rows — the MoE gating case (rows of n <= 256, e.g. E experts,
//     k small): one warp per row, the row held in registers (NPL = ceil(n/32)
//     values per lane, NPL templated so the arrays stay in registers). Round r
//     selects the best entry strictly after round r-1's choice in the total
//     order (no "removed" marks needed): each lane scans its NPL values, then
//     a 5-step xor-shuffle butterfly combines the lanes (the combine is
//     commutative and associative, so every lane ends with the same winner).
//     sorted = false: the k-th choice is a threshold; every entry at or before
//     it in the order is selected and written in index order with a ballot
//     compaction.
//   * topk_block_rows — any other row length: one 256-thread block per row,
//     the same selection rounds with a block reduction (warp shuffles, then a
//     shared-memory pass over the 8 warp winners). O(k·n) reads per row, which
//     suits small k (gating, sampling); large k on long rows is correct but slow.
// No host synchronisation; no atomics.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <type_traits>

#include "polymath/core/shape.hpp"
#include "polymath/cuda/check.hpp"
#include "polymath/cuda/launch.cuh"
#include "polymath/cuda/runtime.hpp"
#include "polymath/cuda/tensor_backend.cuh"
#include "polymath/tensor/tensor.hpp"

namespace polymath::ops {

template <class T>
struct TopKCuda {
    Tensor<T, Cuda> values;
    Tensor<std::int64_t, Cuda> indices;
};

namespace cuda_kernels {

template <class T>
__device__ __forceinline__ bool topk_nan(T v) {
    if constexpr (std::is_floating_point_v<T>)
        return v != v;
    else
        return false;
}

// Strict total order of ops/topk.hpp: does (va, ia) come before (vb, ib)?
template <class T>
__device__ __forceinline__ bool topk_before(T va, std::int32_t ia, T vb, std::int32_t ib, bool largest) {
    const bool na = topk_nan(va), nb = topk_nan(vb);
    if (na || nb) return na && nb ? ia < ib : (largest ? na : nb);
    if (va != vb) return largest ? va > vb : va < vb;
    return ia < ib;
}

// A candidate; i < 0 = none.
template <class T>
struct TopkCand {
    T v;
    std::int32_t i;
};

template <class T>
__device__ __forceinline__ TopkCand<T> topk_better(TopkCand<T> a, TopkCand<T> b, bool largest) {
    if (a.i < 0) return b;
    if (b.i < 0) return a;
    return topk_before(a.v, a.i, b.v, b.i, largest) ? a : b;
}

// __shfl_xor_sync has no overloads for 8/16-bit types (bool, char, short): go through int.
template <class T>
__device__ __forceinline__ T topk_shfl_xor(T v, int off) {
    if constexpr (sizeof(T) < 4)
        return static_cast<T>(__shfl_xor_sync(0xffffffffu, static_cast<int>(v), off));
    else
        return __shfl_xor_sync(0xffffffffu, v, off);
}

template <class T>
__device__ __forceinline__ TopkCand<T> topk_warp_best(TopkCand<T> c, bool largest) {
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) {
        TopkCand<T> o;
        o.v = topk_shfl_xor(c.v, off);
        o.i = __shfl_xor_sync(0xffffffffu, c.i, off);
        c = topk_better(c, o, largest);
    }
    return c;
}

// Is (v, i) eligible in a round whose previous choice is prev (prev.i < 0: first round)?
template <class T>
__device__ __forceinline__ bool topk_after(T v, std::int32_t i, TopkCand<T> prev, bool largest) {
    return prev.i < 0 || topk_before(prev.v, prev.i, v, i, largest);
}

// One warp per row; rows x [R, n] contiguous, n <= 32 * NPL.
template <class T, int NPL>
__global__ void topk_warp_rows(const T* __restrict__ x, T* __restrict__ vals, std::int64_t* __restrict__ idxs,
                               std::int64_t R, int n, int k, bool largest, bool sorted) {
    const int lane = threadIdx.x & 31;
    const std::int64_t warps_per_block = blockDim.x >> 5;
    for (std::int64_t row = blockIdx.x * warps_per_block + (threadIdx.x >> 5); row < R;
         row += std::int64_t(gridDim.x) * warps_per_block) {
        const T* xr = x + row * n;
        T v[NPL];
#pragma unroll
        for (int q = 0; q < NPL; ++q) {
            const int c = lane + 32 * q;
            v[q] = c < n ? xr[c] : T(0);
        }
        T* vo = vals + row * k;
        std::int64_t* io = idxs + row * k;
        TopkCand<T> prev{T(0), -1};
        for (int r = 0; r < k; ++r) {
            TopkCand<T> best{T(0), -1};
#pragma unroll
            for (int q = 0; q < NPL; ++q) {
                const int c = lane + 32 * q;
                if (c < n && topk_after(v[q], c, prev, largest)) best = topk_better(best, TopkCand<T>{v[q], c}, largest);
            }
            best = topk_warp_best(best, largest);
            if (sorted && lane == 0) {
                vo[r] = best.v;
                io[r] = best.i;
            }
            prev = best;
        }
        if (!sorted && k > 0) {
            // prev = the k-th best: selected = every entry not after it. Written in index order.
            int base = 0;
#pragma unroll
            for (int q = 0; q < NPL; ++q) {
                const int c = lane + 32 * q;
                const bool sel = c < n && !topk_before(prev.v, prev.i, v[q], c, largest);
                const unsigned m = __ballot_sync(0xffffffffu, sel);
                if (sel) {
                    const int pos = base + __popc(m & ((1u << lane) - 1u));
                    vo[pos] = v[q];
                    io[pos] = c;
                }
                base += __popc(m);
            }
        }
    }
}

// One block (kBlockThreads) per row, any n.
inline constexpr int kTopkBlockThreads = 256;

template <class T>
__device__ TopkCand<T> topk_block_best(TopkCand<T> c, bool largest, TopkCand<T>* sh /* [32] */) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
    c = topk_warp_best(c, largest);
    __syncthreads();  // sh may still be read from the previous call
    if (lane == 0) sh[warp] = c;
    __syncthreads();
    if (warp == 0) {
        TopkCand<T> w = lane < nwarps ? sh[lane] : TopkCand<T>{T(0), -1};
        w = topk_warp_best(w, largest);
        if (lane == 0) sh[0] = w;
    }
    __syncthreads();
    return sh[0];
}

template <class T>
__global__ void topk_block_rows(const T* __restrict__ x, T* __restrict__ vals, std::int64_t* __restrict__ idxs,
                                std::int64_t R, int n, int k, bool largest, bool sorted) {
    __shared__ TopkCand<T> sh[32];
    __shared__ int warp_count[32];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
    for (std::int64_t row = blockIdx.x; row < R; row += gridDim.x) {
        const T* xr = x + row * n;
        T* vo = vals + row * k;
        std::int64_t* io = idxs + row * k;
        TopkCand<T> prev{T(0), -1};
        for (int r = 0; r < k; ++r) {
            TopkCand<T> best{T(0), -1};
            for (int c = threadIdx.x; c < n; c += blockDim.x) {
                const T v = xr[c];
                if (topk_after(v, c, prev, largest)) best = topk_better(best, TopkCand<T>{v, c}, largest);
            }
            best = topk_block_best(best, largest, sh);
            if (sorted && threadIdx.x == 0) {
                vo[r] = best.v;
                io[r] = best.i;
            }
            prev = best;
        }
        if (!sorted && k > 0) {
            // Ordered compaction of the selected entries, one tile of blockDim entries at a time.
            int base = 0;
            for (int t0 = 0; t0 < n; t0 += blockDim.x) {
                const int c = t0 + threadIdx.x;
                bool sel = false;
                T v = T(0);
                if (c < n) {
                    v = xr[c];
                    sel = !topk_before(prev.v, prev.i, v, c, largest);
                }
                const unsigned m = __ballot_sync(0xffffffffu, sel);
                __syncthreads();  // warp_count of the previous tile has been read
                if (lane == 0) warp_count[warp] = __popc(m);
                __syncthreads();
                int before = base;
                for (int w = 0; w < warp; ++w) before += warp_count[w];
                if (sel) {
                    const int pos = before + __popc(m & ((1u << lane) - 1u));
                    vo[pos] = v;
                    io[pos] = c;
                }
                for (int w = 0; w < nwarps; ++w) base += warp_count[w];
            }
        }
        __syncthreads();  // sh / warp_count reuse by the next row
    }
}

}  // namespace cuda_kernels

template <class T>
TopKCuda<T> topk(const Tensor<T, Cuda>& x, std::int64_t k, std::int64_t axis = -1, bool largest = true,
                 bool sorted = true) {
    static_assert(std::is_arithmetic_v<T>, "topk: T must be a floating-point or integer type");
    x.check_defined("topk");
    const Tensor<T, Cuda> xs = x.dim() == 0 ? x.reshape({1}) : x;
    const int a = normalize_axis(axis, xs.dim(), "topk");
    const std::int64_t n = xs.shape()[a];
    POLYMATH_CHECK(k >= 0 && k <= n, "topk", "k = ", k, " is out of range for axis ", a, " of size ", n, " (shape ",
                   x.shape(), ")");
    POLYMATH_CHECK(n < (std::int64_t(1) << 31), "topk", "an axis of ", n, " entries is too long for the CUDA topk");
    const int last = xs.dim() - 1;
    // Move the axis last (a view), then make the rows contiguous.
    std::vector<std::int64_t> perm;
    for (int d = 0; d < xs.dim(); ++d)
        if (d != a) perm.push_back(d);
    perm.push_back(a);
    const Tensor<T, Cuda> xc = (a == last ? xs : xs.permute(perm)).contiguous();
    Shape rs = xc.shape();
    rs[last] = k;
    TopKCuda<T> r{Tensor<T, Cuda>::empty(rs), Tensor<std::int64_t, Cuda>::empty(rs)};
    const std::int64_t R = n > 0 ? xc.numel() / n : 0;
    if (r.values.numel() > 0) {
        const cudaStream_t s = cuda::current_stream();
        const int ni = int(n), ki = int(k);
        auto warp_launch = [&](auto npl_tag) {
            constexpr int NPL = decltype(npl_tag)::value;
            constexpr int kWarps = 8;
            const std::int64_t blocks_needed = (R + kWarps - 1) / kWarps;
            const unsigned blocks =
                unsigned(std::min<std::int64_t>(blocks_needed, std::int64_t(cuda::multiprocessor_count()) * 64));
            cuda_kernels::topk_warp_rows<T, NPL><<<blocks, kWarps * 32, 0, s>>>(xc.data(), r.values.data(),
                                                                                 r.indices.data(), R, ni, ki, largest,
                                                                                 sorted);
        };
        if (n <= 32)
            warp_launch(std::integral_constant<int, 1>{});
        else if (n <= 64)
            warp_launch(std::integral_constant<int, 2>{});
        else if (n <= 128)
            warp_launch(std::integral_constant<int, 4>{});
        else if (n <= 256)
            warp_launch(std::integral_constant<int, 8>{});
        else {
            const unsigned blocks =
                unsigned(std::min<std::int64_t>(R, std::int64_t(cuda::multiprocessor_count()) * 32));
            cuda_kernels::topk_block_rows<T><<<blocks, cuda_kernels::kTopkBlockThreads, 0, s>>>(
                xc.data(), r.values.data(), r.indices.data(), R, ni, ki, largest, sorted);
        }
        POLYMATH_CUDA_CHECK_LAUNCH("topk");
    }
    if (a != last) {
        // Inverse permutation: result dim perm[i] comes from position i.
        std::vector<std::int64_t> inv(perm.size());
        for (std::size_t i = 0; i < perm.size(); ++i) inv[std::size_t(perm[i])] = std::int64_t(i);
        r.values = r.values.permute(inv).contiguous();
        r.indices = r.indices.permute(inv).contiguous();
    }
    if (x.dim() == 0 && k == 1) {  // a scalar input gives scalar results
        r.values = r.values.reshape({});
        r.indices = r.indices.reshape({});
    }
    return r;
}

}  // namespace polymath::ops
