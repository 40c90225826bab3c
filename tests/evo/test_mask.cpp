// Masks over parameter groups of a small nn model: grouping policies, exact
// apply/restore, parallel evaluation with one clone per thread, bad input.
#include <atomic>
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include <polymath/autograd/grad_mode.hpp>
#include <polymath/autograd/unary.hpp>
#include <polymath/evo/mask.hpp>
#include <polymath/nn/conv.hpp>
#include <polymath/nn/linear.hpp>
#include <polymath/nn/lstm.hpp>

using namespace polymath;

namespace {

struct TwoLayer : nn::Module<TwoLayer, float> {
    nn::Linear<float> fc1, fc2;
    TwoLayer() = default;
    explicit TwoLayer(Generator& g) : fc1(4, 6, {}, g), fc2(6, 3, {}, g) {}
    template <class V>
    void visit(V& v) {
        v.module("fc1", fc1);
        v.module("fc2", fc2);
    }
    Var<float> operator()(const Var<float>& x) const { return fc2(relu(fc1(x))); }
};

// Shares the name "fc1" with TwoLayer but not its shape.
struct OneLayer : nn::Module<OneLayer, float> {
    nn::Linear<float> fc1{4, 5};
    template <class V>
    void visit(V& v) {
        v.module("fc1", fc1);
    }
};

// Conv and LSTM parameters as named and shaped by nn/ (PyTorch's layout).
struct ConvLstm : nn::Module<ConvLstm, float> {
    nn::Conv2d<float> conv{3, 8, {3, 3}};  // weight [8, 3, 3, 3], bias [8]
    nn::LSTM<float> lstm{5, 4, {.num_layers = 1, .bidirectional = true}};  // weight_ih_l0 [16, 5], ...
    template <class V>
    void visit(V& v) {
        v.module("conv", conv);
        v.module("lstm", lstm);
    }
};

template <class M>
std::vector<std::uint32_t> bits_of_any(const M& m) {
    std::vector<std::uint32_t> out;
    for (const auto& p : m.parameters()) {
        const float* d = p.value().data();
        for (std::int64_t i = 0; i < p.numel(); ++i) {
            std::uint32_t u;
            std::memcpy(&u, d + i, 4);
            out.push_back(u);
        }
    }
    return out;
}

std::vector<std::uint32_t> bits_of(const TwoLayer& m) { return bits_of_any(m); }

}  // namespace

TEST_CASE("make_groups: per row, row blocks, per tensor, include/exclude globs") {
    Generator g(0);
    TwoLayer m(g);
    // fc1.weight [6,4], fc1.bias [6], fc2.weight [3,6], fc2.bias [3]
    auto rows = evo::make_groups(m, {});
    CHECK(rows.size() == 6 + 6 + 3 + 3);
    CHECK(rows.numel() == 24 + 6 + 18 + 3);
    CHECK(rows.group_name(0) == "fc1.weight[0:1]");
    CHECK(rows.group_name(12) == "fc2.weight[0:1]");
    CHECK(rows.describe().find("mask dimension 18 over 51 elements") != std::string::npos);

    auto blocks = evo::make_groups(m, {.grouping = evo::Grouping::row_block, .block = 4});
    CHECK(blocks.size() == 2 + 2 + 1 + 1);  // 6 rows -> 4 + 2; 3 rows -> 3
    CHECK(blocks.group_name(1) == "fc1.weight[4:6]");
    CHECK(blocks.group_numel(1) == 8);

    auto tensors = evo::make_groups(m, {.grouping = evo::Grouping::per_tensor});
    CHECK(tensors.size() == 4);
    CHECK(tensors.group_name(2) == "fc2.weight");

    auto no_bias = evo::make_groups(m, {.exclude = {"*.bias"}});
    CHECK(no_bias.size() == 9);
    CHECK(no_bias.names == std::vector<std::string>{"fc1.weight", "fc2.weight"});
    auto fc2 = evo::make_groups(m, {.include = {"fc2.*"}});
    CHECK(fc2.size() == 6);

    CHECK(evo::glob_match("*.weight", "a.b.weight"));
    CHECK(evo::glob_match("fc*.w*t", "fc12.weight"));
    CHECK_FALSE(evo::glob_match("fc1.*", "fc2.weight"));
    CHECK_THROWS_WITH_AS(evo::make_groups(m, {.include = {"conv*"}}),
                         doctest::Contains("selects no parameter elements; the model has: fc1.weight, fc1.bias"), Error);
    CHECK_THROWS_WITH_AS(evo::make_groups(m, {.grouping = evo::Grouping::row_block, .block = 0}),
                         doctest::Contains("block >= 1"), Error);
}

TEST_CASE("make_groups on Conv2d and a bidirectional LSTM: output channels and gate rows") {
    ConvLstm m;
    auto conv = evo::make_groups(m, {.include = {"conv.weight"}});
    CHECK(conv.size() == 8);  // one group per output channel
    CHECK(conv.group_numel(0) == 27);
    auto gates = evo::make_groups(m, {.grouping = evo::Grouping::row_block, .block = 4, .include = {"lstm.weight_*"}});
    // weight_ih_l0, weight_hh_l0, weight_ih_l0_reverse, weight_hh_l0_reverse: [16, 5] / [16, 4],
    // blocks of 4 rows = one gate (i, f, g, o) of hidden size 4 each.
    CHECK(gates.names == std::vector<std::string>{"lstm.weight_ih_l0", "lstm.weight_hh_l0", "lstm.weight_ih_l0_reverse",
                                                  "lstm.weight_hh_l0_reverse"});
    CHECK(gates.size() == 16);
    CHECK(gates.group_name(5) == "lstm.weight_hh_l0[4:8]");
    CHECK(gates.group_numel(5) == 16);
    CHECK(gates.numel() == 2 * (16 * 5 + 16 * 4));
    const auto before = bits_of_any(m);
    {
        evo::MaskGuard guard(m, gates, evo::BitGenome(16, 0));
        for (const auto& np : m.named_parameters())
            if (np.name.find("lstm.weight_") == 0)
                for (float v : np.var.value().to_vector()) CHECK(v == 0.0f);
    }
    CHECK(bits_of_any(m) == before);
}

TEST_CASE("MaskGuard zeroes exactly the masked rows and restores every bit on destruction") {
    Generator g(1);
    TwoLayer m(g);
    // Bit patterns that a value comparison would miss: -0.0 and a NaN payload.
    m.fc1.weight.value().data()[1] = -0.0f;
    std::uint32_t payload = 0x7fc01234u;
    std::memcpy(m.fc1.weight.value().data() + 2, &payload, 4);
    const TwoLayer original = m.clone();
    const auto before = bits_of(m);
    const auto groups = evo::make_groups(m, {.grouping = evo::Grouping::row_block, .block = 2});
    // bits: fc1.weight rows {0,1} {2,3} {4,5}; fc1.bias {0,1} {2,3} {4,5}; fc2.weight {0,1} {2}; fc2.bias {0,1} {2}
    // The mask drops fc1.weight rows 0-1 (8 values), fc1.bias 2-3 (2), fc2.weight row 2 (6).
    REQUIRE(groups.size() == 10);
    const evo::BitGenome mask{0, 1, 1, 1, 0, 1, 1, 0, 1, 1};
    {
        evo::MaskGuard guard(m, groups, mask);
        CHECK(guard.zeroed() == 8 + 2 + 6);
        const auto w1 = m.fc1.weight.value().to_vector(), w1o = original.fc1.weight.value().to_vector();
        for (std::size_t i = 0; i < w1.size(); ++i) {
            if (i < 8) CHECK(w1[i] == 0.0f);  // rows 0-1
            else CHECK(w1[i] == w1o[i]);
        }
        const auto b1 = m.fc1.bias.value().to_vector(), b1o = original.fc1.bias.value().to_vector();
        for (std::size_t i = 0; i < 6; ++i) CHECK(b1[i] == (i == 2 || i == 3 ? 0.0f : b1o[i]));
        const auto w2 = m.fc2.weight.value().to_vector(), w2o = original.fc2.weight.value().to_vector();
        for (std::size_t i = 0; i < w2.size(); ++i) CHECK(w2[i] == (i >= 12 ? 0.0f : w2o[i]));  // row 2
        // The masked forward equals the forward of an explicitly zeroed copy.
        TwoLayer z = original.clone();
        for (int i = 0; i < 8; ++i) z.fc1.weight.value().data()[i] = 0;
        z.fc1.bias.value().data()[2] = z.fc1.bias.value().data()[3] = 0;
        for (int i = 12; i < 18; ++i) z.fc2.weight.value().data()[i] = 0;
        Var<float> x(Tensor<float>::rand({5, 4}, g));
        NoGradGuard ng;
        const auto y = m(x).value().to_vector(), yz = z(x).value().to_vector();
        CHECK(y == yz);  // the NaN sits in masked row 0, so neither output has one
    }
    CHECK(bits_of(m) == before);

    // apply_mask / restore, applied twice in a row: still exact.
    auto state = evo::apply_mask(m, groups, evo::BitGenome(10, 0));
    CHECK(state.zeroed() == 51);
    state.apply(m, groups, mask);  // re-applying restores first
    state.restore();
    state.restore();  // idempotent
    CHECK(bits_of(m) == before);
}

TEST_CASE("masks: length mismatch, bad bits and a model that does not match the grouping are errors") {
    Generator g(2);
    TwoLayer m(g);
    const auto before = bits_of(m);
    const auto groups = evo::make_groups(m, {});
    CHECK_THROWS_WITH_AS(evo::MaskGuard(m, groups, evo::BitGenome(17, 1)),
                         doctest::Contains("mask length does not match the grouping: expected 18 bits, got 17"), Error);
    evo::BitGenome two(18, 1);
    two[3] = 2;
    CHECK_THROWS_WITH_AS(evo::MaskGuard(m, groups, two), doctest::Contains("mask bit 3 is 2"), Error);
    CHECK_THROWS_WITH_AS(groups.density(evo::BitGenome(3, 1)), doctest::Contains("expected 18 bits, got 3"), Error);

    OneLayer other;
    CHECK_THROWS_WITH_AS(evo::MaskGuard(other, groups, evo::BitGenome(18, 0)),
                         doctest::Contains("'fc1.weight' has shape [5, 4] but the grouping was made for [6, 4]"), Error);
    auto only_fc2 = evo::make_groups(m, {.include = {"fc2.*"}});
    CHECK_THROWS_WITH_AS(evo::MaskGuard(other, only_fc2, evo::BitGenome(6, 0)),
                         doctest::Contains("no parameter 'fc2.weight'"), Error);
    CHECK(bits_of(m) == before);
    CHECK(groups.density(evo::BitGenome(18, 1)) == 1.0);
}

TEST_CASE("evaluate_masks: same results for 1, 2 and 3 threads as a serial loop; model untouched") {
    Generator g(3);
    TwoLayer m(g);
    const auto before = bits_of(m);
    const auto groups = evo::make_groups(m, {});
    Generator mg(4);
    evo::Rng rng(mg);
    std::vector<evo::BitGenome> masks;
    for (int i = 0; i < 13; ++i) masks.push_back(evo::random_bits(groups.size(), 0.6, rng));
    const Tensor<float> x = Tensor<float>::rand({16, 4}, g);
    auto eval = [&](TwoLayer& model, std::size_t) {
        NoGradGuard ng;
        double s = 0;
        for (float v : model(Var<float>(x)).value().to_vector()) s += double(v) * v;
        return s;
    };
    std::vector<double> serial;
    for (const auto& mask : masks) {
        evo::MaskGuard guard(m, groups, mask);
        serial.push_back(eval(m, 0));
    }
    for (int threads : {1, 2, 3}) {
        CAPTURE(threads);
        const auto r = evo::evaluate_masks(m, groups, masks, eval, threads);
        CHECK(r == serial);
    }
    // The other two sources: a factory (at most one call per worker, on the
    // worker's thread, so possibly concurrently) and given workers.
    std::atomic<int> made{0};
    const auto from_factory = evo::evaluate_masks(
        [&] {
            ++made;
            return m.clone();
        },
        groups, masks, eval, 2);
    CHECK(made >= 1);
    CHECK(made <= 2);
    CHECK(from_factory == serial);
    std::vector<TwoLayer> workers{m.clone(), m.clone(), m.clone()};
    CHECK(evo::evaluate_masks(workers, groups, masks, eval) == serial);
    CHECK(evo::evaluate_masks(workers, groups, masks, eval, 2) == serial);
    CHECK(bits_of(m) == before);
    std::vector<evo::BitGenome> bad = masks;
    bad[7].pop_back();
    CHECK_THROWS_WITH_AS(evo::evaluate_masks(m, groups, bad, eval, 2),
                         doctest::Contains("mask 7 length does not match the grouping: expected 18 bits, got 17"), Error);
    CHECK(evo::evaluate_masks(m, groups, {}, eval, 2).empty());
}
