// polymath/core/allocator.hpp — the CPU caching allocator.
//
// Training allocates the same tensor sizes every step; going to the system
// each time costs page faults and zeroing (glibc returns large blocks to the
// kernel). Freed blocks are kept in per-size-class free lists and handed back
// on the next request of that class, so a steady-state step does no system
// allocation. Classes: multiples of 64 bytes up to 1 KiB, then 4 classes per
// power of two (at most 25% waste). All blocks are 64-byte aligned (one cache
// line, one AVX-512 register).
//
// Under AddressSanitizer cached blocks are poisoned, so a use after free of a
// tensor's memory is still reported. POLYMATH_CPU_ALLOCATOR=system bypasses the
// cache; POLYMATH_CPU_CACHE_LIMIT (bytes, default 2 GiB) caps the cache.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>
#include <string>
#include <unordered_map>
#include <vector>

#include "polymath/core/error.hpp"

#if defined(__SANITIZE_ADDRESS__)
#define POLYMATH_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define POLYMATH_ASAN 1
#endif
#endif
#if defined(POLYMATH_ASAN)
#include <sanitizer/asan_interface.h>
#define POLYMATH_POISON(p, n) ASAN_POISON_MEMORY_REGION(p, n)
#define POLYMATH_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
#define POLYMATH_POISON(p, n) ((void)(p), (void)(n))
#define POLYMATH_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

namespace polymath {

struct AllocatorStats {
    std::size_t bytes_in_use = 0;       // handed out to tensors now (size-class bytes)
    std::size_t peak_bytes_in_use = 0;  // maximum of bytes_in_use since start / reset_peak
    std::size_t bytes_cached = 0;       // freed blocks kept for reuse
    std::size_t system_allocations = 0;
    std::size_t system_frees = 0;
    std::size_t allocations = 0;  // calls to allocate
    std::size_t cache_hits = 0;   // allocations served from the cache
};

class CpuAllocator {
public:
    static constexpr std::size_t kAlignment = 64;

    static CpuAllocator& instance() {
        static CpuAllocator* a = new CpuAllocator();  // leaked: outlives static tensors
        return *a;
    }

    // Rounds a request up to its size class.
    static std::size_t size_class(std::size_t bytes) {
        if (bytes <= 1024) return bytes == 0 ? 64 : (bytes + 63) & ~std::size_t(63);
        int lg = 63 - __builtin_clzll(static_cast<unsigned long long>(bytes - 1));  // 2^lg < bytes <= 2^(lg+1)
        const std::size_t step = std::size_t(1) << (lg - 2);                     // 4 classes per octave
        return (bytes + step - 1) / step * step;
    }

    void* allocate(std::size_t bytes) {
        const std::size_t cls = checked_class(bytes);
        {
            std::lock_guard<std::mutex> lock(mu_);
            ++stats_.allocations;
            if (caching_) {
                auto it = free_.find(cls);
                if (it != free_.end() && !it->second.empty()) {
                    void* p = it->second.back();
                    it->second.pop_back();
                    stats_.bytes_cached -= cls;
                    ++stats_.cache_hits;
                    note_in_use(cls);
                    POLYMATH_UNPOISON(p, cls);
                    return p;
                }
            }
        }
        void* p = ::operator new(cls, std::align_val_t{kAlignment}, std::nothrow);
        if (p == nullptr) {  // give the cache back to the system and try once more
            empty_cache();
            p = ::operator new(cls, std::align_val_t{kAlignment}, std::nothrow);
        }
        std::lock_guard<std::mutex> lock(mu_);
        if (p == nullptr)
            POLYMATH_THROW("CpuAllocator", "out of memory allocating ", bytes, " bytes (in use ", stats_.bytes_in_use,
                           " bytes, cached ", stats_.bytes_cached, " bytes)");
        ++stats_.system_allocations;
        note_in_use(cls);
        return p;
    }

    void deallocate(void* p, std::size_t bytes) noexcept {
        if (p == nullptr) return;
        const std::size_t cls = size_class(bytes);
        {
            std::lock_guard<std::mutex> lock(mu_);
            stats_.bytes_in_use -= cls;
            if (caching_ && stats_.bytes_cached + cls <= cache_limit_) {
                try {
                    free_[cls].push_back(p);
                    stats_.bytes_cached += cls;
                    POLYMATH_POISON(p, cls);
                    return;
                } catch (...) {  // no memory for the list: free the block instead
                }
            }
            ++stats_.system_frees;
        }
        ::operator delete(p, std::align_val_t{kAlignment});
    }

    AllocatorStats stats() const {
        std::lock_guard<std::mutex> lock(mu_);
        return stats_;
    }
    // Returns every cached block to the system.
    void empty_cache() {
        std::unordered_map<std::size_t, std::vector<void*>> drop;
        {
            std::lock_guard<std::mutex> lock(mu_);
            drop.swap(free_);
            for (auto& [cls, v] : drop) stats_.system_frees += v.size();
            stats_.bytes_cached = 0;
        }
        for (auto& [cls, v] : drop)
            for (void* p : v) {
                POLYMATH_UNPOISON(p, cls);
                ::operator delete(p, std::align_val_t{kAlignment});
            }
    }
    void reset_peak() {
        std::lock_guard<std::mutex> lock(mu_);
        stats_.peak_bytes_in_use = stats_.bytes_in_use;
    }
    void set_cache_limit(std::size_t bytes) {
        {
            std::lock_guard<std::mutex> lock(mu_);
            cache_limit_ = bytes;
        }
        if (stats().bytes_cached > bytes) empty_cache();
    }
    std::size_t cache_limit() const {
        std::lock_guard<std::mutex> lock(mu_);
        return cache_limit_;
    }

private:
    CpuAllocator() {
        if (const char* mode = std::getenv("POLYMATH_CPU_ALLOCATOR"); mode && std::strcmp(mode, "system") == 0)
            caching_ = false;
        if (const char* lim = std::getenv("POLYMATH_CPU_CACHE_LIMIT")) {
            char* end = nullptr;
            const unsigned long long v = std::strtoull(lim, &end, 10);
            if (end != lim) cache_limit_ = static_cast<std::size_t>(v);
        }
    }
    static std::size_t checked_class(std::size_t bytes) {
        if (bytes > (std::size_t(1) << 56))
            POLYMATH_THROW("CpuAllocator", "out of memory allocating ", bytes, " bytes (request larger than 2^56)");
        return size_class(bytes);
    }
    void note_in_use(std::size_t cls) {
        stats_.bytes_in_use += cls;
        if (stats_.bytes_in_use > stats_.peak_bytes_in_use) stats_.peak_bytes_in_use = stats_.bytes_in_use;
    }

    mutable std::mutex mu_;
    AllocatorStats stats_;
    std::unordered_map<std::size_t, std::vector<void*>> free_;
    std::size_t cache_limit_ = std::size_t(2) << 30;
    bool caching_ = true;
};

}  // namespace polymath
