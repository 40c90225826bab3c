// polymath/autograd/binary_math.hpp — pow, maximum, minimum on Vars with
// broadcasting backward (gradients reduced with ops::sum_to).
//
// maximum / minimum split the gradient 0.5 / 0.5 on ties, like PyTorch.
#pragma once
#include "polymath/autograd/var.hpp"
#include "polymath/ops/binary_math.hpp"
#include "polymath/ops/reduce.hpp"

namespace polymath {

// a^b elementwise.
template <class T>
Var<T> pow(const Var<T>& a, const Var<T>& b) {
    return autograd::make_result("pow", ops::pow(a.value(), b.value()), {&a, &b},
                                 [av = a.value(), bv = b.value()](const Tensor<T>& g, autograd::GradSink<T, Cpu>& s) {
                                     if (s.needs(0)) s.add(0, ops::sum_to(ops::pow_backward_base(g, av, bv), av.shape()));
                                     if (s.needs(1))
                                         s.add(1, ops::sum_to(ops::pow_backward_exponent(g, av, bv), bv.shape()));
                                 });
}
template <class T>
Var<T> maximum(const Var<T>& a, const Var<T>& b) {
    return autograd::make_result("maximum", ops::maximum(a.value(), b.value()), {&a, &b},
                                 [av = a.value(), bv = b.value()](const Tensor<T>& g, autograd::GradSink<T, Cpu>& s) {
                                     if (s.needs(0)) s.add(0, ops::sum_to(ops::maximum_backward(g, av, bv, 0), av.shape()));
                                     if (s.needs(1)) s.add(1, ops::sum_to(ops::maximum_backward(g, av, bv, 1), bv.shape()));
                                 });
}
template <class T>
Var<T> minimum(const Var<T>& a, const Var<T>& b) {
    return autograd::make_result("minimum", ops::minimum(a.value(), b.value()), {&a, &b},
                                 [av = a.value(), bv = b.value()](const Tensor<T>& g, autograd::GradSink<T, Cpu>& s) {
                                     if (s.needs(0)) s.add(0, ops::sum_to(ops::minimum_backward(g, av, bv, 0), av.shape()));
                                     if (s.needs(1)) s.add(1, ops::sum_to(ops::minimum_backward(g, av, bv, 1), bv.shape()));
                                 });
}

}  // namespace polymath
