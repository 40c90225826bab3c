// polymath/ops/matmul.hpp — matrix products (no autograd).
//
//   matmul(a, b)        torch.matmul semantics: 2-D x 2-D, batched [..., M, K] x [..., K, N]
//                       with NumPy broadcasting of the batch dims, 1-D operands as a row
//                       vector (left) or column vector (right), 1-D x 1-D a 0-d dot.
//   matmul_nt(a, b)     a · bᵀ (last two dims), matmul_tn(a, b) = aᵀ · b: zero-copy views.
//   gemm(a, b, trans_a, trans_b, alpha, beta, out)
//                       BLAS-style 2-D primitive: out = alpha · op(a) · op(b) + beta · out.
//   matmul_backward     dA = dC · Bᵀ, dB = Aᵀ · dC, summed over broadcast batch dims.
//
// How the GEMM runs. Every 2-D operand is handed to Eigen's blocked GEMM
// (gebp kernel) as a row-major or a column-major matrix with a leading
// dimension, detected from the strides: a contiguous tensor, a row slice
// (padded rows), a transpose() or a column slice of a transpose need no copy;
// other layouts (e.g. a step-2 slice of the last dim) are made contiguous
// first, once per operand. The output is written in place, row-major.
//   * Eigen's own entry point allocates its packing buffers with malloc on
//     every product; for buffers past glibc's mmap threshold that is an mmap +
//     page faults + munmap per call (measured: 4x slower at 256^3). polymath
//     calls Eigen's internal general_matrix_matrix_product directly with
//     per-thread packing buffers that are reused across calls (they grow to
//     the largest block seen and live as long as the thread).
//   * Eigen is built without OpenMP here, so it is single-threaded: polymath
//     splits the output into num_threads() blocks of rows (or of columns when
//     N > M), aligned to the micro-kernel tile, and runs one single-threaded
//     GEMM per block through parallel_for. It splits only when M·N·K exceeds
//     64^3 per thread. Each block packs its own copy of the shared operand.
//   * Batched products: when the right operand has no batch (e.g. [B, T, C] x
//     [C, D]) and the left's batch and row dims fold into one row index, the
//     whole thing is ONE GEMM of (B·T) x C x D. Otherwise the batch is split
//     over threads (one single-threaded GEMM per matrix) when it is large
//     relative to the thread count, else the matrices run one after the other
//     with the threaded 2-D split.
//   * M == 1 or N == 1 go through Eigen's GEMV; tiny products (M+N+K < 20)
//     through Eigen's coefficient-based product.
// Results are deterministic for a given thread count; the threaded split
// does not change any element's summation order, so results are identical
// for every thread count as well.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <utility>
#include <vector>

#include <Eigen/Core>

#include "polymath/ops/elementwise.hpp"
#include "polymath/ops/reduce.hpp"

namespace polymath::ops {

namespace detail {

using EIndex = Eigen::Index;

// A 2-D operand as Eigen sees it: element (i, j) is p[i * ld + j] (row-major)
// or p[i + j * ld] (column-major).
template <class T>
struct GemmOperand {
    const T* p = nullptr;
    EIndex ld = 1;
    bool col_major = false;
    // The same memory read as the transpose.
    GemmOperand transposed() const { return GemmOperand{p, ld, !col_major}; }
};

// Classifies a [rows, cols] view with strides (s0, s1); false when neither
// row- nor column-major with a leading dimension Eigen accepts.
template <class T>
bool as_gemm_operand(const T* p, std::int64_t rows, std::int64_t cols, std::int64_t s0, std::int64_t s1, GemmOperand<T>& out) {
    const std::int64_t r1 = std::max<std::int64_t>(rows, 1), c1 = std::max<std::int64_t>(cols, 1);
    if ((s1 == 1 || cols <= 1) && (rows <= 1 || s0 >= c1)) {
        out = GemmOperand<T>{p, rows <= 1 ? c1 : s0, false};
        return true;
    }
    if ((s0 == 1 || rows <= 1) && (cols <= 1 || s1 >= r1)) {
        out = GemmOperand<T>{p, cols <= 1 ? r1 : s1, true};
        return true;
    }
    return false;
}

// Per-thread packing buffer for Eigen's GEMM, grown on demand, never shrunk.
template <class T>
class GemmPackBuffer {
public:
    ~GemmPackBuffer() { std::free(p_); }
    T* get(std::size_t n) {
        if (n > cap_) {
            std::free(p_);
            const std::size_t bytes = (n * sizeof(T) + 63) / 64 * 64;
            p_ = static_cast<T*>(std::aligned_alloc(64, bytes));
            if (!p_) {
                cap_ = 0;
                throw std::bad_alloc();
            }
            cap_ = bytes / sizeof(T);
        }
        return p_;
    }

private:
    T* p_ = nullptr;
    std::size_t cap_ = 0;
};
template <class T>
T* gemm_pack_buffer(std::size_t n) {
    thread_local GemmPackBuffer<T> buf;
    return buf.get(n);
}

// Eigen's level-3 blocking with the packing buffers taken from the
// per-thread cache (Eigen's gemm_blocking_space mallocs them per call).
template <class T>
class GemmBlocking : public Eigen::internal::level3_blocking<T, T> {
public:
    GemmBlocking(EIndex M, EIndex N, EIndex K) {
        // A row-major product runs as the column-major Cᵀ = Bᵀ·Aᵀ: Eigen's
        // "rows" (mc) are our N, its "cols" (nc) our M.
        this->m_mc = N;
        this->m_nc = M;
        this->m_kc = K;
        Eigen::internal::computeProductBlockingSizes<T, T, 1>(this->m_kc, this->m_mc, this->m_nc, EIndex(1));
        constexpr std::size_t kAlignElems = 64 / sizeof(T);
        const std::size_t sa = (std::size_t(this->m_mc * this->m_kc) + kAlignElems - 1) / kAlignElems * kAlignElems;
        const std::size_t sb = std::size_t(this->m_kc * this->m_nc);
        T* buf = gemm_pack_buffer<T>(sa + sb);
        this->m_blockA = buf;
        this->m_blockB = buf + sa;
    }
};

// C (row-major, leading dim ldc) += alpha · A · B, single-threaded.
template <class T, int LO, int RO>
void gemm_kernel(EIndex M, EIndex N, EIndex K, const T* A, EIndex lda, const T* B, EIndex ldb, T* C, EIndex ldc,
                 T alpha) {
    if (M == 0 || N == 0 || K == 0) return;
    if (M == 1 || N == 1 || M + N + K < 20) {
        // GEMV and tiny products: direct loops. (Eigen's expression product
        // would instantiate a second GEMM per layout and double the compile
        // time of every user of matmul.)
        const auto at = [&](EIndex i, EIndex k) { return LO == Eigen::RowMajor ? A[i * lda + k] : A[k * lda + i]; };
        const auto bt = [&](EIndex k, EIndex j) { return RO == Eigen::RowMajor ? B[k * ldb + j] : B[j * ldb + k]; };
        for (EIndex i = 0; i < M; ++i) {
            T* c = C + i * ldc;
            if (RO == Eigen::RowMajor) {  // c_row += a(i, k) * b_row(k): contiguous, vectorises
                for (EIndex k = 0; k < K; ++k) {
                    const T aik = alpha * at(i, k);
                    const T* brow = B + k * ldb;
                    for (EIndex j = 0; j < N; ++j) c[j] += aik * brow[j];
                }
            } else {  // c(i, j) = dot(a row, b column): b columns are contiguous
                for (EIndex j = 0; j < N; ++j) {
                    T acc = T(0);
                    for (EIndex k = 0; k < K; ++k) acc += at(i, k) * bt(k, j);
                    c[j] += alpha * acc;
                }
            }
        }
        return;
    }
    GemmBlocking<T> blocking(M, N, K);
    Eigen::internal::general_matrix_matrix_product<EIndex, T, LO, false, T, RO, false, Eigen::RowMajor, 1>::run(
        M, N, K, A, lda, B, ldb, C, 1, ldc, alpha, blocking);
}

template <class T>
void gemm_kernel(EIndex M, EIndex N, EIndex K, const GemmOperand<T>& a, const GemmOperand<T>& b, T* C, EIndex ldc, T alpha) {
    constexpr int R = Eigen::RowMajor, Cm = Eigen::ColMajor;
    if (!a.col_major && !b.col_major) gemm_kernel<T, R, R>(M, N, K, a.p, a.ld, b.p, b.ld, C, ldc, alpha);
    else if (!a.col_major && b.col_major) gemm_kernel<T, R, Cm>(M, N, K, a.p, a.ld, b.p, b.ld, C, ldc, alpha);
    else if (a.col_major && !b.col_major) gemm_kernel<T, Cm, R>(M, N, K, a.p, a.ld, b.p, b.ld, C, ldc, alpha);
    else gemm_kernel<T, Cm, Cm>(M, N, K, a.p, a.ld, b.p, b.ld, C, ldc, alpha);
}

// Work (M·N·K) per thread above which a 2-D product is split over threads.
inline constexpr double kGemmSplitWork = 64.0 * 64.0 * 64.0;

// C[M, N] (row-major, ldc) = alpha · A · B + beta · C; split over threads
// when `threaded` and the product is large.
template <class T>
void gemm2d(EIndex M, EIndex N, EIndex K, const GemmOperand<T>& a, const GemmOperand<T>& b, T* C, EIndex ldc, T alpha, T beta,
            bool threaded) {
    if (M == 0 || N == 0) return;
    auto block = [&](EIndex r0, EIndex r1, EIndex c0, EIndex c1) {
        using CM = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
        T* cp = C + r0 * ldc + c0;
        Eigen::Map<CM, 0, Eigen::OuterStride<>> cb(cp, r1 - r0, c1 - c0, Eigen::OuterStride<>(ldc));
        if (beta == T(0)) cb.setZero();  // BLAS semantics: C's old values (even NaN) are ignored
        else if (beta != T(1)) cb *= beta;
        if (K == 0 || alpha == T(0)) return;
        const GemmOperand<T> ab{a.p + (a.col_major ? r0 : r0 * a.ld), a.ld, a.col_major};
        const GemmOperand<T> bb{b.p + (b.col_major ? c0 * b.ld : c0), b.ld, b.col_major};
        gemm_kernel<T>(r1 - r0, c1 - c0, K, ab, bb, cp, ldc, alpha);
    };
    const int nt = threaded ? num_threads() : 1;
    const double work = double(M) * double(N) * double(K);
    if (nt <= 1 || work <= kGemmSplitWork * nt) {
        block(0, M, 0, N);
        return;
    }
    // Split the longer output side; block edges on the micro-kernel tile
    // (Eigen's 3 packets along N, 4 rows along M) so no block gets a ragged tile
    // in the middle.
    const bool by_rows = M >= N;
    const EIndex len = by_rows ? M : N;
    const EIndex align = by_rows ? 8 : 48;
    const EIndex nb = std::max<EIndex>(1, std::min<EIndex>(nt, (len + align - 1) / align));
    if (nb == 1) {
        block(0, M, 0, N);
        return;
    }
    const EIndex chunk = ((len + nb - 1) / nb + align - 1) / align * align;
    parallel_for(0, nb, 1, [&](std::int64_t bb, std::int64_t be) {
        for (std::int64_t i = bb; i < be; ++i) {
            const EIndex lo = std::min<EIndex>(len, i * chunk), hi = std::min<EIndex>(len, lo + chunk);
            if (hi <= lo) continue;
            if (by_rows) block(lo, hi, 0, N);
            else block(0, M, lo, hi);
        }
    });
}

// The matrix dims of x (last two) as a GemmOperand; makes x contiguous when the
// layout is not one Eigen can read.
template <class T>
GemmOperand<T> gemm_matrix_operand(Tensor<T>& x) {
    const int nd = x.dim();
    GemmOperand<T> r;
    if (as_gemm_operand(x.data(), x.shape()[nd - 2], x.shape()[nd - 1], x.strides()[nd - 2], x.strides()[nd - 1], r)) return r;
    x = x.contiguous();
    const bool ok = as_gemm_operand(x.data(), x.shape()[nd - 2], x.shape()[nd - 1], x.strides()[nd - 2], x.strides()[nd - 1], r);
    (void)ok;
    return r;
}

// x [batch..., R, C] as a 2-D [prod(batch)·R, C] view, if the batch and row
// dims merge into one strided index.
template <class T>
bool mm_fold_rows(const Tensor<T>& x, Tensor<T>& out) {
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

// Storage offsets (relative to element 0) of each matrix of a batched
// operand read through broadcast strides over `batch`.
inline std::vector<std::int64_t> mm_batch_offsets(const Shape& batch, const Strides& st) {
    const std::int64_t B = numel_of(batch);
    std::vector<std::int64_t> offs(static_cast<std::size_t>(B), 0);
    std::int64_t idx[kMaxDims] = {};
    std::int64_t off = 0;
    for (std::int64_t k = 0; k < B; ++k) {
        offs[std::size_t(k)] = off;
        for (int d = batch.size() - 1; d >= 0; --d) {
            if (++idx[d] < batch[d]) {
                off += st[d];
                break;
            }
            off -= st[d] * (batch[d] - 1);
            idx[d] = 0;
        }
    }
    return offs;
}

// a [ba..., M, K] x b [bb..., K, N] (both at least 2-D) -> [broadcast(ba, bb)..., M, N].
template <class T>
Tensor<T> mm_batched(Tensor<T> a, Tensor<T> b, const Shape& a_user, const Shape& b_user) {
    const int na = a.dim(), nb = b.dim();
    const std::int64_t M = a.shape()[na - 2], K = a.shape()[na - 1], N = b.shape()[nb - 1];
    POLYMATH_CHECK(b.shape()[nb - 2] == K, "matmul", "inner dimensions differ: shapes ", a_user, " and ", b_user,
                   " (", K, " vs ", b.shape()[nb - 2], ")");
    const Shape ba = mm_batch_of(a.shape()), bbt = mm_batch_of(b.shape());
    const int n = std::max(ba.size(), bbt.size());
    Shape batch = Shape::filled(n, 1);
    for (int i = 0; i < n; ++i) {
        const std::int64_t da = i < n - ba.size() ? 1 : ba[i - (n - ba.size())];
        const std::int64_t db = i < n - bbt.size() ? 1 : bbt[i - (n - bbt.size())];
        POLYMATH_CHECK(da == db || da == 1 || db == 1, "matmul", "batch dimensions of shapes ", a_user, " and ",
                       b_user, " cannot be broadcast (batch dimension ", i, ": ", da, " vs ", db, ")");
        batch[i] = da == 1 ? db : da;
    }
    Shape out_shape = batch;
    out_shape.push_back(M);
    out_shape.push_back(N);
    Tensor<T> out = Tensor<T>::empty(out_shape);
    if (out.numel() == 0) return out;
    const std::int64_t B = numel_of(batch);

    // Right operand without a batch: one GEMM over the folded rows of a.
    Tensor<T> a2d;
    if (numel_of(bbt) == 1 && mm_fold_rows(a, a2d)) {
        Tensor<T> b2d = b.with_geometry(Shape{K, N}, Strides{b.strides()[nb - 2], b.strides()[nb - 1]}, b.offset());
        const GemmOperand<T> ar = gemm_matrix_operand(a2d), br = gemm_matrix_operand(b2d);
        gemm2d<T>(B * M, N, K, ar, br, out.data(), N, T(1), T(0), true);
        return out;
    }

    const GemmOperand<T> ar = gemm_matrix_operand(a), br = gemm_matrix_operand(b);
    Strides ast, bst;
    for (int i = 0; i < ba.size(); ++i) ast.push_back(a.strides()[i]);
    for (int i = 0; i < bbt.size(); ++i) bst.push_back(b.strides()[i]);
    const std::vector<std::int64_t> ao = mm_batch_offsets(batch, broadcast_strides(ba, ast, batch));
    const std::vector<std::int64_t> bo = mm_batch_offsets(batch, broadcast_strides(bbt, bst, batch));
    T* o = out.data();
    const std::int64_t MN = M * N;
    auto one = [&](std::int64_t k, bool threaded) {
        gemm2d<T>(M, N, K, GemmOperand<T>{ar.p + ao[std::size_t(k)], ar.ld, ar.col_major},
                  GemmOperand<T>{br.p + bo[std::size_t(k)], br.ld, br.col_major}, o + k * MN, N, T(1), T(0), threaded);
    };
    const int nt = num_threads();
    const double work = double(M) * double(N) * double(K);
    const bool over_batch = nt > 1 && B > 1 && (B >= 4 * nt || B % nt == 0 || work <= kGemmSplitWork * nt);
    if (over_batch) {
        const std::int64_t grain = std::max<std::int64_t>(1, std::int64_t(kGemmSplitWork / std::max(work, 1.0)));
        parallel_for(0, B, grain, [&](std::int64_t kb, std::int64_t ke) {
            for (std::int64_t k = kb; k < ke; ++k) one(k, false);
        });
    } else {
        for (std::int64_t k = 0; k < B; ++k) one(k, true);
    }
    return out;
}

}  // namespace detail

// out = alpha · op(a) · op(b) + beta · out for 2-D a, b (op(x) = xᵀ when
// trans_x). `out` is a handle whose elements are overwritten; it must have
// shape [M, N] and must not overlap a or b. With beta == 0 the old contents
// of out are ignored (NaN included), as in BLAS.
template <class T>
void gemm(const Tensor<T>& a, const Tensor<T>& b, bool trans_a, bool trans_b, std::type_identity_t<T> alpha,
          std::type_identity_t<T> beta, const Tensor<T>& out) {
    static_assert(MathDType<T>, "polymath gemm computes in float or double; convert with .to<float>() first");
    a.check_defined("gemm");
    b.check_defined("gemm");
    out.check_defined("gemm");
    POLYMATH_CHECK(a.dim() == 2 && b.dim() == 2, "gemm", "expects 2-D operands, got shapes ", a.shape(), " and ",
                   b.shape());
    Tensor<T> A = trans_a ? a.t() : a, B = trans_b ? b.t() : b;
    const std::int64_t M = A.shape()[0], K = A.shape()[1], N = B.shape()[1];
    POLYMATH_CHECK(B.shape()[0] == K, "gemm", "inner dimensions differ: op(a) of shape ", A.shape(), " and op(b) of shape ",
                   B.shape(), " (a ", a.shape(), trans_a ? " transposed" : "", ", b ", b.shape(),
                   trans_b ? " transposed" : "", ")");
    POLYMATH_CHECK(out.shape() == (Shape{M, N}), "gemm", "output of shape ", out.shape(), " does not match the product shape ",
                   Shape{M, N}, " of ", A.shape(), " x ", B.shape());
    if (M == 0 || N == 0) return;
    const detail::GemmOperand<T> ar = detail::gemm_matrix_operand(A), br = detail::gemm_matrix_operand(B);
    detail::GemmOperand<T> cr;
    const bool c_ok = detail::as_gemm_operand(out.data(), M, N, out.strides()[0], out.strides()[1], cr);
    if (c_ok && !cr.col_major) {
        detail::gemm2d<T>(M, N, K, ar, br, out.data(), cr.ld, alpha, beta, true);
    } else if (c_ok) {  // column-major out: compute outᵀ = op(b)ᵀ · op(a)ᵀ row-major
        detail::gemm2d<T>(N, M, K, br.transposed(), ar.transposed(), out.data(), cr.ld, alpha, beta, true);
    } else {
        Tensor<T> tmp = beta == T(0) ? Tensor<T>::empty(out.shape()) : out.clone();
        detail::gemm2d<T>(M, N, K, ar, br, tmp.data(), N, alpha, beta, true);
        Tensor<T>(out).copy_(tmp);
    }
}

// New [M, N] tensor alpha · op(a) · op(b).
template <class T>
Tensor<T> gemm(const Tensor<T>& a, const Tensor<T>& b, bool trans_a = false, bool trans_b = false,
               std::type_identity_t<T> alpha = T(1)) {
    a.check_defined("gemm");
    b.check_defined("gemm");
    POLYMATH_CHECK(a.dim() == 2 && b.dim() == 2, "gemm", "expects 2-D operands, got shapes ", a.shape(), " and ",
                   b.shape());
    const std::int64_t M = trans_a ? a.shape()[1] : a.shape()[0], N = trans_b ? b.shape()[0] : b.shape()[1];
    Tensor<T> out = Tensor<T>::empty({M, N});
    gemm(a, b, trans_a, trans_b, alpha, T(0), out);
    return out;
}

// torch.matmul. Error when the inner dims differ names "matmul" and both shapes.
template <class T>
Tensor<T> matmul(const Tensor<T>& a, const Tensor<T>& b) {
    static_assert(MathDType<T>, "polymath matmul computes in float or double; convert with .to<float>() first");
    a.check_defined("matmul");
    b.check_defined("matmul");
    POLYMATH_CHECK(a.dim() >= 1 && b.dim() >= 1, "matmul", "both operands need at least 1 dimension, got shapes ",
                   a.shape(), " and ", b.shape());
    const Tensor<T> a2 = a.dim() == 1 ? a.unsqueeze(0) : a;
    const Tensor<T> b2 = b.dim() == 1 ? b.unsqueeze(1) : b;
    Tensor<T> out = detail::mm_batched(a2, b2, a.shape(), b.shape());
    if (a.dim() > 1 && b.dim() > 1) return out;
    Shape s = out.shape();
    if (b.dim() == 1) s.erase(s.size() - 1);
    if (a.dim() == 1) s.erase(s.size() - (b.dim() == 1 ? 1 : 2));
    return out.view(s);
}

// a · bᵀ over the last two dims (b at least 2-D).
template <class T>
Tensor<T> matmul_nt(const Tensor<T>& a, const Tensor<T>& b) {
    b.check_defined("matmul_nt");
    POLYMATH_CHECK(b.dim() >= 2, "matmul_nt", "right operand must be at least 2-D, got shape ", b.shape());
    return matmul(a, b.transpose(-1, -2));
}
// aᵀ · b over the last two dims (a at least 2-D).
template <class T>
Tensor<T> matmul_tn(const Tensor<T>& a, const Tensor<T>& b) {
    a.check_defined("matmul_tn");
    POLYMATH_CHECK(a.dim() >= 2, "matmul_tn", "left operand must be at least 2-D, got shape ", a.shape());
    return matmul(a.transpose(-1, -2), b);
}

template <class T>
struct MatmulGrads {
    Tensor<T> da;  // shape of a (undefined when not requested)
    Tensor<T> db;  // shape of b
};

// Gradients of c = matmul(a, b) given dc (shape of c).
template <class T>
MatmulGrads<T> matmul_backward(const Tensor<T>& g, const Tensor<T>& a, const Tensor<T>& b, bool need_a = true,
                               bool need_b = true) {
    MatmulGrads<T> r;
    const Tensor<T> a2 = a.dim() == 1 ? a.unsqueeze(0) : a;
    const Tensor<T> b2 = b.dim() == 1 ? b.unsqueeze(1) : b;
    const Shape ba = detail::mm_batch_of(a2.shape()), bbt = detail::mm_batch_of(b2.shape());
    const int n = std::max(ba.size(), bbt.size());
    Shape gs;
    for (int i = 0; i < n; ++i) {
        const std::int64_t da = i < n - ba.size() ? 1 : ba[i - (n - ba.size())];
        const std::int64_t db = i < n - bbt.size() ? 1 : bbt[i - (n - bbt.size())];
        gs.push_back(da == 1 ? db : da);
    }
    gs.push_back(a2.shape()[a2.dim() - 2]);
    gs.push_back(b2.shape()[b2.dim() - 1]);
    const Tensor<T> g2 = g.reshape(gs);
    if (need_a) {
        Tensor<T> full = matmul(g2, b2.transpose(-1, -2));
        r.da = ops::sum_to(full, a2.shape()).reshape(a.shape());
    }
    if (need_b) {
        Tensor<T> af, gf;
        if (numel_of(bbt) == 1 && a2.dim() > 2 && detail::mm_fold_rows(a2, af) && detail::mm_fold_rows(g2, gf)) {
            // dB = sum over the batch of Aᵢᵀ·Gᵢ = (folded A)ᵀ · (folded G): one GEMM.
            r.db = gemm(af, gf, true, false).reshape(b.shape());
        } else {
            Tensor<T> full = matmul(a2.transpose(-1, -2), g2);
            r.db = ops::sum_to(full, b2.shape()).reshape(b.shape());
        }
    }
    return r;
}

}  // namespace polymath::ops
