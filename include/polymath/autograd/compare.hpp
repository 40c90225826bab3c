// polymath/autograd/compare.hpp — comparisons and where() on Vars.
//
// Comparisons of Vars compare their values and return a plain Tensor<bool>
// (no gradient). where(cond, a, b) is differentiable in a and b: the gradient
// goes to a where cond is true and to b elsewhere, reduced to each input's
// shape when it was broadcast.
#pragma once
#include "polymath/autograd/var.hpp"
#include "polymath/ops/compare.hpp"
#include "polymath/ops/reduce.hpp"

namespace polymath {

#define POLYMATH_DEFINE_VAR_COMPARISON(NAME)                                                                     \
    template <class T>                                                                                           \
    Tensor<bool> NAME(const Var<T>& a, const Var<T>& b) { return ops::NAME(a.value(), b.value()); }            \
    template <class T>                                                                                           \
    Tensor<bool> NAME(const Var<T>& a, std::type_identity_t<T> s) { return ops::NAME(a.value(), s); }

POLYMATH_DEFINE_VAR_COMPARISON(eq)
POLYMATH_DEFINE_VAR_COMPARISON(ne)
POLYMATH_DEFINE_VAR_COMPARISON(lt)
POLYMATH_DEFINE_VAR_COMPARISON(le)
POLYMATH_DEFINE_VAR_COMPARISON(gt)
POLYMATH_DEFINE_VAR_COMPARISON(ge)
#undef POLYMATH_DEFINE_VAR_COMPARISON

template <class T>
Var<T> where(const Tensor<bool>& cond, const Var<T>& a, const Var<T>& b) {
    return autograd::make_result("where", ops::where(cond, a.value(), b.value()), {&a, &b},
                                 [cond, sa = a.shape(), sb = b.shape()](const Tensor<T>& g, autograd::GradSink<T, Cpu>& s) {
                                     if (s.needs(0)) s.add(0, ops::sum_to(ops::where(cond, g, T(0)), sa));
                                     if (s.needs(1)) s.add(1, ops::sum_to(ops::where(cond, T(0), g), sb));
                                 });
}
// a where cond, else the constant b.
template <class T>
Var<T> where(const Tensor<bool>& cond, const Var<T>& a, std::type_identity_t<T> b) {
    return autograd::make_result("where", ops::where(cond, a.value(), b), {&a},
                                 [cond, sa = a.shape()](const Tensor<T>& g, autograd::GradSink<T, Cpu>& s) {
                                     s.add(0, ops::sum_to(ops::where(cond, g, T(0)), sa));
                                 });
}
// the constant a where cond, else b.
template <class T>
Var<T> where(const Tensor<bool>& cond, std::type_identity_t<T> a, const Var<T>& b) {
    return autograd::make_result("where", ops::where(cond, a, b.value()), {&b},
                                 [cond, sb = b.shape()](const Tensor<T>& g, autograd::GradSink<T, Cpu>& s) {
                                     s.add(0, ops::sum_to(ops::where(cond, T(0), g), sb));
                                 });
}

}  // namespace polymath
