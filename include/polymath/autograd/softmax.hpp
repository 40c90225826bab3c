// polymath/autograd/softmax.hpp — differentiable softmax / log_softmax over one axis.
//
// The backward needs only the output y (saved): softmax: gx = y * (g - sum(g * y));
// log_softmax: gx = g - exp(y) * sum(g) (ops::softmax_backward / log_softmax_backward).
#pragma once
#include "polymath/autograd/var.hpp"
#include "polymath/ops/softmax.hpp"

namespace polymath {

template <class T>
Var<T> softmax(const Var<T>& x, std::int64_t axis = -1) {
    Tensor<T> y = ops::softmax(x.value(), axis);
    return autograd::make_result("softmax", y, {&x}, [y, axis](const Tensor<T>& g, autograd::GradSink<T, Cpu>& s) {
        s.add(0, ops::softmax_backward(g, y, axis));
    });
}

template <class T>
Var<T> log_softmax(const Var<T>& x, std::int64_t axis = -1) {
    Tensor<T> y = ops::log_softmax(x.value(), axis);
    return autograd::make_result("log_softmax", y, {&x}, [y, axis](const Tensor<T>& g, autograd::GradSink<T, Cpu>& s) {
        s.add(0, ops::log_softmax_backward(g, y, axis));
    });
}

}  // namespace polymath
