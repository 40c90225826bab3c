// MoE routing on the device (ops/cuda/moe.cuh) and the CUDA top-k
// (ops/cuda/topk.cuh), against the CPU ops: the plan must equal the CPU's
// exactly; dispatch / combine and their backward passes match to rounding
// (float/double: bit-exact except the dgates dot products); top-k equals the
// CPU's values and indices exactly, ties and NaN included.
#include <polymath/cuda.hpp>
#include <polymath/ops/cuda/moe.cuh>
#include <polymath/ops/cuda/topk.cuh>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <string>
#include <vector>

#include "cuda_test_util.hpp"
#include "moe_ref.hpp"

using namespace polymath;
using polymath::half;  // not CUDA's ::half

namespace {

// ---- top-k ---------------------------------------------------------------------

// Random values; ties > 0 makes them few distinct integers (many ties); nan_every > 0 injects NaNs.
template <class T>
Tensor<T, Cpu> topk_input(const Shape& s, std::uint64_t seed, int ties, int nan_every) {
    Generator gen(seed);
    const Tensor<double, Cpu> r = Tensor<double, Cpu>::randn(s, gen);
    Tensor<T, Cpu> x = Tensor<T, Cpu>::empty(s);
    for (std::int64_t i = 0; i < x.numel(); ++i) {
        double v = r.data()[i];
        if (ties > 0) v = std::round(v * ties);
        else if constexpr (std::is_integral_v<T>) v = std::round(v * 1000);
        x.data()[i] = T(v);
        if constexpr (std::is_floating_point_v<T>)
            if (nan_every > 0 && i % nan_every == 3) x.data()[i] = std::numeric_limits<T>::quiet_NaN();
    }
    return x;
}

template <class T>
void check_topk(const Tensor<T, Cpu>& x, std::int64_t k, std::int64_t axis, bool largest, bool sorted) {
    INFO("shape ", x.shape(), " k ", k, " axis ", axis, " largest ", largest, " sorted ", sorted);
    const auto ref = test::ref_topk(x, k, axis, largest, sorted);
    const auto got = ops::topk(x.template to<Cuda>(), k, axis, largest, sorted);
    const Tensor<T, Cpu> gv = got.values.template to<Cpu>();
    const Tensor<std::int64_t, Cpu> gi = got.indices.template to<Cpu>();
    REQUIRE(gv.shape() == ref.values.shape());
    REQUIRE(gi.shape() == ref.indices.shape());
    CHECK(gi.to_vector() == ref.indices.to_vector());
    const auto a = gv.to_vector(), b = ref.values.to_vector();
    std::int64_t bad = 0;
    for (std::size_t i = 0; i < a.size(); ++i) {
        if constexpr (std::is_floating_point_v<T>)
            bad += !((std::isnan(a[i]) && std::isnan(b[i])) || a[i] == b[i]);
        else
            bad += a[i] != b[i];
    }
    CHECK(bad == 0);
}

// ---- MoE ---------------------------------------------------------------------------

struct Routing {
    Tensor<std::int64_t, Cpu> idx;  // [S, K]
    Tensor<std::uint8_t, Cpu> mask; // [S] or undefined
};

// K experts per token, distinct when K <= used (the top-k case), drawn from the
// first `used` experts (so the others stay empty); mask_every > 0 pads tokens.
Routing make_routing(std::int64_t S, std::int64_t K, std::int64_t used, int mask_every, std::uint64_t seed) {
    Generator gen(seed);
    const Tensor<float, Cpu> u = Tensor<float, Cpu>::rand({std::max<std::int64_t>(1, S * (used + 1))}, gen);
    Routing r;
    r.idx = Tensor<std::int64_t, Cpu>::empty({S, K});
    for (std::int64_t s = 0; s < S; ++s) {
        std::vector<std::int64_t> order(static_cast<std::size_t>(used));
        std::iota(order.begin(), order.end(), 0);
        // A random permutation of the used experts, from the token's draws.
        std::vector<float> key(order.size());
        for (std::size_t e = 0; e < order.size(); ++e) key[e] = u.data()[s * (used + 1) + std::int64_t(e)];
        std::sort(order.begin(), order.end(), [&](std::int64_t a, std::int64_t b) {
            return key[std::size_t(a)] != key[std::size_t(b)] ? key[std::size_t(a)] < key[std::size_t(b)] : a < b;
        });
        for (std::int64_t j = 0; j < K; ++j) r.idx.data()[s * K + j] = order[std::size_t(j % used)];
    }
    if (mask_every > 0) {
        r.mask = Tensor<std::uint8_t, Cpu>::zeros({S});
        for (std::int64_t s = 0; s < S; ++s)
            r.mask.data()[s] = std::uint8_t((s * 7 + 3) % mask_every == 0 ? (s % 2 ? 1 : 255) : 0);
    }
    return r;
}

ops::MoePlan cpu_plan(const Routing& r, std::int64_t E, std::int64_t cap) { return ops::moe_plan(r.idx, E, cap, r.mask); }
ops::MoePlanCuda gpu_plan(const Routing& r, std::int64_t E, std::int64_t cap) {
    return ops::moe_plan(r.idx.to<Cuda>(), E, cap,
                         r.mask.defined() ? r.mask.to<Cuda>() : Tensor<std::uint8_t, Cuda>());
}

void check_plan_equal(const ops::MoePlan& g, const ops::MoePlan& c) {
    CHECK(g.num_tokens == c.num_tokens);
    CHECK(g.k == c.k);
    CHECK(g.num_experts == c.num_experts);
    CHECK(g.expert_offsets.to_vector() == c.expert_offsets.to_vector());
    CHECK(g.row_token == c.row_token);
    CHECK(g.slot_row == c.slot_row);
    CHECK(g.tokens_per_expert == c.tokens_per_expert);
    CHECK(g.dropped == c.dropped);
    CHECK(g.valid_tokens == c.valid_tokens);
}

template <class T>
Tensor<T, Cpu> randn_t(const Shape& s, std::uint64_t seed) {
    Generator gen(seed);
    return Tensor<double, Cpu>::randn(s, gen).template to<T>();
}

template <class T>
void check_exact(const Tensor<T, Cuda>& d, const Tensor<T, Cpu>& h) {
    const Tensor<T, Cpu> a = d.template to<Cpu>();
    REQUIRE(a.shape() == h.shape());
    CHECK(a.to_vector() == h.to_vector());
}

// dispatch / combine and both backward passes, T in {float, double}.
template <class T>
void check_moe_ops(std::int64_t S, std::int64_t K, std::int64_t E, std::int64_t used, std::int64_t cap, int mask_every,
                   std::int64_t d, std::uint64_t seed) {
    INFO("S ", S, " K ", K, " E ", E, " cap ", cap, " mask_every ", mask_every, " d ", d);
    const Routing r = make_routing(S, K, used, mask_every, seed);
    const ops::MoePlan cp = cpu_plan(r, E, cap);
    const ops::MoePlanCuda gp = gpu_plan(r, E, cap);
    check_plan_equal(gp.to_host(), cp);
    const std::int64_t A = cp.rows();
    const Tensor<T, Cpu> x = randn_t<T>({S, d}, seed + 1), ys = randn_t<T>({A, d}, seed + 2),
                         gates = randn_t<T>({S, K}, seed + 3), gy = randn_t<T>({S, d}, seed + 4),
                         gxs = randn_t<T>({A, d}, seed + 5);
    const double tol = std::is_same_v<T, double> ? 1e-12 : 2e-6;
    // Forward and backward of dispatch / combine are the same sums in the same order: exact.
    check_exact(ops::moe_dispatch(x.template to<Cuda>(), gp), ops::moe_dispatch(x, cp));
    check_exact(ops::moe_dispatch_backward(gxs.template to<Cuda>(), gp), ops::moe_dispatch_backward(gxs, cp));
    const Tensor<T, Cpu> y_ref = ops::moe_combine(ys, gates, cp);
    POLYMATH_CHECK_CLOSE(ops::moe_combine(ys.template to<Cuda>(), gates.template to<Cuda>(), gp).template to<Cpu>(),
                         y_ref, tol, tol);
    const auto gr = ops::moe_combine_backward(gy, ys, gates, cp);
    const auto gg = ops::moe_combine_backward(gy.template to<Cuda>(), ys.template to<Cuda>(), gates.template to<Cuda>(), gp);
    check_exact(gg.dys, gr.dys);
    // dgates: a dot product over d, summed in another order.
    POLYMATH_CHECK_CLOSE(gg.dgates.template to<Cpu>(), gr.dgates, tol * 10, tol * std::sqrt(double(d) + 1) * 10);
    // Only one of the two gradients.
    const auto only_gates =
        ops::moe_combine_backward(gy.template to<Cuda>(), ys.template to<Cuda>(), gates.template to<Cuda>(), gp, false, true);
    CHECK(!only_gates.dys.defined());
    POLYMATH_CHECK_CLOSE(only_gates.dgates.template to<Cpu>(), gr.dgates, tol * 10, tol * std::sqrt(double(d) + 1) * 10);
    const auto only_ys =
        ops::moe_combine_backward(gy.template to<Cuda>(), ys.template to<Cuda>(), gates.template to<Cuda>(), gp, true, false);
    CHECK(!only_ys.dgates.defined());
    check_exact(only_ys.dys, gr.dys);
}

}  // namespace

// ---- top-k ---------------------------------------------------------------------

TEST_CASE_TEMPLATE("CUDA topk equals the CPU topk (values and indices) on the gating shapes, warp per row", T, float,
                   double) {
    POLYMATH_REQUIRE_GPU();
    std::uint64_t seed = 100;
    for (const Shape& s : {Shape{7, 64}, Shape{33, 8}, Shape{5, 1}, Shape{3, 256}, Shape{129, 31}, Shape{1000, 16},
                           Shape{2, 3, 100}, Shape{4, 33}, Shape{6, 200}})
        for (std::int64_t k : {std::int64_t(1), std::int64_t(2), std::int64_t(3), s.back()}) {
            if (k > s.back()) continue;
            for (bool largest : {true, false})
                for (bool sorted : {true, false}) check_topk(topk_input<T>(s, ++seed, 0, 0), k, -1, largest, sorted);
        }
}

TEST_CASE_TEMPLATE("CUDA topk breaks ties by the lower index and ranks NaN above every number, as the CPU", T, float,
                   double) {
    POLYMATH_REQUIRE_GPU();
    std::uint64_t seed = 900;
    for (const Shape& s : {Shape{40, 16}, Shape{9, 64}, Shape{5, 250}, Shape{3, 700}, Shape{2, 5000}})
        for (std::int64_t k : {std::int64_t(1), std::int64_t(2), std::int64_t(7)})
            for (bool largest : {true, false})
                for (bool sorted : {true, false}) {
                    check_topk(topk_input<T>(s, ++seed, 1, 0), k, -1, largest, sorted);   // ~5 distinct values
                    check_topk(topk_input<T>(s, ++seed, 2, 11), k, -1, largest, sorted);  // and NaNs
                }
    // All equal: the first k indices.
    check_topk(Tensor<T, Cpu>::full({3, 50}, T(1.5)), 4, -1, true, true);
    check_topk(Tensor<T, Cpu>::full({3, 300}, T(-2)), 4, -1, false, false);
}

TEST_CASE_TEMPLATE("CUDA topk on integer types equals the CPU topk", T, std::int32_t, std::int64_t) {
    POLYMATH_REQUIRE_GPU();
    check_topk(topk_input<T>({17, 64}, 5, 1, 0), 3, -1, true, true);
    check_topk(topk_input<T>({17, 64}, 6, 0, 0), 5, -1, false, false);
    check_topk(topk_input<T>({4, 1000}, 7, 2, 0), 9, -1, true, false);
    check_topk(topk_input<T>({4, 1000}, 8, 0, 0), 9, -1, false, true);
}

TEST_CASE("CUDA topk on long rows, other axes, k = 0, k = n and scalars equals the CPU topk") {
    POLYMATH_REQUIRE_GPU();
    check_topk(topk_input<float>({3, 5000}, 1, 0, 0), 17, -1, true, true);
    check_topk(topk_input<float>({3, 5000}, 2, 0, 0), 17, -1, false, false);
    check_topk(topk_input<float>({1, 257}, 3, 0, 0), 257, -1, true, true);
    check_topk(topk_input<float>({2, 300}, 4, 0, 0), 300, -1, false, false);
    check_topk(topk_input<float>({10, 7, 3}, 5, 0, 0), 2, 1, true, true);
    check_topk(topk_input<float>({10, 7, 3}, 6, 0, 0), 4, 0, false, false);
    check_topk(topk_input<double>({300, 5}, 7, 0, 0), 3, 0, true, true);  // axis 0 of 300: block path
    check_topk(topk_input<float>({6, 50}, 8, 0, 0), 0, -1, true, true);
    check_topk(topk_input<float>({0, 50}, 9, 0, 0), 3, -1, true, true);
    check_topk(Tensor<float, Cpu>::full({}, 2.0f), 1, -1, true, true);
    // Non-contiguous input.
    const Tensor<float, Cpu> x = topk_input<float>({64, 20}, 10, 0, 0);
    const auto got = ops::topk(x.to<Cuda>().t(), 3);
    const auto ref = test::ref_topk(x.t().contiguous(), 3, -1, true, true);
    CHECK(got.indices.to_vector() == ref.indices.to_vector());
    CHECK(got.values.to_vector() == ref.values.to_vector());
    // Bad k: the CPU's error.
    CHECK_THROWS_AS(ops::topk(x.to<Cuda>(), 21), Error);
}

// ---- plan ------------------------------------------------------------------------

TEST_CASE("the CUDA MoE plan equals the CPU plan: capacity dropping, padding, empty experts, k = 1 and 2, E = 1, 4, 64") {
    POLYMATH_REQUIRE_GPU();
    std::uint64_t seed = 7;
    int cases = 0;
    for (std::int64_t E : {1, 4, 64})
        for (std::int64_t K : {1, 2})
            for (std::int64_t S : {1, 37, 1000})
                for (int mask_every : {0, 5})
                    for (std::int64_t used : {E, std::max<std::int64_t>(1, E / 2)}) {
                        // Capacities: dropless, none at all, tight, slightly tight, ample.
                        const std::int64_t fair = (S * K + E - 1) / E;
                        for (std::int64_t cap : {std::int64_t(-1), std::int64_t(0), std::int64_t(1),
                                                 std::max<std::int64_t>(1, fair / 2), fair + 1, S * K}) {
                            INFO("E ", E, " K ", K, " S ", S, " mask_every ", mask_every, " used ", used, " cap ", cap);
                            const Routing r = make_routing(S, K, used, mask_every, ++seed);
                            const ops::MoePlan c = cpu_plan(r, E, cap);
                            const ops::MoePlanCuda g = gpu_plan(r, E, cap);
                            CHECK(g.rows() == c.rows());
                            check_plan_equal(g.to_host(), c);
                            ++cases;
                        }
                    }
    CHECK(cases > 100);
}

TEST_CASE("the CUDA MoE plan handles many experts, all-padding, no tokens, and a round trip through the host") {
    POLYMATH_REQUIRE_GPU();
    // E = 300 (9 radix bits), k = 2, capacity.
    {
        const Routing r = make_routing(5000, 2, 300, 9, 11);
        for (std::int64_t cap : {-1, 3, 40}) check_plan_equal(gpu_plan(r, 300, cap).to_host(), cpu_plan(r, 300, cap));
    }
    // Every token is padding.
    {
        Routing r = make_routing(20, 2, 4, 0, 12);
        r.mask = Tensor<std::uint8_t, Cpu>::full({20}, 1);
        for (std::int64_t cap : {-1, 2}) {
            const ops::MoePlan g = gpu_plan(r, 4, cap).to_host();
            check_plan_equal(g, cpu_plan(r, 4, cap));
            CHECK(g.rows() == 0);
            CHECK(g.valid_tokens == 0);
        }
    }
    // No tokens.
    {
        const Routing r{Tensor<std::int64_t, Cpu>::empty({0, 2}), Tensor<std::uint8_t, Cpu>()};
        check_plan_equal(gpu_plan(r, 8, -1).to_host(), cpu_plan(r, 8, -1));
        check_plan_equal(gpu_plan(r, 8, 4).to_host(), cpu_plan(r, 8, 4));
    }
    // A mask given as [B, T] with S entries.
    {
        Routing r = make_routing(12, 2, 4, 3, 13);
        r.mask = r.mask.reshape({3, 4});
        check_plan_equal(gpu_plan(r, 4, 2).to_host(), cpu_plan(r, 4, 2));
    }
    // Host plan -> device -> host is the identity.
    {
        const Routing r = make_routing(50, 2, 8, 4, 14);
        const ops::MoePlan c = cpu_plan(r, 8, 5);
        check_plan_equal(ops::moe_plan_to_device(c).to_host(), c);
    }
}

TEST_CASE("the CUDA MoE plan rejects bad expert indices and shapes with the CPU's errors") {
    POLYMATH_REQUIRE_GPU();
    Routing r = make_routing(10, 2, 4, 0, 15);
    r.idx.data()[7] = 9;  // token 3, slot 1
    r.idx.data()[15] = -1;
    try {
        (void)gpu_plan(r, 4, -1);
        FAIL("a bad expert index did not throw");
    } catch (const Error& e) {
        const std::string m = e.what();
        INFO(m);
        CHECK(m.find("moe_plan") != std::string::npos);
        CHECK(m.find("expert index 9 at token 3 outside [0, 4)") != std::string::npos);
    }
    CHECK_THROWS_AS((void)gpu_plan(r, 4, 2), Error);
    CHECK_THROWS_AS((void)ops::moe_plan(Tensor<std::int64_t, Cuda>::zeros({4}), 4, -1), Error);
    CHECK_THROWS_AS((void)ops::moe_plan(Tensor<std::int64_t, Cuda>::zeros({4, 2}), 0, -1), Error);
    CHECK_THROWS_AS((void)ops::moe_plan(Tensor<std::int64_t, Cuda>::zeros({4, 2}), 4, -1,
                                        Tensor<std::uint8_t, Cuda>::zeros({3})),
                    Error);
    // Ops with the wrong shapes.
    const ops::MoePlanCuda p = gpu_plan(make_routing(10, 2, 4, 0, 16), 4, -1);
    CHECK_THROWS_AS((void)ops::moe_dispatch(Tensor<float, Cuda>::zeros({9, 4}), p), Error);
    CHECK_THROWS_AS((void)ops::moe_combine(Tensor<float, Cuda>::zeros({20, 4}), Tensor<float, Cuda>::zeros({10, 3}), p),
                    Error);
    CHECK_THROWS_AS((void)ops::moe_dispatch_backward(Tensor<float, Cuda>::zeros({19, 4}), p), Error);
}

// ---- dispatch / combine ----------------------------------------------------------------

TEST_CASE_TEMPLATE("CUDA moe_dispatch / moe_combine and their backward passes equal the CPU ops", T, float, double) {
    POLYMATH_REQUIRE_GPU();
    std::uint64_t seed = 300;
    for (std::int64_t d : {1, 3, 64, 130})
        for (std::int64_t K : {1, 2}) {
            check_moe_ops<T>(37, K, 4, 4, -1, 0, d, seed += 10);
            check_moe_ops<T>(200, K, 8, 6, 20, 5, d, seed += 10);  // drops, padding, empty experts
            check_moe_ops<T>(64, K, 64, 64, 1, 3, d, seed += 10);
        }
    check_moe_ops<T>(1, 1, 1, 1, -1, 0, 5, seed += 10);
    check_moe_ops<T>(300, 2, 16, 16, 0, 0, 32, seed += 10);  // capacity 0: nothing dispatched
    check_moe_ops<T>(513, 2, 64, 64, 9, 7, 1024, seed += 10);
}

TEST_CASE("CUDA moe_dispatch reads non-contiguous tokens, and an empty feature axis is fine") {
    POLYMATH_REQUIRE_GPU();
    const Routing r = make_routing(30, 2, 4, 0, 40);
    const ops::MoePlan cp = cpu_plan(r, 4, -1);
    const ops::MoePlanCuda gp = gpu_plan(r, 4, -1);
    const Tensor<float, Cpu> xt = randn_t<float>({16, 30}, 41);  // x = xt^T, a strided view
    check_exact(ops::moe_dispatch(xt.to<Cuda>().t(), gp), ops::moe_dispatch(xt.t().contiguous(), cp));
    const Tensor<float, Cpu> gates = randn_t<float>({30, 2}, 42);
    const Tensor<float, Cpu> ys = randn_t<float>({cp.rows(), 16}, 43);
    // gates as a non-contiguous view too.
    const Tensor<float, Cpu> gates_t = gates.t().contiguous();
    POLYMATH_CHECK_CLOSE(ops::moe_combine(ys.to<Cuda>(), gates_t.to<Cuda>().t(), gp).to<Cpu>(),
                         ops::moe_combine(ys, gates, cp), 2e-6, 2e-6);
    CHECK(ops::moe_dispatch(Tensor<float, Cuda>::zeros({30, 0}), gp).shape() == Shape{cp.rows(), 0});
    CHECK(ops::moe_combine(Tensor<float, Cuda>::zeros({cp.rows(), 0}), gates.to<Cuda>(), gp).shape() == Shape{30, 0});
}

TEST_CASE_TEMPLATE("CUDA MoE dispatch / combine in 16-bit storage match the float CPU ops to bf16/fp16 rounding", T,
                   bfloat16, polymath::half) {
    POLYMATH_REQUIRE_GPU();
    const double tol = std::is_same_v<T, bfloat16> ? 1.6e-2 : 2e-3;
    for (std::int64_t d : {3, 64, 200}) {
        INFO("d ", d);
        const Routing r = make_routing(150, 2, 8, 6, 50 + std::uint64_t(d));
        const ops::MoePlan cp = cpu_plan(r, 8, 30);
        const ops::MoePlanCuda gp = gpu_plan(r, 8, 30);
        // Inputs rounded to T; the reference runs in float on the rounded values.
        const Tensor<T, Cpu> x = randn_t<float>({150, d}, 60).template to<T>(), ys = randn_t<float>({cp.rows(), d}, 61).template to<T>(),
                             gates = randn_t<float>({150, 2}, 62).template to<T>(), gy = randn_t<float>({150, d}, 63).template to<T>(),
                             gxs = randn_t<float>({cp.rows(), d}, 64).template to<T>();
        auto f = [](const Tensor<T, Cpu>& t) { return t.template to<float>(); };
        POLYMATH_CHECK_CLOSE(ops::moe_dispatch(x.template to<Cuda>(), gp).template to<Cpu>().template to<float>(),
                             ops::moe_dispatch(f(x), cp), 0.0, 0.0);
        POLYMATH_CHECK_CLOSE(ops::moe_dispatch_backward(gxs.template to<Cuda>(), gp).template to<Cpu>().template to<float>(),
                             ops::moe_dispatch_backward(f(gxs), cp), tol, tol);
        POLYMATH_CHECK_CLOSE(ops::moe_combine(ys.template to<Cuda>(), gates.template to<Cuda>(), gp).template to<Cpu>().template to<float>(),
                             ops::moe_combine(f(ys), f(gates), cp), tol, tol);
        const auto gr = ops::moe_combine_backward(f(gy), f(ys), f(gates), cp);
        const auto gg = ops::moe_combine_backward(gy.template to<Cuda>(), ys.template to<Cuda>(), gates.template to<Cuda>(), gp);
        POLYMATH_CHECK_CLOSE(gg.dys.template to<Cpu>().template to<float>(), gr.dys, tol, tol);
        POLYMATH_CHECK_CLOSE(gg.dgates.template to<Cpu>().template to<float>(), gr.dgates, tol, tol * std::sqrt(double(d)));
    }
}
