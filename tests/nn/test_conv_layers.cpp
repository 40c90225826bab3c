// Convolution and pooling layers (nn/conv.hpp, nn/pool.hpp): parameter names
// and shapes, torch-style init bounds, determinism from a Generator, forward
// equal to the kernels, gradients through the layers with grad_check, and the
// construction errors.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "polymath/autograd/grad_check.hpp"
#include "polymath/nn/conv.hpp"
#include "polymath/nn/pool.hpp"
#include "polymath/polymath.hpp"

using namespace polymath;
using doctest::Contains;

namespace {

Tensor<double> rnd(const Shape& s, std::uint64_t seed) {
    Generator g(seed);
    Tensor<double> t = Tensor<double>::rand(s, g);
    for (std::int64_t i = 0; i < t.numel(); ++i) t.data()[i] = 2 * t.data()[i] - 1;
    return t;
}

double max_abs(const Tensor<double>& t) {
    double m = 0;
    for (double v : t.to_vector()) m = std::max(m, std::fabs(v));
    return m;
}

bool same_values(const Tensor<double>& a, const Tensor<double>& b, double tol = 0) {
    if (a.shape() != b.shape()) return false;
    const std::vector<double> x = a.to_vector(), y = b.to_vector();
    for (std::size_t i = 0; i < x.size(); ++i)
        if (std::fabs(x[i] - y[i]) > tol) return false;
    return true;
}

// grad_check over the input and every parameter of a layer.
template <class M>
void check_layer_grads(M& layer, const Tensor<double>& x) {
    std::vector<Var<double>> in = {Var<double>(x, true)};
    for (auto& p : layer.parameters()) in.push_back(p);
    const GradCheckResult r =
        grad_check([&](const std::vector<Var<double>>& v) { return layer(v[0]); }, in);
    CHECK_MESSAGE(r.ok, r.report);
    CHECK(r.checked > 0);
}

}  // namespace

TEST_CASE("nn::Conv2d: parameter names and shapes, torch init bounds, forward equals ops::conv2d") {
    Generator g(3);
    nn::Conv2d<double> c(4, 6, {3, 2}, {.stride = 2, .padding = {1, 0}, .groups = 2}, g);
    const auto np = c.named_parameters();
    REQUIRE(np.size() == 2);
    CHECK(np[0].name == "weight");
    CHECK(np[1].name == "bias");
    CHECK(c.weight.shape() == (Shape{6, 2, 3, 2}));
    CHECK(c.bias.shape() == (Shape{6}));
    CHECK(c.num_parameters() == 6 * 2 * 3 * 2 + 6);
    // fan_in = in/groups · kh · kw = 12: weight and bias within 1/sqrt(12).
    const double bound = 1.0 / std::sqrt(12.0);
    CHECK(max_abs(c.weight.value()) <= bound);
    CHECK(max_abs(c.weight.value()) > 0.5 * bound);
    CHECK(max_abs(c.bias.value()) <= bound);
    const Tensor<double> x = rnd({2, 4, 7, 5}, 1);
    const Var<double> y = c(Var<double>(x));
    CHECK(same_values(y.value(), ops::conv2d(x, c.weight.value(), c.bias.value(), 2, {1, 0}, 1, 2)));
    CHECK(y.shape() == (Shape{2, 6, 4, 2}));  // Ho = (7 + 2 - 3) / 2 + 1, Wo = (5 - 2) / 2 + 1

    nn::Conv2d<double> nb(3, 5, 1, {.bias = false}, g);
    CHECK(nb.named_parameters().size() == 1);
    CHECK_FALSE(nb.bias.defined());
}

TEST_CASE("nn::Conv2d / Conv1d / DepthwiseConv1d are deterministic from a Generator seed") {
    Generator a(11), b(11);
    nn::Conv2d<double> c1(3, 4, 3, {}, a), c2(3, 4, 3, {}, b);
    CHECK(same_values(c1.weight.value(), c2.weight.value()));
    CHECK(same_values(c1.bias.value(), c2.bias.value()));
    nn::DepthwiseConv1d<double> d1(8, 5, {}, a), d2(8, 5, {}, b);
    CHECK(same_values(d1.weight.value(), d2.weight.value()));
}

TEST_CASE("nn::Conv1d: shapes, init bound and forward equal ops::conv1d") {
    Generator g(5);
    nn::Conv1d<double> c(4, 8, 5, {.padding = 4, .dilation = 2, .groups = 4}, g);
    CHECK(c.weight.shape() == (Shape{8, 1, 5}));
    CHECK(max_abs(c.weight.value()) <= 1.0 / std::sqrt(5.0));
    CHECK(max_abs(c.bias.value()) <= 1.0 / std::sqrt(5.0));
    const Tensor<double> x = rnd({2, 4, 9}, 2);
    const Var<double> y = c(Var<double>(x));
    CHECK(y.shape() == (Shape{2, 8, 9}));
    CHECK(same_values(y.value(), ops::conv1d(x, c.weight.value(), c.bias.value(), 1, 4, 2, 4)));
}

TEST_CASE("nn::DepthwiseConv1d: channels-last, Same keeps the length, Causal only looks back") {
    Generator g(9);
    nn::DepthwiseConv1d<double> s(6, 15, {.dilation = 8}, g);
    nn::DepthwiseConv1d<double> c(6, 3, {.dilation = 2, .padding = PaddingMode::Causal, .bias = false}, g);
    CHECK(s.weight.shape() == (Shape{15, 6}));
    CHECK(s.bias.shape() == (Shape{6}));
    CHECK(max_abs(s.weight.value()) <= 1.0 / std::sqrt(15.0));
    CHECK(c.named_parameters().size() == 1);
    const Tensor<double> x = rnd({2, 11, 6}, 3);
    const Var<double> ys = s(Var<double>(x));
    CHECK(ys.shape() == (Shape{2, 11, 6}));
    CHECK(same_values(ys.value(), ops::depthwise_conv1d(x, s.weight.value(), s.bias.value(), 8, PaddingMode::Same)));
    // Causal: y[:, 0] only sees x[:, 0] (the last tap).
    const Var<double> yc = c(Var<double>(x));
    for (std::int64_t ch = 0; ch < 6; ++ch)
        CHECK(std::fabs(yc.value().at({1, 0, ch}) - c.weight.value().at({2, ch}) * x.at({1, 0, ch})) < 1e-15);
}

TEST_CASE("convolution layers pass grad_check through input, weight and bias (groups, stride, dilation)") {
    Generator g(21);
    nn::Conv2d<double> c2(4, 4, 3, {.stride = {2, 1}, .padding = 1, .dilation = {1, 2}, .groups = 2}, g);
    check_layer_grads(c2, rnd({2, 4, 5, 6}, 1));
    nn::Conv2d<double> c2nb(2, 3, {2, 3}, {.bias = false}, g);
    check_layer_grads(c2nb, rnd({1, 2, 4, 5}, 2));
    nn::Conv1d<double> c1(4, 6, 3, {.stride = 2, .padding = 1, .groups = 2}, g);
    check_layer_grads(c1, rnd({2, 4, 9}, 3));
    nn::DepthwiseConv1d<double> ds(3, 5, {.dilation = 2}, g);
    check_layer_grads(ds, rnd({2, 7, 3}, 4));
    nn::DepthwiseConv1d<double> dc(3, 15, {.dilation = 8, .padding = PaddingMode::Causal}, g);
    check_layer_grads(dc, rnd({1, 10, 3}, 5));
}

TEST_CASE("pooling modules have no parameters, equal the kernels and pass grad_check") {
    const Tensor<double> x4 = rnd({2, 3, 6, 7}, 1), x3 = rnd({2, 3, 9}, 2), xcl = rnd({2, 9, 3}, 3);
    nn::MaxPool2d<double> mp(3, 2, 1);
    nn::AvgPool2d<double> ap(Int2{2, 3});  // a lone {2, 3} would also match the copy constructor
    nn::MaxPool1d<double> m1(3, 2, 1);
    nn::AvgPool1d<double> a1(2, 1, 1);
    nn::GlobalAvgPool<double> gap;
    nn::MaxPool1dChannelsLast<double> pcl(3, 2);
    CHECK(mp.num_parameters() == 0);
    CHECK(gap.parameters().empty());
    CHECK(pcl.named_parameters().empty());
    CHECK(same_values(mp(Var<double>(x4)).value(), ops::max_pool2d(x4, 3, 2, 1).values));
    CHECK(same_values(ap(Var<double>(x4)).value(), ops::avg_pool2d(x4, {2, 3})));
    CHECK(ap(Var<double>(x4)).shape() == (Shape{2, 3, 3, 2}));
    CHECK(same_values(m1(Var<double>(x3)).value(), ops::max_pool1d(x3, 3, 2, 1).values));
    CHECK(same_values(a1(Var<double>(x3)).value(), ops::avg_pool1d(x3, 2, 1, 1)));
    CHECK(gap(Var<double>(x4)).shape() == (Shape{2, 3}));
    CHECK(pcl(Var<double>(xcl)).shape() == (Shape{2, 5, 3}));
    check_layer_grads(mp, x4);
    check_layer_grads(ap, x4);
    check_layer_grads(m1, x3);
    check_layer_grads(a1, x3);
    check_layer_grads(gap, x4);
    check_layer_grads(pcl, xcl);
}

TEST_CASE("a small conv net trains end to end (conv -> pool -> global average)") {
    Generator g(1);
    nn::Conv2d<double> conv(1, 4, 3, {.padding = 1}, g);
    nn::MaxPool2d<double> pool(2);
    nn::GlobalAvgPool<double> gap;
    const Var<double> x(rnd({3, 1, 6, 6}, 7));
    auto loss_of = [&] { return sum(mul(gap(pool(conv(x))), gap(pool(conv(x))))); };
    const double before = loss_of().value().item();
    for (int step = 0; step < 20; ++step) {
        conv.zero_grad();
        Var<double> l = loss_of();
        l.backward();
        NoGradGuard ng;
        for (auto& p : conv.parameters()) {
            Tensor<double> v = p.value();
            v.copy_(ops::sub(v, ops::mul_scalar(p.grad(), 0.1)));
        }
    }
    CHECK(loss_of().value().item() < before);
}

TEST_CASE("convolution layers reject bad configurations with messages naming the layer") {
    CHECK_THROWS_WITH_AS(nn::Conv2d<double>(3, 4, 3, {.groups = 2}), Contains("nn::Conv2d"), Error);
    CHECK_THROWS_WITH_AS(nn::Conv2d<double>(4, 3, 3, {.groups = 2}), Contains("divisible by groups 2"), Error);
    CHECK_THROWS_WITH_AS(nn::Conv1d<double>(0, 3, 3), Contains("nn::Conv1d"), Error);
    CHECK_THROWS_WITH_AS(nn::DepthwiseConv1d<double>(4, 0), Contains("nn::DepthwiseConv1d"), Error);
    nn::Conv2d<double> c(3, 4, 3);
    CHECK_THROWS_WITH_AS(c(Var<double>(rnd({1, 2, 5, 5}, 1))), Contains("conv2d"), Error);
    nn::Conv2d<double> unbuilt;
    CHECK_THROWS_WITH_AS(unbuilt(Var<double>(rnd({1, 2, 5, 5}, 1))), Contains("used before construction"), Error);
}
