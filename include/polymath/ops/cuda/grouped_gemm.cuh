// polymath/ops/cuda/grouped_gemm.cuh — one GEMM per group of rows on
// Tensor<T, Cuda>: the mixture-of-experts primitive.
//
// CUDA overloads of include/polymath/ops/grouped_gemm.hpp (same names,
// argument order, semantics, error messages). Rows of `a` are sorted by group
// (expert); expert_offsets [E+1] (int64, non-decreasing, offsets[0] = 0,
// offsets[E] = rows of a) say where each group's rows are.
//
//   grouped_gemm(a [M, K], b [E, K, N], offsets, trans_b = false) -> [M, N]
//       out[o_e : o_{e+1}] = a[o_e : o_{e+1}] · b[e]        (trans_b: · b[e]ᵀ, b [E, N, K])
//   grouped_gemm(a, b, offsets, trans_b, alpha, beta, out)   out = alpha · (...) + beta · out
//   grouped_gemm_tn(a [M, K], g [M, N], offsets)          -> [E, K, N]
//       out[e] = a[o_e : o_{e+1}]ᵀ · g[o_e : o_{e+1}]       (0 for empty groups)
//   grouped_bias_add_(out [M, N], bias [E, N], offsets)   out[rows of e] += bias[e]
//   grouped_row_sum(g [M, N], offsets)                    -> [E, N]
//
// dtypes: float, double, bfloat16, half (fp32 accumulation for 16-bit).
//
// Where the offsets live: on the HOST, as Tensor<std::int64_t, Cpu> (the
// same type as the CPU ops take). The group sizes decide the launches (which
// experts are empty, each GEMM's M), so they are needed on the host anyway;
// a device copy would force a device->host synchronisation per call. The
// router that produces them (a sort by expert) should hand the counts to
// the host once per MoE layer and reuse them for forward and backward.
//
// How it runs: one cuBLAS call per non-empty expert, all through one
// BlasContext (one handle, one workspace, the current stream). Empty experts
// launch nothing. cublasGemmGroupedBatchedEx (cuBLAS >= 12.5) would put all
// experts in one call, but it takes its A/B/C pointer arrays in DEVICE
// memory (an extra host->device upload per call, stream-ordered staging to
// manage), restricts compute types (no double, no FAST_TF32 for every
// layout) and could not be verified without a GPU here; E is the number of
// experts (8..64 typically), so E launches of large GEMMs cost little next
// to the GEMMs themselves. Worth revisiting for many small experts.
//
// grouped_bias_add_ and grouped_row_sum also run as cuBLAS products with a
// ones vector, per non-empty expert, so no per-row expert lookup is needed
// on the device:
//   out_e += ones[m_e, 1] · bias_e[1, N]   (K = 1, beta = 1: exactly out + bias,
//                                           one rounding, as the CPU's +=)
//   sum_e  = ones[1, m_e] · g_e[m_e, N]    (a GEMV with cuBLAS's reduction
//                                           order; deterministic for a config)
// Both always use full-precision compute (never TF32), whatever allow_tf32 says.
#pragma once
#include <algorithm>
#include <cstdint>

#include "polymath/core/error.hpp"
#include "polymath/cuda/check.hpp"
#include "polymath/cuda/runtime.hpp"
#include "polymath/cuda/tensor_backend.cuh"
#include "polymath/ops/cuda/blas.cuh"
#include "polymath/tensor/tensor.hpp"

namespace polymath::ops {

namespace cuda_detail {

// ops/grouped_gemm.hpp's check_offsets (host offsets), same messages.
inline void grouped_check_offsets(const Tensor<std::int64_t>& offsets, std::int64_t groups, std::int64_t rows,
                                  const char* op) {
    offsets.check_defined(op);
    POLYMATH_CHECK(groups >= 0 && offsets.dim() == 1 && offsets.size(0) == groups + 1, op, "expert_offsets of shape ",
                   offsets.shape(), " must be [E+1] = [", groups + 1, "]");
    const Tensor<std::int64_t> oc = offsets.contiguous();
    const std::int64_t* o = oc.data();
    POLYMATH_CHECK(o[0] == 0 && o[groups] == rows, op, "expert_offsets must start at 0 and end at the row count ",
                   rows, "; got ", o[0], " .. ", o[groups]);
    for (std::int64_t e = 0; e < groups; ++e)
        POLYMATH_CHECK(o[e] <= o[e + 1], op, "expert_offsets decrease at group ", e, ": ", o[e], " > ", o[e + 1]);
}

template <class T>
Tensor<T, Cuda> grouped_unit_stride_rows(const Tensor<T, Cuda>& x) {
    return x.stride(1) == 1 && x.stride(0) >= x.size(1) ? x : x.contiguous();
}

inline std::int64_t grouped_max_rows(const std::int64_t* off, std::int64_t E) {
    std::int64_t m = 0;
    for (std::int64_t e = 0; e < E; ++e) m = std::max(m, off[e + 1] - off[e]);
    return m;
}

}  // namespace cuda_detail

template <class T>
void grouped_gemm(const Tensor<T, Cuda>& a_in, const Tensor<T, Cuda>& b_in, const Tensor<std::int64_t>& expert_offsets,
                  bool trans_b, std::type_identity_t<T> alpha, std::type_identity_t<T> beta,
                  const Tensor<T, Cuda>& out) {
    static_assert(cuda::BlasDType<T>, "CUDA grouped_gemm: T must be float, double, bfloat16 or half");
    a_in.check_defined("grouped_gemm");
    b_in.check_defined("grouped_gemm");
    out.check_defined("grouped_gemm");
    POLYMATH_CHECK(a_in.dim() == 2 && b_in.dim() == 3, "grouped_gemm", "expects a [M, K] and b [E, K, N], got ",
                   a_in.shape(), " and ", b_in.shape());
    const std::int64_t M = a_in.size(0), K = a_in.size(1), E = b_in.size(0);
    const std::int64_t N = trans_b ? b_in.size(1) : b_in.size(2);
    POLYMATH_CHECK((trans_b ? b_in.size(2) : b_in.size(1)) == K, "grouped_gemm", "inner dims differ: a ",
                   a_in.shape(), ", b ", b_in.shape(), trans_b ? " (transposed)" : "");
    POLYMATH_CHECK(out.shape() == (Shape{M, N}) && out.is_contiguous(), "grouped_gemm", "output ", out.shape(),
                   " must be a contiguous [", M, ", ", N, "]");
    cuda_detail::grouped_check_offsets(expert_offsets, E, M, "grouped_gemm");
    cuda::check_same_device("grouped_gemm", a_in, b_in, out);
    if (M == 0 || N == 0) return;
    const Tensor<T, Cuda> a = cuda_detail::grouped_unit_stride_rows(a_in), b = b_in.contiguous();
    const Tensor<std::int64_t> off_t = expert_offsets.contiguous();
    const std::int64_t* off = off_t.data();
    const double al = dtype_cast<double>(T(alpha)), be = dtype_cast<double>(T(beta));
    const std::int64_t lda = a.stride(0);
    const cuda::BlasContext ctx;
    for (std::int64_t e = 0; e < E; ++e) {
        const std::int64_t r0 = off[e], rows = off[e + 1] - r0;
        if (rows == 0) continue;
        // b[e] is [K, N] row-major (ld N), or [N, K] row-major (ld K) read transposed.
        cuda::gemm_row_major<T>(ctx, false, trans_b, rows, N, K, al, a.data() + r0 * lda, lda, b.data() + e * K * N,
                                trans_b ? K : N, be, out.data() + r0 * N, N);
    }
}

template <class T>
Tensor<T, Cuda> grouped_gemm(const Tensor<T, Cuda>& a, const Tensor<T, Cuda>& b,
                             const Tensor<std::int64_t>& expert_offsets, bool trans_b = false) {
    a.check_defined("grouped_gemm");
    b.check_defined("grouped_gemm");
    POLYMATH_CHECK(a.dim() == 2 && b.dim() == 3, "grouped_gemm", "expects a [M, K] and b [E, K, N], got ", a.shape(),
                   " and ", b.shape());
    // Every row belongs to a group (offsets cover [0, M)), so beta = 0 writes all of out.
    Tensor<T, Cuda> out = Tensor<T, Cuda>::empty({a.size(0), trans_b ? b.size(1) : b.size(2)});
    grouped_gemm(a, b, expert_offsets, trans_b, dtype_cast<T>(1.0f), dtype_cast<T>(0.0f), out);
    return out;
}

// out[e] = a_eᵀ · g_e, [E, K, N].
template <class T>
Tensor<T, Cuda> grouped_gemm_tn(const Tensor<T, Cuda>& a_in, const Tensor<T, Cuda>& g_in,
                                const Tensor<std::int64_t>& expert_offsets) {
    static_assert(cuda::BlasDType<T>, "CUDA grouped_gemm_tn: T must be float, double, bfloat16 or half");
    a_in.check_defined("grouped_gemm_tn");
    g_in.check_defined("grouped_gemm_tn");
    POLYMATH_CHECK(a_in.dim() == 2 && g_in.dim() == 2 && a_in.size(0) == g_in.size(0), "grouped_gemm_tn",
                   "expects a [M, K] and g [M, N], got ", a_in.shape(), " and ", g_in.shape());
    expert_offsets.check_defined("grouped_gemm_tn");
    const std::int64_t M = a_in.size(0), K = a_in.size(1), N = g_in.size(1);
    const std::int64_t E = expert_offsets.numel() - 1;
    cuda_detail::grouped_check_offsets(expert_offsets, E, M, "grouped_gemm_tn");
    cuda::check_same_device("grouped_gemm_tn", a_in, g_in);
    Tensor<T, Cuda> out = Tensor<T, Cuda>::empty({E, K, N});
    if (out.numel() == 0) return out;
    const Tensor<T, Cuda> a = cuda_detail::grouped_unit_stride_rows(a_in), g = cuda_detail::grouped_unit_stride_rows(g_in);
    const Tensor<std::int64_t> off_t = expert_offsets.contiguous();
    const std::int64_t* off = off_t.data();
    const std::int64_t lda = a.stride(0), ldg = g.stride(0), KN = K * N;
    const cuda::BlasContext ctx;
    for (std::int64_t e = 0; e < E; ++e) {
        const std::int64_t r0 = off[e], m = off[e + 1] - r0;
        T* o = out.data() + e * KN;
        if (m == 0) {  // empty expert: a zero gradient (all-zero bits are 0 for every float type)
            POLYMATH_CUDA_CHECK(cudaMemsetAsync(o, 0, std::size_t(KN) * sizeof(T), cuda::current_stream()));
            continue;
        }
        // a_e is [m, K] row-major (ld lda): read transposed it is the [K, m] left operand.
        cuda::gemm_row_major<T>(ctx, true, false, K, N, m, 1.0, a.data() + r0 * lda, lda, g.data() + r0 * ldg, ldg, 0.0,
                                o, N);
    }
    return out;
}

// out[rows of e] += bias[e], in place.
template <class T>
void grouped_bias_add_(const Tensor<T, Cuda>& out, const Tensor<T, Cuda>& bias_in,
                       const Tensor<std::int64_t>& expert_offsets) {
    static_assert(cuda::BlasDType<T>, "CUDA grouped_bias_add_: T must be float, double, bfloat16 or half");
    out.check_defined("grouped_bias_add_");
    bias_in.check_defined("grouped_bias_add_");
    POLYMATH_CHECK(out.dim() == 2 && out.is_contiguous() && bias_in.dim() == 2 && bias_in.size(1) == out.size(1),
                   "grouped_bias_add_", "expects contiguous out [M, N] and bias [E, N], got ", out.shape(), " and ",
                   bias_in.shape());
    const std::int64_t M = out.size(0), N = out.size(1), E = bias_in.size(0);
    cuda_detail::grouped_check_offsets(expert_offsets, E, M, "grouped_bias_add_");
    cuda::check_same_device("grouped_bias_add_", out, bias_in);
    if (M == 0 || N == 0) return;
    const Tensor<T, Cuda> bias = bias_in.contiguous();
    const Tensor<std::int64_t> off_t = expert_offsets.contiguous();
    const std::int64_t* off = off_t.data();
    const Tensor<T, Cuda> ones = Tensor<T, Cuda>::ones({cuda_detail::grouped_max_rows(off, E)});
    const cuda::BlasContext ctx;
    for (std::int64_t e = 0; e < E; ++e) {
        const std::int64_t r0 = off[e], m = off[e + 1] - r0;
        if (m == 0) continue;
        // out_e [m, N] = ones [m, 1] · bias_e [1, N] + 1 · out_e
        cuda::gemm_row_major<T>(ctx, false, false, m, N, 1, 1.0, ones.data(), 1, bias.data() + e * N, N, 1.0,
                                out.data() + r0 * N, N, /*tf32=*/false);
    }
}

// [E, N]: the sum of each group's rows.
template <class T>
Tensor<T, Cuda> grouped_row_sum(const Tensor<T, Cuda>& g_in, const Tensor<std::int64_t>& expert_offsets) {
    static_assert(cuda::BlasDType<T>, "CUDA grouped_row_sum: T must be float, double, bfloat16 or half");
    g_in.check_defined("grouped_row_sum");
    POLYMATH_CHECK(g_in.dim() == 2, "grouped_row_sum", "expects [M, N], got ", g_in.shape());
    expert_offsets.check_defined("grouped_row_sum");
    const std::int64_t M = g_in.size(0), N = g_in.size(1), E = expert_offsets.numel() - 1;
    cuda_detail::grouped_check_offsets(expert_offsets, E, M, "grouped_row_sum");
    Tensor<T, Cuda> out = Tensor<T, Cuda>::zeros({E, N});  // empty experts stay 0
    if (M == 0 || N == 0) return out;
    const Tensor<T, Cuda> g = g_in.contiguous();
    const Tensor<std::int64_t> off_t = expert_offsets.contiguous();
    const std::int64_t* off = off_t.data();
    const std::int64_t maxm = cuda_detail::grouped_max_rows(off, E);
    const Tensor<T, Cuda> ones = Tensor<T, Cuda>::ones({maxm});
    const cuda::BlasContext ctx;
    for (std::int64_t e = 0; e < E; ++e) {
        const std::int64_t r0 = off[e], m = off[e + 1] - r0;
        if (m == 0) continue;
        // sum_e [1, N] = ones [1, m] · g_e [m, N]
        cuda::gemm_row_major<T>(ctx, false, false, 1, N, m, 1.0, ones.data(), m, g.data() + r0 * N, N, 0.0,
                                out.data() + e * N, N, /*tf32=*/false);
    }
    return out;
}

}  // namespace polymath::ops
