// polymath/evo/mutation.hpp — in-place mutation operators; each returns how
// many genes it changed.
//
//   bit_flip_mutation     each bit flipped with probability `rate`
//   adjacent_mutation     each index gene, with probability `rate`, moves to an
//                         ADJACENT value of its list (µ2Net): +1 or -1 with
//                         probability 1/2 each; at either end of the list the
//                         only neighbour is taken (reflection), so a mutated gene
//                         always changes when its list has >= 2 values and never
//                         jumps further than one step. Lists of one value never
//                         change.
//   polynomial_mutation   Deb & Goyal (1996) bounded polynomial mutation for reals,
//                         as in Deb's NSGA-II code (and pagmo): rate per gene,
//                         distribution index eta (default 20).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "polymath/core/error.hpp"
#include "polymath/evo/genome.hpp"
#include "polymath/evo/rng.hpp"

namespace polymath::evo {

inline void check_rate(double rate, const char* op) {
    POLYMATH_CHECK(rate >= 0.0 && rate <= 1.0, op, "rate must be in [0, 1], got ", rate);
}

inline std::size_t bit_flip_mutation(BitGenome& g, double rate, Rng& rng) {
    check_rate(rate, "evo::bit_flip_mutation");
    std::size_t flipped = 0;
    for (auto& b : g)
        if (rng.bernoulli(rate)) {
            b = b ? 0 : 1;
            ++flipped;
        }
    return flipped;
}

// sizes[i] = length of gene i's value list; every g[i] must be a valid index.
inline std::size_t adjacent_mutation(IndexGenome& g, const std::vector<std::int64_t>& sizes, double rate, Rng& rng) {
    check_rate(rate, "evo::adjacent_mutation");
    POLYMATH_CHECK(g.size() == sizes.size(), "evo::adjacent_mutation", "genome has ", g.size(), " genes but ",
                   sizes.size(), " lists were given");
    std::size_t changed = 0;
    for (std::size_t i = 0; i < g.size(); ++i) {
        POLYMATH_CHECK(sizes[i] > 0 && g[i] >= 0 && g[i] < sizes[i], "evo::adjacent_mutation", "gene ", i,
                       " has index ", g[i], " outside its list of ", sizes[i], " values");
        if (!rng.bernoulli(rate) || sizes[i] < 2) continue;
        const bool up = rng.bernoulli(0.5);
        if (g[i] == 0) g[i] = 1;                        // reflect at the low end
        else if (g[i] == sizes[i] - 1) g[i] = g[i] - 1;  // reflect at the high end
        else g[i] += up ? 1 : -1;
        ++changed;
    }
    return changed;
}

struct PolynomialMutationOptions {
    double eta = 20.0;
    double rate = -1.0;  // per gene; < 0 means 1 / (number of genes)
};

inline std::size_t polynomial_mutation(RealGenome& g, const RealBounds& b, Rng& rng,
                                       PolynomialMutationOptions o = {}) {
    POLYMATH_CHECK(g.size() == b.size(), "evo::polynomial_mutation", "genome has ", g.size(),
                   " genes but the bounds have ", b.size());
    const double rate = o.rate < 0 ? (g.empty() ? 0.0 : 1.0 / double(g.size())) : o.rate;
    check_rate(rate, "evo::polynomial_mutation");
    const double pw = 1.0 / (o.eta + 1.0);
    std::size_t changed = 0;
    for (std::size_t i = 0; i < g.size(); ++i) {
        if (!rng.bernoulli(rate)) continue;
        const double lo = b.lo[i], hi = b.hi[i];
        if (hi <= lo) continue;
        const double y = g[i], d1 = (y - lo) / (hi - lo), d2 = (hi - y) / (hi - lo);
        const double r = rng.uniform();
        double dq;
        if (r < 0.5) {
            const double val = 2.0 * r + (1.0 - 2.0 * r) * std::pow(1.0 - d1, o.eta + 1.0);
            dq = std::pow(val, pw) - 1.0;
        } else {
            const double val = 2.0 * (1.0 - r) + 2.0 * (r - 0.5) * std::pow(1.0 - d2, o.eta + 1.0);
            dq = 1.0 - std::pow(val, pw);
        }
        g[i] = std::clamp(y + dq * (hi - lo), lo, hi);
        ++changed;
    }
    return changed;
}

}  // namespace polymath::evo
