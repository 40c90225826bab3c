// Elementwise ops: unary math (exp ... gelu, softplus, pow_scalar), pow /
// maximum / minimum, comparisons and where, plus the arithmetic of
// autograd/arith.hpp. Forward values against std:: math in naive loops (float
// and double), broadcasting, non-contiguous views, tensors large enough to
// run threaded, the vectorised backward kernels against their closed forms,
// grad_check (double) for every differentiable op, and error messages.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "polymath/polymath.hpp"
#include "polymath/autograd/binary_math.hpp"
#include "polymath/autograd/compare.hpp"
#include "polymath/autograd/unary.hpp"
#include "ops_test_util.hpp"

using namespace polymath;
using namespace polymath::test;
using doctest::Contains;

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kPi = 3.14159265358979323846;

// |x| >= margin: uniform magnitudes in [margin, hi) with random signs.
Tensor<double> away_from_zero(const Shape& s, double margin, double hi, std::uint64_t seed) {
    Tensor<double> m = uniform<double>(s, margin, hi, seed);
    Tensor<double> sign = uniform<double>(s, -1, 1, seed + 1);
    double* p = m.data();
    const double* q = sign.data();
    for (std::int64_t i = 0; i < m.numel(); ++i)
        if (q[i] < 0) p[i] = -p[i];
    return m;
}

template <class T>
struct Tol;
template <>
struct Tol<float> {
    static constexpr double rtol = 4e-6, atol = 1e-6;
};
template <>
struct Tol<double> {
    static constexpr double rtol = 1e-13, atol = 1e-14;
};

std::vector<double> map_values(const std::vector<double>& x, const std::function<double(double)>& f) {
    std::vector<double> out;
    for (double v : x) out.push_back(f(v));
    return out;
}

// The index into an operand of shape `s` that broadcasts to output index `m`.
std::vector<std::int64_t> source_index(const std::vector<std::int64_t>& m, const Shape& s) {
    std::vector<std::int64_t> r;
    const std::size_t lead = m.size() - std::size_t(s.size());
    for (int d = 0; d < s.size(); ++d) r.push_back(s[d] == 1 ? 0 : m[lead + std::size_t(d)]);
    return r;
}
// Naive broadcast of f over a and b (read through at(), so any layout).
template <class T, class F>
std::vector<double> naive_binary(const Tensor<T>& a, const Tensor<T>& b, const Shape& out, F&& f) {
    std::vector<double> r;
    for (const auto& m : all_indices(out))
        r.push_back(double(f(double(a.at(source_index(m, a.shape()))), double(b.at(source_index(m, b.shape()))))));
    return r;
}

double gelu_erf_ref(double x) { return 0.5 * x * (1 + std::erf(x / std::sqrt(2.0))); }
double gelu_tanh_ref(double x) {
    return 0.5 * x * (1 + std::tanh(std::sqrt(2 / kPi) * (x + 0.044715 * x * x * x)));
}
double softplus_ref(double x, double beta = 1, double threshold = 20) {
    return beta * x > threshold ? x : std::log1p(std::exp(beta * x)) / beta;
}
double sigmoid_ref(double x) { return 1 / (1 + std::exp(-x)); }

// One unary op: tensor kernel, double reference, input range.
template <class T>
struct UnaryCase {
    const char* name;
    double lo, hi;
    std::function<Tensor<T>(const Tensor<T>&)> op;
    std::function<double(double)> ref;
    double rtol_scale = 1;  // looser for the fast float approximations
};
template <class T>
std::vector<UnaryCase<T>> unary_cases() {
    using TT = const Tensor<T>&;
    return {
        {"exp", -20, 20, [](TT x) { return ops::exp(x); }, [](double v) { return std::exp(v); }},
        {"log", 1e-3, 1e3, [](TT x) { return ops::log(x); }, [](double v) { return std::log(v); }},
        {"sqrt", 0, 100, [](TT x) { return ops::sqrt(x); }, [](double v) { return std::sqrt(v); }},
        {"rsqrt", 1e-3, 100, [](TT x) { return ops::rsqrt(x); }, [](double v) { return 1 / std::sqrt(v); }},
        {"abs", -5, 5, [](TT x) { return ops::abs(x); }, [](double v) { return std::fabs(v); }},
        {"tanh", -10, 10, [](TT x) { return ops::tanh(x); }, [](double v) { return std::tanh(v); }},
        {"sigmoid", -30, 30, [](TT x) { return ops::sigmoid(x); }, sigmoid_ref},
        {"relu", -5, 5, [](TT x) { return ops::relu(x); }, [](double v) { return v > 0 ? v : 0.0; }},
        {"gelu", -8, 8, [](TT x) { return ops::gelu(x); }, gelu_erf_ref},
        {"gelu_tanh", -8, 8, [](TT x) { return ops::gelu(x, GeluApprox::Tanh); }, gelu_tanh_ref},
        {"softplus", -30, 30, [](TT x) { return ops::softplus(x); }, [](double v) { return softplus_ref(v); }},
        {"softplus_beta2", -20, 20, [](TT x) { return ops::softplus(x, T(2), T(10)); },
         [](double v) { return softplus_ref(v, 2, 10); }},
        {"square", -10, 10, [](TT x) { return ops::square(x); }, [](double v) { return v * v; }},
        {"pow_scalar(2.5)", 0, 10, [](TT x) { return ops::pow_scalar(x, T(2.5)); }, [](double v) { return std::pow(v, 2.5); }},
        {"pow_scalar(-1.3)", 0.1, 10, [](TT x) { return ops::pow_scalar(x, T(-1.3)); },
         [](double v) { return std::pow(v, double(T(-1.3))); }},
        {"pow_scalar(3)", -5, 5, [](TT x) { return ops::pow_scalar(x, T(3)); }, [](double v) { return v * v * v; }},
        {"pow_scalar(2)", -5, 5, [](TT x) { return ops::pow_scalar(x, T(2)); }, [](double v) { return v * v; }},
        {"pow_scalar(1)", -5, 5, [](TT x) { return ops::pow_scalar(x, T(1)); }, [](double v) { return v; }},
        {"pow_scalar(0)", -5, 5, [](TT x) { return ops::pow_scalar(x, T(0)); }, [](double) { return 1.0; }},
        {"pow_scalar(0.5)", 0, 10, [](TT x) { return ops::pow_scalar(x, T(0.5)); }, [](double v) { return std::sqrt(v); }},
        {"pow_scalar(-0.5)", 0.1, 10, [](TT x) { return ops::pow_scalar(x, T(-0.5)); },
         [](double v) { return 1 / std::sqrt(v); }},
        {"pow_scalar(-1)", 0.1, 10, [](TT x) { return ops::pow_scalar(x, T(-1)); }, [](double v) { return 1 / v; }},
        {"pow_scalar(-2)", 0.1, 10, [](TT x) { return ops::pow_scalar(x, T(-2)); }, [](double v) { return 1 / (v * v); }},
    };
}

}  // namespace

// ============================================================================
// Unary forward
// ============================================================================

TEST_CASE_TEMPLATE("unary ops match std:: math computed in a naive loop", T, float, double) {
    std::uint64_t seed = 1;
    for (const auto& c : unary_cases<T>()) {
        const std::string op_name = c.name;
        CAPTURE(op_name);
        const Tensor<T> x = uniform<T>({7, 37}, c.lo, c.hi, seed++);  // rows of 37: packet body + scalar tail
        const Tensor<T> y = c.op(x);
        CHECK(y.shape() == x.shape());
        CHECK_CLOSE(y, map_values(values(x), c.ref), Tol<T>::rtol, Tol<T>::atol);
    }
}

TEST_CASE_TEMPLATE("unary ops on transposed and strided views match the naive loop", T, float, double) {
    std::uint64_t seed = 100;
    for (const auto& c : unary_cases<T>()) {
        const std::string op_name = c.name;
        CAPTURE(op_name);
        const Tensor<T> base = uniform<T>({6, 40}, c.lo, c.hi, seed++);
        const Tensor<T> tr = base.t();                 // [40, 6], column-major
        const Tensor<T> st = base.slice(1, 1, 40, 3);  // [6, 13], inner stride 3
        REQUIRE(!tr.is_contiguous());
        REQUIRE(!st.is_contiguous());
        for (const Tensor<T>& x : {tr, st}) {
            const Tensor<T> y = c.op(x);
            CHECK(y.shape() == x.shape());
            CHECK(y.is_contiguous());
            CHECK_CLOSE(y, map_values(values(x), c.ref), Tol<T>::rtol, Tol<T>::atol);
        }
    }
}

TEST_CASE("unary ops on 300k-element tensors (threaded path) match the naive loop") {
    std::uint64_t seed = 200;
    for (const auto& c : unary_cases<float>()) {
        const std::string op_name = c.name;
        CAPTURE(op_name);
        const Tensor<float> x = uniform<float>({300, 1000}, c.lo, c.hi, seed++);
        CHECK_CLOSE(c.op(x), map_values(values(x), c.ref), Tol<float>::rtol, Tol<float>::atol);
        // A transposed large input takes the strided row path, split over rows.
        const Tensor<float> xt = x.t();
        CHECK_CLOSE(c.op(xt), map_values(values(xt), c.ref), Tol<float>::rtol, Tol<float>::atol);
    }
    for (const auto& c : unary_cases<double>()) {
        const std::string op_name = c.name;
        CAPTURE(op_name);
        const Tensor<double> x = uniform<double>({200001}, c.lo, c.hi, seed++);
        CHECK_CLOSE(c.op(x), map_values(values(x), c.ref), Tol<double>::rtol, Tol<double>::atol);
    }
}

TEST_CASE_TEMPLATE("unary ops on a broadcast (stride-0) view match the naive loop", T, float, double) {
    const Tensor<T> x = Tensor<T>{T(0.25), T(1.5), T(3)}.unsqueeze(1).expand({3, 50});
    for (const auto& c : unary_cases<T>()) {
        const std::string op_name = c.name;
        CAPTURE(op_name);
        if (c.lo > 0.25) continue;
        CHECK_CLOSE(c.op(x), map_values(values(x), c.ref), Tol<T>::rtol, Tol<T>::atol);
    }
}

TEST_CASE("gelu erf form matches x * Phi(x) and the tanh form matches the closed formula") {
    const Tensor<double> x = Tensor<double>::linspace(-6, 6, 241);
    CHECK_CLOSE(ops::gelu(x), map_values(values(x), gelu_erf_ref), 1e-14, 1e-15);
    CHECK_CLOSE(ops::gelu(x, GeluApprox::None), map_values(values(x), gelu_erf_ref), 1e-14, 1e-15);
    CHECK_CLOSE(ops::gelu(x, "none"), map_values(values(x), gelu_erf_ref), 1e-14, 1e-15);
    CHECK_CLOSE(ops::gelu(x, GeluApprox::Tanh), map_values(values(x), gelu_tanh_ref), 1e-14, 1e-15);
    CHECK_CLOSE(ops::gelu(x, "tanh"), map_values(values(x), gelu_tanh_ref), 1e-14, 1e-15);
    // Known values: gelu(1) = Phi(1) = 0.8413447460685429, gelu(0) = 0.
    const Tensor<double> k = Tensor<double>{0, 1, -1};
    CHECK_CLOSE(ops::gelu(k), (std::vector<double>{0, 0.8413447460685429, -0.15865525393145707}), 1e-15, 0);
    // The two forms differ by less than 1e-3 (PyTorch documents the tanh form as an approximation).
    const auto e = values(ops::gelu(x)), t = values(ops::gelu(x, GeluApprox::Tanh));
    for (std::size_t i = 0; i < e.size(); ++i) CHECK(std::fabs(e[i] - t[i]) < 1e-3);
    const Tensor<float> xf = Tensor<float>::linspace(-6, 6, 241);
    CHECK_CLOSE(ops::gelu(xf), map_values(values(xf), gelu_erf_ref), 4e-6, 1e-6);
    CHECK_CLOSE(ops::gelu(xf, GeluApprox::Tanh), map_values(values(xf), gelu_tanh_ref), 4e-6, 1e-6);
}

TEST_CASE_TEMPLATE("softplus returns x exactly above the threshold and log1p(exp(beta x)) / beta below", T, float,
                   double) {
    const Tensor<T> x = Tensor<T>{T(-50), T(-1), T(0), T(1), T(19.5), T(20.5), T(40), T(1000)};
    const Tensor<T> y = ops::softplus(x);
    const auto xv = x.to_vector(), yv = y.to_vector();
    CHECK(yv[5] == xv[5]);
    CHECK(yv[6] == xv[6]);
    CHECK(yv[7] == xv[7]);  // no overflow through exp(1000)
    CHECK(yv[2] == doctest::Approx(std::log(2.0)));
    CHECK(yv[0] == doctest::Approx(std::exp(-50.0)).epsilon(1e-5));  // log1p keeps tiny values accurate
    CHECK_CLOSE(y, map_values(values(x), [](double v) { return softplus_ref(v); }), Tol<T>::rtol, Tol<T>::atol);
    // beta = 2, threshold = 5: x where 2x > 5.
    const Tensor<T> y2 = ops::softplus(x, T(2), T(5));
    CHECK_CLOSE(y2, map_values(values(x), [](double v) { return softplus_ref(v, 2, 5); }), Tol<T>::rtol, Tol<T>::atol);
    CHECK(y2.to_vector()[4] == xv[4]);  // 2 * 19.5 > 5
}

TEST_CASE_TEMPLATE("special values: zeros, infinities and NaN follow IEEE / PyTorch", T, float, double) {
    const T inf = std::numeric_limits<T>::infinity(), nan = std::numeric_limits<T>::quiet_NaN();
    const std::vector<T> specials{T(0), -inf, inf, nan};
    // 4 elements (scalar path) and the same values tiled to 40 (Eigen's packet path).
    for (int reps : {1, 10}) {
        CAPTURE(reps);
        std::vector<T> xs;
        for (int r = 0; r < reps; ++r) xs.insert(xs.end(), specials.begin(), specials.end());
        const Tensor<T> x = Tensor<T>::from_vector(xs);
        auto tiled = [reps](std::vector<double> v) {
            std::vector<double> out;
            for (int r = 0; r < reps; ++r) out.insert(out.end(), v.begin(), v.end());
            return out;
        };
        CHECK_CLOSE(ops::exp(x), tiled({1, 0, kInf, kNaN}), 0, 0);
        CHECK_CLOSE(ops::log(x), tiled({-kInf, kNaN, kInf, kNaN}), 0, 0);
        CHECK_CLOSE(ops::sqrt(x), tiled({0, kNaN, kInf, kNaN}), 0, 0);
        CHECK_CLOSE(ops::rsqrt(x), tiled({kInf, kNaN, 0, kNaN}), 0, 0);
        CHECK_CLOSE(ops::abs(x), tiled({0, kInf, kInf, kNaN}), 0, 0);
        CHECK_CLOSE(ops::tanh(x), tiled({0, -1, 1, kNaN}), 0, 0);
        CHECK_CLOSE(ops::sigmoid(x), tiled({0.5, 0, 1, kNaN}), 0, 0);
        CHECK_CLOSE(ops::relu(x), tiled({0, 0, kInf, kNaN}), 0, 0);
        CHECK_CLOSE(ops::square(x), tiled({0, kInf, kInf, kNaN}), 0, 0);
        CHECK_CLOSE(ops::softplus(x), tiled({std::log(2.0), 0, kInf, kNaN}), 1e-7, 0);
        CHECK_CLOSE(ops::pow_scalar(x, T(0)), tiled({1, 1, 1, 1}), 0, 0);  // like torch.pow(x, 0)
        CHECK_CLOSE(ops::pow_scalar(x, T(2.5)), tiled({0, kInf, kInf, kNaN}), 0, 0);
        // Gradients at the specials: tanh' and sigmoid' vanish at +-inf; relu passes NaN's gradient like
        // PyTorch's threshold_backward; softplus' is 0 at -inf and 1 at +inf.
        const Tensor<T> g = Tensor<T>::ones(x.shape());
        CHECK_CLOSE(ops::tanh_backward(g, ops::tanh(x)), tiled({1, 0, 0, kNaN}), 0, 0);
        CHECK_CLOSE(ops::sigmoid_backward(g, ops::sigmoid(x)), tiled({0.25, 0, 0, kNaN}), 0, 0);
        CHECK_CLOSE(ops::relu_backward(g, ops::relu(x)), tiled({0, 0, 1, 1}), 0, 0);
        CHECK_CLOSE(ops::softplus_backward(g, x), tiled({0.5, 0, 1, kNaN}), 0, 0);
        CHECK_CLOSE(ops::exp_backward(g, ops::exp(x)), tiled({1, 0, kInf, kNaN}), 0, 0);
    }
    CHECK_CLOSE(ops::log(Tensor<T>{T(-1)}), (std::vector<double>{kNaN}), 0, 0);
    // relu(-0.0) is a zero; sigmoid of large |x| saturates without NaN.
    CHECK(ops::relu(Tensor<T>{T(-0.0)}).item() == T(0));
    CHECK_CLOSE(ops::sigmoid(Tensor<T>{T(-200), T(200)}), (std::vector<double>{0, 1}), 0, 1e-30);
}

TEST_CASE_TEMPLATE("sqrt is correctly rounded and rsqrt is 1 / sqrt, on the vectorised path too", T, float, double) {
    // Bitwise equal to std::sqrt, denormals included (Eigen's fast packet sqrt is neither).
    std::vector<T> xs;
    for (int i = 0; i < 1000; ++i) xs.push_back(T(0.001) + T(i) * T(0.37));
    xs.push_back(std::numeric_limits<T>::denorm_min());
    xs.push_back(std::numeric_limits<T>::min() / T(3));
    xs.push_back(std::numeric_limits<T>::max());
    const Tensor<T> x = Tensor<T>::from_vector(xs);
    const auto s = ops::sqrt(x).to_vector(), r = ops::rsqrt(x).to_vector(), p = ops::pow_scalar(x, T(0.5)).to_vector();
    std::int64_t bad_sqrt = 0, bad_rsqrt = 0, bad_pow = 0;
    for (std::size_t i = 0; i < xs.size(); ++i) {
        bad_sqrt += s[i] != std::sqrt(xs[i]);
        bad_rsqrt += r[i] != T(1) / std::sqrt(xs[i]);
        bad_pow += p[i] != std::sqrt(xs[i]);
    }
    CHECK(bad_sqrt == 0);
    CHECK(bad_rsqrt == 0);
    CHECK(bad_pow == 0);
}

TEST_CASE("exp underflows to exactly 0 on the vectorised double path") {
    // Eigen 3.4's packet exp for double returns 5.6e-309 for every x < -709.784.
    const Tensor<double> x = Tensor<double>::full({24}, -1000.0);
    for (double v : ops::exp(x).to_vector()) CHECK(v == 0);
    const Tensor<double> y = Tensor<double>::full({24}, -700.0);
    for (double v : ops::exp(y).to_vector()) CHECK(v == doctest::Approx(std::exp(-700.0)).epsilon(1e-12));
    const Tensor<double> g = Tensor<double>::ones({24});
    for (double v : ops::softplus_backward(g, x).to_vector()) CHECK(v == 0);
}

TEST_CASE("unary ops keep shape for 0-d, empty and 3-D tensors") {
    const Tensor<double> s = Tensor<double>::full({}, 2.0);
    CHECK(ops::exp(s).shape() == Shape{});
    CHECK(ops::exp(s).item() == doctest::Approx(std::exp(2.0)));
    const Tensor<double> e = Tensor<double>::empty({3, 0});
    CHECK(ops::gelu(e).shape() == Shape{3, 0});
    CHECK(ops::softplus_backward(e, e).shape() == Shape{3, 0});
    const Tensor<double> x = uniform<double>({2, 3, 4}, -2, 2, 9);
    CHECK(ops::tanh(x).shape() == Shape{2, 3, 4});
}

// ============================================================================
// Unary backward kernels (packet paths, float and double) against closed forms
// ============================================================================

TEST_CASE_TEMPLATE("unary backward kernels match their closed-form derivatives", T, float, double) {
    using TT = const Tensor<T>&;
    struct Case {
        const char* name;
        double lo, hi;
        std::function<Tensor<T>(TT, TT)> backward;  // (g, x)
        std::function<double(double)> deriv;
        // float: saved outputs near +-1 (tanh, sigmoid) and Eigen's float tanh, which is exactly +-1 beyond
        // |u| = 7.9, leave an absolute error of a few 1e-7 per unit of g; gelu_tanh multiplies it by ~8.
        double float_atol = 2e-6;
    };
    const std::vector<Case> cases{
        {"exp", -10, 10, [](TT g, TT x) { return ops::exp_backward(g, ops::exp(x)); }, [](double v) { return std::exp(v); }},
        {"log", 0.01, 10, [](TT g, TT x) { return ops::log_backward(g, x); }, [](double v) { return 1 / v; }},
        {"sqrt", 0.01, 10, [](TT g, TT x) { return ops::sqrt_backward(g, ops::sqrt(x)); },
         [](double v) { return 0.5 / std::sqrt(v); }},
        {"rsqrt", 0.1, 10, [](TT g, TT x) { return ops::rsqrt_backward(g, ops::rsqrt(x)); },
         [](double v) { return -0.5 * std::pow(v, -1.5); }},
        {"abs", -5, 5, [](TT g, TT x) { return ops::abs_backward(g, x); }, [](double v) { return v > 0 ? 1.0 : -1.0; }},
        {"tanh", -5, 5, [](TT g, TT x) { return ops::tanh_backward(g, ops::tanh(x)); },
         [](double v) { return 1 - std::tanh(v) * std::tanh(v); }},
        {"sigmoid", -10, 10, [](TT g, TT x) { return ops::sigmoid_backward(g, ops::sigmoid(x)); },
         [](double v) { return sigmoid_ref(v) * (1 - sigmoid_ref(v)); }},
        {"relu", -5, 5, [](TT g, TT x) { return ops::relu_backward(g, ops::relu(x)); },
         [](double v) { return v > 0 ? 1.0 : 0.0; }},
        {"square", -5, 5, [](TT g, TT x) { return ops::square_backward(g, x); }, [](double v) { return 2 * v; }},
        {"gelu", -6, 6, [](TT g, TT x) { return ops::gelu_backward(g, x); },
         [](double v) { return 0.5 * (1 + std::erf(v / std::sqrt(2.0))) + v * std::exp(-0.5 * v * v) / std::sqrt(2 * kPi); }},
        {"gelu_tanh", -6, 6, [](TT g, TT x) { return ops::gelu_backward(g, x, GeluApprox::Tanh); },
         [](double v) {
             const double k = std::sqrt(2 / kPi), t = std::tanh(k * (v + 0.044715 * v * v * v));
             return 0.5 * (1 + t) + 0.5 * v * (1 - t * t) * k * (1 + 3 * 0.044715 * v * v);
         },
         2e-5},
        {"softplus", -30, 30, [](TT g, TT x) { return ops::softplus_backward(g, x); },
         [](double v) { return v > 20 ? 1.0 : sigmoid_ref(v); }},
        {"softplus_beta3", -10, 10, [](TT g, TT x) { return ops::softplus_backward(g, x, T(3), T(6)); },
         [](double v) { return 3 * v > 6 ? 1.0 : sigmoid_ref(3 * v); }},
        {"pow_scalar(2.5)", 0.1, 5, [](TT g, TT x) { return ops::pow_scalar_backward(g, x, T(2.5)); },
         [](double v) { return 2.5 * std::pow(v, 1.5); }},
        {"pow_scalar(2)", -5, 5, [](TT g, TT x) { return ops::pow_scalar_backward(g, x, T(2)); }, [](double v) { return 2 * v; }},
        {"pow_scalar(1)", -5, 5, [](TT g, TT x) { return ops::pow_scalar_backward(g, x, T(1)); }, [](double) { return 1.0; }},
        {"pow_scalar(0)", -5, 5, [](TT g, TT x) { return ops::pow_scalar_backward(g, x, T(0)); }, [](double) { return 0.0; }},
        {"pow_scalar(-1)", 0.5, 5, [](TT g, TT x) { return ops::pow_scalar_backward(g, x, T(-1)); },
         [](double v) { return -1 / (v * v); }},
    };
    std::uint64_t seed = 300;
    for (const auto& c : cases) {
        const std::string op_name = c.name;
        CAPTURE(op_name);
        for (std::int64_t n : {std::int64_t(45), std::int64_t(150000)}) {  // small, and threaded
            CAPTURE(n);
            const Tensor<T> x = uniform<T>({n}, c.lo, c.hi, seed++);
            const Tensor<T> g = uniform<T>({n}, -2, 2, seed++);
            const auto xv = values(x), gv = values(g);
            std::vector<double> want;
            for (std::size_t i = 0; i < xv.size(); ++i) want.push_back(gv[i] * c.deriv(xv[i]));
            // float: the derivative of values computed in float (e.g. saved outputs) is looser.
            const double rtol = std::is_same_v<T, float> ? 2e-5 : 1e-11, atol = std::is_same_v<T, float> ? c.float_atol : 1e-13;
            CHECK_CLOSE(c.backward(g, x), want, rtol, atol);
        }
    }
}

TEST_CASE("relu and abs backward give 0 at 0, like PyTorch") {
    auto x = leaf(Tensor<double>{-1, 0, 2, -0.0});
    sum(relu(x)).backward();
    CHECK(x.grad().to_vector() == std::vector<double>{0, 0, 1, 0});
    auto y = leaf(Tensor<double>{-1, 0, 2, -0.0});
    sum(abs(y)).backward();
    CHECK(y.grad().to_vector() == std::vector<double>{-1, 0, 1, 0});
    // The vectorised float kernels agree (17 elements: one packet and a tail).
    Tensor<float> xf = Tensor<float>::zeros({17});
    xf.data()[3] = 1;
    xf.data()[16] = -1;
    const Tensor<float> gf = Tensor<float>::full({17}, 5);
    const auto r = ops::relu_backward(gf, ops::relu(xf)).to_vector();
    const auto a = ops::abs_backward(gf, xf).to_vector();
    for (int i = 0; i < 17; ++i) {
        CHECK(r[std::size_t(i)] == (i == 3 ? 5.f : 0.f));
        CHECK(a[std::size_t(i)] == (i == 3 ? 5.f : i == 16 ? -5.f : 0.f));
    }
}

TEST_CASE("backward kernels reject a gradient of the wrong shape") {
    const Tensor<double> x = Tensor<double>::ones({2, 3}), g = Tensor<double>::ones({3});
    const std::string m = error_of([&] { ops::gelu_backward(g, x); });
    CHECK(has(m, "gelu_backward"));
    CHECK(has(m, "[3]"));
    CHECK(has(m, "[2, 3]"));
}

// ============================================================================
// Unary gradients
// ============================================================================

TEST_CASE("every unary op passes grad_check on inputs away from its kinks") {
    const Tensor<double> any = uniform<double>({3, 5}, -3, 3, 400);
    const Tensor<double> pos = uniform<double>({3, 5}, 0.5, 3, 401);
    const Tensor<double> kinked = away_from_zero({3, 5}, 0.1, 3, 402);  // |x| > 0.1 for relu / abs
    struct Case {
        const char* name;
        std::function<Var<double>(const Var<double>&)> f;
        Tensor<double> x;
    };
    const std::vector<Case> cases{
        {"exp", [](const Var<double>& v) { return exp(v); }, any},
        {"log", [](const Var<double>& v) { return log(v); }, pos},
        {"sqrt", [](const Var<double>& v) { return sqrt(v); }, pos},
        {"rsqrt", [](const Var<double>& v) { return rsqrt(v); }, pos},
        {"abs", [](const Var<double>& v) { return abs(v); }, kinked},
        {"tanh", [](const Var<double>& v) { return tanh(v); }, any},
        {"sigmoid", [](const Var<double>& v) { return sigmoid(v); }, any},
        {"relu", [](const Var<double>& v) { return relu(v); }, kinked},
        {"gelu", [](const Var<double>& v) { return gelu(v); }, any},
        {"gelu_tanh", [](const Var<double>& v) { return gelu(v, GeluApprox::Tanh); }, any},
        {"gelu_tanh_string", [](const Var<double>& v) { return gelu(v, "tanh"); }, any},
        {"softplus", [](const Var<double>& v) { return softplus(v); }, any},
        {"softplus_beta", [](const Var<double>& v) { return softplus(v, 2.0, 4.0); }, kinked},  // 2x > 4 for some x
        {"softplus_above_threshold", [](const Var<double>& v) { return softplus(v); },
         uniform<double>({2, 3}, 21, 30, 403)},
        {"square", [](const Var<double>& v) { return square(v); }, any},
        {"pow_scalar(2.5)", [](const Var<double>& v) { return pow_scalar(v, 2.5); }, pos},
        {"pow_scalar(-1.5)", [](const Var<double>& v) { return pow_scalar(v, -1.5); }, pos},
        {"pow_scalar(3)", [](const Var<double>& v) { return pow_scalar(v, 3.0); }, any},
        {"pow_scalar(2)", [](const Var<double>& v) { return pow_scalar(v, 2.0); }, any},
        {"pow_scalar(0.5)", [](const Var<double>& v) { return pow_scalar(v, 0.5); }, pos},
        {"pow_scalar(-0.5)", [](const Var<double>& v) { return pow_scalar(v, -0.5); }, pos},
        {"pow_scalar(-2)", [](const Var<double>& v) { return pow_scalar(v, -2.0); }, pos},
        {"pow_scalar(1)", [](const Var<double>& v) { return pow_scalar(v, 1.0); }, any},
        {"pow_scalar(0)", [](const Var<double>& v) { return pow_scalar(v, 0.0); }, any},
    };
    for (const auto& c : cases) {
        const std::string op_name = c.name;
        CAPTURE(op_name);
        const auto f = c.f;
        check_grads([f](const std::vector<Var<double>>& v) { return f(v[0]); }, {Var<double>(c.x.clone())});
        // A transposed (non-contiguous) leaf.
        check_grads([f](const std::vector<Var<double>>& v) { return f(v[0]); }, {Var<double>(c.x.clone().t())});
    }
}

TEST_CASE("unary Vars compute the kernel's value and record the op name") {
    auto x = leaf(Tensor<double>{0.5, 1, 2});
    CHECK(exp(x).value().to_vector() == ops::exp(x.value()).to_vector());
    CHECK(gelu(x).op_name() == "gelu");
    CHECK(softplus(x).op_name() == "softplus");
    CHECK(pow_scalar(x, 2.0).op_name() == "pow_scalar");
    // A chain: d/dx sum(sigmoid(log(x))^2).
    auto y = sum(square(sigmoid(log(x))));
    y.backward();
    const auto xv = x.value().to_vector(), gv = x.grad().to_vector();
    for (std::size_t i = 0; i < 3; ++i) {
        const double s = sigmoid_ref(std::log(xv[i]));
        CHECK(gv[i] == doctest::Approx(2 * s * s * (1 - s) / xv[i]));
    }
    // No graph when the input does not require grad.
    auto c = Var<double>(Tensor<double>{1, 2});
    CHECK(!exp(c).requires_grad());
    CHECK(exp(c).is_leaf());
}

// ============================================================================
// pow, maximum, minimum
// ============================================================================

namespace {
struct BShapes {
    Shape a, b, out;
};
const std::vector<BShapes> kBroadcastShapes{
    {{2, 3}, {2, 3}, {2, 3}}, {{2, 3}, {3}, {2, 3}},    {{3}, {2, 3}, {2, 3}},        {{2, 1}, {1, 3}, {2, 3}},
    {{2, 3}, {1}, {2, 3}},    {{1}, {2, 3}, {2, 3}},    {{4, 1, 5}, {3, 1}, {4, 3, 5}}, {{}, {2, 2}, {2, 2}},
};
}  // namespace

TEST_CASE_TEMPLATE("pow, maximum and minimum broadcast like NumPy and match std:: math", T, float, double) {
    std::uint64_t seed = 500;
    for (const auto& s : kBroadcastShapes) {
        CAPTURE(s.a);
        CAPTURE(s.b);
        const Tensor<T> a = uniform<T>(s.a, 0.1, 4, seed++), b = uniform<T>(s.b, -3, 3, seed++);
        const Tensor<T> p = ops::pow(a, b);
        CHECK(p.shape() == s.out);
        CHECK_CLOSE(p, naive_binary(a, b, s.out, [](double x, double y) { return std::pow(x, y); }), Tol<T>::rtol * 4,
                    Tol<T>::atol);
        const Tensor<T> c = uniform<T>(s.a, -3, 3, seed++);
        CHECK_CLOSE(ops::maximum(c, b), naive_binary(c, b, s.out, [](double x, double y) { return std::max(x, y); }), 0, 0);
        CHECK_CLOSE(ops::minimum(c, b), naive_binary(c, b, s.out, [](double x, double y) { return std::min(x, y); }), 0, 0);
    }
}

TEST_CASE_TEMPLATE("pow handles negative bases with integer exponents and zero like std::pow", T, float, double) {
    const Tensor<T> a = Tensor<T>{T(-2), T(-2), T(-2), T(0), T(0), T(0), T(4), T(-8), T(1)};
    const Tensor<T> b = Tensor<T>{T(3), T(-2), T(0.5), T(0), T(2), T(-1), T(0.5), T(1.0 / 3), T(1e30)};
    std::vector<double> want;
    for (std::size_t i = 0; i < 9; ++i) want.push_back(std::pow(double(a.to_vector()[i]), double(b.to_vector()[i])));
    CHECK_CLOSE(ops::pow(a, b), want, Tol<T>::rtol, Tol<T>::atol);
}

TEST_CASE_TEMPLATE("pow, maximum and minimum on non-contiguous and large inputs match the naive loop", T, float, double) {
    const Tensor<T> a = uniform<T>({40, 30}, 0.5, 2, 600).t();             // [30, 40] transposed
    const Tensor<T> b = uniform<T>({30, 80}, -2, 2, 601).slice(1, 0, 80, 2);  // [30, 40] strided
    REQUIRE(!a.is_contiguous());
    REQUIRE(!b.is_contiguous());
    const Shape out{30, 40};
    CHECK_CLOSE(ops::pow(a, b), naive_binary(a, b, out, [](double x, double y) { return std::pow(x, y); }),
                Tol<T>::rtol * 4, Tol<T>::atol);
    CHECK_CLOSE(ops::maximum(a, b), naive_binary(a, b, out, [](double x, double y) { return std::max(x, y); }), 0, 0);
    CHECK_CLOSE(ops::minimum(b, a), naive_binary(b, a, out, [](double x, double y) { return std::min(x, y); }), 0, 0);
    // Large: [600, 500] with a broadcast row, threaded.
    const Tensor<T> big = uniform<T>({600, 500}, 0.5, 2, 602), row = uniform<T>({500}, -2, 2, 603);
    const Shape bout{600, 500};
    CHECK_CLOSE(ops::pow(big, row), naive_binary(big, row, bout, [](double x, double y) { return std::pow(x, y); }),
                Tol<T>::rtol * 4, Tol<T>::atol);
    CHECK_CLOSE(ops::maximum(row, big), naive_binary(row, big, bout, [](double x, double y) { return std::max(x, y); }),
                0, 0);
    CHECK_CLOSE(ops::minimum(big, row), naive_binary(big, row, bout, [](double x, double y) { return std::min(x, y); }),
                0, 0);
}

TEST_CASE_TEMPLATE("maximum and minimum propagate NaN from either side", T, float, double) {
    const T nan = std::numeric_limits<T>::quiet_NaN();
    const Tensor<T> a = Tensor<T>{nan, T(1), nan, T(2)}, b = Tensor<T>{T(1), nan, nan, T(3)};
    CHECK_CLOSE(ops::maximum(a, b), (std::vector<double>{kNaN, kNaN, kNaN, 3}), 0, 0);
    CHECK_CLOSE(ops::minimum(a, b), (std::vector<double>{kNaN, kNaN, kNaN, 2}), 0, 0);
    // Long enough for the packet path.
    Tensor<T> x = uniform<T>({37}, -1, 1, 700), y = uniform<T>({37}, -1, 1, 701);
    x.data()[5] = nan;
    y.data()[20] = nan;
    const auto mx = ops::maximum(x, y).to_vector(), mn = ops::minimum(x, y).to_vector();
    for (std::size_t i = 0; i < 37; ++i) {
        CHECK(std::isnan(mx[i]) == (i == 5 || i == 20));
        CHECK(std::isnan(mn[i]) == (i == 5 || i == 20));
    }
}

TEST_CASE("pow, maximum and minimum pass grad_check with broadcasting both ways and non-contiguous inputs") {
    std::uint64_t seed = 800;
    for (const auto& s : kBroadcastShapes) {
        CAPTURE(s.a);
        CAPTURE(s.b);
        // pow: positive bases (log a in the exponent gradient).
        check_grads([](const std::vector<Var<double>>& v) { return pow(v[0], v[1]); },
                    {Var<double>(uniform<double>(s.a, 0.5, 2, seed)), Var<double>(uniform<double>(s.b, -2, 2, seed + 1))});
        // maximum / minimum: inputs from disjoint sets, so no ties.
        const Tensor<double> a = uniform<double>(s.a, -3, 3, seed + 2);
        Tensor<double> b = uniform<double>(s.b, -3, 3, seed + 3);
        b = ops::add_scalar(b, 0.0123456789);  // no value of b equals one of a
        check_grads([](const std::vector<Var<double>>& v) { return maximum(v[0], v[1]); },
                    {Var<double>(a.clone()), Var<double>(b.clone())});
        check_grads([](const std::vector<Var<double>>& v) { return minimum(v[0], v[1]); },
                    {Var<double>(a.clone()), Var<double>(b.clone())});
        seed += 4;
    }
    // Non-contiguous leaves.
    check_grads([](const std::vector<Var<double>>& v) { return pow(v[0], v[1]) + maximum(v[0], v[1]) - minimum(v[1], v[0]); },
                {Var<double>(uniform<double>({4, 3}, 0.5, 2, 850).t()),
                 Var<double>(uniform<double>({3, 8}, -2, 2, 851).slice(1, 0, 8, 2))});
}

TEST_CASE("maximum and minimum split the gradient evenly on ties, like PyTorch") {
    auto a = leaf(Tensor<double>{1, 2, 3, 4}), b = leaf(Tensor<double>{1, 5, 3, 0});
    sum(maximum(a, b)).backward();
    CHECK(a.grad().to_vector() == std::vector<double>{0.5, 0, 0.5, 1});
    CHECK(b.grad().to_vector() == std::vector<double>{0.5, 1, 0.5, 0});
    auto c = leaf(Tensor<double>{1, 2, 3, 4}), d = leaf(Tensor<double>{1, 5, 3, 0});
    sum(minimum(c, d)).backward();
    CHECK(c.grad().to_vector() == std::vector<double>{0.5, 1, 0.5, 0});
    CHECK(d.grad().to_vector() == std::vector<double>{0.5, 0, 0.5, 1});
    // Broadcast tie: b = [2] against a = [1, 2, 3] -> b's gradient sums 0 + 0.5 + 0 for min... and max.
    auto e = leaf(Tensor<double>{1, 2, 3}), f = leaf(Tensor<double>{2});
    sum(maximum(e, f)).backward();
    CHECK(e.grad().to_vector() == std::vector<double>{0, 0.5, 1});
    CHECK(f.grad().to_vector() == std::vector<double>{1.5});
    // The vectorised float kernel (ties in a 20-element row).
    const Tensor<float> x = Tensor<float>::arange(0, 20), y = Tensor<float>::full({20}, 7), g = Tensor<float>::ones({20});
    const auto wa = ops::maximum_backward(g, x, y, 0).to_vector(), wb = ops::maximum_backward(g, x, y, 1).to_vector();
    const auto va = ops::minimum_backward(g, x, y, 0).to_vector(), vb = ops::minimum_backward(g, x, y, 1).to_vector();
    for (int i = 0; i < 20; ++i) {
        const float hi = i > 7 ? 1.f : i == 7 ? 0.5f : 0.f, lo = i < 7 ? 1.f : i == 7 ? 0.5f : 0.f;
        CHECK(wa[std::size_t(i)] == hi);
        CHECK(wb[std::size_t(i)] == 1 - hi);
        CHECK(va[std::size_t(i)] == lo);
        CHECK(vb[std::size_t(i)] == 1 - lo);
    }
}

TEST_CASE("pow gradients follow PyTorch at zero: no base gradient for exponent 0, no exponent gradient for base 0") {
    auto a = leaf(Tensor<double>{0, 0, 2, 0, 3}), b = leaf(Tensor<double>{0, 2, 0, -1, 2});
    sum(pow(a, b)).backward();
    const auto ga = a.grad().to_vector(), gb = b.grad().to_vector();
    CHECK(ga[0] == 0);  // b == 0
    CHECK(ga[1] == 0);  // 2 * 0^1
    CHECK(ga[2] == 0);  // b == 0
    CHECK(ga[4] == doctest::Approx(6));
    CHECK(gb[0] == 0);  // a == 0, b >= 0
    CHECK(gb[1] == 0);
    CHECK(gb[2] == doctest::Approx(std::log(2.0)));
    CHECK(gb[3] == -kInf);  // a == 0, b < 0: 0^-1 * log(0) = inf * -inf, as in PyTorch
    CHECK(gb[4] == doctest::Approx(9 * std::log(3.0)));
    // pow_scalar with p = 0: zero gradient even at x = 0.
    auto x = leaf(Tensor<double>{0, 1});
    sum(pow_scalar(x, 0.0)).backward();
    CHECK(x.grad().to_vector() == std::vector<double>{0, 0});
}

// ============================================================================
// Comparisons and where
// ============================================================================

TEST_CASE_TEMPLATE("comparisons broadcast and agree with the C++ operators", T, float, double, std::int64_t,
                   std::int32_t) {
    const Tensor<T> a = Tensor<T>::from_vector({1, 2, 3, 4, 5, 6}, {2, 3});
    const Tensor<T> b = Tensor<T>::from_vector({2, 2, 7}, {3});
    const Tensor<T> c = Tensor<T>::from_vector({3, 4}, {2, 1});
    using BFn = std::function<Tensor<bool>(const Tensor<T>&, const Tensor<T>&)>;
    using SFn = std::function<Tensor<bool>(const Tensor<T>&, T)>;
    struct Case {
        const char* name;
        BFn op;
        SFn sop;
        std::function<bool(double, double)> ref;
    };
    const std::vector<Case> cases{
        {"eq", [](auto& x, auto& y) { return ops::eq(x, y); }, [](auto& x, T s) { return ops::eq(x, s); },
         [](double x, double y) { return x == y; }},
        {"ne", [](auto& x, auto& y) { return ops::ne(x, y); }, [](auto& x, T s) { return ops::ne(x, s); },
         [](double x, double y) { return x != y; }},
        {"lt", [](auto& x, auto& y) { return ops::lt(x, y); }, [](auto& x, T s) { return ops::lt(x, s); },
         [](double x, double y) { return x < y; }},
        {"le", [](auto& x, auto& y) { return ops::le(x, y); }, [](auto& x, T s) { return ops::le(x, s); },
         [](double x, double y) { return x <= y; }},
        {"gt", [](auto& x, auto& y) { return ops::gt(x, y); }, [](auto& x, T s) { return ops::gt(x, s); },
         [](double x, double y) { return x > y; }},
        {"ge", [](auto& x, auto& y) { return ops::ge(x, y); }, [](auto& x, T s) { return ops::ge(x, s); },
         [](double x, double y) { return x >= y; }},
    };
    for (const auto& k : cases) {
        const std::string op_name = k.name;
        CAPTURE(op_name);
        for (const auto& [x, y] : std::vector<std::pair<Tensor<T>, Tensor<T>>>{{a, b}, {b, a}, {a, c}, {c, b}, {a.t(), c.t()}}) {
            const Shape out = broadcast_shapes(x.shape(), y.shape(), "test");
            const Tensor<bool> r = k.op(x, y);
            CHECK(r.shape() == out);
            std::vector<bool> want;
            for (const auto& m : all_indices(out))
                want.push_back(k.ref(double(x.at(source_index(m, x.shape()))), double(y.at(source_index(m, y.shape())))));
            const auto got = r.to_vector();
            CHECK(std::vector<bool>(got.begin(), got.end()) == want);
        }
        const Tensor<bool> s = k.sop(a, T(3));
        std::vector<bool> want;
        for (double v : values(a)) want.push_back(k.ref(v, 3));
        const auto got = s.to_vector();
        CHECK(std::vector<bool>(got.begin(), got.end()) == want);
    }
}

TEST_CASE("comparisons with NaN are false except ne, on large threaded inputs too") {
    const double nan = kNaN;
    const Tensor<double> a = Tensor<double>{nan, 1, nan}, b = Tensor<double>{1, nan, nan};
    for (const auto& r : {ops::eq(a, b), ops::lt(a, b), ops::le(a, b), ops::gt(a, b), ops::ge(a, b), ops::eq(a, nan)})
        CHECK(r.to_vector() == std::vector<bool>{false, false, false});
    CHECK(ops::ne(a, b).to_vector() == std::vector<bool>{true, true, true});
    // 200k floats against a broadcast row.
    const Tensor<float> x = uniform<float>({400, 500}, -1, 1, 900), row = uniform<float>({500}, -1, 1, 901);
    const Tensor<bool> r = ops::lt(x, row);
    const auto xv = x.to_vector(), rv = row.to_vector();
    const auto got = r.to_vector();
    std::int64_t bad = 0;
    for (std::size_t i = 0; i < xv.size(); ++i) bad += got[i] != (xv[i] < rv[i % 500]);
    CHECK(bad == 0);
}

TEST_CASE("comparisons on Vars compare values and carry no gradient") {
    auto a = leaf(Tensor<double>{1, 2, 3}), b = leaf(Tensor<double>{3, 2, 1});
    CHECK(gt(a, b).to_vector() == std::vector<bool>{false, false, true});
    CHECK(eq(a, b).to_vector() == std::vector<bool>{false, true, false});
    CHECK(le(a, 2.0).to_vector() == std::vector<bool>{true, true, false});
    CHECK(ne(a, 2.0).to_vector() == std::vector<bool>{true, false, true});
    CHECK(lt(a, b).to_vector() == std::vector<bool>{true, false, false});
    CHECK(ge(a, b).to_vector() == std::vector<bool>{false, true, true});
}

TEST_CASE_TEMPLATE("where picks a where cond and b elsewhere, broadcasting all three", T, float, double, std::int64_t) {
    const Tensor<bool> cond = Tensor<bool>::from_vector({true, false}, {2, 1});
    const Tensor<T> a = Tensor<T>::from_vector({1, 2, 3}, {3});
    const Tensor<T> b = Tensor<T>::from_vector({-1}, {1});
    const Tensor<T> r = ops::where(cond, a, b);
    CHECK(r.shape() == Shape{2, 3});
    CHECK(r.to_vector() == std::vector<T>{1, 2, 3, -1, -1, -1});
    // cond broadcast against a full-shape a and a column b.
    const Tensor<bool> row = Tensor<bool>::from_vector({true, false, true}, {3});
    const Tensor<T> full = Tensor<T>::from_vector({1, 2, 3, 4, 5, 6}, {2, 3});
    const Tensor<T> col = Tensor<T>::from_vector({10, 20}, {2, 1});
    CHECK(ops::where(row, full, col).to_vector() == std::vector<T>{1, 10, 3, 4, 20, 6});
    // Scalar forms.
    CHECK(ops::where(row, full, T(0)).to_vector() == std::vector<T>{1, 0, 3, 4, 0, 6});
    CHECK(ops::where(row, T(9), full).to_vector() == std::vector<T>{9, 2, 9, 9, 5, 9});
    // Non-contiguous operands: a transposed condition and a strided a.
    const Tensor<bool> ct = Tensor<bool>::from_vector({true, false, false, true, true, false}, {3, 2}).t();  // [2, 3]
    const Tensor<T> sa = Tensor<T>::from_vector({1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6, 0}, {2, 6}).slice(1, 0, 6, 2);
    REQUIRE(!ct.is_contiguous());
    REQUIRE(!sa.is_contiguous());
    // ct = [[1 0 1] [0 1 0]]
    CHECK(ops::where(ct, sa, col).to_vector() == std::vector<T>{1, 10, 3, 20, 5, 20});
}

TEST_CASE("where on 250k elements (threaded) matches the naive loop") {
    const Tensor<float> x = uniform<float>({500, 500}, -1, 1, 950), y = uniform<float>({500, 1}, -1, 1, 951);
    const Tensor<bool> c = ops::gt(x, 0.f);
    const auto r = ops::where(c, x, y).to_vector(), xv = x.to_vector(), yv = y.to_vector();
    std::int64_t bad = 0;
    for (std::size_t i = 0; i < xv.size(); ++i) bad += r[i] != (xv[i] > 0 ? xv[i] : yv[i / 500]);
    CHECK(bad == 0);
    // Transposed x: the strided path.
    const Tensor<float> xt = x.t();
    const auto rt = ops::where(ops::gt(xt, 0.f), xt, 0.f).to_vector(), xtv = xt.to_vector();
    bad = 0;
    for (std::size_t i = 0; i < xtv.size(); ++i) bad += rt[i] != (xtv[i] > 0 ? xtv[i] : 0.f);
    CHECK(bad == 0);
}

TEST_CASE("where routes the gradient to a where cond and to b elsewhere, summed over broadcasting") {
    const Tensor<bool> cond = Tensor<bool>::from_vector({true, false, true, false, false, true}, {2, 3});
    auto a = leaf(Tensor<double>{1, 2, 3}), b = leaf(Tensor<double>::from_vector({10, 20}, {2, 1}));
    auto y = where(cond, a, b);
    CHECK(y.value().to_vector() == std::vector<double>{1, 10, 3, 20, 20, 3});
    y.backward(Tensor<double>::from_vector({1, 2, 3, 4, 5, 6}, {2, 3}));
    CHECK(a.grad().to_vector() == std::vector<double>{1, 0, 3 + 6});
    CHECK(b.grad().to_vector() == std::vector<double>{2, 4 + 5});
    // Scalar forms differentiate the tensor side only.
    auto c = leaf(Tensor<double>{1, 2, 3});
    sum(where(cond, c, 0.0)).backward();
    CHECK(c.grad().to_vector() == std::vector<double>{1, 0, 2});
    auto d = leaf(Tensor<double>{1, 2, 3});
    sum(where(cond, 0.0, d)).backward();
    CHECK(d.grad().to_vector() == std::vector<double>{1, 2, 0});
    // A NaN in the branch not taken does not leak into the gradient.
    auto e = leaf(Tensor<double>{kNaN, 1}), f = leaf(Tensor<double>{2, kNaN});
    const Tensor<bool> pick = Tensor<bool>::from_vector({false, true}, {2});
    sum(where(pick, e, f)).backward();
    CHECK(e.grad().to_vector() == std::vector<double>{0, 1});
    CHECK(f.grad().to_vector() == std::vector<double>{1, 0});
}

TEST_CASE("where passes grad_check with broadcasting of all three operands and non-contiguous inputs") {
    const Tensor<bool> cond = ops::gt(uniform<double>({2, 3, 4}, -1, 1, 960), 0.0);
    check_grads([&](const std::vector<Var<double>>& v) { return where(cond, v[0], v[1]); },
                {Var<double>(uniform<double>({3, 1}, -1, 1, 961)), Var<double>(uniform<double>({2, 1, 4}, -1, 1, 962))});
    const Tensor<bool> row = Tensor<bool>::from_vector({true, false, true, true}, {4});
    check_grads([&](const std::vector<Var<double>>& v) { return where(row, v[0], v[1]); },
                {Var<double>(uniform<double>({4, 3}, -1, 1, 963).t()), Var<double>(uniform<double>({1}, -1, 1, 964))});
    check_grads([&](const std::vector<Var<double>>& v) { return where(row, v[0], 2.0) * where(row, -1.0, v[0]); },
                {Var<double>(uniform<double>({2, 4}, -1, 1, 965))});
}

// ============================================================================
// Arithmetic (autograd/arith.hpp)
// ============================================================================

TEST_CASE_TEMPLATE("add, sub, mul, div broadcast and match the naive loop", T, float, double) {
    std::uint64_t seed = 1000;
    for (const auto& s : kBroadcastShapes) {
        CAPTURE(s.a);
        CAPTURE(s.b);
        const Tensor<T> a = uniform<T>(s.a, -3, 3, seed++), b = uniform<T>(s.b, 0.5, 3, seed++);
        CHECK_CLOSE(ops::add(a, b), naive_binary(a, b, s.out, [](double x, double y) { return T(x) + T(y); }), 0, 0);
        CHECK_CLOSE(ops::sub(a, b), naive_binary(a, b, s.out, [](double x, double y) { return T(x) - T(y); }), 0, 0);
        CHECK_CLOSE(ops::mul(a, b), naive_binary(a, b, s.out, [](double x, double y) { return T(x) * T(y); }), 0, 0);
        CHECK_CLOSE(ops::div(a, b), naive_binary(a, b, s.out, [](double x, double y) { return T(x) / T(y); }), 0, 0);
    }
    const Tensor<T> a = uniform<T>({30, 20}, -3, 3, 1100).t(), b = uniform<T>({20, 60}, 0.5, 3, 1101).slice(1, 0, 60, 2);
    CHECK_CLOSE(ops::div(a, b), naive_binary(a, b, Shape{20, 30}, [](double x, double y) { return T(x) / T(y); }), 0, 0);
}

TEST_CASE("add, sub, mul, div pass grad_check with broadcasting in both directions") {
    std::uint64_t seed = 1200;
    const std::vector<std::pair<const char*, VarFn>> fns{
        {"add", [](const std::vector<Var<double>>& v) { return v[0] + v[1]; }},
        {"sub", [](const std::vector<Var<double>>& v) { return v[0] - v[1]; }},
        {"mul", [](const std::vector<Var<double>>& v) { return v[0] * v[1]; }},
        {"div", [](const std::vector<Var<double>>& v) { return v[0] / v[1]; }},
    };
    for (const auto& [name, f] : fns) {
        const std::string op_name = name;
        CAPTURE(op_name);
        for (const auto& s : kBroadcastShapes) {
            CAPTURE(s.a);
            CAPTURE(s.b);
            check_grads(f, {Var<double>(uniform<double>(s.a, -2, 2, seed)), Var<double>(away_from_zero(s.b, 0.5, 2, seed + 1))});
            seed += 2;
        }
        // Non-contiguous: transposed a, strided b broadcast over rows.
        check_grads(f, {Var<double>(uniform<double>({4, 3}, -2, 2, seed).t()),
                        Var<double>(away_from_zero({1, 8}, 0.5, 2, seed + 1).slice(1, 0, 8, 2))});
        seed += 2;
    }
}

TEST_CASE("neg and the scalar operators pass grad_check") {
    const std::vector<std::pair<const char*, VarFn>> fns{
        {"neg", [](const std::vector<Var<double>>& v) { return -v[0]; }},
        {"x + s", [](const std::vector<Var<double>>& v) { return v[0] + 2.5; }},
        {"s + x", [](const std::vector<Var<double>>& v) { return 2.5 + v[0]; }},
        {"x - s", [](const std::vector<Var<double>>& v) { return v[0] - 2.5; }},
        {"s - x", [](const std::vector<Var<double>>& v) { return 2.5 - v[0]; }},
        {"x * s", [](const std::vector<Var<double>>& v) { return v[0] * -1.5; }},
        {"s * x", [](const std::vector<Var<double>>& v) { return -1.5 * v[0]; }},
        {"x / s", [](const std::vector<Var<double>>& v) { return v[0] / 4.0; }},
        {"mixed", [](const std::vector<Var<double>>& v) { return (2.0 - v[0] * 3.0) / 2.0 + -v[0]; }},
    };
    for (const auto& [name, f] : fns) {
        const std::string op_name = name;
        CAPTURE(op_name);
        check_grads(f, {Var<double>(uniform<double>({3, 4}, -2, 2, 1300))});
        check_grads(f, {Var<double>(uniform<double>({4, 3}, -2, 2, 1301).t())});
    }
    // Values.
    auto x = leaf(Tensor<double>{1, 2});
    CHECK((2.5 - x).value().to_vector() == std::vector<double>{1.5, 0.5});
    CHECK((x / 4.0).value().to_vector() == std::vector<double>{0.25, 0.5});
}

TEST_CASE("elementwise ops compose into a graph that passes grad_check") {
    check_grads(
        [](const std::vector<Var<double>>& v) {
            auto h = gelu(v[0] * v[1] + 0.5) - softplus(v[1]) * tanh(v[0]);
            auto m = maximum(h, sigmoid(v[1]));
            return sum(where(ops::gt(v[0].value(), 0.0), m, exp(v[1]) / sqrt(square(v[0]) + 1.0)), {1});
        },
        {Var<double>(uniform<double>({3, 4}, -2, 2, 1400)), Var<double>(uniform<double>({4}, -2, 2, 1401))});
}

// ============================================================================
// Errors
// ============================================================================

TEST_CASE("broadcasting mismatches name the op and both shapes") {
    const Tensor<double> a = Tensor<double>::ones({2, 3}), b = Tensor<double>::ones({4});
    using F = std::function<void()>;
    const std::vector<std::pair<const char*, F>> cases{
        {"add", [&] { ops::add(a, b); }},         {"sub", [&] { ops::sub(a, b); }},
        {"mul", [&] { ops::mul(a, b); }},         {"div", [&] { ops::div(a, b); }},
        {"pow", [&] { ops::pow(a, b); }},         {"maximum", [&] { ops::maximum(a, b); }},
        {"minimum", [&] { ops::minimum(a, b); }}, {"eq", [&] { ops::eq(a, b); }},
        {"ne", [&] { ops::ne(a, b); }},           {"lt", [&] { ops::lt(a, b); }},
        {"le", [&] { ops::le(a, b); }},           {"gt", [&] { ops::gt(a, b); }},
        {"ge", [&] { ops::ge(a, b); }},
        {"add", [&] { add(leaf(a), leaf(b)); }}, {"pow", [&] { pow(leaf(a), leaf(b)); }},
        {"maximum", [&] { maximum(leaf(a), leaf(b)); }},
    };
    for (const auto& [name, f] : cases) {
        const std::string op_name = name;
        CAPTURE(op_name);
        const std::string m = error_of(f);
        CHECK(has(m, name));
        CHECK(has(m, "[2, 3]"));
        CHECK(has(m, "[4]"));
    }
    CHECK_THROWS_WITH_AS(ops::add(a, b), Contains("add"), polymath::Error);
}

TEST_CASE("where names all three shapes when they do not broadcast") {
    const Tensor<bool> c = Tensor<bool>::from_vector({true, false}, {2});
    const Tensor<double> a = Tensor<double>::ones({3}), b = Tensor<double>::ones({1});
    const std::string m = error_of([&] { ops::where(c, a, b); });
    CHECK(has(m, "where"));
    CHECK(has(m, "[2]"));
    CHECK(has(m, "[3]"));
    CHECK(has(m, "[1]"));
    CHECK_THROWS_WITH_AS(where(c, leaf(a), leaf(b)), Contains("where"), polymath::Error);
    CHECK_THROWS_WITH_AS(ops::where(c, a, 0.0), Contains("where"), polymath::Error);
    CHECK_THROWS_WITH_AS(ops::where(Tensor<bool>(), a, b), Contains("where"), polymath::Error);
}

TEST_CASE("bad arguments of unary ops name the op") {
    CHECK_THROWS_WITH_AS(ops::gelu(Tensor<double>{1}, "fast"), Contains("gelu"), polymath::Error);
    CHECK_THROWS_WITH_AS(gelu(leaf(Tensor<double>{1}), "erf"), Contains("approximate"), polymath::Error);
    CHECK_THROWS_WITH_AS(ops::softplus(Tensor<double>{1}, 0.0), Contains("softplus"), polymath::Error);
    CHECK_THROWS_WITH_AS(ops::exp(Tensor<double>()), Contains("exp"), polymath::Error);
    CHECK_THROWS_WITH_AS(ops::pow_scalar(Tensor<float>(), 2.f), Contains("pow_scalar"), polymath::Error);
}
