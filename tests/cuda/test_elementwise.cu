// CUDA elementwise ops and reductions (ops/cuda/elementwise.cuh, reduce.cuh)
// against the CPU ops (through elementwise_ref.cpp) on random inputs.
//
// Tolerances: rtol / atol in the ratio |gpu - cpu| / (atol + rtol |cpu|) <= 1.
//   float   elementwise 1e-5 / 1e-6 (device libm vs Eigen differ by a few ulp)
//   double  elementwise 1e-12 / 1e-14
//   float   reductions  1e-5 / 1e-4 against the CPU op run in double (the
//           float CPU sum of 1e5 terms is itself ~1e-3 off)
//   double  reductions  1e-10 / 1e-10
//   bfloat16 1e-2 / 1e-4, half 2e-3 / 1e-4: the result is rounded once to the
//   16-bit type from float math, compared with the CPU float op on the same
//   (16-bit-representable) inputs.
//   max / min / argmax / comparisons / where / abs / relu / neg: exact.
#include <polymath/cuda.hpp>
#include <polymath/ops/cuda/elementwise.cuh>
#include <polymath/ops/cuda/reduce.cuh>

#include <cmath>
#include <concepts>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include "cuda_test_util.hpp"
#include "elementwise_ref.hpp"

using namespace polymath;
using polymath::half;  // not CUDA's ::half

namespace {

// ---- mixing a host and a device tensor does not compile -----------------------------------
template <class A, class B>
concept CanAdd = requires(const A& a, const B& b) { polymath::ops::add(a, b); };
template <class A, class B>
concept CanLt = requires(const A& a, const B& b) { polymath::ops::lt(a, b); };
template <class A, class B>
concept CanMaximum = requires(const A& a, const B& b) { polymath::ops::maximum(a, b); };
static_assert(CanAdd<Tensor<float, Cuda>, Tensor<float, Cuda>>);
static_assert(!CanAdd<Tensor<float, Cpu>, Tensor<float, Cuda>>, "host + device must not compile");
static_assert(!CanAdd<Tensor<float, Cuda>, Tensor<float, Cpu>>, "device + host must not compile");
static_assert(!CanLt<Tensor<double, Cpu>, Tensor<double, Cuda>>);
static_assert(!CanMaximum<Tensor<float, Cuda>, Tensor<float, Cpu>>);

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

template <class T>
struct Tol;
template <>
struct Tol<float> {
    static constexpr double rtol = 1e-5, atol = 1e-6, red_rtol = 1e-5, red_atol = 1e-4;
};
template <>
struct Tol<double> {
    static constexpr double rtol = 1e-12, atol = 1e-14, red_rtol = 1e-10, red_atol = 1e-10;
};
template <>
struct Tol<bfloat16> {
    static constexpr double rtol = 1e-2, atol = 1e-4, red_rtol = 1e-2, red_atol = 1e-3;
};
template <>
struct Tol<polymath::half> {
    static constexpr double rtol = 2e-3, atol = 1e-4, red_rtol = 2e-3, red_atol = 1e-3;
};

template <class T>
Tensor<T, Cpu> randn(const Shape& s, std::uint64_t seed) {
    Generator gen(seed);
    return Tensor<T, Cpu>::randn(s, gen);
}
// |randn| + 0.1: the domain of log, sqrt, rsqrt, pow.
template <class T>
Tensor<T, Cpu> positive(const Shape& s, std::uint64_t seed) {
    Tensor<T, Cpu> x = randn<T>(s, seed);
    for (std::int64_t i = 0; i < x.numel(); ++i) x.data()[i] = std::abs(x.data()[i]) + T(0.1);
    return x;
}
// Values on a grid of 0.5 (many exact ties for comparisons, max / min, argmax).
template <class T>
Tensor<T, Cpu> coarse(const Shape& s, std::uint64_t seed) {
    Tensor<T, Cpu> x = randn<T>(s, seed);
    for (std::int64_t i = 0; i < x.numel(); ++i) x.data()[i] = std::round(x.data()[i] * T(2)) / T(2);
    return x;
}
template <class T>
Tensor<T, Cpu> from(const std::vector<double>& v) {
    Tensor<T, Cpu> x = Tensor<T, Cpu>::empty({std::int64_t(v.size())});
    for (std::size_t i = 0; i < v.size(); ++i) x.data()[i] = T(v[i]);
    return x;
}

bool needs_positive(const std::string& op) { return op == "log" || op == "sqrt" || op == "rsqrt"; }

const std::vector<std::string> kUnary = {"exp",  "log",  "sqrt",   "rsqrt", "abs",  "tanh",
                                         "sigmoid", "relu", "square", "neg",   "gelu", "gelu_tanh"};
// op, and whether its backward takes the output (y) rather than the input (x).
const std::vector<std::pair<std::string, bool>> kUnaryBwd = {
    {"exp", true},      {"log", false},  {"sqrt", true},   {"rsqrt", true}, {"abs", false},  {"tanh", true},
    {"sigmoid", true},  {"relu", true},  {"square", false}, {"gelu", false}, {"gelu_tanh", false}};
const std::vector<std::string> kBinary = {"add", "sub", "mul", "div", "pow", "maximum", "minimum"};
const std::vector<std::string> kCompare = {"eq", "ne", "lt", "le", "gt", "ge"};

template <class T>
Tensor<T, Cuda> gpu_unary(const std::string& op, const Tensor<T, Cuda>& x) {
    if (op == "exp") return ops::exp(x);
    if (op == "log") return ops::log(x);
    if (op == "sqrt") return ops::sqrt(x);
    if (op == "rsqrt") return ops::rsqrt(x);
    if (op == "abs") return ops::abs(x);
    if (op == "tanh") return ops::tanh(x);
    if (op == "sigmoid") return ops::sigmoid(x);
    if (op == "relu") return ops::relu(x);
    if (op == "square") return ops::square(x);
    if (op == "neg") return ops::neg(x);
    if (op == "gelu") return ops::gelu(x);
    if (op == "gelu_tanh") return ops::gelu(x, "tanh");
    FAIL("unknown op " << op);
    return x;
}
template <class T>
Tensor<T, Cuda> gpu_unary_backward(const std::string& op, const Tensor<T, Cuda>& g, const Tensor<T, Cuda>& xy) {
    if (op == "exp") return ops::exp_backward(g, xy);
    if (op == "log") return ops::log_backward(g, xy);
    if (op == "sqrt") return ops::sqrt_backward(g, xy);
    if (op == "rsqrt") return ops::rsqrt_backward(g, xy);
    if (op == "abs") return ops::abs_backward(g, xy);
    if (op == "tanh") return ops::tanh_backward(g, xy);
    if (op == "sigmoid") return ops::sigmoid_backward(g, xy);
    if (op == "relu") return ops::relu_backward(g, xy);
    if (op == "square") return ops::square_backward(g, xy);
    if (op == "gelu") return ops::gelu_backward(g, xy);
    if (op == "gelu_tanh") return ops::gelu_backward(g, xy, "tanh");
    FAIL("unknown op " << op);
    return g;
}
template <class T>
Tensor<T, Cuda> gpu_binary(const std::string& op, const Tensor<T, Cuda>& a, const Tensor<T, Cuda>& b) {
    if (op == "add") return ops::add(a, b);
    if (op == "sub") return ops::sub(a, b);
    if (op == "mul") return ops::mul(a, b);
    if (op == "div") return ops::div(a, b);
    if (op == "pow") return ops::pow(a, b);
    if (op == "maximum") return ops::maximum(a, b);
    if (op == "minimum") return ops::minimum(a, b);
    FAIL("unknown op " << op);
    return a;
}
template <class T>
Tensor<bool, Cuda> gpu_compare(const std::string& op, const Tensor<T, Cuda>& a, const Tensor<T, Cuda>& b) {
    if (op == "eq") return ops::eq(a, b);
    if (op == "ne") return ops::ne(a, b);
    if (op == "lt") return ops::lt(a, b);
    if (op == "le") return ops::le(a, b);
    if (op == "gt") return ops::gt(a, b);
    return ops::ge(a, b);
}
template <class T>
Tensor<bool, Cuda> gpu_compare_scalar(const std::string& op, const Tensor<T, Cuda>& a, T s) {
    if (op == "eq") return ops::eq(a, s);
    if (op == "ne") return ops::ne(a, s);
    if (op == "lt") return ops::lt(a, s);
    if (op == "le") return ops::le(a, s);
    if (op == "gt") return ops::gt(a, s);
    return ops::ge(a, s);
}
// CPU reduction computed in double, returned in T (the float CPU sum of 1e5
// terms is itself off by ~1e-3; the reference must be better than the GPU).
template <class T>
Tensor<T, Cpu> ref_reduce(const std::string& op, const Tensor<T, Cpu>& x, const std::vector<std::int64_t>& axes,
                          bool keepdim) {
    if constexpr (std::is_same_v<T, double>) return ref::reduce<double>(op, x, axes, keepdim);
    else return ref::reduce<double>(op, x.template to<double>(), axes, keepdim).template to<T>();
}
std::int64_t count_over(const Shape& s, const std::vector<std::int64_t>& axes) {
    std::int64_t n = 1;
    if (axes.empty())
        for (int d = 0; d < s.size(); ++d) n *= s[d];
    for (auto a : axes) n *= s[int(a < 0 ? a + s.size() : a)];
    return n;
}

template <class T>
Tensor<T, Cuda> gpu_reduce(const std::string& op, const Tensor<T, Cuda>& x, const std::vector<std::int64_t>& axes,
                           bool keepdim) {
    if (op == "sum") return ops::sum(x, axes, keepdim);
    if (op == "mean") return ops::mean(x, axes, keepdim);
    if (op == "amax") return ops::amax(x, axes, keepdim);
    if (op == "amin") return ops::amin(x, axes, keepdim);
    return ops::var(x, axes, 1, keepdim);
}

// A host tensor and a view of the same layout on the device: contiguous,
// transposed, or every other column.
enum class Layout { Contiguous, Transposed, Strided };
template <class T>
Tensor<T, Cpu> host_view(const Tensor<T, Cpu>& base, Layout l) {
    if (l == Layout::Transposed) return base.transpose(0, 1);
    if (l == Layout::Strided) return base.slice(1, 0, base.shape()[1], 2);
    return base;
}
template <class T>
Tensor<T, Cuda> device_view(const Tensor<T, Cpu>& base, Layout l) {
    const Tensor<T, Cuda> d = base.template to<Cuda>();
    if (l == Layout::Transposed) return d.transpose(0, 1);
    if (l == Layout::Strided) return d.slice(1, 0, base.shape()[1], 2);
    return d;
}

}  // namespace

// ======================================== unary ==========================================

TEST_CASE("a host tensor with a device tensor in a binary op is rejected at compile time (static_asserts above)") {
    CHECK(!CanAdd<Tensor<float, Cpu>, Tensor<float, Cuda>>);
    CHECK(!CanAdd<Tensor<float, Cuda>, Tensor<float, Cpu>>);
}

TEST_CASE_TEMPLATE("unary ops match the CPU on odd, 1-element, empty, large, transposed and strided inputs", T, float,
                   double) {
    POLYMATH_REQUIRE_GPU();
    const std::vector<Shape> shapes = {{7, 33}, {1}, {0, 3}, {100003}, {5, 4, 3}, {}};
    for (const std::string& op : kUnary) {
        for (std::size_t si = 0; si < shapes.size(); ++si) {
            const Tensor<T, Cpu> x = needs_positive(op) ? positive<T>(shapes[si], 10 + si) : randn<T>(shapes[si], 10 + si);
            INFO(op, " shape ", shapes[si]);
            POLYMATH_CHECK_CLOSE(gpu_unary(op, x.template to<Cuda>()).template to<Cpu>(), ref::unary(op, x),
                                 Tol<T>::rtol, Tol<T>::atol);
        }
        for (Layout l : {Layout::Transposed, Layout::Strided}) {
            const Tensor<T, Cpu> base = needs_positive(op) ? positive<T>({9, 37}, 3) : randn<T>({9, 37}, 3);
            const Tensor<T, Cuda> y = gpu_unary(op, device_view(base, l));
            INFO(op, " layout ", int(l));
            CHECK(y.is_contiguous());
            POLYMATH_CHECK_CLOSE(y.template to<Cpu>(), ref::unary(op, host_view(base, l)), Tol<T>::rtol, Tol<T>::atol);
        }
        // A broadcast (stride-0) view.
        const Tensor<T, Cpu> row = needs_positive(op) ? positive<T>({1, 13}, 4) : randn<T>({1, 13}, 4);
        INFO(op, " expanded");
        POLYMATH_CHECK_CLOSE(gpu_unary(op, row.template to<Cuda>().expand({6, 13})).template to<Cpu>(),
                             ref::unary(op, row.expand({6, 13})), Tol<T>::rtol, Tol<T>::atol);
    }
}

TEST_CASE_TEMPLATE("unary ops on zeros, infinities and NaN give what the CPU gives", T, float, double) {
    POLYMATH_REQUIRE_GPU();
    const Tensor<T, Cpu> x = from<T>({0.0, -0.0, 1.0, -1.0, kInf, -kInf, kNaN, 1e-30, -1e-30, 50.0, -50.0, 2.5});
    // gelu: finite specials only (its CPU form at +-inf depends on how Eigen clamps erf / tanh).
    const Tensor<T, Cpu> xf = from<T>({0.0, -0.0, 1.0, -1.0, kNaN, 1e-30, -1e-30, 5.0, -5.0, 2.5});
    for (const std::string& op : kUnary) {
        INFO(op);
        const Tensor<T, Cpu>& in = op.rfind("gelu", 0) == 0 ? xf : x;
        POLYMATH_CHECK_CLOSE(gpu_unary(op, in.template to<Cuda>()).template to<Cpu>(), ref::unary(op, in), Tol<T>::rtol,
                             Tol<T>::atol);
    }
    // relu keeps NaN, relu'(0) = abs'(0) = 0.
    const auto r = ops::relu(x.template to<Cuda>()).template to<Cpu>();
    CHECK(std::isnan(double(r.data()[6])));
    const Tensor<T, Cpu> g = Tensor<T, Cpu>::ones({3});
    const Tensor<T, Cpu> z = from<T>({0.0, 2.0, -2.0});
    CHECK(ops::relu_backward(g.template to<Cuda>(), z.template to<Cuda>()).to_vector() == std::vector<T>{0, 1, 0});
    CHECK(ops::abs_backward(g.template to<Cuda>(), z.template to<Cuda>()).to_vector() == std::vector<T>{0, 1, -1});
}

TEST_CASE_TEMPLATE("unary backward kernels match the CPU, on contiguous and transposed inputs", T, float, double) {
    POLYMATH_REQUIRE_GPU();
    for (const auto& [op, takes_y] : kUnaryBwd) {
        for (Layout l : {Layout::Contiguous, Layout::Transposed}) {
            const Tensor<T, Cpu> xb = needs_positive(op) ? positive<T>({11, 45}, 20) : randn<T>({11, 45}, 20);
            const Tensor<T, Cpu> gb = randn<T>({11, 45}, 21);
            const Tensor<T, Cpu> x = host_view(xb, l), g = host_view(gb, l);
            // The saved tensor: the forward output where the op saves it (computed on the CPU for both sides).
            const Tensor<T, Cpu> xy = takes_y ? ref::unary(op, x) : x;
            INFO(op, " layout ", int(l));
            const Tensor<T, Cuda> xy_d = takes_y ? xy.template to<Cuda>() : device_view(xb, l);
            POLYMATH_CHECK_CLOSE(gpu_unary_backward(op, device_view(gb, l), xy_d).template to<Cpu>(),
                                 ref::unary_backward(op, g, xy), Tol<T>::rtol, Tol<T>::atol);
        }
    }
}

TEST_CASE_TEMPLATE("softplus, pow_scalar and affine with their parameters match the CPU", T, float, double) {
    POLYMATH_REQUIRE_GPU();
    const Tensor<T, Cpu> x = randn<T>({13, 29}, 30), g = randn<T>({13, 29}, 31);
    const Tensor<T, Cpu> xp = positive<T>({13, 29}, 32);
    const auto xd = x.template to<Cuda>(), gd = g.template to<Cuda>(), xpd = xp.template to<Cuda>();
    for (auto [beta, thr] : std::vector<std::pair<T, T>>{{1, 20}, {2, 1}, {-1.5, 0.5}}) {
        INFO("softplus beta ", beta, " threshold ", thr);
        POLYMATH_CHECK_CLOSE(ops::softplus(xd, beta, thr).template to<Cpu>(), ref::unary_p<T>("softplus", x, beta, thr),
                             Tol<T>::rtol, Tol<T>::atol);
        POLYMATH_CHECK_CLOSE(ops::softplus_backward(gd, xd, beta, thr).template to<Cpu>(),
                             ref::unary_backward<T>("softplus", g, x, beta, thr), Tol<T>::rtol, Tol<T>::atol);
    }
    for (T p : {T(0), T(1), T(2), T(3), T(0.5), T(-0.5), T(-1), T(-2), T(1.7), T(-2.3)}) {
        INFO("pow_scalar p ", p);
        POLYMATH_CHECK_CLOSE(ops::pow_scalar(xpd, p).template to<Cpu>(), ref::unary_p<T>("pow_scalar", xp, p, T(0)),
                             Tol<T>::rtol, Tol<T>::atol);
        POLYMATH_CHECK_CLOSE(ops::pow_scalar_backward(gd, xpd, p).template to<Cpu>(),
                             ref::unary_backward<T>("pow_scalar", g, xp, p, T(0)), Tol<T>::rtol, Tol<T>::atol);
    }
    // Integer powers of negative bases, and x^0 = 1 for NaN too.
    const Tensor<T, Cpu> s = from<T>({-2.0, -0.5, 0.0, kNaN, 3.0});
    for (T p : {T(0), T(2), T(3), T(-1)})
        POLYMATH_CHECK_CLOSE(ops::pow_scalar(s.template to<Cuda>(), p).template to<Cpu>(),
                             ref::unary_p<T>("pow_scalar", s, p, T(0)), Tol<T>::rtol, Tol<T>::atol);
    POLYMATH_CHECK_CLOSE(ops::affine(xd, T(1.5), T(-0.25)).template to<Cpu>(), ref::unary_p<T>("affine", x, T(1.5), T(-0.25)),
                         Tol<T>::rtol, Tol<T>::atol);
    POLYMATH_CHECK_CLOSE(ops::add_scalar(xd, T(2)).template to<Cpu>(), ref::unary_p<T>("affine", x, T(1), T(2)), 0.0, 0.0);
    POLYMATH_CHECK_CLOSE(ops::mul_scalar(xd, T(3)).template to<Cpu>(), ref::unary_p<T>("affine", x, T(3), T(0)), 0.0, 0.0);
}

TEST_CASE("bad arguments of device unary ops name the op") {
    POLYMATH_REQUIRE_GPU();
    const Tensor<float, Cuda> x = Tensor<float, Cuda>::zeros({2, 3});
    CHECK_THROWS_WITH_AS(ops::softplus(x, 0.f), doctest::Contains("softplus"), Error);
    CHECK_THROWS_WITH_AS(ops::gelu(x, "fast"), doctest::Contains("approximate"), Error);
    CHECK_THROWS_WITH_AS(ops::exp_backward(Tensor<float, Cuda>::zeros({3, 2}), x), doctest::Contains("exp_backward"),
                         Error);
}

// ======================================== binary ==========================================

TEST_CASE_TEMPLATE("add, sub, mul, div, pow, maximum, minimum broadcast like the CPU", T, float, double) {
    POLYMATH_REQUIRE_GPU();
    const std::vector<std::pair<Shape, Shape>> pairs = {{{4, 1, 5}, {3, 1}}, {{7, 33}, {7, 33}}, {{7, 33}, {33}},
                                                        {{7, 1}, {1, 33}},   {{1}, {5, 1}},      {{}, {3, 4}},
                                                        {{100003}, {100003}}, {{2, 0, 3}, {3}},  {{37, 1000}, {37, 1}}};
    for (const std::string& op : kBinary) {
        for (std::size_t k = 0; k < pairs.size(); ++k) {
            const auto& [sa, sb] = pairs[k];
            const bool pos = op == "pow";
            const Tensor<T, Cpu> a = pos ? positive<T>(sa, 40 + k) : coarse<T>(sa, 40 + k);
            const Tensor<T, Cpu> b = pos ? randn<T>(sb, 60 + k) : (op == "div" ? positive<T>(sb, 60 + k) : coarse<T>(sb, 60 + k));
            INFO(op, " ", sa, " with ", sb);
            POLYMATH_CHECK_CLOSE(gpu_binary(op, a.template to<Cuda>(), b.template to<Cuda>()).template to<Cpu>(),
                                 ref::binary(op, a, b), Tol<T>::rtol, Tol<T>::atol);
            POLYMATH_CHECK_CLOSE(gpu_binary(op, b.template to<Cuda>(), a.template to<Cuda>()).template to<Cpu>(),
                                 ref::binary(op, b, a), Tol<T>::rtol, Tol<T>::atol);
        }
        // Non-contiguous operands, one of them broadcast.
        for (Layout l : {Layout::Transposed, Layout::Strided}) {
            const Tensor<T, Cpu> ab = positive<T>({10, 41}, 70), bb = positive<T>({10, 41}, 71);
            const Tensor<T, Cpu> a = host_view(ab, l), b = host_view(bb, l);
            INFO(op, " layout ", int(l));
            POLYMATH_CHECK_CLOSE(gpu_binary(op, device_view(ab, l), device_view(bb, l)).template to<Cpu>(),
                                 ref::binary(op, a, b), Tol<T>::rtol, Tol<T>::atol);
            const Tensor<T, Cpu> col = positive<T>({a.shape()[0], 1}, 72);
            POLYMATH_CHECK_CLOSE(gpu_binary(op, device_view(ab, l), col.template to<Cuda>()).template to<Cpu>(),
                                 ref::binary(op, a, col), Tol<T>::rtol, Tol<T>::atol);
        }
    }
    // Operators.
    const Tensor<T, Cpu> a = randn<T>({6, 7}, 80), b = randn<T>({7}, 81);
    const auto ad = a.template to<Cuda>(), bd = b.template to<Cuda>();
    POLYMATH_CHECK_CLOSE((ad + bd).template to<Cpu>(), ref::binary<T>("add", a, b), 0.0, 0.0);
    POLYMATH_CHECK_CLOSE((ad * bd - ad / bd).template to<Cpu>(),
                         ref::binary<T>("sub", ref::binary<T>("mul", a, b), ref::binary<T>("div", a, b)), Tol<T>::rtol,
                         Tol<T>::atol);
    POLYMATH_CHECK_CLOSE((-ad).template to<Cpu>(), ref::unary<T>("neg", a), 0.0, 0.0);
    POLYMATH_CHECK_CLOSE((ad * T(2) + T(1)).template to<Cpu>(), ref::unary_p<T>("affine", a, T(2), T(1)), 0.0, 0.0);
}

TEST_CASE_TEMPLATE("pow of negative bases and zero, and maximum / minimum with NaN, follow the CPU", T, float, double) {
    POLYMATH_REQUIRE_GPU();
    const Tensor<T, Cpu> a = from<T>({-2.0, -2.0, 0.0, 0.0, 0.0, 2.0, kNaN, 1.0, -kInf, kInf});
    const Tensor<T, Cpu> b = from<T>({3.0, 0.5, 0.0, -1.0, 2.0, -kInf, 0.0, kNaN, 2.0, -1.0});
    for (const std::string& op : {std::string("pow"), std::string("maximum"), std::string("minimum")}) {
        INFO(op);
        POLYMATH_CHECK_CLOSE(gpu_binary(op, a.template to<Cuda>(), b.template to<Cuda>()).template to<Cpu>(),
                             ref::binary(op, a, b), Tol<T>::rtol, Tol<T>::atol);
        POLYMATH_CHECK_CLOSE(gpu_binary(op, b.template to<Cuda>(), a.template to<Cuda>()).template to<Cpu>(),
                             ref::binary(op, b, a), Tol<T>::rtol, Tol<T>::atol);
    }
    const auto mx = ops::maximum(a.template to<Cuda>(), b.template to<Cuda>()).to_vector();
    CHECK(std::isnan(double(mx[6])));
    CHECK(std::isnan(double(mx[7])));
}

TEST_CASE_TEMPLATE("backward of pow, maximum, minimum match the CPU and sum_to reduces them to the inputs' shapes", T,
                   float, double) {
    POLYMATH_REQUIRE_GPU();
    const std::vector<std::pair<Shape, Shape>> pairs = {{{4, 1, 5}, {3, 1}}, {{6, 9}, {6, 9}}, {{1}, {2, 7}}};
    for (std::size_t k = 0; k < pairs.size(); ++k) {
        const auto& [sa, sb] = pairs[k];
        const Shape so = broadcast_shapes(sa, sb, "test");
        const Tensor<T, Cpu> g = randn<T>(so, 90 + k);
        for (const std::string& op : {std::string("pow_backward_base"), std::string("pow_backward_exponent"),
                                      std::string("maximum_backward"), std::string("minimum_backward")}) {
            const bool pw = op.rfind("pow", 0) == 0;
            Tensor<T, Cpu> a = pw ? positive<T>(sa, 100 + k) : coarse<T>(sa, 100 + k);
            Tensor<T, Cpu> b = pw ? coarse<T>(sb, 110 + k) : coarse<T>(sb, 110 + k);  // ties and b == 0
            if (pw) a.data()[0] = T(0);                                                   // a == 0
            const auto gd = g.template to<Cuda>(), ad = a.template to<Cuda>(), bd = b.template to<Cuda>();
            for (int which : {0, 1}) {
                INFO(op, " ", sa, " with ", sb, " which ", which);
                Tensor<T, Cuda> d;
                if (op == "pow_backward_base") d = ops::pow_backward_base(gd, ad, bd);
                else if (op == "pow_backward_exponent") d = ops::pow_backward_exponent(gd, ad, bd);
                else if (op == "maximum_backward") d = ops::maximum_backward(gd, ad, bd, which);
                else d = ops::minimum_backward(gd, ad, bd, which);
                const Tensor<T, Cpu> r = ref::ternary_backward(op, g, a, b, which);
                POLYMATH_CHECK_CLOSE(d.template to<Cpu>(), r, Tol<T>::rtol, Tol<T>::atol);
                const Shape& to = which == 0 ? sa : sb;
                POLYMATH_CHECK_CLOSE(ops::sum_to(d, to).template to<Cpu>(), ref::sum_to(r, to), Tol<T>::red_rtol,
                                     Tol<T>::red_atol);
            }
        }
    }
    CHECK_THROWS_WITH_AS(ops::sum_to(Tensor<T, Cuda>::zeros({3, 4}), Shape{5}), doctest::Contains("sum_to"), Error);
}

TEST_CASE_TEMPLATE("comparisons (tensor and scalar) and where broadcast like the CPU; NaN compares false except ne", T,
                   float, double) {
    POLYMATH_REQUIRE_GPU();
    const std::vector<std::pair<Shape, Shape>> pairs = {{{4, 1, 5}, {3, 1}}, {{7, 33}, {7, 33}}, {{100003}, {1}}};
    for (std::size_t k = 0; k < pairs.size(); ++k) {
        const Tensor<T, Cpu> a = coarse<T>(pairs[k].first, 120 + k), b = coarse<T>(pairs[k].second, 130 + k);
        for (const std::string& op : kCompare) {
            INFO(op, " ", pairs[k].first, " with ", pairs[k].second);
            POLYMATH_CHECK_CLOSE(gpu_compare(op, a.template to<Cuda>(), b.template to<Cuda>()).template to<Cpu>(),
                                 ref::compare(op, a, b), 0.0, 0.0);
            POLYMATH_CHECK_CLOSE(gpu_compare_scalar(op, a.template to<Cuda>(), T(0.5)).template to<Cpu>(),
                                 ref::compare_scalar(op, a, T(0.5)), 0.0, 0.0);
        }
    }
    const Tensor<T, Cpu> n = from<T>({kNaN, 1.0, kNaN}), m = from<T>({kNaN, kNaN, 1.0});
    for (const std::string& op : kCompare) {
        INFO(op);
        const auto v = gpu_compare(op, n.template to<Cuda>(), m.template to<Cuda>()).to_vector();
        for (bool e : v) CHECK(e == (op == "ne"));
    }
    // where, all three operands broadcast, and a transposed operand.
    const Tensor<bool, Cpu> c = ref::compare_scalar<T>("gt", randn<T>({4, 1, 5}, 140), T(0));
    const Tensor<T, Cpu> a = randn<T>({3, 1}, 141), b = randn<T>({5}, 142);
    POLYMATH_CHECK_CLOSE(ops::where(c.template to<Cuda>(), a.template to<Cuda>(), b.template to<Cuda>()).template to<Cpu>(),
                         ref::where(c, a, b), 0.0, 0.0);
    const Tensor<T, Cpu> at = randn<T>({5, 4}, 143);
    const Tensor<bool, Cpu> c2 = ref::compare_scalar<T>("gt", randn<T>({4, 5}, 144), T(0));
    POLYMATH_CHECK_CLOSE(
        ops::where(c2.template to<Cuda>(), at.template to<Cuda>().transpose(0, 1), b.template to<Cuda>()).template to<Cpu>(),
        ref::where(c2, at.transpose(0, 1), b), 0.0, 0.0);
    POLYMATH_CHECK_CLOSE(ops::where(c2.template to<Cuda>(), b.template to<Cuda>(), T(7)).template to<Cpu>(),
                         ref::where(c2, b, Tensor<T, Cpu>::full({1}, T(7))), 0.0, 0.0);
    POLYMATH_CHECK_CLOSE(ops::where(c2.template to<Cuda>(), T(-7), b.template to<Cuda>()).template to<Cpu>(),
                         ref::where(c2, Tensor<T, Cpu>::full({1}, T(-7)), b), 0.0, 0.0);
}

TEST_CASE("broadcasting mismatches name the op and both shapes; where names all three") {
    POLYMATH_REQUIRE_GPU();
    const Tensor<float, Cuda> a = Tensor<float, Cuda>::zeros({3, 4}), b = Tensor<float, Cuda>::zeros({5});
    CHECK_THROWS_WITH_AS(ops::add(a, b), doctest::Contains("add"), Error);
    CHECK_THROWS_WITH_AS(ops::maximum(a, b), doctest::Contains("[5]"), Error);
    CHECK_THROWS_WITH_AS(ops::lt(a, b), doctest::Contains("lt"), Error);
    CHECK_THROWS_WITH_AS(ops::where(Tensor<bool, Cuda>::zeros({2}), a, b), doctest::Contains("other of shape"), Error);
    CHECK_THROWS_WITH_AS(ops::add_(b, a), doctest::Contains("add_"), Error);
}

TEST_CASE("add_ accumulates a broadcast source into a strided destination in place") {
    POLYMATH_REQUIRE_GPU();
    const Tensor<double, Cpu> base = randn<double>({6, 10}, 150), src = randn<double>({6, 1}, 151);
    Tensor<double, Cuda> d = base.to<Cuda>();
    ops::add_(d.slice(1, 1, 10, 2), src.to<Cuda>(), 0.5);  // columns 1, 3, 5, 7, 9
    const auto got = d.to<Cpu>();
    for (std::int64_t i = 0; i < 6; ++i)
        for (std::int64_t j = 0; j < 10; ++j) {
            const double want = base.at({i, j}) + (j % 2 ? 0.5 * src.at({i, 0}) : 0.0);
            CHECK(got.at({i, j}) == doctest::Approx(want).epsilon(1e-15));
        }
    // Contiguous, same shape, float (vectorised path with a tail).
    const Tensor<float, Cpu> x = randn<float>({1001}, 152), y = randn<float>({1001}, 153);
    Tensor<float, Cuda> xd = x.to<Cuda>();
    ops::add_(xd, y.to<Cuda>());
    POLYMATH_CHECK_CLOSE(xd.to<Cpu>(), ref::binary<float>("add", x, y), 0.0, 0.0);
}

// A user functor for polymath::cuda::map: relu(a x + b y) - z, in one kernel.
struct AxpbyReluMinus {
    float a, b;
    __device__ float operator()(float x, float y, float z) const {
        const float v = a * x + b * y;
        return (v > 0.f ? v : 0.f) - z;
    }
};
struct Halve {
    template <class A>
    __device__ A operator()(A x) const { return x * A(0.5); }
};

TEST_CASE("polymath::cuda::map runs a user functor over same-shape tensors, strided ones and in place") {
    POLYMATH_REQUIRE_GPU();
    for (const Shape& s : {Shape{1003}, Shape{7, 33}, Shape{0}, Shape{1}}) {
        const Tensor<float, Cpu> x = randn<float>(s, 160), y = randn<float>(s, 161), z = randn<float>(s, 162);
        const Tensor<float, Cuda> out = Tensor<float, Cuda>::empty(s);
        polymath::cuda::map(AxpbyReluMinus{2.f, -1.f}, out, x.to<Cuda>(), y.to<Cuda>(), z.to<Cuda>());
        const auto got = out.to_vector();
        const auto vx = x.to_vector(), vy = y.to_vector(), vz = z.to_vector();
        INFO("shape ", s);
        for (std::size_t i = 0; i < got.size(); ++i) {
            const float v = 2.f * vx[i] - vy[i];
            CHECK(got[i] == doctest::Approx((v > 0.f ? v : 0.f) - vz[i]).epsilon(1e-6));
        }
    }
    // Strided input and output, in place.
    const Tensor<double, Cpu> h = randn<double>({8, 12}, 163);
    Tensor<double, Cuda> d = h.to<Cuda>();
    const Tensor<double, Cuda> view = d.transpose(0, 1).slice(0, 0, 12, 3);  // [4, 8], strided
    polymath::cuda::map(Halve{}, view, view);
    const auto got = d.to<Cpu>();
    for (std::int64_t i = 0; i < 8; ++i)
        for (std::int64_t j = 0; j < 12; ++j) CHECK(got.at({i, j}) == h.at({i, j}) * (j % 3 == 0 ? 0.5 : 1.0));
    // Half storage, float compute.
    const Tensor<polymath::half, Cuda> hx = Tensor<float, Cpu>{1.f, 3.f, -5.f}.to<polymath::half>().to<Cuda>();
    const Tensor<polymath::half, Cuda> ho = Tensor<polymath::half, Cuda>::empty({3});
    polymath::cuda::map(Halve{}, ho, hx);
    CHECK(ho.to<Cpu>().to<float>().to_vector() == std::vector<float>{0.5f, 1.5f, -2.5f});
    CHECK_THROWS_WITH_AS(polymath::cuda::map(Halve{}, Tensor<float, Cuda>::empty({3}), Tensor<float, Cuda>::empty({4})),
                         doctest::Contains("map"), Error);
}

// ================================ 16-bit storage, float compute =================================

TEST_CASE_TEMPLATE("bfloat16 / half elementwise ops round the float result once (loose tolerance)", T, bfloat16, polymath::half) {
    POLYMATH_REQUIRE_GPU();
    // Inputs representable in T, so the CPU float reference sees the same values.
    auto q = [](const Tensor<float, Cpu>& f) { return f.to<T>().template to<float>(); };
    const Tensor<float, Cpu> x = q(randn<float>({37, 129}, 170)), xp = q(positive<float>({37, 129}, 171));
    const Tensor<float, Cpu> g = q(randn<float>({37, 129}, 172));
    for (const std::string& op : kUnary) {
        const Tensor<float, Cpu>& in = needs_positive(op) ? xp : x;
        INFO(op);
        POLYMATH_CHECK_CLOSE(gpu_unary(op, in.to<T>().template to<Cuda>()).template to<Cpu>().template to<float>(),
                             ref::unary(op, in), Tol<T>::rtol, Tol<T>::atol);
    }
    for (const auto& [op, takes_y] : kUnaryBwd) {
        const Tensor<float, Cpu>& in = needs_positive(op) ? xp : x;
        const Tensor<float, Cpu> xy = takes_y ? q(ref::unary(op, in)) : in;
        INFO(op, " backward");
        POLYMATH_CHECK_CLOSE(gpu_unary_backward(op, g.to<T>().template to<Cuda>(), xy.to<T>().template to<Cuda>())
                                 .template to<Cpu>()
                                 .template to<float>(),
                             ref::unary_backward(op, g, xy), Tol<T>::rtol, Tol<T>::atol);
    }
    const Tensor<float, Cpu> b = q(positive<float>({129}, 173));
    for (const std::string& op : kBinary) {
        const Tensor<float, Cpu>& a = op == "pow" ? xp : x;
        INFO(op);
        POLYMATH_CHECK_CLOSE(gpu_binary(op, a.to<T>().template to<Cuda>(), b.to<T>().template to<Cuda>())
                                 .template to<Cpu>()
                                 .template to<float>(),
                             ref::binary(op, a, b), Tol<T>::rtol, Tol<T>::atol);
    }
    for (const std::string& op : kCompare)
        POLYMATH_CHECK_CLOSE(gpu_compare(op, x.to<T>().template to<Cuda>(), b.to<T>().template to<Cuda>()).template to<Cpu>(),
                             ref::compare(op, x, b), 0.0, 0.0);
}

// ======================================== reductions ==========================================

TEST_CASE_TEMPLATE("sum, mean, amax, amin, var match the CPU over single axes, axis sets, all axes, keepdim", T, float,
                   double) {
    POLYMATH_REQUIRE_GPU();
    struct Case {
        Shape shape;
        std::vector<std::vector<std::int64_t>> axes;
    };
    const std::vector<Case> cases = {
        {{7, 33}, {{0}, {1}, {-1}, {}, {0, 1}}},
        {{5, 4, 6}, {{0}, {1}, {2}, {0, 2}, {1, 2}, {0, 1}}},
        {{2, 3, 4, 5}, {{0, 2}, {1, 3}, {0, 3}, {1, 2}, {}}},
        {{3, 100000}, {{1}, {0}}},          // long rows: the row path split into chunks
        {{100000, 5}, {{0}, {1}}},          // few columns, a long reduced axis: the column path split
        {{100000}, {{0}}},                  // one long row
        {{1, 1, 9}, {{0, 1}, {2}}},         // size-1 axes
        {{300, 257}, {{0}, {1}}},           // rows just above the warp-per-row limit
        {{4096, 3, 40}, {{0}, {1}, {0, 2}}},
    };
    std::uint64_t seed = 200;
    for (const Case& c : cases) {
        const Tensor<T, Cpu> x = randn<T>(c.shape, seed++);
        const Tensor<T, Cuda> xd = x.template to<Cuda>();
        for (const auto& axes : c.axes)
            for (bool keepdim : {false, true})
                for (const std::string& op : {"sum", "mean", "amax", "amin", "var"}) {
                    INFO(op, " of ", c.shape, " over ", axes.size(), " axes (first ", axes.empty() ? -99 : axes[0],
                         ") keepdim ", keepdim);
                    if (op == "var" && count_over(c.shape, axes) <= 1) {
                        CHECK_THROWS_WITH_AS(gpu_reduce(op, xd, axes, keepdim), doctest::Contains("var"), Error);
                        continue;
                    }
                    const Tensor<T, Cuda> y = gpu_reduce(op, xd, axes, keepdim);
                    const Tensor<T, Cpu> r = ref_reduce<T>(op, x, axes, keepdim);
                    CHECK(y.shape() == r.shape());
                    const bool exact = op == "amax" || op == "amin";
                    POLYMATH_CHECK_CLOSE(y.template to<Cpu>(), r, exact ? 0.0 : Tol<T>::red_rtol,
                                         exact ? 0.0 : Tol<T>::red_atol);
                }
    }
}

TEST_CASE_TEMPLATE("reductions of transposed and strided inputs match the CPU", T, float, double) {
    POLYMATH_REQUIRE_GPU();
    const Tensor<T, Cpu> base = randn<T>({33, 70}, 300);
    for (Layout l : {Layout::Transposed, Layout::Strided}) {
        const Tensor<T, Cpu> x = host_view(base, l);
        const Tensor<T, Cuda> xd = device_view(base, l);
        for (const std::vector<std::int64_t>& axes : {std::vector<std::int64_t>{0}, {1}, {}})
            for (const std::string& op : {"sum", "mean", "amax", "amin", "var"}) {
                INFO(op, " layout ", int(l), " axes ", axes.size());
                POLYMATH_CHECK_CLOSE(gpu_reduce(op, xd, axes, false).template to<Cpu>(), ref_reduce<T>(op, x, axes, false),
                                     Tol<T>::red_rtol, Tol<T>::red_atol);
            }
    }
}

TEST_CASE_TEMPLATE("amax, amin and argmax propagate NaN on every kernel path", T, float, double) {
    POLYMATH_REQUIRE_GPU();
    for (const Shape& s : {Shape{6, 50}, Shape{3, 100000}, Shape{100000, 5}, Shape{40, 3, 70}}) {
        Tensor<T, Cpu> x = randn<T>(s, 310);
        // A NaN in some (not all) rows / columns, at scattered positions.
        const std::int64_t n = x.numel();
        for (std::int64_t k : {std::int64_t(7), n / 3 + 1, n - 2}) x.data()[k] = T(kNaN);
        const Tensor<T, Cuda> xd = x.template to<Cuda>();
        for (std::int64_t ax = 0; ax < x.dim(); ++ax) {
            INFO("shape ", s, " axis ", ax);
            POLYMATH_CHECK_CLOSE(ops::amax(xd, {ax}).template to<Cpu>(), ref::reduce<T>("amax", x, {ax}, false), 0.0, 0.0);
            POLYMATH_CHECK_CLOSE(ops::amin(xd, {ax}).template to<Cpu>(), ref::reduce<T>("amin", x, {ax}, false), 0.0, 0.0);
            POLYMATH_CHECK_CLOSE(ops::argmax(xd, ax).template to<Cpu>(), ref::argmax<T>(x, ax, false), 0.0, 0.0);
        }
        CHECK(std::isnan(double(ops::amax(xd).item())));
        CHECK(std::isnan(double(ops::sum(xd).item())));
    }
}

TEST_CASE_TEMPLATE("argmax returns the first index on ties along any axis, with keepdim and negative axes", T, float,
                   double) {
    POLYMATH_REQUIRE_GPU();
    for (const Shape& s : {Shape{7, 33}, Shape{5, 4, 6}, Shape{3, 5000}, Shape{20000, 3}, Shape{1}, Shape{9}}) {
        const Tensor<T, Cpu> x = coarse<T>(s, 320);  // many ties
        const Tensor<T, Cuda> xd = x.template to<Cuda>();
        for (std::int64_t ax = -x.dim(); ax < x.dim(); ++ax)
            for (bool keepdim : {false, true}) {
                INFO("shape ", s, " axis ", ax, " keepdim ", keepdim);
                const auto y = ops::argmax(xd, ax, keepdim);
                const auto r = ref::argmax<T>(x, ax, keepdim);
                CHECK(y.shape() == r.shape());
                POLYMATH_CHECK_CLOSE(y.template to<Cpu>(), r, 0.0, 0.0);
            }
    }
    // All equal: index 0; -inf only: index 0; first NaN wins.
    CHECK(ops::argmax(Tensor<T, Cuda>::full({1000}, T(2)), 0).item() == 0);
    CHECK(ops::argmax(from<T>({-kInf, -kInf, -kInf}).template to<Cuda>(), 0).item() == 0);
    CHECK(ops::argmax(from<T>({1.0, kNaN, 5.0, kNaN}).template to<Cuda>(), 0).item() == 1);
}

TEST_CASE("empty and 0-d reductions: sum is 0, mean / amax / argmax refuse, 0-d reduces to itself") {
    POLYMATH_REQUIRE_GPU();
    const Tensor<float, Cuda> e = Tensor<float, Cuda>::zeros({3, 0});
    const auto s = ops::sum(e, {1});
    CHECK(s.shape() == Shape{3});
    CHECK(s.to_vector() == std::vector<float>{0, 0, 0});
    CHECK(ops::sum(e, {0}).shape() == Shape{0});
    CHECK(ops::sum(e).item() == 0.f);
    CHECK_THROWS_WITH_AS(ops::mean(e, {1}), doctest::Contains("mean"), Error);
    CHECK_THROWS_WITH_AS(ops::amax(e, {1}), doctest::Contains("max"), Error);
    CHECK_THROWS_WITH_AS(ops::argmax(e, 1), doctest::Contains("argmax"), Error);
    CHECK_THROWS_WITH_AS(ops::var(Tensor<float, Cuda>::zeros({3, 1}), {1}), doctest::Contains("var"), Error);
    CHECK_THROWS_WITH_AS(ops::sum(e, {2}), doctest::Contains("out of range"), Error);
    CHECK_THROWS_WITH_AS(ops::sum(e, {1, -1}), doctest::Contains("repeated"), Error);
    const Tensor<double, Cuda> z = Tensor<double, Cuda>::full({}, 2.5);
    CHECK(ops::sum(z).item() == 2.5);
    CHECK(ops::amax(z).item() == 2.5);
    CHECK(ops::mean(z).item() == 2.5);
    CHECK(ops::argmax(z, 0).item() == 0);
}

TEST_CASE("float sums are deterministic: the same bits on every run, on the split paths too") {
    POLYMATH_REQUIRE_GPU();
    const Tensor<float, Cuda> x = randn<float>({3, 1 << 20}, 330).to<Cuda>();
    const Tensor<float, Cuda> c = randn<float>({1 << 18, 7}, 331).to<Cuda>();
    const auto a1 = ops::sum(x, {1}).to_vector(), a2 = ops::sum(x, {1}).to_vector();
    const auto b1 = ops::sum(c, {0}).to_vector(), b2 = ops::sum(c, {0}).to_vector();
    CHECK(std::memcmp(a1.data(), a2.data(), a1.size() * sizeof(float)) == 0);
    CHECK(std::memcmp(b1.data(), b2.data(), b1.size() * sizeof(float)) == 0);
    CHECK(ops::sum(x).item() == ops::sum(x).item());
}

TEST_CASE_TEMPLATE("bfloat16 / half reductions accumulate in float and round once (loose tolerance)", T, bfloat16,
                   polymath::half) {
    POLYMATH_REQUIRE_GPU();
    for (const Shape& s : {Shape{7, 33}, Shape{3, 100000}, Shape{20000, 5}}) {
        const Tensor<float, Cpu> x = randn<float>(s, 340).to<T>().template to<float>();
        const Tensor<T, Cuda> xd = x.to<T>().template to<Cuda>();
        for (std::int64_t ax = 0; ax < 2; ++ax)
            for (const std::string& op : {"sum", "mean", "amax", "amin", "var"}) {
                INFO(op, " shape ", s, " axis ", ax);
                POLYMATH_CHECK_CLOSE(gpu_reduce(op, xd, {ax}, false).template to<Cpu>().template to<float>(),
                                     ref_reduce<float>(op, x, {ax}, false), Tol<T>::red_rtol, Tol<T>::red_atol);
            }
        POLYMATH_CHECK_CLOSE(ops::argmax(xd, 1).template to<Cpu>(), ref::argmax<float>(x, 1, false), 0.0, 0.0);
    }
}
