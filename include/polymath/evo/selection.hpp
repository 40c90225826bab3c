// polymath/evo/selection.hpp — binary tournament by (rank, crowding) and
// NSGA-II survival (truncation by fronts, the last front by crowding).
#pragma once
#include <algorithm>
#include <cstddef>
#include <numeric>
#include <vector>

#include "polymath/core/error.hpp"
#include "polymath/evo/crowding.hpp"
#include "polymath/evo/pareto.hpp"
#include "polymath/evo/rng.hpp"

namespace polymath::evo {

// True if a beats b in Deb's crowded comparison: lower rank, then larger
// crowding distance.
inline bool crowded_less(std::size_t rank_a, double crowd_a, std::size_t rank_b, double crowd_b) {
    return rank_a != rank_b ? rank_a < rank_b : crowd_a > crowd_b;
}

// Draws two distinct candidates from `pool` (uniformly; one if the pool has
// one member) and returns the better by crowded comparison, the first drawn on
// a tie. rank and crowding are indexed by the pool's values.
inline std::size_t binary_tournament(const std::vector<std::size_t>& pool, const std::vector<std::size_t>& rank,
                                     const std::vector<double>& crowding, Rng& rng) {
    POLYMATH_CHECK(!pool.empty(), "evo::binary_tournament", "empty population (0 candidates)");
    const std::size_t n = pool.size();
    const std::size_t ai = rng.below(n);
    const std::size_t a = pool[ai];
    if (n == 1) return a;
    std::size_t bi = rng.below(n - 1);
    if (bi >= ai) ++bi;  // a different slot, uniformly
    const std::size_t b = pool[bi];
    POLYMATH_CHECK(a < rank.size() && b < rank.size() && a < crowding.size() && b < crowding.size(),
                   "evo::binary_tournament", "candidate index out of range for ", rank.size(), " ranks");
    return crowded_less(rank[b], crowding[b], rank[a], crowding[a]) ? b : a;
}

// Result of NSGA-II survival: who survives, and the rank and crowding
// distance of every candidate as computed on the whole candidate set (the
// values the next generation's tournaments use, as in Deb's code).
struct Survival {
    std::vector<std::size_t> survivors;  // indices into the candidates, best first
    std::vector<std::size_t> rank;
    std::vector<double> crowding;
};

// Keeps `keep` of the candidates: whole fronts while they fit, then the most
// crowded-distant members of the next front (ties by index).
template <class Rows>
Survival nsga2_survival(const Rows& objs, std::size_t keep) {
    POLYMATH_CHECK(keep <= objs.size(), "evo::nsga2_survival", "cannot keep ", keep, " of ", objs.size(),
                   " candidates");
    Survival s;
    const NonDominatedSorting nds = non_dominated_sort(objs);
    s.rank = nds.rank;
    s.crowding.assign(objs.size(), 0.0);
    for (const auto& front : nds.fronts) {
        const std::vector<double> d = crowding_distance(objs, front);
        for (std::size_t k = 0; k < front.size(); ++k) s.crowding[front[k]] = d[k];
        if (s.survivors.size() >= keep) continue;
        if (s.survivors.size() + front.size() <= keep) {
            s.survivors.insert(s.survivors.end(), front.begin(), front.end());
        } else {
            std::vector<std::size_t> ord(front.size());
            std::iota(ord.begin(), ord.end(), std::size_t(0));
            std::stable_sort(ord.begin(), ord.end(), [&](std::size_t a, std::size_t b) { return d[a] > d[b]; });
            for (std::size_t k = 0; s.survivors.size() < keep; ++k) s.survivors.push_back(front[ord[k]]);
        }
    }
    return s;
}

}  // namespace polymath::evo
