// Head2Toe (pooling, feature extraction through taps, group lasso, selection,
// sweep), MixGen and distillation.
#include <doctest/doctest.h>

#include <cmath>
#include <iomanip>
#include <sstream>
#include <string>

#include "peft_test_util.hpp"
#include "polymath/autograd/grad_check.hpp"

using namespace polymath;
using namespace peft_test;
namespace h2t = polymath::peft::head2toe;

TEST_CASE("pool_features: adaptive average bins as torch.adaptive_avg_pool1d, channels-last positions") {
    // [1, 5] -> 2 bins [0, 3) and [2, 5): (1+2+3)/3 = 2, (3+4+5)/3 = 4.
    CHECK(same_values(h2t::pool_features(Tensor<double>{{1, 2, 3, 4, 5}}, 2), Tensor<double>{{2, 4}}));
    CHECK(same_values(h2t::pool_features(Tensor<double>{{1, 2, 3}}, 8), Tensor<double>{{1, 2, 3}}));
    // [1, L=4, C=2], value 10·p + c, target 4 -> P = 2 position bins, position-major: 5 6 25 26.
    Tensor<double> y = Tensor<double>::empty({1, 4, 2});
    for (int p = 0; p < 4; ++p)
        for (int c = 0; c < 2; ++c) y.data()[p * 2 + c] = 10 * p + c;
    CHECK(same_values(h2t::pool_features(y, 4), Tensor<double>{{5, 6, 25, 26}}));
    // [1, L=3, C=4] with C > target 2: mean over positions (4, 5, 6, 7), then channel bins: 4.5 6.5.
    Tensor<double> z = Tensor<double>::empty({1, 3, 4});
    for (int i = 0; i < 12; ++i) z.data()[i] = i;
    CHECK(same_values(h2t::pool_features(z, 2), Tensor<double>{{4.5, 6.5}}));
    CHECK_THROWS_AS(h2t::pool_features(Tensor<double>{1, 2}, 2), Error);
}

TEST_CASE("extract runs the backbone once per batch, pools every tap, and groups by layer or chunk") {
    Generator g(21);
    Encoder<float> m(4, 8, 3, 2, g);
    std::vector<Var<float>> xs;
    for (int b = 0; b < 3; ++b) xs.emplace_back(Tensor<float>::randn({2, 5, 4}, g));
    const Tensor<float> out_before = m(xs[0]).value().clone();
    auto taps = peft::tap_features(m, "blocks.*.fc");
    CHECK(taps.names() == std::vector<std::string>{"blocks.0.fc", "blocks.1.fc"});
    CHECK(same_values(m(xs[0]).value(), out_before));  // taps do not change the computation
    int calls = 0;
    const auto f = h2t::extract(taps, 3, [&](std::int64_t b) { ++calls, m(xs[std::size_t(b)]); },
                                {.target_features = 16});
    CHECK(calls == 3);
    // fc outputs [2, 5, 8], target 16: P = min(5, 16 / 8) = 2 position bins -> 16 per layer.
    CHECK(f.x.shape() == Shape{6, 32});
    REQUIRE(f.groups.size() == 2);
    CHECK(f.groups[1].name == "blocks.1.fc");
    CHECK(f.groups[1].offset == 16);
    // Independent reference for batch 1, layer 0: recompute blocks.0.fc's output by hand.
    {
        NoGradGuard ng;
        const Var<float> e = m.embed(xs[1]);
        const Var<float> h = add(e, m.blocks[0].attention(e));
        const Tensor<float> want = h2t::pool_features(m.blocks[0].fc.forward(h).value(), 16);
        CHECK(same_values(f.x.narrow(0, 2, 2).narrow(1, 0, 16).contiguous(), want));
    }
    const auto chunks = h2t::extract(taps, 1, [&](std::int64_t) { m(xs[0]); }, {.target_features = 16, .group_size = 5});
    REQUIRE(chunks.groups.size() == 8);  // 5 + 5 + 5 + 1 per layer
    CHECK(chunks.groups[3].size == 1);
    CHECK(chunks.groups[4].name == "blocks.1.fc#0");
    taps.remove(m);
    CHECK(m.blocks[0].fc.extensions().empty());
}

namespace {
// 4 groups of 4 features; only group 2 carries the label (±1 + noise), the rest is noise.
h2t::Features<double> synthetic(Generator& g, const Tensor<std::int64_t>& y) {
    const std::int64_t N = y.numel();
    h2t::Features<double> f;
    f.x = Tensor<double>::randn({N, 16}, g);
    for (std::int64_t i = 0; i < N; ++i)
        for (int c = 8; c < 12; ++c) f.x.data()[i * 16 + c] = 0.7 * f.x.data()[i * 16 + c] + (y.data()[i] ? 1.0 : -1.0);
    for (int k = 0; k < 4; ++k) f.groups.push_back({"layer" + std::to_string(k), 4 * k, 4});
    return f;
}
Tensor<std::int64_t> labels(std::int64_t n) {
    std::vector<std::int64_t> v;
    for (std::int64_t i = 0; i < n; ++i) v.push_back((i * 7 + i / 3) % 2);
    return Tensor<std::int64_t>::from_vector(v);
}
}  // namespace

TEST_CASE("group lasso: a large penalty zeroes every group exactly; a moderate one keeps the informative group") {
    Generator g(22);
    const auto y = labels(200);
    const auto tr = synthetic(g, y);
    const auto big = h2t::train_probe(tr.x, y, 2, tr.groups, {.lambda = 100.0, .lr = 0.5, .steps = 20});
    for (double n : h2t::group_norms(big.weight, tr.groups)) CHECK(n == 0.0);
    const auto mid = h2t::train_probe(tr.x, y, 2, tr.groups, {.lambda = 0.05, .lr = 0.5, .steps = 200});
    const auto norms = h2t::group_norms(mid.weight, tr.groups);
    CHECK(norms[2] > 0.1);
    for (int k : {0, 1, 3}) CHECK(norms[std::size_t(k)] < 0.25 * norms[2]);
    CHECK(h2t::select_groups(norms, 0.25) == std::vector<std::size_t>{2});
    // Groups outside the features are an Error, not an out-of-bounds read.
    auto bad = tr.groups;
    bad[3].size = 5;
    CHECK_THROWS_WITH_AS(h2t::train_probe(tr.x, y, 2, bad, {.steps = 1}),
                         doctest::Contains("group 'layer3' (offset 12, size 5)"), Error);
}

TEST_CASE("select_groups keeps exactly round(fraction · G) groups, ties to the lower index") {
    const std::vector<double> norms{3, 1, 2, 2, 0};
    CHECK(h2t::select_groups(norms, 0.4) == std::vector<std::size_t>{0, 2});
    CHECK(h2t::select_groups(norms, 0.6) == std::vector<std::size_t>{0, 2, 3});
    CHECK(h2t::select_groups(norms, 1.0).size() == 5);
    CHECK(h2t::select_groups(norms, 0.01) == std::vector<std::size_t>{0});  // at least one
    const std::vector<double> zeros(10, 0.0);
    for (int k = 1; k <= 10; ++k) CHECK(h2t::select_groups(zeros, k / 10.0).size() == std::size_t(k));
    CHECK_THROWS_AS(h2t::select_groups(norms, 0.0), Error);
    CHECK_THROWS_AS(h2t::select_groups(norms, 1.5), Error);
}

TEST_CASE("sweep: accuracy vs fraction kept on synthetic layers, probe sizes match the kept features") {
    Generator g(23);
    const auto ytr = labels(200), yte = labels(100);
    const auto tr = synthetic(g, ytr), te = synthetic(g, yte);
    const auto rows = h2t::sweep(tr, ytr, te, yte, 2, {0.25, 0.5, 1.0},
                                 {.select = {.lambda = 0.05, .lr = 0.5, .steps = 200}, .final = {.lr = 0.5, .steps = 200}});
    REQUIRE(rows.size() == 3);
    CHECK(rows[0].groups_kept == 1);
    CHECK(rows[0].features_kept == 4);
    CHECK(rows[0].probe_parameters == 4 * 2 + 2);
    CHECK(rows[1].groups_kept == 2);
    CHECK(rows[2].features_kept == 16);
    CHECK(rows[0].test_accuracy > 0.95);  // the informative group alone separates the classes
    const std::string table = h2t::format_sweep({rows[0]});
    CHECK(table ==
          "| fraction | groups | features | probe params | train acc | test acc |\n"
          "|---:|---:|---:|---:|---:|---:|\n"
          "| 0.250 | 1 | 4 | 10 | " + [&] { std::ostringstream o; o << std::fixed << std::setprecision(4) << rows[0].train_accuracy << " | " << rows[0].test_accuracy; return o.str(); }() + " |\n");
}

TEST_CASE("MixGen blends the first M images with their partners i+M and concatenates the texts") {
    const Tensor<float> img{{0, 1}, {2, 3}, {4, 5}, {6, 7}};
    const std::vector<std::vector<std::int64_t>> txt{{1, 2}, {3}, {4}, {5, 6}};
    const auto out = peft::mixgen(img, txt, 2, 0.25, /*separator=*/9);
    // 0.25·[0, 1] + 0.75·[4, 5] = [3, 4]; 0.25·[2, 3] + 0.75·[6, 7] = [5, 6].
    CHECK(same_values(out.images, Tensor<float>{{3, 4}, {5, 6}, {4, 5}, {6, 7}}));
    CHECK(out.texts[0] == std::vector<std::int64_t>{1, 2, 9, 4});
    CHECK(out.texts[1] == std::vector<std::int64_t>{3, 9, 5, 6});
    CHECK(out.texts[3] == txt[3]);
    CHECK(same_values(img, Tensor<float>{{0, 1}, {2, 3}, {4, 5}, {6, 7}}));  // input untouched
    CHECK(peft::mixgen(img, txt, 1, 0.5, -1, 2).texts[0] == std::vector<std::int64_t>{1, 2});  // truncated
    CHECK_THROWS_AS(peft::mixgen(img, txt, 3), Error);
    CHECK_THROWS_AS(peft::mixgen(img, {{1}}, 1), Error);
}

TEST_CASE("distillation KL matches a brute-force T²·KL, is 0 for equal logits, and passes grad_check") {
    const Tensor<double> s{{1.0, 2.0, 0.5}, {-1.0, 0.0, 3.0}};
    const Tensor<double> t{{3.0, 2.0, 1.0}, {0.5, 0.5, -2.0}};
    const double T = 2.0;
    double want = 0;
    for (int b = 0; b < 2; ++b) {
        double zs = 0, zt = 0;
        for (int k = 0; k < 3; ++k) zs += std::exp(s.data()[b * 3 + k] / T), zt += std::exp(t.data()[b * 3 + k] / T);
        for (int k = 0; k < 3; ++k) {
            const double p = std::exp(t.data()[b * 3 + k] / T) / zt, q = std::exp(s.data()[b * 3 + k] / T) / zs;
            want += p * std::log(p / q);
        }
    }
    want *= T * T / 2;
    CHECK(std::fabs(peft::distillation_kl(Var<double>(s), t, T).item() - want) <= 1e-12);
    CHECK(std::fabs(peft::distillation_kl(Var<double>(t), t, 3.0).item()) <= 1e-12);
    const auto gc = grad_check([&](const std::vector<Var<double>>& in) { return peft::distillation_kl(in[0], t, T); },
                               {Var<double>(s.clone())});
    CHECK_MESSAGE(gc.ok, gc.report);
    const Tensor<std::int64_t> y = Tensor<std::int64_t>::from_vector({0, 2});
    const double ce = cross_entropy(Var<double>(s), y).item();
    CHECK(std::fabs(peft::distillation_loss(Var<double>(s), t, y, {.temperature = T, .alpha = 1}).item() - want) <= 1e-12);
    CHECK(std::fabs(peft::distillation_loss(Var<double>(s), t, y, {.temperature = T, .alpha = 0}).item() - ce) <= 1e-12);
    CHECK(std::fabs(peft::distillation_loss(Var<double>(s), t, y, {.temperature = T, .alpha = 0.3}).item() -
                    (0.3 * want + 0.7 * ce)) <= 1e-12);
    const auto gc2 = grad_check(
        [&](const std::vector<Var<double>>& in) { return peft::distillation_loss(in[0], t, y, {.temperature = T, .alpha = 0.6}); },
        {Var<double>(s.clone())});
    CHECK_MESSAGE(gc2.ok, gc2.report);
    CHECK_THROWS_AS(peft::distillation_kl(Var<double>(s), t.narrow(1, 0, 2), T), Error);
}
