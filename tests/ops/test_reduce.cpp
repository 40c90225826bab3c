// Reductions (ops/reduce.hpp, autograd/reduce.hpp): sum, mean, amax / max,
// amin / min, var, argmax and sum_to. Forward values against naive
// double-precision loops over single axes, axis blocks, non-block axis sets,
// all axes, keepdim both ways, negative axes, non-contiguous inputs and large
// tensors that take every kernel path (row reductions split over rows, long
// rows split into chunks, leading-axis accumulation); NaN propagation; argmax
// ties; gradients with grad_check; error messages.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <set>
#include <string>
#include <vector>

#include "polymath/polymath.hpp"
#include "ops_test_util.hpp"

using namespace polymath;
using namespace polymath::test;
using doctest::Contains;

namespace {

using Axes = std::vector<std::int64_t>;

// Naive reduction in double, written independently of ops/reduce.hpp: every
// element of x (read with at(), any layout) goes to the output slot that
// drops the reduced axes. `axes` are non-negative; empty means all.
struct Naive {
    Shape shape;                           // result shape
    std::vector<std::vector<double>> bins;  // the elements reduced into each output
};
template <class T>
Naive naive_bins(const Tensor<T>& x, Axes axes, bool keepdim) {
    if (axes.empty())
        for (int d = 0; d < x.dim(); ++d) axes.push_back(d);
    const std::set<std::int64_t> red(axes.begin(), axes.end());
    Naive r;
    for (int d = 0; d < x.dim(); ++d) {
        if (!red.count(d)) r.shape.push_back(x.shape()[d]);
        else if (keepdim) r.shape.push_back(1);
    }
    r.bins.resize(std::size_t(numel_of(r.shape)));
    for (const auto& m : all_indices(x.shape())) {
        std::int64_t lin = 0;
        for (int d = 0; d < x.dim(); ++d) {
            if (red.count(d)) continue;  // a kept size-1 axis contributes index 0
            lin = lin * x.shape()[d] + m[std::size_t(d)];
        }
        r.bins[std::size_t(lin)].push_back(double(x.at(m)));
    }
    return r;
}
std::vector<double> each_bin(const Naive& n, const std::function<double(const std::vector<double>&)>& f) {
    std::vector<double> out;
    for (const auto& b : n.bins) out.push_back(f(b));
    return out;
}
// Reference sums in long double, so that their own rounding (n eps in double
// for a million terms) stays far below the tolerance of the sums under test.
double bin_sum(const std::vector<double>& b) {
    long double s = 0;
    for (double v : b) s += v;
    return double(s);
}
double bin_abs_sum(const std::vector<double>& b) {
    double s = 0;
    for (double v : b) s += std::fabs(v);
    return s;
}
double bin_mean(const std::vector<double>& b) { return bin_sum(b) / double(b.size()); }
double bin_max(const std::vector<double>& b) {
    double m = -std::numeric_limits<double>::infinity();
    for (double v : b) {
        if (std::isnan(v)) return v;
        m = std::max(m, v);
    }
    return m;
}
double bin_min(const std::vector<double>& b) {
    double m = std::numeric_limits<double>::infinity();
    for (double v : b) {
        if (std::isnan(v)) return v;
        m = std::min(m, v);
    }
    return m;
}
double bin_var(const std::vector<double>& b, int correction) {
    long double mu = 0;
    for (double v : b) mu += v;
    mu /= (long double)(b.size());
    long double s = 0;
    for (double v : b) s += (v - mu) * (v - mu);
    return double(s / (long double)(std::int64_t(b.size()) - correction));
}
double bin_argmax(const std::vector<double>& b) {
    std::size_t best = 0;
    for (std::size_t i = 1; i < b.size(); ++i) {
        if (std::isnan(b[best])) break;
        if (std::isnan(b[i]) || b[i] > b[best]) best = i;
    }
    return double(best);
}

// Tolerance of a sum in T: rel * (sum of |x|) per output (the rounding error
// of any summation order is bounded by a multiple of that).
template <class T>
std::vector<double> sum_tol(const Naive& n, double scale = 1) {
    const double rel = (std::is_same_v<T, float> ? 2e-6 : 1e-14) * scale;
    std::vector<double> t;
    for (const auto& b : n.bins) t.push_back(rel * bin_abs_sum(b) + 1e-30);
    return t;
}
std::vector<double> zeros_tol(const Naive& n) { return std::vector<double>(n.bins.size(), 0.0); }
template <class T>
std::vector<double> mean_tol(const Naive& n) {
    std::vector<double> t = sum_tol<T>(n);
    for (std::size_t i = 0; i < t.size(); ++i) t[i] /= double(n.bins[i].size());
    return t;
}

// Checks sum, mean, amax, amin (and var when every bin has > 1 element) of x over axes.
template <class T>
void check_reductions(const Tensor<T>& x, const Axes& axes, const Axes& naive_axes) {
    for (bool keepdim : {false, true}) {
        CAPTURE(keepdim);
        const Naive n = naive_bins(x, naive_axes, keepdim);
        const Tensor<T> s = ops::sum(x, axes, keepdim);
        REQUIRE(s.shape() == n.shape);
        CHECK_CLOSE(s, each_bin(n, bin_sum), sum_tol<T>(n));
        const Tensor<T> m = ops::mean(x, axes, keepdim);
        CHECK(m.shape() == n.shape);
        CHECK_CLOSE(m, each_bin(n, bin_mean), mean_tol<T>(n));
        CHECK_CLOSE(ops::amax(x, axes, keepdim), each_bin(n, bin_max), zeros_tol(n));
        CHECK_CLOSE(ops::amin(x, axes, keepdim), each_bin(n, bin_min), zeros_tol(n));
        if (!n.bins.empty() && n.bins[0].size() > 1)
            for (int c : {0, 1}) {
                CAPTURE(c);
                const Tensor<T> v = ops::var(x, axes, c, keepdim);
                CHECK(v.shape() == n.shape);
                // Var of values in [-1, 1]: relative to the second moment.
                std::vector<double> tol;
                for (const auto& b : n.bins) tol.push_back((std::is_same_v<T, float> ? 1e-5 : 1e-13) * (1 + bin_var(b, c)));
                CHECK_CLOSE(v, each_bin(n, [c](const std::vector<double>& b) { return bin_var(b, c); }), tol);
            }
    }
}

std::string axes_str(const Axes& a) {
    std::string s = "{";
    for (auto v : a) s += std::to_string(v) + ",";
    return s + "}";
}

}  // namespace

// ============================================================================
// Forward values
// ============================================================================

TEST_CASE_TEMPLATE("sum, mean, amax, amin and var over each single axis match naive loops", T, float, double) {
    const Tensor<T> x = uniform<T>({3, 4, 5}, -1, 1, 1);
    for (std::int64_t a : {0, 1, 2, -1, -2, -3}) {
        CAPTURE(a);
        check_reductions(x, {a}, {a < 0 ? a + 3 : a});
    }
    const Tensor<T> m = uniform<T>({7, 33}, -1, 1, 2);  // rows of 33: packet body + tail
    check_reductions(m, {0}, {0});
    check_reductions(m, {1}, {1});
    check_reductions(m, {-1}, {1});
}

TEST_CASE_TEMPLATE("reductions over axis blocks, non-block axis sets and all axes match naive loops", T, float, double) {
    const Tensor<T> x = uniform<T>({3, 4, 5, 2}, -1, 1, 3);
    const std::vector<std::pair<Axes, Axes>> sets{
        {{1, 2}, {1, 2}},       {{0, 1}, {0, 1}},    {{2, 3}, {2, 3}},       {{0, 2}, {0, 2}},
        {{0, 3}, {0, 3}},       {{1, 3}, {1, 3}},    {{0, 2, 3}, {0, 2, 3}}, {{2, 0}, {0, 2}},
        {{-1, 0}, {0, 3}},      {{-3, -2}, {1, 2}},  {{}, {0, 1, 2, 3}},     {{0, 1, 2, 3}, {0, 1, 2, 3}},
        {{3, 1, 0}, {0, 1, 3}},
    };
    for (const auto& [axes, naive] : sets) {
        const std::string a = axes_str(axes);
        CAPTURE(a);
        check_reductions(x, axes, naive);
    }
    // keepdim shapes spelled out.
    CHECK(ops::sum(x, {0, 2}, true).shape() == Shape{1, 4, 1, 2});
    CHECK(ops::sum(x, {0, 2}, false).shape() == Shape{4, 2});
    CHECK(ops::sum(x, {}, true).shape() == Shape{1, 1, 1, 1});
    CHECK(ops::sum(x).shape() == Shape{});
}

TEST_CASE_TEMPLATE("reductions of non-contiguous inputs match naive loops", T, float, double) {
    const Tensor<T> base = uniform<T>({4, 6, 5}, -1, 1, 4);
    const Tensor<T> perm = base.permute({2, 0, 1});             // [5, 4, 6]
    const Tensor<T> strided = base.slice(1, 1, 6, 2);           // [4, 3, 5]
    const Tensor<T> tr = uniform<T>({9, 17}, -1, 1, 5).t();     // [17, 9]
    const Tensor<T> bcast = Tensor<T>{T(1), T(-2), T(3)}.unsqueeze(0).expand({4, 3});  // stride 0
    for (const Tensor<T>& x : {perm, strided}) {
        REQUIRE(!x.is_contiguous());
        for (const Axes& a : {Axes{0}, Axes{1}, Axes{2}, Axes{0, 2}, Axes{1, 2}, Axes{}}) {
            const std::string as = axes_str(a);
            CAPTURE(as);
            check_reductions(x, a, a);
        }
    }
    check_reductions(tr, {0}, {0});
    check_reductions(tr, {1}, {1});
    check_reductions(bcast, {0}, {0});
    check_reductions(bcast, {1}, {1});
}

TEST_CASE_TEMPLATE("large reductions over each axis and of everything match double-precision loops", T, float, double) {
    const Tensor<T> x = uniform<T>({4096, 512}, -1, 1, 6);
    const std::vector<double> xv = values(x);
    // Over axis 0 (leading-axis accumulation) and axis 1 (rows split over threads).
    for (int axis : {0, 1}) {
        CAPTURE(axis);
        const std::int64_t rows = 4096, cols = 512, nout = axis == 0 ? cols : rows;
        std::vector<long double> s(std::size_t(nout), 0.0);
        std::vector<double> a(std::size_t(nout), 0.0), mx(std::size_t(nout), -1e300), mn(std::size_t(nout), 1e300);
        for (std::int64_t r = 0; r < rows; ++r)
            for (std::int64_t c = 0; c < cols; ++c) {
                const double v = xv[std::size_t(r * cols + c)];
                const std::size_t o = std::size_t(axis == 0 ? c : r);
                s[o] += v;
                a[o] += std::fabs(v);
                mx[o] = std::max(mx[o], v);
                mn[o] = std::min(mn[o], v);
            }
        std::vector<double> tol, mtol, zero(std::size_t(nout), 0.0);
        const double n = double(axis == 0 ? rows : cols);
        for (double v : a) {
            tol.push_back((std::is_same_v<T, float> ? 2e-6 : 1e-14) * v);
            mtol.push_back(tol.back() / n);
        }
        std::vector<double> sum, mean;
        for (long double v : s) {
            sum.push_back(double(v));
            mean.push_back(double(v / (long double)n));
        }
        CHECK_CLOSE(ops::sum(x, {axis}), sum, tol);
        CHECK_CLOSE(ops::mean(x, {axis}), mean, mtol);
        CHECK_CLOSE(ops::amax(x, {axis}), mx, zero);
        CHECK_CLOSE(ops::amin(x, {axis}), mn, zero);
        // var against the two-pass formula in double.
        std::vector<long double> ss(std::size_t(nout), 0.0);
        for (std::int64_t r = 0; r < rows; ++r)
            for (std::int64_t c = 0; c < cols; ++c) {
                const std::size_t o = std::size_t(axis == 0 ? c : r);
                const long double d = xv[std::size_t(r * cols + c)] - (s[o] / (long double)n);
                ss[o] += d * d;
            }
        std::vector<double> var, vtol;
        for (long double v : ss) {
            var.push_back(double(v / (long double)(n - 1)));
            vtol.push_back((std::is_same_v<T, float> ? 1e-5 : 1e-12) * var.back());
        }
        CHECK_CLOSE(ops::var(x, {axis}), var, vtol);
    }
    // Full sum / mean / max of 1M elements (one row split into chunks).
    const Tensor<T> flat = uniform<T>({1 << 20}, 0, 1, 7);
    long double s = 0;
    double a = 0, mx = -1, mn = 2;
    for (double v : values(flat)) {
        s += v;
        a += std::fabs(v);
        mx = std::max(mx, v);
        mn = std::min(mn, v);
    }
    const double rel = std::is_same_v<T, float> ? 2e-6 : 1e-14;
    const double got_sum = double(ops::sum(flat).item()), got_mean = double(ops::mean(flat).item());
    CAPTURE(got_sum);
    CHECK(std::fabs(got_sum - double(s)) <= rel * a);
    CHECK(std::fabs(got_mean - double(s / (1 << 20))) <= rel * a / double(1 << 20));
    CHECK(double(ops::amax(flat).item()) == mx);
    CHECK(double(ops::amin(flat).item()) == mn);
    CHECK(std::fabs(double(ops::sum(x).item()) - bin_sum(xv)) <= rel * bin_abs_sum(xv));
}

TEST_CASE_TEMPLATE("few long rows and a reduced middle axis take their own paths and stay exact", T, float, double) {
    // 3 rows of 300k: fewer rows than threads * 4, so each row is split into chunks.
    const Tensor<T> rows = uniform<T>({3, 300000}, -1, 1, 8);
    check_reductions(rows, {1}, {1});
    // [8, 1000, 64] over axis 1: leading-axis accumulation per outer index, threaded.
    const Tensor<T> mid = uniform<T>({8, 1000, 64}, -1, 1, 9);
    const Naive n = naive_bins(mid, {1}, false);
    CHECK_CLOSE(ops::sum(mid, {1}), each_bin(n, bin_sum), sum_tol<T>(n));
    CHECK_CLOSE(ops::amax(mid, {1}), each_bin(n, bin_max), zeros_tol(n));
    CHECK_CLOSE(ops::amin(mid, {-2}, true), each_bin(naive_bins(mid, {1}, true), bin_min), zeros_tol(n));
    // Non-block {0, 2} of the same tensor (permuted copy, then rows).
    const Naive nb = naive_bins(mid, {0, 2}, true);
    CHECK_CLOSE(ops::sum(mid, {0, 2}, true), each_bin(nb, bin_sum), sum_tol<T>(nb));
    CHECK_CLOSE(ops::amax(mid, {2, 0}, true), each_bin(nb, bin_max), zeros_tol(nb));
}

TEST_CASE_TEMPLATE("max and min propagate NaN on every kernel path", T, float, double) {
    const T nan = std::numeric_limits<T>::quiet_NaN();
    // Row reductions: NaN first, in the packet body, in the tail.
    for (std::int64_t pos : {0, 5, 16, 36}) {
        CAPTURE(pos);
        Tensor<T> x = uniform<T>({4, 37}, -1, 1, 10);
        x.at({2, pos}) = nan;
        const auto mx = ops::amax(x, {1}).to_vector(), mn = ops::amin(x, {1}).to_vector();
        for (std::size_t r = 0; r < 4; ++r) {
            CHECK(std::isnan(mx[r]) == (r == 2));
            CHECK(std::isnan(mn[r]) == (r == 2));
        }
        // Leading axis (column accumulation).
        const auto cx = ops::amax(x, {0}).to_vector(), cn = ops::amin(x, {0}).to_vector();
        for (std::size_t c = 0; c < 37; ++c) {
            CHECK(std::isnan(cx[c]) == (std::int64_t(c) == pos));
            CHECK(std::isnan(cn[c]) == (std::int64_t(c) == pos));
        }
        CHECK(std::isnan(ops::amax(x).item()));
        CHECK(std::isnan(ops::amin(x).item()));
    }
    // A long row split into chunks: NaN in the middle of one chunk.
    Tensor<T> big = uniform<T>({2, 200000}, -1, 1, 11);
    big.at({1, 123457}) = nan;
    const auto bm = ops::amax(big, {1}).to_vector();
    CHECK(!std::isnan(bm[0]));
    CHECK(std::isnan(bm[1]));
    CHECK(std::isnan(ops::amin(big).item()));
    // sum propagates NaN too (IEEE).
    CHECK(std::isnan(ops::sum(big).item()));
}

TEST_CASE("argmax returns the first index on ties along any axis, keepdim and negative axes") {
    const Tensor<double> x = Tensor<double>::from_vector({1, 3, 3, 0, 2, 2, 5, 5, 5, 4, 4, 1}, {3, 4});
    CHECK(ops::argmax(x, 1).to_vector() == std::vector<std::int64_t>{1, 2, 0});
    CHECK(ops::argmax(x, -1, true).shape() == Shape{3, 1});
    CHECK(ops::argmax(x, 0).to_vector() == std::vector<std::int64_t>{2, 2, 1, 1});
    CHECK(argmax(leaf(x), 0, true).shape() == Shape{1, 4});
    // All equal: 0.
    CHECK(ops::argmax(Tensor<double>::zeros({2, 5}), 1).to_vector() == std::vector<std::int64_t>{0, 0});
    // 3-D, every axis, non-contiguous, against the naive first-max.
    const Tensor<float> y = ops::affine(uniform<float>({4, 5, 6}, 0, 4, 12), 1.f, 0.f);
    Tensor<float> r = y.clone();
    for (std::int64_t i = 0; i < r.numel(); ++i) r.data()[i] = std::floor(r.data()[i]);  // many ties
    for (const Tensor<float>& t : {r, r.permute({2, 0, 1}), r.slice(2, 0, 6, 2)}) {
        for (std::int64_t a : {0, 1, 2, -1}) {
            CAPTURE(a);
            const std::int64_t an = a < 0 ? a + 3 : a;
            const Naive n = naive_bins(t, {an}, false);
            const Tensor<std::int64_t> got = ops::argmax(t, a);
            REQUIRE(got.shape() == n.shape);
            CHECK_CLOSE(got, each_bin(n, bin_argmax), zeros_tol(n));
        }
    }
    // Large: [2000, 300] over each axis (threaded).
    Tensor<double> big = uniform<double>({2000, 300}, 0, 50, 13);
    for (std::int64_t i = 0; i < big.numel(); ++i) big.data()[i] = std::floor(big.data()[i]);
    for (std::int64_t a : {0, 1}) {
        const Naive n = naive_bins(big, {a}, false);
        CHECK_CLOSE(ops::argmax(big, a), each_bin(n, bin_argmax), zeros_tol(n));
    }
}

TEST_CASE("argmax treats NaN as the largest value, and the first NaN wins") {
    const Tensor<double> x = Tensor<double>::from_vector({1, kNaN, 3, kNaN, 5, 6, 7, 8}, {2, 4});
    CHECK(ops::argmax(x, 1).to_vector() == std::vector<std::int64_t>{1, 3});
    CHECK(ops::argmax(x, 0).to_vector() == std::vector<std::int64_t>{1, 0, 1, 0});
}

TEST_CASE("empty reductions: sum is 0, mean and max refuse") {
    const Tensor<double> e = Tensor<double>::zeros({0, 3});
    CHECK(ops::sum(e, {0}).to_vector() == std::vector<double>{0, 0, 0});
    CHECK(ops::sum(e).item() == 0);
    CHECK(ops::sum(e, {1}).shape() == Shape{0});
    CHECK(ops::amax(e, {1}).shape() == Shape{0});  // nothing to reduce into: fine
    CHECK_THROWS_WITH_AS(ops::amax(e, {0}), Contains("max"), polymath::Error);
    CHECK_THROWS_WITH_AS(ops::amax(e), Contains("empty"), polymath::Error);
    CHECK_THROWS_WITH_AS(ops::amin(e, {0}), Contains("min"), polymath::Error);
    CHECK_THROWS_WITH_AS(ops::mean(e, {0}), Contains("mean"), polymath::Error);
    CHECK_THROWS_WITH_AS(ops::argmax(e, 0), Contains("argmax"), polymath::Error);
    CHECK_THROWS_WITH_AS(max(leaf(e), {0}), Contains("[0, 3]"), polymath::Error);
}

TEST_CASE("0-d tensors reduce to themselves") {
    const Tensor<double> s = Tensor<double>::full({}, 4.0);
    CHECK(ops::sum(s).item() == 4);
    CHECK(ops::sum(s, {0}).item() == 4);
    CHECK(ops::amax(s, {-1}).item() == 4);
    CHECK(ops::mean(s).item() == 4);
    CHECK(ops::argmax(s, 0).item() == 0);
    CHECK(ops::var(s, {}, 0).item() == 0);
}

TEST_CASE("sum_to reduces broadcast and leading dims back to the input shape") {
    const Tensor<double> g = Tensor<double>::arange(0, 24).reshape({2, 3, 4});
    CHECK(ops::sum_to(g, {2, 3, 4}).shares_storage_with(g));
    const Tensor<double> a = ops::sum_to(g, {4});
    CHECK(a.shape() == Shape{4});
    CHECK(a.to_vector() == std::vector<double>{60, 66, 72, 78});
    const Tensor<double> b = ops::sum_to(g, {3, 1});
    CHECK(b.shape() == Shape{3, 1});
    CHECK(b.to_vector() == std::vector<double>{60, 92, 124});  // sum over i, k of 12 i + 4 j + k
    const Tensor<double> c = ops::sum_to(g, {2, 1, 1});
    CHECK(c.to_vector() == std::vector<double>{66, 210});
    CHECK(ops::sum_to(g, {1}).to_vector() == std::vector<double>{276});
    CHECK(ops::sum_to(g, {}).item() == 276);
    CHECK(ops::sum_to(g, {1, 1, 4}).shape() == Shape{1, 1, 4});
    // A size-1 dim that is size 1 in g as well stays (no reduction).
    CHECK(ops::sum_to(Tensor<double>::ones({1, 3}), {1, 3}).to_vector() == std::vector<double>{1, 1, 1});
    CHECK(ops::sum_to(Tensor<double>::ones({1, 3}), {3}).to_vector() == std::vector<double>{1, 1, 1});
    // Non-contiguous gradient.
    CHECK(ops::sum_to(g.transpose(0, 2), {4, 1, 1}).to_vector() == std::vector<double>{60, 66, 72, 78});
    // Impossible targets.
    CHECK_THROWS_WITH_AS(ops::sum_to(g, {3}), Contains("sum_to"), polymath::Error);
    CHECK_THROWS_WITH_AS(ops::sum_to(g, {1, 2, 3, 4}), Contains("[2, 3, 4]"), polymath::Error);
}

// ============================================================================
// Gradients
// ============================================================================

TEST_CASE("sum, mean, amax, amin and var pass grad_check over various axes with keepdim both ways") {
    std::uint64_t seed = 100;
    const std::vector<Axes> axis_sets{{0}, {1}, {2}, {-1}, {0, 1}, {1, 2}, {0, 2}, {2, 0}, {}, {0, 1, 2}};
    for (const Axes& axes : axis_sets) {
        for (bool keepdim : {false, true}) {
            const std::string as = axes_str(axes);
            CAPTURE(as);
            CAPTURE(keepdim);
            // Distinct values, so max and min have no ties.
            auto distinct = [&](const Shape& s) {
                Tensor<double> t = uniform<double>(s, -1, 1, seed++);
                for (std::int64_t i = 0; i < t.numel(); ++i) t.data()[i] += 0.1 * double(i % 7) + 1e-3 * double(i);
                return t;
            };
            const Tensor<double> x = distinct({3, 4, 2});
            const Tensor<double> nc = distinct({2, 4, 3}).permute({2, 1, 0});  // [3, 4, 2], non-contiguous
            REQUIRE(!nc.is_contiguous());
            const auto ax = axes;
            check_grads([ax, keepdim](const std::vector<Var<double>>& v) { return sum(v[0], ax, keepdim); }, {Var<double>(x.clone())});
            check_grads([ax, keepdim](const std::vector<Var<double>>& v) { return mean(v[0], ax, keepdim); }, {Var<double>(x.clone())});
            check_grads([ax, keepdim](const std::vector<Var<double>>& v) { return amax(v[0], ax, keepdim); }, {Var<double>(x.clone())});
            check_grads([ax, keepdim](const std::vector<Var<double>>& v) { return amin(v[0], ax, keepdim); }, {Var<double>(x.clone())});
            check_grads([ax, keepdim](const std::vector<Var<double>>& v) { return max(v[0], ax, keepdim); }, {Var<double>(x.clone())});
            check_grads([ax, keepdim](const std::vector<Var<double>>& v) { return min(v[0], ax, keepdim); }, {Var<double>(x.clone())});
            for (std::int64_t c : {0, 1})
                check_grads([ax, keepdim, c](const std::vector<Var<double>>& v) { return var(v[0], ax, c, keepdim); },
                            {Var<double>(x.clone())});
            // Non-contiguous leaf.
            check_grads([ax, keepdim](const std::vector<Var<double>>& v) { return var(v[0], ax, 1, keepdim) + amax(v[0], ax, keepdim); },
                        {Var<double>(nc)});
        }
    }
    // A reduction feeding another op (gradient of a non-trivial seed).
    check_grads([](const std::vector<Var<double>>& v) { return mean(v[0] * v[0], {1}) * sum(v[0], {1}) + sum(var(v[0], {0}, 0, false)); },
                {Var<double>(uniform<double>({3, 3}, -1, 1, 200))});
}

TEST_CASE("max and min with ties split the gradient evenly among the tied elements") {
    auto x = leaf(Tensor<double>::from_vector({1, 3, 3, 0, 2, 2, 2, 1}, {2, 4}));
    sum(amax(x, {1})).backward();
    CHECK(x.grad().to_vector() == std::vector<double>{0, 0.5, 0.5, 0, 1.0 / 3, 1.0 / 3, 1.0 / 3, 0});
    auto y = leaf(Tensor<double>::from_vector({1, 3, 1, 0, 0, 2}, {2, 3}));
    sum(min(y, {1}, true)).backward();
    CHECK(y.grad().to_vector() == std::vector<double>{0.5, 0, 0.5, 0.5, 0.5, 0});
    auto z = leaf(Tensor<double>{4, 4, 4, 4});
    max(z).backward();
    CHECK(z.grad().to_vector() == std::vector<double>{0.25, 0.25, 0.25, 0.25});
}

TEST_CASE("sum and mean backward broadcast the gradient over the reduced axes") {
    auto x = leaf(Tensor<double>::ones({2, 3, 4}));
    auto y = sum(x, {0, 2});
    CHECK(y.value().to_vector() == std::vector<double>{8, 8, 8});
    y.backward(Tensor<double>{1, 2, 3});
    const auto g = x.grad().to_vector();
    for (std::size_t i = 0; i < g.size(); ++i) CHECK(g[i] == double((i / 4) % 3 + 1));
    auto z = leaf(Tensor<double>::ones({2, 4}));
    mean(z, {-1}, true).backward(Tensor<double>::from_vector({4, 8}, {2, 1}));
    CHECK(z.grad().to_vector() == std::vector<double>{1, 1, 1, 1, 2, 2, 2, 2});
}

// ============================================================================
// Errors
// ============================================================================

TEST_CASE("an axis out of range names the op and the rank") {
    const Tensor<double> x = Tensor<double>::ones({2, 3});
    const std::string m = error_of([&] { ops::sum(x, {2}); });
    CHECK(has(m, "sum"));
    CHECK(has(m, "rank 2"));
    CHECK(has(m, "axis 2"));
    CHECK(has(error_of([&] { ops::sum(x, {-3}); }), "rank 2"));
    CHECK(has(error_of([&] { ops::amax(x, {5}); }), "max"));
    CHECK(has(error_of([&] { ops::mean(x, {3}); }), "mean"));
    CHECK(has(error_of([&] { ops::var(x, {3}); }), "var"));
    CHECK(has(error_of([&] { ops::argmax(x, 2); }), "argmax"));
    CHECK(has(error_of([&] { sum(leaf(x), {7}); }), "sum"));
}

TEST_CASE("a repeated axis is refused, also when spelled negative") {
    const Tensor<double> x = Tensor<double>::ones({2, 3, 4});
    const std::string m = error_of([&] { ops::sum(x, {1, 1}); });
    CHECK(has(m, "sum"));
    CHECK(has(m, "repeated"));
    CHECK(has(error_of([&] { ops::amax(x, {0, -3}); }), "repeated"));
    CHECK(has(error_of([&] { mean(leaf(x), {2, -1}); }), "repeated"));
}

TEST_CASE("var needs more elements than its correction") {
    const Tensor<double> x = Tensor<double>::ones({3, 1});
    const std::string m = error_of([&] { ops::var(x, {1}, 1); });
    CHECK(has(m, "var"));
    CHECK(has(m, "[3, 1]"));
    CHECK(ops::var(x, {1}, 0).to_vector() == std::vector<double>{0, 0, 0});
}
