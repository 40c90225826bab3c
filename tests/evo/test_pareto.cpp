// Non-dominated sorting, crowding distance and hypervolume against
// independent brute-force references and hand-computed values.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include <polymath/evo/crowding.hpp>
#include <polymath/evo/hypervolume.hpp>
#include <polymath/evo/pareto.hpp>
#include <polymath/evo/rng.hpp>

using namespace polymath;
using Rows = std::vector<std::vector<double>>;

namespace {

// Peeling reference: front r = the points no remaining point dominates.
std::vector<std::size_t> brute_ranks(const Rows& p) {
    const std::size_t n = p.size();
    std::vector<std::size_t> rank(n, SIZE_MAX);
    std::size_t left = n, r = 0;
    while (left > 0) {
        std::vector<std::size_t> now;
        for (std::size_t i = 0; i < n; ++i) {
            if (rank[i] != SIZE_MAX) continue;
            bool dominated = false;
            for (std::size_t j = 0; j < n && !dominated; ++j) {
                if (rank[j] != SIZE_MAX || j == i) continue;
                bool le = true, lt = false;
                for (std::size_t k = 0; k < p[i].size(); ++k) {
                    le = le && p[j][k] <= p[i][k];
                    lt = lt || p[j][k] < p[i][k];
                }
                dominated = le && lt;
            }
            if (!dominated) now.push_back(i);
        }
        for (auto i : now) rank[i] = r;
        left -= now.size();
        ++r;
    }
    return rank;
}

// Crowding from the definition: neighbours in (value, index) order found by
// scanning, not by sorting.
std::vector<double> brute_crowding(const Rows& p, const std::vector<std::size_t>& front) {
    const double inf = std::numeric_limits<double>::infinity();
    const std::size_t k = front.size();
    std::vector<double> d(k, 0.0);
    if (k <= 2) return std::vector<double>(k, inf);
    for (std::size_t j = 0; j < p[front[0]].size(); ++j) {
        auto key_less = [&](std::size_t a, std::size_t b) {  // positions in front
            const double va = p[front[a]][j], vb = p[front[b]][j];
            return va < vb || (va == vb && front[a] < front[b]);
        };
        double lo = inf, hi = -inf;
        for (std::size_t a = 0; a < k; ++a) {
            lo = std::min(lo, p[front[a]][j]);
            hi = std::max(hi, p[front[a]][j]);
        }
        for (std::size_t a = 0; a < k; ++a) {
            std::size_t prev = SIZE_MAX, next = SIZE_MAX;
            for (std::size_t b = 0; b < k; ++b) {
                if (key_less(b, a) && (prev == SIZE_MAX || key_less(prev, b))) prev = b;
                if (key_less(a, b) && (next == SIZE_MAX || key_less(b, next))) next = b;
            }
            if (prev == SIZE_MAX || next == SIZE_MAX) d[a] = inf;
            else if (hi > lo) d[a] += (p[front[next]][j] - p[front[prev]][j]) / (hi - lo);
        }
    }
    return d;
}

// Inclusion-exclusion over all subsets: the volume of a union of boxes
// [p, ref] is the alternating sum of the volumes of their intersections.
double brute_hypervolume(const Rows& p, const std::vector<double>& ref) {
    const std::size_t n = p.size(), m = ref.size();
    double total = 0;
    for (std::size_t s = 1; s < (std::size_t(1) << n); ++s) {
        double vol = 1;
        for (std::size_t j = 0; j < m; ++j) {
            double lo = -std::numeric_limits<double>::infinity();
            for (std::size_t i = 0; i < n; ++i)
                if (s >> i & 1) lo = std::max(lo, p[i][j]);
            vol *= std::max(0.0, ref[j] - lo);
        }
        total += (__builtin_popcountll(s) % 2 ? 1 : -1) * vol;
    }
    return total;
}

Rows random_points(std::size_t n, std::size_t m, int levels, evo::Rng& rng) {
    Rows p(n, std::vector<double>(m));
    for (auto& row : p)
        for (auto& x : row) x = levels > 0 ? double(rng.below(levels)) : rng.uniform();
    return p;
}

}  // namespace

TEST_CASE("non_dominated_sort matches a brute-force peeling reference, with ties and duplicates") {
    Generator gen(7);
    evo::Rng rng(gen);
    for (std::size_t m : {1, 2, 3, 4, 5}) {
        for (int levels : {0, 3, 6}) {  // 0: continuous; small integer grids force ties and duplicates
            for (std::size_t n : {1, 2, 17, 150}) {
                Rows p = random_points(n, m, levels, rng);
                if (n > 4) p[n - 1] = p[0];  // an exact duplicate, always
                const auto s = evo::non_dominated_sort(p);
                const auto ref = brute_ranks(p);
                CHECK(s.rank == ref);
                std::size_t total = 0;
                for (std::size_t r = 0; r < s.fronts.size(); ++r) {
                    CHECK(std::is_sorted(s.fronts[r].begin(), s.fronts[r].end()));
                    for (auto i : s.fronts[r]) CHECK(ref[i] == r);
                    total += s.fronts[r].size();
                }
                CHECK(total == n);
                if (n > 4) CHECK(s.rank[n - 1] == s.rank[0]);  // duplicates share a front
            }
        }
    }
}

TEST_CASE("non_dominated_sort: hand example with a duplicate pair") {
    // (1,1) dominates all; (1,2) and (2,1) are next; the duplicates (2,2) are third; (3,3) last.
    const Rows p{{2, 2}, {1, 2}, {3, 3}, {1, 1}, {2, 1}, {2, 2}};
    const auto s = evo::non_dominated_sort(p);
    REQUIRE(s.fronts.size() == 4);
    CHECK(s.fronts[0] == std::vector<std::size_t>{3});
    CHECK(s.fronts[1] == std::vector<std::size_t>{1, 4});
    CHECK(s.fronts[2] == std::vector<std::size_t>{0, 5});
    CHECK(s.fronts[3] == std::vector<std::size_t>{2});
}

TEST_CASE("non_dominated_sort rejects empty populations, NaN objectives and ragged rows") {
    CHECK_THROWS_WITH_AS(evo::non_dominated_sort(Rows{}), doctest::Contains("empty population"), Error);
    CHECK_THROWS_WITH_AS(evo::non_dominated_sort(Rows{{1, 2}, {3, std::nan("")}}),
                         doctest::Contains("objective 1 of point 1 is NaN"), Error);
    CHECK_THROWS_WITH_AS(evo::non_dominated_sort(Rows{{1, 2}, {3}}), doctest::Contains("point 1 has 1 objectives"),
                         Error);
}

TEST_CASE("crowding_distance matches a definition-based reference on every front, ties included") {
    Generator gen(11);
    evo::Rng rng(gen);
    for (std::size_t m : {2, 3}) {
        for (int levels : {0, 4}) {
            Rows p = random_points(120, m, levels, rng);
            p[5] = p[6];
            const auto s = evo::non_dominated_sort(p);
            for (const auto& front : s.fronts) {
                const auto d = evo::crowding_distance(p, front);
                const auto ref = brute_crowding(p, front);
                REQUIRE(d.size() == ref.size());
                for (std::size_t k = 0; k < d.size(); ++k) {
                    if (std::isinf(ref[k])) CHECK(std::isinf(d[k]));
                    else CHECK(d[k] == doctest::Approx(ref[k]).epsilon(1e-12));
                }
            }
        }
    }
}

TEST_CASE("crowding_distance: hand example; boundaries are +inf, flat objectives add nothing") {
    // Objective 0: 0, 1, 3, 4 (range 4); objective 1: 4, 2, 1, 0 (range 4).
    const Rows p{{0, 4}, {1, 2}, {3, 1}, {4, 0}};
    const auto d = evo::crowding_distance(p);
    CHECK(std::isinf(d[0]));
    CHECK(std::isinf(d[3]));
    CHECK(d[1] == doctest::Approx((3.0 - 0.0) / 4 + (4.0 - 1.0) / 4));  // 1.5
    CHECK(d[2] == doctest::Approx((4.0 - 1.0) / 4 + (2.0 - 0.0) / 4));  // 1.25
    const Rows flat{{1, 0}, {1, 1}, {1, 2}};  // objective 0 constant
    const auto f = evo::crowding_distance(flat);
    CHECK(f[1] == doctest::Approx(1.0));      // only objective 1: (2 - 0) / 2
}

TEST_CASE("hypervolume 2-D: hand-computed values; points at or beyond the reference add nothing") {
    // Staircase (1,3), (2,2), (3,1) under (4,4): 1x1 + 1x2 + 1x3 = 6.
    CHECK(evo::hypervolume({{1, 3}, {2, 2}, {3, 1}}, {4, 4}) == 6.0);
    // A dominated point, a duplicate, one on the reference boundary, one outside.
    CHECK(evo::hypervolume({{1, 3}, {2, 2}, {3, 1}, {3, 3}, {2, 2}, {4, 0}, {5, -1}}, {4, 4}) == 6.0);
    CHECK(evo::hypervolume({{0, 0}}, {2, 3}) == 6.0);
    CHECK(evo::hypervolume({{5, 5}}, {4, 4}) == 0.0);
    CHECK(evo::hypervolume(Rows{}, {1, 1}) == 0.0);
}

TEST_CASE("hypervolume 3-D: hand-computed values") {
    // The three unit-offset boxes fill [0,2]^3 except [0,1]^3: 8 - 1 = 7.
    CHECK(evo::hypervolume({{0, 0, 1}, {0, 1, 0}, {1, 0, 0}}, {2, 2, 2}) == 7.0);
    // (0,0,3) lies beyond the reference in z: ignored.
    CHECK(evo::hypervolume({{0, 0, 1}, {0, 1, 0}, {1, 0, 0}, {0, 0, 3}}, {2, 2, 2}) == 7.0);
    CHECK(evo::hypervolume({{1, 1, 1}}, {2, 3, 4}) == 6.0);
    // (1,1,1) and (0.5,1.5,0.5) under (2,2,2): boxes of 1 and 1.5 x 0.5 x 1.5 = 1.125,
    // overlapping in [1,2]x[1.5,2]x[1,2] = 0.5 -> 1 + 1.125 - 0.5 = 1.625.
    CHECK(evo::hypervolume({{1, 1, 1}, {0.5, 1.5, 0.5}}, {2, 2, 2}) == doctest::Approx(1.625));
}

TEST_CASE("hypervolume equals inclusion-exclusion on random sets in 2-D and 3-D") {
    Generator gen(3);
    evo::Rng rng(gen);
    for (std::size_t m : {2, 3}) {
        for (int trial = 0; trial < 20; ++trial) {
            Rows p = random_points(9, m, trial % 2 ? 5 : 0, rng);
            std::vector<double> ref(m, trial % 2 ? 4.0 : 0.9);  // some points fall outside
            CHECK(evo::hypervolume(p, ref) == doctest::Approx(brute_hypervolume(p, ref)).epsilon(1e-12));
        }
    }
}

TEST_CASE("hypervolume rejects NaN, mismatched sizes and unsupported dimensions") {
    CHECK_THROWS_WITH_AS(evo::hypervolume({{1, std::nan("")}}, {2, 2}), doctest::Contains("NaN"), Error);
    CHECK_THROWS_WITH_AS(evo::hypervolume({{1, 1, 1}}, {2, 2}), doctest::Contains("point 0 has 3 objectives"), Error);
    CHECK_THROWS_WITH_AS(evo::hypervolume({{1, 1, 1, 1}}, {2, 2, 2, 2}), doctest::Contains("got a reference point of size 4"),
                         Error);
}
