// Embedding, LayerNorm, Dropout modules and the LSTM against hand-unrolled references.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "polymath/nn/dropout.hpp"
#include "polymath/nn/embedding.hpp"
#include "polymath/nn/layer_norm.hpp"
#include "polymath/nn/lstm.hpp"
#include "polymath/polymath.hpp"

using namespace polymath;

namespace {
double sig(double v) { return 1.0 / (1.0 + std::exp(-v)); }

// One LSTM direction over x [B, L, in] by plain loops; returns h for every step [B][L][H] and final (h, c).
struct RefOut {
    std::vector<std::vector<std::vector<double>>> h;  // [B][L][H]
    std::vector<std::vector<double>> hn, cn;          // [B][H]
};
RefOut lstm_ref(const std::vector<std::vector<std::vector<double>>>& x, const nn::LSTMCellParams<double>& p,
                std::int64_t H, bool reverse) {
    const std::size_t B = x.size(), L = x[0].size(), I = x[0][0].size();
    RefOut r;
    r.h.assign(B, std::vector<std::vector<double>>(L, std::vector<double>(H)));
    r.hn.assign(B, std::vector<double>(H, 0.0));
    r.cn.assign(B, std::vector<double>(H, 0.0));
    const auto &Wi = p.w_ih.value(), &Wh = p.w_hh.value(), &bi = p.b_ih.value(), &bh = p.b_hh.value();
    for (std::size_t b = 0; b < B; ++b) {
        std::vector<double> h(H, 0.0), c(H, 0.0);
        for (std::size_t s = 0; s < L; ++s) {
            const std::size_t t = reverse ? L - 1 - s : s;
            std::vector<double> z(4 * H);
            for (std::int64_t j = 0; j < 4 * H; ++j) {
                double a = bi.at({j}) + bh.at({j});
                for (std::size_t k = 0; k < I; ++k) a += x[b][t][k] * Wi.at({j, std::int64_t(k)});
                for (std::int64_t k = 0; k < H; ++k) a += h[k] * Wh.at({j, k});
                z[j] = a;
            }
            for (std::int64_t j = 0; j < H; ++j) {
                const double i = sig(z[j]), f = sig(z[H + j]), g = std::tanh(z[2 * H + j]), o = sig(z[3 * H + j]);
                c[j] = f * c[j] + i * g;
                h[j] = o * std::tanh(c[j]);
            }
            r.h[b][t] = h;
        }
        r.hn[b] = h;
        r.cn[b] = c;
    }
    return r;
}

std::vector<std::vector<std::vector<double>>> nested(const Tensor<double>& x) {
    std::vector<std::vector<std::vector<double>>> v(x.size(0));
    for (std::int64_t b = 0; b < x.size(0); ++b)
        for (std::int64_t t = 0; t < x.size(1); ++t) v[b].push_back(x.select(0, b).select(0, t).contiguous().to_vector());
    return v;
}
}  // namespace

TEST_CASE("Embedding looks rows up, zeroes the padding row and its tied projection passes a gradient check") {
    Generator g(1);
    nn::Embedding<double> emb(6, 4, {.padding_idx = 0, .init_std = 0.5}, g);
    for (double v : emb.weight.value().select(0, 0).contiguous().to_vector()) CHECK(v == 0.0);
    Tensor<std::int64_t> idx = Tensor<std::int64_t>::from_vector({3, 0, 5, 3}, {2, 2});
    Tensor<double> e = emb(idx).value();
    CHECK(e.shape() == Shape{2, 2, 4});
    CHECK(e.select(0, 1).select(0, 1).contiguous().to_vector() == emb.weight.value().select(0, 3).contiguous().to_vector());
    // (No padding index in the looked-up tokens: padding rows get no lookup
    // gradient by design, which a finite difference would see.)
    Tensor<std::int64_t> idx2 = Tensor<std::int64_t>::from_vector({3, 1, 5, 3}, {2, 2});
    auto r = grad_check([&](const std::vector<Var<double>>&) { return emb.project(tanh(emb(idx2))); }, {emb.weight});
    CHECK_MESSAGE(r.ok, r.report);
    nn::Embedding<double> scaled(6, 4, {.scale_by_sqrt_dim = true}, g);
    CHECK(scaled(idx).value().at({0, 0, 1}) == doctest::Approx(2.0 * scaled.weight.value().at({3, 1})));
    CHECK_THROWS_AS(emb.project(Var<double>(Tensor<double>::ones({2, 5}))), Error);
}

TEST_CASE("LayerNorm module normalises the last dim and passes a gradient check") {
    nn::LayerNorm<double> ln(5);
    Generator g(2);
    Tensor<double>(ln.weight.value()).copy_(Tensor<double>::randn({5}, g));
    Tensor<double>(ln.bias.value()).copy_(Tensor<double>::randn({5}, g));
    Var<double> x(Tensor<double>::randn({3, 5}, g), true);
    Tensor<double> y = ln(x).value();
    for (int i = 0; i < 3; ++i) {
        double m = 0, v = 0;
        for (int j = 0; j < 5; ++j) m += x.value().at({i, j});
        m /= 5;
        for (int j = 0; j < 5; ++j) v += std::pow(x.value().at({i, j}) - m, 2);
        v /= 5;
        for (int j = 0; j < 5; ++j)
            CHECK(y.at({i, j}) == doctest::Approx((x.value().at({i, j}) - m) / std::sqrt(v + 1e-5) * ln.weight.value().at({j}) +
                                                  ln.bias.value().at({j})));
    }
    auto r = grad_check([&](const std::vector<Var<double>>& in) { return ln(in[0]); }, {x, ln.weight, ln.bias});
    CHECK_MESSAGE(r.ok, r.report);
    CHECK(nn::LayerNorm<double>({2, 3}, {.affine = false}).named_parameters().empty());
}

TEST_CASE("Dropout zeroes about p of the values in training and is the identity in eval") {
    Generator g(3);
    nn::Dropout<float> drop(0.25, &g);
    Var<float> x(Tensor<float>::ones({100, 100}));
    auto y = drop(x).value().to_vector();
    int zeros = 0;
    for (float v : y) {
        zeros += v == 0.0f;
        CHECK((v == 0.0f || v == doctest::Approx(1.0f / 0.75f)));
    }
    CHECK(zeros == doctest::Approx(2500).epsilon(0.1));
    drop.eval();
    CHECK(drop(x).value().to_vector() == x.value().to_vector());
    CHECK_THROWS_AS(nn::Dropout<float>(1.5), Error);
}

TEST_CASE("LSTM matches a hand-unrolled reference, 2 layers, bidirectional") {
    Generator g(4);
    nn::LSTM<double> lstm(3, 4, {.num_layers = 2, .bidirectional = true}, g);
    Tensor<double> x = Tensor<double>::randn({2, 5, 3}, g);
    auto r = lstm(Var<double>(x));
    CHECK(r.output.shape() == Shape{2, 5, 8});
    CHECK(r.h_n.shape() == Shape{4, 2, 4});
    // Layer 0 from the input, layer 1 from layer 0's concatenated outputs.
    auto xin = nested(x);
    RefOut f0 = lstm_ref(xin, lstm.cell(0, 0), 4, false), b0 = lstm_ref(xin, lstm.cell(0, 1), 4, true);
    std::vector<std::vector<std::vector<double>>> mid(2, std::vector<std::vector<double>>(5));
    for (int b = 0; b < 2; ++b)
        for (int t = 0; t < 5; ++t) {
            mid[b][t] = f0.h[b][t];
            mid[b][t].insert(mid[b][t].end(), b0.h[b][t].begin(), b0.h[b][t].end());
        }
    RefOut f1 = lstm_ref(mid, lstm.cell(1, 0), 4, false), b1 = lstm_ref(mid, lstm.cell(1, 1), 4, true);
    const Tensor<double>& out = r.output.value();
    for (int b = 0; b < 2; ++b)
        for (int t = 0; t < 5; ++t)
            for (int j = 0; j < 4; ++j) {
                CHECK(out.at({b, t, j}) == doctest::Approx(f1.h[b][t][j]).epsilon(1e-12));
                CHECK(out.at({b, t, 4 + j}) == doctest::Approx(b1.h[b][t][j]).epsilon(1e-12));
            }
    for (int b = 0; b < 2; ++b)
        for (int j = 0; j < 4; ++j) {
            CHECK(r.h_n.value().at({0, b, j}) == doctest::Approx(f0.hn[b][j]).epsilon(1e-12));
            CHECK(r.h_n.value().at({3, b, j}) == doctest::Approx(b1.hn[b][j]).epsilon(1e-12));
            CHECK(r.c_n.value().at({1, b, j}) == doctest::Approx(b0.cn[b][j]).epsilon(1e-12));
        }
    auto names = lstm.named_parameters();
    CHECK(names[0].name == "weight_ih_l0");
    CHECK(names[4].name == "weight_ih_l0_reverse");
    CHECK(names.back().name == "bias_hh_l1_reverse");
}

TEST_CASE("LSTM passes a finite-difference check through input, initial state and weights") {
    Generator g(5);
    nn::LSTM<double> lstm(2, 3, {.num_layers = 1, .bidirectional = true}, g);
    Var<double> x(Tensor<double>::randn({2, 3, 2}, g), true), h0(Tensor<double>::randn({2, 2, 3}, g) * 0.5, true),
        c0(Tensor<double>::randn({2, 2, 3}, g) * 0.5, true);
    auto r = grad_check(
        [&](const std::vector<Var<double>>& in) {
            auto o = lstm(in[0], in[1], in[2]);
            return add(sum(o.output), sum(mul(o.c_n, o.c_n)));
        },
        {x, h0, c0, lstm.cell(0, 0).w_ih, lstm.cell(0, 1).w_hh, lstm.cell(0, 1).b_ih});
    CHECK_MESSAGE(r.ok, r.report);
    CHECK_THROWS_WITH_AS(lstm(Var<double>(Tensor<double>::ones({2, 3, 5}))), doctest::Contains("[2, 3, 5]"), Error);
}
