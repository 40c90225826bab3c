// polymath/ops/binary_math.hpp — pow, maximum, minimum of two tensors with
// NumPy broadcasting (no autograd), and their backward kernels.
//
// The backward kernels return the gradient in the broadcast (output) shape;
// the caller reduces it to the input's shape with ops::sum_to. Conventions
// follow PyTorch's derivatives:
//   pow:     d/da = b a^(b-1), 0 where b == 0;
//            d/db = a^b log(a), 0 where a == 0 and b >= 0;
//   maximum / minimum: the gradient goes to the larger / smaller input and is
//            split 0.5 / 0.5 on ties; NaN in either input propagates (forward).
#pragma once
#include <cmath>

#include "polymath/ops/elementwise.hpp"
#include "polymath/ops/unary.hpp"

namespace polymath::ops {

namespace detail {
template <class T>
inline constexpr bool kVecPow = PT<T>::Vectorizable && PT<T>::HasExp && PT<T>::HasLog && PT<T>::HasRound &&
                                PT<T>::HasCmp;

// Weight of input x in the gradient of max(x, y): 0 where x < y, 0.5 on a
// tie, 1 otherwise (min(x, y) uses it with the arguments swapped).
template <class T>
auto extremum_weight_fn() {
    return packet_fn<T, kVecCmp<T>>(
        [](T x, T y) { return x < y ? T(0) : (x == y ? T(0.5) : T(1)); },
        [](const auto& x, const auto& y) {
            using namespace Eigen::internal;
            using Pk = std::decay_t<decltype(x)>;
            return pselect(pcmp_lt(x, y), pzero(x), pselect(pcmp_eq(x, y), pset1<Pk>(T(0.5)), pset1<Pk>(T(1))));
        });
}
}  // namespace detail

template <class T>
Tensor<T> pow(const Tensor<T>& a, const Tensor<T>& b) {
    static_assert(MathDType<T>, "pow computes in float or double; convert with .to<float>() first");
    return binary_map<T>("pow", a, b, [](const auto& x, const auto& y) { return x.pow(y); });
}
// Elementwise larger of a and b; NaN if either is NaN (torch.maximum).
template <class T>
Tensor<T> maximum(const Tensor<T>& a, const Tensor<T>& b) {
    static_assert(MathDType<T>, "maximum computes in float or double; convert with .to<float>() first");
    return binary_map<T>("maximum", a, b, [](const auto& x, const auto& y) {
        return x.binaryExpr(y, Eigen::internal::scalar_max_op<T, T, Eigen::PropagateNaN>());
    });
}
// Elementwise smaller of a and b; NaN if either is NaN (torch.minimum).
template <class T>
Tensor<T> minimum(const Tensor<T>& a, const Tensor<T>& b) {
    static_assert(MathDType<T>, "minimum computes in float or double; convert with .to<float>() first");
    return binary_map<T>("minimum", a, b, [](const auto& x, const auto& y) {
        return x.binaryExpr(y, Eigen::internal::scalar_min_op<T, T, Eigen::PropagateNaN>());
    });
}

// ---- backward (results in the broadcast shape of g, a, b) -------------------

// g * b a^(b-1), 0 where b == 0.
template <class T>
Tensor<T> pow_backward_base(const Tensor<T>& g, const Tensor<T>& a, const Tensor<T>& b) {
    auto op = detail::packet_fn<T, detail::kVecPow<T>>(
        [](T x, T y) { return y == T(0) ? T(0) : y * std::pow(x, y - T(1)); },
        [](const auto& x, const auto& y) {
            using namespace Eigen::internal;
            using Pk = std::decay_t<decltype(x)>;
            const Pk z = pzero(x);
            return pselect(pcmp_eq(y, z), z, pmul(y, generic_pow(x, psub(y, pset1<Pk>(T(1))))));
        });
    return ternary_map<T>("pow_backward", g, a, b,
                          [op](const auto& gg, const auto& x, const auto& y) { return gg * x.binaryExpr(y, op); });
}
// g * a^b log(a), 0 where a == 0 and b >= 0.
template <class T>
Tensor<T> pow_backward_exponent(const Tensor<T>& g, const Tensor<T>& a, const Tensor<T>& b) {
    auto op = detail::packet_fn<T, detail::kVecPow<T>>(
        [](T x, T y) { return (x == T(0) && y >= T(0)) ? T(0) : std::pow(x, y) * std::log(x); },
        [](const auto& x, const auto& y) {
            using namespace Eigen::internal;
            const auto z = pzero(x);
            return pselect(pand(pcmp_eq(x, z), pcmp_le(z, y)), z, pmul(generic_pow(x, y), plog(x)));
        });
    return ternary_map<T>("pow_backward", g, a, b,
                          [op](const auto& gg, const auto& x, const auto& y) { return gg * x.binaryExpr(y, op); });
}
// Gradient of maximum(a, b) for a (which = 0) or b (which = 1).
template <class T>
Tensor<T> maximum_backward(const Tensor<T>& g, const Tensor<T>& a, const Tensor<T>& b, int which) {
    const auto w = detail::extremum_weight_fn<T>();
    if (which == 0)
        return ternary_map<T>("maximum_backward", g, a, b,
                              [w](const auto& gg, const auto& x, const auto& y) { return gg * x.binaryExpr(y, w); });
    return ternary_map<T>("maximum_backward", g, a, b,
                          [w](const auto& gg, const auto& x, const auto& y) { return gg * y.binaryExpr(x, w); });
}
// Gradient of minimum(a, b) for a (which = 0) or b (which = 1).
template <class T>
Tensor<T> minimum_backward(const Tensor<T>& g, const Tensor<T>& a, const Tensor<T>& b, int which) {
    const auto w = detail::extremum_weight_fn<T>();
    if (which == 0)
        return ternary_map<T>("minimum_backward", g, a, b,
                              [w](const auto& gg, const auto& x, const auto& y) { return gg * y.binaryExpr(x, w); });
    return ternary_map<T>("minimum_backward", g, a, b,
                          [w](const auto& gg, const auto& x, const auto& y) { return gg * x.binaryExpr(y, w); });
}

}  // namespace polymath::ops
