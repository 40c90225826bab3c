// polymath/tensor/storage.hpp — reference-counted buffers behind tensors.
//
// Storage owns (or borrows) one flat buffer; tensors are views into it
// (shape + strides + offset), so views, slices and transposes never copy.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>

#include "polymath/core/allocator.hpp"
#include "polymath/core/device.hpp"

namespace polymath {

// Raw byte allocation per device. The CUDA backend adds its specialisation.
template <class D>
struct DeviceAllocator;

template <>
struct DeviceAllocator<Cpu> {
    static void* allocate(std::size_t bytes) { return CpuAllocator::instance().allocate(bytes); }
    static void deallocate(void* p, std::size_t bytes) noexcept { CpuAllocator::instance().deallocate(p, bytes); }
    static int current_index() noexcept { return 0; }
};

// What Tensor<T, D> needs from a non-host device beyond memory: fill, strided
// copy with dtype conversion, host <-> device transfer. The CUDA backend
// specialises it (polymath/cuda/tensor_backend.hpp); without that header a
// Tensor<T, Cuda> that touches its elements does not compile, with this message.
template <class D>
struct DeviceBackend {
    static_assert(sizeof(D) == 0,
                  "polymath: this use of Tensor<T, polymath::Cuda> needs the CUDA backend: #include "
                  "<polymath/cuda.hpp> in a .cu file compiled by nvcc and link polymath::cuda");
};

template <class T, class D>
class Storage {
public:
    // Owning storage of n elements (uninitialised).
    explicit Storage(std::int64_t n)
        : data_(static_cast<T*>(DeviceAllocator<D>::allocate(static_cast<std::size_t>(n) * sizeof(T)))),
          n_(n),
          device_index_(DeviceAllocator<D>::current_index()) {}
    // Borrowed memory: `keep_alive` (may be empty) is held as long as the storage lives.
    Storage(T* data, std::int64_t n, std::shared_ptr<void> keep_alive)
        : data_(data),
          n_(n),
          borrowed_(true),
          device_index_(DeviceAllocator<D>::current_index()),
          keep_alive_(std::move(keep_alive)) {}
    Storage(const Storage&) = delete;
    Storage& operator=(const Storage&) = delete;
    ~Storage() {
        if (!borrowed_) DeviceAllocator<D>::deallocate(data_, static_cast<std::size_t>(n_) * sizeof(T));
    }
    T* data() const noexcept { return data_; }
    std::int64_t size() const noexcept { return n_; }
    bool borrowed() const noexcept { return borrowed_; }
    // Which device of kind D holds the memory (0 on the CPU; the CUDA device
    // that was current when the storage was made).
    int device_index() const noexcept { return device_index_; }

private:
    T* data_;
    std::int64_t n_;
    bool borrowed_ = false;
    int device_index_ = 0;
    std::shared_ptr<void> keep_alive_;
};

}  // namespace polymath
