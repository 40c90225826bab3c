// polymath/core/allocator.hpp — the CPU caching allocator behind every tensor.
//
// Training allocates the same tensor sizes every step; going to the system
// each time costs page faults and zeroing (glibc hands large blocks straight
// back to the kernel). Freed blocks are kept in per-size-class free lists and
// handed out again on the next request of that class, so a steady-state step
// does no system allocation at all.
//
// Size classes: multiples of 64 bytes up to 1 KiB, then 4 classes per power of
// two (so a block wastes < 25% of the request). All blocks are 64-byte aligned
// (a cache line; a full AVX-512 register). The free lists are intrusive (the
// link lives in the free block itself) and indexed by class number, so the
// locked section never allocates and is a handful of instructions.
//
// Statistics count class bytes (what the block really occupies), not the bytes
// requested.
//
// Under AddressSanitizer cached blocks are poisoned, so a use after free of a
// tensor's memory is still reported even though the block was not returned to
// the system. POLYMATH_CPU_ALLOCATOR=system bypasses the cache entirely (every
// free goes to the system); POLYMATH_CPU_CACHE_LIMIT=<bytes> caps the cache
// (default 2 GiB; a freed block that would exceed it goes to the system).
//
// instance() is a leaked singleton: tensors with static storage duration may be
// destroyed after any other static, and must still find their allocator.
#pragma once
#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>

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
    std::size_t bytes_in_use = 0;        // in blocks handed out now
    std::size_t peak_bytes_in_use = 0;   // max of bytes_in_use since start / reset_peak()
    std::size_t bytes_cached = 0;        // in freed blocks kept for reuse
    std::size_t system_allocations = 0;  // blocks obtained from the system
    std::size_t system_frees = 0;        // blocks returned to the system
    std::size_t allocations = 0;         // calls to allocate (successful or not)
    std::size_t cache_hits = 0;          // allocations served from the cache
};

class CpuAllocator {
public:
    static constexpr std::size_t kAlignment = 64;
    // No machine can satisfy more (x86-64 and AArch64 user space is 2^47
    // bytes; ASan's allocator aborts rather than fails above 2^40), and
    // refusing early keeps the size-class arithmetic far from overflow.
#if defined(POLYMATH_ASAN)
    static constexpr std::size_t kMaxRequest = std::size_t(1) << 40;
#else
    static constexpr std::size_t kMaxRequest = std::size_t(1) << 47;
#endif
    static constexpr std::size_t kDefaultCacheLimit = std::size_t(2) << 30;

    static CpuAllocator& instance() {
        static CpuAllocator* a = new CpuAllocator();  // leaked on purpose, see the header comment
        return *a;
    }

    // Rounds a request up to its size class (0 bytes gets the smallest class).
    static constexpr std::size_t size_class(std::size_t bytes) {
        if (bytes <= 1024) return bytes == 0 ? 64 : (bytes + 63) & ~std::size_t(63);
        const std::size_t step = std::size_t(1) << (lg_below(bytes) - 2);
        return (bytes + step - 1) / step * step;
    }

    // 64-byte aligned block of at least `bytes` (a valid block also for 0);
    // never nullptr: throws polymath::Error when memory is exhausted.
    void* allocate(std::size_t bytes) {
        if (bytes > kMaxRequest) {
            std::lock_guard<std::mutex> lock(mu_);
            ++stats_.allocations;
            throw_oom(bytes);
        }
        const std::size_t cls = size_class(bytes);
        const int idx = class_index(bytes);
        {
            std::lock_guard<std::mutex> lock(mu_);
            ++stats_.allocations;
            if (void* p = free_[idx]) {
                POLYMATH_UNPOISON(p, cls);
                free_[idx] = next_of(p);
                stats_.bytes_cached -= cls;
                ++stats_.cache_hits;
                note_in_use(cls);
                return p;
            }
        }
        void* p = ::operator new(cls, std::align_val_t{kAlignment}, std::nothrow);
        if (p == nullptr) {  // the cache may hold enough: give it back and try once more
            empty_cache();
            p = ::operator new(cls, std::align_val_t{kAlignment}, std::nothrow);
        }
        std::lock_guard<std::mutex> lock(mu_);
        if (p == nullptr) throw_oom(bytes);
        ++stats_.system_allocations;
        note_in_use(cls);
        return p;
    }

    // `bytes` must be the count passed to allocate for this block.
    void deallocate(void* p, std::size_t bytes) noexcept {
        if (p == nullptr) return;
        const std::size_t cls = size_class(bytes);
        const int idx = class_index(bytes);
        {
            std::lock_guard<std::mutex> lock(mu_);
            stats_.bytes_in_use -= cls;
            if (caching_ && stats_.bytes_cached + cls <= cache_limit_) {
                next_of(p) = free_[idx];
                free_[idx] = p;
                stats_.bytes_cached += cls;
                // The link word stays readable: LeakSanitizer ignores pointers
                // stored in poisoned memory and would report cached blocks as leaks.
                POLYMATH_POISON(static_cast<char*>(p) + sizeof(void*), cls - sizeof(void*));
                return;
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
    void empty_cache() { trim_to(0); }
    void reset_peak() {
        std::lock_guard<std::mutex> lock(mu_);
        stats_.peak_bytes_in_use = stats_.bytes_in_use;
    }
    // Caps the cache; blocks cached beyond the new cap are released now.
    void set_cache_limit(std::size_t bytes) {
        {
            std::lock_guard<std::mutex> lock(mu_);
            cache_limit_ = bytes;
        }
        trim_to(bytes);
    }
    std::size_t cache_limit() const {
        std::lock_guard<std::mutex> lock(mu_);
        return cache_limit_;
    }
    // False under POLYMATH_CPU_ALLOCATOR=system.
    bool caching() const noexcept { return caching_; }

    CpuAllocator(const CpuAllocator&) = delete;
    CpuAllocator& operator=(const CpuAllocator&) = delete;

private:
    // Class numbers: 0..15 for 64..1024 bytes, then 4 per octave.
    static constexpr int kNumClasses = 16 + 4 * (47 - 10 + 1);

    CpuAllocator() {
        if (const char* mode = std::getenv("POLYMATH_CPU_ALLOCATOR"); mode && std::strcmp(mode, "system") == 0)
            caching_ = false;
        if (const char* lim = std::getenv("POLYMATH_CPU_CACHE_LIMIT")) {
            char* end = nullptr;
            const unsigned long long v = std::strtoull(lim, &end, 10);
            if (end != lim) cache_limit_ = static_cast<std::size_t>(v);
        }
    }

    // lg with 2^lg < bytes <= 2^(lg+1), for bytes > 1024 (so lg >= 10).
    static constexpr int lg_below(std::size_t bytes) { return static_cast<int>(std::bit_width(bytes - 1)) - 1; }
    static constexpr int class_index(std::size_t bytes) {
        if (bytes <= 1024) return bytes == 0 ? 0 : static_cast<int>((bytes + 63) / 64) - 1;
        const int lg = lg_below(bytes);
        const std::size_t step = std::size_t(1) << (lg - 2);
        const int k = static_cast<int>((bytes + step - 1) / step);  // 5..8
        return 16 + (lg - 10) * 4 + (k - 5);
    }
    static constexpr bool classes_consistent() {
        auto ok = [](std::size_t b) {
            const std::size_t c = size_class(b);
            const int i = class_index(b);
            return i >= 0 && i < kNumClasses && class_bytes(i) == c && c >= b && c % kAlignment == 0 &&
                   (b <= 1024 || (c - b) * 4 < b);
        };
        for (std::size_t b = 0; b <= 8192; ++b)
            if (!ok(b)) return false;
        for (int lg = 13; lg <= 47; ++lg)
            for (std::size_t d : {std::size_t(1), std::size_t(2), std::size_t(3)}) {
                const std::size_t p = std::size_t(1) << lg;
                if (!ok(p - d) || !ok(p) || (lg < 47 && !ok(p + d)) || !ok(p - p / 4 + 1)) return false;
            }
        return true;
    }
    static void*& next_of(void* block) noexcept { return *static_cast<void**>(block); }

    // Releases cached blocks, largest classes first, until at most `limit` bytes stay cached.
    void trim_to(std::size_t limit) {
        void* chain = nullptr;  // released blocks, linked through their first word
        {
            std::lock_guard<std::mutex> lock(mu_);
            for (int idx = kNumClasses - 1; idx >= 0 && stats_.bytes_cached > limit; --idx) {
                const std::size_t cls = class_bytes(idx);
                while (free_[idx] != nullptr && stats_.bytes_cached > limit) {
                    void* p = free_[idx];
                    POLYMATH_UNPOISON(p, cls);
                    free_[idx] = next_of(p);
                    next_of(p) = chain;
                    chain = p;
                    stats_.bytes_cached -= cls;
                    ++stats_.system_frees;
                }
            }
        }
        while (chain != nullptr) {
            void* next = next_of(chain);
            ::operator delete(chain, std::align_val_t{kAlignment});
            chain = next;
        }
    }
    static constexpr std::size_t class_bytes(int idx) {
        if (idx < 16) return std::size_t(idx + 1) * 64;
        const int lg = 10 + (idx - 16) / 4, k = 5 + (idx - 16) % 4;
        return std::size_t(k) << (lg - 2);
    }

    [[noreturn]] void throw_oom(std::size_t bytes) const {  // called with mu_ held
        POLYMATH_THROW("CpuAllocator", "out of memory allocating ", bytes, " bytes (in use ", stats_.bytes_in_use,
                       " bytes, cached ", stats_.bytes_cached, " bytes)");
    }
    void note_in_use(std::size_t cls) {
        stats_.bytes_in_use += cls;
        if (stats_.bytes_in_use > stats_.peak_bytes_in_use) stats_.peak_bytes_in_use = stats_.bytes_in_use;
    }

    // Last in the class so that every function it evaluates is already defined.
    static void compile_time_checks() {
        static_assert(classes_consistent(), "polymath: CpuAllocator size classes and class numbers disagree");
    }

    mutable std::mutex mu_;
    AllocatorStats stats_;
    std::array<void*, kNumClasses> free_{};
    std::size_t cache_limit_ = kDefaultCacheLimit;
    bool caching_ = true;
};

// The class arithmetic must round-trip, or blocks would land in the wrong list.
static_assert(CpuAllocator::size_class(0) == 64 && CpuAllocator::size_class(1025) == 1280 &&
                  CpuAllocator::size_class(CpuAllocator::kMaxRequest) == CpuAllocator::kMaxRequest,
              "polymath: CpuAllocator size classes are inconsistent");

}  // namespace polymath
