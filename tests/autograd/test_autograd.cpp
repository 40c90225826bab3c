// Autograd engine: recording, accumulation, no_grad, detach, freed graphs,
// seeds, and grad_check itself.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "polymath/polymath.hpp"

using namespace polymath;
using doctest::Approx;
using doctest::Contains;

namespace {
Var<double> leaf(std::initializer_list<double> v, bool rg = true) { return Var<double>(Tensor<double>(v), rg); }
}  // namespace

TEST_CASE("backward of a small expression gives the hand-derived gradient") {
    // f(x, y) = sum(x * y + x / y), df/dx = y + 1/y, df/dy = x - x / y^2
    auto x = leaf({1, 2, 3}), y = leaf({4, 5, 6});
    auto f = sum(x * y + x / y);
    CHECK(f.item() == Approx(1 * 4 + 2 * 5 + 3 * 6 + 1.0 / 4 + 2.0 / 5 + 3.0 / 6));
    f.backward();
    const std::vector<double> xs{1, 2, 3}, ys{4, 5, 6};
    for (int i = 0; i < 3; ++i) {
        CHECK(x.grad().to_vector()[i] == Approx(ys[i] + 1 / ys[i]));
        CHECK(y.grad().to_vector()[i] == Approx(xs[i] - xs[i] / (ys[i] * ys[i])));
    }
}

TEST_CASE("a value used twice receives the sum of both gradients") {
    auto x = leaf({3});
    auto y = x * x + x;  // dy/dx = 2x + 1 = 7
    y.backward();
    CHECK(x.grad().item() == 7);
}

TEST_CASE("gradients accumulate across backward calls until zero_grad") {
    auto x = leaf({2});
    (x * x).backward();
    (x * x).backward();
    CHECK(x.grad().item() == 8);
    x.zero_grad();
    CHECK(!x.grad().defined());
    (x * 3.0).backward();
    CHECK(x.grad().item() == 3);
}

TEST_CASE("no_grad scope records nothing and detach cuts the graph") {
    auto x = leaf({1, 2});
    {
        NoGradGuard ng;
        auto y = x * x;
        CHECK(!y.requires_grad());
        CHECK(y.is_leaf());
    }
    CHECK(GradMode::is_enabled());
    auto d = (x * x).detach();
    CHECK(d.is_leaf());
    CHECK(!d.requires_grad());
    auto z = sum(d * x);  // gradient flows only through x
    z.backward();
    CHECK(x.grad().to_vector() == std::vector<double>{1, 4});
}

TEST_CASE("inputs without requires_grad get no gradient and skip work") {
    auto a = leaf({1, 2}), b = leaf({3, 4}, false);
    auto s = sum(a * b);
    s.backward();
    CHECK(a.grad().to_vector() == std::vector<double>{3, 4});
    CHECK(!b.grad().defined());
}

TEST_CASE("backward on a non-scalar needs a seed of the output's shape") {
    auto x = leaf({1, 2, 3});
    auto y = x * 2.0;
    CHECK_THROWS_WITH_AS(y.backward(), Contains("non-scalar"), Error);
    CHECK_THROWS_WITH_AS(y.backward(), Contains("[3]"), Error);
    CHECK_THROWS_WITH_AS(y.backward(Tensor<double>{1, 1}), Contains("[2]"), Error);
    y.backward(Tensor<double>{1, 10, 100});
    CHECK(x.grad().to_vector() == std::vector<double>{2, 20, 200});
}

TEST_CASE("a second backward through a freed graph throws, retain_graph allows it") {
    auto x = leaf({1.5});
    auto y = x * x;
    y.backward();
    CHECK_THROWS_WITH_AS(y.backward(), Contains("freed"), Error);
    CHECK_THROWS_WITH_AS(y.backward(), Contains("mul"), Error);

    auto a = leaf({2});
    auto b = a * a;
    b.backward(true);
    b.backward();
    CHECK(a.grad().item() == 8);
}

TEST_CASE("backward on a Var that does not require grad throws") {
    auto x = leaf({1}, false);
    auto y = x * x;
    CHECK_THROWS_WITH_AS(y.backward(), Contains("does not require grad"), Error);
}

TEST_CASE("set_requires_grad is refused on non-leaves") {
    auto x = leaf({1});
    auto y = x * x;
    CHECK_THROWS_WITH_AS(y.set_requires_grad(false), Contains("mul"), Error);
}

TEST_CASE("retain_grad keeps an intermediate gradient") {
    auto x = leaf({1, 2});
    auto h = x * 3.0;
    h.retain_grad();
    sum(h * h).backward();  // d/dh = 2h
    CHECK(h.grad().to_vector() == std::vector<double>{6, 12});
    CHECK(x.grad().to_vector() == std::vector<double>{18, 36});
}

TEST_CASE("a deep chain of 10,000 ops backpropagates without recursion") {
    auto x = leaf({1.0});
    Var<double> y = x;
    for (int i = 0; i < 10000; ++i) y = y * 1.0001 + 0.0;
    y.backward();
    CHECK(x.grad().item() == Approx(std::pow(1.0001, 10000)).epsilon(1e-9));
}

TEST_CASE("grad_check accepts correct gradients and catches wrong ones") {
    Generator g(3);
    auto a = Var<double>(randn<double>({3, 4}, g)), b = Var<double>(randn<double>({4}, g));
    auto ok = grad_check([](const std::vector<Var<double>>& v) { return v[0] * v[1] + v[0] / (v[1] * v[1] + 1.0); },
                         {a, b});
    CHECK_MESSAGE(ok.ok, ok.report);
    CHECK(ok.checked == 16);

    // A deliberately wrong backward: claims d(x^2)/dx = x.
    auto wrong = [](const std::vector<Var<double>>& v) {
        const Var<double>& x = v[0];
        return autograd::make_result("bad_square", ops::mul(x.value(), x.value()), {&x},
                                     [xv = x.value()](const Tensor<double>& gr, autograd::GradSink<double, Cpu>& s) {
                                         s.add(0, ops::mul(gr, xv));
                                     });
    };
    auto bad = grad_check(wrong, {Var<double>(Tensor<double>{1, 2, 3})});
    CHECK(!bad.ok);
    CHECK(bad.report.find("input 0") != std::string::npos);
}

TEST_CASE("arithmetic and reductions pass the finite-difference check") {
    Generator g(11);
    auto x = Var<double>(randn<double>({2, 3, 4}, g));
    auto w = Var<double>(randn<double>({3, 1}, g));
    auto r = grad_check(
        [](const std::vector<Var<double>>& v) {
            auto h = (v[0] - v[1]) * v[0] + 2.0 * v[1] - 1.0;
            return sum(mean(h, {2}, true) * var(v[0], {0, 2}, 1, true), {1});
        },
        {x, w});
    CHECK_MESSAGE(r.ok, r.report);
    auto r2 = grad_check([](const std::vector<Var<double>>& v) { return sum(amax(v[0], {1})) + sum(amin(v[0], {0, 2}, true)); },
                         {Var<double>(randn<double>({2, 3, 4}, g))});
    CHECK_MESSAGE(r2.ok, r2.report);
}
