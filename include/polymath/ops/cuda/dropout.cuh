// polymath/ops/cuda/dropout.cuh — inverted dropout on CUDA, on the CPU's Philox stream.
//
//   dropout_forward(x, p, gen = default_generator()) -> DropoutForwardCuda<T> {y, mask, seed, offset}
//   dropout(x, p, training, gen = default_generator()) -> y
//   dropout_backward(g, mask, p) -> g * mask / (1 - p)
//   dropout_mask<Cuda>(shape, p, seed, offset) -> Tensor<uint8_t, Cuda>
//
// Exactly ops/dropout.hpp: a draw reserves numel(x) values of gen's stream
// (offset = gen.reserve(n), so the generator advances by the same amount as
// on the CPU) and element j is kept when philox_u32(seed, offset + j) >=
// ceil(float(p) · 2^24) · 2^8, i.e. philox_uniform_float(seed, offset + j) >=
// float(p). Kept values are x · scale with scale = T(1 / (1 - p)) and dropped
// ones x · 0 (a product, as the CPU: -0 for negative x, NaN for inf), so for
// float / double the mask AND y equal the CPU's bit for bit. p == 0 keeps
// everything and p == 1 drops everything without drawing; float(p) == 1 with
// p < 1 draws (advances the generator) and drops everything, as the CPU.
// T = float, double, bfloat16, half (16-bit: x · scale in float, rounded once).
//
// Kernel: one thread per Philox block (4 consecutive stream words = 4
// elements), grid-stride: every word is computed once, and the 4 elements'
// x / y / mask are moved with one vector access each when the draw offset is a
// multiple of 4 (always, for draws from a Generator) and the pointers are
// aligned; otherwise element by element. The backward is a plain elementwise
// kernel.
#pragma once
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <type_traits>

#include "polymath/core/philox.hpp"
#include "polymath/cuda/check.hpp"
#include "polymath/cuda/launch.cuh"
#include "polymath/cuda/runtime.hpp"
#include "polymath/cuda/tensor_backend.cuh"
#include "polymath/tensor/tensor.hpp"

namespace polymath::ops {

template <class T>
struct DropoutForwardCuda {
    Tensor<T, Cuda> y;
    Tensor<std::uint8_t, Cuda> mask;  // 1 = kept (shape of x)
    std::uint64_t seed = 0, offset = 0;
};

namespace cuda_kernels {

template <class T>
inline constexpr bool kDropoutCudaDType = std::is_same_v<T, float> || std::is_same_v<T, double> ||
                                          std::is_same_v<T, bfloat16> || std::is_same_v<T, polymath::half>;

template <class T>
struct alignas(sizeof(T) * 4) DropVec4 {
    T v[4];
};
struct alignas(4) DropMask4 {
    std::uint8_t v[4];
};

// y[i] = x[i] · (keep ? scale : 0) (computed in compute_t<T>); mask[i] = keep.
template <class T>
__device__ __forceinline__ T dropout_scale_one(T x, bool keep, cuda::compute_t<T> scale) {
    using A = cuda::compute_t<T>;
    return dtype_cast<T>(A(x) * (keep ? scale : A(0)));
}

// Thread q handles stream block c = offset / 4 + q, i.e. elements
// j in [4c - offset, 4c - offset + 4) ∩ [0, n). x / y may be null (mask only).
// VEC4: offset % 4 == 0 and all pointers aligned for 4-element accesses.
template <class T, bool VEC4>
__global__ void dropout_forward_kernel(const T* __restrict__ x, T* __restrict__ y, std::uint8_t* __restrict__ mask,
                                       std::int64_t n, std::uint64_t seed, std::uint64_t offset, std::uint32_t thr,
                                       cuda::compute_t<T> scale) {
    const std::uint64_t c_first = offset / 4;
    const std::uint64_t nblocks = (offset + std::uint64_t(n) + 3) / 4 - c_first;
    for (std::uint64_t q = blockIdx.x * std::uint64_t(blockDim.x) + threadIdx.x; q < nblocks;
         q += std::uint64_t(gridDim.x) * blockDim.x) {
        const std::uint64_t c = c_first + q;
        const u32x4 w = philox_block(seed, c);
        const std::int64_t j0 = std::int64_t(4 * c - offset);  // may be negative for q == 0 (unaligned offset)
        if (VEC4 && j0 + 4 <= n) {
            DropMask4 m;
#pragma unroll
            for (int i = 0; i < 4; ++i) m.v[i] = std::uint8_t(w.v[i] >= thr);
            *reinterpret_cast<DropMask4*>(mask + j0) = m;
            if (x != nullptr) {
                const DropVec4<T> xv = *reinterpret_cast<const DropVec4<T>*>(x + j0);
                DropVec4<T> yv;
#pragma unroll
                for (int i = 0; i < 4; ++i) yv.v[i] = dropout_scale_one<T>(xv.v[i], m.v[i] != 0, scale);
                *reinterpret_cast<DropVec4<T>*>(y + j0) = yv;
            }
        } else {
#pragma unroll
            for (int i = 0; i < 4; ++i) {
                const std::int64_t j = j0 + i;
                if (j < 0 || j >= n) continue;
                const bool keep = w.v[i] >= thr;
                mask[j] = std::uint8_t(keep);
                if (x != nullptr) y[j] = dropout_scale_one<T>(x[j], keep, scale);
            }
        }
    }
}

template <class T>
__global__ void dropout_backward_kernel(const T* __restrict__ g, const std::uint8_t* __restrict__ mask,
                                        T* __restrict__ out, std::int64_t n, cuda::compute_t<T> scale) {
    for (std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; i < n;
         i += std::int64_t(gridDim.x) * blockDim.x)
        out[i] = dropout_scale_one<T>(g[i], mask[i] != 0, scale);
}

}  // namespace cuda_kernels

namespace detail {

inline void check_dropout_p_cuda(double p, const char* op) {
    POLYMATH_CHECK(p >= 0.0 && p <= 1.0, op, "probability p must be in [0, 1], got ", p);
}

// The CPU's detail::dropout_threshold: "u >= float(p)" in integers (2^32: keep nothing).
inline std::uint64_t dropout_threshold_cuda(float pf) {
    return static_cast<std::uint64_t>(std::ceil(double(pf) * 16777216.0)) << 8;
}

// The CPU's scale: T(1 / (1 - p)) for float / double; float for 16-bit types.
template <class T>
cuda::compute_t<T> dropout_scale_cuda(double p) {
    return cuda::compute_t<T>(1.0 / (1.0 - p));
}

template <class T>
void dropout_launch(const T* x, T* y, std::uint8_t* mask, std::int64_t n, std::uint64_t seed, std::uint64_t offset,
                    std::uint32_t thr, cuda::compute_t<T> scale) {
    if (n == 0) return;
    const std::uint64_t blocks = (offset + std::uint64_t(n) + 3) / 4 - offset / 4;
    auto al = [](const void* p, std::size_t b) { return p == nullptr || reinterpret_cast<std::uintptr_t>(p) % b == 0; };
    const bool vec4 = offset % 4 == 0 && al(mask, 4) && al(x, 4 * sizeof(T)) && al(y, 4 * sizeof(T));
    const cudaStream_t s = cuda::current_stream();
    const unsigned grid = cuda::grid_for(std::int64_t(blocks));
    if (vec4)
        cuda_kernels::dropout_forward_kernel<T, true><<<grid, cuda::kThreads, 0, s>>>(x, y, mask, n, seed, offset, thr, scale);
    else
        cuda_kernels::dropout_forward_kernel<T, false><<<grid, cuda::kThreads, 0, s>>>(x, y, mask, n, seed, offset, thr, scale);
    POLYMATH_CUDA_CHECK_LAUNCH("dropout");
}

}  // namespace detail

// Mask of the draw (seed, offset) over `shape` on the device: 1 where kept.
// Call as dropout_mask<Cuda>(shape, p, seed, offset) (the CPU's is dropout_mask(shape, ...)).
template <class D>
    requires std::is_same_v<D, Cuda>
Tensor<std::uint8_t, Cuda> dropout_mask(const Shape& shape, double p, std::uint64_t seed, std::uint64_t offset) {
    detail::check_dropout_p_cuda(p, "dropout_mask");
    Tensor<std::uint8_t, Cuda> m = Tensor<std::uint8_t, Cuda>::empty(shape);
    const std::uint64_t thr = detail::dropout_threshold_cuda(static_cast<float>(p));
    if (thr > 0xFFFFFFFFu) return m.fill_(0);
    detail::dropout_launch<float>(nullptr, nullptr, m.data(), m.numel(), seed, offset, std::uint32_t(thr), 0.0f);
    return m;
}

// Training-mode dropout: y and the mask. p == 0 keeps everything and p == 1
// drops everything, neither drawing from gen.
template <class T>
DropoutForwardCuda<T> dropout_forward(const Tensor<T, Cuda>& x_in, double p, Generator& gen = default_generator()) {
    static_assert(cuda_kernels::kDropoutCudaDType<T>, "polymath CUDA dropout: T must be float, double, bfloat16 or half");
    x_in.check_defined("dropout");
    detail::check_dropout_p_cuda(p, "dropout");
    const Tensor<T, Cuda> x = x_in.contiguous();
    DropoutForwardCuda<T> out;
    const std::int64_t n = x.numel();
    if (p == 0.0) {
        out.y = x.clone();
        out.mask = Tensor<std::uint8_t, Cuda>::full(x.shape(), 1);
        return out;
    }
    if (p == 1.0) {
        out.y = Tensor<T, Cuda>::zeros(x.shape());
        out.mask = Tensor<std::uint8_t, Cuda>::zeros(x.shape());
        return out;
    }
    out.seed = gen.seed();
    out.offset = gen.reserve(static_cast<std::uint64_t>(n));
    out.y = Tensor<T, Cuda>::empty(x.shape());
    out.mask = Tensor<std::uint8_t, Cuda>::empty(x.shape());
    const std::uint64_t thr = detail::dropout_threshold_cuda(static_cast<float>(p));
    if (thr > 0xFFFFFFFFu) {  // float(p) == 1: the rule keeps nothing
        out.y.fill_(dtype_cast<T>(0.0f));
        out.mask.fill_(0);
        return out;
    }
    detail::dropout_launch<T>(x.data(), out.y.data(), out.mask.data(), n, out.seed, out.offset, std::uint32_t(thr),
                              detail::dropout_scale_cuda<T>(p));
    return out;
}

template <class T>
Tensor<T, Cuda> dropout(const Tensor<T, Cuda>& x, double p, bool training, Generator& gen = default_generator()) {
    x.check_defined("dropout");
    detail::check_dropout_p_cuda(p, "dropout");
    if (!training || p == 0.0) return x;
    return dropout_forward(x, p, gen).y;
}

// g * mask / (1 - p) (zeros when p == 1; a dropped inf or NaN gradient gives NaN, as torch).
template <class T>
Tensor<T, Cuda> dropout_backward(const Tensor<T, Cuda>& g_in, const Tensor<std::uint8_t, Cuda>& mask_in, double p) {
    static_assert(cuda_kernels::kDropoutCudaDType<T>, "polymath CUDA dropout: T must be float, double, bfloat16 or half");
    g_in.check_defined("dropout_backward");
    mask_in.check_defined("dropout_backward");
    detail::check_dropout_p_cuda(p, "dropout_backward");
    POLYMATH_CHECK(g_in.shape() == mask_in.shape(), "dropout_backward", "gradient of shape ", g_in.shape(),
                   " does not match the mask shape ", mask_in.shape());
    cuda::check_same_device("dropout_backward", g_in, mask_in);
    if (p == 1.0) return Tensor<T, Cuda>::zeros(g_in.shape());
    const Tensor<T, Cuda> g = g_in.contiguous();
    const Tensor<std::uint8_t, Cuda> mask = mask_in.contiguous();
    Tensor<T, Cuda> gx = Tensor<T, Cuda>::empty(g.shape());
    const std::int64_t n = g.numel();
    if (n == 0) return gx;
    const cudaStream_t s = cuda::current_stream();
    cuda_kernels::dropout_backward_kernel<T><<<cuda::grid_for(n), cuda::kThreads, 0, s>>>(
        g.data(), mask.data(), gx.data(), n, detail::dropout_scale_cuda<T>(p));
    POLYMATH_CUDA_CHECK_LAUNCH("dropout_backward");
    return gx;
}

}  // namespace polymath::ops
