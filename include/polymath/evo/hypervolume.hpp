// polymath/evo/hypervolume.hpp — exact hypervolume of a point set in 2-D and
// 3-D (minimisation): the Lebesgue measure of the region dominated by the
// points and bounded by the reference point.
//
//   double hv = evo::hypervolume({{1, 3}, {2, 2}, {3, 1}}, {4, 4});   // 6
//
// Points that are not strictly better than the reference in every objective
// bound no volume and are ignored (pagmo instead rejects a reference point
// that some point does not dominate), as are dominated points and duplicates. NaN anywhere, a reference point of the wrong size, or M outside
// {2, 3} throw polymath::Error.
//
// 2-D: sort by the first objective and sweep, O(n log n).
// 3-D: HSO-style slicing along the third objective (While, Hingston, Barone &
// Huband, IEEE TEVC 2006): the slab between consecutive z values contributes
// (z_{k+1} - z_k) x (2-D area of the points with z <= z_k); the 2-D staircase is
// kept sorted by x and updated per point, O(n^2) in all. Exact for any n; the
// populations here have at most a few hundred points per task.
#pragma once
#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

#include "polymath/core/error.hpp"

namespace polymath::evo {

namespace detail {
// Area dominated by a 2-D staircase sorted by x ascending (y then descending),
// bounded by (rx, ry).
inline double staircase_area(const std::vector<std::pair<double, double>>& st, double rx, double ry) {
    double area = 0.0;
    for (std::size_t i = 0; i < st.size(); ++i) {
        const double next_x = i + 1 < st.size() ? st[i + 1].first : rx;
        area += (next_x - st[i].first) * (ry - st[i].second);
    }
    return area;
}

// Inserts (x, y) into a staircase of mutually non-dominated points sorted by
// x ascending; drops it if dominated (or equal), removes the points it dominates.
inline void staircase_insert(std::vector<std::pair<double, double>>& st, double x, double y) {
    // First member with member.x > x; the member before it (if any) has the
    // smallest y among members with member.x <= x.
    auto it = std::upper_bound(st.begin(), st.end(), x,
                               [](double v, const std::pair<double, double>& p) { return v < p.first; });
    if (it != st.begin() && std::prev(it)->second <= y) return;  // weakly dominated
    // Members at or after the insertion point with y >= new y are dominated.
    auto first = std::lower_bound(st.begin(), st.end(), x,
                                  [](const std::pair<double, double>& p, double v) { return p.first < v; });
    auto last = first;
    while (last != st.end() && last->second >= y) ++last;
    first = st.erase(first, last);
    st.insert(first, {x, y});
}
}  // namespace detail

template <class Rows, class Ref>
double hypervolume(const Rows& points, const Ref& ref) {
    const std::size_t m = ref.size();
    POLYMATH_CHECK(m == 2 || m == 3, "evo::hypervolume", "exact hypervolume is implemented for 2 and 3 objectives, ",
                   "got a reference point of size ", m);
    for (std::size_t j = 0; j < m; ++j)
        POLYMATH_CHECK(!std::isnan(ref[j]), "evo::hypervolume", "reference point coordinate ", j, " is NaN");
    std::vector<std::vector<double>> in;  // strictly inside the reference box
    for (std::size_t i = 0; i < points.size(); ++i) {
        const auto& p = points[i];
        POLYMATH_CHECK(p.size() == m, "evo::hypervolume", "point ", i, " has ", p.size(),
                       " objectives but the reference point has ", m);
        bool inside = true;
        for (std::size_t j = 0; j < m; ++j) {
            POLYMATH_CHECK(!std::isnan(p[j]), "evo::hypervolume", "objective ", j, " of point ", i, " is NaN");
            inside = inside && p[j] < ref[j];
        }
        if (inside) in.emplace_back(p.begin(), p.end());
    }
    if (in.empty()) return 0.0;
    std::vector<std::pair<double, double>> st;
    if (m == 2) {
        for (const auto& p : in) detail::staircase_insert(st, p[0], p[1]);
        return detail::staircase_area(st, ref[0], ref[1]);
    }
    std::sort(in.begin(), in.end(), [](const auto& a, const auto& b) { return a[2] < b[2]; });
    double hv = 0.0;
    for (std::size_t k = 0; k < in.size(); ++k) {
        detail::staircase_insert(st, in[k][0], in[k][1]);
        const double z_next = k + 1 < in.size() ? in[k + 1][2] : ref[2];
        if (z_next > in[k][2]) hv += (z_next - in[k][2]) * detail::staircase_area(st, ref[0], ref[1]);
    }
    return hv;
}

// Braced-list convenience: hypervolume({{1, 2}, {2, 1}}, {3, 3}).
inline double hypervolume(const std::vector<std::vector<double>>& points, const std::vector<double>& ref) {
    return hypervolume<std::vector<std::vector<double>>, std::vector<double>>(points, ref);
}

}  // namespace polymath::evo
