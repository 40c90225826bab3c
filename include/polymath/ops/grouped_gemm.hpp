// polymath/ops/grouped_gemm.hpp — one GEMM per group of rows, in one call.
//
// The mixture-of-experts primitive (the CPU twin of the CUDA backend's
// grouped GEMM): rows of `a` are sorted by group (expert), and
// expert_offsets [E+1] (int64, non-decreasing, offsets[0] = 0,
// offsets[E] = rows of a) say where each group's rows are.
//
//   grouped_gemm(a [M, K], b [E, K, N], offsets)           -> [M, N]:
//       out[o_e : o_{e+1}] = a[o_e : o_{e+1}] · b[e]          (trans_b: · b[e]ᵀ with b [E, N, K])
//   grouped_gemm_tn(a [M, K], g [M, N], offsets)            -> [E, K, N]:
//       out[e] = a[o_e : o_{e+1}]ᵀ · g[o_e : o_{e+1}]         (the weight gradient; 0 for empty groups)
//   grouped_bias_add_(out [M, N], bias [E, N], offsets)     out[rows of e] += bias[e]
//   grouped_row_sum(g [M, N], offsets)                      -> [E, N]: the bias gradient
//
// Work is cut into tasks of roughly equal size (an expert's rows split into
// blocks, or an output's rows for _tn) that run in parallel, each one
// single-threaded Eigen GEMM (ops/matmul.hpp's kernel) writing disjoint
// output: no per-token loops, no atomics, the same bits for any thread count.
#pragma once
#include <algorithm>
#include <cstdint>
#include <vector>

#include "polymath/core/error.hpp"
#include "polymath/core/parallel.hpp"
#include "polymath/ops/matmul.hpp"

namespace polymath::ops {

namespace detail {

inline void check_offsets(const Tensor<std::int64_t>& offsets, std::int64_t groups, std::int64_t rows,
                          const char* op) {
    offsets.check_defined(op);
    POLYMATH_CHECK(offsets.dim() == 1 && offsets.size(0) == groups + 1, op, "expert_offsets of shape ",
                   offsets.shape(), " must be [E+1] = [", groups + 1, "]");
    const std::int64_t* o = offsets.contiguous().data();
    POLYMATH_CHECK(o[0] == 0 && o[groups] == rows, op, "expert_offsets must start at 0 and end at the row count ",
                   rows, "; got ", o[0], " .. ", o[groups]);
    for (std::int64_t e = 0; e < groups; ++e)
        POLYMATH_CHECK(o[e] <= o[e + 1], op, "expert_offsets decrease at group ", e, ": ", o[e], " > ", o[e + 1]);
}

struct GroupTask {
    std::int64_t group, lo, hi;  // rows [lo, hi) of the split dimension
};

// Splits each group's `len(e)` rows into blocks of about `target` work.
template <class Len>
std::vector<GroupTask> group_tasks(std::int64_t groups, Len len, double work_per_row, std::int64_t align) {
    double total = 0;
    for (std::int64_t e = 0; e < groups; ++e) total += double(len(e)) * work_per_row;
    const double target = std::max(kGemmSplitWork, total / (4.0 * std::max(1, num_threads())));
    std::vector<GroupTask> tasks;
    for (std::int64_t e = 0; e < groups; ++e) {
        const std::int64_t n = len(e);
        if (n == 0) continue;
        std::int64_t blocks = std::max<std::int64_t>(1, std::int64_t(double(n) * work_per_row / target));
        std::int64_t chunk = ((n + blocks - 1) / blocks + align - 1) / align * align;
        for (std::int64_t lo = 0; lo < n; lo += chunk) tasks.push_back({e, lo, std::min(n, lo + chunk)});
    }
    return tasks;
}

template <class T>
Tensor<T> unit_stride_rows(const Tensor<T>& x) {
    return x.stride(1) == 1 && x.stride(0) >= x.size(1) ? x : x.contiguous();
}

}  // namespace detail

template <class T>
void grouped_gemm(const Tensor<T>& a_in, const Tensor<T>& b_in, const Tensor<std::int64_t>& expert_offsets,
                  bool trans_b, std::type_identity_t<T> alpha, std::type_identity_t<T> beta, const Tensor<T>& out) {
    static_assert(MathDType<T>, "grouped_gemm computes in float or double");
    a_in.check_defined("grouped_gemm");
    b_in.check_defined("grouped_gemm");
    POLYMATH_CHECK(a_in.dim() == 2 && b_in.dim() == 3, "grouped_gemm", "expects a [M, K] and b [E, K, N], got ",
                   a_in.shape(), " and ", b_in.shape());
    const std::int64_t M = a_in.size(0), K = a_in.size(1), E = b_in.size(0);
    const std::int64_t N = trans_b ? b_in.size(1) : b_in.size(2);
    POLYMATH_CHECK((trans_b ? b_in.size(2) : b_in.size(1)) == K, "grouped_gemm", "inner dims differ: a ", a_in.shape(),
                   ", b ", b_in.shape(), trans_b ? " (transposed)" : "");
    POLYMATH_CHECK(out.shape() == (Shape{M, N}) && out.is_contiguous(), "grouped_gemm", "output ", out.shape(),
                   " must be a contiguous [", M, ", ", N, "]");
    detail::check_offsets(expert_offsets, E, M, "grouped_gemm");
    const Tensor<T> a = detail::unit_stride_rows(a_in), b = b_in.contiguous();
    const Tensor<std::int64_t> off_t = expert_offsets.contiguous();
    const std::int64_t* off = off_t.data();
    const auto tasks = detail::group_tasks(E, [&](std::int64_t e) { return off[e + 1] - off[e]; },
                                           double(K) * double(N), 8);
    if (K == 0) {  // empty products: out = beta · out
        T* o = out.data();
        for (std::int64_t i = 0; i < M * N; ++i) o[i] = beta == T(0) ? T(0) : T(beta) * o[i];
        return;
    }
    const std::int64_t lda = a.stride(0);
    parallel_for(0, std::int64_t(tasks.size()), 1, [&](std::int64_t tb, std::int64_t te) {
        for (std::int64_t t = tb; t < te; ++t) {
            const auto& task = tasks[std::size_t(t)];
            const std::int64_t r0 = off[task.group] + task.lo, rows = task.hi - task.lo;
            const detail::GemmOperand<T> ao{a.data() + r0 * lda, detail::EIndex(lda), false};
            const T* bp = b.data() + task.group * K * N;
            const detail::GemmOperand<T> bo = trans_b ? detail::GemmOperand<T>{bp, detail::EIndex(K), true}
                                                      : detail::GemmOperand<T>{bp, detail::EIndex(N), false};
            detail::gemm2d<T>(rows, N, K, ao, bo, out.data() + r0 * N, N, T(alpha), T(beta), false);
        }
    });
}

template <class T>
Tensor<T> grouped_gemm(const Tensor<T>& a, const Tensor<T>& b, const Tensor<std::int64_t>& expert_offsets,
                       bool trans_b = false) {
    a.check_defined("grouped_gemm");
    b.check_defined("grouped_gemm");
    POLYMATH_CHECK(a.dim() == 2 && b.dim() == 3, "grouped_gemm", "expects a [M, K] and b [E, K, N], got ", a.shape(),
                   " and ", b.shape());
    Tensor<T> out = Tensor<T>::zeros({a.size(0), trans_b ? b.size(1) : b.size(2)});
    grouped_gemm(a, b, expert_offsets, trans_b, T(1), T(0), out);
    return out;
}

// out[e] = a_eᵀ · g_e, [E, K, N].
template <class T>
Tensor<T> grouped_gemm_tn(const Tensor<T>& a_in, const Tensor<T>& g_in, const Tensor<std::int64_t>& expert_offsets) {
    static_assert(MathDType<T>, "grouped_gemm_tn computes in float or double");
    a_in.check_defined("grouped_gemm_tn");
    g_in.check_defined("grouped_gemm_tn");
    POLYMATH_CHECK(a_in.dim() == 2 && g_in.dim() == 2 && a_in.size(0) == g_in.size(0), "grouped_gemm_tn",
                   "expects a [M, K] and g [M, N], got ", a_in.shape(), " and ", g_in.shape());
    const std::int64_t M = a_in.size(0), K = a_in.size(1), N = g_in.size(1);
    const std::int64_t E = expert_offsets.numel() - 1;
    detail::check_offsets(expert_offsets, E, M, "grouped_gemm_tn");
    const Tensor<T> a = detail::unit_stride_rows(a_in), g = detail::unit_stride_rows(g_in);
    const Tensor<std::int64_t> off_t = expert_offsets.contiguous();
    const std::int64_t* off = off_t.data();
    Tensor<T> out = Tensor<T>::empty({E, K, N});
    // Tasks split the K output rows of each expert; empty experts are zeroed.
    std::vector<detail::GroupTask> tasks;
    for (std::int64_t e = 0; e < E; ++e) {
        const std::int64_t m = off[e + 1] - off[e];
        if (m == 0 || K == 0) {
            std::fill(out.data() + e * K * N, out.data() + (e + 1) * K * N, T(0));
            continue;
        }
        const double work = double(m) * double(K) * double(N);
        const double target = std::max(detail::kGemmSplitWork, work / double(std::max(1, num_threads())));
        const std::int64_t blocks = std::max<std::int64_t>(1, std::min<std::int64_t>(K / 8 + 1, std::int64_t(work / target)));
        const std::int64_t chunk = ((K + blocks - 1) / blocks + 7) / 8 * 8;
        for (std::int64_t lo = 0; lo < K; lo += chunk) tasks.push_back({e, lo, std::min(K, lo + chunk)});
    }
    const std::int64_t lda = a.stride(0), ldg = g.stride(0);
    parallel_for(0, std::int64_t(tasks.size()), 1, [&](std::int64_t tb, std::int64_t te) {
        for (std::int64_t t = tb; t < te; ++t) {
            const auto& task = tasks[std::size_t(t)];
            const std::int64_t r0 = off[task.group], m = off[task.group + 1] - r0;
            // a_eᵀ rows [lo, hi) = columns [lo, hi) of a_e, read column-major.
            const detail::GemmOperand<T> at{a.data() + r0 * lda + task.lo, detail::EIndex(lda), true};
            const detail::GemmOperand<T> go{g.data() + r0 * ldg, detail::EIndex(ldg), false};
            detail::gemm2d<T>(task.hi - task.lo, N, m, at, go, out.data() + (task.group * K + task.lo) * N, N, T(1),
                              T(0), false);
        }
    });
    return out;
}

// out[rows of e] += bias[e], in place.
template <class T>
void grouped_bias_add_(const Tensor<T>& out, const Tensor<T>& bias_in, const Tensor<std::int64_t>& expert_offsets) {
    POLYMATH_CHECK(out.dim() == 2 && out.is_contiguous() && bias_in.dim() == 2 && bias_in.size(1) == out.size(1),
                   "grouped_bias_add_", "expects contiguous out [M, N] and bias [E, N], got ", out.shape(), " and ",
                   bias_in.shape());
    const std::int64_t M = out.size(0), N = out.size(1), E = bias_in.size(0);
    detail::check_offsets(expert_offsets, E, M, "grouped_bias_add_");
    const Tensor<T> bias = bias_in.contiguous();
    const Tensor<std::int64_t> off_t = expert_offsets.contiguous();
    const std::int64_t* off = off_t.data();
    parallel_for(0, E, 1, [&](std::int64_t eb, std::int64_t ee) {
        for (std::int64_t e = eb; e < ee; ++e) {
            const T* b = bias.data() + e * N;
            for (std::int64_t r = off[e]; r < off[e + 1]; ++r) {
                T* o = out.data() + r * N;
                for (std::int64_t c = 0; c < N; ++c) o[c] += b[c];
            }
        }
    });
}

// [E, N]: the sum of each group's rows (rows in order: deterministic).
template <class T>
Tensor<T> grouped_row_sum(const Tensor<T>& g_in, const Tensor<std::int64_t>& expert_offsets) {
    POLYMATH_CHECK(g_in.dim() == 2, "grouped_row_sum", "expects [M, N], got ", g_in.shape());
    const Tensor<T> g = g_in.contiguous();
    const std::int64_t M = g.size(0), N = g.size(1), E = expert_offsets.numel() - 1;
    detail::check_offsets(expert_offsets, E, M, "grouped_row_sum");
    const Tensor<std::int64_t> off_t = expert_offsets.contiguous();
    const std::int64_t* off = off_t.data();
    Tensor<T> out = Tensor<T>::zeros({E, N});
    parallel_for(0, E, 1, [&](std::int64_t eb, std::int64_t ee) {
        for (std::int64_t e = eb; e < ee; ++e) {
            T* o = out.data() + e * N;
            for (std::int64_t r = off[e]; r < off[e + 1]; ++r) {
                const T* x = g.data() + r * N;
                for (std::int64_t c = 0; c < N; ++c) o[c] += x[c];
            }
        }
    });
    return out;
}

}  // namespace polymath::ops
