// Multi-head attention: naive reference, masks, causality, gradients, timing signal.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "polymath/nn/attention.hpp"
#include "polymath/polymath.hpp"

using namespace polymath;

namespace {
// Naive per-head attention over [B, L, H*d] tensors, written with plain loops.
Tensor<double> naive_attention(const Tensor<double>& q, const Tensor<double>& k, const Tensor<double>& v, int H,
                               bool causal, const std::vector<std::vector<int>>& pad) {
    const std::int64_t B = q.size(0), Lq = q.size(1), Lk = k.size(1), dk = q.size(2) / H, dv = v.size(2) / H;
    Tensor<double> out = Tensor<double>::zeros({B, Lq, H * dv});
    for (std::int64_t b = 0; b < B; ++b)
        for (int h = 0; h < H; ++h)
            for (std::int64_t i = 0; i < Lq; ++i) {
                std::vector<double> s(Lk);
                std::vector<bool> on(Lk);
                double mx = -1e300;
                bool any = false;
                for (std::int64_t j = 0; j < Lk; ++j) {
                    double d = 0;
                    for (std::int64_t c = 0; c < dk; ++c) d += q.at({b, i, h * dk + c}) * k.at({b, j, h * dk + c});
                    s[j] = d / std::sqrt(double(dk));
                    on[j] = !(causal && j > i + (Lk - Lq)) && !(!pad.empty() && pad[b][j]);
                    if (on[j]) mx = std::max(mx, s[j]), any = true;
                }
                if (!any) continue;
                double z = 0;
                for (std::int64_t j = 0; j < Lk; ++j) z += on[j] ? std::exp(s[j] - mx) : 0.0;
                for (std::int64_t c = 0; c < dv; ++c) {
                    double acc = 0;
                    for (std::int64_t j = 0; j < Lk; ++j)
                        if (on[j]) acc += std::exp(s[j] - mx) / z * v.at({b, j, h * dv + c});
                    out.at({b, i, h * dv + c}) = acc;
                }
            }
    return out;
}

void check_close(const Tensor<double>& a, const Tensor<double>& b, double tol) {
    REQUIRE(a.shape() == b.shape());
    auto x = a.contiguous().to_vector(), y = b.contiguous().to_vector();
    for (std::size_t i = 0; i < x.size(); ++i) REQUIRE(x[i] == doctest::Approx(y[i]).epsilon(tol).scale(1.0));
}
}  // namespace

TEST_CASE("fused attention equals a naive per-head reference, with and without masks") {
    Generator g(3);
    const int H = 2;
    Tensor<double> q = Tensor<double>::randn({2, 5, 8}, g), k = Tensor<double>::randn({2, 7, 8}, g),
                   v = Tensor<double>::randn({2, 7, 6}, g);
    auto plain = ops::attention_forward(q, k, v, Tensor<std::uint8_t>(), {.num_heads = H});
    check_close(plain.out, naive_attention(q, k, v, H, false, {}), 1e-12);

    std::vector<std::vector<int>> pad = {{0, 0, 0, 0, 0, 1, 1}, {0, 1, 0, 0, 0, 0, 0}};
    Tensor<std::uint8_t> m = Tensor<std::uint8_t>::zeros({2, 7});
    for (int b = 0; b < 2; ++b)
        for (int j = 0; j < 7; ++j) m.at({b, j}) = std::uint8_t(pad[b][j]);
    auto masked = ops::attention_forward(q, k, v, m, {.num_heads = H, .causal = true});
    check_close(masked.out, naive_attention(q, k, v, H, true, pad), 1e-12);
}

TEST_CASE("a query whose keys are all masked gets a zero output, not NaN") {
    Generator g(4);
    Tensor<double> q = Tensor<double>::randn({1, 2, 4}, g), k = Tensor<double>::randn({1, 3, 4}, g),
                   v = Tensor<double>::randn({1, 3, 4}, g);
    Tensor<std::uint8_t> m = Tensor<std::uint8_t>::ones({1, 3});
    auto r = ops::attention_forward(q, k, v, m, {.num_heads = 2});
    for (double x : r.out.to_vector()) CHECK(x == 0.0);
}

TEST_CASE("fused attention passes a finite-difference check on q, k and v (masked, strided q)") {
    Generator g(5);
    Var<double> qkv(Tensor<double>::randn({2, 4, 12}, g) * 0.5, true);
    Var<double> mem(Tensor<double>::randn({2, 5, 8}, g) * 0.5, true);
    Tensor<std::uint8_t> m = Tensor<std::uint8_t>::zeros({2, 4});
    m.at({1, 3}) = 1;
    auto r1 = grad_check(
        [&](const std::vector<Var<double>>& in) {
            return scaled_dot_product_attention(narrow(in[0], 2, 0, 4), narrow(in[0], 2, 4, 4), narrow(in[0], 2, 8, 4),
                                                {.num_heads = 2, .causal = true}, m);
        },
        {qkv});
    CHECK_MESSAGE(r1.ok, r1.report);
    Var<double> q(Tensor<double>::randn({2, 3, 4}, g), true);
    auto r2 = grad_check(
        [&](const std::vector<Var<double>>& in) {
            return scaled_dot_product_attention(in[0], narrow(in[1], 2, 0, 4), narrow(in[1], 2, 4, 4),
                                                {.num_heads = 2});
        },
        {q, mem});
    CHECK_MESSAGE(r2.ok, r2.report);
}

TEST_CASE("MultiheadAttention equals projections + naive attention + output projection") {
    Generator g(6);
    nn::MultiheadAttention<double> mha(8, 2, {}, g);
    Tensor<double> bias = Tensor<double>::randn({24}, g);
    Tensor<double>(mha.in_proj_bias.value()).copy_(bias);
    Tensor<double> x = Tensor<double>::randn({2, 5, 8}, g);
    Tensor<double> W = mha.in_proj_weight.value();
    auto proj = [&](int part) {
        return ops::add(ops::matmul(x, W.narrow(0, part * 8, 8).t()), bias.narrow(0, part * 8, 8));
    };
    Tensor<double> o = naive_attention(proj(0), proj(1), proj(2), 2, true, {});
    Tensor<double> ref = ops::add(ops::matmul(o, mha.out_proj.weight.value().t()), mha.out_proj.bias.value());
    check_close(mha(Var<double>(x), {.causal = true}).value(), ref, 1e-12);

    auto r = grad_check([&](const std::vector<Var<double>>& in) { return mha(in[0], {.causal = true}); },
                        {Var<double>(x, true), mha.in_proj_weight, mha.in_proj_bias, mha.out_proj.weight});
    CHECK_MESSAGE(r.ok, r.report);
    Var<double> mem(Tensor<double>::randn({2, 3, 8}, g), true);
    auto r2 = grad_check([&](const std::vector<Var<double>>& in) { return mha(in[0], in[1]); },
                         {Var<double>(x, true), mem, mha.in_proj_weight});
    CHECK_MESSAGE(r2.ok, r2.report);
}

TEST_CASE("causal self-attention: changing future tokens never changes earlier outputs") {
    Generator g(7);
    nn::MultiheadAttention<float> mha(16, 4, {}, g);
    Tensor<float> x = Tensor<float>::randn({1, 10, 16}, g);
    Tensor<float> y1 = mha(Var<float>(x), {.causal = true}).value();
    Tensor<float> x2 = x.clone();
    x2.narrow(1, 6, 4).copy_(Tensor<float>::randn({1, 4, 16}, g));
    Tensor<float> y2 = mha(Var<float>(x2), {.causal = true}).value();
    auto a = y1.narrow(1, 0, 6).contiguous().to_vector(), b = y2.narrow(1, 0, 6).contiguous().to_vector();
    CHECK(a == b);
    auto c = y1.narrow(1, 6, 4).contiguous().to_vector(), d = y2.narrow(1, 6, 4).contiguous().to_vector();
    CHECK(c != d);
}

TEST_CASE("attention rejects mismatched shapes and masks with the shapes in the message") {
    nn::MultiheadAttention<float> mha(8, 2);
    CHECK_THROWS_WITH_AS(mha(Var<float>(Tensor<float>::ones({2, 3, 6}))), doctest::Contains("[2, 3, 6]"), Error);
    CHECK_THROWS_AS(nn::MultiheadAttention<float>(10, 3), Error);
    nn::AttentionMask bad{Tensor<std::uint8_t>::zeros({2, 4}), false};
    CHECK_THROWS_WITH_AS(mha(Var<float>(Tensor<float>::ones({2, 3, 8})), nn::AttentionMask{bad}),
                         doctest::Contains("key_padding_mask"), Error);
}

TEST_CASE("timing signal matches tensor2tensor's formula") {
    Tensor<double> s = nn::timing_signal_1d<double>(3, 4);
    // n = 2 timescales: 1 and 1e-4.
    CHECK(s.at({1, 0}) == doctest::Approx(std::sin(1.0)));
    CHECK(s.at({1, 1}) == doctest::Approx(std::sin(1e-4)));
    CHECK(s.at({1, 2}) == doctest::Approx(std::cos(1.0)));
    CHECK(s.at({2, 3}) == doctest::Approx(std::cos(2e-4)));
    CHECK(s.at({0, 2}) == 1.0);
    Tensor<double> odd = nn::timing_signal_1d<double>(2, 5);
    CHECK(odd.at({1, 4}) == 0.0);
}
