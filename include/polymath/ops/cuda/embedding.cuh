// polymath/ops/cuda/embedding.cuh — embedding lookup and its backward on CUDA.
//
//   embedding(weight [V, D], indices, padding_idx = -1)                         -> [indices..., D]
//   embedding_backward(grad [indices..., D], indices, num_embeddings, padding_idx) -> [V, D]
//
// Same names, argument order and semantics as ops/embedding.hpp, with the
// table / gradient on the device and the indices either
//   * on the device (Tensor<int64_t, Cuda>): the range check runs ON THE DEVICE
//     — the first out-of-range position (row-major order, as the CPU) is kept by
//     an atomicMin, read back once after the kernel (one host synchronisation),
//     and reported with the CPU's Error message; or
//   * on the host (Tensor<int64_t, Cpu>): checked on the host before any CUDA
//     work (no synchronisation), then uploaded.
// dtypes: the forward copies rows of any dtype; the backward takes float,
// double, bfloat16, half (summed in float, rounded once) and integer types.
//
// Kernels:
//  * embedding_gather — threads over (16-byte vectors of) the row, rows over
//    blockIdx.x / threadIdx.y with a grid-stride loop: every warp copies a
//    contiguous piece of one table row; no integer division per element.
//  * embedding_grad_runs — deterministic scatter-add without atomics. The
//    (index, position) pairs are ordered by index with ties kept in ascending
//    position (a stable LSD radix sort of the device indices — CUB — or a
//    stable counting sort on the host); each block owns one run of equal
//    indices (blocks that are not at a run start exit) and its threads sum the
//    run's gradient rows column by column in ascending position, exactly the
//    CPU's order (0 + g[p0] + g[p1] + ...), so float / double results equal the
//    CPU's bit for bit and are identical on every run. Rows with no index are
//    zero; the padding_idx run is skipped. Loads of a run are batched eight at
//    a time (addresses first, then the adds in order) to keep memory busy.
#pragma once
#include <cuda_runtime.h>

#include <cub/device/device_radix_sort.cuh>

#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <type_traits>
#include <vector>

#include "polymath/cuda/check.hpp"
#include "polymath/cuda/launch.cuh"
#include "polymath/cuda/runtime.hpp"
#include "polymath/cuda/tensor_backend.cuh"
#include "polymath/tensor/tensor.hpp"

namespace polymath::ops {

namespace cuda_kernels {

template <class T, int VEC>
struct alignas(sizeof(T) * VEC) EmbVec {
    T v[VEC];
};

inline constexpr unsigned long long kEmbNoBad = ~0ull;

// out[p, :] = w[idx[p], :]; an out-of-range index records min(p) in *bad and writes zeros.
// blockDim = (TX, TY): TX threads over the Dv vectors of a row, TY rows per block.
template <class T, int VEC>
__global__ void embedding_gather(const T* __restrict__ w, const std::int64_t* __restrict__ idx, T* __restrict__ out,
                                 std::int64_t rows, std::int64_t Dv, std::int64_t V,
                                 unsigned long long* __restrict__ bad) {
    using Vt = EmbVec<T, VEC>;
    const std::int64_t col = std::int64_t(blockIdx.y) * blockDim.x + threadIdx.x;
    if (col >= Dv) return;  // no barriers in this kernel
    const Vt* wv = reinterpret_cast<const Vt*>(w);
    Vt* ov = reinterpret_cast<Vt*>(out);
    for (std::int64_t p = std::int64_t(blockIdx.x) * blockDim.y + threadIdx.y; p < rows;
         p += std::int64_t(gridDim.x) * blockDim.y) {
        const std::int64_t id = idx[p];
        if (id < 0 || id >= V) {
            if (bad != nullptr && col == 0) atomicMin(bad, static_cast<unsigned long long>(p));
            Vt z;
#pragma unroll
            for (int i = 0; i < VEC; ++i) z.v[i] = dtype_cast<T>(0.0f);
            ov[p * Dv + col] = z;
            continue;
        }
        ov[p * Dv + col] = wv[id * Dv + col];
    }
}

// pos[i] = i and the range check of the device indices (first bad position -> *bad).
// (A template so that the header can be included by several translation units.)
template <class I>
__global__ void embedding_iota_check(const I* __restrict__ idx, I* __restrict__ pos, std::int64_t n, std::int64_t V,
                                     unsigned long long* __restrict__ bad) {
    for (std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; i < n;
         i += std::int64_t(gridDim.x) * blockDim.x) {
        pos[i] = I(i);
        const std::int64_t id = std::int64_t(idx[i]);
        if (id < 0 || id >= V) atomicMin(bad, static_cast<unsigned long long>(i));
    }
}

// One block per run of equal keys (sorted by key, ties in ascending position):
// out[key, col] = sum over the run of grad[pos, col], in run order.
template <class T, int VEC>
__global__ void embedding_grad_runs(const std::int64_t* __restrict__ keys, const std::int64_t* __restrict__ pos,
                                    const T* __restrict__ grad, T* __restrict__ out, std::int64_t n, std::int64_t Dv,
                                    std::int64_t padding_idx) {
    using A = cuda::compute_t<T>;
    using Vt = EmbVec<T, VEC>;
    constexpr int kBatch = 8;
    const std::int64_t col = std::int64_t(blockIdx.y) * blockDim.x + threadIdx.x;
    if (col >= Dv) return;  // no barriers in this kernel
    const Vt* gv = reinterpret_cast<const Vt*>(grad);
    Vt* ov = reinterpret_cast<Vt*>(out);
    for (std::int64_t i = blockIdx.x; i < n; i += gridDim.x) {
        const std::int64_t key = keys[i];
        if ((i > 0 && keys[i - 1] == key) || key == padding_idx) continue;  // not a run start / no gradient
        A acc[VEC];
#pragma unroll
        for (int v = 0; v < VEC; ++v) acc[v] = A(0);
        std::int64_t j = i;
        bool more = true;
        while (more) {
            Vt rowv[kBatch];
            int m = 0;
#pragma unroll
            for (int u = 0; u < kBatch; ++u) {
                const std::int64_t jj = j + u;
                if (more && jj < n && keys[jj] == key) {
                    rowv[u] = gv[pos[jj] * Dv + col];
                    m = u + 1;
                } else {
                    more = false;
                }
            }
#pragma unroll
            for (int u = 0; u < kBatch; ++u)
                if (u < m) {
#pragma unroll
                    for (int v = 0; v < VEC; ++v) acc[v] += A(rowv[u].v[v]);
                }
            j += m;
        }
        Vt o;
#pragma unroll
        for (int v = 0; v < VEC; ++v) o.v[v] = dtype_cast<T>(acc[v]);
        ov[key * Dv + col] = o;
    }
}

}  // namespace cuda_kernels

namespace detail {

inline void check_embedding_args_cuda(const Shape& weight_shape, const Shape& indices_shape, bool indices_defined,
                                      std::int64_t padding_idx, const char* op) {
    POLYMATH_CHECK(weight_shape.size() == 2, op, "weight must be 2-D [num_embeddings, dim], got shape ", weight_shape);
    POLYMATH_CHECK(indices_defined, op, "undefined tensor");
    const std::int64_t V = weight_shape[0];
    POLYMATH_CHECK(padding_idx == -1 || (padding_idx >= 0 && padding_idx < V), op, "padding_idx ", padding_idx,
                   " is out of range for ", V, " embeddings (use -1 for none)");
    POLYMATH_CHECK(indices_shape.size() < kMaxDims, op, "indices of shape ", indices_shape,
                   " leave no room for the embedding dimension (at most ", kMaxDims, " dimensions)");
}

[[noreturn]] inline void throw_embedding_index(std::int64_t v, std::int64_t V, const char* op) {
    POLYMATH_THROW(op, "index ", v, " is out of range for an embedding table of ", V, " rows (valid: 0..", V - 1, ")",
                   v < 0 ? "; negative indices are not supported" : "");
}

// Host indices: the CPU's check, in row-major order.
inline void check_embedding_indices_host(const Tensor<std::int64_t, Cpu>& ic, std::int64_t V, const char* op) {
    const std::int64_t* p = ic.data();
    for (std::int64_t i = 0; i < ic.numel(); ++i)
        if (p[i] < 0 || p[i] >= V) throw_embedding_index(p[i], V, op);
}

// Reads the device flag (one synchronisation) and throws the CPU's Error for the first bad index.
inline void embedding_report_bad(const Tensor<std::int64_t, Cuda>& bad_flag, const Tensor<std::int64_t, Cuda>& ic,
                                 std::int64_t V, const char* op) {
    const std::int64_t first = bad_flag.to_vector()[0];
    if (static_cast<unsigned long long>(first) == cuda_kernels::kEmbNoBad) return;
    const std::int64_t v = ic.slice(0, first, first + 1).to_vector()[0];
    throw_embedding_index(v, V, op);
}

inline Shape embedding_out_shape_cuda(const Shape& is, std::int64_t D) {
    Shape s = is;
    s.push_back(D);
    return s;
}

// Vector width for a row of D elements: 16 bytes when D and the pointers allow.
template <class T>
int embedding_vec(std::int64_t D, std::initializer_list<const void*> ptrs) {
    constexpr int V = int(16 / sizeof(T)) > 0 ? int(16 / sizeof(T)) : 1;
    if (V <= 1 || D % V != 0) return 1;
    for (const void* p : ptrs)
        if (reinterpret_cast<std::uintptr_t>(p) % 16 != 0) return 1;
    return V;
}

struct EmbLaunch {
    dim3 grid, block;
};
inline EmbLaunch embedding_launch_shape(std::int64_t rows, std::int64_t Dv, const char* op) {
    const int TX = Dv >= 128 ? 128 : (Dv >= 64 ? 64 : 32);
    const int TY = cuda::kThreads / TX;
    const std::int64_t gy = (Dv + TX - 1) / TX;
    POLYMATH_CHECK(gy <= 65535, op, "embedding dimension too large: ", Dv, " vectors per row");
    const std::int64_t need = (rows + TY - 1) / TY;
    const std::int64_t cap = std::max<std::int64_t>(1, std::int64_t(cuda::multiprocessor_count()) * 64 / gy);
    return {dim3(unsigned(std::max<std::int64_t>(1, std::min(need, cap))), unsigned(gy)), dim3(unsigned(TX), unsigned(TY))};
}

template <class T>
Tensor<T, Cuda> embedding_gather_impl(const Tensor<T, Cuda>& weight, const Tensor<std::int64_t, Cuda>& ic,
                                      const Shape& ishape, unsigned long long* bad) {
    const std::int64_t V = weight.shape()[0], D = weight.shape()[1];
    Tensor<T, Cuda> out = Tensor<T, Cuda>::empty(embedding_out_shape_cuda(ishape, D));
    if (out.numel() == 0) return out;
    const Tensor<T, Cuda> w = weight.contiguous();
    const std::int64_t rows = ic.numel();
    const cudaStream_t s = cuda::current_stream();
    auto launch = [&](auto vec) {
        constexpr int VEC = decltype(vec)::value;
        const std::int64_t Dv = D / VEC;
        const EmbLaunch l = embedding_launch_shape(rows, Dv, "embedding");
        cuda_kernels::embedding_gather<T, VEC><<<l.grid, l.block, 0, s>>>(w.data(), ic.data(), out.data(), rows, Dv, V, bad);
        POLYMATH_CUDA_CHECK_LAUNCH("embedding");
    };
    constexpr int VMAX = int(16 / sizeof(T)) > 0 ? int(16 / sizeof(T)) : 1;
    if constexpr (VMAX > 1) {
        if (embedding_vec<T>(D, {w.data(), out.data()}) == VMAX) launch(std::integral_constant<int, VMAX>());
        else launch(std::integral_constant<int, 1>());
    } else {
        launch(std::integral_constant<int, 1>());
    }
    return out;
}

// keys (sorted) and positions (ascending within equal keys) -> out [V, D].
template <class T>
Tensor<T, Cuda> embedding_grad_from_runs(const Tensor<T, Cuda>& gc, const std::int64_t* keys, const std::int64_t* pos,
                                         std::int64_t n, std::int64_t V, std::int64_t D, std::int64_t padding_idx) {
    Tensor<T, Cuda> out = Tensor<T, Cuda>::zeros({V, D});
    if (n == 0 || D == 0 || V == 0) return out;
    const cudaStream_t s = cuda::current_stream();
    auto launch = [&](auto vec) {
        constexpr int VEC = decltype(vec)::value;
        const std::int64_t Dv = D / VEC;
        const int TX = Dv >= 128 ? 128 : (Dv >= 64 ? 64 : 32);
        const std::int64_t gy = (Dv + TX - 1) / TX;
        POLYMATH_CHECK(gy <= 65535, "embedding_backward", "embedding dimension too large: ", D);
        const std::int64_t gx = std::min<std::int64_t>(n, 0x7FFFFFFF);
        cuda_kernels::embedding_grad_runs<T, VEC>
            <<<dim3(unsigned(gx), unsigned(gy)), dim3(unsigned(TX)), 0, s>>>(keys, pos, gc.data(), out.data(), n, Dv,
                                                                           padding_idx);
        POLYMATH_CUDA_CHECK_LAUNCH("embedding_backward");
    };
    constexpr int VMAX = int(16 / sizeof(T)) > 0 ? int(16 / sizeof(T)) : 1;
    if constexpr (VMAX > 1) {
        if (embedding_vec<T>(D, {gc.data(), out.data()}) == VMAX) launch(std::integral_constant<int, VMAX>());
        else launch(std::integral_constant<int, 1>());
    } else {
        launch(std::integral_constant<int, 1>());
    }
    return out;
}

template <class T>
inline constexpr bool kEmbeddingGradCudaDType =
    std::is_same_v<T, float> || std::is_same_v<T, double> || std::is_same_v<T, bfloat16> ||
    std::is_same_v<T, polymath::half> || std::is_same_v<T, std::int32_t> || std::is_same_v<T, std::int64_t>;

template <class T, class ID>
void check_embedding_backward_shapes(const Tensor<T, Cuda>& grad, const Tensor<std::int64_t, ID>& indices,
                                     std::int64_t num_embeddings, std::int64_t padding_idx) {
    grad.check_defined("embedding_backward");
    indices.check_defined("embedding_backward");
    POLYMATH_CHECK(grad.dim() == indices.dim() + 1, "embedding_backward", "gradient of shape ", grad.shape(),
                   " does not match indices of shape ", indices.shape(), " plus the embedding dimension");
    const std::int64_t D = grad.shape()[grad.dim() - 1];
    check_embedding_args_cuda(Shape{num_embeddings, D}, indices.shape(), true, padding_idx, "embedding_backward");
    POLYMATH_CHECK(grad.shape() == embedding_out_shape_cuda(indices.shape(), D), "embedding_backward",
                   "gradient of shape ", grad.shape(), " does not match indices of shape ", indices.shape(),
                   " plus the embedding dimension");
}

}  // namespace detail

// Device indices: checked on the device (one synchronisation to read the flag back).
template <class T>
Tensor<T, Cuda> embedding(const Tensor<T, Cuda>& weight, const Tensor<std::int64_t, Cuda>& indices,
                          std::int64_t padding_idx = -1) {
    weight.check_defined("embedding");
    indices.check_defined("embedding");
    detail::check_embedding_args_cuda(weight.shape(), indices.shape(), true, padding_idx, "embedding");
    cuda::check_same_device("embedding", weight, indices);
    const std::int64_t V = weight.shape()[0];
    const Tensor<std::int64_t, Cuda> ic = indices.contiguous().reshape({indices.numel()});
    if (ic.numel() == 0) return Tensor<T, Cuda>::empty(detail::embedding_out_shape_cuda(indices.shape(), weight.shape()[1]));
    Tensor<std::int64_t, Cuda> bad = Tensor<std::int64_t, Cuda>::full({1}, -1);  // all ones = kEmbNoBad
    Tensor<T, Cuda> out = detail::embedding_gather_impl(weight, ic, indices.shape(),
                                                        reinterpret_cast<unsigned long long*>(bad.data()));
    if (out.numel() == 0) {  // D == 0: the gather did not run; check the indices alone
        const cudaStream_t s = cuda::current_stream();
        Tensor<std::int64_t, Cuda> pos = Tensor<std::int64_t, Cuda>::empty({ic.numel()});
        cuda_kernels::embedding_iota_check<<<cuda::grid_for(ic.numel()), cuda::kThreads, 0, s>>>(
            ic.data(), pos.data(), ic.numel(), V, reinterpret_cast<unsigned long long*>(bad.data()));
        POLYMATH_CUDA_CHECK_LAUNCH("embedding");
    }
    detail::embedding_report_bad(bad, ic, V, "embedding");
    return out;
}

// Host indices: checked on the host (no synchronisation), then uploaded.
template <class T>
Tensor<T, Cuda> embedding(const Tensor<T, Cuda>& weight, const Tensor<std::int64_t, Cpu>& indices,
                          std::int64_t padding_idx = -1) {
    weight.check_defined("embedding");
    indices.check_defined("embedding");
    detail::check_embedding_args_cuda(weight.shape(), indices.shape(), true, padding_idx, "embedding");
    const Tensor<std::int64_t, Cpu> ic = indices.contiguous();
    detail::check_embedding_indices_host(ic, weight.shape()[0], "embedding");
    if (ic.numel() == 0 || weight.shape()[1] == 0)
        return Tensor<T, Cuda>::empty(detail::embedding_out_shape_cuda(indices.shape(), weight.shape()[1]));
    const Tensor<std::int64_t, Cuda> id = ic.reshape({ic.numel()}).template to<Cuda>();
    return detail::embedding_gather_impl(weight, id, indices.shape(), nullptr);
}

// Gradient w.r.t. the table from device indices (checked on the device, one synchronisation).
template <class T>
Tensor<T, Cuda> embedding_backward(const Tensor<T, Cuda>& grad, const Tensor<std::int64_t, Cuda>& indices,
                                   std::int64_t num_embeddings, std::int64_t padding_idx = -1) {
    static_assert(detail::kEmbeddingGradCudaDType<T>,
                  "embedding_backward (CUDA): T must be float, double, bfloat16, half, int32_t or int64_t");
    detail::check_embedding_backward_shapes(grad, indices, num_embeddings, padding_idx);
    cuda::check_same_device("embedding_backward", grad, indices);
    const std::int64_t V = num_embeddings, D = grad.shape()[grad.dim() - 1];
    const Tensor<std::int64_t, Cuda> ic = indices.contiguous().reshape({indices.numel()});
    const std::int64_t n = ic.numel();
    if (n == 0) return Tensor<T, Cuda>::zeros({V, D});
    const cudaStream_t s = cuda::current_stream();
    Tensor<std::int64_t, Cuda> bad = Tensor<std::int64_t, Cuda>::full({1}, -1);
    Tensor<std::int64_t, Cuda> pos = Tensor<std::int64_t, Cuda>::empty({n});
    cuda_kernels::embedding_iota_check<<<cuda::grid_for(n), cuda::kThreads, 0, s>>>(
        ic.data(), pos.data(), n, V, reinterpret_cast<unsigned long long*>(bad.data()));
    POLYMATH_CUDA_CHECK_LAUNCH("embedding_backward");
    detail::embedding_report_bad(bad, ic, V, "embedding_backward");
    if (D == 0) return Tensor<T, Cuda>::zeros({V, D});
    // Stable LSD radix sort of (index, position) on the bits that can be set (indices are in [0, V)).
    int end_bit = 1;
    while (end_bit < 64 && (std::uint64_t(V - 1) >> end_bit) != 0) ++end_bit;
    Tensor<std::int64_t, Cuda> keys_out = Tensor<std::int64_t, Cuda>::empty({n});
    Tensor<std::int64_t, Cuda> pos_out = Tensor<std::int64_t, Cuda>::empty({n});
    const auto* kin = reinterpret_cast<const unsigned long long*>(ic.data());
    auto* kout = reinterpret_cast<unsigned long long*>(keys_out.data());
    POLYMATH_CHECK(n <= std::int64_t(0x7FFFFFFF), "embedding_backward", "at most 2^31 - 1 indices, got ", n);
    std::size_t temp_bytes = 0;
    POLYMATH_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(nullptr, temp_bytes, kin, kout, pos.data(), pos_out.data(),
                                                        int(n), 0, end_bit, s));
    Tensor<std::uint8_t, Cuda> temp = Tensor<std::uint8_t, Cuda>::empty({std::int64_t(std::max<std::size_t>(temp_bytes, 1))});
    POLYMATH_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(temp.data(), temp_bytes, kin, kout, pos.data(), pos_out.data(),
                                                        int(n), 0, end_bit, s));
    const Tensor<T, Cuda> gc = grad.contiguous();
    return detail::embedding_grad_from_runs(gc, keys_out.data(), pos_out.data(), n, V, D, padding_idx);
}

// Gradient w.r.t. the table from host indices (checked and stably counting-sorted on the host).
template <class T>
Tensor<T, Cuda> embedding_backward(const Tensor<T, Cuda>& grad, const Tensor<std::int64_t, Cpu>& indices,
                                   std::int64_t num_embeddings, std::int64_t padding_idx = -1) {
    static_assert(detail::kEmbeddingGradCudaDType<T>,
                  "embedding_backward (CUDA): T must be float, double, bfloat16, half, int32_t or int64_t");
    detail::check_embedding_backward_shapes(grad, indices, num_embeddings, padding_idx);
    const std::int64_t V = num_embeddings, D = grad.shape()[grad.dim() - 1];
    const Tensor<std::int64_t, Cpu> ic = indices.contiguous();
    detail::check_embedding_indices_host(ic, V, "embedding_backward");
    const std::int64_t n = ic.numel();
    if (n == 0 || D == 0) return Tensor<T, Cuda>::zeros({V, D});
    // Stable counting sort by index (padding_idx entries dropped).
    const std::int64_t* ip = ic.data();
    std::vector<std::int64_t> start(std::size_t(V + 1), 0);
    std::int64_t kept = 0;
    for (std::int64_t k = 0; k < n; ++k)
        if (ip[k] != padding_idx) {
            ++start[std::size_t(ip[k] + 1)];
            ++kept;
        }
    if (kept == 0) return Tensor<T, Cuda>::zeros({V, D});
    for (std::int64_t v = 0; v < V; ++v) start[std::size_t(v + 1)] += start[std::size_t(v)];
    Tensor<std::int64_t, Cpu> keys = Tensor<std::int64_t, Cpu>::empty({2, kept});  // row 0 keys, row 1 positions
    std::int64_t* kp = keys.data();
    std::int64_t* pp = kp + kept;
    for (std::int64_t k = 0; k < n; ++k) {
        const std::int64_t v = ip[k];
        if (v == padding_idx) continue;
        const std::int64_t slot = start[std::size_t(v)]++;
        kp[slot] = v;
        pp[slot] = k;
    }
    const Tensor<std::int64_t, Cuda> kd = keys.to<Cuda>();
    const Tensor<T, Cuda> gc = grad.contiguous();
    return detail::embedding_grad_from_runs(gc, kd.data(), kd.data() + kept, kept, V, D, padding_idx);
}

}  // namespace polymath::ops
