// polymath/evo/pareto.hpp — Pareto dominance and non-dominated sorting
// (minimisation).
//
//   auto s = evo::non_dominated_sort(objs);   // objs: vector<vector<double>>, n x M
//   s.fronts[0]                               // indices of the non-dominated points
//   s.rank[i]                                 // front of point i (0 = best)
//
// The result is the same as Deb et al.'s fast non-dominated sort (NSGA-II,
// 2002) and pagmo::fast_non_dominated_sorting: a point's rank is the length of
// the longest chain of points dominating it. Duplicated points do not dominate
// each other and share a front. Each front lists its indices in increasing
// order.
//
// Algorithm: ENS-BS (Zhang, Tian, Cheng & Jin, "An efficient approach to
// non-dominated sorting for evolutionary multi-objective optimization", IEEE
// TEVC 2015). Points are sorted lexicographically, so every point comes after
// all points that dominate it; each point then goes to the first front none
// of whose members dominates it, found by binary search (if front k dominates
// p, so do all fronts before k, by transitivity). A front check scans its
// members newest first; with M = 2 only the newest member needs checking (it
// has the smallest second objective in its front), so M = 2 is O(N log N) and
// M >= 3 is O(M N^2) in the worst case but far below Deb's O(M N^2) bound in
// practice, with O(N) memory instead of Deb's dominance lists.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <numeric>
#include <vector>

#include "polymath/core/error.hpp"

namespace polymath::evo {

// True if a dominates b: a <= b everywhere and a < b somewhere (minimisation).
template <class A, class B>
bool dominates(const A& a, const B& b) {
    bool strictly = false;
    for (std::size_t j = 0; j < a.size(); ++j) {
        if (a[j] > b[j]) return false;
        if (a[j] < b[j]) strictly = true;
    }
    return strictly;
}

struct NonDominatedSorting {
    std::vector<std::vector<std::size_t>> fronts;
    std::vector<std::size_t> rank;
};

namespace detail {

// Rejects empty inputs, ragged rows and NaNs, naming the point and objective.
inline void check_objectives(const double* f, std::size_t n, std::size_t m, const char* op) {
    POLYMATH_CHECK(n > 0, op, "empty population (0 points)");
    POLYMATH_CHECK(m > 0, op, "points have 0 objectives");
    for (std::size_t i = 0; i < n; ++i)
        for (std::size_t j = 0; j < m; ++j)
            POLYMATH_CHECK(!std::isnan(f[i * m + j]), op, "objective ", j, " of point ", i, " is NaN");
}

template <class Rows>
std::vector<double> flatten_objectives(const Rows& rows, std::size_t& m, const char* op) {
    POLYMATH_CHECK(!rows.empty(), op, "empty population (0 points)");
    m = rows[0].size();
    std::vector<double> flat;
    flat.reserve(rows.size() * m);
    for (std::size_t i = 0; i < rows.size(); ++i) {
        POLYMATH_CHECK(rows[i].size() == m, op, "point ", i, " has ", rows[i].size(), " objectives, point 0 has ", m);
        flat.insert(flat.end(), rows[i].begin(), rows[i].end());
    }
    return flat;
}

}  // namespace detail

// n points of m objectives, row-major in f.
inline NonDominatedSorting non_dominated_sort(const double* f, std::size_t n, std::size_t m) {
    detail::check_objectives(f, n, m, "evo::non_dominated_sort");
    // Lexicographic order (ties broken by index, so the order is total).
    std::vector<std::size_t> order(n);
    std::iota(order.begin(), order.end(), std::size_t(0));
    std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
        const double* pa = f + a * m;
        const double* pb = f + b * m;
        for (std::size_t j = 0; j < m; ++j)
            if (pa[j] != pb[j]) return pa[j] < pb[j];
        return a < b;
    });
    // Sorted copy: front scans then walk memory forward-ish instead of jumping.
    std::vector<double> s(n * m);
    for (std::size_t k = 0; k < n; ++k) std::copy_n(f + order[k] * m, m, s.data() + k * m);

    std::vector<std::vector<std::size_t>> fronts;  // positions in sorted order
    std::vector<std::size_t> rank(n);
    if (m == 1) {
        // Rank = number of distinct smaller values.
        std::size_t r = 0;
        for (std::size_t k = 0; k < n; ++k) {
            if (k > 0 && s[k] != s[k - 1]) ++r;
            if (r == fronts.size()) fronts.emplace_back();
            fronts[r].push_back(k);
        }
    } else if (m == 2) {
        // Front k is summarised by its newest member (x, y): it dominates p iff
        // y < p.y, or y == p.y and x < p.x (members of one front with equal y
        // have equal x, so the newest is as good a witness as any).
        std::vector<double> fx, fy;
        for (std::size_t k = 0; k < n; ++k) {
            const double x = s[2 * k], y = s[2 * k + 1];
            std::size_t lo = 0, hi = fronts.size();
            while (lo < hi) {
                const std::size_t mid = (lo + hi) / 2;
                const bool dom = fy[mid] < y || (fy[mid] == y && fx[mid] < x);
                if (dom) lo = mid + 1;
                else hi = mid;
            }
            if (lo == fronts.size()) {
                fronts.emplace_back();
                fx.push_back(x);
                fy.push_back(y);
            }
            fronts[lo].push_back(k);
            fx[lo] = x;
            fy[lo] = y;
        }
    } else {
        // q precedes p lexicographically, so q[0] <= p[0]: q dominates p iff
        // q[j] <= p[j] for j >= 1 and q != p.
        auto front_dominates = [&](const std::vector<std::size_t>& fr, const double* p) {
            for (auto it = fr.rbegin(); it != fr.rend(); ++it) {
                const double* q = s.data() + *it * m;
                bool le = true, eq = q[0] == p[0];
                for (std::size_t j = 1; j < m; ++j) {
                    if (q[j] > p[j]) {
                        le = false;
                        break;
                    }
                    eq = eq && q[j] == p[j];
                }
                if (le && !eq) return true;
            }
            return false;
        };
        for (std::size_t k = 0; k < n; ++k) {
            const double* p = s.data() + k * m;
            std::size_t lo = 0, hi = fronts.size();
            while (lo < hi) {
                const std::size_t mid = (lo + hi) / 2;
                if (front_dominates(fronts[mid], p)) lo = mid + 1;
                else hi = mid;
            }
            if (lo == fronts.size()) fronts.emplace_back();
            fronts[lo].push_back(k);
        }
    }
    NonDominatedSorting out;
    out.fronts.resize(fronts.size());
    for (std::size_t r = 0; r < fronts.size(); ++r) {
        auto& dst = out.fronts[r];
        dst.reserve(fronts[r].size());
        for (std::size_t k : fronts[r]) {
            dst.push_back(order[k]);
            rank[order[k]] = r;
        }
        std::sort(dst.begin(), dst.end());
    }
    out.rank = std::move(rank);
    return out;
}

// Rows: any random-access range of equally sized rows of doubles
// (std::vector<std::vector<double>>, std::vector<std::array<double, M>>, ...).
template <class Rows>
NonDominatedSorting non_dominated_sort(const Rows& rows) {
    std::size_t m = 0;
    const std::vector<double> flat = detail::flatten_objectives(rows, m, "evo::non_dominated_sort");
    return non_dominated_sort(flat.data(), rows.size(), m);
}

}  // namespace polymath::evo
