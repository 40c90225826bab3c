// polymath/ops/arith.hpp — + - * / and negation on tensors (no autograd),
// with broadcasting, plus the tensor-scalar forms.
#pragma once
#include "polymath/ops/elementwise.hpp"

namespace polymath::ops {

template <class T>
Tensor<T> add(const Tensor<T>& a, const Tensor<T>& b) {
    return binary_map<T>("add", a, b, [](const auto& x, const auto& y) { return x + y; });
}
template <class T>
Tensor<T> sub(const Tensor<T>& a, const Tensor<T>& b) {
    return binary_map<T>("sub", a, b, [](const auto& x, const auto& y) { return x - y; });
}
template <class T>
Tensor<T> mul(const Tensor<T>& a, const Tensor<T>& b) {
    return binary_map<T>("mul", a, b, [](const auto& x, const auto& y) { return x * y; });
}
template <class T>
Tensor<T> div(const Tensor<T>& a, const Tensor<T>& b) {
    return binary_map<T>("div", a, b, [](const auto& x, const auto& y) { return x / y; });
}
template <class T>
Tensor<T> neg(const Tensor<T>& a) {
    return unary_map<T>(a, [](const auto& x) { return -x; });
}
// a * s + c, the affine map used by scalar ops and by many backward passes.
template <class T>
Tensor<T> affine(const Tensor<T>& a, T s, T c) {
    return unary_map<T>(a, [s, c](const auto& x) { return x * s + c; });
}
template <class T>
Tensor<T> add_scalar(const Tensor<T>& a, T s) { return affine(a, T(1), s); }
template <class T>
Tensor<T> mul_scalar(const Tensor<T>& a, T s) { return affine(a, s, T(0)); }

// In place: dst += alpha * src (src broadcast to dst's shape). dst is a
// handle; its elements change (the optimizer-step primitive).
template <class T>
void add_(const Tensor<T>& dst, const Tensor<T>& src, std::type_identity_t<T> alpha = T(1)) {
    dst.check_defined("add_");
    src.check_defined("add_");
    POLYMATH_CHECK(broadcast_shapes(dst.shape(), src.shape(), "add_") == dst.shape(), "add_", "source of shape ",
                   src.shape(), " does not broadcast to the destination shape ", dst.shape());
    const Strides sst = broadcast_strides(src.shape(), src.strides(), dst.shape());
    for_each_row<2>(dst.shape(), {reinterpret_cast<char*>(dst.data()), reinterpret_cast<char*>(src.data())},
                    {&dst.strides(), &sst}, {sizeof(T), sizeof(T)}, kElementwiseGrain,
                    [&](const std::array<char*, 2>& p, const std::array<std::int64_t, 2>& st, std::int64_t n) {
                        T* d = reinterpret_cast<T*>(p[0]);
                        if (st[0] == std::int64_t(sizeof(T))) {
                            VecMap<T> o(d, n);
                            if (st[1] == std::int64_t(sizeof(T)))
                                o += alpha * detail::contiguous_row<T>(p[1], n);
                            else
                                o += alpha * detail::strided_row<T>(p[1], st[1], n);
                        } else {
                            const T* s = reinterpret_cast<const T*>(p[1]);
                            const std::int64_t ds = st[0] / std::int64_t(sizeof(T)), ss = st[1] / std::int64_t(sizeof(T));
                            for (std::int64_t i = 0; i < n; ++i) d[i * ds] += alpha * s[i * ss];
                        }
                    });
}

}  // namespace polymath::ops

namespace polymath {
// Operators on plain tensors (no graph).
template <class T>
Tensor<T> operator+(const Tensor<T>& a, const Tensor<T>& b) { return ops::add(a, b); }
template <class T>
Tensor<T> operator-(const Tensor<T>& a, const Tensor<T>& b) { return ops::sub(a, b); }
template <class T>
Tensor<T> operator*(const Tensor<T>& a, const Tensor<T>& b) { return ops::mul(a, b); }
template <class T>
Tensor<T> operator/(const Tensor<T>& a, const Tensor<T>& b) { return ops::div(a, b); }
template <class T>
Tensor<T> operator-(const Tensor<T>& a) { return ops::neg(a); }
template <class T>
Tensor<T> operator+(const Tensor<T>& a, std::type_identity_t<T> s) { return ops::add_scalar(a, s); }
template <class T>
Tensor<T> operator-(const Tensor<T>& a, std::type_identity_t<T> s) { return ops::add_scalar(a, T(-s)); }
template <class T>
Tensor<T> operator*(const Tensor<T>& a, std::type_identity_t<T> s) { return ops::mul_scalar(a, s); }
template <class T>
Tensor<T> operator/(const Tensor<T>& a, std::type_identity_t<T> s) { return ops::mul_scalar(a, T(1) / s); }
template <class T>
Tensor<T> operator*(std::type_identity_t<T> s, const Tensor<T>& a) { return ops::mul_scalar(a, s); }
template <class T>
Tensor<T> operator+(std::type_identity_t<T> s, const Tensor<T>& a) { return ops::add_scalar(a, s); }
}  // namespace polymath
