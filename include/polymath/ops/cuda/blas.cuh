// polymath/ops/cuda/blas.cuh — cuBLAS plumbing for the CUDA GEMM ops.
//
//   cuda::set_allow_tf32(bool) / cuda::allow_tf32()
//       Global math-mode switch for float GEMMs (default false). Off: float
//       GEMMs run with CUBLAS_COMPUTE_32F (full fp32 FMA, matches the CPU to
//       ~1e-5). On: CUBLAS_COMPUTE_32F_FAST_TF32 (tensor cores; inputs rounded
//       to 10-bit mantissas, ~1e-3 relative error). double always uses
//       CUBLAS_COMPUTE_64F; bfloat16 / half use CUBLAS_COMPUTE_32F (fp32
//       accumulation on tensor cores, 16-bit storage).
//
//   cuda::BlasContext ctx;          // handle for (this thread, current device),
//                                   // bound to current_stream(), with a workspace
//   cuda::gemm_row_major<T>(ctx, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
//   cuda::gemm_strided_batched_row_major<T>(ctx, ..., strideA, ..., strideB, ..., strideC, batch);
//
// Handles. cuBLAS handles are costly to create (they allocate), so one is
// kept per (thread, device): a thread takes one from a process-wide pool on
// its first GEMM on a device and gives it back to the pool when it exits, so
// short-lived threads reuse handles. The pool is never destroyed (destroying
// cuBLAS handles during process teardown, after the CUDA runtime unloads, can
// crash). Handles are created with CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION:
// 16-bit GEMMs keep split-K partial sums in fp32 rather than the 16-bit
// output type (accuracy over a few % of speed).
//
// Stream and workspace. Every BlasContext calls cublasSetStream(current_stream())
// and then cublasSetWorkspace (cublasSetStream resets the workspace to
// cuBLAS's own pool, so the order matters). The workspace is a block from the
// caching allocator (Tensor<uint8_t, Cuda>::empty) taken on the current stream
// for the lifetime of the context and freed, stream-ordered, on the same
// stream when the context dies. That makes it safe however threads and
// streams are mixed (a workspace is never shared by two streams; the pool
// serves the same block again to the next GEMM on that stream without a
// driver call), at the cost of one pool alloc/free per op call.
//
// Row-major mapping. polymath tensors are row-major; cuBLAS is column-major.
// A row-major M x N matrix with leading dimension ld IS the column-major
// N x M matrix (its transpose) with the same ld, so C = op(A)·op(B) is run
// as Cᵀ = op(B)ᵀ·op(A)ᵀ: cuBLAS gets (B, A) swapped, m = N, n = M, and each
// operand's own transpose flag unchanged. Operands follow the row-major BLAS
// convention: A is stored row-major as M x K (lda >= K), or as K x M
// (lda >= M) when trans_a; likewise B; C is M x N row-major (ldc >= N).
// All sizes go through the 64-bit cuBLAS API (cublasGemmEx_64 and
// cublasGemmStridedBatchedEx_64), so no int overflow for large tensors.
//
// K == 0: cuBLAS is not asked; C = beta·C (C = 0 when beta == 0, NaN
// ignored as in BLAS) by a small elementwise kernel.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <atomic>
#include <cstdint>
#include <mutex>
#include <type_traits>
#include <vector>

#include "polymath/core/dtype.hpp"
#include "polymath/core/error.hpp"
#include "polymath/cuda/check.hpp"
#include "polymath/cuda/launch.cuh"
#include "polymath/cuda/runtime.hpp"
#include "polymath/cuda/tensor_backend.cuh"
#include "polymath/tensor/tensor.hpp"

namespace polymath::cuda {

// ---- math mode ------------------------------------------------------------
namespace detail {
inline std::atomic<bool>& allow_tf32_flag() {
    static std::atomic<bool> flag{false};
    return flag;
}
}  // namespace detail

// Lets float GEMMs use TF32 tensor cores (global, all threads). Default off.
inline void set_allow_tf32(bool on) noexcept { detail::allow_tf32_flag().store(on, std::memory_order_relaxed); }
inline bool allow_tf32() noexcept { return detail::allow_tf32_flag().load(std::memory_order_relaxed); }

// ---- dtype mapping --------------------------------------------------------
template <class T>
struct BlasTypes;
template <>
struct BlasTypes<float> {
    static constexpr cudaDataType_t data = CUDA_R_32F;
    using scale = float;
};
template <>
struct BlasTypes<double> {
    static constexpr cudaDataType_t data = CUDA_R_64F;
    using scale = double;
};
template <>
struct BlasTypes<bfloat16> {
    static constexpr cudaDataType_t data = CUDA_R_16BF;
    using scale = float;
};
template <>
struct BlasTypes<half> {
    static constexpr cudaDataType_t data = CUDA_R_16F;
    using scale = float;
};
template <class T>
concept BlasDType = std::is_same_v<T, float> || std::is_same_v<T, double> || std::is_same_v<T, bfloat16> ||
                    std::is_same_v<T, half>;

// Compute type for T; `tf32` only matters for float.
template <class T>
cublasComputeType_t blas_compute_type(bool tf32) {
    if constexpr (std::is_same_v<T, double>) return CUBLAS_COMPUTE_64F;
    else if constexpr (std::is_same_v<T, float>) return tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
    else return CUBLAS_COMPUTE_32F;
}

// ---- handles --------------------------------------------------------------
namespace detail {

inline constexpr int kMaxBlasDevices = 64;

class BlasHandlePool {
public:
    static BlasHandlePool& instance() {
        static BlasHandlePool* p = new BlasHandlePool();  // leaked on purpose (see the header comment)
        return *p;
    }
    // A handle for `dev` (which must be the current device).
    cublasHandle_t acquire(int dev) {
        {
            std::lock_guard<std::mutex> lock(mu_);
            auto& v = free_[dev];
            if (!v.empty()) {
                cublasHandle_t h = v.back();
                v.pop_back();
                return h;
            }
        }
        cublasHandle_t h = nullptr;
        POLYMATH_CUBLAS_CHECK(cublasCreate(&h));
        const cublasStatus_t st = cublasSetMathMode(
            h, cublasMath_t(unsigned(CUBLAS_DEFAULT_MATH) | unsigned(CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION)));
        if (st != CUBLAS_STATUS_SUCCESS) {
            (void)cublasDestroy(h);
            POLYMATH_CUBLAS_CHECK(st);
        }
        return h;
    }
    void release(int dev, cublasHandle_t h) noexcept {
        try {
            std::lock_guard<std::mutex> lock(mu_);
            free_[dev].push_back(h);
        } catch (...) {  // push_back failed: leak the handle rather than throw from a destructor
        }
    }

private:
    std::mutex mu_;
    std::vector<cublasHandle_t> free_[kMaxBlasDevices];
};

struct ThreadBlasHandles {
    cublasHandle_t h[kMaxBlasDevices] = {};
    ~ThreadBlasHandles() {
        for (int d = 0; d < kMaxBlasDevices; ++d)
            if (h[d]) BlasHandlePool::instance().release(d, h[d]);
    }
};

inline cublasHandle_t thread_blas_handle(int dev) {
    POLYMATH_CHECK(dev >= 0 && dev < kMaxBlasDevices, "cublas", "device index ", dev, " beyond the ", kMaxBlasDevices,
                   " devices polymath keeps cuBLAS handles for");
    thread_local ThreadBlasHandles handles;
    if (!handles.h[dev]) handles.h[dev] = BlasHandlePool::instance().acquire(dev);
    return handles.h[dev];
}

// Workspace bytes: NVIDIA recommends 32 MiB on Hopper and newer, 4 MiB before.
inline std::size_t blas_workspace_bytes(int dev) {
    thread_local int cached_dev = -1;
    thread_local std::size_t cached = 0;
    if (dev != cached_dev) {
        int major = 0;
        POLYMATH_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev));
        cached = major >= 9 ? (std::size_t(32) << 20) : (std::size_t(4) << 20);
        cached_dev = dev;
    }
    return cached;
}

}  // namespace detail

// A cuBLAS handle for (this thread, current device), bound to current_stream()
// with a caching-allocator workspace that lives as long as this object. Make
// one per op call (it is cheap) and run that call's GEMMs through it; do not
// change the current stream while it lives.
class BlasContext {
public:
    BlasContext() {
        const int dev = current_device();
        h_ = detail::thread_blas_handle(dev);
        const std::size_t bytes = detail::blas_workspace_bytes(dev);
        ws_ = Tensor<std::uint8_t, Cuda>::empty({std::int64_t(bytes)});
        POLYMATH_CUBLAS_CHECK(cublasSetStream(h_, current_stream()));
        POLYMATH_CUBLAS_CHECK(cublasSetWorkspace(h_, ws_.data(), bytes));
    }
    BlasContext(const BlasContext&) = delete;
    BlasContext& operator=(const BlasContext&) = delete;
    cublasHandle_t handle() const noexcept { return h_; }

private:
    cublasHandle_t h_ = nullptr;
    Tensor<std::uint8_t, Cuda> ws_;
};

// ---- K == 0: C = beta · C ------------------------------------------------
namespace kernels {
// One thread per element of `batch` row-major [rows, cols] matrices (leading
// dim ld, matrix stride sc). beta == 0 writes 0 (old values, NaN included, ignored).
template <class T>
__global__ void blas_scale_c(T* c, std::int64_t rows, std::int64_t cols, std::int64_t ld, std::int64_t sc,
                             std::int64_t batch, compute_t<T> beta) {
    const std::int64_t per = rows * cols, n = per * batch;
    for (std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; i < n;
         i += std::int64_t(gridDim.x) * blockDim.x) {
        const std::int64_t b = i / per, r = (i - b * per) / cols, col = i - b * per - r * cols;
        T* p = c + b * sc + r * ld + col;
        *p = beta == compute_t<T>(0) ? dtype_cast<T>(0.0f) : dtype_cast<T>(beta * compute_t<T>(*p));
    }
}
}  // namespace kernels

namespace detail {
template <class T>
void blas_scale_c(T* c, std::int64_t rows, std::int64_t cols, std::int64_t ld, std::int64_t sc, std::int64_t batch,
                  double beta) {
    const std::int64_t n = rows * cols * batch;
    if (n == 0) return;
    if (beta == 1.0) return;
    kernels::blas_scale_c<T><<<grid_for(n), kThreads, 0, current_stream()>>>(c, rows, cols, ld, sc, batch,
                                                                             compute_t<T>(beta));
    POLYMATH_CUDA_CHECK_LAUNCH("gemm (K = 0: C = beta * C)");
}

inline cublasOperation_t blas_op(bool trans) { return trans ? CUBLAS_OP_T : CUBLAS_OP_N; }
}  // namespace detail

// C[M, N] = alpha · op(A) · op(B) + beta · C, row-major operands (see the
// header comment). `tf32` only matters for float (default: allow_tf32()).
template <BlasDType T>
void gemm_row_major(const BlasContext& ctx, bool trans_a, bool trans_b, std::int64_t M, std::int64_t N,
                    std::int64_t K, double alpha, const T* A, std::int64_t lda, const T* B, std::int64_t ldb,
                    double beta, T* C, std::int64_t ldc, bool tf32 = allow_tf32()) {
    if (M == 0 || N == 0) return;
    if (K == 0) {
        detail::blas_scale_c<T>(C, M, N, ldc, 0, 1, beta);
        return;
    }
    using S = typename BlasTypes<T>::scale;
    const S al = S(alpha), be = S(beta);
    constexpr cudaDataType_t dt = BlasTypes<T>::data;
    POLYMATH_CUBLAS_CHECK(cublasGemmEx_64(ctx.handle(), detail::blas_op(trans_b), detail::blas_op(trans_a), N, M, K,
                                          &al, B, dt, ldb, A, dt, lda, &be, C, dt, ldc,
                                          blas_compute_type<T>(tf32), CUBLAS_GEMM_DEFAULT));
}

// `batch` products C_i = alpha · op(A_i) · op(B_i) + beta · C_i with
// X_i = X + i · strideX (strideA / strideB may be 0: a broadcast operand).
template <BlasDType T>
void gemm_strided_batched_row_major(const BlasContext& ctx, bool trans_a, bool trans_b, std::int64_t M,
                                    std::int64_t N, std::int64_t K, double alpha, const T* A, std::int64_t lda,
                                    std::int64_t strideA, const T* B, std::int64_t ldb, std::int64_t strideB,
                                    double beta, T* C, std::int64_t ldc, std::int64_t strideC, std::int64_t batch,
                                    bool tf32 = allow_tf32()) {
    if (M == 0 || N == 0 || batch == 0) return;
    if (K == 0) {
        detail::blas_scale_c<T>(C, M, N, ldc, strideC, batch, beta);
        return;
    }
    if (batch == 1) {
        gemm_row_major<T>(ctx, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, tf32);
        return;
    }
    using S = typename BlasTypes<T>::scale;
    const S al = S(alpha), be = S(beta);
    constexpr cudaDataType_t dt = BlasTypes<T>::data;
    POLYMATH_CUBLAS_CHECK(cublasGemmStridedBatchedEx_64(
        ctx.handle(), detail::blas_op(trans_b), detail::blas_op(trans_a), N, M, K, &al, B, dt, ldb,
        (long long)strideB, A, dt, lda, (long long)strideA, &be, C, dt, ldc, (long long)strideC, batch,
        blas_compute_type<T>(tf32), CUBLAS_GEMM_DEFAULT));
}

}  // namespace polymath::cuda
