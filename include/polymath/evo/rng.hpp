// polymath/evo/rng.hpp — the random draws of the evolutionary algorithms.
//
// Every draw goes through a polymath::Generator (Philox4x32-10), so a run is a
// pure function of its seed, and the whole random state is the generator's
// (seed, offset) pair, which a checkpoint stores and restores exactly.
//
// Why one Philox index per draw rather than a buffered stream: the variation
// operators draw a handful of numbers per child, the cost of a Philox block is
// negligible next to one fitness evaluation, and "draw k is index k" keeps the
// state a single counter. Draws only happen on the calling thread (the
// parallel part of a generation is the evaluation, which draws nothing), so
// results do not depend on the thread count.
#pragma once
#include <cstdint>

#include "polymath/core/error.hpp"
#include "polymath/core/philox.hpp"

namespace polymath::evo {

class Rng {
public:
    explicit Rng(Generator& gen) : gen_(&gen), seed_(gen.seed()) {}

    Generator& generator() const noexcept { return *gen_; }

    // Uniform double in [0, 1), 53 random bits.
    double uniform() { return philox_uniform_double(seed_, gen_->reserve(1)); }
    // Uniform in [lo, hi).
    double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
    // True with probability p.
    bool bernoulli(double p) { return uniform() < p; }
    // Uniform integer in [0, n): 64 random bits reduced by multiply-shift
    // (Lemire), whose bias (< n / 2^64) is far below anything measurable here.
    std::uint64_t below(std::uint64_t n) {
        POLYMATH_CHECK(n > 0, "evo::Rng::below", "range must be non-empty, got n=0");
        const std::uint64_t j = gen_->reserve(2);
        const std::uint64_t w = (std::uint64_t(philox_u32(seed_, j)) << 32) | philox_u32(seed_, j + 1);
        return static_cast<std::uint64_t>((static_cast<unsigned __int128>(w) * n) >> 64);
    }

private:
    Generator* gen_;
    std::uint64_t seed_;
};

// Restores a generator to (seed, offset) exactly: manual_seed zeroes the
// offset and reserve() advances it by a multiple of 4, which every offset a
// Generator hands out already is.
inline void restore_generator(Generator& gen, std::uint64_t seed, std::uint64_t offset) {
    POLYMATH_CHECK(offset % 4 == 0, "evo::restore_generator", "offset must be a multiple of 4, got ", offset);
    gen.manual_seed(seed);
    if (offset > 0) gen.reserve(offset);
}

}  // namespace polymath::evo
