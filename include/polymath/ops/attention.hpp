// polymath/ops/attention.hpp — fused multi-head scaled dot-product attention
// (no autograd; autograd/attention.hpp wraps it).
//
// Layout: q [B, Lq, H*dk], k [B, Lk, H*dk], v [B, Lk, H*dv] — the outputs of
// the Q/K/V projections as they come, heads side by side in the last axis
// (the last axis must have stride 1; rows may be padded, e.g. a narrow() of a
// fused QKV projection). The output is [B, Lq, H*dv], heads merged, ready
// for the output projection: no permute or copy on either side.
//
// For each batch b and head h (slices X_bh = X[b, :, h*d:(h+1)*d]):
//   S = scale · Q_bh K_bhᵀ              [Lq, Lk]   (scale defaults to 1/sqrt(dk))
//   S[i, j] = -inf where key_padding_mask[b, j] != 0, or (causal) j > i + (Lk - Lq)
//   P = softmax(S) over j               (a row with every key masked gets P = 0,
//                                        so its output is 0 — not NaN, not uniform)
//   O_bh = P V_bh
// Backward (with P saved):
//   dP = dO_bh V_bhᵀ,  dV_bh = Pᵀ dO_bh,  dS = P ⊙ (dP − rowsum(dP ⊙ P)),
//   dQ_bh = scale · dS K_bh,  dK_bh = scale · dSᵀ Q_bh.
// The (b, h) pairs run in parallel; each writes disjoint columns of the
// outputs, and every product is one GEMM (ops/matmul.hpp's Eigen kernel), so
// the results do not depend on the thread count.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "polymath/core/error.hpp"
#include "polymath/core/parallel.hpp"
#include "polymath/ops/matmul.hpp"

namespace polymath::ops {

struct AttentionOptions {
    std::int64_t num_heads = 1;
    bool causal = false;
    double scale = 0;  // 0: 1/sqrt(dk)
};

template <class T>
struct AttentionForward {
    Tensor<T> out;    // [B, Lq, H*dv]
    Tensor<T> probs;  // [B, H, Lq, Lk]
};

template <class T>
struct AttentionGrads {
    Tensor<T> dq, dk, dv;  // contiguous, shapes of q, k, v
};

namespace detail {

template <class T>
struct AttnGeom {
    std::int64_t B, Lq, Lk, H, dk, dv;
    T scale;
};

// A [B, L, C] operand with unit stride in C (copied once if not).
template <class T>
Tensor<T> attn_operand(const Tensor<T>& x) {
    return x.stride(2) == 1 ? x : x.contiguous();
}

template <class T>
AttnGeom<T> attn_check(const Tensor<T>& q, const Tensor<T>& k, const Tensor<T>& v,
                       const Tensor<std::uint8_t>& kpm, const AttentionOptions& opt) {
    q.check_defined("attention");
    k.check_defined("attention");
    v.check_defined("attention");
    POLYMATH_CHECK(q.dim() == 3 && k.dim() == 3 && v.dim() == 3, "attention",
                   "expects q, k, v of shape [B, L, H*d], got ", q.shape(), ", ", k.shape(), ", ", v.shape());
    const std::int64_t B = q.size(0), Lq = q.size(1), Lk = k.size(1), H = opt.num_heads;
    POLYMATH_CHECK(H >= 1, "attention", "num_heads must be >= 1, got ", H);
    POLYMATH_CHECK(k.size(0) == B && v.size(0) == B && v.size(1) == Lk, "attention",
                   "batch/length mismatch: q ", q.shape(), ", k ", k.shape(), ", v ", v.shape());
    POLYMATH_CHECK(q.size(2) == k.size(2) && q.size(2) % H == 0 && v.size(2) % H == 0, "attention",
                   "q and k need the same last dim divisible by num_heads=", H, "; got q ", q.shape(), ", k ",
                   k.shape(), ", v ", v.shape());
    if (kpm.defined())
        POLYMATH_CHECK(kpm.shape() == (Shape{B, Lk}), "attention", "key_padding_mask of shape ", kpm.shape(),
                       " must be [B, Lk] = ", Shape{B, Lk});
    const std::int64_t dk = q.size(2) / H, dv = v.size(2) / H;
    const T scale = opt.scale != 0 ? T(opt.scale) : T(1.0 / std::sqrt(double(std::max<std::int64_t>(dk, 1))));
    return {B, Lq, Lk, H, dk, dv, scale};
}

template <class T>
GemmOperand<T> attn_slice(const Tensor<T>& x, std::int64_t b, std::int64_t col) {
    return detail::GemmOperand<T>{x.data() + b * x.stride(0) + col, detail::EIndex(x.stride(1)), false};
}

}  // namespace detail

template <class T>
AttentionForward<T> attention_forward(const Tensor<T>& q_in, const Tensor<T>& k_in, const Tensor<T>& v_in,
                                      const Tensor<std::uint8_t>& key_padding_mask, const AttentionOptions& opt) {
    static_assert(MathDType<T>, "attention computes in float or double");
    const auto g = detail::attn_check(q_in, k_in, v_in, key_padding_mask, opt);
    const Tensor<T> q = detail::attn_operand(q_in), k = detail::attn_operand(k_in), v = detail::attn_operand(v_in);
    const Tensor<std::uint8_t> kpm = key_padding_mask.defined() ? key_padding_mask.contiguous() : key_padding_mask;
    AttentionForward<T> r{Tensor<T>::empty({g.B, g.Lq, g.H * g.dv}), Tensor<T>::empty({g.B, g.H, g.Lq, g.Lk})};
    T* P = r.probs.data();
    T* O = r.out.data();
    const std::int64_t shift = g.Lk - g.Lq;
    const T ninf = -std::numeric_limits<T>::infinity();
    parallel_for(0, g.B * g.H, 1, [&](std::int64_t lo, std::int64_t hi) {
        for (std::int64_t bh = lo; bh < hi; ++bh) {
            const std::int64_t b = bh / g.H, h = bh % g.H;
            T* S = P + bh * g.Lq * g.Lk;
            // S = scale · Q Kᵀ
            ops::detail::gemm2d<T>(g.Lq, g.Lk, g.dk, detail::attn_slice(q, b, h * g.dk),
                                   detail::attn_slice(k, b, h * g.dk).transposed(), S, g.Lk, g.scale, T(0), false);
            const std::uint8_t* m = kpm.defined() ? kpm.data() + b * g.Lk : nullptr;
            for (std::int64_t i = 0; i < g.Lq; ++i) {
                T* row = S + i * g.Lk;
                const std::int64_t jend = opt.causal ? std::clamp<std::int64_t>(i + shift + 1, 0, g.Lk) : g.Lk;
                T mx = ninf;
                for (std::int64_t j = 0; j < g.Lk; ++j) {
                    if (j >= jend || (m && m[j])) row[j] = ninf;
                    else mx = std::max(mx, row[j]);
                }
                if (mx == ninf) {  // every key masked: no attention at all
                    std::fill(row, row + g.Lk, T(0));
                    continue;
                }
                T sum = 0;
                for (std::int64_t j = 0; j < g.Lk; ++j) {
                    const T e = row[j] == ninf ? T(0) : std::exp(row[j] - mx);
                    row[j] = e;
                    sum += e;
                }
                const T inv = T(1) / sum;
                for (std::int64_t j = 0; j < g.Lk; ++j) row[j] *= inv;
            }
            // O_bh = P V_bh, written into the merged-heads output.
            ops::detail::gemm2d<T>(g.Lq, g.dv, g.Lk, detail::GemmOperand<T>{S, detail::EIndex(g.Lk), false},
                                   detail::attn_slice(v, b, h * g.dv), O + b * g.Lq * g.H * g.dv + h * g.dv,
                                   g.H * g.dv, T(1), T(0), false);
        }
    });
    return r;
}

template <class T>
AttentionGrads<T> attention_backward(const Tensor<T>& grad_out, const Tensor<T>& q_in, const Tensor<T>& k_in,
                                     const Tensor<T>& v_in, const Tensor<T>& probs, const AttentionOptions& opt,
                                     bool need_q = true, bool need_k = true, bool need_v = true) {
    const auto g = detail::attn_check(q_in, k_in, v_in, Tensor<std::uint8_t>(), opt);
    POLYMATH_CHECK(grad_out.shape() == (Shape{g.B, g.Lq, g.H * g.dv}), "attention_backward", "gradient of shape ",
                   grad_out.shape(), " does not match the output shape ", Shape{g.B, g.Lq, g.H * g.dv});
    const Tensor<T> q = detail::attn_operand(q_in), k = detail::attn_operand(k_in), v = detail::attn_operand(v_in);
    const Tensor<T> dO = detail::attn_operand(grad_out);
    const Tensor<T> P = probs.contiguous();
    AttentionGrads<T> r;
    if (need_q) r.dq = Tensor<T>::empty({g.B, g.Lq, g.H * g.dk});
    if (need_k) r.dk = Tensor<T>::empty({g.B, g.Lk, g.H * g.dk});
    if (need_v) r.dv = Tensor<T>::empty({g.B, g.Lk, g.H * g.dv});
    parallel_for(0, g.B * g.H, 1, [&](std::int64_t lo, std::int64_t hi) {
        thread_local std::vector<T> scratch;
        scratch.resize(std::size_t(g.Lq * g.Lk));
        T* dS = scratch.data();
        for (std::int64_t bh = lo; bh < hi; ++bh) {
            const std::int64_t b = bh / g.H, h = bh % g.H;
            const T* Pb = P.data() + bh * g.Lq * g.Lk;
            const detail::GemmOperand<T> Pop{Pb, detail::EIndex(g.Lk), false};
            const detail::GemmOperand<T> dOb = detail::attn_slice(dO, b, h * g.dv);
            if (need_v)  // dV = Pᵀ dO
                ops::detail::gemm2d<T>(g.Lk, g.dv, g.Lq, Pop.transposed(), dOb,
                                       r.dv.data() + b * g.Lk * g.H * g.dv + h * g.dv, g.H * g.dv, T(1), T(0), false);
            if (!need_q && !need_k) continue;
            // dP = dO Vᵀ, then dS = P ⊙ (dP − rowsum(dP ⊙ P)) in place.
            ops::detail::gemm2d<T>(g.Lq, g.Lk, g.dv, dOb, detail::attn_slice(v, b, h * g.dv).transposed(), dS, g.Lk,
                                   T(1), T(0), false);
            for (std::int64_t i = 0; i < g.Lq; ++i) {
                T* d = dS + i * g.Lk;
                const T* p = Pb + i * g.Lk;
                T dot = 0;
                for (std::int64_t j = 0; j < g.Lk; ++j) dot += d[j] * p[j];
                for (std::int64_t j = 0; j < g.Lk; ++j) d[j] = p[j] * (d[j] - dot);
            }
            const detail::GemmOperand<T> dSop{dS, detail::EIndex(g.Lk), false};
            if (need_q)  // dQ = scale · dS K
                ops::detail::gemm2d<T>(g.Lq, g.dk, g.Lk, dSop, detail::attn_slice(k, b, h * g.dk),
                                       r.dq.data() + b * g.Lq * g.H * g.dk + h * g.dk, g.H * g.dk, g.scale, T(0), false);
            if (need_k)  // dK = scale · dSᵀ Q
                ops::detail::gemm2d<T>(g.Lk, g.dk, g.Lq, dSop.transposed(), detail::attn_slice(q, b, h * g.dk),
                                       r.dk.data() + b * g.Lk * g.H * g.dk + h * g.dk, g.H * g.dk, g.scale, T(0), false);
        }
    });
    return r;
}

}  // namespace polymath::ops
