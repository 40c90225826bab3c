// polymath/ops/unary.hpp — elementwise math on tensors (no autograd): exp, log,
// sqrt, rsqrt, abs, tanh, sigmoid, relu, gelu, softplus, square, pow_scalar,
// and the <op>_backward kernels the autograd wrappers call.
//
// Every kernel is one Eigen array expression run by unary_map / binary_map, so
// contiguous rows take Eigen's packet path (AVX-512 / AVX2 where compiled for
// it). What Eigen 3.4 vectorises (x86, default EIGEN_FAST_MATH): exp, log,
// sqrt, rsqrt for float and double; log1p, tanh and erf for float only (double
// falls back to std:: per element). Comparisons and select() are never
// vectorised by Eigen 3.4, so the kernels that need a mask (relu / abs /
// softplus backward) use small functors with a packet path built from pcmp_* /
// pselect (PacketFn below). Two Eigen packet functions are not used as they
// are: sqrt (approximate under EIGEN_FAST_MATH, NaN for +inf; psqrt_ieee) and
// double exp (5.6e-309 instead of 0 below -709.78; pexp_flushed).
//
// Conventions follow PyTorch: relu'(0) = 0, abs'(0) = 0, softplus returns x
// where beta * x > threshold, gelu has the exact (erf) and the tanh form.
#pragma once
#include <cmath>
#include <string_view>
#include <type_traits>

#include <Eigen/Core>
#include <unsupported/Eigen/SpecialFunctions>

#include "polymath/ops/elementwise.hpp"

namespace polymath {

// torch.nn.functional.gelu's `approximate`: None = x * Phi(x) (erf form),
// Tanh = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
enum class GeluApprox { None, Tanh };

// "none" / "tanh", as PyTorch spells them.
inline GeluApprox gelu_approx_from_string(std::string_view s) {
    if (s == "none") return GeluApprox::None;
    if (s == "tanh") return GeluApprox::Tanh;
    POLYMATH_THROW("gelu", "approximate must be \"none\" or \"tanh\", got \"", std::string(s), "\"");
}

namespace ops {
namespace detail {

// An Eigen functor with a scalar path `s` and a packet path `p` (a generic
// callable over Eigen packets, written with Eigen::internal::p* functions).
// Vec says whether the packet path may be used for T on this target; it must
// be false when `p` uses a packet function Eigen lacks for T.
template <class T, bool Vec, class S, class P>
struct PacketFn {
    S s;
    P p;
    EIGEN_STRONG_INLINE T operator()(const T& a) const { return s(a); }
    EIGEN_STRONG_INLINE T operator()(const T& a, const T& b) const { return s(a, b); }
    template <class Pk>
    EIGEN_STRONG_INLINE Pk packetOp(const Pk& a) const { return p(a); }
    template <class Pk>
    EIGEN_STRONG_INLINE Pk packetOp(const Pk& a, const Pk& b) const { return p(a, b); }
};
template <class T, bool Vec, class S, class P>
PacketFn<T, Vec, S, P> packet_fn(S s, P p) { return {s, p}; }

template <class T>
using PT = Eigen::internal::packet_traits<T>;
// Masks and selects on packets.
template <class T>
inline constexpr bool kVecCmp = PT<T>::Vectorizable && PT<T>::HasCmp;

// exp on packets. Eigen 3.4's double pexp clamps its argument at -709.784, so
// it returns 5.6e-309 (not 0) for every x below that, -inf included; those
// are flushed to 0 here (the exact values are denormals below 5.6e-309).
template <class T, class Pk>
EIGEN_STRONG_INLINE Pk pexp_flushed(const Pk& x) {
    using namespace Eigen::internal;
    if constexpr (std::is_same_v<T, double>)
        return pselect(pcmp_lt(x, pset1<Pk>(-709.784)), pzero(x), pexp(x));
    else
        return pexp(x);
}

// IEEE (correctly rounded) square root on packets, like std::sqrt and
// PyTorch. Eigen 3.4 under EIGEN_FAST_MATH (its default) computes the float
// packet sqrt (and the double one on AVX-512) as x * rsqrt(x) refined by
// Newton steps: not correctly rounded, NaN for +inf, 0 for denormals. The x86
// instructions are used directly; elsewhere Eigen's psqrt remains.
template <class Pk>
EIGEN_STRONG_INLINE Pk psqrt_ieee(const Pk& x) {
    return Eigen::internal::psqrt(x);
}
#if defined(EIGEN_VECTORIZE_SSE2)
EIGEN_STRONG_INLINE Eigen::internal::Packet4f psqrt_ieee(const Eigen::internal::Packet4f& x) { return _mm_sqrt_ps(x); }
EIGEN_STRONG_INLINE Eigen::internal::Packet2d psqrt_ieee(const Eigen::internal::Packet2d& x) { return _mm_sqrt_pd(x); }
#endif
#if defined(EIGEN_VECTORIZE_AVX)
EIGEN_STRONG_INLINE Eigen::internal::Packet8f psqrt_ieee(const Eigen::internal::Packet8f& x) { return _mm256_sqrt_ps(x); }
EIGEN_STRONG_INLINE Eigen::internal::Packet4d psqrt_ieee(const Eigen::internal::Packet4d& x) { return _mm256_sqrt_pd(x); }
#endif
#if defined(EIGEN_VECTORIZE_AVX512)
EIGEN_STRONG_INLINE Eigen::internal::Packet16f psqrt_ieee(const Eigen::internal::Packet16f& x) { return _mm512_sqrt_ps(x); }
EIGEN_STRONG_INLINE Eigen::internal::Packet8d psqrt_ieee(const Eigen::internal::Packet8d& x) { return _mm512_sqrt_pd(x); }
#endif

// sqrt(x) and 1 / sqrt(x) as Eigen functors with the IEEE packet sqrt.
template <class T>
auto sqrt_fn() {
    return packet_fn<T, PT<T>::Vectorizable && PT<T>::HasSqrt>(
        [](T v) { return std::sqrt(v); }, [](const auto& v) { return psqrt_ieee(v); });
}
template <class T>
auto rsqrt_fn() {
    return packet_fn<T, PT<T>::Vectorizable && PT<T>::HasSqrt && PT<T>::HasDiv>(
        [](T v) { return T(1) / std::sqrt(v); },
        [](const auto& v) {
            using Pk = std::decay_t<decltype(v)>;
            return Eigen::internal::pdiv(Eigen::internal::pset1<Pk>(T(1)), psqrt_ieee(v));
        });
}

template <class T>
void check_math(const Tensor<T>& x, const char* op) {
    static_assert(MathDType<T>, "this polymath op computes in float or double; convert with .to<float>() first");
    x.check_defined(op);
}
template <class T>
void check_same_shape(const Tensor<T>& g, const Tensor<T>& x, const char* op) {
    g.check_defined(op);
    x.check_defined(op);
    POLYMATH_CHECK(g.shape() == x.shape(), op, "gradient of shape ", g.shape(), " does not match the input shape ",
                   x.shape());
}

// gelu constants.
inline constexpr double kSqrt1_2 = 0.70710678118654752440;      // 1/sqrt(2)
inline constexpr double kInvSqrt2Pi = 0.39894228040143267794;   // 1/sqrt(2 pi)
inline constexpr double kSqrt2OverPi = 0.79788456080286535588;  // sqrt(2/pi)
inline constexpr double kGeluKappa = 0.044715;
// sqrt(2/pi), sqrt(2/pi) * kappa, 3 sqrt(2/pi) kappa in T (namespace scope: lambdas use them uncaptured).
template <class T>
inline constexpr T kGeluK = T(kSqrt2OverPi);
template <class T>
inline constexpr T kGeluKC = T(kSqrt2OverPi * kGeluKappa);
template <class T>
inline constexpr T kGeluKC3 = T(3 * kSqrt2OverPi * kGeluKappa);

}  // namespace detail
}  // namespace ops
}  // namespace polymath

namespace Eigen::internal {
template <class T, bool Vec, class S, class P>
struct functor_traits<polymath::ops::detail::PacketFn<T, Vec, S, P>> {
    enum { Cost = 10 * NumTraits<T>::MulCost, PacketAccess = Vec };
};
}  // namespace Eigen::internal

namespace polymath::ops {

// ---- forward ---------------------------------------------------------------

template <class T>
Tensor<T> exp(const Tensor<T>& x) {
    detail::check_math(x, "exp");
    if constexpr (std::is_same_v<T, float>) {
        return unary_map<T>(x, [](const auto& e) { return e.exp(); });
    } else {  // exp(-inf) = 0 (see pexp_flushed)
        auto op = detail::packet_fn<T, detail::kVecCmp<T> && detail::PT<T>::HasExp>(
            [](T v) { return std::exp(v); }, [](const auto& v) { return detail::pexp_flushed<T>(v); });
        return unary_map<T>(x, [op](const auto& e) { return e.unaryExpr(op); });
    }
}
template <class T>
Tensor<T> log(const Tensor<T>& x) {
    detail::check_math(x, "log");
    return unary_map<T>(x, [](const auto& e) { return e.log(); });
}
// Correctly rounded (see psqrt_ieee).
template <class T>
Tensor<T> sqrt(const Tensor<T>& x) {
    detail::check_math(x, "sqrt");
    return unary_map<T>(x, [op = detail::sqrt_fn<T>()](const auto& e) { return e.unaryExpr(op); });
}
// 1 / sqrt(x), as PyTorch computes it (a division by the IEEE sqrt).
template <class T>
Tensor<T> rsqrt(const Tensor<T>& x) {
    detail::check_math(x, "rsqrt");
    return unary_map<T>(x, [op = detail::rsqrt_fn<T>()](const auto& e) { return e.unaryExpr(op); });
}
template <class T>
Tensor<T> abs(const Tensor<T>& x) {
    detail::check_math(x, "abs");
    return unary_map<T>(x, [](const auto& e) { return e.abs(); });
}
template <class T>
Tensor<T> tanh(const Tensor<T>& x) {
    detail::check_math(x, "tanh");
    return unary_map<T>(x, [](const auto& e) { return e.tanh(); });
}
// 1 / (1 + exp(-x)), PyTorch's formula (Eigen's float logistic() trades
// relative accuracy below x = -9 for speed).
template <class T>
Tensor<T> sigmoid(const Tensor<T>& x) {
    detail::check_math(x, "sigmoid");
    return unary_map<T>(x, [](const auto& e) { return (T(1) + (-e).exp()).inverse(); });
}
// max(x, 0); NaN stays NaN.
template <class T>
Tensor<T> relu(const Tensor<T>& x) {
    detail::check_math(x, "relu");
    return unary_map<T>(x, [](const auto& e) { return e.max(T(0)); });
}
template <class T>
Tensor<T> square(const Tensor<T>& x) {
    detail::check_math(x, "square");
    return unary_map<T>(x, [](const auto& e) { return e.square(); });
}

// One fused expression per form (no temporaries).
template <class T>
Tensor<T> gelu(const Tensor<T>& x, GeluApprox approximate = GeluApprox::None) {
    detail::check_math(x, "gelu");
    if (approximate == GeluApprox::Tanh) {
        // 0.5 x (1 + tanh(k x (1 + 0.044715 x^2)))
        return unary_map<T>(x, [](const auto& e) {
            return (e * T(0.5)) * ((e * (e.square() * detail::kGeluKC<T> + detail::kGeluK<T>)).tanh() + T(1));
        });
    }
    // 0.5 x (1 + erf(x / sqrt(2)))
    return unary_map<T>(x, [](const auto& e) { return (e * T(0.5)) * ((e * T(detail::kSqrt1_2)).erf() + T(1)); });
}
template <class T>
Tensor<T> gelu(const Tensor<T>& x, std::string_view approximate) {
    return gelu(x, gelu_approx_from_string(approximate));
}

// log(1 + exp(beta x)) / beta, or x where beta x > threshold (torch.nn.functional.softplus).
template <class T>
Tensor<T> softplus(const Tensor<T>& x, std::type_identity_t<T> beta = T(1), std::type_identity_t<T> threshold = T(20)) {
    detail::check_math(x, "softplus");
    POLYMATH_CHECK(beta != T(0), "softplus", "beta must be nonzero (shape ", x.shape(), ")");
    auto op = detail::packet_fn<T, detail::kVecCmp<T> && detail::PT<T>::HasExp && detail::PT<T>::HasLog1p>(
        [beta, threshold](T v) {
            const T bx = v * beta;
            return bx > threshold ? v : T(std::log1p(std::exp(bx)) / beta);
        },
        [beta, threshold](const auto& v) {
            using namespace Eigen::internal;
            using Pk = std::decay_t<decltype(v)>;
            const Pk bx = pmul(v, pset1<Pk>(beta));
            return pselect(pcmp_lt(pset1<Pk>(threshold), bx), v, pdiv(plog1p(pexp(bx)), pset1<Pk>(beta)));
        });
    return unary_map<T>(x, [op](const auto& e) { return e.unaryExpr(op); });
}

namespace detail {
// Calls k(pw) with pw(expr) = expr^p, using the cheap form for common p.
template <class T, class K>
Tensor<T> with_pow(T p, K&& k) {
    if (p == T(0)) return k([](const auto& e) { return ArrayX<T>::Constant(e.size(), T(1)); });
    if (p == T(1)) return k([](const auto& e) { return e; });
    if (p == T(2)) return k([](const auto& e) { return e.square(); });
    if (p == T(3)) return k([](const auto& e) { return e.cube(); });
    if (p == T(0.5)) return k([op = sqrt_fn<T>()](const auto& e) { return e.unaryExpr(op); });
    if (p == T(-0.5)) return k([op = rsqrt_fn<T>()](const auto& e) { return e.unaryExpr(op); });
    if (p == T(-1)) return k([](const auto& e) { return e.inverse(); });
    if (p == T(-2)) return k([](const auto& e) { return e.square().inverse(); });
    return k([p](const auto& e) { return e.pow(p); });
}
}  // namespace detail

// x^p for a scalar exponent p (x^0 = 1 everywhere, like torch.pow).
template <class T>
Tensor<T> pow_scalar(const Tensor<T>& x, std::type_identity_t<T> p) {
    detail::check_math(x, "pow_scalar");
    return detail::with_pow<T>(p, [&](auto pw) { return unary_map<T>(x, [pw](const auto& e) { return pw(e); }); });
}

// ---- backward ----------------------------------------------------------------
// g is the gradient of the output; x the input, y the saved output.

// d exp = y
template <class T>
Tensor<T> exp_backward(const Tensor<T>& g, const Tensor<T>& y) {
    detail::check_same_shape(g, y, "exp_backward");
    return binary_map<T>("exp_backward", g, y, [](const auto& a, const auto& b) { return a * b; });
}
// d log = 1 / x
template <class T>
Tensor<T> log_backward(const Tensor<T>& g, const Tensor<T>& x) {
    detail::check_same_shape(g, x, "log_backward");
    return binary_map<T>("log_backward", g, x, [](const auto& a, const auto& b) { return a / b; });
}
// d sqrt = 1 / (2 y)
template <class T>
Tensor<T> sqrt_backward(const Tensor<T>& g, const Tensor<T>& y) {
    detail::check_same_shape(g, y, "sqrt_backward");
    return binary_map<T>("sqrt_backward", g, y, [](const auto& a, const auto& b) { return a / (b * T(2)); });
}
// d rsqrt = -0.5 x^(-3/2) = -0.5 y^3
template <class T>
Tensor<T> rsqrt_backward(const Tensor<T>& g, const Tensor<T>& y) {
    detail::check_same_shape(g, y, "rsqrt_backward");
    return binary_map<T>("rsqrt_backward", g, y, [](const auto& a, const auto& b) { return a * b.cube() * T(-0.5); });
}
// d abs = sign(x), 0 at 0.
template <class T>
Tensor<T> abs_backward(const Tensor<T>& g, const Tensor<T>& x) {
    detail::check_same_shape(g, x, "abs_backward");
    auto op = detail::packet_fn<T, detail::kVecCmp<T>>(
        [](T gg, T v) { return v > T(0) ? gg : (v < T(0) ? -gg : T(0)); },
        [](const auto& gg, const auto& v) {
            using namespace Eigen::internal;
            const auto z = pzero(v);
            return pselect(pcmp_lt(z, v), gg, pselect(pcmp_lt(v, z), pnegate(gg), z));
        });
    return binary_map<T>("abs_backward", g, x, [op](const auto& a, const auto& b) { return a.binaryExpr(b, op); });
}
// d tanh = 1 - y^2
template <class T>
Tensor<T> tanh_backward(const Tensor<T>& g, const Tensor<T>& y) {
    detail::check_same_shape(g, y, "tanh_backward");
    return binary_map<T>("tanh_backward", g, y, [](const auto& a, const auto& b) { return a * (T(1) - b.square()); });
}
// d sigmoid = y (1 - y)
template <class T>
Tensor<T> sigmoid_backward(const Tensor<T>& g, const Tensor<T>& y) {
    detail::check_same_shape(g, y, "sigmoid_backward");
    return binary_map<T>("sigmoid_backward", g, y, [](const auto& a, const auto& b) { return a * (b * (T(1) - b)); });
}
// g where y > 0, else 0 (y = relu output; PyTorch's threshold_backward).
template <class T>
Tensor<T> relu_backward(const Tensor<T>& g, const Tensor<T>& y) {
    detail::check_same_shape(g, y, "relu_backward");
    auto op = detail::packet_fn<T, detail::kVecCmp<T>>(
        [](T gg, T v) { return v <= T(0) ? T(0) : gg; },
        [](const auto& gg, const auto& v) {
            using namespace Eigen::internal;
            return pandnot(gg, pcmp_le(v, pzero(v)));
        });
    return binary_map<T>("relu_backward", g, y, [op](const auto& a, const auto& b) { return a.binaryExpr(b, op); });
}
// 2 x
template <class T>
Tensor<T> square_backward(const Tensor<T>& g, const Tensor<T>& x) {
    detail::check_same_shape(g, x, "square_backward");
    return binary_map<T>("square_backward", g, x, [](const auto& a, const auto& b) { return a * b * T(2); });
}
// none: Phi(x) + x phi(x);  tanh: 0.5 (1 + t) + 0.5 x (1 - t^2) k (1 + 3 kappa x^2), t = tanh(k (x + kappa x^3)).
template <class T>
Tensor<T> gelu_backward(const Tensor<T>& g, const Tensor<T>& x, GeluApprox approximate = GeluApprox::None) {
    detail::check_same_shape(g, x, "gelu_backward");
    if (approximate == GeluApprox::Tanh) {
        // t is used twice: a functor keeps it in a register instead of computing tanh twice.
        auto op = detail::packet_fn<T, detail::PT<T>::Vectorizable && detail::PT<T>::HasTanh>(
            [](T gg, T v) {
                const T v2 = v * v;
                const T t = std::tanh(v * (v2 * detail::kGeluKC<T> + detail::kGeluK<T>));
                return gg * (T(0.5) * (T(1) + t) + T(0.5) * v * (T(1) - t * t) * (v2 * detail::kGeluKC3<T> + detail::kGeluK<T>));
            },
            [](const auto& gg, const auto& v) {
                using namespace Eigen::internal;
                using Pk = std::decay_t<decltype(v)>;
                const Pk half = pset1<Pk>(T(0.5)), one = pset1<Pk>(T(1));
                const Pk v2 = pmul(v, v);
                const Pk t = ptanh(pmul(v, pmadd(v2, pset1<Pk>(detail::kGeluKC<T>), pset1<Pk>(detail::kGeluK<T>))));
                const Pk left = pmul(half, padd(one, t));
                const Pk right = pmul(pmul(pmul(half, v), psub(one, pmul(t, t))), pmadd(v2, pset1<Pk>(detail::kGeluKC3<T>), pset1<Pk>(detail::kGeluK<T>)));
                return pmul(gg, padd(left, right));
            });
        return binary_map<T>("gelu_backward", g, x, [op](const auto& a, const auto& b) { return a.binaryExpr(b, op); });
    }
    return binary_map<T>("gelu_backward", g, x, [](const auto& a, const auto& b) {
        return a * (((b * T(detail::kSqrt1_2)).erf() + T(1)) * T(0.5) +
                    b * (b.square() * T(-0.5)).exp() * T(detail::kInvSqrt2Pi));
    });
}
// sigmoid(beta x), or 1 where beta x > threshold.
template <class T>
Tensor<T> softplus_backward(const Tensor<T>& g, const Tensor<T>& x, std::type_identity_t<T> beta = T(1),
                            std::type_identity_t<T> threshold = T(20)) {
    detail::check_same_shape(g, x, "softplus_backward");
    auto op = detail::packet_fn<T, detail::kVecCmp<T> && detail::PT<T>::HasExp>(
        [beta, threshold](T gg, T v) {
            const T bx = v * beta;
            if (bx > threshold) return gg;
            const T z = std::exp(bx);
            return gg * z / (z + T(1));
        },
        [beta, threshold](const auto& gg, const auto& v) {
            using namespace Eigen::internal;
            using Pk = std::decay_t<decltype(v)>;
            const Pk bx = pmul(v, pset1<Pk>(beta));
            const Pk z = detail::pexp_flushed<T>(bx);
            return pselect(pcmp_lt(pset1<Pk>(threshold), bx), gg, pdiv(pmul(gg, z), padd(z, pset1<Pk>(T(1)))));
        });
    return binary_map<T>("softplus_backward", g, x, [op](const auto& a, const auto& b) { return a.binaryExpr(b, op); });
}
// p x^(p-1), 0 everywhere when p == 0 (like PyTorch).
template <class T>
Tensor<T> pow_scalar_backward(const Tensor<T>& g, const Tensor<T>& x, std::type_identity_t<T> p) {
    detail::check_same_shape(g, x, "pow_scalar_backward");
    if (p == T(0)) return Tensor<T>::zeros(x.shape());
    return detail::with_pow<T>(p - T(1), [&](auto pw) {
        return binary_map<T>("pow_scalar_backward", g, x, [pw, p](const auto& a, const auto& b) { return a * pw(b) * p; });
    });
}

}  // namespace polymath::ops
