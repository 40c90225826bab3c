// polymath/ops/cuda/matmul.cuh — matrix products on Tensor<T, Cuda> (cuBLAS).
//
// The CUDA overloads of include/polymath/ops/matmul.hpp, same names, argument
// order, semantics and error messages:
//
//   matmul(a, b)        torch.matmul: 2-D x 2-D, batched [..., M, K] x [..., K, N]
//                       with NumPy broadcasting of the batch dims, 1-D operands as a
//                       row vector (left) or column vector (right), 1-D x 1-D a 0-d dot.
//   matmul_nt(a, b)     a · bᵀ (last two dims), matmul_tn(a, b) = aᵀ · b: zero-copy views.
//   gemm(a, b, trans_a, trans_b, alpha, beta, out)  out = alpha·op(a)·op(b) + beta·out (2-D)
//   gemm(a, b, trans_a, trans_b, alpha)             a new [M, N] tensor
//   matmul_backward(g, a, b, need_a, need_b) -> MatmulGradsCuda<T>
//                       dA = dC · Bᵀ, dB = Aᵀ · dC, summed over broadcast batch dims.
//
// dtypes: float, double, bfloat16, half (16-bit storage, fp32 accumulation;
// float honours cuda::set_allow_tf32, default off). See blas.cuh for handles,
// streams and the row-major -> column-major mapping.
//
// How operands reach cuBLAS. Each operand's matrix dims are classified from
// the strides (ops/matmul.hpp's rule): row-major with a leading dimension
// (contiguous, row slices, column slices) goes as CUBLAS_OP_N, column-major
// with a leading dimension (x.t(), transpose(-1, -2) of contiguous memory)
// as CUBLAS_OP_T — no copy either way. Anything else (a step-2 slice of the
// last dim, an expanded matrix) is made contiguous once.
//   * Right operand without a batch and a left operand whose batch and row
//     dims fold into one row index ([B, T, C] x [C, D], the Linear case):
//     ONE GEMM of (B·T) x C x D.
//   * Otherwise one cublasGemmStridedBatchedEx over the broadcast batch when
//     each operand's matrices sit at a uniform stride over the flattened
//     batch index (contiguous batches, permuted batch views, stride 0 for a
//     fully broadcast operand). An operand whose broadcast batch is not
//     uniform (e.g. [2, 1, M, K] against [1, 4, K, N]) is expanded to the
//     full batch and made contiguous first (one copy), so there is never a
//     per-matrix loop of launches.
//   * M, N or the batch empty: an empty result; K == 0: zeros.
//   * The output is always a fresh contiguous tensor (gemm(..., out): out is
//     written in place when row- or column-major with a leading dimension,
//     else through a temporary).
// matmul_backward's sums over broadcast batch dims (ops::sum_to on the CPU)
// run in a local kernel (cuda_kernels::mm_sum_to: one thread per output
// element looping over the reduced elements, accumulating in float/double);
// the common Linear case ([B, T, C] x [C, D]) needs no sum: dB is one GEMM
// of the folded rows, (B·T x C)ᵀ · (B·T x D).
#pragma once
#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "polymath/cuda/check.hpp"
#include "polymath/cuda/launch.cuh"
#include "polymath/cuda/runtime.hpp"
#include "polymath/cuda/tensor_backend.cuh"
#include "polymath/ops/cuda/blas.cuh"
#include "polymath/tensor/tensor.hpp"

namespace polymath::ops {

namespace cuda_kernels {

// out[i] = sum over the reduced dims of full[keep.offset(i) + red.offset(j)].
// One thread per output element (the reduced axes are broadcast batch dims,
// typically few; the output is a whole gradient matrix, so there are enough threads).
template <class T>
__global__ void mm_sum_to(T* out, const T* full, std::int64_t n_out, cuda::StridedIndexer keep, std::int64_t n_red,
                          cuda::StridedIndexer red) {
    using A = std::conditional_t<std::is_same_v<T, double>, double, float>;
    for (std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; i < n_out;
         i += std::int64_t(gridDim.x) * blockDim.x) {
        const T* base = full + keep.offset(i);
        A acc = A(0);
        for (std::int64_t j = 0; j < n_red; ++j) acc += A(base[red.offset(j)]);
        out[i] = dtype_cast<T>(acc);
    }
}

}  // namespace cuda_kernels

namespace cuda_detail {

// A 2-D operand as cuBLAS sees it (row-major convention, blas.cuh): element
// (i, j) is p[i * ld + j] (trans = false) or p[i + j * ld] (trans = true,
// i.e. column-major storage = the transpose of a row-major matrix).
template <class T>
struct BlasOperand {
    const T* p = nullptr;
    std::int64_t ld = 1;
    bool trans = false;
};

// Classifies a [rows, cols] view with strides (s0, s1), the rule of
// ops/matmul.hpp's as_gemm_operand; false when neither layout fits.
template <class T>
bool as_blas_operand(const T* p, std::int64_t rows, std::int64_t cols, std::int64_t s0, std::int64_t s1,
                     BlasOperand<T>& out) {
    const std::int64_t r1 = std::max<std::int64_t>(rows, 1), c1 = std::max<std::int64_t>(cols, 1);
    if ((s1 == 1 || cols <= 1) && (rows <= 1 || s0 >= c1)) {
        out = BlasOperand<T>{p, rows <= 1 ? c1 : s0, false};
        return true;
    }
    if ((s0 == 1 || rows <= 1) && (cols <= 1 || s1 >= r1)) {
        out = BlasOperand<T>{p, cols <= 1 ? r1 : s1, true};
        return true;
    }
    return false;
}

// The matrix dims (last two) of x as an operand; makes x contiguous when the
// layout is not one cuBLAS can read.
template <class T>
BlasOperand<T> blas_matrix_operand(Tensor<T, Cuda>& x) {
    const int nd = x.dim();
    BlasOperand<T> r;
    if (as_blas_operand<T>(x.data(), x.shape()[nd - 2], x.shape()[nd - 1], x.strides()[nd - 2], x.strides()[nd - 1], r))
        return r;
    x = x.contiguous();
    const bool ok =
        as_blas_operand<T>(x.data(), x.shape()[nd - 2], x.shape()[nd - 1], x.strides()[nd - 2], x.strides()[nd - 1], r);
    (void)ok;  // a contiguous matrix is always row-major with ld = cols
    return r;
}

// x [batch..., R, C] as a 2-D [prod(batch)·R, C] view, if the batch and row
// dims merge into one strided index (ops/matmul.hpp's mm_fold_rows).
template <class T>
bool mm_fold_rows(const Tensor<T, Cuda>& x, Tensor<T, Cuda>& out) {
    const int nd = x.dim();
    const std::int64_t C = x.shape()[nd - 1];
    std::int64_t rows = 1;
    std::int64_t row_stride = std::max<std::int64_t>(C, 1), expect = 0;
    bool have = false;
    for (int d = nd - 2; d >= 0; --d) {
        rows *= x.shape()[d];
        if (x.shape()[d] == 1) continue;
        if (!have) {
            row_stride = x.strides()[d];
            expect = x.strides()[d] * x.shape()[d];
            have = true;
        } else {
            if (x.strides()[d] != expect) return false;
            expect *= x.shape()[d];
        }
    }
    out = x.with_geometry(Shape{rows, C}, Strides{row_stride, x.strides()[nd - 1]}, x.offset());
    return true;
}

inline Shape mm_batch_of(const Shape& s) {
    Shape b;
    for (int i = 0; i + 2 < s.size(); ++i) b.push_back(s[i]);
    return b;
}

// The single stride s with offset(k) = k·s over the flattened `batch` for an
// operand read through broadcast strides `st` (size-1 dims skipped); false when
// the offsets are not uniform.
inline bool uniform_batch_stride(const Shape& batch, const Strides& st, std::int64_t& s) {
    std::int64_t expect = 0;
    bool have = false;
    s = 0;
    for (int d = batch.size() - 1; d >= 0; --d) {
        if (batch[d] == 1) continue;
        if (!have) {
            s = st[d];
            expect = st[d] * batch[d];
            have = true;
        } else {
            if (st[d] != expect) return false;
            expect *= batch[d];
        }
    }
    return true;
}

// Broadcast batch of shapes ba and bb with the CPU's error message.
inline Shape mm_broadcast_batch(const Shape& ba, const Shape& bbt, const Shape& a_user, const Shape& b_user) {
    const int n = std::max(ba.size(), bbt.size());
    Shape batch = Shape::filled(n, 1);
    for (int i = 0; i < n; ++i) {
        const std::int64_t da = i < n - ba.size() ? 1 : ba[i - (n - ba.size())];
        const std::int64_t db = i < n - bbt.size() ? 1 : bbt[i - (n - bbt.size())];
        POLYMATH_CHECK(da == db || da == 1 || db == 1, "matmul", "batch dimensions of shapes ", a_user, " and ",
                       b_user, " cannot be broadcast (batch dimension ", i, ": ", da, " vs ", db, ")");
        batch[i] = da == 1 ? db : da;
    }
    return batch;
}

// Batch strides of x (its batch broadcast to `batch`), uniform over the
// flattened batch index: x is expanded and made contiguous when they are not.
template <class T>
std::int64_t mm_uniform_operand(Tensor<T, Cuda>& x, const Shape& batch) {
    const Shape bx = mm_batch_of(x.shape());
    Strides st;
    for (int i = 0; i < bx.size(); ++i) st.push_back(x.strides()[i]);
    std::int64_t s = 0;
    if (uniform_batch_stride(batch, broadcast_strides(bx, st, batch), s)) return s;
    Shape full = batch;
    full.push_back(x.shape()[x.dim() - 2]);
    full.push_back(x.shape()[x.dim() - 1]);
    x = x.expand(full).contiguous();
    return x.shape()[x.dim() - 2] * x.shape()[x.dim() - 1];
}

// a [ba..., M, K] x b [bb..., K, N] (both at least 2-D) -> [broadcast(ba, bb)..., M, N].
template <class T>
Tensor<T, Cuda> mm_batched(Tensor<T, Cuda> a, Tensor<T, Cuda> b, const Shape& a_user, const Shape& b_user) {
    const int na = a.dim(), nb = b.dim();
    const std::int64_t M = a.shape()[na - 2], K = a.shape()[na - 1], N = b.shape()[nb - 1];
    POLYMATH_CHECK(b.shape()[nb - 2] == K, "matmul", "inner dimensions differ: shapes ", a_user, " and ", b_user,
                   " (", K, " vs ", b.shape()[nb - 2], ")");
    const Shape ba = mm_batch_of(a.shape()), bbt = mm_batch_of(b.shape());
    const Shape batch = mm_broadcast_batch(ba, bbt, a_user, b_user);
    Shape out_shape = batch;
    out_shape.push_back(M);
    out_shape.push_back(N);
    Tensor<T, Cuda> out = Tensor<T, Cuda>::empty(out_shape);
    if (out.numel() == 0) return out;
    const std::int64_t B = numel_of(batch);
    const cuda::BlasContext ctx;

    // Right operand without a batch: one GEMM over the folded rows of a.
    Tensor<T, Cuda> a2d;
    if (numel_of(bbt) == 1 && mm_fold_rows(a, a2d)) {
        Tensor<T, Cuda> b2d = b.with_geometry(Shape{K, N}, Strides{b.strides()[nb - 2], b.strides()[nb - 1]}, b.offset());
        const BlasOperand<T> ar = blas_matrix_operand(a2d), br = blas_matrix_operand(b2d);
        cuda::gemm_row_major<T>(ctx, ar.trans, br.trans, B * M, N, K, 1.0, ar.p, ar.ld, br.p, br.ld, 0.0, out.data(), N);
        return out;
    }

    // Matrix layout first (contiguous() keeps the batch dims' shape), then batch uniformity.
    (void)blas_matrix_operand(a);
    (void)blas_matrix_operand(b);
    const std::int64_t sa = mm_uniform_operand(a, batch), sb = mm_uniform_operand(b, batch);
    const BlasOperand<T> ar = blas_matrix_operand(a), br = blas_matrix_operand(b);  // re-read: a or b may be new
    cuda::gemm_strided_batched_row_major<T>(ctx, ar.trans, br.trans, M, N, K, 1.0, ar.p, ar.ld, sa, br.p, br.ld, sb,
                                            0.0, out.data(), N, M * N, B);
    return out;
}

// Sums `full` (contiguous, shape F) over the dims where `target` (padded
// with leading 1s) is 1 and F is not: ops::sum_to for matmul_backward.
template <class T>
Tensor<T, Cuda> mm_sum_to(const Tensor<T, Cuda>& full_in, const Shape& target) {
    const Tensor<T, Cuda> full = full_in.contiguous();
    if (full.shape() == target) return full;
    const Shape& F = full.shape();
    const int nd = F.size(), pad = nd - target.size();
    Shape keep_shape = Shape::filled(nd, 1), red_shape = Shape::filled(nd, 1);
    Strides keep_st = Strides::filled(nd, 0), red_st = Strides::filled(nd, 0);
    for (int d = 0; d < nd; ++d) {
        const std::int64_t t = d < pad ? 1 : target[d - pad];
        if (t == F[d]) {
            keep_shape[d] = F[d];
            keep_st[d] = full.strides()[d];
        } else {  // t == 1, F[d] > 1 (or F[d] == 0: nothing to sum)
            red_shape[d] = F[d];
            red_st[d] = full.strides()[d];
        }
    }
    Tensor<T, Cuda> out = Tensor<T, Cuda>::empty(target);
    const std::int64_t n_out = out.numel(), n_red = numel_of(red_shape);
    if (n_out == 0) return out;
    if (n_red == 0) {
        out.fill_(dtype_cast<T>(0.0f));
        return out;
    }
    cuda_kernels::mm_sum_to<T><<<cuda::grid_for(n_out), cuda::kThreads, 0, cuda::current_stream()>>>(
        out.data(), full.data(), n_out, cuda::StridedIndexer(keep_shape, keep_st), n_red,
        cuda::StridedIndexer(red_shape, red_st));
    POLYMATH_CUDA_CHECK_LAUNCH("matmul_backward (sum over broadcast batch dims)");
    return out;
}

}  // namespace cuda_detail

// out = alpha · op(a) · op(b) + beta · out for 2-D a, b (op(x) = xᵀ when
// trans_x). `out` must have shape [M, N] and must not overlap a or b. With
// beta == 0 the old contents of out are ignored (NaN included), as in BLAS.
template <class T>
void gemm(const Tensor<T, Cuda>& a, const Tensor<T, Cuda>& b, bool trans_a, bool trans_b,
          std::type_identity_t<T> alpha, std::type_identity_t<T> beta, const Tensor<T, Cuda>& out) {
    static_assert(cuda::BlasDType<T>, "polymath CUDA gemm: T must be float, double, bfloat16 or half");
    a.check_defined("gemm");
    b.check_defined("gemm");
    out.check_defined("gemm");
    POLYMATH_CHECK(a.dim() == 2 && b.dim() == 2, "gemm", "expects 2-D operands, got shapes ", a.shape(), " and ",
                   b.shape());
    cuda::check_same_device("gemm", a, b, out);
    Tensor<T, Cuda> A = trans_a ? a.t() : a, B = trans_b ? b.t() : b;
    const std::int64_t M = A.shape()[0], K = A.shape()[1], N = B.shape()[1];
    POLYMATH_CHECK(B.shape()[0] == K, "gemm", "inner dimensions differ: op(a) of shape ", A.shape(),
                   " and op(b) of shape ", B.shape(), " (a ", a.shape(), trans_a ? " transposed" : "", ", b ",
                   b.shape(), trans_b ? " transposed" : "", ")");
    POLYMATH_CHECK(out.shape() == (Shape{M, N}), "gemm", "output of shape ", out.shape(),
                   " does not match the product shape ", Shape{M, N}, " of ", A.shape(), " x ", B.shape());
    if (M == 0 || N == 0) return;
    const double al_d = dtype_cast<double>(T(alpha)), be_d = dtype_cast<double>(T(beta));
    const cuda_detail::BlasOperand<T> ar = cuda_detail::blas_matrix_operand(A), br = cuda_detail::blas_matrix_operand(B);
    cuda_detail::BlasOperand<T> cr;
    const bool c_ok = cuda_detail::as_blas_operand<T>(out.data(), M, N, out.strides()[0], out.strides()[1], cr);
    const cuda::BlasContext ctx;
    if (c_ok && !cr.trans) {
        cuda::gemm_row_major<T>(ctx, ar.trans, br.trans, M, N, K, al_d, ar.p, ar.ld, br.p, br.ld, be_d, out.data(), cr.ld);
    } else if (c_ok) {  // column-major out: outᵀ = op(b)ᵀ · op(a)ᵀ, row-major with ld
        cuda::gemm_row_major<T>(ctx, !br.trans, !ar.trans, N, M, K, al_d, br.p, br.ld, ar.p, ar.ld, be_d, out.data(),
                                cr.ld);
    } else {
        Tensor<T, Cuda> tmp = be_d == 0.0 ? Tensor<T, Cuda>::empty(out.shape()) : out.clone();
        cuda::gemm_row_major<T>(ctx, ar.trans, br.trans, M, N, K, al_d, ar.p, ar.ld, br.p, br.ld, be_d, tmp.data(), N);
        Tensor<T, Cuda>(out).copy_(tmp);
    }
}

// New [M, N] tensor alpha · op(a) · op(b).
template <class T>
Tensor<T, Cuda> gemm(const Tensor<T, Cuda>& a, const Tensor<T, Cuda>& b, bool trans_a = false, bool trans_b = false,
                     std::type_identity_t<T> alpha = dtype_cast<T>(1.0f)) {
    a.check_defined("gemm");
    b.check_defined("gemm");
    POLYMATH_CHECK(a.dim() == 2 && b.dim() == 2, "gemm", "expects 2-D operands, got shapes ", a.shape(), " and ",
                   b.shape());
    const std::int64_t M = trans_a ? a.shape()[1] : a.shape()[0], N = trans_b ? b.shape()[0] : b.shape()[1];
    Tensor<T, Cuda> out = Tensor<T, Cuda>::empty({M, N});
    gemm(a, b, trans_a, trans_b, alpha, dtype_cast<T>(0.0f), out);
    return out;
}

// torch.matmul. Error when the inner dims differ names "matmul" and both shapes.
template <class T>
Tensor<T, Cuda> matmul(const Tensor<T, Cuda>& a, const Tensor<T, Cuda>& b) {
    static_assert(cuda::BlasDType<T>, "polymath CUDA matmul: T must be float, double, bfloat16 or half");
    a.check_defined("matmul");
    b.check_defined("matmul");
    POLYMATH_CHECK(a.dim() >= 1 && b.dim() >= 1, "matmul", "both operands need at least 1 dimension, got shapes ",
                   a.shape(), " and ", b.shape());
    cuda::check_same_device("matmul", a, b);
    const Tensor<T, Cuda> a2 = a.dim() == 1 ? a.unsqueeze(0) : a;
    const Tensor<T, Cuda> b2 = b.dim() == 1 ? b.unsqueeze(1) : b;
    Tensor<T, Cuda> out = cuda_detail::mm_batched(a2, b2, a.shape(), b.shape());
    if (a.dim() > 1 && b.dim() > 1) return out;
    Shape s = out.shape();
    if (b.dim() == 1) s.erase(s.size() - 1);
    if (a.dim() == 1) s.erase(s.size() - (b.dim() == 1 ? 1 : 2));
    return out.view(s);
}

// a · bᵀ over the last two dims (b at least 2-D).
template <class T>
Tensor<T, Cuda> matmul_nt(const Tensor<T, Cuda>& a, const Tensor<T, Cuda>& b) {
    b.check_defined("matmul_nt");
    POLYMATH_CHECK(b.dim() >= 2, "matmul_nt", "right operand must be at least 2-D, got shape ", b.shape());
    return matmul(a, b.transpose(-1, -2));
}
// aᵀ · b over the last two dims (a at least 2-D).
template <class T>
Tensor<T, Cuda> matmul_tn(const Tensor<T, Cuda>& a, const Tensor<T, Cuda>& b) {
    a.check_defined("matmul_tn");
    POLYMATH_CHECK(a.dim() >= 2, "matmul_tn", "left operand must be at least 2-D, got shape ", a.shape());
    return matmul(a.transpose(-1, -2), b);
}

// ops::MatmulGrads<T> holds host tensors; its CUDA counterpart.
template <class T>
struct MatmulGradsCuda {
    Tensor<T, Cuda> da;  // shape of a (undefined when not requested)
    Tensor<T, Cuda> db;  // shape of b
};

// Gradients of c = matmul(a, b) given dc (shape of c).
template <class T>
MatmulGradsCuda<T> matmul_backward(const Tensor<T, Cuda>& g, const Tensor<T, Cuda>& a, const Tensor<T, Cuda>& b,
                                   bool need_a = true, bool need_b = true) {
    MatmulGradsCuda<T> r;
    const Tensor<T, Cuda> a2 = a.dim() == 1 ? a.unsqueeze(0) : a;
    const Tensor<T, Cuda> b2 = b.dim() == 1 ? b.unsqueeze(1) : b;
    const Shape ba = cuda_detail::mm_batch_of(a2.shape()), bbt = cuda_detail::mm_batch_of(b2.shape());
    const int n = std::max(ba.size(), bbt.size());
    Shape gs;
    for (int i = 0; i < n; ++i) {
        const std::int64_t da = i < n - ba.size() ? 1 : ba[i - (n - ba.size())];
        const std::int64_t db = i < n - bbt.size() ? 1 : bbt[i - (n - bbt.size())];
        gs.push_back(da == 1 ? db : da);
    }
    gs.push_back(a2.shape()[a2.dim() - 2]);
    gs.push_back(b2.shape()[b2.dim() - 1]);
    const Tensor<T, Cuda> g2 = g.reshape(gs);
    if (need_a) {
        Tensor<T, Cuda> full = matmul(g2, b2.transpose(-1, -2));
        r.da = cuda_detail::mm_sum_to(full, a2.shape()).reshape(a.shape());
    }
    if (need_b) {
        Tensor<T, Cuda> af, gf;
        if (numel_of(bbt) == 1 && a2.dim() > 2 && cuda_detail::mm_fold_rows(a2, af) && cuda_detail::mm_fold_rows(g2, gf)) {
            // dB = sum over the batch of Aᵢᵀ·Gᵢ = (folded A)ᵀ · (folded G): one GEMM.
            r.db = gemm(af, gf, true, false).reshape(b.shape());
        } else {
            Tensor<T, Cuda> full = matmul(a2.transpose(-1, -2), g2);
            r.db = cuda_detail::mm_sum_to(full, b2.shape()).reshape(b.shape());
        }
    }
    return r;
}

}  // namespace polymath::ops
