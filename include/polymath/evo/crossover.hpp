// polymath/evo/crossover.hpp — recombination of two parents into two children.
//
//   uniform_crossover   each gene swapped with probability 1/2 (any vector genome)
//   one_point_crossover tails after a random cut point swapped (any vector genome)
//   sbx_crossover       simulated binary crossover for reals (Deb & Agrawal 1995),
//                       bounded form as in Deb's NSGA-II reference code (and pagmo)
#pragma once
#include <algorithm>
#include <cmath>
#include <utility>

#include "polymath/core/error.hpp"
#include "polymath/evo/genome.hpp"
#include "polymath/evo/rng.hpp"

namespace polymath::evo {

template <class G>
std::pair<G, G> uniform_crossover(const G& a, const G& b, Rng& rng) {
    POLYMATH_CHECK(a.size() == b.size(), "evo::uniform_crossover", "parents differ in length: ", a.size(), " vs ",
                   b.size());
    std::pair<G, G> kids{a, b};
    for (std::size_t i = 0; i < a.size(); ++i)
        if (rng.bernoulli(0.5)) std::swap(kids.first[i], kids.second[i]);
    return kids;
}

// Cut point c uniform in [1, n-1]; the children are a[0:c] + b[c:] and
// b[0:c] + a[c:]. Genomes of length < 2 are copied unchanged.
template <class G>
std::pair<G, G> one_point_crossover(const G& a, const G& b, Rng& rng) {
    POLYMATH_CHECK(a.size() == b.size(), "evo::one_point_crossover", "parents differ in length: ", a.size(), " vs ",
                   b.size());
    std::pair<G, G> kids{a, b};
    if (a.size() < 2) return kids;
    const std::size_t c = 1 + static_cast<std::size_t>(rng.below(a.size() - 1));
    for (std::size_t i = c; i < a.size(); ++i) std::swap(kids.first[i], kids.second[i]);
    return kids;
}

struct SbxOptions {
    double eta = 15.0;          // distribution index: larger keeps children nearer their parents
    double probability = 0.9;   // chance that a pair is recombined at all
    double gene_probability = 0.5;  // chance per gene, given recombination
};

// Bounded SBX per gene (y1 <= y2 the parents' values, [lo, hi] the bounds):
//   beta = 1 + 2 min(y1 - lo, hi - y2) / (y2 - y1),  alpha = 2 - beta^-(eta+1),
//   betaq = (u alpha)^(1/(eta+1)) if u <= 1/alpha else (1 / (2 - u alpha))^(1/(eta+1)),
// computed separately toward each bound, children clamped to [lo, hi] and
// swapped with probability 1/2. Genes with |y1 - y2| < 1e-14 are copied.
inline std::pair<RealGenome, RealGenome> sbx_crossover(const RealGenome& a, const RealGenome& b,
                                                       const RealBounds& bounds, Rng& rng, SbxOptions o = {}) {
    POLYMATH_CHECK(a.size() == b.size() && a.size() == bounds.size(), "evo::sbx_crossover",
                   "parents have ", a.size(), " and ", b.size(), " genes, bounds ", bounds.size());
    std::pair<RealGenome, RealGenome> kids{a, b};
    if (!rng.bernoulli(o.probability)) return kids;
    const double e1 = 1.0 / (o.eta + 1.0);
    for (std::size_t i = 0; i < a.size(); ++i) {
        if (!rng.bernoulli(o.gene_probability)) continue;
        if (std::abs(a[i] - b[i]) < 1e-14) continue;
        const double y1 = std::min(a[i], b[i]), y2 = std::max(a[i], b[i]);
        const double lo = bounds.lo[i], hi = bounds.hi[i];
        const double u = rng.uniform();
        auto betaq = [&](double beta) {
            const double alpha = 2.0 - std::pow(beta, -(o.eta + 1.0));
            return u <= 1.0 / alpha ? std::pow(u * alpha, e1) : std::pow(1.0 / (2.0 - u * alpha), e1);
        };
        double c1 = 0.5 * ((y1 + y2) - betaq(1.0 + 2.0 * (y1 - lo) / (y2 - y1)) * (y2 - y1));
        double c2 = 0.5 * ((y1 + y2) + betaq(1.0 + 2.0 * (hi - y2) / (y2 - y1)) * (y2 - y1));
        c1 = std::clamp(c1, lo, hi);
        c2 = std::clamp(c2, lo, hi);
        if (rng.bernoulli(0.5)) std::swap(c1, c2);
        kids.first[i] = c1;
        kids.second[i] = c2;
    }
    return kids;
}

}  // namespace polymath::evo
