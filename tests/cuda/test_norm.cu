// softmax / log_softmax, layer_norm and the losses on the device, compared with
// the CPU ops (norm_ref.cpp) on the same inputs, forward and backward.
//
// Tolerances (|gpu - cpu| <= atol + rtol |cpu|):
//   double       rtol 1e-12, atol 1e-13 (reductions in a different order only)
//   float        rtol 2e-5,  atol 5e-6  (exp/log ulps, summation order)
//   sums over rows / broadcast dims (dweight, dbias, mse): 10x the above for float and double
//   half         rtol 4e-3,  atol 4e-3  (one fp16 rounding of the output; float compute)
//   bfloat16     rtol 2e-2,  atol 2e-2  (one bf16 rounding of the output; float compute)
// For bfloat16 / half the reference is the CPU op in float on the same
// (already rounded) 16-bit inputs.
#include <polymath/cuda.hpp>
#include <polymath/ops/cuda/layer_norm.cuh>
#include <polymath/ops/cuda/loss.cuh>
#include <polymath/ops/cuda/softmax.cuh>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include "cuda_test_util.hpp"
#include "norm_ref.hpp"

using namespace polymath;
using polymath::half;  // not CUDA's ::half

namespace {

template <class T>
constexpr bool is16 = std::is_same_v<T, bfloat16> || std::is_same_v<T, polymath::half>;
// The host reference dtype of T.
template <class T>
using RefT = std::conditional_t<is16<T>, float, T>;

struct Tol {
    double rtol, atol;
};
template <class T>
Tol tol() {
    if constexpr (std::is_same_v<T, double>) return {1e-12, 1e-13};
    else if constexpr (std::is_same_v<T, float>) return {2e-5, 5e-6};
    else if constexpr (std::is_same_v<T, polymath::half>) return {4e-3, 4e-3};
    else return {2e-2, 2e-2};
}

// Random host tensor in T (rounded to T), and the same values in RefT<T>.
template <class T>
Tensor<T, Cpu> rnd(const Shape& s, std::uint64_t seed, double scale = 1.0) {
    Generator gen(seed);
    Tensor<float, Cpu> f = Tensor<float, Cpu>::randn(s, gen);
    if (scale != 1.0)
        for (std::int64_t i = 0; i < f.numel(); ++i) f.data()[i] = float(f.data()[i] * scale);
    return f.to<T>();
}
template <class T>
Tensor<RefT<T>, Cpu> ref_of(const Tensor<T, Cpu>& h) {
    return h.template to<RefT<T>>();
}
// Device result -> host in the reference dtype.
template <class T>
Tensor<RefT<T>, Cpu> host_of(const Tensor<T, Cuda>& d) {
    return d.template to<Cpu>().template to<RefT<T>>();
}

#define CHECK_PARITY(dev, ref, T_)                                                        \
    do {                                                                                  \
        const Tol pm_t_ = tol<T_>();                                                      \
        POLYMATH_CHECK_CLOSE(host_of<T_>(dev), (ref), pm_t_.rtol, pm_t_.atol);            \
    } while (0)

template <class T>
bool bit_equal(const Tensor<T, Cpu>& a, const Tensor<T, Cpu>& b) {
    return a.shape() == b.shape() &&
           std::memcmp(a.contiguous().data(), b.contiguous().data(), std::size_t(a.numel()) * sizeof(T)) == 0;
}

struct ShapeAxis {
    Shape shape;
    std::int64_t axis;
};
// Warp path (odd sizes, 1, 33, 1000), block path (1025, 5000), column path (axis != last).
std::vector<ShapeAxis> softmax_cases() {
    return {{{1, 1}, -1},    {{7, 33}, 1},     {{7, 33}, 0},     {{64, 1000}, 1}, {{64, 1000}, 0},
            {{3, 5000}, 1},  {{3, 5000}, 0},   {{4, 1025}, -1},  {{2, 3, 4}, 0},  {{2, 3, 4}, 1},
            {{2, 3, 4}, 2},  {{5, 1, 7}, 1},   {{129, 32}, -1},  {{3, 64}, -1},   {{0, 5}, 1},
            {{37}, 0}};
}

std::vector<std::int64_t> random_targets(std::int64_t n, std::int64_t C, std::uint64_t seed, int ignore_every,
                                         std::int64_t ignore_index) {
    std::vector<std::int64_t> t(static_cast<std::size_t>(n));
    std::uint64_t s = seed * 6364136223846793005ULL + 1442695040888963407ULL;
    for (std::int64_t i = 0; i < n; ++i) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        t[std::size_t(i)] = std::int64_t((s >> 33) % std::uint64_t(std::max<std::int64_t>(C, 1)));
        if (ignore_every > 0 && i % ignore_every == 1) t[std::size_t(i)] = ignore_index;
    }
    return t;
}

}  // namespace

// ---------------------------------------------------------------------------
// softmax
// ---------------------------------------------------------------------------

TEST_CASE_TEMPLATE("softmax and log_softmax on the device equal the CPU on every path (warp, block, column)", T, float,
                   double, bfloat16, polymath::half) {
    POLYMATH_REQUIRE_GPU();
    std::uint64_t seed = 1;
    for (const auto& c : softmax_cases()) {
        CAPTURE(c.shape);
        CAPTURE(c.axis);
        const Tensor<T, Cpu> h = rnd<T>(c.shape, seed++, 3.0);
        const Tensor<T, Cuda> d = h.template to<Cuda>();
        const auto hr = ref_of(h);
        CHECK_PARITY(ops::softmax(d, c.axis), normref::softmax(hr, c.axis), T);
        CHECK_PARITY(ops::log_softmax(d, c.axis), normref::log_softmax(hr, c.axis), T);
    }
    // 0-d input: softmax 1, log_softmax 0
    const Tensor<T, Cuda> s = Tensor<T, Cuda>::full(Shape{}, dtype_cast<T>(3.0));
    CHECK(float(ops::softmax(s, -1).item()) == 1.0f);
    CHECK(float(ops::log_softmax(s, 0).item()) == 0.0f);
}

TEST_CASE("softmax of non-contiguous views and of large logits matches the CPU and stays finite") {
    POLYMATH_REQUIRE_GPU();
    const auto h = rnd<double>({6, 40, 9}, 11);
    const auto d = h.to<Cuda>();
    for (std::int64_t ax : {0, 1, 2}) {
        CHECK_PARITY(ops::softmax(d.transpose(0, 2), ax), normref::softmax(h.transpose(0, 2), ax), double);
        CHECK_PARITY(ops::log_softmax(d.slice(1, 1, 40, 3), ax), normref::log_softmax(h.slice(1, 1, 40, 3), ax), double);
    }
    const auto big = rnd<float>({4, 700}, 12, 1000.0);
    const auto sb = ops::softmax(big.to<Cuda>(), 1).to<Cpu>();
    for (float v : sb.to_vector()) CHECK(std::isfinite(v));
    CHECK_PARITY(ops::softmax(big.to<Cuda>(), 1), normref::softmax(big, 1), float);
    const auto big2 = rnd<float>({3, 3000}, 13, 1000.0);
    CHECK_PARITY(ops::log_softmax(big2.to<Cuda>(), 1), normref::log_softmax(big2, 1), float);
}

TEST_CASE_TEMPLATE("softmax rows with -inf, +inf and NaN give the CPU's values (all -inf -> NaN)", T, float, double) {
    POLYMATH_REQUIRE_GPU();
    const T ninf = -std::numeric_limits<T>::infinity(), pinf = std::numeric_limits<T>::infinity();
    const T nan = std::numeric_limits<T>::quiet_NaN();
    for (std::int64_t R : {1, 40, 2000}) {  // warp path (R = 1 and 40) and block path (2000)
        CAPTURE(R);
        Tensor<T, Cpu> h = rnd<T>({6, R}, 20 + std::uint64_t(R));
        T* p = h.data();
        for (std::int64_t j = 0; j < R; ++j) p[0 * R + j] = ninf;         // row 0: all -inf
        for (std::int64_t j = 0; j < R; j += 2) p[1 * R + j] = ninf;      // row 1: half -inf (masked)
        p[2 * R + R / 2] = nan;                                           // row 2: one NaN
        p[3 * R + R - 1] = pinf;                                          // row 3: one +inf
        for (std::int64_t j = 1; j < R; ++j) p[4 * R + j] = ninf;         // row 4: one finite value
        const auto d = h.template to<Cuda>();
        CHECK_PARITY(ops::softmax(d, 1), normref::softmax(h, 1), T);
        CHECK_PARITY(ops::log_softmax(d, 1), normref::log_softmax(h, 1), T);
        // the same rows as columns (axis 0 of the transpose: the column kernel)
        const auto ht = h.t().contiguous();
        const auto dt = ht.template to<Cuda>();
        CHECK_PARITY(ops::softmax(dt, 0), normref::softmax(ht, 0), T);
        CHECK_PARITY(ops::log_softmax(dt, 0), normref::log_softmax(ht, 0), T);
        const auto y = ops::softmax(d, 1).template to<Cpu>();
        CHECK(std::isnan(double(y.data()[0])));  // all -inf -> NaN, like the CPU and PyTorch
        if (R > 1) CHECK(double(y.data()[1 * R]) == 0.0);
        CHECK(double(y.data()[4 * R]) == 1.0);
    }
}

TEST_CASE_TEMPLATE("softmax_backward and log_softmax_backward equal the CPU backward for the same upstream gradient",
                   T, float, double, bfloat16, polymath::half) {
    POLYMATH_REQUIRE_GPU();
    std::uint64_t seed = 100;
    for (const auto& c : softmax_cases()) {
        CAPTURE(c.shape);
        CAPTURE(c.axis);
        const auto x = ref_of(rnd<T>(c.shape, seed++));
        const Tensor<T, Cpu> g = rnd<T>(c.shape, seed++);
        // y in T (as the forward would store it); both sides see the same rounded y
        const Tensor<T, Cpu> y = normref::softmax(x, c.axis).template to<T>();
        const Tensor<T, Cpu> ly = normref::log_softmax(x, c.axis).template to<T>();
        CHECK_PARITY(ops::softmax_backward(g.template to<Cuda>(), y.template to<Cuda>(), c.axis),
                     normref::softmax_backward(ref_of(g), ref_of(y), c.axis), T);
        CHECK_PARITY(ops::log_softmax_backward(g.template to<Cuda>(), ly.template to<Cuda>(), c.axis),
                     normref::log_softmax_backward(ref_of(g), ref_of(ly), c.axis), T);
    }
}

TEST_CASE("softmax errors name the op and the shapes") {
    POLYMATH_REQUIRE_GPU();
    const auto d = Tensor<float, Cuda>::zeros({2, 3});
    CHECK_THROWS_WITH_AS(ops::softmax(d, 2), doctest::Contains("softmax"), Error);
    CHECK_THROWS_WITH_AS(ops::log_softmax(d, -3), doctest::Contains("log_softmax"), Error);
    CHECK_THROWS_WITH_AS(ops::softmax_backward(Tensor<float, Cuda>::zeros({3, 2}), d, 1), doctest::Contains("[3, 2]"),
                         Error);
}

// ---------------------------------------------------------------------------
// layer_norm
// ---------------------------------------------------------------------------

namespace {
struct LnCase {
    Shape x, ns;
};
std::vector<LnCase> ln_cases() {
    return {{{1, 1}, {1}},      {{7, 33}, {33}},   {{64, 1000}, {1000}}, {{3, 5000}, {5000}}, {{2, 3, 4}, {4}},
            {{2, 3, 4}, {3, 4}}, {{5, 1025}, {1025}}, {{9, 100}, {100}},   {{300, 96}, {96}},   {{4, 37}, {37}}};
}
}  // namespace

TEST_CASE_TEMPLATE("layer_norm forward equals the CPU (y, mean, rstd) with and without weight / bias", T, float, double,
                   bfloat16, polymath::half) {
    POLYMATH_REQUIRE_GPU();
    std::uint64_t seed = 200;
    for (const auto& c : ln_cases()) {
        CAPTURE(c.x);
        CAPTURE(c.ns);
        const Tensor<T, Cpu> x = rnd<T>(c.x, seed++, 2.0);
        const Tensor<T, Cpu> w = rnd<T>(c.ns, seed++), b = rnd<T>(c.ns, seed++);
        for (int variant = 0; variant < 4; ++variant) {
            CAPTURE(variant);
            const bool hw = variant & 1, hb = variant & 2;
            const double eps = variant == 3 ? 1e-3 : 1e-5;
            const Tensor<T, Cuda> wd = hw ? w.template to<Cuda>() : Tensor<T, Cuda>();
            const Tensor<T, Cuda> bd = hb ? b.template to<Cuda>() : Tensor<T, Cuda>();
            const Tensor<RefT<T>, Cpu> wr = hw ? ref_of(w) : Tensor<RefT<T>, Cpu>();
            const Tensor<RefT<T>, Cpu> br = hb ? ref_of(b) : Tensor<RefT<T>, Cpu>();
            const auto f = ops::layer_norm_forward(x.template to<Cuda>(), c.ns, wd, bd, eps);
            const auto r = normref::layer_norm_forward(ref_of(x), c.ns, wr, br, eps);
            CHECK_PARITY(f.y, r.y, T);
            REQUIRE(f.mean.shape() == r.mean.shape());
            REQUIRE(f.rstd.shape() == r.rstd.shape());
            // statistics are kept in compute precision: compare at float / double tolerance
            using C = polymath::cuda::compute_t<T>;
            POLYMATH_CHECK_CLOSE(f.mean.template to<Cpu>(), r.mean, tol<C>().rtol, tol<C>().atol);
            POLYMATH_CHECK_CLOSE(f.rstd.template to<Cpu>(), r.rstd, tol<C>().rtol, tol<C>().atol);
            CHECK_PARITY(ops::layer_norm(x.template to<Cuda>(), c.ns, wd, bd, eps), r.y, T);
        }
    }
}

TEST_CASE("layer_norm of a non-contiguous input with a large common offset matches the CPU") {
    POLYMATH_REQUIRE_GPU();
    Tensor<double, Cpu> h = rnd<double>({50, 8}, 250);
    for (std::int64_t i = 0; i < h.numel(); ++i) h.data()[i] += 1000.0;
    const auto ht = h.t();  // [8, 50], rows of 50 strided
    const auto f = ops::layer_norm_forward(h.to<Cuda>().t(), {50});
    const auto r = normref::layer_norm_forward(ht, {50}, {}, {}, 1e-5);
    CHECK_PARITY(f.y, r.y, double);
    POLYMATH_CHECK_CLOSE(f.rstd.to<Cpu>(), r.rstd, 1e-12, 1e-13);
    const auto hf = h.to<float>();
    const auto ff = ops::layer_norm_forward(hf.to<Cuda>(), {8});
    const auto rf = normref::layer_norm_forward(hf, {8}, {}, {}, 1e-5);
    POLYMATH_CHECK_CLOSE(ff.y.to<Cpu>(), rf.y, 1e-4, 1e-4);  // float with |mean| 1000: both round x - mean
}

TEST_CASE_TEMPLATE("layer_norm_backward equals the CPU backward (dx, dweight, dbias) for the same upstream gradient", T,
                   float, double, bfloat16, polymath::half) {
    POLYMATH_REQUIRE_GPU();
    using C = polymath::cuda::compute_t<T>;
    std::uint64_t seed = 300;
    for (const auto& c : ln_cases()) {
        CAPTURE(c.x);
        CAPTURE(c.ns);
        const Tensor<T, Cpu> x = rnd<T>(c.x, seed++), g = rnd<T>(c.x, seed++), w = rnd<T>(c.ns, seed++);
        for (bool hw : {false, true}) {
            CAPTURE(hw);
            const Tensor<RefT<T>, Cpu> wr = hw ? ref_of(w) : Tensor<RefT<T>, Cpu>();
            const Tensor<T, Cuda> wd = hw ? w.template to<Cuda>() : Tensor<T, Cuda>();
            const auto fr = normref::layer_norm_forward(ref_of(x), c.ns, wr, {}, 1e-5);
            // the same statistics on both sides (RefT<T> == compute_t<T>)
            static_assert(std::is_same_v<RefT<T>, C>);
            const Tensor<C, Cuda> md = fr.mean.template to<Cuda>(), rd = fr.rstd.template to<Cuda>();
            const auto r = normref::layer_norm_backward(ref_of(g), ref_of(x), fr.mean, fr.rstd, c.ns, wr, true, true, true);
            const auto d = ops::layer_norm_backward(g.template to<Cuda>(), x.template to<Cuda>(), md, rd, c.ns, wd);
            CHECK_PARITY(d.dx, r.dx, T);
            // parameter gradients sum over rows: a different order than the CPU's blocks
            const Tol t = tol<T>();
            const double k = is16<T> ? 1.0 : 10.0;
            POLYMATH_CHECK_CLOSE(host_of<T>(d.dweight), r.dweight, t.rtol * k, t.atol * k);
            POLYMATH_CHECK_CLOSE(host_of<T>(d.dbias), r.dbias, t.rtol * k, t.atol * k);
            REQUIRE(d.dweight.shape() == c.ns);
            // only dx / only the parameters
            const auto only_dx =
                ops::layer_norm_backward(g.template to<Cuda>(), x.template to<Cuda>(), md, rd, c.ns, wd, true, false, false);
            CHECK(!only_dx.dweight.defined());
            CHECK(!only_dx.dbias.defined());
            CHECK(bit_equal(only_dx.dx.template to<Cpu>(), d.dx.template to<Cpu>()));
            const auto only_p =
                ops::layer_norm_backward(g.template to<Cuda>(), x.template to<Cuda>(), md, rd, c.ns, wd, false, true, false);
            CHECK(!only_p.dx.defined());
            CHECK(!only_p.dbias.defined());
            CHECK(bit_equal(only_p.dweight.template to<Cpu>(), d.dweight.template to<Cpu>()));
        }
    }
}

TEST_CASE("layer_norm parameter gradients are bit-identical from run to run (no atomics), over many row chunks") {
    POLYMATH_REQUIRE_GPU();
    const auto x = rnd<float>({3000, 96}, 400), g = rnd<float>({3000, 96}, 401), w = rnd<float>({96}, 402);
    const auto xd = x.to<Cuda>(), gd = g.to<Cuda>(), wd = w.to<Cuda>();
    const auto f = ops::layer_norm_forward(xd, {96}, wd, Tensor<float, Cuda>());
    const auto a = ops::layer_norm_backward(gd, xd, f.mean, f.rstd, {96}, wd);
    const auto b = ops::layer_norm_backward(gd, xd, f.mean, f.rstd, {96}, wd);
    CHECK(bit_equal(a.dweight.to<Cpu>(), b.dweight.to<Cpu>()));
    CHECK(bit_equal(a.dbias.to<Cpu>(), b.dbias.to<Cpu>()));
    const auto fr = normref::layer_norm_forward(x, {96}, w, {}, 1e-5);
    const auto r = normref::layer_norm_backward(g, x, fr.mean, fr.rstd, {96}, w, true, true, true);
    POLYMATH_CHECK_CLOSE(a.dbias.to<Cpu>(), r.dbias, 1e-4, 1e-4);
    POLYMATH_CHECK_CLOSE(a.dweight.to<Cpu>(), r.dweight, 1e-4, 1e-4);
    POLYMATH_CHECK_CLOSE(a.dx.to<Cpu>(), r.dx, 1e-4, 1e-5);
}

TEST_CASE("layer_norm errors: normalized_shape and parameter shape mismatch, named as on the CPU") {
    POLYMATH_REQUIRE_GPU();
    const auto x = Tensor<double, Cuda>::zeros({2, 3});
    CHECK_THROWS_WITH_AS(ops::layer_norm(x, {4}), doctest::Contains("[2, 3]"), Error);
    CHECK_THROWS_WITH_AS(ops::layer_norm(x, {2, 3, 1}), doctest::Contains("normalized_shape"), Error);
    CHECK_THROWS_WITH_AS(ops::layer_norm(x, {3}, Tensor<double, Cuda>::zeros({2})), doctest::Contains("weight of shape [2]"),
                         Error);
    CHECK_THROWS_WITH_AS(ops::layer_norm(x, {3}, Tensor<double, Cuda>(), Tensor<double, Cuda>::zeros({4})),
                         doctest::Contains("bias"), Error);
}

// ---------------------------------------------------------------------------
// losses
// ---------------------------------------------------------------------------

namespace {
// Upstream gradient for a loss of shape `loss_shape` under reduction red.
template <class T>
Tensor<T, Cpu> loss_grad(int red, const Shape& loss_shape, std::uint64_t seed) {
    return red == 0 ? rnd<T>(loss_shape, seed) : rnd<T>(Shape{}, seed);
}
}  // namespace

TEST_CASE_TEMPLATE("cross_entropy forward and backward equal the CPU: [N, C] and [N, C, d...], ignore_index, "
                   "label smoothing 0.1, every reduction",
                   T, float, double, bfloat16, polymath::half) {
    POLYMATH_REQUIRE_GPU();
    using C = polymath::cuda::compute_t<T>;
    const std::vector<Shape> shapes{{1, 1}, {7, 33}, {64, 1000}, {3, 5000}, {2, 4, 3}, {2, 5, 3, 2}, {5, 1100, 2}};
    std::uint64_t seed = 500;
    for (const Shape& s : shapes) {
        Shape ls{s[0]};
        for (int d = 2; d < s.size(); ++d) ls.push_back(s[d]);
        const std::int64_t P = numel_of(ls), Cn = s[1];
        const Tensor<T, Cpu> x = rnd<T>(s, seed++, 2.0);
        for (std::int64_t ign : {std::int64_t(-100), std::int64_t(0)}) {
            const auto tv = random_targets(P, Cn, seed++, P > 2 ? 3 : 0, ign);
            const auto th = Tensor<std::int64_t, Cpu>::from_vector(tv, ls);
            const auto td = th.template to<Cuda>();
            for (double eps : {0.0, 0.1}) {
                for (int red : {0, 1, 2}) {
                    CAPTURE(s);
                    CAPTURE(ign);
                    CAPTURE(eps);
                    CAPTURE(red);
                    CrossEntropyOptions o;
                    o.ignore_index = ign;
                    o.label_smoothing = eps;
                    o.reduction = red == 0 ? Reduction::None : red == 1 ? Reduction::Mean : Reduction::Sum;
                    const auto f = ops::cross_entropy_forward(x.template to<Cuda>(), td, o);
                    const auto r = normref::cross_entropy_forward(ref_of(x), th, ign, eps, red);
                    CHECK(f.count == r.count);
                    CHECK_PARITY(f.loss, r.loss, T);
                    POLYMATH_CHECK_CLOSE(f.lse.template to<Cpu>(), r.lse, tol<C>().rtol, tol<C>().atol);
                    const Tensor<T, Cpu> g = loss_grad<T>(red, ls, seed++);
                    const Tensor<C, Cuda> lse_d = r.lse.template to<Cuda>();  // same lse on both sides
                    const auto gd =
                        ops::cross_entropy_backward(g.template to<Cuda>(), x.template to<Cuda>(), td, lse_d, r.count, o);
                    const auto gr = normref::cross_entropy_backward(ref_of(g), ref_of(x), th, r.lse, r.count, ign, eps, red);
                    REQUIRE(gd.shape() == s);
                    CHECK_PARITY(gd, gr, T);
                }
            }
        }
    }
}

TEST_CASE("cross_entropy with every target ignored: Mean is NaN and the gradient zero, Sum is 0") {
    POLYMATH_REQUIRE_GPU();
    const auto x = rnd<float>({3, 7}, 600).to<Cuda>();
    const auto t = Tensor<std::int64_t, Cpu>::full({3}, -100).to<Cuda>();
    const auto f = ops::cross_entropy_forward(x, t);
    CHECK(f.count == 0);
    CHECK(std::isnan(f.loss.item()));
    CrossEntropyOptions sum;
    sum.reduction = Reduction::Sum;
    CHECK(ops::cross_entropy(x, t, sum).item() == 0.0f);
    const auto g = ops::cross_entropy_backward(Tensor<float, Cuda>::full(Shape{}, 1.0f), x, t, f.lse, f.count);
    for (float v : g.to_vector()) CHECK(v == 0.0f);
}

TEST_CASE("cross_entropy errors: bad target value named with its position and C, shape mismatch, bad smoothing") {
    POLYMATH_REQUIRE_GPU();
    const auto x = Tensor<double, Cuda>::zeros({4, 3});
    using I64 = Tensor<std::int64_t, Cpu>;
    try {
        (void)ops::cross_entropy(x, I64{0, 7, 1, 2}.to<Cuda>());
        FAIL("a target of 7 with 3 classes did not throw");
    } catch (const Error& e) {
        const std::string m = e.what();
        INFO(m);
        CHECK(m.find("cross_entropy") != std::string::npos);
        CHECK(m.find("target value 7") != std::string::npos);
        CHECK(m.find("position [1]") != std::string::npos);
        CHECK(m.find("3 classes") != std::string::npos);
    }
    CHECK_THROWS_WITH_AS(ops::cross_entropy(x, I64{0, -1, 1, 2}.to<Cuda>()), doctest::Contains("target value -1"), Error);
    CHECK_THROWS_WITH_AS(ops::cross_entropy(x, I64{0, 1, 2}.to<Cuda>()), doctest::Contains("[4, 3]"), Error);
    CrossEntropyOptions o;
    o.label_smoothing = 1.5;
    CHECK_THROWS_WITH_AS(ops::cross_entropy(x, I64{0, 1, 1, 2}.to<Cuda>(), o), doctest::Contains("label_smoothing"),
                         Error);
    CHECK_THROWS_WITH_AS(ops::cross_entropy(Tensor<double, Cuda>::zeros({2, 3, 2}),
                                            I64::from_vector({0, 1, 2, 5}, {2, 2}).to<Cuda>()),
                         doctest::Contains("position [1, 1]"), Error);
    CHECK_THROWS_WITH_AS(ops::nll_loss(x, I64{0, 3, 1, 2}.to<Cuda>()), doctest::Contains("nll_loss"), Error);
}

TEST_CASE_TEMPLATE("nll_loss forward and backward equal the CPU, [N, C] and [N, C, d], with ignore_index", T, float,
                   double, bfloat16, polymath::half) {
    POLYMATH_REQUIRE_GPU();
    const std::vector<Shape> shapes{{1, 1}, {7, 33}, {64, 1000}, {2, 4, 3}, {3, 6, 2, 5}};
    std::uint64_t seed = 700;
    for (const Shape& s : shapes) {
        Shape ls{s[0]};
        for (int d = 2; d < s.size(); ++d) ls.push_back(s[d]);
        const std::int64_t P = numel_of(ls);
        const Tensor<T, Cpu> x = rnd<T>(s, seed++);
        const auto th = Tensor<std::int64_t, Cpu>::from_vector(random_targets(P, s[1], seed++, P > 2 ? 4 : 0, -100), ls);
        for (int red : {0, 1, 2}) {
            CAPTURE(s);
            CAPTURE(red);
            NllLossOptions o;
            o.reduction = red == 0 ? Reduction::None : red == 1 ? Reduction::Mean : Reduction::Sum;
            CHECK_PARITY(ops::nll_loss(x.template to<Cuda>(), th.template to<Cuda>(), o), normref::nll_loss(ref_of(x), th, -100, red),
                         T);
            const Tensor<T, Cpu> g = loss_grad<T>(red, ls, seed++);
            const auto gd = ops::nll_loss_backward(g.template to<Cuda>(), x.template to<Cuda>(), th.template to<Cuda>(), o);
            REQUIRE(gd.shape() == s);
            CHECK_PARITY(gd, normref::nll_loss_backward(ref_of(g), ref_of(x), th, -100, red), T);
        }
    }
}

TEST_CASE_TEMPLATE("mse_loss forward and backward equal the CPU with broadcasting and every reduction", T, float, double,
                   bfloat16, polymath::half) {
    POLYMATH_REQUIRE_GPU();
    struct AB {
        Shape a, b;
    };
    const std::vector<AB> cases{{{3, 4}, {3, 4}},     {{3, 4}, {4}},       {{2, 1, 5}, {3, 1}}, {{1}, {7, 33}},
                                {{64, 1000}, {64, 1000}}, {{5, 1}, {1, 6}}, {{1, 1}, {1, 1}}};
    std::uint64_t seed = 800;
    for (const auto& c : cases) {
        const Tensor<T, Cpu> a = rnd<T>(c.a, seed++), b = rnd<T>(c.b, seed++);
        const Shape out = broadcast_shapes(c.a, c.b, "test");
        for (int red : {0, 1, 2}) {
            CAPTURE(c.a);
            CAPTURE(c.b);
            CAPTURE(red);
            const Reduction rr = red == 0 ? Reduction::None : red == 1 ? Reduction::Mean : Reduction::Sum;
            const auto ld = ops::mse_loss(a.template to<Cuda>(), b.template to<Cuda>(), rr);
            const auto lr = normref::mse_loss(ref_of(a), ref_of(b), red);
            // Sum over 64000 squares in a different order: scale the float tolerance.
            // 16-bit: the reference rounded to T as well (the half Sum over [64, 1000],
            // ~1.3e5, overflows to inf on both sides: half's largest finite value is 65504).
            const Tol t = tol<T>();
            const double k = is16<T> ? 1.0 : 10.0;
            POLYMATH_CHECK_CLOSE(host_of<T>(ld), lr.template to<T>().template to<RefT<T>>(), t.rtol * k, t.atol * k);
            const Tensor<T, Cpu> g = red == 0 ? rnd<T>(out, seed++) : rnd<T>(Shape{}, seed++);
            const auto gd = ops::mse_loss_backward(g.template to<Cuda>(), a.template to<Cuda>(), b.template to<Cuda>(), rr);
            const auto gr = normref::mse_loss_backward(ref_of(g), ref_of(a), ref_of(b), red);
            REQUIRE(gd.da.shape() == c.a);
            REQUIRE(gd.db.shape() == c.b);
            POLYMATH_CHECK_CLOSE(host_of<T>(gd.da), gr.da, t.rtol * 10, t.atol * 10);
            POLYMATH_CHECK_CLOSE(host_of<T>(gd.db), gr.db, t.rtol * 10, t.atol * 10);
        }
    }
}
