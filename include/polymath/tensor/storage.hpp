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
};

template <class T, class D>
class Storage {
public:
    // Owning storage of n elements (uninitialised).
    explicit Storage(std::int64_t n)
        : data_(static_cast<T*>(DeviceAllocator<D>::allocate(static_cast<std::size_t>(n) * sizeof(T)))), n_(n) {}
    // Borrowed memory: `keep_alive` (may be empty) is held as long as the storage lives.
    Storage(T* data, std::int64_t n, std::shared_ptr<void> keep_alive)
        : data_(data), n_(n), borrowed_(true), keep_alive_(std::move(keep_alive)) {}
    Storage(const Storage&) = delete;
    Storage& operator=(const Storage&) = delete;
    ~Storage() {
        if (!borrowed_) DeviceAllocator<D>::deallocate(data_, static_cast<std::size_t>(n_) * sizeof(T));
    }
    T* data() const noexcept { return data_; }
    std::int64_t size() const noexcept { return n_; }
    bool borrowed() const noexcept { return borrowed_; }

private:
    T* data_;
    std::int64_t n_;
    bool borrowed_ = false;
    std::shared_ptr<void> keep_alive_;
};

}  // namespace polymath
