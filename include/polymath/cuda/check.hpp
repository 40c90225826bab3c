// polymath/cuda/check.hpp — every CUDA runtime and cuBLAS call is checked.
//
//   POLYMATH_CUDA_CHECK(cudaMemcpyAsync(...));
//   POLYMATH_CUBLAS_CHECK(cublasGemmEx(...));
//   kernel<<<g, b, 0, s>>>(...); POLYMATH_CUDA_CHECK_LAUNCH("softmax_forward");
//
// A failure throws polymath::Error whose message names the call as written,
// file:line and the CUDA/cuBLAS error string, e.g.
//   "cuda: cudaMallocAsync(&p, bytes, stream) failed at allocator.hpp:88:
//    out of memory (cudaErrorMemoryAllocation)".
// Checks stay on in release builds (an unchecked launch failure surfaces much
// later, at an unrelated call).
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "polymath/core/error.hpp"

namespace polymath::cuda {

namespace detail {
inline const char* base_name(const char* path) {
    const char* b = path;
    for (const char* p = path; *p; ++p)
        if (*p == '/' || *p == '\\') b = p + 1;
    return b;
}
}  // namespace detail

inline const char* cublas_status_string(cublasStatus_t s) {
    switch (s) {
        case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
        case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED (no device, or cuBLAS could not start)";
        case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED (out of device memory)";
        case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE (bad size, leading dimension or pointer)";
        case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH (feature not supported by this GPU)";
        case CUBLAS_STATUS_MAPPING_ERROR: return "CUBLAS_STATUS_MAPPING_ERROR";
        case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED (kernel failed to run)";
        case CUBLAS_STATUS_INTERNAL_ERROR: return "CUBLAS_STATUS_INTERNAL_ERROR";
        case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED (this type/layout combination)";
        case CUBLAS_STATUS_LICENSE_ERROR: return "CUBLAS_STATUS_LICENSE_ERROR";
        default: return "unknown cublasStatus_t";
    }
}

[[noreturn]] inline void throw_cuda_error(cudaError_t e, const char* call, const char* file, int line) {
    throw Error(polymath::detail::str_cat("cuda: ", call, " failed at ", detail::base_name(file), ":", line, ": ",
                                          cudaGetErrorString(e), " (", cudaGetErrorName(e), ")"));
}
[[noreturn]] inline void throw_cublas_error(cublasStatus_t s, const char* call, const char* file, int line) {
    throw Error(polymath::detail::str_cat("cublas: ", call, " failed at ", detail::base_name(file), ":", line, ": ",
                                          cublas_status_string(s)));
}

}  // namespace polymath::cuda

#define POLYMATH_CUDA_CHECK(call)                                                              \
    do {                                                                                       \
        const cudaError_t pm_cuda_err_ = (call);                                               \
        if (pm_cuda_err_ != cudaSuccess) [[unlikely]] {                                        \
            (void)cudaGetLastError(); /* clear a sticky non-fatal error */                     \
            ::polymath::cuda::throw_cuda_error(pm_cuda_err_, #call, __FILE__, __LINE__);       \
        }                                                                                      \
    } while (0)

#define POLYMATH_CUBLAS_CHECK(call)                                                            \
    do {                                                                                       \
        const cublasStatus_t pm_cublas_st_ = (call);                                           \
        if (pm_cublas_st_ != CUBLAS_STATUS_SUCCESS) [[unlikely]]                               \
            ::polymath::cuda::throw_cublas_error(pm_cublas_st_, #call, __FILE__, __LINE__);     \
    } while (0)

// After a kernel launch: reports bad launch configurations at once (not at the
// next synchronising call). `name` is the kernel's op name for the message.
#define POLYMATH_CUDA_CHECK_LAUNCH(name)                                                       \
    do {                                                                                       \
        const cudaError_t pm_cuda_err_ = cudaGetLastError();                                   \
        if (pm_cuda_err_ != cudaSuccess) [[unlikely]]                                          \
            ::polymath::cuda::throw_cuda_error(pm_cuda_err_, "launch of " name, __FILE__, __LINE__); \
    } while (0)
