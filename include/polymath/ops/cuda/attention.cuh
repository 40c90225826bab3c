// polymath/ops/cuda/attention.cuh — fused multi-head scaled dot-product
// attention on Tensor<T, Cuda>, FlashAttention-2 style (no [Lq, Lk] matrix in
// global memory, forward or backward).
//
//   auto f = ops::attention_forward(q, k, v, key_padding_mask, {.num_heads = 8, .causal = true});
//   auto g = ops::attention_backward(grad_out, q, k, v, f, {.num_heads = 8, .causal = true});
//
// Same layouts and semantics as the CPU op (ops/attention.hpp):
//   q [B, Lq, H*dk], k [B, Lk, H*dk], v [B, Lk, H*dv] (last axis stride 1;
//   rows may be padded, e.g. a narrow() of a fused QKV projection — no copy),
//   key_padding_mask [B, Lk] uint8 (nonzero = padded key) or undefined,
//   S = scale · Q_bh K_bhᵀ, S[i, j] = -inf where the key is padded or (causal)
//   j > i + (Lk - Lq); P = softmax_j(S); a row whose keys are all masked gets
//   P = 0, so output 0 and zero gradients (never NaN); out [B, Lq, H*dv].
// Differences from the CPU op:
//   * the forward saves the per-row logsumexp (AttentionForwardCuda<T>::lse,
//     [B, H, Lq], +inf for fully masked rows) and the mask, not the
//     probabilities [B, H, Lq, Lk]; the backward takes that struct where the
//     CPU one takes `probs` (and recomputes P tile by tile);
//   * head dims (dk and dv) up to 128 (an Error beyond);
//   * the options argument is AttentionOptionsCuda (same fields as
//     ops::AttentionOptions: num_heads, causal, scale) or any struct with those
//     fields — so a CPU ops::AttentionOptions object can be passed as is,
//     without this header including the CPU (Eigen) header.
//
// dtypes: float, double (compute in that type; double for tight gradient
// parity), bfloat16 and half (storage only: every product, the softmax and the
// accumulators are float; lse is float).
//
// Kernels (256 threads = a 16 x 16 grid (ty, tx); all tile sizes are
// compile-time: BR = BC = 64 for float compute, 32 for double; the head-dim
// bound D ∈ {32, 64, 128} is a template parameter, the smallest that holds
// max(dk, dv)):
//   attention_fwd_kernel   one block per (b·h, block of BR query rows). The Q
//       tile stays in shared memory; the block walks the key blocks of BC
//       keys (causal: only blocks left of / on the diagonal), loading K, V;
//       thread (ty, tx) computes the S micro-tile rows ty+16r, cols tx+16c in
//       registers, the row max/sum go through 16-lane shuffles (a row's 16
//       threads are one half-warp), the online softmax rescales the running
//       accumulator O[rows ty+16r, cols tx+16c] (registers), P goes through
//       shared memory for O += P V. Writes O / l and lse = m + log l.
//   attention_bwd_delta_kernel  Δ_i = Σ_c dO_ic O_ic, one warp per row.
//   attention_bwd_dkdv_kernel   one block per (b·h, block of BC keys): K, V
//       stay in shared memory; the block walks the query blocks (causal: from
//       the first one that can see the keys), recomputes Pᵀ = exp(scale·K Qᵀ
//       − lse) and dPᵀ = V dOᵀ per tile, dSᵀ = Pᵀ ⊙ (dPᵀ − Δ), and
//       accumulates dV += Pᵀ dO, dK += dSᵀ Q in registers.
//   attention_bwd_dq_kernel     one block per (b·h, block of BR queries): Q,
//       dO stay in shared memory; walks the key blocks, recomputes P and dP,
//       accumulates dQ += dS K in registers.
// Every output element is written by exactly one thread and summed in a fixed
// order: no atomics, results are bitwise deterministic. P is recomputed twice
// in the backward (once per kernel), the price of no atomics.
//
// Shared memory per block (LD = D + 1 floats per row: the +1 keeps the
// column reads of K/Q tiles on distinct banks), for D = 128:
//   forward  (BR + 2·BC)·LD + BR·(BC+1) elements + BC flag bytes
//            float: 115,776 B;   double (32 x 32): 107,552 B
//   dQ       (2·BR + 2·BC)·LD + BR·(BC+1) + 2·BR elements + BC bytes
//            float: 149,312 B;   double: 141,088 B
//   dK/dV    (2·BC + 2·BR)·LD + 2·BC·(BR+1) + 2·BR elements + BC bytes
//            float: 165,952 B;   double: 149,536 B
// (D = 64 / 32 need about half / a quarter of that.) All above 48 KiB opt in
// with cudaFuncAttributeMaxDynamicSharedMemorySize; sm_90 allows 227 KiB.
// This is the CUDA-core version (no tensor cores yet): correctness first.
#pragma once
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "polymath/core/error.hpp"
#include "polymath/cuda/check.hpp"
#include "polymath/cuda/launch.cuh"
#include "polymath/cuda/runtime.hpp"
#include "polymath/cuda/tensor_backend.cuh"
#include "polymath/tensor/tensor.hpp"

namespace polymath::ops {

// Same fields and defaults as ops::AttentionOptions (ops/attention.hpp).
struct AttentionOptionsCuda {
    std::int64_t num_heads = 1;
    bool causal = false;
    double scale = 0;  // 0: 1/sqrt(dk)
};

template <class T>
struct AttentionForwardCuda {
    Tensor<T, Cuda> out;                          // [B, Lq, H*dv]
    Tensor<cuda::compute_t<T>, Cuda> lse;         // [B, H, Lq]: log Σ_j exp(S_ij) over unmasked j; +inf if none
    Tensor<std::uint8_t, Cuda> key_padding_mask;  // the forward's mask (contiguous), or undefined
};

template <class T>
struct AttentionGradsCuda {
    Tensor<T, Cuda> dq, dk, dv;  // contiguous, shapes of q, k, v (undefined where not needed)
};

namespace cuda_kernels {

inline constexpr int kAttnThreads = 256;  // 16 x 16; the kernels assume exactly this

template <class C>
struct AttnTile {  // float compute
    static constexpr int BR = 64, BC = 64;
};
template <>
struct AttnTile<double> {
    static constexpr int BR = 32, BC = 32;
};

template <class C, int D>
struct AttnSmem {
    static constexpr int BR = AttnTile<C>::BR, BC = AttnTile<C>::BC, LD = D + 1;
    static constexpr std::size_t fwd = std::size_t((BR + 2 * BC) * LD + BR * (BC + 1)) * sizeof(C) + BC;
    static constexpr std::size_t dq = std::size_t((2 * BR + 2 * BC) * LD + BR * (BC + 1) + 2 * BR) * sizeof(C) + BC;
    static constexpr std::size_t dkdv =
        std::size_t((2 * BC + 2 * BR) * LD + 2 * BC * (BR + 1) + 2 * BR) * sizeof(C) + BC;
};
static_assert(AttnSmem<float, 128>::dkdv <= 227 * 1024 && AttnSmem<double, 128>::dkdv <= 227 * 1024 &&
                  AttnSmem<float, 128>::dq <= 227 * 1024 && AttnSmem<double, 128>::dq <= 227 * 1024,
              "attention tiles exceed sm_90's 227 KiB of shared memory per block");

// Everything the kernels need, by value. Element strides; the last axis of
// every operand has stride 1. Outputs (out, dq, dk, dv) and o are contiguous.
template <class T, class C>
struct AttnArgs {
    const T* q = nullptr;
    const T* k = nullptr;
    const T* v = nullptr;
    const std::uint8_t* kpm = nullptr;  // [B, Lk] contiguous, or null
    const T* o = nullptr;               // saved forward output (backward)
    const T* dout = nullptr;            // upstream gradient (backward)
    T* out = nullptr;
    T* dq = nullptr;
    T* dk_out = nullptr;
    T* dv_out = nullptr;
    C* lse = nullptr;    // [B, H, Lq]
    C* delta = nullptr;  // [B, H, Lq]
    std::int64_t q_sb = 0, q_sl = 0, k_sb = 0, k_sl = 0, v_sb = 0, v_sl = 0, do_sb = 0, do_sl = 0;
    std::int64_t B = 0, H = 0, Lq = 0, Lk = 0, shift = 0;  // shift = Lk - Lq (causal diagonal)
    int dk = 0, dv = 0;
    C scale = 0;
    bool causal = false;
};

template <class C>
__device__ __forceinline__ C attn_exp(C x) {
    if constexpr (std::is_same_v<C, float>) return expf(x);
    else return exp(x);
}
template <class C>
__device__ __forceinline__ C attn_log(C x) {
    if constexpr (std::is_same_v<C, float>) return logf(x);
    else return log(x);
}
__device__ __forceinline__ std::int64_t attn_min(std::int64_t x, std::int64_t y) { return x < y ? x : y; }
__device__ __forceinline__ std::int64_t attn_max(std::int64_t x, std::int64_t y) { return x > y ? x : y; }
template <class C>
__device__ __forceinline__ C attn_inf() {
    return C(INFINITY);
}
// Reductions over the 16 lanes of a half-warp (lanes 0-15 or 16-31): xor
// offsets below 16 never leave it. All 32 lanes must call (full mask).
template <class C>
__device__ __forceinline__ C attn_halfwarp_max(C v) {
#pragma unroll
    for (int o = 8; o > 0; o >>= 1) v = fmax(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}
template <class C>
__device__ __forceinline__ C attn_halfwarp_sum(C v) {
#pragma unroll
    for (int o = 8; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

// dst[r][c] (row stride D+1), r < ROWS, c < D, from src[(r0 + r) * row_stride + c]:
// zero where r0 + r >= nrows or c >= ncols (so padded rows/columns contribute
// nothing to any product). Consecutive threads read consecutive columns.
template <class T, class C, int D, int ROWS>
__device__ __forceinline__ void attn_load_tile(C* dst, const T* src, std::int64_t row_stride, std::int64_t r0,
                                               std::int64_t nrows, int ncols) {
    for (int idx = threadIdx.x; idx < ROWS * D; idx += kAttnThreads) {
        const int r = idx / D, c = idx % D;
        const std::int64_t gr = r0 + r;
        dst[r * (D + 1) + c] = (gr < nrows && c < ncols) ? dtype_cast<C>(src[gr * row_stride + c]) : C(0);
    }
}

// flags[c] = 1 iff key j0 + c exists and is not padded.
__device__ __forceinline__ void attn_load_key_flags(unsigned char* flags, int n, const std::uint8_t* kpm_b,
                                                    std::int64_t j0, std::int64_t Lk) {
    for (int c = threadIdx.x; c < n; c += kAttnThreads) {
        const std::int64_t j = j0 + c;
        flags[c] = (j < Lk && !(kpm_b && kpm_b[j])) ? 1 : 0;
    }
}

// Grid: B*H*ceil(Lq/BR) blocks of 256 threads; dynamic smem AttnSmem<C, D>::fwd.
template <class T, int D>
__global__ void __launch_bounds__(kAttnThreads)
    attention_fwd_kernel(const AttnArgs<T, cuda::compute_t<T>> a, const std::int64_t n_qblocks) {
    using C = cuda::compute_t<T>;
    constexpr int BR = AttnTile<C>::BR, BC = AttnTile<C>::BC, LD = D + 1;
    constexpr int RM = BR / 16, CM = BC / 16, DM = D / 16;
    extern __shared__ __align__(16) unsigned char attn_smem[];
    C* Qs = reinterpret_cast<C*>(attn_smem);  // [BR][LD]
    C* Ks = Qs + BR * LD;                      // [BC][LD]
    C* Vs = Ks + BC * LD;                      // [BC][LD]
    C* Ps = Vs + BC * LD;                      // [BR][BC+1]
    unsigned char* flags = reinterpret_cast<unsigned char*>(Ps + BR * (BC + 1));  // [BC]

    const int tid = int(threadIdx.x), ty = tid >> 4, tx = tid & 15;
    const std::int64_t bh = std::int64_t(blockIdx.x) / n_qblocks;
    const std::int64_t i0 = (std::int64_t(blockIdx.x) % n_qblocks) * BR;
    const std::int64_t b = bh / a.H, h = bh % a.H;
    const std::uint8_t* kpm_b = a.kpm ? a.kpm + b * a.Lk : nullptr;
    const T* qg = a.q + b * a.q_sb + h * a.dk;
    const T* kg = a.k + b * a.k_sb + h * a.dk;
    const T* vg = a.v + b * a.v_sb + h * a.dv;

    attn_load_tile<T, C, D, BR>(Qs, qg, a.q_sl, i0, a.Lq, a.dk);

    const C ninf = -attn_inf<C>();
    C m[RM], l[RM], acc[RM][DM];
#pragma unroll
    for (int r = 0; r < RM; ++r) {
        m[r] = ninf;
        l[r] = C(0);
#pragma unroll
        for (int cc = 0; cc < DM; ++cc) acc[r][cc] = C(0);
    }

    // Causal: keys j <= i + shift for the block's last row i = min(i0+BR, Lq) - 1.
    std::int64_t kend = a.Lk;
    if (a.causal) kend = attn_min(attn_max(attn_min(i0 + BR, a.Lq) + a.shift, 0), a.Lk);

    for (std::int64_t j0 = 0; j0 < kend; j0 += BC) {
        __syncthreads();  // the previous tile's reads of Ks, Vs, Ps, flags are done (and Qs is loaded)
        attn_load_tile<T, C, D, BC>(Ks, kg, a.k_sl, j0, a.Lk, a.dk);
        attn_load_tile<T, C, D, BC>(Vs, vg, a.v_sl, j0, a.Lk, a.dv);
        attn_load_key_flags(flags, BC, kpm_b, j0, a.Lk);
        __syncthreads();

        C s[RM][CM];
#pragma unroll
        for (int r = 0; r < RM; ++r)
#pragma unroll
            for (int c = 0; c < CM; ++c) s[r][c] = C(0);
        for (int d = 0; d < a.dk; ++d) {
            C qv[RM], kv[CM];
#pragma unroll
            for (int r = 0; r < RM; ++r) qv[r] = Qs[(ty + 16 * r) * LD + d];
#pragma unroll
            for (int c = 0; c < CM; ++c) kv[c] = Ks[(tx + 16 * c) * LD + d];
#pragma unroll
            for (int r = 0; r < RM; ++r)
#pragma unroll
                for (int c = 0; c < CM; ++c) s[r][c] = fma(qv[r], kv[c], s[r][c]);
        }

#pragma unroll
        for (int r = 0; r < RM; ++r) {
            const std::int64_t i = i0 + ty + 16 * r;
            C mx = ninf;
#pragma unroll
            for (int c = 0; c < CM; ++c) {
                const int jl = tx + 16 * c;
                const bool ok = flags[jl] && (!a.causal || j0 + jl <= i + a.shift);
                s[r][c] = ok ? s[r][c] * a.scale : ninf;
                mx = fmax(mx, s[r][c]);
            }
            mx = attn_halfwarp_max(mx);  // uniform control flow: every lane gets here
            const C m_new = fmax(m[r], mx);
            const bool none = m_new == ninf;  // no unmasked key for this row so far
            const C alpha = none ? C(1) : attn_exp(m[r] - m_new);
            C rs = C(0);
#pragma unroll
            for (int c = 0; c < CM; ++c) {
                const C p = (none || s[r][c] == ninf) ? C(0) : attn_exp(s[r][c] - m_new);
                Ps[(ty + 16 * r) * (BC + 1) + tx + 16 * c] = p;
                rs += p;
            }
            rs = attn_halfwarp_sum(rs);
            l[r] = l[r] * alpha + rs;
            m[r] = m_new;
#pragma unroll
            for (int cc = 0; cc < DM; ++cc) acc[r][cc] *= alpha;
        }
        __syncthreads();  // Ps complete

        const int jn = int(attn_min(BC, a.Lk - j0));  // keys past Lk have P = 0
        for (int jl = 0; jl < jn; ++jl) {
            C pv[RM];
#pragma unroll
            for (int r = 0; r < RM; ++r) pv[r] = Ps[(ty + 16 * r) * (BC + 1) + jl];
#pragma unroll
            for (int cc = 0; cc < DM; ++cc) {
                const C vv = Vs[jl * LD + tx + 16 * cc];
#pragma unroll
                for (int r = 0; r < RM; ++r) acc[r][cc] = fma(pv[r], vv, acc[r][cc]);
            }
        }
    }

#pragma unroll
    for (int r = 0; r < RM; ++r) {
        const std::int64_t i = i0 + ty + 16 * r;
        if (i >= a.Lq) continue;
        const C inv = l[r] > C(0) ? C(1) / l[r] : C(0);  // l = 0: every key masked -> output 0
        T* orow = a.out + ((b * a.Lq + i) * a.H + h) * a.dv;
#pragma unroll
        for (int cc = 0; cc < DM; ++cc) {
            const int c = tx + 16 * cc;
            if (c < a.dv) orow[c] = dtype_cast<T>(acc[r][cc] * inv);
        }
        if (tx == 0) a.lse[bh * a.Lq + i] = l[r] > C(0) ? m[r] + attn_log(l[r]) : attn_inf<C>();
    }
}

// delta[bh*Lq + i] = Σ_c dO[b, i, h*dv + c] · O[b, i, h*dv + c]; one warp per
// row, grid-stride over the B*H*Lq rows (the loop bound is warp-uniform).
template <class T>
__global__ void __launch_bounds__(kAttnThreads) attention_bwd_delta_kernel(const AttnArgs<T, cuda::compute_t<T>> a) {
    using C = cuda::compute_t<T>;
    const int lane = int(threadIdx.x) & 31;
    const std::int64_t rows = a.B * a.H * a.Lq;
    const std::int64_t nwarps = std::int64_t(gridDim.x) * (kAttnThreads / 32);
    for (std::int64_t row = std::int64_t(blockIdx.x) * (kAttnThreads / 32) + (threadIdx.x >> 5); row < rows;
         row += nwarps) {
        const std::int64_t bh = row / a.Lq, i = row % a.Lq, b = bh / a.H, h = bh % a.H;
        const T* g = a.dout + b * a.do_sb + i * a.do_sl + h * a.dv;
        const T* o = a.o + ((b * a.Lq + i) * a.H + h) * a.dv;
        C s = C(0);
        for (int c = lane; c < a.dv; c += 32) s = fma(dtype_cast<C>(g[c]), dtype_cast<C>(o[c]), s);
#pragma unroll
        for (int off = 16; off > 0; off >>= 1) s += __shfl_xor_sync(0xffffffffu, s, off);
        if (lane == 0) a.delta[row] = s;
    }
}

// Grid: B*H*ceil(Lk/BC) blocks; dynamic smem AttnSmem<C, D>::dkdv. Thread
// (ty, tx) owns key rows ty+16r of the block; in the Pᵀ tile it computes
// query columns tx+16c, in dK/dV head columns tx+16cc.
template <class T, int D>
__global__ void __launch_bounds__(kAttnThreads)
    attention_bwd_dkdv_kernel(const AttnArgs<T, cuda::compute_t<T>> a, const std::int64_t n_kblocks) {
    using C = cuda::compute_t<T>;
    constexpr int KB = AttnTile<C>::BC, QB = AttnTile<C>::BR, LD = D + 1;
    constexpr int RA = KB / 16, CA = QB / 16, DM = D / 16;
    extern __shared__ __align__(16) unsigned char attn_smem[];
    C* Ks = reinterpret_cast<C*>(attn_smem);  // [KB][LD]
    C* Vs = Ks + KB * LD;                      // [KB][LD]
    C* Qs = Vs + KB * LD;                      // [QB][LD]
    C* dOs = Qs + QB * LD;                     // [QB][LD]
    C* PT = dOs + QB * LD;                     // [KB][QB+1]  Pᵀ
    C* dST = PT + KB * (QB + 1);               // [KB][QB+1]  dSᵀ
    C* lse_s = dST + KB * (QB + 1);            // [QB]
    C* dl_s = lse_s + QB;                      // [QB]
    unsigned char* flags = reinterpret_cast<unsigned char*>(dl_s + QB);  // [KB]

    const int tid = int(threadIdx.x), ty = tid >> 4, tx = tid & 15;
    const std::int64_t bh = std::int64_t(blockIdx.x) / n_kblocks;
    const std::int64_t j0 = (std::int64_t(blockIdx.x) % n_kblocks) * KB;
    const std::int64_t b = bh / a.H, h = bh % a.H;
    const std::uint8_t* kpm_b = a.kpm ? a.kpm + b * a.Lk : nullptr;
    const T* qg = a.q + b * a.q_sb + h * a.dk;
    const T* kg = a.k + b * a.k_sb + h * a.dk;
    const T* vg = a.v + b * a.v_sb + h * a.dv;
    const T* gg = a.dout + b * a.do_sb + h * a.dv;
    const C* lse_bh = a.lse + bh * a.Lq;
    const C* dl_bh = a.delta + bh * a.Lq;

    attn_load_tile<T, C, D, KB>(Ks, kg, a.k_sl, j0, a.Lk, a.dk);
    attn_load_tile<T, C, D, KB>(Vs, vg, a.v_sl, j0, a.Lk, a.dv);
    attn_load_key_flags(flags, KB, kpm_b, j0, a.Lk);

    C dk_acc[RA][DM], dv_acc[RA][DM];
#pragma unroll
    for (int r = 0; r < RA; ++r)
#pragma unroll
        for (int cc = 0; cc < DM; ++cc) dk_acc[r][cc] = dv_acc[r][cc] = C(0);

    // Causal: query i sees key j iff j <= i + shift; the first query that sees
    // any of the keys j0.. is i = j0 - shift.
    std::int64_t istart = 0;
    if (a.causal) istart = (attn_max(j0 - a.shift, 0) / QB) * QB;

    for (std::int64_t i0 = istart; i0 < a.Lq; i0 += QB) {
        __syncthreads();  // previous iteration's reads done (and Ks, Vs, flags loaded)
        attn_load_tile<T, C, D, QB>(Qs, qg, a.q_sl, i0, a.Lq, a.dk);
        attn_load_tile<T, C, D, QB>(dOs, gg, a.do_sl, i0, a.Lq, a.dv);
        for (int r = tid; r < QB; r += kAttnThreads) {
            const std::int64_t i = i0 + r;
            lse_s[r] = i < a.Lq ? lse_bh[i] : attn_inf<C>();  // +inf: P = 0 (past Lq, or fully masked row)
            dl_s[r] = i < a.Lq ? dl_bh[i] : C(0);
        }
        __syncthreads();

        C st[RA][CA], dpt[RA][CA];
#pragma unroll
        for (int r = 0; r < RA; ++r)
#pragma unroll
            for (int c = 0; c < CA; ++c) st[r][c] = dpt[r][c] = C(0);
        for (int d = 0; d < a.dk; ++d) {
            C kv[RA], qv[CA];
#pragma unroll
            for (int r = 0; r < RA; ++r) kv[r] = Ks[(ty + 16 * r) * LD + d];
#pragma unroll
            for (int c = 0; c < CA; ++c) qv[c] = Qs[(tx + 16 * c) * LD + d];
#pragma unroll
            for (int r = 0; r < RA; ++r)
#pragma unroll
                for (int c = 0; c < CA; ++c) st[r][c] = fma(kv[r], qv[c], st[r][c]);
        }
        for (int d = 0; d < a.dv; ++d) {
            C vv[RA], gv[CA];
#pragma unroll
            for (int r = 0; r < RA; ++r) vv[r] = Vs[(ty + 16 * r) * LD + d];
#pragma unroll
            for (int c = 0; c < CA; ++c) gv[c] = dOs[(tx + 16 * c) * LD + d];
#pragma unroll
            for (int r = 0; r < RA; ++r)
#pragma unroll
                for (int c = 0; c < CA; ++c) dpt[r][c] = fma(vv[r], gv[c], dpt[r][c]);
        }
#pragma unroll
        for (int r = 0; r < RA; ++r) {
            const int jl = ty + 16 * r;
            const std::int64_t j = j0 + jl;
#pragma unroll
            for (int c = 0; c < CA; ++c) {
                const int il = tx + 16 * c;
                const C L = lse_s[il];
                const bool ok = flags[jl] && L != attn_inf<C>() && (!a.causal || j <= i0 + il + a.shift);
                const C p = ok ? attn_exp(st[r][c] * a.scale - L) : C(0);
                PT[jl * (QB + 1) + il] = p;
                dST[jl * (QB + 1) + il] = ok ? p * (dpt[r][c] - dl_s[il]) : C(0);
            }
        }
        __syncthreads();  // PT, dST complete

        const int in = int(attn_min(QB, a.Lq - i0));
        for (int il = 0; il < in; ++il) {
            C pt[RA], ds[RA];
#pragma unroll
            for (int r = 0; r < RA; ++r) {
                pt[r] = PT[(ty + 16 * r) * (QB + 1) + il];
                ds[r] = dST[(ty + 16 * r) * (QB + 1) + il];
            }
#pragma unroll
            for (int cc = 0; cc < DM; ++cc) {
                const C g = dOs[il * LD + tx + 16 * cc];
                const C qq = Qs[il * LD + tx + 16 * cc];
#pragma unroll
                for (int r = 0; r < RA; ++r) {
                    dv_acc[r][cc] = fma(pt[r], g, dv_acc[r][cc]);
                    dk_acc[r][cc] = fma(ds[r], qq, dk_acc[r][cc]);
                }
            }
        }
    }

#pragma unroll
    for (int r = 0; r < RA; ++r) {
        const std::int64_t j = j0 + ty + 16 * r;
        if (j >= a.Lk) continue;
#pragma unroll
        for (int cc = 0; cc < DM; ++cc) {
            const int c = tx + 16 * cc;
            if (a.dk_out && c < a.dk) a.dk_out[((b * a.Lk + j) * a.H + h) * a.dk + c] = dtype_cast<T>(dk_acc[r][cc] * a.scale);
            if (a.dv_out && c < a.dv) a.dv_out[((b * a.Lk + j) * a.H + h) * a.dv + c] = dtype_cast<T>(dv_acc[r][cc]);
        }
    }
}

// Grid: B*H*ceil(Lq/BR) blocks; dynamic smem AttnSmem<C, D>::dq. Thread
// (ty, tx) owns query rows ty+16r; key columns tx+16c of the S tile, head
// columns tx+16cc of dQ.
template <class T, int D>
__global__ void __launch_bounds__(kAttnThreads)
    attention_bwd_dq_kernel(const AttnArgs<T, cuda::compute_t<T>> a, const std::int64_t n_qblocks) {
    using C = cuda::compute_t<T>;
    constexpr int BR = AttnTile<C>::BR, BC = AttnTile<C>::BC, LD = D + 1;
    constexpr int RM = BR / 16, CM = BC / 16, DM = D / 16;
    extern __shared__ __align__(16) unsigned char attn_smem[];
    C* Qs = reinterpret_cast<C*>(attn_smem);  // [BR][LD]
    C* dOs = Qs + BR * LD;                     // [BR][LD]
    C* Ks = dOs + BR * LD;                     // [BC][LD]
    C* Vs = Ks + BC * LD;                      // [BC][LD]
    C* dSs = Vs + BC * LD;                     // [BR][BC+1]
    C* lse_s = dSs + BR * (BC + 1);            // [BR]
    C* dl_s = lse_s + BR;                      // [BR]
    unsigned char* flags = reinterpret_cast<unsigned char*>(dl_s + BR);  // [BC]

    const int tid = int(threadIdx.x), ty = tid >> 4, tx = tid & 15;
    const std::int64_t bh = std::int64_t(blockIdx.x) / n_qblocks;
    const std::int64_t i0 = (std::int64_t(blockIdx.x) % n_qblocks) * BR;
    const std::int64_t b = bh / a.H, h = bh % a.H;
    const std::uint8_t* kpm_b = a.kpm ? a.kpm + b * a.Lk : nullptr;
    const T* qg = a.q + b * a.q_sb + h * a.dk;
    const T* kg = a.k + b * a.k_sb + h * a.dk;
    const T* vg = a.v + b * a.v_sb + h * a.dv;
    const T* gg = a.dout + b * a.do_sb + h * a.dv;

    attn_load_tile<T, C, D, BR>(Qs, qg, a.q_sl, i0, a.Lq, a.dk);
    attn_load_tile<T, C, D, BR>(dOs, gg, a.do_sl, i0, a.Lq, a.dv);
    for (int r = tid; r < BR; r += kAttnThreads) {
        const std::int64_t i = i0 + r;
        lse_s[r] = i < a.Lq ? a.lse[bh * a.Lq + i] : attn_inf<C>();
        dl_s[r] = i < a.Lq ? a.delta[bh * a.Lq + i] : C(0);
    }

    C dq_acc[RM][DM];
#pragma unroll
    for (int r = 0; r < RM; ++r)
#pragma unroll
        for (int cc = 0; cc < DM; ++cc) dq_acc[r][cc] = C(0);

    std::int64_t kend = a.Lk;
    if (a.causal) kend = attn_min(attn_max(attn_min(i0 + BR, a.Lq) + a.shift, 0), a.Lk);

    for (std::int64_t j0 = 0; j0 < kend; j0 += BC) {
        __syncthreads();  // previous reads of Ks, Vs, dSs, flags done (and Qs, dOs, lse_s, dl_s loaded)
        attn_load_tile<T, C, D, BC>(Ks, kg, a.k_sl, j0, a.Lk, a.dk);
        attn_load_tile<T, C, D, BC>(Vs, vg, a.v_sl, j0, a.Lk, a.dv);
        attn_load_key_flags(flags, BC, kpm_b, j0, a.Lk);
        __syncthreads();

        C s[RM][CM], dp[RM][CM];
#pragma unroll
        for (int r = 0; r < RM; ++r)
#pragma unroll
            for (int c = 0; c < CM; ++c) s[r][c] = dp[r][c] = C(0);
        for (int d = 0; d < a.dk; ++d) {
            C qv[RM], kv[CM];
#pragma unroll
            for (int r = 0; r < RM; ++r) qv[r] = Qs[(ty + 16 * r) * LD + d];
#pragma unroll
            for (int c = 0; c < CM; ++c) kv[c] = Ks[(tx + 16 * c) * LD + d];
#pragma unroll
            for (int r = 0; r < RM; ++r)
#pragma unroll
                for (int c = 0; c < CM; ++c) s[r][c] = fma(qv[r], kv[c], s[r][c]);
        }
        for (int d = 0; d < a.dv; ++d) {
            C gv[RM], vv[CM];
#pragma unroll
            for (int r = 0; r < RM; ++r) gv[r] = dOs[(ty + 16 * r) * LD + d];
#pragma unroll
            for (int c = 0; c < CM; ++c) vv[c] = Vs[(tx + 16 * c) * LD + d];
#pragma unroll
            for (int r = 0; r < RM; ++r)
#pragma unroll
                for (int c = 0; c < CM; ++c) dp[r][c] = fma(gv[r], vv[c], dp[r][c]);
        }
#pragma unroll
        for (int r = 0; r < RM; ++r) {
            const int il = ty + 16 * r;
            const C L = lse_s[il];
#pragma unroll
            for (int c = 0; c < CM; ++c) {
                const int jl = tx + 16 * c;
                const bool ok = flags[jl] && L != attn_inf<C>() && (!a.causal || j0 + jl <= i0 + il + a.shift);
                const C p = ok ? attn_exp(s[r][c] * a.scale - L) : C(0);
                dSs[il * (BC + 1) + jl] = ok ? p * (dp[r][c] - dl_s[il]) : C(0);
            }
        }
        __syncthreads();  // dSs complete

        const int jn = int(attn_min(BC, a.Lk - j0));
        for (int jl = 0; jl < jn; ++jl) {
            C ds[RM];
#pragma unroll
            for (int r = 0; r < RM; ++r) ds[r] = dSs[(ty + 16 * r) * (BC + 1) + jl];
#pragma unroll
            for (int cc = 0; cc < DM; ++cc) {
                const C kk = Ks[jl * LD + tx + 16 * cc];
#pragma unroll
                for (int r = 0; r < RM; ++r) dq_acc[r][cc] = fma(ds[r], kk, dq_acc[r][cc]);
            }
        }
    }

#pragma unroll
    for (int r = 0; r < RM; ++r) {
        const std::int64_t i = i0 + ty + 16 * r;
        if (i >= a.Lq) continue;
#pragma unroll
        for (int cc = 0; cc < DM; ++cc) {
            const int c = tx + 16 * cc;
            if (c < a.dk) a.dq[((b * a.Lq + i) * a.H + h) * a.dk + c] = dtype_cast<T>(dq_acc[r][cc] * a.scale);
        }
    }
}

}  // namespace cuda_kernels

namespace detail {

template <class Opt>
concept AttentionOptionsLike = requires(const Opt& o) {
    std::int64_t(o.num_heads);
    bool(o.causal);
    double(o.scale);
};

struct AttnGeomCuda {
    std::int64_t B, Lq, Lk, H, dk, dv;
    double scale;
};

// The CPU op's checks and messages (op name "attention"), plus the CUDA limits.
template <class T, class Opt>
AttnGeomCuda attn_check_cuda(const Tensor<T, Cuda>& q, const Tensor<T, Cuda>& k, const Tensor<T, Cuda>& v,
                             const Tensor<std::uint8_t, Cuda>& kpm, const Opt& opt) {
    q.check_defined("attention");
    k.check_defined("attention");
    v.check_defined("attention");
    POLYMATH_CHECK(q.dim() == 3 && k.dim() == 3 && v.dim() == 3, "attention",
                   "expects q, k, v of shape [B, L, H*d], got ", q.shape(), ", ", k.shape(), ", ", v.shape());
    const std::int64_t B = q.size(0), Lq = q.size(1), Lk = k.size(1), H = std::int64_t(opt.num_heads);
    POLYMATH_CHECK(H >= 1, "attention", "num_heads must be >= 1, got ", H);
    POLYMATH_CHECK(k.size(0) == B && v.size(0) == B && v.size(1) == Lk, "attention",
                   "batch/length mismatch: q ", q.shape(), ", k ", k.shape(), ", v ", v.shape());
    POLYMATH_CHECK(q.size(2) == k.size(2) && q.size(2) % H == 0 && v.size(2) % H == 0, "attention",
                   "q and k need the same last dim divisible by num_heads=", H, "; got q ", q.shape(), ", k ",
                   k.shape(), ", v ", v.shape());
    if (kpm.defined())
        POLYMATH_CHECK(kpm.shape() == (Shape{B, Lk}), "attention", "key_padding_mask of shape ", kpm.shape(),
                       " must be [B, Lk] = ", Shape{B, Lk});
    cuda::check_same_device("attention", q, k, v);
    if (kpm.defined()) cuda::check_same_device("attention", q, kpm);
    const std::int64_t dk = q.size(2) / H, dv = v.size(2) / H;
    POLYMATH_CHECK(dk <= 128 && dv <= 128, "attention",
                   "the CUDA kernel supports head dims up to 128; got dk=", dk, ", dv=", dv, " (q ", q.shape(),
                   ", v ", v.shape(), ", num_heads=", H, ")");
    const double scale = double(opt.scale) != 0 ? double(opt.scale)
                                                : 1.0 / std::sqrt(double(std::max<std::int64_t>(dk, 1)));
    return {B, Lq, Lk, H, dk, dv, scale};
}

// A [B, L, C] operand with unit stride in C (copied once if not).
template <class T>
Tensor<T, Cuda> attn_operand_cuda(const Tensor<T, Cuda>& x) {
    return x.stride(2) == 1 ? x : x.contiguous();
}

// Calls f(std::integral_constant<int, D>) with the smallest D in {32, 64, 128} >= d.
template <class F>
void attn_dispatch_dim(std::int64_t d, F&& f) {
    if (d <= 32) f(std::integral_constant<int, 32>{});
    else if (d <= 64) f(std::integral_constant<int, 64>{});
    else f(std::integral_constant<int, 128>{});
}

template <class Kernel>
void attn_set_smem(Kernel* kernel, std::size_t bytes) {
    if (bytes > 48 * 1024)
        POLYMATH_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)));
}

inline unsigned attn_grid(std::int64_t blocks, const char* op) {
    POLYMATH_CHECK(blocks <= 0x7fffffff, op, "too many attention tiles for one launch: ", blocks);
    return unsigned(blocks);
}

}  // namespace detail

// Forward. Returns out, the per-row logsumexp and the mask for the backward.
template <class T, class Opt = AttentionOptionsCuda>
    requires detail::AttentionOptionsLike<Opt>
AttentionForwardCuda<T> attention_forward(const Tensor<T, Cuda>& q_in, const Tensor<T, Cuda>& k_in,
                                          const Tensor<T, Cuda>& v_in,
                                          const Tensor<std::uint8_t, Cuda>& key_padding_mask, const Opt& opt) {
    static_assert(std::is_same_v<T, float> || std::is_same_v<T, double> || std::is_same_v<T, bfloat16> ||
                      std::is_same_v<T, polymath::half>,
                  "attention on CUDA: float, double, bfloat16 or half");
    using C = cuda::compute_t<T>;
    const auto g = detail::attn_check_cuda(q_in, k_in, v_in, key_padding_mask, opt);
    const Tensor<T, Cuda> q = detail::attn_operand_cuda(q_in), k = detail::attn_operand_cuda(k_in),
                          v = detail::attn_operand_cuda(v_in);
    AttentionForwardCuda<T> r;
    r.key_padding_mask = key_padding_mask.defined() ? key_padding_mask.contiguous() : key_padding_mask;
    r.out = Tensor<T, Cuda>::empty({g.B, g.Lq, g.H * g.dv});
    r.lse = Tensor<C, Cuda>::empty({g.B, g.H, g.Lq});
    if (g.B == 0 || g.Lq == 0) return r;

    cuda_kernels::AttnArgs<T, C> a;
    a.q = q.data();
    a.k = k.data();
    a.v = v.data();
    a.kpm = r.key_padding_mask.defined() ? r.key_padding_mask.data() : nullptr;
    a.out = r.out.data();
    a.lse = r.lse.data();
    a.q_sb = q.stride(0), a.q_sl = q.stride(1);
    a.k_sb = k.stride(0), a.k_sl = k.stride(1);
    a.v_sb = v.stride(0), a.v_sl = v.stride(1);
    a.B = g.B, a.H = g.H, a.Lq = g.Lq, a.Lk = g.Lk, a.shift = g.Lk - g.Lq;
    a.dk = int(g.dk), a.dv = int(g.dv);
    a.scale = C(g.scale);
    a.causal = bool(opt.causal);

    constexpr int BR = cuda_kernels::AttnTile<C>::BR;
    const std::int64_t nqb = (g.Lq + BR - 1) / BR;
    const unsigned grid = detail::attn_grid(g.B * g.H * nqb, "attention");
    detail::attn_dispatch_dim(std::max(g.dk, g.dv), [&](auto dtag) {
        constexpr int D = decltype(dtag)::value;
        constexpr std::size_t smem = cuda_kernels::AttnSmem<C, D>::fwd;
        auto* kernel = &cuda_kernels::attention_fwd_kernel<T, D>;
        detail::attn_set_smem(kernel, smem);
        kernel<<<grid, cuda_kernels::kAttnThreads, smem, cuda::current_stream()>>>(a, nqb);
        POLYMATH_CUDA_CHECK_LAUNCH("attention_forward");
    });
    return r;
}

// Backward from the saved forward: dq, dk, dv (each only if needed).
template <class T, class Opt = AttentionOptionsCuda>
    requires detail::AttentionOptionsLike<Opt>
AttentionGradsCuda<T> attention_backward(const Tensor<T, Cuda>& grad_out, const Tensor<T, Cuda>& q_in,
                                         const Tensor<T, Cuda>& k_in, const Tensor<T, Cuda>& v_in,
                                         const AttentionForwardCuda<T>& saved, const Opt& opt, bool need_q = true,
                                         bool need_k = true, bool need_v = true) {
    using C = cuda::compute_t<T>;
    const auto g = detail::attn_check_cuda(q_in, k_in, v_in, saved.key_padding_mask, opt);
    grad_out.check_defined("attention_backward");
    POLYMATH_CHECK(grad_out.shape() == (Shape{g.B, g.Lq, g.H * g.dv}), "attention_backward", "gradient of shape ",
                   grad_out.shape(), " does not match the output shape ", Shape{g.B, g.Lq, g.H * g.dv});
    POLYMATH_CHECK(saved.out.defined() && saved.lse.defined() && saved.out.shape() == grad_out.shape() &&
                       saved.lse.shape() == (Shape{g.B, g.H, g.Lq}),
                   "attention_backward", "the saved forward (out ", saved.out.shape(), ", lse ", saved.lse.shape(),
                   ") does not belong to q ", q_in.shape(), ", v ", v_in.shape(), " with num_heads=", g.H);
    cuda::check_same_device("attention_backward", q_in, grad_out, saved.out);
    const Tensor<T, Cuda> q = detail::attn_operand_cuda(q_in), k = detail::attn_operand_cuda(k_in),
                          v = detail::attn_operand_cuda(v_in), dO = detail::attn_operand_cuda(grad_out);
    const Tensor<T, Cuda> O = saved.out.contiguous();
    const Tensor<C, Cuda> lse = saved.lse.contiguous();

    AttentionGradsCuda<T> r;
    if (need_q) r.dq = Tensor<T, Cuda>::empty({g.B, g.Lq, g.H * g.dk});
    if (need_k) r.dk = Tensor<T, Cuda>::empty({g.B, g.Lk, g.H * g.dk});
    if (need_v) r.dv = Tensor<T, Cuda>::empty({g.B, g.Lk, g.H * g.dv});
    if (g.B == 0 || (!need_q && !need_k && !need_v)) return r;

    Tensor<C, Cuda> delta = Tensor<C, Cuda>::empty({g.B, g.H, g.Lq});
    cuda_kernels::AttnArgs<T, C> a;
    a.q = q.data();
    a.k = k.data();
    a.v = v.data();
    a.kpm = saved.key_padding_mask.defined() ? saved.key_padding_mask.data() : nullptr;
    a.o = O.data();
    a.dout = dO.data();
    a.dq = need_q ? r.dq.data() : nullptr;
    a.dk_out = need_k ? r.dk.data() : nullptr;
    a.dv_out = need_v ? r.dv.data() : nullptr;
    a.lse = const_cast<C*>(lse.data());
    a.delta = delta.data();
    a.q_sb = q.stride(0), a.q_sl = q.stride(1);
    a.k_sb = k.stride(0), a.k_sl = k.stride(1);
    a.v_sb = v.stride(0), a.v_sl = v.stride(1);
    a.do_sb = dO.stride(0), a.do_sl = dO.stride(1);
    a.B = g.B, a.H = g.H, a.Lq = g.Lq, a.Lk = g.Lk, a.shift = g.Lk - g.Lq;
    a.dk = int(g.dk), a.dv = int(g.dv);
    a.scale = C(g.scale);
    a.causal = bool(opt.causal);
    const cudaStream_t stream = cuda::current_stream();

    const std::int64_t rows = g.B * g.H * g.Lq;
    if (rows > 0) {
        cuda_kernels::attention_bwd_delta_kernel<T>
            <<<cuda::grid_for(rows * 32, cuda_kernels::kAttnThreads), cuda_kernels::kAttnThreads, 0, stream>>>(a);
        POLYMATH_CUDA_CHECK_LAUNCH("attention_backward (delta)");
    }

    constexpr int BR = cuda_kernels::AttnTile<C>::BR, BC = cuda_kernels::AttnTile<C>::BC;
    detail::attn_dispatch_dim(std::max(g.dk, g.dv), [&](auto dtag) {
        constexpr int D = decltype(dtag)::value;
        if ((need_k || need_v) && g.Lk > 0) {  // Lq == 0 is fine: the kernel writes zeros
            const std::int64_t nkb = (g.Lk + BC - 1) / BC;
            const unsigned grid = detail::attn_grid(g.B * g.H * nkb, "attention_backward");
            constexpr std::size_t smem = cuda_kernels::AttnSmem<C, D>::dkdv;
            auto* kernel = &cuda_kernels::attention_bwd_dkdv_kernel<T, D>;
            detail::attn_set_smem(kernel, smem);
            kernel<<<grid, cuda_kernels::kAttnThreads, smem, stream>>>(a, nkb);
            POLYMATH_CUDA_CHECK_LAUNCH("attention_backward (dk, dv)");
        }
        if (need_q && g.Lq > 0) {  // Lk == 0 is fine: the kernel writes zeros
            const std::int64_t nqb = (g.Lq + BR - 1) / BR;
            const unsigned grid = detail::attn_grid(g.B * g.H * nqb, "attention_backward");
            constexpr std::size_t smem = cuda_kernels::AttnSmem<C, D>::dq;
            auto* kernel = &cuda_kernels::attention_bwd_dq_kernel<T, D>;
            detail::attn_set_smem(kernel, smem);
            kernel<<<grid, cuda_kernels::kAttnThreads, smem, stream>>>(a, nqb);
            POLYMATH_CUDA_CHECK_LAUNCH("attention_backward (dq)");
        }
    });
    return r;
}

}  // namespace polymath::ops
