// polymath/ops/compare.hpp — elementwise comparisons returning Tensor<bool>
// (tensor-tensor with NumPy broadcasting, and tensor-scalar), and where().
//
// Comparisons follow IEEE: every comparison with NaN is false except ne.
// where(cond, a, b) picks a where cond is true and b elsewhere, broadcasting
// all three operands (like torch.where).
#pragma once
#include <algorithm>
#include <initializer_list>
#include <type_traits>

#include "polymath/ops/elementwise.hpp"

namespace polymath::ops {

#define POLYMATH_DEFINE_COMPARISON(NAME, OP)                                                                   \
    template <class T>                                                                                         \
    Tensor<bool> NAME(const Tensor<T>& a, const Tensor<T>& b) {                                                \
        return binary_map<bool>(#NAME, a, b, [](const auto& x, const auto& y) { return x OP y; });            \
    }                                                                                                          \
    template <class T>                                                                                         \
    Tensor<bool> NAME(const Tensor<T>& a, std::type_identity_t<T> s) {                                         \
        a.check_defined(#NAME);                                                                                \
        return unary_map<bool>(a, [s](const auto& x) { return x OP s; });                                     \
    }

POLYMATH_DEFINE_COMPARISON(eq, ==)
POLYMATH_DEFINE_COMPARISON(ne, !=)
POLYMATH_DEFINE_COMPARISON(lt, <)
POLYMATH_DEFINE_COMPARISON(le, <=)
POLYMATH_DEFINE_COMPARISON(gt, >)
POLYMATH_DEFINE_COMPARISON(ge, >=)
#undef POLYMATH_DEFINE_COMPARISON

namespace detail {
// Broadcast shape of where's three operands; the error names all three.
inline Shape where_shape(const Shape& c, const Shape& a, const Shape& b) {
    const int n = std::max({c.size(), a.size(), b.size()});
    Shape out = Shape::filled(n, 1);
    for (int i = 0; i < n; ++i) {
        std::int64_t d = 1;
        bool ok = true;
        for (const Shape* s : {&c, &a, &b}) {
            const int k = i - (n - s->size());
            const std::int64_t e = k < 0 ? 1 : (*s)[k];
            if (e == 1) continue;
            ok = ok && (d == 1 || d == e);
            d = e;
        }
        POLYMATH_CHECK(ok, "where", "condition of shape ", c, ", input of shape ", a, " and other of shape ", b,
                       " cannot be broadcast together (dimension ", i, ")");
        out[i] = d;
    }
    return out;
}
}  // namespace detail

// a where cond, else b; all three broadcast.
template <class T>
Tensor<T> where(const Tensor<bool>& cond, const Tensor<T>& a, const Tensor<T>& b) {
    cond.check_defined("where");
    a.check_defined("where");
    b.check_defined("where");
    detail::where_shape(cond.shape(), a.shape(), b.shape());
    return ternary_map<T>("where", cond, a, b, [](const auto& c, const auto& x, const auto& y) { return c.select(x, y); });
}
// a where cond, else the scalar b.
template <class T>
Tensor<T> where(const Tensor<bool>& cond, const Tensor<T>& a, std::type_identity_t<T> b) {
    cond.check_defined("where");
    a.check_defined("where");
    detail::where_shape(cond.shape(), a.shape(), Shape{});
    return binary_map<T>("where", cond, a, [b](const auto& c, const auto& x) { return c.select(x, b); });
}
// the scalar a where cond, else b.
template <class T>
Tensor<T> where(const Tensor<bool>& cond, std::type_identity_t<T> a, const Tensor<T>& b) {
    cond.check_defined("where");
    b.check_defined("where");
    detail::where_shape(cond.shape(), Shape{}, b.shape());
    return binary_map<T>("where", cond, b, [a](const auto& c, const auto& y) { return c.select(a, y); });
}

}  // namespace polymath::ops
