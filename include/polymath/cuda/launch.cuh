// polymath/cuda/launch.cuh — small pieces every polymath kernel uses:
// grid sizing, a by-value strided indexer, device-side dtype helpers.
#pragma once
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "polymath/core/dtype.hpp"
#include "polymath/core/shape.hpp"
#include "polymath/cuda/runtime.hpp"

namespace polymath::cuda {

inline constexpr int kThreads = 256;

// Blocks for a grid-stride loop over n items: enough to fill the device
// (a few waves), never more than the work needs.
inline unsigned grid_for(std::int64_t n, int threads = kThreads) {
    const std::int64_t need = (n + threads - 1) / threads;
    const std::int64_t cap = std::int64_t(multiprocessor_count()) * 32;
    return unsigned(std::max<std::int64_t>(1, std::min(need, cap)));
}

// Shape + strides passed by value to kernels (fits in the parameter space).
struct StridedIndexer {
    int ndim = 0;
    std::int64_t shape[kMaxDims] = {};
    std::int64_t strides[kMaxDims] = {};

    StridedIndexer() = default;
    StridedIndexer(const Shape& s, const Strides& st) : ndim(s.size()) {
        for (int i = 0; i < ndim; ++i) {
            shape[i] = s[i];
            strides[i] = st[i];
        }
    }
    // Storage offset (relative to the tensor's first element) of row-major element i.
    __host__ __device__ std::int64_t offset(std::int64_t i) const {
        std::int64_t off = 0;
        for (int d = ndim - 1; d >= 0; --d) {
            const std::int64_t q = i / shape[d];
            off += (i - q * shape[d]) * strides[d];
            i = q;
        }
        return off;
    }
};

// Device arithmetic type of a storage type: 16-bit floats compute in float.
template <class T>
struct compute_type {
    using type = T;
};
template <>
struct compute_type<bfloat16> {
    using type = float;
};
template <>
struct compute_type<half> {
    using type = float;
};
template <class T>
using compute_t = typename compute_type<T>::type;

}  // namespace polymath::cuda
