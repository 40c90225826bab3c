// polymath/core/philox.hpp — counter-based random numbers (Philox4x32-10).
//
// Why counter-based: element j of a draw is a pure function of (seed, j), so
// any CPU thread or GPU thread can compute its own elements, in any order and
// with any split of the work, and the CPU and CUDA backends fill a tensor with
// the same values. A Generator only hands out disjoint ranges of j.
//
// Philox4x32-10 is Salmon, Moraes, Dror & Shaw, "Parallel random numbers: as
// easy as 1, 2, 3" (SC'11), as in Random123 / cuRAND; the known-answer vectors
// of Random123 are checked in tests/core/test_philox.cpp.
//
// The library-wide stream (the CUDA backend implements exactly the same):
//   a draw of n elements from a Generator with seed s reserves an offset `off`
//   (Generator::reserve(n)); element i uses j = off + i, and
//     block(c)       = philox4x32_10(counter = {lo32(c), hi32(c), 0, 0},
//                                    key     = {lo32(s), hi32(s)})
//     u32(j)         = block(j / 4).v[j % 4]
//     uniform float  = (u32(j) >> 8) * 2^-24                         in [0, 1)
//     uniform double = a second block family, counter {lo32(j/2), hi32(j/2), 1, 0}:
//                      words hi = v[2*(j%2)], lo = v[2*(j%2)+1] (two consecutive
//                      words), ((hi >> 11) * 2^32 + lo) * 2^-53       in [0, 1)
//                      (own family, so that a double draw of n elements needs
//                      only n offsets, like a float draw)
//     normal float   = Box-Muller on the words of the pair (j & ~1, j | 1), both
//                      in block(j / 4): u1 = ((w0 >> 8) + 1) * 2^-24 in (0, 1]
//                      (log never sees 0), u2 = (w1 >> 8) * 2^-24 in [0, 1),
//                      r = sqrt(-2 ln u1), even j: r cos(2 pi u2), odd j: r sin(2 pi u2)
//     normal double  = the same with u1 = 1 - uniform double(j & ~1) in (0, 1],
//                      u2 = uniform double(j | 1) (one block of the double family)
//     bernoulli(p)   = uniform float(j) < p
// The integer words and the uniforms are bit-identical on every device; the
// normals go through log/sqrt/sin/cos, whose last-ulp results may differ
// between libm and CUDA's math library.
#pragma once
#include <cmath>
#include <cstdint>
#include <mutex>

#include "polymath/core/macros.hpp"

namespace polymath {

// Plain structs rather than std::array so that they work in device code.
struct u32x4 {
    std::uint32_t v[4];
};
struct u32x2 {
    std::uint32_t v[2];
};

namespace detail {
inline constexpr std::uint32_t kPhiloxM0 = 0xD2511F53u, kPhiloxM1 = 0xCD9E8D57u;
inline constexpr std::uint32_t kPhiloxW0 = 0x9E3779B9u, kPhiloxW1 = 0xBB67AE85u;  // golden ratio, sqrt(3) - 1

POLYMATH_HOST_DEVICE constexpr u32x4 philox_round(u32x4 c, u32x2 k) {
    const std::uint64_t p0 = static_cast<std::uint64_t>(kPhiloxM0) * c.v[0];
    const std::uint64_t p1 = static_cast<std::uint64_t>(kPhiloxM1) * c.v[2];
    const auto hi0 = static_cast<std::uint32_t>(p0 >> 32), lo0 = static_cast<std::uint32_t>(p0);
    const auto hi1 = static_cast<std::uint32_t>(p1 >> 32), lo1 = static_cast<std::uint32_t>(p1);
    return u32x4{{hi1 ^ c.v[1] ^ k.v[0], lo1, hi0 ^ c.v[3] ^ k.v[1], lo0}};
}

POLYMATH_HOST_DEVICE constexpr u32x2 seed_key(std::uint64_t seed) {
    return u32x2{{static_cast<std::uint32_t>(seed), static_cast<std::uint32_t>(seed >> 32)}};
}
}  // namespace detail

// Philox4x32 with 10 rounds; the key is bumped by the Weyl constants between rounds.
POLYMATH_HOST_DEVICE constexpr u32x4 philox4x32_10(u32x4 ctr, u32x2 key) {
    for (int round = 0; round < 10; ++round) {
        if (round > 0) {
            key.v[0] += detail::kPhiloxW0;
            key.v[1] += detail::kPhiloxW1;
        }
        ctr = detail::philox_round(ctr, key);
    }
    return ctr;
}

// Block c of the main stream (four consecutive words, j = 4c .. 4c+3).
POLYMATH_HOST_DEVICE constexpr u32x4 philox_block(std::uint64_t seed, std::uint64_t c) {
    return philox4x32_10(u32x4{{static_cast<std::uint32_t>(c), static_cast<std::uint32_t>(c >> 32), 0u, 0u}},
                         detail::seed_key(seed));
}

// Block c of the double family (two doubles, j = 2c and 2c+1).
POLYMATH_HOST_DEVICE constexpr u32x4 philox_double_block(std::uint64_t seed, std::uint64_t c) {
    return philox4x32_10(u32x4{{static_cast<std::uint32_t>(c), static_cast<std::uint32_t>(c >> 32), 1u, 0u}},
                         detail::seed_key(seed));
}

// Word j of the main stream.
POLYMATH_HOST_DEVICE constexpr std::uint32_t philox_u32(std::uint64_t seed, std::uint64_t j) {
    return philox_block(seed, j / 4).v[j % 4];
}

namespace detail {
// 24 random bits: every result is an exact float, the largest is 1 - 2^-24.
POLYMATH_HOST_DEVICE constexpr float u32_to_unit_float(std::uint32_t w) {
    return static_cast<float>(w >> 8) * 0x1p-24f;
}
POLYMATH_HOST_DEVICE constexpr double u32x2_to_unit_double(std::uint32_t hi, std::uint32_t lo) {
    const std::uint64_t m = (static_cast<std::uint64_t>(hi >> 11) << 32) | lo;  // 21 + 32 = 53 bits
    return static_cast<double>(m) * 0x1p-53;
}
POLYMATH_HOST_DEVICE inline float box_muller(float u1, float u2, bool odd) {
    const float r = std::sqrt(-2.0f * std::log(u1));
    const float th = 6.28318530717958647692f * u2;
    return odd ? r * std::sin(th) : r * std::cos(th);
}
POLYMATH_HOST_DEVICE inline double box_muller(double u1, double u2, bool odd) {
    const double r = std::sqrt(-2.0 * std::log(u1));
    const double th = 6.28318530717958647692 * u2;
    return odd ? r * std::sin(th) : r * std::cos(th);
}
}  // namespace detail

// Uniform in [0, 1), 24 random bits.
POLYMATH_HOST_DEVICE constexpr float philox_uniform_float(std::uint64_t seed, std::uint64_t j) {
    return detail::u32_to_unit_float(philox_u32(seed, j));
}

// Uniform in [0, 1), 53 random bits.
POLYMATH_HOST_DEVICE constexpr double philox_uniform_double(std::uint64_t seed, std::uint64_t j) {
    const u32x4 b = philox_double_block(seed, j / 2);
    const unsigned k = 2u * static_cast<unsigned>(j % 2);
    return detail::u32x2_to_unit_double(b.v[k], b.v[k + 1]);
}

// Standard normal; elements 2m and 2m+1 are the cos / sin halves of one Box-Muller pair.
POLYMATH_HOST_DEVICE inline float philox_normal_float(std::uint64_t seed, std::uint64_t j) {
    const u32x4 b = philox_block(seed, j / 4);
    const unsigned k = static_cast<unsigned>(j % 4) & ~1u;
    const float u1 = static_cast<float>((b.v[k] >> 8) + 1u) * 0x1p-24f;  // (0, 1]
    const float u2 = detail::u32_to_unit_float(b.v[k + 1]);              // [0, 1)
    return detail::box_muller(u1, u2, (j & 1u) != 0);
}

POLYMATH_HOST_DEVICE inline double philox_normal_double(std::uint64_t seed, std::uint64_t j) {
    const u32x4 b = philox_double_block(seed, j / 2);  // both uniforms of the pair live in this block
    const double u1 = 1.0 - detail::u32x2_to_unit_double(b.v[0], b.v[1]);  // (0, 1]
    const double u2 = detail::u32x2_to_unit_double(b.v[2], b.v[3]);        // [0, 1)
    return detail::box_muller(u1, u2, (j & 1u) != 0);
}

// True with probability p (p <= 0: never, p >= 1: always).
POLYMATH_HOST_DEVICE constexpr bool philox_bernoulli(std::uint64_t seed, std::uint64_t j, float p) {
    return philox_uniform_float(seed, j) < p;
}

// A seed plus a running offset into its stream. Each draw reserves a fresh,
// non-overlapping range, so successive tensors differ, and a draw's values
// depend only on (seed, offset, index) — not on the device or thread count.
class Generator {
public:
    explicit Generator(std::uint64_t seed = 0) : seed_(seed) {}
    Generator(const Generator& o) {
        std::lock_guard<std::mutex> lock(o.mu_);
        seed_ = o.seed_;
        offset_ = o.offset_;
    }
    Generator& operator=(const Generator& o) {
        if (this == &o) return *this;
        std::uint64_t s, off;
        {
            std::lock_guard<std::mutex> lock(o.mu_);
            s = o.seed_;
            off = o.offset_;
        }
        std::lock_guard<std::mutex> lock(mu_);
        seed_ = s;
        offset_ = off;
        return *this;
    }

    // Restarts the stream: the same seed reproduces the same sequence of draws.
    void manual_seed(std::uint64_t s) {
        std::lock_guard<std::mutex> lock(mu_);
        seed_ = s;
        offset_ = 0;
    }
    std::uint64_t seed() const {
        std::lock_guard<std::mutex> lock(mu_);
        return seed_;
    }
    std::uint64_t offset() const {
        std::lock_guard<std::mutex> lock(mu_);
        return offset_;
    }
    // Returns the current offset and advances it by n rounded up to a multiple
    // of 4, so every draw starts on a fresh Philox block (no word is shared).
    std::uint64_t reserve(std::uint64_t n) {
        std::lock_guard<std::mutex> lock(mu_);
        const std::uint64_t off = offset_;
        offset_ += (n + 3) & ~std::uint64_t(3);
        return off;
    }

private:
    std::uint64_t seed_ = 0;
    std::uint64_t offset_ = 0;
    mutable std::mutex mu_;
};

// The process-wide generator used when none is passed (seed 0 until manual_seed).
inline Generator& default_generator() {
    static Generator* g = new Generator(0);  // leaked: still usable during static destruction
    return *g;
}
// Seeds the default generator and restarts its stream.
inline void manual_seed(std::uint64_t s) { default_generator().manual_seed(s); }

}  // namespace polymath
