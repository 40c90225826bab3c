// CpuAllocator: alignment, size classes, block reuse and its statistics, cache
// limits, thread safety and the out-of-memory error. The allocator is a
// process-wide singleton, so every check works on differences of stats().
// With POLYMATH_CPU_ALLOCATOR=system the cache-specific checks flip to
// "nothing is cached".
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <random>
#include <thread>
#include <vector>

#include "polymath/core/allocator.hpp"

using namespace polymath;
using doctest::Contains;

namespace {
bool aligned64(const void* p) { return reinterpret_cast<std::uintptr_t>(p) % 64 == 0; }

// Makes a test independent of POLYMATH_CPU_CACHE_LIMIT and of other tests.
struct ScopedCacheLimit {
    std::size_t old = CpuAllocator::instance().cache_limit();
    explicit ScopedCacheLimit(std::size_t limit) { CpuAllocator::instance().set_cache_limit(limit); }
    ~ScopedCacheLimit() { CpuAllocator::instance().set_cache_limit(old); }
};
}  // namespace

TEST_CASE("size classes round up by at most 25% and are multiples of 64") {
    CHECK(CpuAllocator::size_class(0) == 64);
    CHECK(CpuAllocator::size_class(1) == 64);
    CHECK(CpuAllocator::size_class(64) == 64);
    CHECK(CpuAllocator::size_class(65) == 128);
    CHECK(CpuAllocator::size_class(1024) == 1024);
    CHECK(CpuAllocator::size_class(1025) == 1280);
    CHECK(CpuAllocator::size_class(1281) == 1536);
    CHECK(CpuAllocator::size_class(2048) == 2048);
    CHECK(CpuAllocator::size_class(2049) == 2560);
    CHECK(CpuAllocator::size_class(4000) == 4096);
    CHECK(CpuAllocator::size_class((1 << 20) + 1) == (1 << 20) + (1 << 18));
    for (std::size_t b = 1; b < (std::size_t(1) << 40); b = b * 3 / 2 + 1) {
        const std::size_t c = CpuAllocator::size_class(b);
        CHECK(c >= b);
        CHECK(c % 64 == 0);
        if (b > 1024) CHECK(double(c - b) / double(b) < 0.25);
        CHECK(CpuAllocator::size_class(c) == c);  // classes are fixed points
    }
}

TEST_CASE("blocks are 64-byte aligned and writable over the whole request for many sizes") {
    auto& a = CpuAllocator::instance();
    CHECK(&a == &CpuAllocator::instance());
    std::vector<std::pair<void*, std::size_t>> blocks;
    for (std::size_t n : {std::size_t(1), std::size_t(3), std::size_t(63), std::size_t(64), std::size_t(65),
                          std::size_t(100), std::size_t(1000), std::size_t(1024), std::size_t(1025), std::size_t(4097),
                          std::size_t(65536 + 7), std::size_t(1) << 20, (std::size_t(3) << 20) + 5}) {
        void* p = a.allocate(n);
        REQUIRE(p != nullptr);
        CHECK(aligned64(p));
        std::memset(p, 0xAB, n);
        blocks.emplace_back(p, n);
    }
    for (std::size_t n = 1; n < 5000; n += 37) {
        void* p = a.allocate(n);
        CHECK(aligned64(p));
        static_cast<unsigned char*>(p)[n - 1] = 1;
        a.deallocate(p, n);
    }
    for (auto [p, n] : blocks) a.deallocate(p, n);
}

TEST_CASE("a zero-byte request returns a valid, distinct 64-byte block") {
    auto& a = CpuAllocator::instance();
    void* p = a.allocate(0);
    void* q = a.allocate(0);
    REQUIRE(p != nullptr);
    REQUIRE(q != nullptr);
    CHECK(p != q);
    CHECK(aligned64(p));
    std::memset(p, 0, 64);
    a.deallocate(p, 0);
    a.deallocate(q, 0);
    a.deallocate(nullptr, 10);  // freeing nullptr is a no-op
}

TEST_CASE("a freed block is reused for the next request of its size class") {
    auto& a = CpuAllocator::instance();
    ScopedCacheLimit limit(std::size_t(1) << 30);
    const auto s0 = a.stats();
    void* p = a.allocate(3000);
    const auto s1 = a.stats();
    CHECK(s1.allocations == s0.allocations + 1);
    a.deallocate(p, 3000);
    const auto s2 = a.stats();
    void* q = a.allocate(2900);  // same class (3072)
    const auto s3 = a.stats();
    if (a.caching()) {
        CHECK(s2.bytes_cached == s1.bytes_cached + 3072);
        CHECK(q == p);
        CHECK(s3.cache_hits == s2.cache_hits + 1);
        CHECK(s3.system_allocations == s2.system_allocations);
        CHECK(s3.bytes_cached == s2.bytes_cached - 3072);
    } else {
        CHECK(s2.system_frees == s1.system_frees + 1);
        CHECK(s3.cache_hits == s0.cache_hits);
        CHECK(s3.system_allocations == s2.system_allocations + 1);
    }
    a.deallocate(q, 2900);
    void* r = a.allocate(5000);  // a different class is not served by that block
    if (a.caching()) CHECK(r != q);
    a.deallocate(r, 5000);
}

TEST_CASE("bytes_in_use and peak_bytes_in_use count class bytes of live blocks") {
    auto& a = CpuAllocator::instance();
    a.reset_peak();
    const auto s0 = a.stats();
    CHECK(s0.peak_bytes_in_use == s0.bytes_in_use);
    void* p = a.allocate(10000);  // class 10240
    void* q = a.allocate(10000);
    const auto s1 = a.stats();
    CHECK(s1.bytes_in_use == s0.bytes_in_use + 2 * 10240);
    CHECK(s1.peak_bytes_in_use == s1.bytes_in_use);
    a.deallocate(p, 10000);
    const auto s2 = a.stats();
    CHECK(s2.bytes_in_use == s0.bytes_in_use + 10240);
    CHECK(s2.peak_bytes_in_use == s1.peak_bytes_in_use);  // the peak stays
    a.reset_peak();
    CHECK(a.stats().peak_bytes_in_use == s2.bytes_in_use);
    a.deallocate(q, 10000);
    CHECK(a.stats().bytes_in_use == s0.bytes_in_use);
}

TEST_CASE("empty_cache returns every cached block to the system") {
    auto& a = CpuAllocator::instance();
    ScopedCacheLimit limit(std::size_t(1) << 30);
    std::vector<std::pair<void*, std::size_t>> blocks;
    for (std::size_t n : {std::size_t(100), std::size_t(5000), std::size_t(70000), std::size_t(70000)})
        blocks.emplace_back(a.allocate(n), n);
    for (auto [p, n] : blocks) a.deallocate(p, n);
    const auto s1 = a.stats();
    if (a.caching()) CHECK(s1.bytes_cached >= 128 + 5120 + 2 * 71680);
    a.empty_cache();
    const auto s2 = a.stats();
    CHECK(s2.bytes_cached == 0);
    CHECK(s2.system_frees >= s1.system_frees + (a.caching() ? 4 : 0));
    void* p = a.allocate(5000);  // after emptying, the next request goes to the system
    CHECK(a.stats().system_allocations == s2.system_allocations + 1);
    a.deallocate(p, 5000);
}

TEST_CASE("the cache limit sends frees beyond it to the system and trims the cache when lowered") {
    auto& a = CpuAllocator::instance();
    ScopedCacheLimit restore(a.cache_limit());
    a.empty_cache();
    a.set_cache_limit(0);
    const auto s0 = a.stats();
    void* p = a.allocate(4096);
    a.deallocate(p, 4096);
    const auto s1 = a.stats();
    CHECK(s1.bytes_cached == 0);
    CHECK(s1.system_frees == s0.system_frees + 1);

    a.set_cache_limit(std::size_t(1) << 30);
    std::vector<void*> blocks;
    for (int i = 0; i < 4; ++i) blocks.push_back(a.allocate(256 * 1024));
    for (void* b : blocks) a.deallocate(b, 256 * 1024);
    if (a.caching()) CHECK(a.stats().bytes_cached == 4 * 256 * 1024);
    a.set_cache_limit(600 * 1024);  // room for two of the four
    CHECK(a.cache_limit() == 600 * 1024);
    CHECK(a.stats().bytes_cached == (a.caching() ? 2 * 256 * 1024 : 0));
    a.empty_cache();
}

#if defined(POLYMATH_ASAN)
TEST_CASE("under AddressSanitizer cached blocks are poisoned until they are handed out again") {
    auto& a = CpuAllocator::instance();
    if (!a.caching()) return;
    ScopedCacheLimit limit(std::size_t(1) << 30);
    void* p = a.allocate(500);
    CHECK_FALSE(__asan_address_is_poisoned(p));
    CHECK_FALSE(__asan_address_is_poisoned(static_cast<char*>(p) + 499));
    a.deallocate(p, 500);
    CHECK(__asan_address_is_poisoned(static_cast<char*>(p) + sizeof(void*)));  // a use after free would be reported
    CHECK(__asan_address_is_poisoned(static_cast<char*>(p) + 300));
    void* q = a.allocate(500);
    CHECK(q == p);
    CHECK_FALSE(__asan_address_is_poisoned(q));
    CHECK_FALSE(__asan_address_is_poisoned(static_cast<char*>(q) + 511));
    a.deallocate(q, 500);
}
#endif

TEST_CASE("4 threads allocating and freeing concurrently leave consistent statistics") {
    auto& a = CpuAllocator::instance();
    ScopedCacheLimit limit(std::size_t(1) << 30);
    a.empty_cache();  // so that blocks held from the system are exactly the live ones
    const auto s0 = a.stats();
    constexpr int kThreads = 4, kIters = 20000;
    std::atomic<int> corrupt{0};
    std::vector<std::thread> ts;
    for (int t = 0; t < kThreads; ++t) {
        ts.emplace_back([&, t] {
            std::mt19937 rng(1000 + t);
            struct Live {
                unsigned char* p;
                std::size_t n;
                unsigned char tag;
            };
            std::vector<Live> live;
            for (int i = 0; i < kIters; ++i) {
                if (live.size() < 16 && (live.empty() || rng() % 2)) {
                    const std::size_t n = 1 + rng() % (rng() % 4 == 0 ? 200000 : 3000);
                    auto* p = static_cast<unsigned char*>(a.allocate(n));
                    if (!aligned64(p)) ++corrupt;
                    const auto tag = static_cast<unsigned char>(rng());
                    p[0] = tag;  // a block handed to two owners at once would be overwritten
                    p[n - 1] = tag;
                    live.push_back({p, n, tag});
                } else {
                    const std::size_t k = rng() % live.size();
                    const Live l = live[k];
                    if (l.p[0] != l.tag || l.p[l.n - 1] != l.tag) ++corrupt;
                    a.deallocate(l.p, l.n);
                    live[k] = live.back();
                    live.pop_back();
                }
            }
            for (const Live& l : live) {
                if (l.p[0] != l.tag || l.p[l.n - 1] != l.tag) ++corrupt;
                a.deallocate(l.p, l.n);
            }
        });
    }
    for (auto& t : ts) t.join();
    const auto s1 = a.stats();
    CHECK(corrupt.load() == 0);
    CHECK(s1.bytes_in_use == s0.bytes_in_use);
    const std::size_t allocs = s1.allocations - s0.allocations;
    CHECK(allocs >= std::size_t(kThreads) * kIters / 2);
    CHECK(allocs == (s1.cache_hits - s0.cache_hits) + (s1.system_allocations - s0.system_allocations));
    if (a.caching()) CHECK(s1.cache_hits > s0.cache_hits);
    CHECK(s1.peak_bytes_in_use >= s1.bytes_in_use);
    a.empty_cache();
    const auto s2 = a.stats();
    // Blocks held from the system are the live ones again: nothing leaked, nothing freed twice.
    CHECK(s2.bytes_cached == 0);
    CHECK(s2.system_allocations - s2.system_frees == s0.system_allocations - s0.system_frees);
}

TEST_CASE("an impossible request throws polymath::Error saying out of memory, and the allocator stays usable") {
    auto& a = CpuAllocator::instance();
    const auto s0 = a.stats();
    CHECK_THROWS_WITH_AS(a.allocate(std::size_t(1) << 62), Contains("out of memory"), polymath::Error);
    CHECK_THROWS_WITH_AS(a.allocate(std::size_t(1) << 62), Contains("CpuAllocator: out of memory allocating 4611686018427387904 bytes (in use "), polymath::Error);
    CHECK_THROWS_WITH_AS(a.allocate(~std::size_t(0)), Contains("cached "), polymath::Error);
    CHECK_THROWS_AS(a.allocate(CpuAllocator::kMaxRequest + 1), polymath::Error);
    const auto s1 = a.stats();
    CHECK(s1.bytes_in_use == s0.bytes_in_use);
    CHECK(s1.system_allocations == s0.system_allocations);
    void* p = a.allocate(128);
    CHECK(p != nullptr);
    a.deallocate(p, 128);
}
