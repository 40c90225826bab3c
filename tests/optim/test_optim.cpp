// Optimizer updates (SGD, Adam, AdamW, Adafactor) against the reference
// formulas written out here as scalar loops over std::vector<double>.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "polymath/nn/linear.hpp"
#include "polymath/nn/module.hpp"
#include "polymath/optim/adafactor.hpp"
#include "polymath/optim/adam.hpp"
#include "polymath/optim/optimizer.hpp"
#include "polymath/optim/sgd.hpp"
#include "polymath/polymath.hpp"

using namespace polymath;
using Vec = std::vector<double>;

namespace {

// Gives the leaf p exactly the gradient g.
void set_grad(Var<double>& p, const Vec& g) {
    p.zero_grad();
    p.backward(Tensor<double>::from_vector(g, p.shape()));
}

// Gradient of 0.5 * sum(a * p^2) + sum(b * p) at p (different per element, so
// the moments differ from step to step).
Vec quad_grad(const Vec& p) {
    Vec g(p.size());
    for (std::size_t i = 0; i < p.size(); ++i) {
        const double a = 0.5 + 0.25 * double(i % 5), b = (i % 2 ? -0.3 : 0.7) + 0.05 * double(i);
        g[i] = a * p[i] + b;
    }
    return g;
}

Vec initial(std::size_t n) {
    Vec p(n);
    for (std::size_t i = 0; i < n; ++i) p[i] = std::sin(1.0 + 0.7 * double(i)) * 1.5;
    return p;
}

void check_close(const Tensor<double>& t, const Vec& ref, double tol = 1e-12) {
    const Vec got = t.to_vector();
    REQUIRE(got.size() == ref.size());
    std::size_t bad = 0, first = 0;
    for (std::size_t i = 0; i < ref.size(); ++i) {
        if (!(std::abs(got[i] - ref[i]) <= tol * std::max(1.0, std::abs(ref[i])))) {
            if (bad++ == 0) first = i;
        }
    }
    INFO(bad, " element(s) off; first: ", first, " got ", got[first], " want ", ref[first]);
    CHECK(bad == 0);
}

// Runs `steps` steps of opt on the leaf p and of ref_step on a copy, comparing after each.
template <class Opt, class RefStep>
void run_against_reference(Opt& opt, Var<double>& p, Vec ref_p, RefStep&& ref_step, int steps, double tol = 1e-12) {
    for (int s = 0; s < steps; ++s) {
        const Vec g = quad_grad(ref_p);
        set_grad(p, g);
        opt.step();
        ref_step(ref_p, g);
        INFO("after step ", s + 1);
        check_close(p.value(), ref_p, tol);
    }
}

// ---- reference SGD (torch.optim.SGD) ----------------------------------------
struct SgdRef {
    double lr, momentum = 0, dampening = 0, weight_decay = 0;
    bool nesterov = false;
    Vec buf;
    int t = 0;
    void operator()(Vec& p, const Vec& g) {
        ++t;
        if (buf.empty()) buf.assign(p.size(), 0.0);
        for (std::size_t i = 0; i < p.size(); ++i) {
            double d = g[i] + weight_decay * p[i];
            if (momentum != 0) {
                buf[i] = t == 1 ? d : momentum * buf[i] + (1 - dampening) * d;
                d = nesterov ? d + momentum * buf[i] : buf[i];
            }
            p[i] -= lr * d;
        }
    }
};

// ---- reference Adam / AdamW (torch.optim.Adam / AdamW) ----------------------
struct AdamRef {
    double lr, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0;
    bool amsgrad = false, decoupled = false;
    Vec m, v, vmax;
    int t = 0;
    void operator()(Vec& p, const Vec& g0) {
        ++t;
        if (m.empty()) m.assign(p.size(), 0.0), v.assign(p.size(), 0.0), vmax.assign(p.size(), 0.0);
        const double bc1 = 1 - std::pow(beta1, t), bc2 = 1 - std::pow(beta2, t);
        for (std::size_t i = 0; i < p.size(); ++i) {
            double g = g0[i];
            if (decoupled)
                p[i] *= 1 - lr * weight_decay;
            else
                g += weight_decay * p[i];
            m[i] = beta1 * m[i] + (1 - beta1) * g;
            v[i] = beta2 * v[i] + (1 - beta2) * g * g;
            double vhat = v[i];
            if (amsgrad) {
                vmax[i] = std::max(vmax[i], v[i]);
                vhat = vmax[i];
            }
            const double mhat = m[i] / bc1;
            p[i] -= lr * mhat / (std::sqrt(vhat / bc2) + eps);
        }
    }
};

// ---- reference Adafactor (Shazeer & Stern 2018 / tensor2tensor) -------------
struct AdafactorRef {
    std::vector<std::int64_t> shape;
    double lr = 1e-3;
    bool relative_step = true, scale = true, factored = true;
    double beta1 = 0, decay = 0.8, eps1 = 1e-30, eps2 = 1e-3, d = 1.0, weight_decay = 0;
    Vec vr, vc, v, m;
    int t = 0;
    void operator()(Vec& p, const Vec& g) {
        ++t;
        const std::size_t n = p.size();
        const double b2 = 1 - std::pow(double(t), -decay);
        Vec u(n);
        const bool fac = factored && shape.size() >= 2;
        if (fac) {
            const std::size_t C = std::size_t(shape.back()), R = std::size_t(shape[shape.size() - 2]);
            const std::size_t B = n / (R * C);
            if (vr.empty()) vr.assign(B * R, 0.0), vc.assign(B * C, 0.0);
            for (std::size_t b = 0; b < B; ++b) {
                for (std::size_t r = 0; r < R; ++r) {
                    double s = 0;
                    for (std::size_t c = 0; c < C; ++c) s += g[(b * R + r) * C + c] * g[(b * R + r) * C + c] + eps1;
                    vr[b * R + r] = b2 * vr[b * R + r] + (1 - b2) * s / double(C);
                }
                for (std::size_t c = 0; c < C; ++c) {
                    double s = 0;
                    for (std::size_t r = 0; r < R; ++r) s += g[(b * R + r) * C + c] * g[(b * R + r) * C + c] + eps1;
                    vc[b * C + c] = b2 * vc[b * C + c] + (1 - b2) * s / double(R);
                }
                double mean_vr = 0;
                for (std::size_t r = 0; r < R; ++r) mean_vr += vr[b * R + r];
                mean_vr /= double(R);
                for (std::size_t r = 0; r < R; ++r)
                    for (std::size_t c = 0; c < C; ++c) {
                        const double vhat = vr[b * R + r] * vc[b * C + c] / mean_vr;
                        u[(b * R + r) * C + c] = g[(b * R + r) * C + c] / std::sqrt(vhat);
                    }
            }
        } else {
            if (v.empty()) v.assign(n, 0.0);
            for (std::size_t i = 0; i < n; ++i) {
                v[i] = b2 * v[i] + (1 - b2) * (g[i] * g[i] + eps1);
                u[i] = g[i] / std::sqrt(v[i]);
            }
        }
        if (d > 0) {
            double ss = 0;
            for (double x : u) ss += x * x;
            const double denom = std::max(1.0, std::sqrt(ss / double(n)) / d);
            for (double& x : u) x /= denom;
        }
        double a = relative_step ? std::min(1e-2, 1.0 / std::sqrt(double(t))) : lr;
        if (scale) {
            double ss = 0;
            for (double x : p) ss += x * x;
            a *= std::max(eps2, std::sqrt(ss / double(n)));
        }
        if (beta1 > 0 && m.empty()) m.assign(n, 0.0);
        for (std::size_t i = 0; i < n; ++i) {
            p[i] -= weight_decay * a * p[i];
            if (beta1 > 0) {
                m[i] = beta1 * m[i] + (1 - beta1) * a * u[i];
                p[i] -= m[i];
            } else {
                p[i] -= a * u[i];
            }
        }
    }
};

Var<double> leaf(const Vec& v, const Shape& s) { return Var<double>(Tensor<double>::from_vector(v, s), true); }

}  // namespace

// ---------------------------------------------------------------------------
TEST_CASE("SGD plain, with weight decay, momentum+dampening and Nesterov matches torch's update formulas") {
    struct Case {
        const char* what;
        optim::SGDOptions o;
    };
    const Case cases[] = {
        {"plain", {.lr = 0.1}},
        {"weight decay", {.lr = 0.1, .weight_decay = 0.01}},
        {"momentum + dampening + weight decay", {.lr = 0.05, .momentum = 0.9, .dampening = 0.3, .weight_decay = 0.02}},
        {"nesterov", {.lr = 0.05, .momentum = 0.8, .weight_decay = 0.01, .nesterov = true}},
    };
    for (const auto& c : cases) {
        INFO(std::string(c.what));
        const Vec p0 = initial(6);
        Var<double> p = leaf(p0, {2, 3});
        optim::SGD<double> opt(std::vector<Var<double>>{p}, c.o);
        SgdRef ref{c.o.lr, c.o.momentum, c.o.dampening, c.o.weight_decay, c.o.nesterov, {}, 0};
        run_against_reference(opt, p, p0, ref, 5);
        CHECK(opt.step_count() == 5);
        CHECK(opt.parameter_step(0) == 5);
    }
}

TEST_CASE("Adam matches the bias-corrected update with eps outside the sqrt, with L2 weight decay and amsgrad") {
    struct Case {
        const char* what;
        optim::AdamOptions o;
    };
    const Case cases[] = {
        {"default betas", {.lr = 0.01}},
        {"L2 weight decay", {.lr = 0.02, .beta1 = 0.8, .beta2 = 0.95, .eps = 1e-6, .weight_decay = 0.1}},
        {"amsgrad", {.lr = 0.05, .beta1 = 0.5, .beta2 = 0.9, .amsgrad = true}},
    };
    for (const auto& c : cases) {
        INFO(std::string(c.what));
        const Vec p0 = initial(7);
        Var<double> p = leaf(p0, {7});
        optim::Adam<double> opt(std::vector<Var<double>>{p}, c.o);
        AdamRef ref{c.o.lr, c.o.beta1, c.o.beta2, c.o.eps, c.o.weight_decay, c.o.amsgrad, false, {}, {}, {}, 0};
        run_against_reference(opt, p, p0, ref, 6);
        CHECK(opt.name() == "Adam");
    }
}

TEST_CASE("amsgrad keeps the running maximum of the second moment when gradients shrink") {
    // Large gradient first, then small ones: v decays but max_exp_avg_sq must not.
    Var<double> p = leaf({1.0, -2.0}, {2});
    optim::Adam<double> opt(std::vector<Var<double>>{p}, {.lr = 0.1, .beta2 = 0.5, .amsgrad = true});
    AdamRef ref{0.1, 0.9, 0.5, 1e-8, 0, true, false, {}, {}, {}, 0};
    Vec rp = {1.0, -2.0};
    const Vec grads[] = {{10.0, -8.0}, {0.1, 0.2}, {0.05, -0.1}, {0.01, 0.01}};
    for (const auto& g : grads) {
        set_grad(p, g);
        opt.step();
        ref(rp, g);
        check_close(p.value(), rp);
    }
    const auto st = opt.state();
    bool found = false;
    for (const auto& [n, t] : st.tensors)
        if (n == "0.max_exp_avg_sq") {
            found = true;
            check_close(t, ref.vmax);
        }
    CHECK(found);
}

TEST_CASE("AdamW decays the parameters decoupled from the gradient (p *= 1 - lr*wd), with and without amsgrad") {
    for (bool ams : {false, true}) {
        INFO("amsgrad ", ams);
        const Vec p0 = initial(6);
        Var<double> p = leaf(p0, {3, 2});
        optim::AdamW<double> opt(std::vector<Var<double>>{p},
                                 {.lr = 0.03, .beta1 = 0.85, .beta2 = 0.99, .weight_decay = 0.2, .amsgrad = ams});
        AdamRef ref{0.03, 0.85, 0.99, 1e-8, 0.2, ams, true, {}, {}, {}, 0};
        run_against_reference(opt, p, p0, ref, 5);
        CHECK(opt.name() == "AdamW");
    }
    // torch's AdamW default weight decay is 1e-2 (Adam's is 0).
    CHECK(optim::AdamWOptions{}.weight_decay == 1e-2);
    CHECK(optim::AdamOptions{}.weight_decay == 0.0);
}

TEST_CASE("Adafactor factored second moments (2-D and batched 3-D) match the row/column rank-1 reference") {
    struct Case {
        const char* what;
        Shape shape;
        optim::AdafactorOptions o;
    };
    const Case cases[] = {
        {"2-D, relative step, parameter scale", {3, 4}, {}},
        {"3-D batched over the leading dim", {2, 3, 5}, {}},
        {"2-D, absolute lr, no parameter scale, momentum, weight decay",
         {4, 3},
         {.lr = 0.05, .relative_step = false, .multiply_by_parameter_scale = false, .beta1 = 0.9,
          .weight_decay = 0.1}},
        {"2-D, no update clipping, decay exponent 0.5", {5, 2}, {.decay_exponent = 0.5, .clip_threshold = 0.0}},
    };
    for (const auto& c : cases) {
        INFO(std::string(c.what));
        const std::size_t n = std::size_t(numel_of(c.shape));
        const Vec p0 = initial(n);
        Var<double> p = leaf(p0, c.shape);
        optim::Adafactor<double> opt(std::vector<Var<double>>{p}, c.o);
        AdafactorRef ref;
        ref.shape.assign(c.shape.begin(), c.shape.end());
        ref.lr = c.o.lr;
        ref.relative_step = c.o.relative_step;
        ref.scale = c.o.multiply_by_parameter_scale;
        ref.beta1 = c.o.beta1;
        ref.decay = c.o.decay_exponent;
        ref.d = c.o.clip_threshold;
        ref.weight_decay = c.o.weight_decay;
        run_against_reference(opt, p, p0, ref, 5, 1e-11);
        // The state is factored: [.., R] and [.., C], not the full shape.
        const auto st = opt.state();
        Shape row = c.shape, col = c.shape;
        row.erase(row.size() - 1);
        col.erase(col.size() - 2);
        REQUIRE(st.tensors.size() == (c.o.beta1 > 0 ? 3u : 2u));
        CHECK(st.tensors[0].first == "0.vr");
        CHECK(st.tensors[0].second.shape() == row);
        CHECK(st.tensors[1].first == "0.vc");
        CHECK(st.tensors[1].second.shape() == col);
        check_close(st.tensors[0].second, ref.vr, 1e-11);
        check_close(st.tensors[1].second, ref.vc, 1e-11);
    }
}

TEST_CASE("Adafactor keeps a full second moment for 1-D parameters and when factored is off") {
    struct Case {
        const char* what;
        Shape shape;
        optim::AdafactorOptions o;
    };
    const Case cases[] = {
        {"1-D", {7}, {}},
        {"2-D with factored = false", {2, 4}, {.factored = false}},
        {"1-D, momentum, absolute lr", {5}, {.lr = 0.02, .relative_step = false, .beta1 = 0.5}},
    };
    for (const auto& c : cases) {
        INFO(std::string(c.what));
        const std::size_t n = std::size_t(numel_of(c.shape));
        const Vec p0 = initial(n);
        Var<double> p = leaf(p0, c.shape);
        optim::Adafactor<double> opt(std::vector<Var<double>>{p}, c.o);
        AdafactorRef ref;
        ref.shape.assign(c.shape.begin(), c.shape.end());
        ref.lr = c.o.lr;
        ref.relative_step = c.o.relative_step;
        ref.scale = c.o.multiply_by_parameter_scale;
        ref.factored = c.o.factored;
        ref.beta1 = c.o.beta1;
        run_against_reference(opt, p, p0, ref, 5, 1e-11);
        const auto st = opt.state();
        REQUIRE(!st.tensors.empty());
        CHECK(st.tensors[0].first == "0.v");
        CHECK(st.tensors[0].second.shape() == c.shape);
        check_close(st.tensors[0].second, ref.v, 1e-11);
    }
}

TEST_CASE("Adafactor update clipping divides the update by RMS(U)/d when it exceeds 1") {
    // First step, 1-D: v = g^2 + eps1 (beta2_1 = 0), so U = sign(g) with RMS 1: no clipping.
    // With d = 0.5 the update is halved. Scale off, absolute lr 1: the step is exactly -U / max(1, 1/d).
    for (double d : {1.0, 0.5, 0.25}) {
        Var<double> p = leaf({0.0, 0.0, 0.0}, {3});
        optim::Adafactor<double> opt(std::vector<Var<double>>{p}, {.lr = 1.0,
                                                                    .relative_step = false,
                                                                    .multiply_by_parameter_scale = false,
                                                                    .clip_threshold = d});
        set_grad(p, {3.0, -0.5, 2.0});
        opt.step();
        const double s = std::min(1.0, d);
        check_close(p.value(), {-s, s, -s}, 1e-14);
    }
}

TEST_CASE("Adafactor relative step size is min(1e-2, 1/sqrt(t)) scaled by max(eps2, RMS(param))") {
    // Zero parameters: the scale is eps2 = 1e-3; t = 1 gives rho = 1e-2, so each
    // element moves by exactly 1e-5 against the sign of its gradient.
    Var<double> p = leaf({0.0, 0.0}, {2});
    optim::Adafactor<double> opt(std::vector<Var<double>>{p});
    set_grad(p, {4.0, -1.0});
    opt.step();
    check_close(p.value(), {-1e-5, 1e-5}, 1e-12);
}

TEST_CASE("optimizers accept float parameters and reduce a quadratic loss") {
    Generator gen(3);
    nn::Linear<float> fc(4, 3, {}, gen);
    const Var<float> x(Tensor<float>::randn({8, 4}, gen));
    const Var<float> y(Tensor<float>::randn({8, 3}, gen));
    auto loss_of = [&] { return mean(square(fc(x) - y)); };
    auto train = [&](optim::Optimizer<float>& opt, int steps) {
        const float before = loss_of().item();
        for (int i = 0; i < steps; ++i) {
            opt.zero_grad();
            Var<float> l = loss_of();
            l.backward();
            opt.step();
        }
        return std::pair{before, loss_of().item()};
    };
    {
        optim::SGD<float> opt(fc.named_parameters(), {.lr = 0.05, .momentum = 0.9, .nesterov = true});
        auto [a, b] = train(opt, 20);
        CHECK(b < a);
    }
    {
        optim::AdamW<float> opt(fc.named_parameters(), {.lr = 0.02});
        auto [a, b] = train(opt, 20);
        CHECK(b < a);
    }
    {
        optim::Adafactor<float> opt(fc.named_parameters(), {.lr = 0.02, .relative_step = false,
                                                             .multiply_by_parameter_scale = false});
        auto [a, b] = train(opt, 20);
        CHECK(b < a);
    }
}

TEST_CASE("optimizer options are validated at construction") {
    Var<double> p = leaf({1.0}, {1});
    const std::vector<Var<double>> ps{p};
    CHECK_THROWS_WITH_AS(optim::SGD<double>(ps, {.lr = 0.1, .momentum = 0.9, .dampening = 0.1, .nesterov = true}),
                         doctest::Contains("Nesterov"), Error);
    CHECK_THROWS_WITH_AS(optim::SGD<double>(ps, {.lr = -1.0}), doctest::Contains("lr"), Error);
    CHECK_THROWS_WITH_AS(optim::Adam<double>(ps, {.beta1 = 1.0}), doctest::Contains("beta1"), Error);
    CHECK_THROWS_WITH_AS(optim::Adafactor<double>(ps, {.beta1 = -0.1}), doctest::Contains("beta1"), Error);
    CHECK_THROWS_WITH_AS(optim::SGD<double>(std::vector<Var<double>>{p, p}), doctest::Contains("same Var"), Error);
    optim::SGD<double> opt(ps, {.lr = 0.1});
    CHECK_THROWS_WITH_AS(opt.set_lr(std::nan("")), doctest::Contains("SGD::set_lr"), Error);
}

TEST_CASE("step rejects a non-contiguous parameter instead of writing through a view") {
    Var<double> p(Tensor<double>::from_vector({1, 2, 3, 4, 5, 6}, {2, 3}).transpose(0, 1), true);
    optim::SGD<double> opt(std::vector<Var<double>>{p}, {.lr = 0.1});
    set_grad(p, Vec(6, 1.0));
    CHECK_THROWS_WITH_AS(opt.step(), doctest::Contains("not contiguous"), Error);
}

TEST_CASE("large parameters (many chunks, column blocks, reduction blocks) match the reference for any thread count") {
    struct Case {
        const char* what;
        Shape shape;
        int kind;  // 0 Adafactor, 1 Adam, 2 SGD momentum
    };
    const Case cases[] = {
        {"Adafactor factored [2, 150, 700]", {2, 150, 700}, 0},
        {"Adafactor 1-D [100000]", {100000}, 0},
        {"Adam [300, 400]", {300, 400}, 1},
        {"SGD momentum [70001]", {70001}, 2},
    };
    const int threads_before = num_threads();
    for (const auto& c : cases) {
        INFO(std::string(c.what));
        const std::size_t n = std::size_t(numel_of(c.shape));
        const Vec p0 = initial(n);
        std::vector<Vec> results;
        for (int threads : {threads_before, 1}) {
            set_num_threads(threads);
            Var<double> p = leaf(p0, c.shape);
            const std::vector<Var<double>> ps{p};
            if (c.kind == 0) {
                optim::Adafactor<double> opt(ps, {.beta1 = 0.9});
                AdafactorRef ref;
                ref.shape.assign(c.shape.begin(), c.shape.end());
                ref.beta1 = 0.9;
                run_against_reference(opt, p, p0, ref, 3, 1e-10);
            } else if (c.kind == 1) {
                optim::Adam<double> opt(ps, {.lr = 0.01, .weight_decay = 0.1, .amsgrad = true});
                AdamRef ref{0.01, 0.9, 0.999, 1e-8, 0.1, true, false, {}, {}, {}, 0};
                run_against_reference(opt, p, p0, ref, 3);
            } else {
                optim::SGD<double> opt(ps, {.lr = 0.01, .momentum = 0.9, .dampening = 0.1});
                SgdRef ref{0.01, 0.9, 0.1, 0, false, {}, 0};
                run_against_reference(opt, p, p0, ref, 3);
            }
            results.push_back(p.value().to_vector());
        }
        set_num_threads(threads_before);
        std::size_t differ = 0, first = 0;
        for (std::size_t i = 0; i < n; ++i)
            if (results[0][i] != results[1][i] && differ++ == 0) first = i;
        INFO(differ, " element(s) differ between ", threads_before, " thread(s) and 1; first: ", first);
        CHECK(differ == 0);
    }
}
