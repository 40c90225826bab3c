// polymath/evo/genome.hpp — what an individual is made of.
//
//   BitGenome            a mask: one std::uint8_t (0 or 1) per bit.
//   RealGenome + RealBounds          real vector with per-gene [lo, hi].
//   IndexGenome + AdjacentChoice     hyper-parameters as indices into ordered
//                                    value lists (µ2Net-style: learning rate in
//                                    {1e-4, 3e-4, 1e-3, ...}); integer and
//                                    categorical genes are lists too.
//
// BitGenome is a byte per bit, not packed: the masks of interest have at most
// ~10^5 bits (JAT's M2M100 masks: 67,584), a population holds at most a few
// hundred of them (a few MB), and a byte array keeps every operator a plain
// indexed loop, lets nlohmann_json store it as-is, and lets apply_mask read it
// without shifts. Any value other than 0 or 1 is rejected by the consumers
// that care (masks).
#pragma once
#include <cmath>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "polymath/core/error.hpp"
#include "polymath/evo/rng.hpp"

namespace polymath::evo {

using BitGenome = std::vector<std::uint8_t>;
using RealGenome = std::vector<double>;
using IndexGenome = std::vector<std::int64_t>;

// Per-gene box constraints for a RealGenome.
struct RealBounds {
    std::vector<double> lo, hi;

    RealBounds() = default;
    RealBounds(std::vector<double> lo_, std::vector<double> hi_) : lo(std::move(lo_)), hi(std::move(hi_)) {
        validate();
    }
    // n genes, all in [lo, hi].
    RealBounds(std::size_t n, double lo_, double hi_) : lo(n, lo_), hi(n, hi_) { validate(); }

    std::size_t size() const noexcept { return lo.size(); }

    void validate() const {
        POLYMATH_CHECK(lo.size() == hi.size(), "evo::RealBounds", "lo has ", lo.size(), " genes but hi has ",
                       hi.size());
        for (std::size_t i = 0; i < lo.size(); ++i)
            POLYMATH_CHECK(std::isfinite(lo[i]) && std::isfinite(hi[i]) && lo[i] <= hi[i], "evo::RealBounds",
                           "gene ", i, " needs finite lo <= hi, got [", lo[i], ", ", hi[i], "]");
    }
};

// One hyper-parameter: an ordered list of values; the gene is an index into
// it, and adjacent-value mutation moves the index by one.
template <class V = double>
struct AdjacentChoice {
    std::string name;
    std::vector<V> values;

    std::size_t size() const noexcept { return values.size(); }
    const V& at(std::int64_t index) const {
        POLYMATH_CHECK(index >= 0 && static_cast<std::size_t>(index) < values.size(), "evo::AdjacentChoice",
                       "'", name, "': index ", index, " out of range for ", values.size(), " values");
        return values[static_cast<std::size_t>(index)];
    }
};

// An integer gene over [lo, hi] as a list (adjacent mutation then moves by 1).
inline AdjacentChoice<std::int64_t> integer_range(std::string name, std::int64_t lo, std::int64_t hi) {
    POLYMATH_CHECK(lo <= hi, "evo::integer_range", "'", name, "': needs lo <= hi, got [", lo, ", ", hi, "]");
    AdjacentChoice<std::int64_t> c{std::move(name), {}};
    for (std::int64_t v = lo; v <= hi; ++v) c.values.push_back(v);
    return c;
}

// The values an index genome selects.
template <class V>
std::vector<V> decode(const std::vector<AdjacentChoice<V>>& space, const IndexGenome& g) {
    POLYMATH_CHECK(g.size() == space.size(), "evo::decode", "genome has ", g.size(), " genes but the space has ",
                   space.size(), " choices");
    std::vector<V> out;
    out.reserve(g.size());
    for (std::size_t i = 0; i < g.size(); ++i) out.push_back(space[i].at(g[i]));
    return out;
}

// The sizes of a list of choices (what the index operators need).
template <class V>
std::vector<std::int64_t> choice_sizes(const std::vector<AdjacentChoice<V>>& space) {
    std::vector<std::int64_t> out;
    out.reserve(space.size());
    for (const auto& c : space) {
        POLYMATH_CHECK(!c.values.empty(), "evo::choice_sizes", "choice '", c.name, "' has no values");
        out.push_back(static_cast<std::int64_t>(c.values.size()));
    }
    return out;
}

// ---- random genomes ------------------------------------------------------------

// n bits, each 1 with probability p_one.
inline BitGenome random_bits(std::size_t n, double p_one, Rng& rng) {
    BitGenome g(n);
    for (auto& b : g) b = rng.bernoulli(p_one) ? 1 : 0;
    return g;
}

// Uniform in each gene's [lo, hi].
inline RealGenome random_reals(const RealBounds& b, Rng& rng) {
    RealGenome g(b.size());
    for (std::size_t i = 0; i < g.size(); ++i) g[i] = rng.uniform(b.lo[i], b.hi[i]);
    return g;
}

// Uniform index into each list.
inline IndexGenome random_indices(const std::vector<std::int64_t>& sizes, Rng& rng) {
    IndexGenome g(sizes.size());
    for (std::size_t i = 0; i < g.size(); ++i) {
        POLYMATH_CHECK(sizes[i] > 0, "evo::random_indices", "gene ", i, " has an empty list");
        g[i] = static_cast<std::int64_t>(rng.below(static_cast<std::uint64_t>(sizes[i])));
    }
    return g;
}

}  // namespace polymath::evo
