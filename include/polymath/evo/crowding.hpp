// polymath/evo/crowding.hpp — NSGA-II crowding distance (Deb et al. 2002).
//
//   std::vector<double> d = evo::crowding_distance(objs, front);   // d[k] for front[k]
//
// For each objective the members are ordered by (value, index); the first and
// last get +inf, every other member adds (next - previous) / (max - min). An
// objective on which all members are equal (max == min) adds nothing (pagmo
// divides by zero there and returns NaN). Fronts of one or two members are all
// +inf. The (value, index) order makes ties and duplicates deterministic.
#pragma once
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

#include "polymath/core/error.hpp"

namespace polymath::evo {

template <class Rows>
std::vector<double> crowding_distance(const Rows& objs, const std::vector<std::size_t>& front) {
    const std::size_t k = front.size();
    constexpr double inf = std::numeric_limits<double>::infinity();
    std::vector<double> d(k, 0.0);
    if (k == 0) return d;
    for (std::size_t a = 0; a < k; ++a)
        POLYMATH_CHECK(front[a] < objs.size(), "evo::crowding_distance", "front member ", front[a],
                       " out of range for ", objs.size(), " points");
    const std::size_t m = objs[front[0]].size();
    for (std::size_t a = 0; a < k; ++a) {
        const auto& p = objs[front[a]];
        POLYMATH_CHECK(p.size() == m, "evo::crowding_distance", "point ", front[a], " has ", p.size(),
                       " objectives, expected ", m);
        for (std::size_t j = 0; j < m; ++j)
            POLYMATH_CHECK(!std::isnan(p[j]), "evo::crowding_distance", "objective ", j, " of point ", front[a],
                           " is NaN");
    }
    if (k <= 2) return std::vector<double>(k, inf);
    std::vector<std::size_t> ord(k);
    for (std::size_t j = 0; j < m; ++j) {
        std::iota(ord.begin(), ord.end(), std::size_t(0));
        std::sort(ord.begin(), ord.end(), [&](std::size_t a, std::size_t b) {
            const double va = objs[front[a]][j], vb = objs[front[b]][j];
            return va != vb ? va < vb : front[a] < front[b];
        });
        const double lo = objs[front[ord[0]]][j], hi = objs[front[ord[k - 1]]][j];
        d[ord[0]] = inf;
        d[ord[k - 1]] = inf;
        if (!(hi > lo) || !std::isfinite(hi - lo)) continue;  // flat or unbounded objective
        for (std::size_t t = 1; t + 1 < k; ++t)
            d[ord[t]] += (objs[front[ord[t + 1]]][j] - objs[front[ord[t - 1]]][j]) / (hi - lo);
    }
    return d;
}

// All points as one front.
template <class Rows>
std::vector<double> crowding_distance(const Rows& objs) {
    std::vector<std::size_t> all(objs.size());
    std::iota(all.begin(), all.end(), std::size_t(0));
    return crowding_distance(objs, all);
}

}  // namespace polymath::evo
