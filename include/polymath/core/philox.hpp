// polymath/core/philox.hpp — counter-based random numbers (Philox4x32-10).
//
// Why counter-based: element j of a draw is a pure function of (seed, j), so
// any thread on the CPU or the GPU can compute its own elements, in any order,
// and the CPU and CUDA backends produce identical tensors.
//
// The library-wide stream (the CUDA backend implements the same):
//   for a draw that reserved offset `off` from a Generator with seed `s`,
//   element i uses j = off + i,
//     block   = philox4x32_10(counter = {lo32(j/4), hi32(j/4), 0, 0},
//                             key     = {lo32(s), hi32(s)})
//     u32     = block[j % 4]
//   uniform float  = (u32 >> 8) * 2^-24                       in [0, 1)
//   uniform double = 53 bits from words 2*(j%2) and 2*(j%2)+1 of a separate
//                    block family (counter {lo32(j/2), hi32(j/2), 1, 0}), * 2^-53
//   normal         = Box-Muller on the uniforms of the pair (j & ~1, j | 1):
//                    u1 in (0, 1], u2 in [0, 1); even j takes
//                    r cos(2 pi u2), odd j takes r sin(2 pi u2).
#pragma once
#include <cmath>
#include <cstdint>
#include <mutex>

#include "polymath/core/macros.hpp"

namespace polymath {

struct u32x4 {
    std::uint32_t v[4];
};
struct u32x2 {
    std::uint32_t v[2];
};

POLYMATH_HOST_DEVICE inline void philox_mulhilo(std::uint32_t a, std::uint32_t b, std::uint32_t& hi, std::uint32_t& lo) {
    const std::uint64_t p = static_cast<std::uint64_t>(a) * b;
    hi = static_cast<std::uint32_t>(p >> 32);
    lo = static_cast<std::uint32_t>(p);
}

// Philox4x32 with 10 rounds (Salmon et al., SC'11; Random123).
POLYMATH_HOST_DEVICE inline u32x4 philox4x32_10(u32x4 ctr, u32x2 key) {
    for (int round = 0; round < 10; ++round) {
        if (round > 0) {
            key.v[0] += 0x9E3779B9u;
            key.v[1] += 0xBB67AE85u;
        }
        std::uint32_t hi0, lo0, hi1, lo1;
        philox_mulhilo(0xD2511F53u, ctr.v[0], hi0, lo0);
        philox_mulhilo(0xCD9E8D57u, ctr.v[2], hi1, lo1);
        ctr = u32x4{{hi1 ^ ctr.v[1] ^ key.v[0], lo1, hi0 ^ ctr.v[3] ^ key.v[1], lo0}};
    }
    return ctr;
}

POLYMATH_HOST_DEVICE inline u32x4 philox_block(std::uint64_t seed, std::uint64_t block) {
    return philox4x32_10(u32x4{{static_cast<std::uint32_t>(block), static_cast<std::uint32_t>(block >> 32), 0u, 0u}},
                         u32x2{{static_cast<std::uint32_t>(seed), static_cast<std::uint32_t>(seed >> 32)}});
}

// Word j of the stream with this seed.
POLYMATH_HOST_DEVICE inline std::uint32_t philox_u32(std::uint64_t seed, std::uint64_t j) {
    return philox_block(seed, j / 4).v[j % 4];
}

POLYMATH_HOST_DEVICE inline float philox_uniform_float(std::uint64_t seed, std::uint64_t j) {
    return static_cast<float>(philox_u32(seed, j) >> 8) * 5.9604644775390625e-8f;  // 2^-24
}

// 53-bit uniform in [0, 1): element j combines words (j & ~1) and (j | 1) of
// a second, disjoint block family (counter word 2 = 1), so float and double
// draws of the same j are independent but both pure functions of (seed, j).
POLYMATH_HOST_DEVICE inline double philox_uniform_double(std::uint64_t seed, std::uint64_t j) {
    const u32x4 b = philox4x32_10(
        u32x4{{static_cast<std::uint32_t>(j / 2), static_cast<std::uint32_t>((j / 2) >> 32), 1u, 0u}},
        u32x2{{static_cast<std::uint32_t>(seed), static_cast<std::uint32_t>(seed >> 32)}});
    const std::uint32_t hi = b.v[2 * (j % 2)], lo = b.v[2 * (j % 2) + 1];
    const std::uint64_t m = (static_cast<std::uint64_t>(hi >> 11) << 32) | lo;  // 21 + 32 = 53 bits
    return static_cast<double>(m) * 1.1102230246251565e-16;                     // 2^-53
}

POLYMATH_HOST_DEVICE inline float philox_normal_float(std::uint64_t seed, std::uint64_t j) {
    const u32x4 b = philox_block(seed, j / 4);
    const unsigned k = static_cast<unsigned>(j % 4) & ~1u;
    const float u1 = static_cast<float>((b.v[k] >> 8) + 1u) * 5.9604644775390625e-8f;  // (0, 1]
    const float u2 = static_cast<float>(b.v[k + 1] >> 8) * 5.9604644775390625e-8f;     // [0, 1)
    const float r = std::sqrt(-2.0f * std::log(u1));
    const float th = 6.283185307179586f * u2;
    return (j & 1) ? r * std::sin(th) : r * std::cos(th);
}

POLYMATH_HOST_DEVICE inline double philox_normal_double(std::uint64_t seed, std::uint64_t j) {
    const std::uint64_t base = j & ~std::uint64_t(1);
    const double u1 = 1.0 - philox_uniform_double(seed, base);  // (0, 1]
    const double u2 = philox_uniform_double(seed, base + 1);
    const double r = std::sqrt(-2.0 * std::log(u1));
    const double th = 6.283185307179586 * u2;
    return (j & 1) ? r * std::sin(th) : r * std::cos(th);
}

// True with probability p.
POLYMATH_HOST_DEVICE inline bool philox_bernoulli(std::uint64_t seed, std::uint64_t j, float p) {
    return philox_uniform_float(seed, j) < p;
}

// A seed plus a running offset: each draw reserves a fresh range of the stream.
class Generator {
public:
    explicit Generator(std::uint64_t seed = 0) : seed_(seed) {}
    Generator(const Generator& o) : seed_(o.seed_), offset_(o.offset_) {}
    Generator& operator=(const Generator& o) {
        std::lock_guard<std::mutex> lock(mu_);
        seed_ = o.seed_;
        offset_ = o.offset_;
        return *this;
    }
    void manual_seed(std::uint64_t s) {
        std::lock_guard<std::mutex> lock(mu_);
        seed_ = s;
        offset_ = 0;
    }
    std::uint64_t seed() const { return seed_; }
    std::uint64_t offset() const { return offset_; }
    // Returns the current offset and advances it by n rounded up to a multiple of 4.
    std::uint64_t reserve(std::uint64_t n) {
        std::lock_guard<std::mutex> lock(mu_);
        const std::uint64_t off = offset_;
        offset_ += (n + 3) & ~std::uint64_t(3);
        return off;
    }

private:
    std::uint64_t seed_;
    std::uint64_t offset_ = 0;
    std::mutex mu_;
};

// The process-wide generator used when none is passed (seed 0 until manual_seed).
inline Generator& default_generator() {
    static Generator* g = new Generator(0);  // leaked: usable during static destruction
    return *g;
}
inline void manual_seed(std::uint64_t s) { default_generator().manual_seed(s); }

}  // namespace polymath
