// Philox4x32-10 against Random123's known-answer vectors, the documented stream
// layout, statistical sanity of uniforms / normals / Bernoulli draws, and the
// Generator's offset bookkeeping.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <set>
#include <thread>
#include <vector>

#include "polymath/core/philox.hpp"

using namespace polymath;

namespace {

constexpr bool equal(const u32x4& a, std::uint32_t x0, std::uint32_t x1, std::uint32_t x2, std::uint32_t x3) {
    return a.v[0] == x0 && a.v[1] == x1 && a.v[2] == x2 && a.v[3] == x3;
}

struct Moments {
    double mean, var;
};
template <class F>
Moments moments(int n, F f) {
    double s = 0, s2 = 0;  // values are O(1): plain sums in double are accurate enough
    for (int i = 0; i < n; ++i) {
        const double x = f(i);
        s += x;
        s2 += x * x;
    }
    const double mean = s / n;
    return {mean, s2 / n - mean * mean};
}

}  // namespace

// Random123 kat_vectors, philox4x32 with 10 rounds.
static_assert(equal(philox4x32_10(u32x4{{0, 0, 0, 0}}, u32x2{{0, 0}}), 0x6627e8d5, 0xe169c58d, 0xbc57ac4c,
                    0x9b00dbd8),
              "Philox4x32-10 must be usable at compile time and match Random123");

TEST_CASE("philox4x32_10 reproduces Random123's known-answer vectors") {
    CHECK(equal(philox4x32_10(u32x4{{0, 0, 0, 0}}, u32x2{{0, 0}}), 0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8));
    CHECK(equal(philox4x32_10(u32x4{{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}}, u32x2{{0xffffffff, 0xffffffff}}),
                0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd));
    CHECK(equal(philox4x32_10(u32x4{{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}}, u32x2{{0xa4093822, 0x299f31d0}}),
                0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1));
}

TEST_CASE("stream word j is word j%4 of the block with counter j/4 and key = seed, both split lo/hi") {
    const std::uint64_t seed = 0x0123456789ABCDEFull;
    for (std::uint64_t j : {std::uint64_t(0), std::uint64_t(1), std::uint64_t(6), std::uint64_t(0x3FFFFFFFFull),
                            std::uint64_t(0xDEADBEEFCAFEull), ~std::uint64_t(0)}) {
        const std::uint64_t c = j / 4;
        const u32x4 b = philox4x32_10(u32x4{{std::uint32_t(c), std::uint32_t(c >> 32), 0, 0}},
                                      u32x2{{0x89ABCDEFu, 0x01234567u}});
        CHECK(philox_u32(seed, j) == b.v[j % 4]);
        CHECK(philox_uniform_float(seed, j) == float(b.v[j % 4] >> 8) * 0x1p-24f);
        CHECK(philox_bernoulli(seed, j, 0.5f) == (philox_uniform_float(seed, j) < 0.5f));
    }
    // The high halves of seed and counter matter.
    CHECK(philox_u32(1, 5) != philox_u32(1 + (std::uint64_t(1) << 32), 5));
    CHECK(philox_u32(1, 5) != philox_u32(1, 5 + (std::uint64_t(4) << 32)));
}

TEST_CASE("uniform double takes 21 + 32 bits from two consecutive words of the double block family") {
    const std::uint64_t seed = 77;
    for (std::uint64_t j : {std::uint64_t(0), std::uint64_t(1), std::uint64_t(2), std::uint64_t(12345),
                            std::uint64_t(1) << 40}) {
        const std::uint64_t c = j / 2;
        const u32x4 b =
            philox4x32_10(u32x4{{std::uint32_t(c), std::uint32_t(c >> 32), 1, 0}}, u32x2{{std::uint32_t(seed), 0}});
        const std::uint32_t hi = b.v[2 * (j % 2)], lo = b.v[2 * (j % 2) + 1];
        const double want = std::ldexp(double((std::uint64_t(hi >> 11) << 32) | lo), -53);
        CHECK(philox_uniform_double(seed, j) == want);
    }
}

TEST_CASE("normals come in Box-Muller pairs: elements 2m and 2m+1 share the radius from word 2m") {
    const std::uint64_t seed = 5;
    for (std::uint64_t m = 0; m < 2000; ++m) {
        const std::uint64_t j = 2 * m;
        const float u1 = float((philox_u32(seed, j) >> 8) + 1u) * 0x1p-24f;
        const float u2 = philox_uniform_float(seed, j + 1);
        const double r2 = -2.0 * std::log(double(u1));
        const float a = philox_normal_float(seed, j), b = philox_normal_float(seed, j + 1);
        REQUIRE(double(a) * a + double(b) * b == doctest::Approx(r2).epsilon(1e-5));
        const double r = std::sqrt(r2), th = 2 * 3.14159265358979323846 * u2;
        REQUIRE(std::fabs(a - r * std::cos(th)) < 1e-5 * (1 + r));  // even element: cosine half
        REQUIRE(std::fabs(b - r * std::sin(th)) < 1e-5 * (1 + r));  // odd element: sine half
        const double da = philox_normal_double(seed, j), db = philox_normal_double(seed, j + 1);
        const double v1 = 1.0 - philox_uniform_double(seed, j);
        REQUIRE(da * da + db * db == doctest::Approx(-2.0 * std::log(v1)).epsilon(1e-12));
    }
}

TEST_CASE("the same seed gives the same stream; different seeds and positions give different ones") {
    std::vector<std::uint32_t> a, b, c;
    for (std::uint64_t j = 0; j < 1000; ++j) {
        a.push_back(philox_u32(42, j));
        b.push_back(philox_u32(42, j));
        c.push_back(philox_u32(43, j));
    }
    CHECK(a == b);
    int same = 0;
    for (int i = 0; i < 1000; ++i) same += a[i] == c[i];
    CHECK(same <= 2);
    CHECK(std::set<std::uint32_t>(a.begin(), a.end()).size() >= 998);
    CHECK(philox_normal_float(42, 17) == philox_normal_float(42, 17));
    CHECK(philox_uniform_double(42, 17) == philox_uniform_double(42, 17));
}

TEST_CASE("uniform floats and doubles lie in [0, 1) and have mean 1/2, variance 1/12, flat histogram") {
    constexpr int n = 1000000;
    const std::uint64_t seed = 2024;
    float fmin = 1, fmax = 0;
    double dmin = 1, dmax = 0;
    std::vector<int> bins(64, 0);
    for (int i = 0; i < n; ++i) {
        const float f = philox_uniform_float(seed, i);
        const double d = philox_uniform_double(seed, i);
        fmin = std::min(fmin, f);
        fmax = std::max(fmax, f);
        dmin = std::min(dmin, d);
        dmax = std::max(dmax, d);
        ++bins[static_cast<int>(f * 64)];
    }
    CHECK(fmin >= 0.0f);
    CHECK(fmax < 1.0f);
    CHECK(dmin >= 0.0);
    CHECK(dmax < 1.0);
    CHECK(fmax > 0.9999f);  // the range is really covered
    CHECK(fmin < 1e-4f);
    // Standard errors: mean 2.9e-4, variance 7.5e-5; the bands are ~7 sigma.
    const auto mf = moments(n, [&](int i) { return double(philox_uniform_float(seed, i)); });
    CHECK(std::fabs(mf.mean - 0.5) < 0.002);
    CHECK(std::fabs(mf.var - 1.0 / 12) < 0.0005);
    const auto md = moments(n, [&](int i) { return philox_uniform_double(seed, i); });
    CHECK(std::fabs(md.mean - 0.5) < 0.002);
    CHECK(std::fabs(md.var - 1.0 / 12) < 0.0005);
    // Chi-square with 63 degrees of freedom: mean 63, sd 11; 150 is far in the tail.
    double chi2 = 0;
    for (int c : bins) chi2 += (c - n / 64.0) * (c - n / 64.0) / (n / 64.0);
    CHECK(chi2 < 150);
    // Each of the four words of a block is uniform on its own.
    for (int lane = 0; lane < 4; ++lane) {
        const auto ml = moments(n / 4, [&](int i) { return double(philox_uniform_float(seed, 4 * std::uint64_t(i) + lane)); });
        CHECK(std::fabs(ml.mean - 0.5) < 0.004);
    }
    // Neighbouring draws are uncorrelated (sd of the estimate 1e-3).
    double cov = 0;
    for (int i = 0; i + 1 < n; ++i)
        cov += (philox_uniform_float(seed, i) - 0.5) * (philox_uniform_float(seed, i + 1) - 0.5);
    CHECK(std::fabs(cov / (n - 1) * 12) < 0.006);
}

TEST_CASE("normals have mean 0, variance 1 and Gaussian tails") {
    constexpr int n = 1000000;
    for (int which = 0; which < 2; ++which) {
        CAPTURE(which);
        auto z = [&](int i) {
            return which == 0 ? double(philox_normal_float(9, std::uint64_t(i))) : philox_normal_double(9, std::uint64_t(i));
        };
        const auto m = moments(n, z);
        // Standard errors: mean 1e-3, variance 1.4e-3.
        CHECK(std::fabs(m.mean) < 0.006);
        CHECK(std::fabs(m.var - 1.0) < 0.01);
        int beyond1 = 0, beyond3 = 0, pos = 0;
        double pair_cov = 0, fourth = 0;
        for (int i = 0; i < n; ++i) {
            const double x = z(i);
            REQUIRE(std::isfinite(x));
            beyond1 += std::fabs(x) > 1;
            beyond3 += std::fabs(x) > 3;
            pos += x > 0;
            fourth += x * x * x * x;
            if (i % 2 == 0) pair_cov += x * z(i + 1);
        }
        CHECK(beyond1 / double(n) == doctest::Approx(0.317311).epsilon(0.01));  // sd 4.7e-4 absolute
        CHECK(beyond3 / double(n) > 0.0022);  // expected 0.0027, sd 5e-5
        CHECK(beyond3 / double(n) < 0.0032);
        CHECK(std::abs(pos - n / 2) < 3500);        // sd 500
        CHECK(fourth / n == doctest::Approx(3.0).epsilon(0.03));  // kurtosis of a Gaussian
        CHECK(std::fabs(pair_cov / (n / 2)) < 0.01);               // cos / sin halves uncorrelated
    }
}

TEST_CASE("bernoulli draws are true with probability p") {
    constexpr int n = 1000000;
    int hits = 0, never = 0, always = 0;
    for (int i = 0; i < n; ++i) {
        hits += philox_bernoulli(3, i, 0.3f);
        never += philox_bernoulli(3, i, 0.0f);
        always += philox_bernoulli(3, i, 1.0f);
    }
    CHECK(std::fabs(hits / double(n) - 0.3) < 0.003);  // sd 4.6e-4
    CHECK(never == 0);
    CHECK(always == n);
}

TEST_CASE("Generator::reserve hands out non-overlapping ranges starting on fresh blocks") {
    Generator g(7);
    CHECK(g.seed() == 7);
    CHECK(g.offset() == 0);
    const std::uint64_t a = g.reserve(5);
    const std::uint64_t b = g.reserve(3);
    const std::uint64_t c = g.reserve(0);
    const std::uint64_t d = g.reserve(8);
    CHECK(a == 0);
    CHECK(b == 8);  // 5 rounded up to 8
    CHECK(c == 12);
    CHECK(d == 12);  // an empty draw uses nothing
    CHECK(g.offset() == 20);
    // Two fills of the same size from one generator differ (disjoint blocks).
    std::set<std::uint64_t> blocks_a, blocks_b;
    for (std::uint64_t i = 0; i < 5; ++i) blocks_a.insert((a + i) / 4);
    for (std::uint64_t i = 0; i < 3; ++i) blocks_b.insert((b + i) / 4);
    for (auto x : blocks_b) CHECK(blocks_a.count(x) == 0);
    CHECK(philox_uniform_float(g.seed(), a) != philox_uniform_float(g.seed(), b));
}

TEST_CASE("manual_seed restarts the stream; copies carry seed and offset") {
    Generator g(1);
    g.reserve(100);
    Generator copy = g;
    CHECK(copy.seed() == 1);
    CHECK(copy.offset() == 100);
    CHECK(copy.reserve(4) == g.reserve(4));
    g.manual_seed(99);
    CHECK(g.seed() == 99);
    CHECK(g.offset() == 0);
    Generator h(99);
    CHECK(h.reserve(10) == g.reserve(10));
    copy = h;
    CHECK(copy.offset() == 12);
    CHECK(copy.seed() == 99);
}

TEST_CASE("default generator starts at seed 0 and manual_seed reseeds it") {
    Generator& g = default_generator();
    CHECK(&g == &default_generator());
    CHECK(g.seed() == 0);  // nothing in this binary reseeds it before this test
    manual_seed(123);
    CHECK(default_generator().seed() == 123);
    CHECK(default_generator().offset() == 0);
    default_generator().reserve(6);
    manual_seed(123);
    CHECK(default_generator().offset() == 0);
    manual_seed(0);
}

TEST_CASE("concurrent reserves on one generator never hand out the same range") {
    Generator g(0);
    constexpr int kThreads = 4, kPer = 5000;
    std::vector<std::vector<std::uint64_t>> got(kThreads);
    std::vector<std::thread> ts;
    for (int t = 0; t < kThreads; ++t)
        ts.emplace_back([&, t] {
            for (int i = 0; i < kPer; ++i) got[t].push_back(g.reserve(3));
        });
    for (auto& t : ts) t.join();
    std::set<std::uint64_t> all;
    for (auto& v : got) all.insert(v.begin(), v.end());
    CHECK(all.size() == std::size_t(kThreads) * kPer);
    CHECK(g.offset() == std::uint64_t(kThreads) * kPer * 4);
    CHECK(*all.rbegin() == g.offset() - 4);
}
