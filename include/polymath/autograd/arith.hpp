// polymath/autograd/arith.hpp — + - * / on Vars, with broadcasting backward.
//
// Pattern for every differentiable op: compute the value with the ops/
// kernel, then autograd::make_result(name, value, {inputs}, closure). The
// closure captures only what backward needs (tensors, not Vars, so the graph
// holds no cycles) and adds each input gradient through the sink, reduced to
// the input's shape with ops::sum_to when broadcasting happened.
#pragma once
#include "polymath/autograd/var.hpp"
#include "polymath/ops/arith.hpp"
#include "polymath/ops/reduce.hpp"

namespace polymath {

template <class T>
Var<T> add(const Var<T>& a, const Var<T>& b) {
    return autograd::make_result("add", ops::add(a.value(), b.value()), {&a, &b},
                                 [sa = a.shape(), sb = b.shape()](const Tensor<T>& g, autograd::GradSink<T, Cpu>& s) {
                                     if (s.needs(0)) s.add(0, ops::sum_to(g, sa));
                                     if (s.needs(1)) s.add(1, ops::sum_to(g, sb));
                                 });
}
template <class T>
Var<T> sub(const Var<T>& a, const Var<T>& b) {
    return autograd::make_result("sub", ops::sub(a.value(), b.value()), {&a, &b},
                                 [sa = a.shape(), sb = b.shape()](const Tensor<T>& g, autograd::GradSink<T, Cpu>& s) {
                                     if (s.needs(0)) s.add(0, ops::sum_to(g, sa));
                                     if (s.needs(1)) s.add(1, ops::sum_to(ops::neg(g), sb));
                                 });
}
template <class T>
Var<T> mul(const Var<T>& a, const Var<T>& b) {
    return autograd::make_result("mul", ops::mul(a.value(), b.value()), {&a, &b},
                                 [av = a.value(), bv = b.value()](const Tensor<T>& g, autograd::GradSink<T, Cpu>& s) {
                                     if (s.needs(0)) s.add(0, ops::sum_to(ops::mul(g, bv), av.shape()));
                                     if (s.needs(1)) s.add(1, ops::sum_to(ops::mul(g, av), bv.shape()));
                                 });
}
template <class T>
Var<T> div(const Var<T>& a, const Var<T>& b) {
    return autograd::make_result(
        "div", ops::div(a.value(), b.value()), {&a, &b},
        [av = a.value(), bv = b.value()](const Tensor<T>& g, autograd::GradSink<T, Cpu>& s) {
            if (s.needs(0)) s.add(0, ops::sum_to(ops::div(g, bv), av.shape()));
            if (s.needs(1))  // d(a/b)/db = -a / b^2
                s.add(1, ops::sum_to(ops::ternary_map<T>("div", g, av, bv,
                                                         [](const auto& gg, const auto& x, const auto& y) {
                                                             return -gg * x / (y * y);
                                                         }),
                                     bv.shape()));
        });
}
template <class T>
Var<T> neg(const Var<T>& a) {
    return autograd::make_result("neg", ops::neg(a.value()), {&a},
                                 [](const Tensor<T>& g, autograd::GradSink<T, Cpu>& s) { s.add(0, ops::neg(g)); });
}
// a * scale + shift with scalar scale and shift.
template <class T>
Var<T> affine(const Var<T>& a, T scale, T shift) {
    return autograd::make_result("affine", ops::affine(a.value(), scale, shift), {&a},
                                 [scale](const Tensor<T>& g, autograd::GradSink<T, Cpu>& s) {
                                     s.add(0, ops::mul_scalar(g, scale));
                                 });
}

template <class T>
Var<T> operator+(const Var<T>& a, const Var<T>& b) { return add(a, b); }
template <class T>
Var<T> operator-(const Var<T>& a, const Var<T>& b) { return sub(a, b); }
template <class T>
Var<T> operator*(const Var<T>& a, const Var<T>& b) { return mul(a, b); }
template <class T>
Var<T> operator/(const Var<T>& a, const Var<T>& b) { return div(a, b); }
template <class T>
Var<T> operator-(const Var<T>& a) { return neg(a); }
template <class T>
Var<T> operator+(const Var<T>& a, std::type_identity_t<T> s) { return affine(a, T(1), s); }
template <class T>
Var<T> operator+(std::type_identity_t<T> s, const Var<T>& a) { return affine(a, T(1), s); }
template <class T>
Var<T> operator-(const Var<T>& a, std::type_identity_t<T> s) { return affine(a, T(1), T(-s)); }
template <class T>
Var<T> operator-(std::type_identity_t<T> s, const Var<T>& a) { return affine(a, T(-1), s); }
template <class T>
Var<T> operator*(const Var<T>& a, std::type_identity_t<T> s) { return affine(a, s, T(0)); }
template <class T>
Var<T> operator*(std::type_identity_t<T> s, const Var<T>& a) { return affine(a, s, T(0)); }
template <class T>
Var<T> operator/(const Var<T>& a, std::type_identity_t<T> s) { return affine(a, T(1) / s, T(0)); }

}  // namespace polymath
