// polymath/ops/cuda/softmax.cuh — softmax / log_softmax over one axis and their
// backward kernels on Tensor<T, Cuda> (no autograd), mirroring
// polymath/ops/softmax.hpp:
//
//   softmax(x, axis)      y = exp(x - max) / sum(exp(x - max))
//   log_softmax(x, axis)  y = x - max - log(sum(exp(x - max)))
//   softmax_backward(g, y, axis)      gx = y * (g - sum(g * y, axis))
//   log_softmax_backward(g, y, axis)  gx = g - exp(y) * sum(g, axis)
//
// dtypes: float, double, and bfloat16 / half storage computing in float.
// The input is read as a contiguous [O, R, I] block (R the softmax axis):
//   * I == 1, R <= 1024 (softmax_warp_*): one warp per row, 4 rows per
//     128-thread block. Each lane keeps its R/32 values in registers (VPT is a
//     compile-time power of two, padded lanes masked), so the row is read from
//     global memory once and written once; lane j reads elements j, j+32, ...,
//     so each load instruction of the warp is one coalesced segment.
//   * I == 1, R > 1024 (softmax_block_*): one 512-thread block per row, three
//     sweeps (max, sum of exp, write). The row (R*sizeof(T) bytes) stays in
//     L1/L2 between sweeps, so DRAM traffic is still one read and one write.
//   * I > 1 (softmax_col_*, any axis but the last): one thread per (o, i)
//     column, looping over R; neighbouring threads read neighbouring i, so
//     every access is coalesced and no transpose is materialised.
// Same numerics as the CPU: max subtracted first, NaN propagates (the max is
// NaN-propagating), a row of all -inf gives NaN, exp(-inf - finite max) = 0.
// Results are new contiguous tensors; empty tensors launch nothing.
#pragma once
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <type_traits>

#include "polymath/cuda/check.hpp"
#include "polymath/cuda/launch.cuh"
#include "polymath/cuda/runtime.hpp"
#include "polymath/cuda/tensor_backend.cuh"
#include "polymath/tensor/tensor.hpp"

namespace polymath::ops {

namespace cuda_kernels {

// ---- device helpers shared by softmax.cuh, layer_norm.cuh and loss.cuh ----

template <class T>
inline constexpr bool is_cuda_float_v = std::is_same_v<T, float> || std::is_same_v<T, double> ||
                                        std::is_same_v<T, bfloat16> || std::is_same_v<T, polymath::half>;

__device__ __forceinline__ float dev_exp(float x) { return expf(x); }
__device__ __forceinline__ double dev_exp(double x) { return ::exp(x); }
__device__ __forceinline__ float dev_log(float x) { return logf(x); }
__device__ __forceinline__ double dev_log(double x) { return ::log(x); }
__device__ __forceinline__ float dev_sqrt(float x) { return sqrtf(x); }
__device__ __forceinline__ double dev_sqrt(double x) { return ::sqrt(x); }

template <class C>
__device__ __forceinline__ C dev_neg_inf() {
    return -C(INFINITY);
}

// max that propagates NaN (Eigen::PropagateNaN on the CPU).
template <class C>
__device__ __forceinline__ C nan_max(C a, C b) {
    return (a > b || a != a) ? a : b;
}

struct MaxOp {
    template <class C>
    __device__ __forceinline__ C operator()(C a, C b) const {
        return nan_max(a, b);
    }
};
struct SumOp {
    template <class C>
    __device__ __forceinline__ C operator()(C a, C b) const {
        return a + b;
    }
};

// Butterfly reduction over a full warp: every lane gets the result. All 32
// lanes must be active (callers exit whole warps only).
template <class C, class Op>
__device__ __forceinline__ C warp_reduce(C v, Op op) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// Reduction over the whole block (blockDim.x a multiple of 32, <= 1024);
// every thread gets the result. sh: at least 33 elements of shared memory.
// Ends with a barrier, so the caller may reuse sh at once. Every thread of
// the block must call it.
template <class C, class Op>
__device__ __forceinline__ C block_reduce(C v, Op op, C identity, C* sh) {
    v = warp_reduce(v, op);
    const int lane = int(threadIdx.x) & 31, wid = int(threadIdx.x) >> 5, nw = int(blockDim.x + 31) >> 5;
    if (lane == 0) sh[wid] = v;
    __syncthreads();
    if (wid == 0) {
        C r = lane < nw ? sh[lane] : identity;
        r = warp_reduce(r, op);
        if (lane == 0) sh[32] = r;
    }
    __syncthreads();
    const C r = sh[32];
    __syncthreads();
    return r;
}

template <class T>
__device__ __forceinline__ cuda::compute_t<T> ld(const T* p) {
    return dtype_cast<cuda::compute_t<T>>(*p);
}
template <class T, class C>
__device__ __forceinline__ void st(T* p, C v) {
    *p = dtype_cast<T>(v);
}

inline constexpr int kRowWarpMax = 1024;    // rows up to this length: one warp per row
inline constexpr int kWarpRowsPerBlock = 4;  // warps (rows) per block on the warp path
inline constexpr int kRowBlockThreads = 512;  // block-per-row path

// Calls f(std::integral_constant<int, VPT>) with the smallest VPT in
// {1, 2, 4, 8, 16, 32} such that 32 * VPT >= n (n <= 1024).
template <class F>
void dispatch_vpt(std::int64_t n, F&& f) {
    if (n <= 32) f(std::integral_constant<int, 1>{});
    else if (n <= 64) f(std::integral_constant<int, 2>{});
    else if (n <= 128) f(std::integral_constant<int, 4>{});
    else if (n <= 256) f(std::integral_constant<int, 8>{});
    else if (n <= 512) f(std::integral_constant<int, 16>{});
    else f(std::integral_constant<int, 32>{});
}

// Blocks for `rows` rows handled kWarpRowsPerBlock per block (rows loop by grid stride beyond).
inline unsigned warp_row_blocks(std::int64_t rows) {
    const std::int64_t need = (rows + kWarpRowsPerBlock - 1) / kWarpRowsPerBlock;
    return unsigned(std::max<std::int64_t>(1, std::min<std::int64_t>(need, std::int64_t(1) << 30)));
}
inline unsigned block_row_blocks(std::int64_t rows) {
    return unsigned(std::max<std::int64_t>(1, std::min<std::int64_t>(rows, std::int64_t(1) << 30)));
}

// ---- softmax forward ----

template <class T, bool Log, int VPT>
__global__ void __launch_bounds__(32 * kWarpRowsPerBlock) softmax_warp_fwd(const T* __restrict__ x, T* __restrict__ y,
                                                                          std::int64_t rows, int R) {
    using C = cuda::compute_t<T>;
    const int lane = int(threadIdx.x) & 31;
    const std::int64_t stride = std::int64_t(gridDim.x) * kWarpRowsPerBlock;
    for (std::int64_t row = std::int64_t(blockIdx.x) * kWarpRowsPerBlock + (threadIdx.x >> 5); row < rows;
         row += stride) {  // warp-uniform loop
        const T* xr = x + row * R;
        T* yr = y + row * R;
        C v[VPT];
        C m = dev_neg_inf<C>();
#pragma unroll
        for (int k = 0; k < VPT; ++k) {
            const int j = lane + 32 * k;
            v[k] = j < R ? ld(xr + j) : C(0);
            if (j < R) m = nan_max(m, v[k]);
        }
        m = warp_reduce(m, MaxOp{});
        C s = C(0);
#pragma unroll
        for (int k = 0; k < VPT; ++k) {
            const int j = lane + 32 * k;
            if (j < R) {
                const C e = dev_exp(v[k] - m);
                s += e;
                if constexpr (!Log) v[k] = e;
            }
        }
        s = warp_reduce(s, SumOp{});
        if constexpr (Log) {
            const C lse = m + dev_log(s);
#pragma unroll
            for (int k = 0; k < VPT; ++k) {
                const int j = lane + 32 * k;
                if (j < R) st(yr + j, v[k] - lse);
            }
        } else {
            const C inv = C(1) / s;
#pragma unroll
            for (int k = 0; k < VPT; ++k) {
                const int j = lane + 32 * k;
                if (j < R) st(yr + j, v[k] * inv);
            }
        }
    }
}

template <class T, bool Log>
__global__ void __launch_bounds__(kRowBlockThreads) softmax_block_fwd(const T* __restrict__ x, T* __restrict__ y,
                                                                     std::int64_t rows, std::int64_t R) {
    using C = cuda::compute_t<T>;
    __shared__ C sh[33];
    for (std::int64_t row = blockIdx.x; row < rows; row += gridDim.x) {  // block-uniform loop
        const T* xr = x + row * R;
        T* yr = y + row * R;
        C m = dev_neg_inf<C>();
        for (std::int64_t j = threadIdx.x; j < R; j += blockDim.x) m = nan_max(m, ld(xr + j));
        m = block_reduce(m, MaxOp{}, dev_neg_inf<C>(), sh);
        C s = C(0);
        for (std::int64_t j = threadIdx.x; j < R; j += blockDim.x) s += dev_exp(ld(xr + j) - m);
        s = block_reduce(s, SumOp{}, C(0), sh);
        if constexpr (Log) {
            const C lse = m + dev_log(s);
            for (std::int64_t j = threadIdx.x; j < R; j += blockDim.x) st(yr + j, ld(xr + j) - lse);
        } else {
            const C inv = C(1) / s;
            for (std::int64_t j = threadIdx.x; j < R; j += blockDim.x) st(yr + j, dev_exp(ld(xr + j) - m) * inv);
        }
    }
}

template <class T, bool Log>
__global__ void softmax_col_fwd(const T* __restrict__ x, T* __restrict__ y, std::int64_t O, std::int64_t R,
                                std::int64_t I) {
    using C = cuda::compute_t<T>;
    const std::int64_t n = O * I;
    for (std::int64_t idx = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; idx < n;
         idx += std::int64_t(gridDim.x) * blockDim.x) {
        const std::int64_t o = idx / I, i = idx - o * I;
        const T* xc = x + o * R * I + i;
        T* yc = y + o * R * I + i;
        C m = dev_neg_inf<C>();
        for (std::int64_t r = 0; r < R; ++r) m = nan_max(m, ld(xc + r * I));
        C s = C(0);
        for (std::int64_t r = 0; r < R; ++r) s += dev_exp(ld(xc + r * I) - m);
        if constexpr (Log) {
            const C lse = m + dev_log(s);
            for (std::int64_t r = 0; r < R; ++r) st(yc + r * I, ld(xc + r * I) - lse);
        } else {
            const C inv = C(1) / s;
            for (std::int64_t r = 0; r < R; ++r) st(yc + r * I, dev_exp(ld(xc + r * I) - m) * inv);
        }
    }
}

// ---- softmax backward ----
// Log: gx = g - exp(y) * sum(g);  else: gx = y * (g - sum(g * y)).

template <class T, bool Log, int VPT>
__global__ void __launch_bounds__(32 * kWarpRowsPerBlock) softmax_warp_bwd(const T* __restrict__ g,
                                                                          const T* __restrict__ y,
                                                                          T* __restrict__ gx, std::int64_t rows, int R) {
    using C = cuda::compute_t<T>;
    const int lane = int(threadIdx.x) & 31;
    const std::int64_t stride = std::int64_t(gridDim.x) * kWarpRowsPerBlock;
    for (std::int64_t row = std::int64_t(blockIdx.x) * kWarpRowsPerBlock + (threadIdx.x >> 5); row < rows;
         row += stride) {
        const std::int64_t base = row * R;
        C gv[VPT], yv[VPT];
        C s = C(0);
#pragma unroll
        for (int k = 0; k < VPT; ++k) {
            const int j = lane + 32 * k;
            gv[k] = j < R ? ld(g + base + j) : C(0);
            yv[k] = j < R ? ld(y + base + j) : C(0);
            if (j < R) s += Log ? gv[k] : gv[k] * yv[k];
        }
        s = warp_reduce(s, SumOp{});
#pragma unroll
        for (int k = 0; k < VPT; ++k) {
            const int j = lane + 32 * k;
            if (j < R) {
                if constexpr (Log) st(gx + base + j, gv[k] - dev_exp(yv[k]) * s);
                else st(gx + base + j, yv[k] * (gv[k] - s));
            }
        }
    }
}

template <class T, bool Log>
__global__ void __launch_bounds__(kRowBlockThreads) softmax_block_bwd(const T* __restrict__ g, const T* __restrict__ y,
                                                                     T* __restrict__ gx, std::int64_t rows,
                                                                     std::int64_t R) {
    using C = cuda::compute_t<T>;
    __shared__ C sh[33];
    for (std::int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
        const std::int64_t base = row * R;
        C s = C(0);
        for (std::int64_t j = threadIdx.x; j < R; j += blockDim.x)
            s += Log ? ld(g + base + j) : ld(g + base + j) * ld(y + base + j);
        s = block_reduce(s, SumOp{}, C(0), sh);
        for (std::int64_t j = threadIdx.x; j < R; j += blockDim.x) {
            const C gj = ld(g + base + j), yj = ld(y + base + j);
            if constexpr (Log) st(gx + base + j, gj - dev_exp(yj) * s);
            else st(gx + base + j, yj * (gj - s));
        }
    }
}

template <class T, bool Log>
__global__ void softmax_col_bwd(const T* __restrict__ g, const T* __restrict__ y, T* __restrict__ gx, std::int64_t O,
                                std::int64_t R, std::int64_t I) {
    using C = cuda::compute_t<T>;
    const std::int64_t n = O * I;
    for (std::int64_t idx = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; idx < n;
         idx += std::int64_t(gridDim.x) * blockDim.x) {
        const std::int64_t o = idx / I, i = idx - o * I;
        const std::int64_t base = o * R * I + i;
        C s = C(0);
        for (std::int64_t r = 0; r < R; ++r)
            s += Log ? ld(g + base + r * I) : ld(g + base + r * I) * ld(y + base + r * I);
        for (std::int64_t r = 0; r < R; ++r) {
            const C gj = ld(g + base + r * I), yj = ld(y + base + r * I);
            if constexpr (Log) st(gx + base + r * I, gj - dev_exp(yj) * s);
            else st(gx + base + r * I, yj * (gj - s));
        }
    }
}

}  // namespace cuda_kernels

namespace detail {

struct CudaSoftmaxSplit {
    std::int64_t O = 1, R = 1, I = 1;
};
inline CudaSoftmaxSplit cuda_softmax_split(const Shape& s, int axis) {
    CudaSoftmaxSplit r;
    if (s.size() == 0) return r;
    for (int d = 0; d < axis; ++d) r.O *= s[d];
    r.R = s[axis];
    for (int d = axis + 1; d < s.size(); ++d) r.I *= s[d];
    return r;
}

template <class T, bool Log>
Tensor<T, Cuda> cuda_softmax_impl(const Tensor<T, Cuda>& x_in, std::int64_t axis, const char* op) {
    static_assert(cuda_kernels::is_cuda_float_v<T>, "polymath CUDA softmax takes float, double, bfloat16 or half");
    x_in.check_defined(op);
    const int ax = normalize_axis(axis, x_in.dim(), op);
    const Tensor<T, Cuda> x = x_in.contiguous();
    Tensor<T, Cuda> y = Tensor<T, Cuda>::empty(x.shape());
    if (x.numel() == 0) return y;
    const CudaSoftmaxSplit sp = cuda_softmax_split(x.shape(), ax);
    const cudaStream_t s = cuda::current_stream();
    namespace k = cuda_kernels;
    if (sp.I == 1) {
        if (sp.R <= k::kRowWarpMax) {
            k::dispatch_vpt(sp.R, [&](auto vpt) {
                k::softmax_warp_fwd<T, Log, decltype(vpt)::value>
                    <<<k::warp_row_blocks(sp.O), 32 * k::kWarpRowsPerBlock, 0, s>>>(x.data(), y.data(), sp.O,
                                                                                     int(sp.R));
            });
        } else {
            k::softmax_block_fwd<T, Log>
                <<<k::block_row_blocks(sp.O), k::kRowBlockThreads, 0, s>>>(x.data(), y.data(), sp.O, sp.R);
        }
    } else {
        k::softmax_col_fwd<T, Log>
            <<<cuda::grid_for(sp.O * sp.I), cuda::kThreads, 0, s>>>(x.data(), y.data(), sp.O, sp.R, sp.I);
    }
    POLYMATH_CUDA_CHECK_LAUNCH("softmax");
    return y;
}

template <class T, bool Log>
Tensor<T, Cuda> cuda_softmax_backward_impl(const Tensor<T, Cuda>& g_in, const Tensor<T, Cuda>& y_in,
                                           std::int64_t axis, const char* op) {
    static_assert(cuda_kernels::is_cuda_float_v<T>, "polymath CUDA softmax takes float, double, bfloat16 or half");
    y_in.check_defined(op);
    g_in.check_defined(op);
    POLYMATH_CHECK(g_in.shape() == y_in.shape(), op, "gradient of shape ", g_in.shape(),
                   " does not match the output shape ", y_in.shape());
    cuda::check_same_device(op, g_in, y_in);
    const int ax = normalize_axis(axis, y_in.dim(), op);
    const Tensor<T, Cuda> y = y_in.contiguous(), g = g_in.contiguous();
    Tensor<T, Cuda> gx = Tensor<T, Cuda>::empty(y.shape());
    if (y.numel() == 0) return gx;
    const CudaSoftmaxSplit sp = cuda_softmax_split(y.shape(), ax);
    const cudaStream_t s = cuda::current_stream();
    namespace k = cuda_kernels;
    if (sp.I == 1) {
        if (sp.R <= k::kRowWarpMax) {
            k::dispatch_vpt(sp.R, [&](auto vpt) {
                k::softmax_warp_bwd<T, Log, decltype(vpt)::value>
                    <<<k::warp_row_blocks(sp.O), 32 * k::kWarpRowsPerBlock, 0, s>>>(g.data(), y.data(), gx.data(),
                                                                                     sp.O, int(sp.R));
            });
        } else {
            k::softmax_block_bwd<T, Log>
                <<<k::block_row_blocks(sp.O), k::kRowBlockThreads, 0, s>>>(g.data(), y.data(), gx.data(), sp.O, sp.R);
        }
    } else {
        k::softmax_col_bwd<T, Log><<<cuda::grid_for(sp.O * sp.I), cuda::kThreads, 0, s>>>(g.data(), y.data(),
                                                                                         gx.data(), sp.O, sp.R, sp.I);
    }
    POLYMATH_CUDA_CHECK_LAUNCH("softmax_backward");
    return gx;
}

}  // namespace detail

template <class T>
Tensor<T, Cuda> softmax(const Tensor<T, Cuda>& x, std::int64_t axis = -1) {
    return detail::cuda_softmax_impl<T, false>(x, axis, "softmax");
}
template <class T>
Tensor<T, Cuda> log_softmax(const Tensor<T, Cuda>& x, std::int64_t axis = -1) {
    return detail::cuda_softmax_impl<T, true>(x, axis, "log_softmax");
}
// gx = y * (g - sum(g * y, axis)), y = softmax(x, axis).
template <class T>
Tensor<T, Cuda> softmax_backward(const Tensor<T, Cuda>& g, const Tensor<T, Cuda>& y, std::int64_t axis) {
    return detail::cuda_softmax_backward_impl<T, false>(g, y, axis, "softmax_backward");
}
// gx = g - exp(y) * sum(g, axis), y = log_softmax(x, axis).
template <class T>
Tensor<T, Cuda> log_softmax_backward(const Tensor<T, Cuda>& g, const Tensor<T, Cuda>& y, std::int64_t axis) {
    return detail::cuda_softmax_backward_impl<T, true>(g, y, axis, "log_softmax_backward");
}

}  // namespace polymath::ops
