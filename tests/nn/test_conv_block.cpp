// MultiModel's convolutional blocks: SepConv, ConvStep, ConvBlock, ConvRes.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "polymath/nn/conv_block.hpp"
#include "polymath/polymath.hpp"

using namespace polymath;

namespace {
// ConvStep by loops: LayerNorm(pointwise(depthwise(relu(x)))), x [N, L, C].
Tensor<double> conv_step_ref(const nn::ConvStep<double>& s, const Tensor<double>& x, std::int64_t kernel,
                             std::int64_t dil, bool causal, bool first_relu = true) {
    const std::int64_t N = x.size(0), L = x.size(1), C = x.size(2);
    const Tensor<double>& w = s.conv.depthwise.value();
    const Tensor<double>& pw = s.conv.pointwise.weight.value();
    const Tensor<double>& pb = s.conv.pointwise.bias.value();
    const std::int64_t O = pw.size(0);
    const std::int64_t left = causal ? dil * (kernel - 1) : dil * (kernel - 1) / 2;
    Tensor<double> y = Tensor<double>::zeros({N, L, O});
    for (std::int64_t n = 0; n < N; ++n)
        for (std::int64_t t = 0; t < L; ++t) {
            std::vector<double> d(C, 0.0), o(O);
            for (std::int64_t c = 0; c < C; ++c)
                for (std::int64_t k = 0; k < kernel; ++k) {
                    const std::int64_t src = t + k * dil - left;
                    if (src < 0 || src >= L) continue;
                    const double v = x.at({n, src, c});
                    d[c] += w.at({k, c}) * (first_relu ? std::max(v, 0.0) : v);
                }
            double m = 0, var = 0;
            for (std::int64_t j = 0; j < O; ++j) {
                o[j] = pb.at({j});
                for (std::int64_t c = 0; c < C; ++c) o[j] += pw.at({j, c}) * d[c];
                m += o[j];
            }
            m /= double(O);
            for (double v : o) var += (v - m) * (v - m);
            var /= double(O);
            for (std::int64_t j = 0; j < O; ++j) y.at({n, t, j}) = (o[j] - m) / std::sqrt(var + 1e-5);
        }
    return y;
}

void check_close(const Tensor<double>& a, const Tensor<double>& b, double tol = 1e-10) {
    REQUIRE(a.shape() == b.shape());
    auto x = a.contiguous().to_vector(), y = b.contiguous().to_vector();
    for (std::size_t i = 0; i < x.size(); ++i) REQUIRE(x[i] == doctest::Approx(y[i]).epsilon(tol).scale(1.0));
}
}  // namespace

TEST_CASE("ConvStep equals LayerNorm(SepConv(ReLU x)) computed by loops, same and causal, dilated") {
    Generator g(1);
    Tensor<double> x = Tensor<double>::randn({2, 9, 4}, g);
    nn::ConvStep<double> same(4, 5, 3, {.dilation = 2}, true, g);
    check_close(same(Var<double>(x)).value(), conv_step_ref(same, x, 3, 2, false));
    nn::ConvStep<double> causal(4, 4, 5, {.dilation = 2, .causal = true}, true, g);
    check_close(causal(Var<double>(x)).value(), conv_step_ref(causal, x, 5, 2, true));
}

TEST_CASE("ConvBlock wires the paper's residuals: h2 = x + step2(h1), h4 = x + step4(h3)") {
    Generator g(2);
    nn::ConvBlock<double> block(4, {}, g);
    block.eval();
    REQUIRE(block.steps.size() == 4);
    Tensor<double> x = Tensor<double>::randn({2, 20, 4}, g);
    Tensor<double> h1 = conv_step_ref(block.steps[0], x, 3, 1, false);
    Tensor<double> h2 = ops::add(x, conv_step_ref(block.steps[1], h1, 3, 1, false));
    Tensor<double> h3 = conv_step_ref(block.steps[2], h2, 15, 1, false);
    Tensor<double> h4 = ops::add(x, conv_step_ref(block.steps[3], h3, 15, 8, false));
    check_close(block(Var<double>(x)).value(), h4, 1e-9);
    auto names = block.named_parameters();
    CHECK(names[0].name == "steps.0.conv.depthwise");
    CHECK(names[1].name == "steps.0.conv.pointwise.weight");
    CHECK(names[3].name == "steps.0.norm.weight");
}

TEST_CASE("a causal ConvBlock never lets a position see the future") {
    Generator g(3);
    nn::ConvBlock<float> block(8, {.causal = true}, g);
    block.eval();
    Tensor<float> x = Tensor<float>::randn({1, 40, 8}, g);
    Tensor<float> y1 = block(Var<float>(x)).value();
    Tensor<float> x2 = x.clone();
    x2.narrow(1, 25, 15).copy_(Tensor<float>::randn({1, 15, 8}, g));
    Tensor<float> y2 = block(Var<float>(x2)).value();
    CHECK(y1.narrow(1, 0, 25).contiguous().to_vector() == y2.narrow(1, 0, 25).contiguous().to_vector());
    CHECK(y1.narrow(1, 25, 15).contiguous().to_vector() != y2.narrow(1, 25, 15).contiguous().to_vector());
}

TEST_CASE("ConvBlock applies its dropout only in training") {
    Generator g(4), dg(5);
    nn::ConvBlock<float> block(4, {.steps = {{3, 1, true}}, .dropout = 0.5}, g);
    block.set_generator(&dg);
    Var<float> x(Tensor<float>::randn({2, 16, 4}, g));
    auto train_out = block(x).value().to_vector();
    block.eval();
    auto eval_out = block(x).value().to_vector();
    int zeros = 0;
    for (std::size_t i = 0; i < train_out.size(); ++i) {
        if (train_out[i] == 0.0f) ++zeros;
        else CHECK(train_out[i] == doctest::Approx(2.0f * eval_out[i]));
    }
    CHECK(zeros > 20);
}

TEST_CASE("ConvRes = maxpool(3, stride 2, same)(ConvStep(ConvStep_no_relu(x))) + strided 1x1 projection") {
    Generator g(6);
    nn::ConvRes<double> res(3, 5, g);
    Tensor<double> x = Tensor<double>::randn({2, 7, 3}, g);
    Tensor<double> y = res(Var<double>(x)).value();
    REQUIRE(y.shape() == Shape{2, 4, 5});
    Tensor<double> c2 = conv_step_ref(res.c2, conv_step_ref(res.c1, x, 3, 1, false, false), 3, 1, false);
    // TF "SAME" pooling: out = ceil(7/2) = 4, pad_total = (4-1)*2 + 3 - 7 = 2, left 1.
    for (std::int64_t n = 0; n < 2; ++n)
        for (std::int64_t t = 0; t < 4; ++t)
            for (std::int64_t c = 0; c < 5; ++c) {
                double mx = -1e300;
                for (std::int64_t k = 0; k < 3; ++k) {
                    const std::int64_t src = 2 * t + k - 1;
                    if (src >= 0 && src < 7) mx = std::max(mx, c2.at({n, src, c}));
                }
                double skip = res.skip.bias.value().at({c});
                for (std::int64_t i = 0; i < 3; ++i) skip += res.skip.weight.value().at({c, i}) * x.at({n, 2 * t, i});
                CHECK(y.at({n, t, c}) == doctest::Approx(mx + skip).epsilon(1e-10));
            }
}

TEST_CASE("SepConv, ConvStep, ConvBlock and ConvRes pass finite-difference checks") {
    Generator g(7);
    Var<double> x(Tensor<double>::randn({2, 6, 3}, g), true);
    nn::ConvStep<double> step(3, 4, 3, {.dilation = 2, .causal = true}, true, g);
    auto r1 = grad_check([&](const std::vector<Var<double>>& in) { return step(in[0]); },
                         {x, step.conv.depthwise, step.conv.pointwise.weight, step.norm.weight});
    CHECK_MESSAGE(r1.ok, r1.report);
    nn::ConvBlock<double> block(3, {.steps = {{3, 1, false}, {3, 2, true}}, .dropout = 0.0}, g);
    auto r2 = grad_check([&](const std::vector<Var<double>>& in) { return block(in[0]); },
                         {x, block.steps[1].conv.depthwise, block.steps[0].norm.bias});
    CHECK_MESSAGE(r2.ok, r2.report);
    nn::ConvRes<double> res(3, 2, g);
    auto r3 = grad_check([&](const std::vector<Var<double>>& in) { return res(in[0]); },
                         {x, res.c1.conv.depthwise, res.skip.weight});
    CHECK_MESSAGE(r3.ok, r3.report);
}
