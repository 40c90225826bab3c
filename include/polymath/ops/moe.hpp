// polymath/ops/moe.hpp — mixture-of-experts routing: the plan, dispatch and combine.
//
// Given each token's top-k expert choices (indices [S, k]) the plan decides
// which (token, slot) assignments are kept and lays the kept ones out sorted
// by expert, so the experts run as one grouped GEMM on contiguous row blocks
// (ops/grouped_gemm.hpp):
//
//   * padding tokens (padding_mask[s] != 0) are never dispatched and take no
//     capacity;
//   * capacity: with capacity C per expert (C < 0: dropless, no limit), the
//     assignments are admitted slot-major — every token's first choice, in
//     token order, before any second choice (GShard's priority) — and an
//     assignment to a full expert is dropped (its output contribution is 0);
//   * rows: the kept assignments stably sorted by expert (a counting sort in
//     (token, slot) order), so expert e owns rows [offsets[e], offsets[e+1])
//     in increasing token order. The plan is a pure function of its inputs.
//
//   dispatch(x [S, d], plan)            -> xs [A, d]:  xs[r] = x[row_token[r]]
//   combine(ys [A, d], gates [S, k], plan) -> y [S, d]: y[s] = Σ_j gates[s, j] · ys[slot_row[s, j]]
// Their backward passes loop over tokens and sum each token's k slots in slot
// order (no scatter, no atomics): deterministic for any thread count.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "polymath/core/error.hpp"
#include "polymath/core/parallel.hpp"
#include "polymath/tensor/tensor.hpp"

namespace polymath::ops {

struct MoePlan {
    std::int64_t num_tokens = 0, k = 0, num_experts = 0;
    Tensor<std::int64_t> expert_offsets;    // [E+1]
    std::vector<std::int64_t> row_token;    // [A]: the token of each dispatched row
    std::vector<std::int64_t> slot_row;     // [S*k]: row of assignment (s, j), -1 if dropped or padding
    std::vector<std::int64_t> tokens_per_expert;  // kept assignments per expert
    std::int64_t dropped = 0;               // assignments of real tokens dropped for capacity
    std::int64_t valid_tokens = 0;          // tokens that are not padding
    std::int64_t rows() const { return std::int64_t(row_token.size()); }
};

// capacity < 0: dropless.
inline MoePlan moe_plan(const Tensor<std::int64_t>& indices_in, std::int64_t num_experts, std::int64_t capacity,
                        const Tensor<std::uint8_t>& padding_mask = Tensor<std::uint8_t>()) {
    indices_in.check_defined("moe_plan");
    POLYMATH_CHECK(indices_in.dim() == 2, "moe_plan", "expert indices must be [S, k], got ", indices_in.shape());
    POLYMATH_CHECK(num_experts >= 1, "moe_plan", "num_experts must be >= 1, got ", num_experts);
    const Tensor<std::int64_t> indices = indices_in.contiguous();
    MoePlan p;
    p.num_tokens = indices.size(0);
    p.k = indices.size(1);
    p.num_experts = num_experts;
    const std::int64_t S = p.num_tokens, K = p.k, E = num_experts;
    if (padding_mask.defined())
        POLYMATH_CHECK(padding_mask.numel() == S, "moe_plan", "padding_mask of shape ", padding_mask.shape(),
                       " must have one entry per token (", S, ")");
    const Tensor<std::uint8_t> pad = padding_mask.defined() ? padding_mask.contiguous() : padding_mask;
    const std::int64_t* idx = indices.data();
    for (std::int64_t i = 0; i < S * K; ++i)
        POLYMATH_CHECK(idx[i] >= 0 && idx[i] < E, "moe_plan", "expert index ", idx[i], " at token ", i / K,
                       " outside [0, ", E, ")");
    std::vector<std::uint8_t> keep(std::size_t(S * K), 0);
    std::vector<std::int64_t> count(std::size_t(E), 0);
    for (std::int64_t s = 0; s < S; ++s) p.valid_tokens += (pad.defined() && pad.data()[s]) ? 0 : 1;
    for (std::int64_t j = 0; j < K; ++j)
        for (std::int64_t s = 0; s < S; ++s) {
            if (pad.defined() && pad.data()[s]) continue;
            const std::int64_t e = idx[s * K + j];
            if (capacity >= 0 && count[std::size_t(e)] >= capacity) {
                ++p.dropped;
                continue;
            }
            ++count[std::size_t(e)];
            keep[std::size_t(s * K + j)] = 1;
        }
    p.tokens_per_expert = count;
    p.expert_offsets = Tensor<std::int64_t>::zeros({E + 1});
    std::int64_t* off = p.expert_offsets.data();
    for (std::int64_t e = 0; e < E; ++e) off[e + 1] = off[e] + count[std::size_t(e)];
    p.row_token.assign(std::size_t(off[E]), 0);
    p.slot_row.assign(std::size_t(S * K), -1);
    std::vector<std::int64_t> cursor(off, off + E);
    for (std::int64_t s = 0; s < S; ++s)
        for (std::int64_t j = 0; j < K; ++j) {
            if (!keep[std::size_t(s * K + j)]) continue;
            const std::int64_t r = cursor[std::size_t(idx[s * K + j])]++;
            p.row_token[std::size_t(r)] = s;
            p.slot_row[std::size_t(s * K + j)] = r;
        }
    return p;
}

namespace detail {
inline std::int64_t moe_grain(std::int64_t d) { return std::max<std::int64_t>(1, 16384 / std::max<std::int64_t>(d, 1)); }
}  // namespace detail

template <class T>
Tensor<T> moe_dispatch(const Tensor<T>& x_in, const MoePlan& p) {
    POLYMATH_CHECK(x_in.dim() == 2 && x_in.size(0) == p.num_tokens, "moe_dispatch", "tokens of shape ", x_in.shape(),
                   " must be [S=", p.num_tokens, ", d]");
    const Tensor<T> x = x_in.contiguous();
    const std::int64_t d = x.size(1), A = p.rows();
    Tensor<T> xs = Tensor<T>::empty({A, d});
    parallel_for(0, A, detail::moe_grain(d), [&](std::int64_t b, std::int64_t e) {
        for (std::int64_t r = b; r < e; ++r)
            std::copy_n(x.data() + p.row_token[std::size_t(r)] * d, d, xs.data() + r * d);
    });
    return xs;
}

// dx[s] = Σ_j dxs[slot_row[s, j]] (slot order).
template <class T>
Tensor<T> moe_dispatch_backward(const Tensor<T>& g_in, const MoePlan& p) {
    POLYMATH_CHECK(g_in.dim() == 2 && g_in.size(0) == p.rows(), "moe_dispatch_backward", "gradient ", g_in.shape(),
                   " must have ", p.rows(), " rows");
    const Tensor<T> g = g_in.contiguous();
    const std::int64_t d = g.size(1);
    Tensor<T> dx = Tensor<T>::zeros({p.num_tokens, d});
    parallel_for(0, p.num_tokens, detail::moe_grain(d * p.k), [&](std::int64_t b, std::int64_t e) {
        for (std::int64_t s = b; s < e; ++s) {
            T* o = dx.data() + s * d;
            for (std::int64_t j = 0; j < p.k; ++j) {
                const std::int64_t r = p.slot_row[std::size_t(s * p.k + j)];
                if (r < 0) continue;
                const T* src = g.data() + r * d;
                for (std::int64_t c = 0; c < d; ++c) o[c] += src[c];
            }
        }
    });
    return dx;
}

template <class T>
Tensor<T> moe_combine(const Tensor<T>& ys_in, const Tensor<T>& gates_in, const MoePlan& p) {
    POLYMATH_CHECK(ys_in.dim() == 2 && ys_in.size(0) == p.rows(), "moe_combine", "expert outputs ", ys_in.shape(),
                   " must have ", p.rows(), " rows");
    POLYMATH_CHECK(gates_in.shape() == (Shape{p.num_tokens, p.k}), "moe_combine", "gates of shape ", gates_in.shape(),
                   " must be [S, k] = ", Shape{p.num_tokens, p.k});
    const Tensor<T> ys = ys_in.contiguous(), gates = gates_in.contiguous();
    const std::int64_t d = ys.size(1);
    Tensor<T> y = Tensor<T>::zeros({p.num_tokens, d});
    parallel_for(0, p.num_tokens, detail::moe_grain(d * p.k), [&](std::int64_t b, std::int64_t e) {
        for (std::int64_t s = b; s < e; ++s) {
            T* o = y.data() + s * d;
            for (std::int64_t j = 0; j < p.k; ++j) {
                const std::int64_t r = p.slot_row[std::size_t(s * p.k + j)];
                if (r < 0) continue;
                const T w = gates.data()[s * p.k + j];
                const T* src = ys.data() + r * d;
                for (std::int64_t c = 0; c < d; ++c) o[c] += w * src[c];
            }
        }
    });
    return y;
}

template <class T>
struct MoeCombineGrads {
    Tensor<T> dys;    // [A, d]
    Tensor<T> dgates; // [S, k]
};

template <class T>
MoeCombineGrads<T> moe_combine_backward(const Tensor<T>& g_in, const Tensor<T>& ys_in, const Tensor<T>& gates_in,
                                        const MoePlan& p, bool need_ys = true, bool need_gates = true) {
    const Tensor<T> g = g_in.contiguous(), ys = ys_in.contiguous(), gates = gates_in.contiguous();
    POLYMATH_CHECK(g.shape() == (Shape{p.num_tokens, ys.size(1)}), "moe_combine_backward", "gradient ", g.shape(),
                   " must be [S, d] = ", Shape{p.num_tokens, ys.size(1)});
    const std::int64_t d = ys.size(1);
    MoeCombineGrads<T> r;
    if (need_ys) r.dys = Tensor<T>::empty({p.rows(), d});
    if (need_gates) r.dgates = Tensor<T>::zeros({p.num_tokens, p.k});
    parallel_for(0, p.num_tokens, detail::moe_grain(d * p.k), [&](std::int64_t b, std::int64_t e) {
        for (std::int64_t s = b; s < e; ++s) {
            const T* gs = g.data() + s * d;
            for (std::int64_t j = 0; j < p.k; ++j) {
                const std::int64_t row = p.slot_row[std::size_t(s * p.k + j)];
                if (row < 0) continue;
                if (need_ys) {
                    const T w = gates.data()[s * p.k + j];
                    T* o = r.dys.data() + row * d;
                    for (std::int64_t c = 0; c < d; ++c) o[c] = w * gs[c];
                }
                if (need_gates) {
                    const T* y = ys.data() + row * d;
                    T acc = 0;
                    for (std::int64_t c = 0; c < d; ++c) acc += gs[c] * y[c];
                    r.dgates.data()[s * p.k + j] = acc;
                }
            }
        }
    });
    return r;
}

}  // namespace polymath::ops
