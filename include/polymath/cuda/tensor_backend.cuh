// polymath/cuda/tensor_backend.cuh — DeviceBackend<Cuda>: what Tensor<T, Cuda>
// needs beyond memory (fill, strided copy with dtype conversion, transfers).
//
// Transfers go through per-thread pinned staging buffers (two of 4 MiB,
// double-buffered): a host->device copy returns once the data is in pinned
// memory (the DMA continues on the current stream, ordered before any later
// op), and large copies overlap the host memcpy of one chunk with the DMA of
// the other. Pageable cudaMemcpy would stage through the driver's own small
// buffer and block the host for the whole copy.
#pragma once
#include <cuda_runtime.h>

#include <cstring>
#include <type_traits>

#include "polymath/cuda/allocator.hpp"
#include "polymath/cuda/check.hpp"
#include "polymath/cuda/launch.cuh"
#include "polymath/cuda/runtime.hpp"
#include "polymath/tensor/tensor.hpp"

namespace polymath {

namespace cuda {
namespace kernels {

template <class T>
__global__ void fill_contiguous(T* p, std::int64_t n, T v) {
    for (std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; i < n;
         i += std::int64_t(gridDim.x) * blockDim.x)
        p[i] = v;
}
template <class T>
__global__ void fill_strided(T* p, std::int64_t n, StridedIndexer ix, T v) {
    for (std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; i < n;
         i += std::int64_t(gridDim.x) * blockDim.x)
        p[ix.offset(i)] = v;
}
template <class T, class U>
__global__ void copy_contiguous(T* dst, const U* src, std::int64_t n) {
    for (std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; i < n;
         i += std::int64_t(gridDim.x) * blockDim.x)
        dst[i] = dtype_cast<T>(src[i]);
}
template <class T, class U>
__global__ void copy_strided(T* dst, StridedIndexer dix, const U* src, StridedIndexer six, std::int64_t n) {
    for (std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; i < n;
         i += std::int64_t(gridDim.x) * blockDim.x)
        dst[dix.offset(i)] = dtype_cast<T>(src[six.offset(i)]);
}

}  // namespace kernels

namespace detail {

// Two pinned buffers per thread, with an event each marking "DMA done".
class PinnedStaging {
public:
    static constexpr std::size_t kChunk = std::size_t(4) << 20;
    static PinnedStaging& for_this_thread() {
        thread_local PinnedStaging s;
        return s;
    }
    ~PinnedStaging() {
        for (int b = 0; b < 2; ++b) {
            if (buf_[b]) {
                (void)cudaEventSynchronize(done_[b]);
                (void)cudaFreeHost(buf_[b]);
                (void)cudaEventDestroy(done_[b]);
            }
        }
        (void)cudaGetLastError();
    }
    void h2d(void* dst, const void* src, std::size_t bytes, cudaStream_t s) {
        if (bytes <= 64 * 1024) {  // small: one staged copy is not worth the bookkeeping
            POLYMATH_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, s));
            return;
        }
        ensure();
        auto* d = static_cast<char*>(dst);
        const auto* h = static_cast<const char*>(src);
        for (std::size_t off = 0, k = 0; off < bytes; off += kChunk, ++k) {
            const int b = int(k & 1);
            const std::size_t n = std::min(kChunk, bytes - off);
            POLYMATH_CUDA_CHECK(cudaEventSynchronize(done_[b]));  // the buffer's last DMA has finished
            std::memcpy(buf_[b], h + off, n);
            POLYMATH_CUDA_CHECK(cudaMemcpyAsync(d + off, buf_[b], n, cudaMemcpyHostToDevice, s));
            POLYMATH_CUDA_CHECK(cudaEventRecord(done_[b], s));
        }
    }
    void d2h(void* dst, const void* src, std::size_t bytes, cudaStream_t s) {
        if (bytes <= 64 * 1024) {
            POLYMATH_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, s));
            POLYMATH_CUDA_CHECK(cudaStreamSynchronize(s));
            return;
        }
        ensure();
        auto* h = static_cast<char*>(dst);
        const auto* d = static_cast<const char*>(src);
        const std::size_t chunks = (bytes + kChunk - 1) / kChunk;
        auto issue = [&](std::size_t k) {
            const int b = int(k & 1);
            const std::size_t off = k * kChunk, n = std::min(kChunk, bytes - off);
            POLYMATH_CUDA_CHECK(cudaMemcpyAsync(buf_[b], d + off, n, cudaMemcpyDeviceToHost, s));
            POLYMATH_CUDA_CHECK(cudaEventRecord(done_[b], s));
        };
        issue(0);
        for (std::size_t k = 0; k < chunks; ++k) {
            const int b = int(k & 1);
            const std::size_t off = k * kChunk, n = std::min(kChunk, bytes - off);
            POLYMATH_CUDA_CHECK(cudaEventSynchronize(done_[b]));
            if (k + 1 < chunks) issue(k + 1);  // the other buffer: its previous contents were consumed
            std::memcpy(h + off, buf_[b], n);
        }
    }

private:
    void ensure() {
        if (buf_[0]) return;
        for (int b = 0; b < 2; ++b) {
            POLYMATH_CUDA_CHECK(cudaMallocHost(&buf_[b], kChunk));
            POLYMATH_CUDA_CHECK(cudaEventCreateWithFlags(&done_[b], cudaEventDisableTiming));
        }
    }
    void* buf_[2] = {nullptr, nullptr};
    cudaEvent_t done_[2] = {};
};

}  // namespace detail

// Throws polymath::Error when the tensors live on different CUDA devices.
template <class T0, class... Ts>
void check_same_device(const char* op, const Tensor<T0, Cuda>& a, const Tensor<Ts, Cuda>&... rest) {
    const int d = a.device_index();
    auto one = [&](const auto& t) {
        POLYMATH_CHECK(!t.defined() || t.device_index() == d, op, "tensors on different devices: ", a.device_string(),
                       " and ", t.device_string(), "; copy one to the other's device first");
    };
    (one(rest), ...);
}

}  // namespace cuda

template <>
struct DeviceBackend<Cuda> {
    template <class T>
    static void fill(Tensor<T, Cuda>& t, T v) {
        const std::int64_t n = t.numel();
        if (n == 0) return;
        const cudaStream_t s = cuda::current_stream();
        if (t.is_contiguous())
            cuda::kernels::fill_contiguous<<<cuda::grid_for(n), cuda::kThreads, 0, s>>>(t.data(), n, v);
        else
            cuda::kernels::fill_strided<<<cuda::grid_for(n), cuda::kThreads, 0, s>>>(
                t.data(), n, cuda::StridedIndexer(t.shape(), t.strides()), v);
        POLYMATH_CUDA_CHECK_LAUNCH("fill_");
    }

    // dst = dtype_cast<T>(src); src already has dst's shape (possibly as an expanded view).
    template <class T, class U>
    static void copy(Tensor<T, Cuda>& dst, const Tensor<U, Cuda>& src) {
        cuda::check_same_device("copy_", dst, src);
        const std::int64_t n = dst.numel();
        if (n == 0) return;
        const cudaStream_t s = cuda::current_stream();
        if (dst.is_contiguous() && src.is_contiguous()) {
            if constexpr (std::is_same_v<T, U>) {
                if (dst.data() == src.data()) return;
                POLYMATH_CUDA_CHECK(
                    cudaMemcpyAsync(dst.data(), src.data(), std::size_t(n) * sizeof(T), cudaMemcpyDeviceToDevice, s));
                return;
            } else {
                cuda::kernels::copy_contiguous<<<cuda::grid_for(n), cuda::kThreads, 0, s>>>(dst.data(), src.data(), n);
            }
        } else {
            cuda::kernels::copy_strided<<<cuda::grid_for(n), cuda::kThreads, 0, s>>>(
                dst.data(), cuda::StridedIndexer(dst.shape(), dst.strides()), src.data(),
                cuda::StridedIndexer(src.shape(), src.strides()), n);
        }
        POLYMATH_CUDA_CHECK_LAUNCH("copy_");
    }

    // Host -> device (a new contiguous tensor on the current device).
    template <class T>
    static Tensor<T, Cuda> upload(const Tensor<T, Cpu>& host) {
        const Tensor<T, Cpu> h = host.contiguous();
        Tensor<T, Cuda> d = Tensor<T, Cuda>::empty(h.shape());
        if (h.numel() > 0)
            cuda::detail::PinnedStaging::for_this_thread().h2d(d.data(), h.data(), std::size_t(h.numel()) * sizeof(T),
                                                                cuda::current_stream());
        return d;
    }

    // Device -> host (a new contiguous host tensor; waits for the current stream).
    template <class T>
    static Tensor<T, Cpu> download(const Tensor<T, Cuda>& dev) {
        const Tensor<T, Cuda> d = dev.contiguous();
        Tensor<T, Cpu> h = Tensor<T, Cpu>::empty(d.shape());
        if (d.numel() > 0)
            cuda::detail::PinnedStaging::for_this_thread().d2h(h.data(), d.data(), std::size_t(d.numel()) * sizeof(T),
                                                                cuda::current_stream());
        return h;
    }
};

// Prints the host copy, then the device (PyTorch adds device='cuda:0' likewise).
template <class T>
std::ostream& operator<<(std::ostream& os, const Tensor<T, Cuda>& t) {
    if (!t.defined()) return os << "tensor(undefined, device='cuda')";
    return os << t.template to<Cpu>() << " [device='" << t.device_string() << "']";
}

}  // namespace polymath
