// polymath/ops/cuda/moe.cuh — mixture-of-experts routing on the device: the
// plan, dispatch and combine of ops/moe.hpp for Tensor<T, Cuda>.
//
//   ops::MoePlanCuda plan = ops::moe_plan(indices /*[S,k] int64, Cuda*/, E, capacity, padding_mask);
//   Tensor<float, Cuda> xs = ops::moe_dispatch(x, plan);          // [A, d], rows sorted by expert
//   Tensor<float, Cuda> y  = ops::moe_combine(ys, gates, plan);   // [S, d]
//   ops::MoePlan host = plan.to_host();                            // equals ops::moe_plan on the CPU
//
// The plan is the CPU's exactly (same rows, same order, same drops):
//   1. keys: every assignment (s, j) gets key e = indices[s, j], or E when the
//      token is padding (or the index is invalid: reported below);
//   2. capacity (C >= 0): the keys in SLOT-MAJOR order (q = j·S + s, GShard's
//      priority) are stably radix-sorted (CUB) by expert; an assignment is
//      kept iff its position within its expert's run is < C. Dropless: all
//      non-padding assignments are kept, no sort;
//   3. rows: the keys in token-major order (p = s·k + j), dropped ones mapped
//      to E, are stably radix-sorted again: the kept assignments come out by
//      expert, in (token, slot) order within an expert — the CPU's counting
//      sort. Expert offsets are lower bounds of e in the sorted keys.
// Radix sorts on ceil(log2(E+1)) bits only (E = 64: 7 bits, one pass), values
// are the int32 positions; S·k must be < 2^31. Everything is deterministic.
// moe_plan synchronises the host ONCE (4 int64 downloaded): the row count A
// fixes the shapes of dispatch's output, and an out-of-range expert index
// throws the CPU's Error ("expert index 9 at token 3 outside [0, 8)").
//
// dispatch / combine and their backward passes are warp-per-row kernels
// (8 warps per 256-thread block, grid-stride over rows), 16-byte vector
// loads when d·sizeof(T) is a multiple of 16 and the pointers are aligned:
//   dispatch            xs[r]   = x[row_token[r]]                (gather, warp per row r)
//   dispatch_backward   dx[s]   = Σ_j dxs[slot_row[s, j]]        (warp per token, slots in order)
//   combine             y[s]    = Σ_j gates[s, j] · ys[slot_row[s, j]]   (warp per token)
//   combine_backward    dys[r]  = gates[s, j] · g[s];  dgates[s, j] = <g[s], ys[r]> (warp per token,
//                       the dot product a warp shuffle reduction)
// No float atomics: each output element is written by one lane, which sums
// its token's k slots in slot order. float/double products and sums use
// explicit round-to-nearest intrinsics (no FMA contraction), so dispatch,
// combine and their backward dys match the CPU bit for bit; dgates differs
// only by the summation order of the dot product. bf16/half: float compute,
// one rounding at the end (the CPU rounds after every operation).
#pragma once
#include <cuda_runtime.h>

#include <cub/device/device_radix_sort.cuh>

#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <type_traits>
#include <vector>

#include "polymath/cuda/check.hpp"
#include "polymath/cuda/launch.cuh"
#include "polymath/cuda/runtime.hpp"
#include "polymath/cuda/tensor_backend.cuh"
#include "polymath/ops/moe.hpp"
#include "polymath/tensor/tensor.hpp"

namespace polymath::ops {

// The device counterpart of MoePlan: index arrays as device tensors.
struct MoePlanCuda {
    std::int64_t num_tokens = 0, k = 0, num_experts = 0;
    Tensor<std::int64_t, Cuda> expert_offsets;     // [E+1]
    Tensor<std::int64_t, Cuda> row_token;          // [A]
    Tensor<std::int64_t, Cuda> slot_row;           // [S*k], -1 if dropped or padding
    Tensor<std::int64_t, Cuda> tokens_per_expert;  // [E]
    std::int64_t dropped = 0;
    std::int64_t valid_tokens = 0;
    std::int64_t num_rows = 0;  // A
    std::int64_t rows() const { return num_rows; }

    // The host plan (downloads; waits for the current stream).
    MoePlan to_host() const {
        MoePlan p;
        p.num_tokens = num_tokens;
        p.k = k;
        p.num_experts = num_experts;
        p.expert_offsets = expert_offsets.to<Cpu>();
        p.row_token = num_rows > 0 ? row_token.to_vector() : std::vector<std::int64_t>{};
        p.slot_row = num_tokens * k > 0 ? slot_row.to_vector() : std::vector<std::int64_t>{};
        p.tokens_per_expert = tokens_per_expert.to_vector();
        p.dropped = dropped;
        p.valid_tokens = valid_tokens;
        return p;
    }
};

// A host plan copied to the device.
inline MoePlanCuda moe_plan_to_device(const MoePlan& p) {
    MoePlanCuda d;
    d.num_tokens = p.num_tokens;
    d.k = p.k;
    d.num_experts = p.num_experts;
    d.expert_offsets = p.expert_offsets.to<Cuda>();
    d.row_token = Tensor<std::int64_t>::from_vector(p.row_token, {p.rows()}).to<Cuda>();
    d.slot_row = Tensor<std::int64_t>::from_vector(p.slot_row, {std::int64_t(p.slot_row.size())}).to<Cuda>();
    d.tokens_per_expert =
        Tensor<std::int64_t>::from_vector(p.tokens_per_expert, {std::int64_t(p.tokens_per_expert.size())}).to<Cuda>();
    d.dropped = p.dropped;
    d.valid_tokens = p.valid_tokens;
    d.num_rows = p.rows();
    return d;
}

template <class T>
struct MoeCombineGradsCuda {
    Tensor<T, Cuda> dys;     // [A, d]
    Tensor<T, Cuda> dgates;  // [S, k]
};

namespace cuda_kernels {

// ---- plan --------------------------------------------------------------------

// Step 1. Over p = s*K + j: validate, write the sort keys. With capacity the
// keys go to slot-major position q = j*S + s (keys1/vals1); dropless writes
// the final keys2 directly. vals2 = p always.
template <int = 0>  // a template, so that the header may be included in several translation units
__global__ void moe_plan_keys(const std::int64_t* __restrict__ idx, const std::uint8_t* __restrict__ pad,
                                     std::int64_t S, std::int64_t K, std::int64_t E, bool capacity_mode,
                                     std::int32_t* __restrict__ keys1, std::int32_t* __restrict__ vals1,
                                     std::int32_t* __restrict__ keys2, std::int32_t* __restrict__ vals2,
                                     unsigned long long* __restrict__ bad_pos) {
    const std::int64_t n = S * K;
    for (std::int64_t p = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; p < n;
         p += std::int64_t(gridDim.x) * blockDim.x) {
        const std::int64_t s = p / K, j = p - s * K;
        const std::int64_t e = idx[p];
        const bool bad = e < 0 || e >= E;
        if (bad) atomicMin(bad_pos, static_cast<unsigned long long>(p));
        const bool skip = bad || (pad != nullptr && pad[s] != 0);
        const std::int32_t key = skip ? std::int32_t(E) : std::int32_t(e);
        vals2[p] = std::int32_t(p);
        if (capacity_mode) {
            const std::int64_t q = j * S + s;
            keys1[q] = key;
            vals1[q] = std::int32_t(p);
        } else {
            keys2[p] = key;
        }
    }
}

// First position of key >= e in the sorted keys[0, n).
__device__ __forceinline__ std::int64_t moe_lower_bound(const std::int32_t* keys, std::int64_t n, std::int64_t e) {
    std::int64_t lo = 0, hi = n;
    while (lo < hi) {
        const std::int64_t mid = lo + ((hi - lo) >> 1);
        if (std::int64_t(keys[mid]) < e)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

// Step 2 (capacity). keys1s/p1s: slot-major keys sorted stably by expert. An
// assignment is kept iff its rank within its expert's run is < C.
template <int = 0>  // a template, so that the header may be included in several translation units
__global__ void moe_plan_capacity(const std::int32_t* __restrict__ keys1s, const std::int32_t* __restrict__ p1s,
                                         std::int64_t n, std::int64_t E, std::int64_t C,
                                         std::int32_t* __restrict__ keys2) {
    for (std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; i < n;
         i += std::int64_t(gridDim.x) * blockDim.x) {
        const std::int32_t e = keys1s[i];
        bool kept = false;
        if (e < E) kept = i - moe_lower_bound(keys1s, n, e) < C;
        keys2[p1s[i]] = kept ? e : std::int32_t(E);
    }
}

// Step 3 (one block). Offsets and counts from the sorted keys2, the number of
// valid tokens, and the 4 scalars the host reads: {A, valid, bad p or -1, bad value}.
template <int = 0>  // a template, so that the header may be included in several translation units
__global__ void moe_plan_finalize(const std::int32_t* __restrict__ keys2s, std::int64_t n, std::int64_t E,
                                         const std::uint8_t* __restrict__ pad, std::int64_t S,
                                         const std::int64_t* __restrict__ idx,
                                         const unsigned long long* __restrict__ bad_pos,
                                         std::int64_t* __restrict__ offsets, std::int64_t* __restrict__ counts,
                                         std::int64_t* __restrict__ stats) {
    __shared__ std::int64_t warp_sum[32];
    for (std::int64_t e = threadIdx.x; e <= E; e += blockDim.x) {
        const std::int64_t lo = moe_lower_bound(keys2s, n, e);
        offsets[e] = lo;
        if (e < E) counts[e] = moe_lower_bound(keys2s, n, e + 1) - lo;
    }
    std::int64_t valid = 0;
    for (std::int64_t s = threadIdx.x; s < S; s += blockDim.x) valid += (pad == nullptr || pad[s] == 0) ? 1 : 0;
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) valid += __shfl_xor_sync(0xffffffffu, valid, off);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
    if (lane == 0) warp_sum[warp] = valid;
    __syncthreads();
    if (threadIdx.x == 0) {
        std::int64_t v = 0;
        for (int w = 0; w < nwarps; ++w) v += warp_sum[w];
        stats[0] = moe_lower_bound(keys2s, n, E);
        stats[1] = v;
        const unsigned long long b = *bad_pos;
        if (b != ~0ull) {
            stats[2] = std::int64_t(b);
            stats[3] = idx[b];
        } else {
            stats[2] = -1;
            stats[3] = 0;
        }
    }
}

// Step 4. Rows from the sorted keys2 / positions.
template <int = 0>  // a template, so that the header may be included in several translation units
__global__ void moe_plan_rows(const std::int32_t* __restrict__ p2s, std::int64_t n, std::int64_t A,
                                     std::int64_t K, std::int64_t* __restrict__ row_token,
                                     std::int64_t* __restrict__ slot_row) {
    for (std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; i < n;
         i += std::int64_t(gridDim.x) * blockDim.x) {
        const std::int64_t p = p2s[i];
        if (i < A) {
            row_token[i] = p / K;
            slot_row[p] = i;
        } else {
            slot_row[p] = -1;
        }
    }
}

// ---- dispatch / combine --------------------------------------------------------

template <class T, int V>
struct alignas(sizeof(T) * V) MoePack {
    T v[V];
};

template <class T, int V>
__device__ __forceinline__ MoePack<T, V> moe_load(const T* p) {
    return *reinterpret_cast<const MoePack<T, V>*>(p);
}
template <class T, int V>
__device__ __forceinline__ void moe_store(T* p, const MoePack<T, V>& v) {
    *reinterpret_cast<MoePack<T, V>*>(p) = v;
}

// a + b and a * b rounded once each (never contracted into an FMA), as the CPU computes them.
__device__ __forceinline__ float moe_add(float a, float b) { return __fadd_rn(a, b); }
__device__ __forceinline__ double moe_add(double a, double b) { return __dadd_rn(a, b); }
__device__ __forceinline__ float moe_mul(float a, float b) { return __fmul_rn(a, b); }
__device__ __forceinline__ double moe_mul(double a, double b) { return __dmul_rn(a, b); }

inline constexpr int kMoeWarps = 8;

#define POLYMATH_MOE_WARP_LOOP(var, count)                                                       \
    for (std::int64_t var = blockIdx.x * std::int64_t(kMoeWarps) + (threadIdx.x >> 5); var < (count); \
         var += std::int64_t(gridDim.x) * kMoeWarps)

template <class T, int V>
__global__ void moe_dispatch_kernel(const T* __restrict__ x, const std::int64_t* __restrict__ row_token,
                                    T* __restrict__ xs, std::int64_t A, std::int64_t d) {
    const int lane = threadIdx.x & 31;
    POLYMATH_MOE_WARP_LOOP(r, A) {
        const T* src = x + row_token[r] * d;
        T* dst = xs + r * d;
        for (std::int64_t c = std::int64_t(lane) * V; c < d; c += 32 * V) moe_store<T, V>(dst + c, moe_load<T, V>(src + c));
    }
}

template <class T, int V>
__global__ void moe_dispatch_backward_kernel(const T* __restrict__ g, const std::int64_t* __restrict__ slot_row,
                                             T* __restrict__ dx, std::int64_t S, std::int64_t K, std::int64_t d) {
    using C = cuda::compute_t<T>;
    const int lane = threadIdx.x & 31;
    POLYMATH_MOE_WARP_LOOP(s, S) {
        const std::int64_t* sr = slot_row + s * K;
        for (std::int64_t c = std::int64_t(lane) * V; c < d; c += 32 * V) {
            C acc[V];
#pragma unroll
            for (int u = 0; u < V; ++u) acc[u] = C(0);
            for (std::int64_t j = 0; j < K; ++j) {
                const std::int64_t r = sr[j];
                if (r < 0) continue;
                const MoePack<T, V> v = moe_load<T, V>(g + r * d + c);
#pragma unroll
                for (int u = 0; u < V; ++u) acc[u] = moe_add(acc[u], C(v.v[u]));
            }
            MoePack<T, V> o;
#pragma unroll
            for (int u = 0; u < V; ++u) o.v[u] = T(acc[u]);
            moe_store<T, V>(dx + s * d + c, o);
        }
    }
}

template <class T, int V>
__global__ void moe_combine_kernel(const T* __restrict__ ys, const T* __restrict__ gates,
                                   const std::int64_t* __restrict__ slot_row, T* __restrict__ y, std::int64_t S,
                                   std::int64_t K, std::int64_t d) {
    using C = cuda::compute_t<T>;
    const int lane = threadIdx.x & 31;
    POLYMATH_MOE_WARP_LOOP(s, S) {
        const std::int64_t* sr = slot_row + s * K;
        const T* gs = gates + s * K;
        for (std::int64_t c = std::int64_t(lane) * V; c < d; c += 32 * V) {
            C acc[V];
#pragma unroll
            for (int u = 0; u < V; ++u) acc[u] = C(0);
            for (std::int64_t j = 0; j < K; ++j) {
                const std::int64_t r = sr[j];
                if (r < 0) continue;
                const C w = C(gs[j]);
                const MoePack<T, V> v = moe_load<T, V>(ys + r * d + c);
#pragma unroll
                for (int u = 0; u < V; ++u) acc[u] = moe_add(acc[u], moe_mul(w, C(v.v[u])));
            }
            MoePack<T, V> o;
#pragma unroll
            for (int u = 0; u < V; ++u) o.v[u] = T(acc[u]);
            moe_store<T, V>(y + s * d + c, o);
        }
    }
}

template <class T, int V>
__global__ void moe_combine_backward_kernel(const T* __restrict__ g, const T* __restrict__ ys,
                                            const T* __restrict__ gates, const std::int64_t* __restrict__ slot_row,
                                            T* __restrict__ dys, T* __restrict__ dgates, std::int64_t S,
                                            std::int64_t K, std::int64_t d) {
    using C = cuda::compute_t<T>;
    const int lane = threadIdx.x & 31;
    POLYMATH_MOE_WARP_LOOP(s, S) {
        const T* gs = g + s * d;
        for (std::int64_t j = 0; j < K; ++j) {
            const std::int64_t r = slot_row[s * K + j];  // warp-uniform
            if (r < 0) {
                if (dgates != nullptr && lane == 0) dgates[s * K + j] = T(0);
                continue;
            }
            const C w = C(gates[s * K + j]);
            C dot = C(0);
            for (std::int64_t c = std::int64_t(lane) * V; c < d; c += 32 * V) {
                const MoePack<T, V> gv = moe_load<T, V>(gs + c);
                if (dys != nullptr) {
                    MoePack<T, V> o;
#pragma unroll
                    for (int u = 0; u < V; ++u) o.v[u] = T(moe_mul(w, C(gv.v[u])));
                    moe_store<T, V>(dys + r * d + c, o);
                }
                if (dgates != nullptr) {
                    const MoePack<T, V> yv = moe_load<T, V>(ys + r * d + c);
#pragma unroll
                    for (int u = 0; u < V; ++u) dot += C(gv.v[u]) * C(yv.v[u]);
                }
            }
            if (dgates != nullptr) {
#pragma unroll
                for (int off = 16; off > 0; off >>= 1) dot += __shfl_xor_sync(0xffffffffu, dot, off);
                if (lane == 0) dgates[s * K + j] = T(dot);
            }
        }
    }
}

#undef POLYMATH_MOE_WARP_LOOP

// Vector width for rows of d elements at these pointers: 16 bytes when every
// row start is 16-byte aligned, else 1.
template <class T>
int moe_vec_width(std::int64_t d, std::initializer_list<const void*> ptrs) {
    constexpr int V = sizeof(T) <= 16 && 16 % sizeof(T) == 0 ? int(16 / sizeof(T)) : 1;
    if (V == 1 || d % V != 0) return 1;
    for (const void* p : ptrs)
        if (p != nullptr && reinterpret_cast<std::uintptr_t>(p) % 16 != 0) return 1;
    return V;
}

inline unsigned moe_warp_grid(std::int64_t rows) {
    const std::int64_t need = (rows + kMoeWarps - 1) / kMoeWarps;
    return unsigned(std::max<std::int64_t>(1, std::min<std::int64_t>(need, std::int64_t(cuda::multiprocessor_count()) * 32)));
}

// Calls f(std::integral_constant<int, V>) for the chosen width.
template <class T, class F>
void moe_with_width(int v, F&& f) {
    constexpr int VMax = sizeof(T) <= 16 && 16 % sizeof(T) == 0 ? int(16 / sizeof(T)) : 1;
    if constexpr (VMax > 1) {
        if (v == VMax) {
            f(std::integral_constant<int, VMax>{});
            return;
        }
    }
    f(std::integral_constant<int, 1>{});
}

}  // namespace cuda_kernels

// capacity < 0: dropless. padding_mask: uint8 [S] (any shape with S entries), nonzero = padding.
inline MoePlanCuda moe_plan(const Tensor<std::int64_t, Cuda>& indices_in, std::int64_t num_experts,
                            std::int64_t capacity,
                            const Tensor<std::uint8_t, Cuda>& padding_mask = Tensor<std::uint8_t, Cuda>()) {
    indices_in.check_defined("moe_plan");
    POLYMATH_CHECK(indices_in.dim() == 2, "moe_plan", "expert indices must be [S, k], got ", indices_in.shape());
    POLYMATH_CHECK(num_experts >= 1, "moe_plan", "num_experts must be >= 1, got ", num_experts);
    cuda::check_same_device("moe_plan", indices_in, padding_mask);
    const Tensor<std::int64_t, Cuda> indices = indices_in.contiguous();
    MoePlanCuda p;
    p.num_tokens = indices.size(0);
    p.k = indices.size(1);
    p.num_experts = num_experts;
    const std::int64_t S = p.num_tokens, K = p.k, E = num_experts, n = S * K;
    if (padding_mask.defined())
        POLYMATH_CHECK(padding_mask.numel() == S, "moe_plan", "padding_mask of shape ", padding_mask.shape(),
                       " must have one entry per token (", S, ")");
    POLYMATH_CHECK(n < (std::int64_t(1) << 31) && E < (std::int64_t(1) << 30), "moe_plan", "S*k = ", n,
                   " assignments or ", E, " experts are too many for the CUDA plan (S*k < 2^31)");
    const Tensor<std::uint8_t, Cuda> pad = padding_mask.defined() ? padding_mask.contiguous() : padding_mask;
    const std::uint8_t* padp = pad.defined() && S > 0 ? pad.data() : nullptr;
    const cudaStream_t st = cuda::current_stream();
    const bool cap_mode = capacity >= 0;

    // Scratch: keys/values int32 ([n] each, up to 6 arrays), bad_pos.
    Tensor<std::int32_t, Cuda> scratch = Tensor<std::int32_t, Cuda>::empty({std::max<std::int64_t>(1, 6 * n)});
    std::int32_t* keys1 = scratch.data();
    std::int32_t* vals1 = keys1 + n;
    std::int32_t* keys1s = vals1 + n;  // reused for keys2s after step 2
    std::int32_t* p1s = keys1s + n;    // reused for p2s after step 2
    std::int32_t* keys2 = p1s + n;
    std::int32_t* vals2 = keys2 + n;
    Tensor<std::int64_t, Cuda> bad = Tensor<std::int64_t, Cuda>::full({1}, std::int64_t(-1));  // all bits set
    auto* bad_pos = reinterpret_cast<unsigned long long*>(bad.data());
    int bits = 0;
    while ((std::int64_t(1) << bits) <= E) ++bits;  // keys are in [0, E]

    Tensor<std::uint8_t, Cuda> temp;
    auto radix_sort = [&](const std::int32_t* kin, std::int32_t* kout, const std::int32_t* vin, std::int32_t* vout) {
        std::size_t bytes = 0;
        POLYMATH_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(nullptr, bytes, kin, kout, vin, vout, int(n), 0, bits, st));
        if (!temp.defined() || temp.numel() < std::int64_t(bytes))
            temp = Tensor<std::uint8_t, Cuda>::empty({std::max<std::int64_t>(1, std::int64_t(bytes))});
        POLYMATH_CUDA_CHECK(
            cub::DeviceRadixSort::SortPairs(temp.data(), bytes, kin, kout, vin, vout, int(n), 0, bits, st));
    };

    if (n > 0) {
        cuda_kernels::moe_plan_keys<><<<cuda::grid_for(n), cuda::kThreads, 0, st>>>(
            indices.data(), padp, S, K, E, cap_mode, keys1, vals1, keys2, vals2, bad_pos);
        POLYMATH_CUDA_CHECK_LAUNCH("moe_plan");
        if (cap_mode) {
            radix_sort(keys1, keys1s, vals1, p1s);
            cuda_kernels::moe_plan_capacity<><<<cuda::grid_for(n), cuda::kThreads, 0, st>>>(keys1s, p1s, n, E, capacity,
                                                                                          keys2);
            POLYMATH_CUDA_CHECK_LAUNCH("moe_plan");
        }
        radix_sort(keys2, keys1s, vals2, p1s);  // -> keys2s, p2s
    }
    const std::int32_t* keys2s = keys1s;
    const std::int32_t* p2s = p1s;

    p.expert_offsets = Tensor<std::int64_t, Cuda>::empty({E + 1});
    p.tokens_per_expert = Tensor<std::int64_t, Cuda>::empty({E});
    Tensor<std::int64_t, Cuda> stats = Tensor<std::int64_t, Cuda>::empty({4});
    cuda_kernels::moe_plan_finalize<><<<1, 1024, 0, st>>>(keys2s, n, E, padp, S, indices.data(), bad_pos,
                                                        p.expert_offsets.data(), p.tokens_per_expert.data(),
                                                        stats.data());
    POLYMATH_CUDA_CHECK_LAUNCH("moe_plan");
    std::int64_t h[4] = {0, 0, -1, 0};
    POLYMATH_CUDA_CHECK(cudaMemcpyAsync(h, stats.data(), sizeof h, cudaMemcpyDeviceToHost, st));
    POLYMATH_CUDA_CHECK(cudaStreamSynchronize(st));
    if (h[2] >= 0)
        POLYMATH_CHECK(false, "moe_plan", "expert index ", h[3], " at token ", h[2] / K, " outside [0, ", E, ")");
    const std::int64_t A = h[0];
    p.num_rows = A;
    p.valid_tokens = h[1];
    p.dropped = h[1] * K - A;
    p.row_token = Tensor<std::int64_t, Cuda>::empty({A});
    p.slot_row = Tensor<std::int64_t, Cuda>::empty({n});
    if (n > 0) {
        cuda_kernels::moe_plan_rows<><<<cuda::grid_for(n), cuda::kThreads, 0, st>>>(p2s, n, A, K, p.row_token.data(),
                                                                                  p.slot_row.data());
        POLYMATH_CUDA_CHECK_LAUNCH("moe_plan");
    }
    return p;
}

template <class T>
Tensor<T, Cuda> moe_dispatch(const Tensor<T, Cuda>& x_in, const MoePlanCuda& p) {
    POLYMATH_CHECK(x_in.dim() == 2 && x_in.size(0) == p.num_tokens, "moe_dispatch", "tokens of shape ", x_in.shape(),
                   " must be [S=", p.num_tokens, ", d]");
    cuda::check_same_device("moe_dispatch", x_in, p.slot_row);
    const Tensor<T, Cuda> x = x_in.contiguous();
    const std::int64_t d = x.size(1), A = p.rows();
    Tensor<T, Cuda> xs = Tensor<T, Cuda>::empty({A, d});
    if (A == 0 || d == 0) return xs;
    const int v = cuda_kernels::moe_vec_width<T>(d, {x.data(), xs.data()});
    cuda_kernels::moe_with_width<T>(v, [&](auto vt) {
        constexpr int V = decltype(vt)::value;
        cuda_kernels::moe_dispatch_kernel<T, V><<<cuda_kernels::moe_warp_grid(A), cuda_kernels::kMoeWarps * 32, 0,
                                                  cuda::current_stream()>>>(x.data(), p.row_token.data(), xs.data(),
                                                                            A, d);
    });
    POLYMATH_CUDA_CHECK_LAUNCH("moe_dispatch");
    return xs;
}

// dx[s] = Σ_j dxs[slot_row[s, j]] (slot order).
template <class T>
Tensor<T, Cuda> moe_dispatch_backward(const Tensor<T, Cuda>& g_in, const MoePlanCuda& p) {
    POLYMATH_CHECK(g_in.dim() == 2 && g_in.size(0) == p.rows(), "moe_dispatch_backward", "gradient ", g_in.shape(),
                   " must have ", p.rows(), " rows");
    cuda::check_same_device("moe_dispatch_backward", g_in, p.slot_row);
    const Tensor<T, Cuda> g = g_in.contiguous();
    const std::int64_t d = g.size(1), S = p.num_tokens;
    Tensor<T, Cuda> dx = Tensor<T, Cuda>::empty({S, d});
    if (S == 0 || d == 0) return dx;
    if (p.k == 0) {
        dx.fill_(T(0));
        return dx;
    }
    const int v = cuda_kernels::moe_vec_width<T>(d, {g.numel() > 0 ? g.data() : nullptr, dx.data()});
    cuda_kernels::moe_with_width<T>(v, [&](auto vt) {
        constexpr int V = decltype(vt)::value;
        cuda_kernels::moe_dispatch_backward_kernel<T, V>
            <<<cuda_kernels::moe_warp_grid(S), cuda_kernels::kMoeWarps * 32, 0, cuda::current_stream()>>>(
                g.numel() > 0 ? g.data() : nullptr, p.slot_row.data(), dx.data(), S, p.k, d);
    });
    POLYMATH_CUDA_CHECK_LAUNCH("moe_dispatch_backward");
    return dx;
}

template <class T>
Tensor<T, Cuda> moe_combine(const Tensor<T, Cuda>& ys_in, const Tensor<T, Cuda>& gates_in, const MoePlanCuda& p) {
    POLYMATH_CHECK(ys_in.dim() == 2 && ys_in.size(0) == p.rows(), "moe_combine", "expert outputs ", ys_in.shape(),
                   " must have ", p.rows(), " rows");
    POLYMATH_CHECK(gates_in.shape() == (Shape{p.num_tokens, p.k}), "moe_combine", "gates of shape ", gates_in.shape(),
                   " must be [S, k] = ", Shape{p.num_tokens, p.k});
    cuda::check_same_device("moe_combine", ys_in, gates_in, p.slot_row);
    const Tensor<T, Cuda> ys = ys_in.contiguous(), gates = gates_in.contiguous();
    const std::int64_t d = ys.size(1), S = p.num_tokens;
    Tensor<T, Cuda> y = Tensor<T, Cuda>::empty({S, d});
    if (S == 0 || d == 0) return y;
    if (p.k == 0) {
        y.fill_(T(0));
        return y;
    }
    const T* ysp = ys.numel() > 0 ? ys.data() : nullptr;
    const int v = cuda_kernels::moe_vec_width<T>(d, {ysp, y.data()});
    cuda_kernels::moe_with_width<T>(v, [&](auto vt) {
        constexpr int V = decltype(vt)::value;
        cuda_kernels::moe_combine_kernel<T, V>
            <<<cuda_kernels::moe_warp_grid(S), cuda_kernels::kMoeWarps * 32, 0, cuda::current_stream()>>>(
                ysp, gates.data(), p.slot_row.data(), y.data(), S, p.k, d);
    });
    POLYMATH_CUDA_CHECK_LAUNCH("moe_combine");
    return y;
}

template <class T>
MoeCombineGradsCuda<T> moe_combine_backward(const Tensor<T, Cuda>& g_in, const Tensor<T, Cuda>& ys_in,
                                            const Tensor<T, Cuda>& gates_in, const MoePlanCuda& p,
                                            bool need_ys = true, bool need_gates = true) {
    const Tensor<T, Cuda> g = g_in.contiguous(), ys = ys_in.contiguous(), gates = gates_in.contiguous();
    POLYMATH_CHECK(ys.dim() == 2 && ys.size(0) == p.rows(), "moe_combine_backward", "expert outputs ", ys.shape(),
                   " must have ", p.rows(), " rows");
    POLYMATH_CHECK(g.shape() == (Shape{p.num_tokens, ys.size(1)}), "moe_combine_backward", "gradient ", g.shape(),
                   " must be [S, d] = ", Shape{p.num_tokens, ys.size(1)});
    POLYMATH_CHECK(gates.shape() == (Shape{p.num_tokens, p.k}), "moe_combine_backward", "gates of shape ",
                   gates.shape(), " must be [S, k] = ", Shape{p.num_tokens, p.k});
    cuda::check_same_device("moe_combine_backward", g, ys, gates, p.slot_row);
    const std::int64_t d = ys.size(1), S = p.num_tokens, K = p.k;
    MoeCombineGradsCuda<T> r;
    if (need_ys) r.dys = Tensor<T, Cuda>::empty({p.rows(), d});
    if (need_gates) r.dgates = Tensor<T, Cuda>::empty({S, K});
    if (S == 0 || K == 0 || (!need_ys && !need_gates)) return r;
    if (d == 0) {  // nothing to read: dgates are empty sums
        if (need_gates) r.dgates.fill_(T(0));
        return r;
    }
    const T* ysp = ys.numel() > 0 ? ys.data() : nullptr;
    T* dysp = need_ys && r.dys.numel() > 0 ? r.dys.data() : nullptr;
    T* dgp = need_gates ? r.dgates.data() : nullptr;
    const int v = cuda_kernels::moe_vec_width<T>(d, {g.data(), ysp, dysp});
    cuda_kernels::moe_with_width<T>(v, [&](auto vt) {
        constexpr int V = decltype(vt)::value;
        cuda_kernels::moe_combine_backward_kernel<T, V>
            <<<cuda_kernels::moe_warp_grid(S), cuda_kernels::kMoeWarps * 32, 0, cuda::current_stream()>>>(
                g.data(), ysp, gates.data(), p.slot_row.data(), dysp, dgp, S, K, d);
    });
    POLYMATH_CUDA_CHECK_LAUNCH("moe_combine_backward");
    return r;
}

}  // namespace polymath::ops
