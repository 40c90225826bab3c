// polymath/cuda/allocator.hpp — the caching device allocator behind Tensor<T, Cuda>.
//
// Blocks come from cudaMallocAsync on the current stream, out of the device's
// default memory pool. The pool's release threshold is raised to "never", so
// freed blocks stay reserved by the pool and the next step's allocations of
// the same sizes are served without a driver call (the CUDA pool is the cache:
// stream-ordered, so a block freed on a stream is reusable on that stream at
// once, without a host synchronisation). empty_cache() trims the pool.
//
// Out of memory: the pool is trimmed and the request tried once more; then
// polymath::Error names the bytes asked for, the bytes free on the device,
// polymath's bytes in use and the pool's reserve.
//
// Statistics (CudaAllocatorStats) count requested bytes, as the CPU allocator
// counts class bytes; bytes_reserved is the pool's own figure.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <mutex>

#include "polymath/core/error.hpp"
#include "polymath/cuda/check.hpp"
#include "polymath/cuda/runtime.hpp"
#include "polymath/tensor/storage.hpp"

namespace polymath::cuda {

struct CudaAllocatorStats {
    std::size_t bytes_in_use = 0;       // requested bytes of live blocks
    std::size_t peak_bytes_in_use = 0;  // max of bytes_in_use since start / reset_peak()
    std::size_t bytes_reserved = 0;     // held by the memory pool (live + cached), at the time of stats()
    std::size_t allocations = 0;        // successful allocate() calls
    std::size_t frees = 0;              // deallocate() calls
    std::size_t oom_retries = 0;        // allocations that needed a pool trim first
};

class CudaAllocator {
public:
    static CudaAllocator& instance() {
        static CudaAllocator* a = new CudaAllocator();  // leaked: tensors may outlive other statics
        return *a;
    }

    void* allocate(std::size_t bytes) {
        if (bytes == 0) return nullptr;
        const int dev = current_device_or_throw(bytes);
        prepare_pool(dev);
        void* p = nullptr;
        cudaError_t e = cudaMallocAsync(&p, bytes, current_stream());
        bool retried = false;
        if (e == cudaErrorMemoryAllocation) {
            (void)cudaGetLastError();
            retried = true;
            empty_cache();
            e = cudaMallocAsync(&p, bytes, current_stream());
        }
        if (e != cudaSuccess) {
            (void)cudaGetLastError();
            if (e == cudaErrorMemoryAllocation) throw_oom(bytes, dev);
            throw Error(polymath::detail::str_cat("cuda allocator: cudaMallocAsync of ", bytes, " bytes failed: ",
                                                  cudaGetErrorString(e), " (", cudaGetErrorName(e), ")"));
        }
        std::lock_guard<std::mutex> lock(mu_);
        ++stats_.allocations;
        if (retried) ++stats_.oom_retries;
        stats_.bytes_in_use += bytes;
        if (stats_.bytes_in_use > stats_.peak_bytes_in_use) stats_.peak_bytes_in_use = stats_.bytes_in_use;
        return p;
    }

    // Stream-ordered free on the current stream. Never throws: errors at
    // process exit (the runtime already unloaded) are ignored.
    void deallocate(void* p, std::size_t bytes) noexcept {
        if (p == nullptr) return;
        if (cudaFreeAsync(p, current_stream()) != cudaSuccess) (void)cudaGetLastError();
        std::lock_guard<std::mutex> lock(mu_);
        ++stats_.frees;
        stats_.bytes_in_use -= bytes;
    }

    CudaAllocatorStats stats() const {
        CudaAllocatorStats s;
        {
            std::lock_guard<std::mutex> lock(mu_);
            s = stats_;
        }
        cudaMemPool_t pool{};
        int dev = 0;
        if (cudaGetDevice(&dev) == cudaSuccess && cudaDeviceGetDefaultMemPool(&pool, dev) == cudaSuccess) {
            std::uint64_t reserved = 0;
            if (cudaMemPoolGetAttribute(pool, cudaMemPoolAttrReservedMemCurrent, &reserved) == cudaSuccess)
                s.bytes_reserved = std::size_t(reserved);
        }
        (void)cudaGetLastError();
        return s;
    }
    void reset_peak() {
        std::lock_guard<std::mutex> lock(mu_);
        stats_.peak_bytes_in_use = stats_.bytes_in_use;
    }

    // Returns the pool's cached (free) memory to the driver. Synchronises the device.
    void empty_cache() {
        int dev = 0;
        if (cudaGetDevice(&dev) != cudaSuccess) {
            (void)cudaGetLastError();
            return;
        }
        cudaMemPool_t pool{};
        POLYMATH_CUDA_CHECK(cudaDeviceGetDefaultMemPool(&pool, dev));
        POLYMATH_CUDA_CHECK(cudaDeviceSynchronize());
        POLYMATH_CUDA_CHECK(cudaMemPoolTrimTo(pool, 0));
    }

private:
    CudaAllocator() = default;

    static int current_device_or_throw(std::size_t bytes) {
        int dev = 0;
        const cudaError_t e = cudaGetDevice(&dev);
        int n = 0;
        const cudaError_t e2 = e == cudaSuccess ? cudaGetDeviceCount(&n) : e;
        if (e != cudaSuccess || e2 != cudaSuccess || n == 0) {
            (void)cudaGetLastError();
            const cudaError_t why = e != cudaSuccess ? e : e2;
            throw Error(polymath::detail::str_cat(
                "cuda allocator: cannot allocate ", bytes, " bytes for a Tensor<T, Cuda>: no usable CUDA device (",
                why != cudaSuccess ? cudaGetErrorString(why) : "0 devices", ")"));
        }
        return dev;
    }

    // Once per device: keep freed memory in the pool (threshold = max).
    void prepare_pool(int dev) {
        std::lock_guard<std::mutex> lock(mu_);
        if (dev < 0 || dev >= kMaxDevices || pool_ready_[dev]) return;
        cudaMemPool_t pool{};
        POLYMATH_CUDA_CHECK(cudaDeviceGetDefaultMemPool(&pool, dev));
        std::uint64_t threshold = UINT64_MAX;
        POLYMATH_CUDA_CHECK(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &threshold));
        pool_ready_[dev] = true;
    }

    [[noreturn]] void throw_oom(std::size_t bytes, int dev) {
        std::size_t free_b = 0, total_b = 0;
        if (cudaMemGetInfo(&free_b, &total_b) != cudaSuccess) (void)cudaGetLastError();
        const CudaAllocatorStats s = stats();
        throw Error(polymath::detail::str_cat(
            "cuda allocator: out of memory on device ", dev, ": asked for ", bytes, " bytes (",
            double(bytes) / double(1 << 20), " MiB); ", free_b, " bytes free of ", total_b, "; polymath holds ",
            s.bytes_in_use, " bytes in live tensors, the pool reserves ", s.bytes_reserved, " bytes"));
    }

    static constexpr int kMaxDevices = 64;
    mutable std::mutex mu_;
    CudaAllocatorStats stats_;
    bool pool_ready_[kMaxDevices] = {};
};

}  // namespace polymath::cuda

namespace polymath {

template <>
struct DeviceAllocator<Cuda> {
    static void* allocate(std::size_t bytes) { return cuda::CudaAllocator::instance().allocate(bytes); }
    static void deallocate(void* p, std::size_t bytes) noexcept { cuda::CudaAllocator::instance().deallocate(p, bytes); }
    static int current_index() noexcept {
        int d = 0;
        if (cudaGetDevice(&d) != cudaSuccess) {
            (void)cudaGetLastError();
            return 0;
        }
        return d;
    }
};

}  // namespace polymath
