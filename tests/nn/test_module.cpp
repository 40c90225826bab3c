// Module basics: names, train/eval, freezing, state dicts, clone, init.
#include <doctest/doctest.h>

#include <cmath>
#include <string>

#include "polymath/nn/init.hpp"
#include "polymath/nn/linear.hpp"
#include "polymath/nn/module.hpp"
#include "polymath/polymath.hpp"

using namespace polymath;

namespace {
struct TwoLayer : nn::Module<TwoLayer, double> {
    nn::Linear<double> fc1, fc2;
    nn::ModuleList<nn::Linear<double>> extra;
    TwoLayer(Generator& g) : fc1(3, 4, {}, g), fc2(4, 2, {.bias = false}, g) {
        extra.push_back(nn::Linear<double>(2, 2, {}, g));
    }
    template <class V>
    void visit(V& v) {
        v.module("fc1", fc1);
        v.module("fc2", fc2);
        v.module("extra", extra);
    }
};
}  // namespace

TEST_CASE("named_parameters gives stable dotted names in visit order and skips absent biases") {
    Generator g(1);
    TwoLayer m(g);
    auto np = m.named_parameters();
    REQUIRE(np.size() == 5);
    CHECK(np[0].name == "fc1.weight");
    CHECK(np[1].name == "fc1.bias");
    CHECK(np[2].name == "fc2.weight");
    CHECK(np[3].name == "extra.0.weight");
    CHECK(np[4].name == "extra.0.bias");
    CHECK(m.num_parameters() == 12 + 4 + 8 + 4 + 2);
}

TEST_CASE("train and eval propagate to every sub-module") {
    Generator g(1);
    TwoLayer m(g);
    m.eval();
    CHECK_FALSE(m.is_training());
    CHECK_FALSE(m.fc1.is_training());
    CHECK_FALSE(m.extra[0].is_training());
    m.train();
    CHECK(m.extra[0].is_training());
}

TEST_CASE("freeze stops gradients; trainable_only filters frozen parameters") {
    Generator g(1);
    TwoLayer m(g);
    m.fc1.freeze();
    CHECK(m.parameters(true).size() == 3);
    Var<double> x(Tensor<double>::ones({2, 3}));
    Var<double> y = sum(m.extra[0](m.fc2(m.fc1(x))));
    y.backward();
    CHECK_FALSE(m.fc1.weight.grad().defined());
    CHECK(m.fc2.weight.grad().defined());
}

TEST_CASE("the same seed builds bit-identical models; clone is deep, copy shares") {
    Generator g1(7), g2(7);
    TwoLayer a(g1), b(g2);
    CHECK(a.fc1.weight.value().to_vector() == b.fc1.weight.value().to_vector());
    TwoLayer shared = a;
    TwoLayer deep = a.clone();
    Tensor<double> w = a.fc1.weight.value();
    w.fill_(3.0);
    CHECK(shared.fc1.weight.value().to_vector()[0] == 3.0);
    CHECK(deep.fc1.weight.value().to_vector()[0] != 3.0);
}

TEST_CASE("load_state_dict copies values and lists every mismatch at once") {
    Generator g(3);
    TwoLayer a(g), b(g);
    b.load_state_dict(a.state_dict());
    CHECK(b.fc2.weight.value().to_vector() == a.fc2.weight.value().to_vector());

    auto st = a.state_dict();
    st.erase(st.begin());                                                 // missing fc1.weight
    st[0].second = Tensor<double>::zeros({5});                            // fc1.bias wrong shape
    st.emplace_back("ghost.weight", Tensor<double>::zeros({1}));          // unexpected
    const auto before = b.fc2.weight.value().to_vector();
    try {
        b.load_state_dict(st);
        FAIL("expected an Error");
    } catch (const Error& e) {
        const std::string msg = e.what();
        CHECK(msg.find("3 mismatch") != std::string::npos);
        CHECK(msg.find("missing: 'fc1.weight'") != std::string::npos);
        CHECK(msg.find("shape mismatch: 'fc1.bias'") != std::string::npos);
        CHECK(msg.find("unexpected: 'ghost.weight'") != std::string::npos);
    }
    CHECK(b.fc2.weight.value().to_vector() == before);  // nothing changed
}

TEST_CASE("xavier and kaiming initialisers have the torch bounds and moments") {
    Generator g(11);
    auto w = nn::init::xavier_uniform<double>({200, 300}, 1.0, g);
    const double a = std::sqrt(6.0 / 500.0);
    double mx = 0, s2 = 0;
    for (double v : w.to_vector()) {
        mx = std::max(mx, std::abs(v));
        s2 += v * v;
    }
    CHECK(mx <= a);
    CHECK(mx > 0.99 * a);
    CHECK(s2 / 60000.0 == doctest::Approx(a * a / 3).epsilon(0.03));
    auto k = nn::init::kaiming_normal<double>({64, 32, 3, 3}, std::sqrt(2.0), nn::init::FanMode::fan_in, g);
    double m2 = 0;
    for (double v : k.to_vector()) m2 += v * v;
    CHECK(m2 / double(k.numel()) == doctest::Approx(2.0 / (32 * 9)).epsilon(0.05));
    CHECK_THROWS_AS(nn::init::fans({}), Error);
}

TEST_CASE("Linear matches x W^T + b and passes a finite-difference check") {
    Generator g(5);
    nn::Linear<double> fc(3, 2, {}, g);
    Tensor<double> x = Tensor<double>::randn({4, 3}, g);
    Tensor<double> y = fc(Var<double>(x)).value();
    auto W = fc.weight.value(), b = fc.bias.value();
    for (int i = 0; i < 4; ++i)
        for (int o = 0; o < 2; ++o) {
            double ref = b.at({o});
            for (int k = 0; k < 3; ++k) ref += x.at({i, k}) * W.at({o, k});
            CHECK(y.at({i, o}) == doctest::Approx(ref).epsilon(1e-12));
        }
    Var<double> xv(x, true);
    auto r = grad_check([&](const std::vector<Var<double>>& in) { return fc(in[0]); }, {xv, fc.weight, fc.bias});
    CHECK(r.ok);
    CHECK_THROWS_AS(fc(Var<double>(Tensor<double>::ones({4, 5}))), Error);
}
