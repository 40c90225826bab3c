// Optimizer state save/restore, frozen parameters, gradient clipping and
// learning-rate schedules.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <numbers>
#include <string>
#include <vector>

#include "polymath/nn/linear.hpp"
#include "polymath/nn/module.hpp"
#include "polymath/optim/adafactor.hpp"
#include "polymath/optim/adam.hpp"
#include "polymath/optim/clip.hpp"
#include "polymath/optim/optimizer.hpp"
#include "polymath/optim/schedule.hpp"
#include "polymath/optim/sgd.hpp"
#include "polymath/polymath.hpp"

using namespace polymath;
using Vec = std::vector<double>;

namespace {

struct Net : nn::Module<Net, double> {
    nn::Linear<double> fc1, fc2;
    explicit Net(Generator& g) : fc1(3, 4, {}, g), fc2(4, 2, {}, g) {}
    Var<double> operator()(const Var<double>& x) const { return fc2(tanh(fc1(x))); }
    template <class V>
    void visit(V& v) {
        v.module("fc1", fc1);
        v.module("fc2", fc2);
    }
};

struct Data {
    Var<double> x, y;
};
Data batch(std::uint64_t seed) {
    Generator g(seed);
    return {Var<double>(Tensor<double>::randn({5, 3}, g)), Var<double>(Tensor<double>::randn({5, 2}, g))};
}

// One training step on batch `k` (the data differs per step).
void train_step(Net& net, optim::Optimizer<double>& opt, int k) {
    const Data d = batch(100 + std::uint64_t(k));
    opt.zero_grad();
    Var<double> loss = mean(square(net(d.x) - d.y));
    loss.backward();
    opt.step();
}

using Factory = std::function<std::unique_ptr<optim::Optimizer<double>>(Net&)>;

bool bit_equal(const Tensor<double>& a, const Tensor<double>& b) {
    return a.shape() == b.shape() && a.to_vector() == b.to_vector();
}

}  // namespace

TEST_CASE("state() then load_state() into a fresh optimizer continues bit-identically to uninterrupted training") {
    const std::pair<const char*, Factory> kinds[] = {
        {"SGD nesterov",
         [](Net& n) {
             return std::make_unique<optim::SGD<double>>(
                 n.named_parameters(), optim::SGDOptions{.lr = 0.05, .momentum = 0.9, .weight_decay = 1e-3,
                                                         .nesterov = true});
         }},
        {"Adam amsgrad",
         [](Net& n) {
             return std::make_unique<optim::Adam<double>>(
                 n.named_parameters(), optim::AdamOptions{.lr = 0.01, .weight_decay = 1e-2, .amsgrad = true});
         }},
        {"AdamW",
         [](Net& n) { return std::make_unique<optim::AdamW<double>>(n.named_parameters(), optim::AdamWOptions{}); }},
        {"Adafactor momentum",
         [](Net& n) {
             return std::make_unique<optim::Adafactor<double>>(n.named_parameters(),
                                                               optim::AdafactorOptions{.beta1 = 0.9});
         }},
    };
    const int N = 4;
    for (const auto& [what, make] : kinds) {
        INFO(std::string(what));
        Generator g(7);
        Net a(g);
        Net b = a.clone();
        // Uninterrupted: 2N steps, with a learning-rate change half way.
        auto oa = make(a);
        for (int k = 0; k < N; ++k) train_step(a, *oa, k);
        oa->set_lr(oa->lr() * 0.5);
        for (int k = N; k < 2 * N; ++k) train_step(a, *oa, k);

        // Interrupted: N steps, snapshot, a fresh optimizer (with its default lr) resumes.
        optim::OptimizerState<double> st;
        {
            auto ob = make(b);
            for (int k = 0; k < N; ++k) train_step(b, *ob, k);
            ob->set_lr(ob->lr() * 0.5);
            st = ob->state();
            train_step(b, *ob, 999);  // later steps of the old optimizer must not leak into the snapshot...
        }
        // ...so restore b's parameters to the snapshot point by replaying on a clone.
        Generator g2(7);
        Net c(g2);
        {
            auto oc = make(c);
            for (int k = 0; k < N; ++k) train_step(c, *oc, k);
        }
        auto resumed = make(c);
        CHECK(resumed->step_count() == 0);
        resumed->load_state(st);
        CHECK(resumed->step_count() == N);
        CHECK(resumed->lr() == oa->lr());
        for (int k = N; k < 2 * N; ++k) train_step(c, *resumed, k);

        const auto pa = a.state_dict(), pc = c.state_dict();
        REQUIRE(pa.size() == pc.size());
        for (std::size_t i = 0; i < pa.size(); ++i) {
            INFO(pa[i].first);
            CHECK(bit_equal(pa[i].second, pc[i].second));
        }
        const auto sa = oa->state(), sc = resumed->state();
        CHECK(sa.scalars == sc.scalars);
        REQUIRE(sa.tensors.size() == sc.tensors.size());
        for (std::size_t i = 0; i < sa.tensors.size(); ++i) {
            CHECK(sa.tensors[i].first == sc.tensors[i].first);
            CHECK(bit_equal(sa.tensors[i].second, sc.tensors[i].second));
        }
    }
}

TEST_CASE("state() names slots '<param>.<slot>' and writes step, lr and hyper-parameters as exact text") {
    Generator g(1);
    Net net(g);
    optim::Adam<double> opt(net.named_parameters(), {.lr = 0.1 / 3.0, .beta2 = 0.98});
    train_step(net, opt, 0);
    train_step(net, opt, 1);
    const auto st = opt.state();
    CHECK(st.scalars.at("optimizer") == "Adam");
    CHECK(st.scalars.at("step") == "2");
    CHECK(st.scalars.at("fc1.weight.step") == "2");
    CHECK(std::stod(st.scalars.at("lr")) == 0.1 / 3.0);  // %.17g round-trips
    CHECK(st.scalars.at("beta2") == "0.97999999999999998");
    CHECK(st.scalars.at("amsgrad") == "false");
    std::vector<std::string> names;
    for (const auto& [n, t] : st.tensors) names.push_back(n);
    CHECK(names == std::vector<std::string>{"fc1.weight.exp_avg", "fc1.weight.exp_avg_sq", "fc1.bias.exp_avg",
                                            "fc1.bias.exp_avg_sq", "fc2.weight.exp_avg", "fc2.weight.exp_avg_sq",
                                            "fc2.bias.exp_avg", "fc2.bias.exp_avg_sq"});
    // Copies: training on does not change a snapshot.
    const Vec before = st.tensors[0].second.to_vector();
    train_step(net, opt, 2);
    CHECK(st.tensors[0].second.to_vector() == before);
}

TEST_CASE("load_state lists every mismatch (type, missing, unexpected, shape, bad scalar) and changes nothing") {
    Generator g(2);
    Net net(g);
    optim::Adam<double> trained(net.named_parameters(), {.lr = 0.01});
    train_step(net, trained, 0);
    auto st = trained.state();
    st.scalars["optimizer"] = "SGD";
    st.scalars["eps"] = "tiny";
    st.scalars["bogus"] = "1";
    std::erase_if(st.tensors, [](const auto& e) { return e.first == "fc1.bias.exp_avg"; });
    for (auto& [n, t] : st.tensors)
        if (n == "fc2.weight.exp_avg_sq") t = Tensor<double>::zeros({4, 2});
    st.tensors.emplace_back("fc3.weight.exp_avg", Tensor<double>::zeros({1}));

    optim::Adam<double> fresh(net.named_parameters(), {.lr = 0.5});
    std::string msg;
    try {
        fresh.load_state(st);
    } catch (const Error& e) {
        msg = e.what();
    }
    INFO(msg);
    CHECK(msg.find("Adam::load_state") != std::string::npos);
    CHECK(msg.find("6 mismatch(es)") != std::string::npos);
    CHECK(msg.find("the state is for 'SGD', this optimizer is 'Adam'") != std::string::npos);
    CHECK(msg.find("bad scalar: 'eps' = 'tiny'") != std::string::npos);
    CHECK(msg.find("unexpected scalar: 'bogus'") != std::string::npos);
    CHECK(msg.find("missing: 'fc1.bias.exp_avg' (expected shape [4])") != std::string::npos);
    CHECK(msg.find("shape mismatch: 'fc2.weight.exp_avg_sq' expected [2, 4] vs given [4, 2]") != std::string::npos);
    CHECK(msg.find("unexpected: 'fc3.weight.exp_avg'") != std::string::npos);
    // Nothing changed: still a fresh optimizer with its own lr and no state.
    CHECK(fresh.step_count() == 0);
    CHECK(fresh.lr() == 0.5);
    CHECK(fresh.state().tensors.empty());
    CHECK(fresh.parameter_step(0) == 0);
}

TEST_CASE("load_state restores structural hyper-parameters (amsgrad) and checks slots under them") {
    Generator g(3);
    Net net(g);
    optim::Adam<double> ams(net.named_parameters(), {.lr = 0.01, .amsgrad = true});
    train_step(net, ams, 0);
    const auto st = ams.state();
    optim::Adam<double> plain(net.named_parameters());
    plain.load_state(st);
    CHECK(plain.options().amsgrad);
    CHECK(plain.state().tensors.size() == st.tensors.size());
    // Dropping max_exp_avg_sq while claiming amsgrad is a missing slot.
    auto bad = st;
    std::erase_if(bad.tensors, [](const auto& e) { return e.first == "fc2.bias.max_exp_avg_sq"; });
    optim::Adam<double> other(net.named_parameters());
    CHECK_THROWS_WITH_AS(other.load_state(bad), doctest::Contains("missing: 'fc2.bias.max_exp_avg_sq'"), Error);
}

TEST_CASE("frozen parameters and parameters without a gradient are skipped and get no state") {
    Generator g(4);
    Net net(g);
    net.fc1.freeze();
    const Vec w1 = net.fc1.weight.value().to_vector();
    const Vec w2 = net.fc2.weight.value().to_vector();
    optim::Adam<double> opt(net.named_parameters(), {.lr = 0.01});
    for (int k = 0; k < 3; ++k) train_step(net, opt, k);
    CHECK(net.fc1.weight.value().to_vector() == w1);
    CHECK(net.fc2.weight.value().to_vector() != w2);
    CHECK(opt.parameter_step(0) == 0);
    CHECK(opt.parameter_step(2) == 3);
    const auto st = opt.state();
    for (const auto& [n, t] : st.tensors) CHECK(n.rfind("fc1.", 0) != 0);
    CHECK(st.scalars.count("fc1.weight.step") == 0);

    // A trainable parameter that got no gradient this step is left alone too.
    net.fc1.unfreeze();
    Var<double> unused(Tensor<double>::ones({2}), true);
    optim::SGD<double> sgd(std::vector<Var<double>>{net.fc2.bias, unused}, {.lr = 0.1, .momentum = 0.9});
    const Data d = batch(5);
    Var<double> loss = mean(square(net(d.x) - d.y));
    loss.backward();
    sgd.step();
    CHECK(unused.value().to_vector() == Vec{1.0, 1.0});
    CHECK(sgd.parameter_step(0) == 1);
    CHECK(sgd.parameter_step(1) == 0);
    const auto ss = sgd.state();
    REQUIRE(ss.tensors.size() == 1);
    CHECK(ss.tensors[0].first == "0.momentum_buffer");
}

TEST_CASE("zero_grad clears every parameter's gradient") {
    Generator g(5);
    Net net(g);
    optim::SGD<double> opt(net.named_parameters(), {.lr = 0.1});
    const Data d = batch(1);
    Var<double> loss = mean(square(net(d.x) - d.y));
    loss.backward();
    CHECK(net.fc1.weight.grad().defined());
    opt.zero_grad();
    for (const auto& p : net.parameters()) CHECK_FALSE(p.grad().defined());
}

// ---------------------------------------------------------------------------
namespace {
void seed_grad(Var<double>& p, const Vec& g) {
    p.zero_grad();
    p.backward(Tensor<double>::from_vector(g, p.shape()));
}
}  // namespace

TEST_CASE("clip_grad_norm_ returns the total 2-norm and scales every gradient by max_norm/(total+1e-6)") {
    Var<double> a(Tensor<double>::zeros({2}), true), b(Tensor<double>::zeros({1}), true);
    Var<double> c(Tensor<double>::zeros({3}), true);  // no gradient: ignored
    seed_grad(a, {3.0, 4.0});
    seed_grad(b, {12.0});
    const double total = optim::clip_grad_norm_(std::vector<Var<double>>{a, b, c}, 6.5);
    CHECK(total == 13.0);
    const double coef = 6.5 / (13.0 + 1e-6);
    CHECK(a.grad().to_vector() == Vec{3.0 * coef, 4.0 * coef});
    CHECK(b.grad().to_vector() == Vec{12.0 * coef});
    CHECK_FALSE(c.grad().defined());
}

TEST_CASE("clip_grad_norm_ leaves gradients untouched when the norm is below max_norm") {
    Var<double> a(Tensor<double>::zeros({2}), true);
    seed_grad(a, {3.0, 4.0});
    CHECK(optim::clip_grad_norm_(std::vector<Var<double>>{a}, 5.0) == 5.0);  // coef = 5/(5+1e-6) < 1: clipped
    CHECK(a.grad().to_vector()[0] < 3.0);
    seed_grad(a, {3.0, 4.0});
    CHECK(optim::clip_grad_norm_(std::vector<Var<double>>{a}, 10.0) == 5.0);
    CHECK(a.grad().to_vector() == Vec{3.0, 4.0});
}

TEST_CASE("clip_grad_norm_ supports the 1-norm, p-norms and the infinity norm") {
    Var<double> a(Tensor<double>::zeros({3}), true);
    seed_grad(a, {1.0, -2.0, 2.0});
    CHECK(optim::clip_grad_norm_(std::vector<Var<double>>{a}, 100.0, 1.0) == 5.0);
    CHECK(optim::clip_grad_norm_(std::vector<Var<double>>{a}, 100.0, std::numeric_limits<double>::infinity()) ==
          2.0);
    CHECK(optim::clip_grad_norm_(std::vector<Var<double>>{a}, 100.0, 3.0) ==
          doctest::Approx(std::cbrt(17.0)).epsilon(1e-14));
    const double total = optim::clip_grad_norm_(std::vector<Var<double>>{a}, 1.0, std::numeric_limits<double>::infinity());
    CHECK(total == 2.0);
    const double coef = 1.0 / (2.0 + 1e-6);
    CHECK(a.grad().to_vector() == Vec{1.0 * coef, -2.0 * coef, 2.0 * coef});
    CHECK_THROWS_WITH_AS(optim::clip_grad_norm_(std::vector<Var<double>>{a}, 1.0, 0.0),
                         doctest::Contains("clip_grad_norm_"), Error);
}

TEST_CASE("clip_grad_norm_ with error_if_nonfinite throws on a NaN or infinite norm and leaves gradients alone") {
    Var<double> a(Tensor<double>::zeros({2}), true);
    seed_grad(a, {std::numeric_limits<double>::infinity(), 1.0});
    CHECK_THROWS_WITH_AS(optim::clip_grad_norm_(std::vector<Var<double>>{a}, 1.0, 2.0, true),
                         doctest::Contains("non-finite"), Error);
    CHECK(std::isinf(a.grad().to_vector()[0]));
    CHECK(a.grad().to_vector()[1] == 1.0);
    seed_grad(a, {std::nan(""), 1.0});
    CHECK_THROWS_WITH_AS(optim::clip_grad_norm_(std::vector<Var<double>>{a}, 1.0, 2.0, true),
                         doctest::Contains("non-finite"), Error);
    // Without the flag a NaN norm is returned and nothing is scaled.
    CHECK(std::isnan(optim::clip_grad_norm_(std::vector<Var<double>>{a}, 1.0)));
    CHECK(a.grad().to_vector()[1] == 1.0);
}

TEST_CASE("clipping a gradient the engine shares between two parameters scales each exactly once") {
    // d(sum(a + b))/da and /db are the same tensor handed to both leaves.
    Var<double> a(Tensor<double>::zeros({2}), true), b(Tensor<double>::zeros({2}), true);
    Var<double> loss = sum(a + b);
    loss.backward();
    REQUIRE(a.grad().to_vector() == Vec{1.0, 1.0});
    const double total = optim::clip_grad_norm_(std::vector<Var<double>>{a, b}, 1.0);
    CHECK(total == 2.0);
    const double coef = 1.0 / (2.0 + 1e-6);
    CHECK(a.grad().to_vector() == Vec{coef, coef});
    CHECK(b.grad().to_vector() == Vec{coef, coef});
}

TEST_CASE("clip_grad_value_ clamps every gradient element to [-v, v]") {
    Generator g(6);
    Net net(g);
    Var<double> a(Tensor<double>::zeros({4}), true);
    seed_grad(a, {-3.0, 0.25, 0.5, 2.0});
    optim::clip_grad_value_(std::vector<Var<double>>{a}, 0.5);
    CHECK(a.grad().to_vector() == Vec{-0.5, 0.25, 0.5, 0.5});
    // Named parameters work too.
    const Data d = batch(2);
    Var<double> loss = mean(square(net(d.x) - d.y)) * 1000.0;
    loss.backward();
    optim::clip_grad_value_(net.named_parameters(), 0.01);
    for (const auto& p : net.parameters())
        for (double v : p.grad().to_vector()) CHECK(std::abs(v) <= 0.01);
}

// ---------------------------------------------------------------------------
TEST_CASE("linear warmup then rsqrt decay follows tensor2tensor's constant*linear_warmup*rsqrt_decay") {
    const optim::LinearWarmupRsqrtDecay s{.base = 2.0, .warmup = 100};
    CHECK(s(0) == 0.0);
    CHECK(s(25) == doctest::Approx(2.0 * 0.25 / 10.0).epsilon(1e-15));    // warmup: rsqrt(max(25, 100)) = 0.1
    CHECK(s(100) == doctest::Approx(2.0 / 10.0).epsilon(1e-15));          // peak
    CHECK(s(400) == doctest::Approx(2.0 / 20.0).epsilon(1e-15));          // decay: 1/sqrt(400)
    CHECK(s(10000) == doctest::Approx(2.0 / 100.0).epsilon(1e-15));
}

TEST_CASE("exponential decay multiplies by gamma once per epoch") {
    const optim::ExponentialDecay s{.base = 0.1, .gamma = 0.5, .steps_per_epoch = 10};
    CHECK(s(0) == 0.1);
    CHECK(s(9) == 0.1);
    CHECK(s(10) == 0.05);
    CHECK(s(29) == 0.025);
    CHECK(s(30) == 0.0125);
}

TEST_CASE("cosine schedule: linear warmup, then torch CosineAnnealingLR's closed form down to eta_min") {
    const optim::CosineSchedule s{.base = 1.0, .t_max = 100, .eta_min = 0.1, .warmup = 10};
    CHECK(s(0) == 0.0);
    CHECK(s(5) == 0.5);
    CHECK(s(10) == doctest::Approx(1.0).epsilon(1e-15));
    CHECK(s(60) == doctest::Approx(0.1 + 0.9 * 0.5).epsilon(1e-15));                                  // half way
    CHECK(s(35) == doctest::Approx(0.1 + 0.9 * (1 + std::cos(std::numbers::pi / 4)) / 2).epsilon(1e-15));
    CHECK(s(110) == doctest::Approx(0.1).epsilon(1e-15));
    const optim::CosineSchedule nowarm{.base = 0.5, .t_max = 4};
    CHECK(nowarm(0) == 0.5);
    CHECK(nowarm(2) == doctest::Approx(0.25).epsilon(1e-15));
    CHECK(nowarm(4) == doctest::Approx(0.0).epsilon(1e-15));
    CHECK(optim::ConstantLR{0.3}(12345) == 0.3);
}

TEST_CASE("apply_schedule sets the optimizer's lr from its step count") {
    Var<double> p(Tensor<double>::zeros({1}), true);
    optim::SGD<double> opt(std::vector<Var<double>>{p}, {.lr = 1.0});
    const optim::ExponentialDecay sched{.base = 1.0, .gamma = 0.5, .steps_per_epoch = 2};
    std::vector<double> used;
    for (int k = 0; k < 5; ++k) {
        used.push_back(optim::apply_schedule(opt, sched));
        CHECK(opt.lr() == used.back());
        seed_grad(p, {1.0});
        opt.step();
    }
    CHECK(used == std::vector<double>{1.0, 1.0, 0.5, 0.5, 0.25});
    // p = -sum(lr) exactly (powers of two).
    CHECK(p.value().to_vector() == Vec{-3.25});
    CHECK(optim::apply_schedule(opt, sched, 100) == std::pow(0.5, 50));
}
