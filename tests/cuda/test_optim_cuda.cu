// Fused multi-tensor optimizer steps (optim/cuda/fused.cuh) against the CPU
// optimizers (optim::Adam / AdamW / SGD via moe_ref.cpp) over several steps:
// parameters after every step and the final slots. The device rounds every
// operation once; the CPU reference does not quite: moe_ref.cpp is built with
// -march=native, so g++ contracts a*b + c into FMAs (-ffp-contract=fast is its
// C++ default) and Eigen's AVX-512 sqrt is rsqrt14 + Newton (EIGEN_FAST_MATH),
// a few ulps off. A host emulation of the kernel against that build needed
// float rtol 1e-5 / atol 1e-6 (worst 0.54 of it, SGD with momentum and
// dampening; 1e-6 / 1e-8 failed by 40x); double stays at 1e-12 / 1e-14.
#include <polymath/cuda.hpp>
#include <polymath/optim/cuda/fused.cuh>

#include <cstdint>
#include <string>
#include <vector>

#include "cuda_test_util.hpp"
#include "moe_ref.hpp"

using namespace polymath;
using polymath::half;  // not CUDA's ::half

namespace {

template <class T>
using HostList = std::vector<Tensor<T, Cpu>>;
template <class T>
using DevList = std::vector<Tensor<T, Cuda>>;

// Sizes: odd, size 1, a multiple of the vector width, across the 32768 chunk
// boundary, several chunks.
const std::vector<Shape> kShapes = {Shape{1}, Shape{3, 5}, Shape{1000}, Shape{32768 + 5}, Shape{70001}, Shape{4},
                                    Shape{7, 9, 11}};

template <class T>
HostList<T> random_list(const std::vector<Shape>& shapes, std::uint64_t seed, double scale) {
    HostList<T> out;
    Generator gen(seed);
    for (const Shape& s : shapes) {
        Tensor<double, Cpu> r = Tensor<double, Cpu>::randn(s, gen);
        for (std::int64_t i = 0; i < r.numel(); ++i) r.data()[i] *= scale;
        out.push_back(r.template to<T>());
    }
    return out;
}

template <class T>
DevList<T> upload(const HostList<T>& h) {
    DevList<T> d;
    for (const auto& t : h) d.push_back(t.template to<Cuda>());
    return d;
}

// A misaligned contiguous device parameter (offset by one element): the scalar path.
template <class T>
Tensor<T, Cuda> upload_misaligned(const Tensor<T, Cpu>& h) {
    Tensor<T, Cuda> big = Tensor<T, Cuda>::zeros({h.numel() + 1});
    Tensor<T, Cuda> v = big.narrow(0, 1, h.numel()).view(h.shape());
    v.copy_(h.template to<Cuda>());
    return v;
}

enum class GradKind { same, bf16 };

// Runs `steps` fused steps and the CPU optimizer on the same data; compares.
template <class T>
void run_case(const test::RefOptConfig& c, int steps, std::uint64_t seed, bool misaligned = false,
              GradKind gk = GradKind::same, const std::vector<Shape>& shapes = kShapes) {
    const HostList<T> init = random_list<T>(shapes, seed, 1.0);
    std::vector<HostList<T>> grads;
    for (int s = 0; s < steps; ++s) {
        HostList<T> g = random_list<T>(shapes, seed + 100 + std::uint64_t(s), s % 2 ? 0.01 : 3.0);
        if (gk == GradKind::bf16)
            for (auto& t : g) t = t.template to<bfloat16>().template to<T>();  // what the device will see
        grads.push_back(std::move(g));
    }
    const test::RefOptRun<T> ref = test::ref_optim_run(c, init, grads);

    DevList<T> params;
    for (std::size_t i = 0; i < init.size(); ++i)
        params.push_back(misaligned && i % 2 == 1 ? upload_misaligned(init[i]) : init[i].template to<Cuda>());
    const DevList<T> s0 = optim::cuda::zeros_like(params), s1 = optim::cuda::zeros_like(params),
                     s2 = optim::cuda::zeros_like(params);
    const double rtol = std::is_same_v<T, double> ? 1e-12 : 1e-5;
    const double atol = std::is_same_v<T, double> ? 1e-14 : 2e-6;
    for (int s = 0; s < steps; ++s) {
        auto step = [&](const auto& g) {
            switch (c.kind) {
                case test::RefOptKind::adam:
                    optim::cuda::adam_step(params, g, s0, s1, s + 1,
                                           {c.lr, c.beta1, c.beta2, c.eps, c.weight_decay, c.amsgrad}, s2);
                    break;
                case test::RefOptKind::adamw:
                    optim::cuda::adamw_step(params, g, s0, s1, s + 1,
                                            {c.lr, c.beta1, c.beta2, c.eps, c.weight_decay, c.amsgrad}, s2);
                    break;
                case test::RefOptKind::sgd:
                    optim::cuda::sgd_step(params, g, s0, s + 1,
                                          {c.lr, c.momentum, c.dampening, c.weight_decay, c.nesterov});
                    break;
            }
        };
        if constexpr (std::is_same_v<T, float>) {
            if (gk == GradKind::bf16) {
                DevList<bfloat16> g;
                for (const auto& t : grads[std::size_t(s)]) g.push_back(t.template to<Cuda>().template to<bfloat16>());
                step(g);
            } else {
                step(upload(grads[std::size_t(s)]));
            }
        } else {
            step(upload(grads[std::size_t(s)]));
        }
        for (std::size_t i = 0; i < params.size(); ++i) {
            INFO("step ", s + 1, " parameter ", i, " of shape ", params[i].shape());
            POLYMATH_CHECK_CLOSE(params[i].template to<Cpu>(), ref.params[std::size_t(s)][i], rtol, atol);
        }
    }
    for (std::size_t k = 0; k < ref.slot_names.size(); ++k) {
        const DevList<T>& dev = k == 0 ? s0 : k == 1 ? s1 : s2;
        for (std::size_t i = 0; i < params.size(); ++i) {
            INFO("slot ", ref.slot_names[k], " of parameter ", i);
            REQUIRE(ref.slots[k][i].defined());
            POLYMATH_CHECK_CLOSE(dev[i].template to<Cpu>(), ref.slots[k][i], rtol, atol);
        }
    }
}

test::RefOptConfig adam(double wd, bool ams) {
    test::RefOptConfig c;
    c.kind = test::RefOptKind::adam;
    c.lr = 1e-2;
    c.weight_decay = wd;
    c.amsgrad = ams;
    return c;
}
test::RefOptConfig adamw(double wd, bool ams) {
    test::RefOptConfig c = adam(wd, ams);
    c.kind = test::RefOptKind::adamw;
    c.beta1 = 0.8;
    c.beta2 = 0.99;
    c.eps = 1e-6;
    return c;
}
test::RefOptConfig sgd(double mom, double damp, double wd, bool nest) {
    test::RefOptConfig c;
    c.kind = test::RefOptKind::sgd;
    c.lr = 0.05;
    c.momentum = mom;
    c.dampening = damp;
    c.weight_decay = wd;
    c.nesterov = nest;
    return c;
}

}  // namespace

TEST_CASE_TEMPLATE("fused Adam on the device equals optim::Adam over several steps (L2 decay, amsgrad)", T, float,
                   double) {
    POLYMATH_REQUIRE_GPU();
    run_case<T>(adam(0, false), 5, 1);
    run_case<T>(adam(0.05, false), 5, 2);
    run_case<T>(adam(0.05, true), 5, 3);
}

TEST_CASE_TEMPLATE("fused AdamW on the device equals optim::AdamW over several steps (decoupled decay, amsgrad)", T,
                   float, double) {
    POLYMATH_REQUIRE_GPU();
    run_case<T>(adamw(0.1, false), 5, 4);
    run_case<T>(adamw(0.0, false), 3, 5);
    run_case<T>(adamw(0.1, true), 5, 6);
}

TEST_CASE_TEMPLATE("fused SGD on the device equals optim::SGD: plain, momentum with dampening, Nesterov, weight decay",
                   T, float, double) {
    POLYMATH_REQUIRE_GPU();
    run_case<T>(sgd(0, 0, 0, false), 4, 7);
    run_case<T>(sgd(0, 0, 0.01, false), 4, 8);
    run_case<T>(sgd(0.9, 0.1, 0.01, false), 5, 9);
    run_case<T>(sgd(0.9, 0, 0.001, true), 5, 10);
}

TEST_CASE_TEMPLATE("fused steps take the scalar path for misaligned parameters and split more than 48 tensors over launches",
                   T, float, double) {
    POLYMATH_REQUIRE_GPU();
    run_case<T>(adamw(0.1, true), 3, 11, /*misaligned=*/true);
    run_case<T>(sgd(0.9, 0, 0.01, true), 3, 12, /*misaligned=*/true);
    std::vector<Shape> many;
    for (int i = 0; i < 101; ++i) many.push_back(Shape{1 + (i * 37) % 300});
    run_case<T>(adam(0.01, false), 3, 13, false, GradKind::same, many);
    run_case<T>(sgd(0.5, 0.2, 0, false), 3, 14, false, GradKind::same, many);
}

TEST_CASE("fused AdamW with bf16 gradients and fp32 master weights equals optim::AdamW on the rounded gradients") {
    POLYMATH_REQUIRE_GPU();
    run_case<float>(adamw(0.1, false), 4, 15, false, GradKind::bf16);
    run_case<float>(sgd(0.9, 0, 0, true), 4, 16, true, GradKind::bf16);
}

TEST_CASE("fused steps skip empty tensors, accept strided gradients and reject mismatched lists") {
    POLYMATH_REQUIRE_GPU();
    const Tensor<float, Cpu> p0 = Tensor<float, Cpu>::arange(0, 12).reshape({3, 4});
    DevList<float> params{p0.to<Cuda>(), Tensor<float, Cuda>::zeros({0, 5})};
    // Gradient given as a transposed view of a [4, 3] tensor.
    const Tensor<float, Cpu> gt = Tensor<float, Cpu>::arange(0, 12).reshape({4, 3});
    DevList<float> grads{gt.to<Cuda>().t(), Tensor<float, Cuda>::zeros({0, 5})};
    DevList<float> bufs = optim::cuda::zeros_like(params);
    optim::cuda::sgd_step(params, grads, bufs, 1, {.lr = 0.5});
    const auto got = params[0].to_vector();
    const auto pv = p0.to_vector(), gv = gt.t().contiguous().to_vector();
    for (std::size_t i = 0; i < got.size(); ++i) CHECK(got[i] == pv[i] - 0.5f * gv[i]);
    // Errors: counts, shapes, step 0, Nesterov without momentum, non-contiguous parameters.
    DevList<float> one{Tensor<float, Cuda>::zeros({3})};
    CHECK_THROWS_AS(optim::cuda::sgd_step(one, DevList<float>{}, DevList<float>{}, 1, {}), Error);
    CHECK_THROWS_AS(optim::cuda::sgd_step(one, DevList<float>{Tensor<float, Cuda>::zeros({4})}, DevList<float>{}, 1, {}),
                    Error);
    CHECK_THROWS_AS(optim::cuda::adam_step(one, one, one, one, 0, {}), Error);
    CHECK_THROWS_AS(optim::cuda::adam_step(one, one, one, DevList<float>{}, 1, {}), Error);
    CHECK_THROWS_AS(optim::cuda::adam_step(one, one, one, one, 1, {.amsgrad = true}), Error);
    CHECK_THROWS_AS(optim::cuda::sgd_step(one, one, one, 1, {.nesterov = true}), Error);
    DevList<float> strided{Tensor<float, Cuda>::zeros({4, 3}).t()};
    CHECK_THROWS_AS(optim::cuda::sgd_step(strided, DevList<float>{Tensor<float, Cuda>::zeros({3, 4})}, DevList<float>{},
                                          1, {}),
                    Error);
}
