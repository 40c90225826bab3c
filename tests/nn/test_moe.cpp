// Mixture-of-experts: grouped GEMM, routing plan, gates, balance losses,
// capacity, padding, dense reference, gradients, determinism.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "polymath/nn/moe.hpp"
#include "polymath/polymath.hpp"

using namespace polymath;

namespace {
Tensor<std::int64_t> offsets_of(std::vector<std::int64_t> counts) {
    std::vector<std::int64_t> o{0};
    for (auto c : counts) o.push_back(o.back() + c);
    return Tensor<std::int64_t>::from_vector(o);
}

void check_close(const Tensor<double>& a, const Tensor<double>& b, double tol = 1e-12) {
    REQUIRE(a.shape() == b.shape());
    auto x = a.contiguous().to_vector(), y = b.contiguous().to_vector();
    for (std::size_t i = 0; i < x.size(); ++i) REQUIRE(x[i] == doctest::Approx(y[i]).epsilon(tol).scale(1.0));
}

// The expert FFN of `moe` for expert e on one token, by loops.
std::vector<double> expert_ref(const nn::MixtureOfExperts<double>& moe, std::int64_t e, const std::vector<double>& x,
                               bool gelu_act = false) {
    const Tensor<double>& W1 = moe.w1.value();
    const Tensor<double>& W2 = moe.w2.value();
    const std::int64_t d = W1.size(1), H = W1.size(2);
    std::vector<double> h(H), y(d);
    for (std::int64_t j = 0; j < H; ++j) {
        double a = moe.b1.value().at({e, j});
        for (std::int64_t i = 0; i < d; ++i) a += x[i] * W1.at({e, i, j});
        h[j] = gelu_act ? 0.5 * a * (1 + std::erf(a / std::sqrt(2.0))) : std::max(a, 0.0);
    }
    for (std::int64_t i = 0; i < d; ++i) {
        double a = moe.b2.value().at({e, i});
        for (std::int64_t j = 0; j < H; ++j) a += h[j] * W2.at({e, j, i});
        y[i] = a;
    }
    return y;
}

std::vector<double> row(const Tensor<double>& x, std::int64_t s) {
    return x.select(0, s).contiguous().to_vector();
}

// Top-k (descending, ties to the lower index) of a row, and the softmax over it.
std::pair<std::vector<std::int64_t>, std::vector<double>> topk_softmax(const std::vector<double>& l, int k) {
    std::vector<std::int64_t> idx(l.size());
    std::iota(idx.begin(), idx.end(), 0);
    std::stable_sort(idx.begin(), idx.end(), [&](auto a, auto b) { return l[a] > l[b]; });
    idx.resize(k);
    double mx = l[idx[0]], z = 0;
    for (auto i : idx) z += std::exp(l[i] - mx);
    std::vector<double> g;
    for (auto i : idx) g.push_back(std::exp(l[i] - mx) / z);
    return {idx, g};
}

double cv2_ref(const std::vector<double>& v) {
    double m = 0, var = 0;
    for (double x : v) m += x;
    m /= double(v.size());
    for (double x : v) var += (x - m) * (x - m);
    var /= double(v.size());
    return var / (m * m + 1e-10);
}

nn::MixtureOfExperts<double> make_moe(std::int64_t d, nn::MoeOptions opt, std::uint64_t seed) {
    Generator g(seed);
    nn::MixtureOfExperts<double> moe(d, opt, g);
    Tensor<double>(moe.w_gate.value()).copy_(Tensor<double>::randn(moe.w_gate.shape(), g));
    if (moe.w_noise.defined()) Tensor<double>(moe.w_noise.value()).copy_(Tensor<double>::randn(moe.w_noise.shape(), g) * 0.3);
    return moe;
}
}  // namespace

TEST_CASE("grouped_gemm equals one matmul per group, empty groups included") {
    Generator g(1);
    const auto off = offsets_of({3, 0, 5, 1});
    Tensor<double> a = Tensor<double>::randn({9, 4}, g), b = Tensor<double>::randn({4, 4, 6}, g);
    Tensor<double> y = ops::grouped_gemm(a, b, off);
    Tensor<double> bt = Tensor<double>::randn({4, 6, 4}, g);
    Tensor<double> yt = ops::grouped_gemm(a, bt, off, true);
    Tensor<double> gy = Tensor<double>::randn({9, 6}, g);
    Tensor<double> dw = ops::grouped_gemm_tn(a, gy, off);
    const std::vector<std::int64_t> o = off.to_vector();
    for (int e = 0; e < 4; ++e) {
        const std::int64_t n = o[e + 1] - o[e];
        if (n > 0) {
            check_close(y.narrow(0, o[e], n), ops::matmul(a.narrow(0, o[e], n), b.select(0, e)));
            check_close(yt.narrow(0, o[e], n), ops::matmul(a.narrow(0, o[e], n), bt.select(0, e).t()));
            check_close(dw.select(0, e), ops::matmul(a.narrow(0, o[e], n).t(), gy.narrow(0, o[e], n)));
        } else {
            for (double v : dw.select(0, e).contiguous().to_vector()) CHECK(v == 0.0);
        }
    }
    Tensor<double> bias = Tensor<double>::randn({4, 6}, g);
    Tensor<double> yb = y.clone();
    ops::grouped_bias_add_(yb, bias, off);
    CHECK(yb.at({4, 2}) == doctest::Approx(y.at({4, 2}) + bias.at({2, 2})));
    Tensor<double> rs = ops::grouped_row_sum(gy, off);
    CHECK(rs.at({2, 1}) == doctest::Approx(gy.at({3, 1}) + gy.at({4, 1}) + gy.at({5, 1}) + gy.at({6, 1}) + gy.at({7, 1})));
    CHECK(rs.at({1, 0}) == 0.0);
    CHECK_THROWS_WITH_AS(ops::grouped_gemm(a, b, offsets_of({3, 0, 5, 2})), doctest::Contains("row count"), Error);
    CHECK_THROWS_WITH_AS(ops::grouped_gemm(a, b, offsets_of({3, 6})), doctest::Contains("[E+1]"), Error);
}

TEST_CASE("grouped_linear passes a finite-difference check on x, W and b") {
    Generator g(2);
    const auto off = offsets_of({2, 0, 3});
    Var<double> x(Tensor<double>::randn({5, 3}, g), true), w(Tensor<double>::randn({3, 3, 4}, g), true),
        b(Tensor<double>::randn({3, 4}, g), true);
    auto r = grad_check([&](const std::vector<Var<double>>& in) { return grouped_linear(in[0], in[1], in[2], off); },
                        {x, w, b});
    CHECK_MESSAGE(r.ok, r.report);
}

TEST_CASE("moe_plan sorts by expert, admits first choices first and drops overflow") {
    // 4 tokens, k = 2; everyone's first choice is expert 0, capacity 2.
    Tensor<std::int64_t> idx = Tensor<std::int64_t>::from_vector({0, 1, 0, 2, 0, 1, 0, 2}, {4, 2});
    ops::MoePlan p = ops::moe_plan(idx, 3, 2);
    CHECK(p.expert_offsets.to_vector() == std::vector<std::int64_t>{0, 2, 4, 6});
    CHECK(p.dropped == 2);                          // tokens 2 and 3 lose their first choice
    CHECK(p.slot_row[2 * 2 + 0] == -1);
    CHECK(p.slot_row[3 * 2 + 0] == -1);
    CHECK(p.row_token == std::vector<std::int64_t>{0, 1, 0, 2, 1, 3});
    // Padding token 1 takes no capacity: token 2 now gets expert 0.
    Tensor<std::uint8_t> pad = Tensor<std::uint8_t>::from_vector({0, 1, 0, 0});
    ops::MoePlan q = ops::moe_plan(idx, 3, 2, pad);
    CHECK(q.slot_row[2 * 2 + 0] >= 0);
    CHECK(q.slot_row[1 * 2 + 0] == -1);
    CHECK(q.slot_row[1 * 2 + 1] == -1);
    CHECK(q.valid_tokens == 3);
    CHECK_THROWS_WITH_AS(ops::moe_plan(idx, 2, -1), doctest::Contains("outside [0, 2)"), Error);
}

TEST_CASE("top-k selection and renormalised gates match an independent computation; dropless equals a dense reference") {
    auto moe = make_moe(6, {.num_experts = 5, .k = 2, .hidden = 7}, 3);
    moe.eval();
    Generator g(4);
    Tensor<double> x = Tensor<double>::randn({2, 4, 6}, g);
    auto r = moe(Var<double>(x));
    Tensor<double> xf = x.reshape({8, 6});
    Tensor<double> logits = ops::matmul(xf, moe.w_gate.value());
    Tensor<double> y = r.y.value().reshape({8, 6});
    for (std::int64_t s = 0; s < 8; ++s) {
        auto [idx, gates] = topk_softmax(row(logits, s), 2);
        for (int j = 0; j < 2; ++j) {
            CHECK(r.expert_indices.at({s, j}) == idx[j]);
            CHECK(r.gates.value().at({s, j}) == doctest::Approx(gates[j]).epsilon(1e-12));
        }
        std::vector<double> ref(6, 0.0);
        for (int j = 0; j < 2; ++j) {
            auto ye = expert_ref(moe, idx[j], row(xf, s));
            for (int c = 0; c < 6; ++c) ref[c] += gates[j] * ye[c];
        }
        for (int c = 0; c < 6; ++c) CHECK(y.at({s, c}) == doctest::Approx(ref[c]).epsilon(1e-12));
    }
    CHECK(r.stats.dropped == 0);
}

TEST_CASE("balance losses equal the paper's formulas computed by hand (noisy gating, training)") {
    const std::int64_t d = 4, E = 4, K = 2, S = 6;
    auto moe = make_moe(d, {.num_experts = E, .k = K, .hidden = 3, .importance_weight = 0.5, .load_weight = 0.25}, 5);
    Generator noise_gen(77);
    moe.set_generator(&noise_gen);
    Generator replay = noise_gen;  // same stream: the test redraws the noise
    Generator g(6);
    Tensor<double> x = Tensor<double>::randn({S, d}, g);
    auto r = moe(Var<double>(x));
    Tensor<double> noise = Tensor<double>::randn({S, E}, replay);
    Tensor<double> clean = ops::matmul(x, moe.w_gate.value());
    Tensor<double> raw = ops::matmul(x, moe.w_noise.value());
    std::vector<double> importance(E, 0.0), load(E, 0.0);
    for (std::int64_t s = 0; s < S; ++s) {
        std::vector<double> h(E), sd(E);
        for (std::int64_t e = 0; e < E; ++e) {
            sd[e] = std::log1p(std::exp(raw.at({s, e}))) + 1e-2;
            h[e] = clean.at({s, e}) + noise.at({s, e}) * sd[e];
        }
        auto [idx, gates] = topk_softmax(h, K);
        for (int j = 0; j < K; ++j) importance[idx[j]] += gates[j];
        std::vector<double> sorted = h;
        std::sort(sorted.rbegin(), sorted.rend());
        for (std::int64_t e = 0; e < E; ++e) {
            // k-th largest of h over the other experts
            std::vector<double> others;
            for (std::int64_t o = 0; o < E; ++o)
                if (o != e) others.push_back(h[o]);
            std::sort(others.rbegin(), others.rend());
            const double theta = others[K - 1];
            load[e] += 0.5 * std::erfc(-(clean.at({s, e}) - theta) / sd[e] / std::sqrt(2.0));
        }
    }
    for (std::int64_t e = 0; e < E; ++e) {
        CHECK(r.stats.importance[e] == doctest::Approx(importance[e]).epsilon(1e-12));
        CHECK(r.stats.load[e] == doctest::Approx(load[e]).epsilon(1e-12));
    }
    CHECK(r.importance_loss.item() == doctest::Approx(0.5 * cv2_ref(importance)).epsilon(1e-10));
    CHECK(r.load_loss.item() == doctest::Approx(0.25 * cv2_ref(load)).epsilon(1e-10));
    CHECK(r.aux_loss.item() == doctest::Approx(0.5 * cv2_ref(importance) + 0.25 * cv2_ref(load)).epsilon(1e-10));
}

TEST_CASE("capacity overflow drops the later tokens' first choices and keeps their second") {
    const std::int64_t d = 3, E = 3, S = 6;
    auto moe = make_moe(d, {.num_experts = E, .k = 2, .hidden = 4, .noisy_gating = false, .capacity_factor = 1.0}, 8);
    // Gates: tokens 0-3 (feature 0) choose experts 0 then 1; tokens 4-5
    // (feature 2) choose 0 then 2. Feature 1 varies the tokens, gate-neutral.
    Tensor<double> wg = Tensor<double>::from_vector({3, 2, 0, 0, 0, 0, 3, 0, 2}, {3, 3});
    Tensor<double>(moe.w_gate.value()).copy_(wg);
    Tensor<double> x = Tensor<double>::zeros({S, d});
    for (std::int64_t s = 0; s < S; ++s) {
        x.at({s, s < 4 ? 0 : 2}) = 1.0;
        x.at({s, 1}) = 0.1 * double(s + 1);
    }
    auto r = moe(Var<double>(x));
    // capacity = ceil(1.0 * 6 * 2 / 3) = 4: tokens 0-3 take expert 0; 4 and 5 lose it.
    CHECK(r.stats.dropped == 2);
    CHECK(r.stats.tokens_per_expert == std::vector<std::int64_t>{4, 4, 2});
    Tensor<double> y = r.y.value();
    for (std::int64_t s = 0; s < S; ++s) {
        const double g0 = r.gates.value().at({s, 0}), g1 = r.gates.value().at({s, 1});
        auto y0 = expert_ref(moe, 0, row(x, s)), y1 = expert_ref(moe, s < 4 ? 1 : 2, row(x, s));
        for (int c = 0; c < d; ++c) {
            const double ref = (s < 4 ? g0 * y0[c] : 0.0) + g1 * y1[c];
            CHECK(y.at({s, c}) == doctest::Approx(ref).epsilon(1e-12));
        }
    }
    // eval() uses eval_capacity_factor, dropless by default.
    moe.eval();
    CHECK(moe(Var<double>(x)).stats.dropped == 0);
}

TEST_CASE("padding tokens get zero output, take no capacity and do not count in the balance losses") {
    auto moe = make_moe(4, {.num_experts = 4, .k = 2, .hidden = 5, .noisy_gating = false}, 10);
    Generator g(11);
    Tensor<double> x = Tensor<double>::randn({2, 3, 4}, g);
    Tensor<std::uint8_t> pad = Tensor<std::uint8_t>::from_vector({0, 0, 1, 0, 1, 1}, {2, 3});
    auto r = moe(Var<double>(x), pad);
    CHECK(r.stats.valid_tokens == 3);
    for (double v : r.y.value().select(0, 1).select(0, 2).contiguous().to_vector()) CHECK(v == 0.0);
    double total = 0;
    for (double v : r.stats.importance) total += v;
    CHECK(total == doctest::Approx(3.0));  // gates of each valid token sum to 1
    // Same losses as running only the valid tokens.
    Tensor<double> xv = ops::concat(std::vector<Tensor<double>>{x.select(0, 0).narrow(0, 0, 2), x.select(0, 1).narrow(0, 0, 1)}, 0);
    auto rv = moe(Var<double>(xv));
    CHECK(r.aux_loss.item() == doctest::Approx(rv.aux_loss.item()).epsilon(1e-12));
}

TEST_CASE("the MoE layer passes a finite-difference check, gates and noise network included") {
    auto moe = make_moe(3, {.num_experts = 4, .k = 2, .hidden = 4, .activation = nn::Activation::gelu}, 12);
    Generator noise_gen(5);
    moe.set_generator(&noise_gen);
    Generator g(13);
    Var<double> x(Tensor<double>::randn({5, 3}, g), true);
    auto f = [&](const std::vector<Var<double>>& in) {
        noise_gen.manual_seed(5);  // the same noise at every evaluation
        auto r = moe(in[0]);
        return add(sum(mul(r.y, r.y)), r.aux_loss);
    };
    auto rep = grad_check(f, {x, moe.w_gate, moe.w_noise, moe.w1, moe.b1, moe.w2, moe.b2});
    CHECK_MESSAGE(rep.ok, rep.report);
}

TEST_CASE("MoE results and gradients are bit-identical for 1 and 2 threads") {
    auto run = [](int threads) {
        set_num_threads(threads);
        auto moe = make_moe(32, {.num_experts = 8, .k = 2, .hidden = 64}, 14);
        Generator ng(3);
        moe.set_generator(&ng);
        Generator g(15);
        Var<double> x(Tensor<double>::randn({256, 32}, g), true);
        auto r = moe(x);
        add(sum(mul(r.y, r.y)), r.aux_loss).backward();
        auto out = r.y.value().to_vector();
        auto gx = x.grad().to_vector();
        auto gw = moe.w1.grad().to_vector();
        out.insert(out.end(), gx.begin(), gx.end());
        out.insert(out.end(), gw.begin(), gw.end());
        return out;
    };
    const int saved = num_threads();
    auto a = run(1), b = run(2);
    set_num_threads(saved);
    CHECK(a == b);
}
