// Genomes, crossover, mutation and selection operators.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>
#include <vector>

#include <polymath/evo/crossover.hpp>
#include <polymath/evo/genome.hpp>
#include <polymath/evo/mutation.hpp>
#include <polymath/evo/rng.hpp>
#include <polymath/evo/selection.hpp>
#include <polymath/evo/variation.hpp>

using namespace polymath;

TEST_CASE("Rng draws are a pure function of the generator's seed and offset") {
    Generator a(5), b(5);
    evo::Rng ra(a), rb(b);
    for (int i = 0; i < 100; ++i) CHECK(ra.uniform() == rb.uniform());
    Generator c(5);
    evo::restore_generator(c, a.seed(), a.offset());
    evo::Rng rc(c);
    CHECK(rc.below(1000) == ra.below(1000));
    // below(n) covers [0, n) and nothing else.
    std::set<std::uint64_t> seen;
    for (int i = 0; i < 2000; ++i) seen.insert(ra.below(7));
    CHECK(seen == std::set<std::uint64_t>{0, 1, 2, 3, 4, 5, 6});
}

TEST_CASE("adjacent_mutation only ever moves an index to a neighbouring value of its list") {
    const std::vector<evo::AdjacentChoice<>> space{
        {"lr", {1e-4, 3e-4, 1e-3, 3e-3}}, {"label_smoothing", {0.0, 0.1, 0.2}}, {"dropout", {0.0, 0.1}},
        {"fixed", {0.5}}};
    const auto sizes = evo::choice_sizes(space);
    Generator gen(1);
    evo::Rng rng(gen);
    std::size_t moves = 0;
    for (int trial = 0; trial < 3000; ++trial) {
        evo::IndexGenome g = evo::random_indices(sizes, rng);
        const evo::IndexGenome before = g;
        const std::size_t changed = evo::adjacent_mutation(g, sizes, 0.7, rng);
        std::size_t diff = 0;
        for (std::size_t i = 0; i < g.size(); ++i) {
            CHECK(g[i] >= 0);
            CHECK(g[i] < sizes[i]);
            CHECK(std::abs(g[i] - before[i]) <= 1);  // adjacent or unchanged
            diff += g[i] != before[i];
        }
        CHECK(g[3] == 0);  // a one-value list never changes
        CHECK(diff == changed);
        moves += changed;
    }
    CHECK(moves > 3000);  // rate 0.7 over three mutable genes: about 6300 moves
    // Reflection: at the ends the only neighbour is taken.
    evo::IndexGenome ends{0, 2, 1, 0};
    evo::adjacent_mutation(ends, sizes, 1.0, rng);
    CHECK(ends[0] == 1);
    CHECK(ends[1] == 1);
    CHECK(ends[2] == 0);
    CHECK(ends[3] == 0);
}

TEST_CASE("integer_range and decode map index genomes to values") {
    const std::vector<evo::AdjacentChoice<std::int64_t>> space{evo::integer_range("layers", 2, 5),
                                                               evo::integer_range("heads", 1, 1)};
    CHECK(evo::choice_sizes(space) == std::vector<std::int64_t>{4, 1});
    CHECK(evo::decode(space, {3, 0}) == std::vector<std::int64_t>{5, 1});
    CHECK_THROWS_WITH_AS(evo::decode(space, {4, 0}), doctest::Contains("'layers': index 4 out of range for 4 values"),
                         Error);
    CHECK_THROWS_WITH_AS(evo::integer_range("x", 3, 2), doctest::Contains("needs lo <= hi"), Error);
}

TEST_CASE("adjacent_mutation and AdjacentChoice reject bad indices and rates") {
    Generator gen(1);
    evo::Rng rng(gen);
    evo::IndexGenome g{3};
    CHECK_THROWS_WITH_AS(evo::adjacent_mutation(g, {3}, 0.5, rng), doctest::Contains("index 3 outside its list of 3"),
                         Error);
    CHECK_THROWS_WITH_AS(evo::adjacent_mutation(g, {4}, 1.5, rng), doctest::Contains("rate must be in [0, 1]"), Error);
    const evo::AdjacentChoice<> c{"lr", {0.1, 0.2}};
    CHECK(c.at(1) == 0.2);
    CHECK_THROWS_WITH_AS(c.at(2), doctest::Contains("'lr': index 2 out of range for 2 values"), Error);
}

TEST_CASE("uniform and one-point crossover only exchange genes position by position") {
    Generator gen(2);
    evo::Rng rng(gen);
    const evo::BitGenome a(40, 0), b(40, 1);
    for (int t = 0; t < 50; ++t) {
        auto [c, d] = evo::uniform_crossover(a, b, rng);
        for (std::size_t i = 0; i < a.size(); ++i) CHECK(c[i] + d[i] == 1);  // complementary children
        auto [e, f] = evo::one_point_crossover(a, b, rng);
        // e = a[0:cut] + b[cut:], 1 <= cut <= n-1
        const auto cut = std::find(e.begin(), e.end(), 1) - e.begin();
        CHECK(cut >= 1);
        CHECK(cut <= 39);
        CHECK(std::all_of(e.begin() + cut, e.end(), [](auto x) { return x == 1; }));
        for (std::size_t i = 0; i < a.size(); ++i) CHECK(e[i] + f[i] == 1);
    }
    CHECK_THROWS_WITH_AS(evo::uniform_crossover(a, evo::BitGenome(3), rng), doctest::Contains("40 vs 3"), Error);
}

TEST_CASE("bit-flip mutation flips each bit with the given rate") {
    Generator gen(3);
    evo::Rng rng(gen);
    evo::BitGenome g(20000, 0);
    const std::size_t flipped = evo::bit_flip_mutation(g, 0.1, rng);
    CHECK(flipped == static_cast<std::size_t>(std::count(g.begin(), g.end(), 1)));
    CHECK(flipped > 1800);  // binomial(20000, 0.1): mean 2000, sd 42
    CHECK(flipped < 2200);
    CHECK(evo::bit_flip_mutation(g, 0.0, rng) == 0);
}

TEST_CASE("SBX and polynomial mutation stay inside the bounds and keep equal genes") {
    Generator gen(4);
    evo::Rng rng(gen);
    const evo::RealBounds b(10, -1.0, 2.0);
    for (int t = 0; t < 300; ++t) {
        evo::RealGenome x = evo::random_reals(b, rng), y = evo::random_reals(b, rng);
        y[0] = x[0];
        auto [c, d] = evo::sbx_crossover(x, y, b, rng, {.eta = 15, .probability = 1.0, .gene_probability = 1.0});
        CHECK(c[0] == x[0]);
        CHECK(d[0] == x[0]);
        for (std::size_t i = 0; i < 10; ++i) {
            CHECK(c[i] >= -1.0);
            CHECK(c[i] <= 2.0);
            CHECK(d[i] >= -1.0);
            CHECK(d[i] <= 2.0);
            // Bounded SBX spreads the children to either side of the parents' midpoint.
            const double mid = 0.5 * (x[i] + y[i]);
            CHECK(std::min(c[i], d[i]) <= mid + 1e-12);
            CHECK(std::max(c[i], d[i]) >= mid - 1e-12);
        }
        evo::polynomial_mutation(c, b, rng, {.eta = 20, .rate = 1.0});
        for (double v : c) {
            CHECK(v >= -1.0);
            CHECK(v <= 2.0);
        }
    }
    CHECK_THROWS_WITH_AS(evo::RealBounds({0.0}, {1.0, 2.0}), doctest::Contains("lo has 1 genes but hi has 2"), Error);
}

TEST_CASE("binary tournament prefers lower rank, then larger crowding distance") {
    Generator gen(5);
    evo::Rng rng(gen);
    const double inf = std::numeric_limits<double>::infinity();
    const std::vector<std::size_t> pool{0, 1, 2};
    const std::vector<std::size_t> rank{0, 1, 0};
    const std::vector<double> crowd{0.5, inf, inf};
    std::vector<int> wins(3, 0);
    for (int t = 0; t < 3000; ++t) ++wins[evo::binary_tournament(pool, rank, crowd, rng)];
    // Pairs are distinct: {0,1} -> 0, {0,2} -> 2, {1,2} -> 2. Each pair has probability 1/3.
    CHECK(wins[1] == 0);
    CHECK(wins[2] > 1800);  // expected 2000
    CHECK(wins[0] > 800);   // expected 1000
    CHECK_THROWS_WITH_AS(evo::binary_tournament({}, rank, crowd, rng), doctest::Contains("empty population"), Error);
}

TEST_CASE("nsga2_survival keeps whole fronts, then the least crowded of the split front") {
    // Front 0: (0,3), (1,2), (2,1), (3,0) — crowding: ends inf, middles 4/3 each
    // (objective ranges 3: (2-0)/3 + (3-1)/3). Front 1: (4,4).
    const std::vector<std::vector<double>> p{{4, 4}, {0, 3}, {1, 2}, {2, 1}, {3, 0}};
    auto s = evo::nsga2_survival(p, 3);
    CHECK(s.survivors == std::vector<std::size_t>{1, 4, 2});  // the ends, then the lower index of the tie
    CHECK(s.rank == std::vector<std::size_t>{1, 0, 0, 0, 0});
    CHECK(s.crowding[2] == doctest::Approx(4.0 / 3));
    s = evo::nsga2_survival(p, 5);
    CHECK(s.survivors == std::vector<std::size_t>{1, 2, 3, 4, 0});
}
