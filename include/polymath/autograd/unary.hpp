// polymath/autograd/unary.hpp — differentiable elementwise math on Vars:
// exp, log, sqrt, rsqrt, abs, tanh, sigmoid, relu, gelu, softplus, square,
// pow_scalar. Same names as the ops/unary.hpp kernels.
//
// Backward saves the output where that is the cheaper form of the derivative
// (exp, sqrt, rsqrt, tanh, sigmoid, relu) and the input otherwise.
#pragma once
#include <string_view>

#include "polymath/autograd/var.hpp"
#include "polymath/ops/unary.hpp"

namespace polymath {

namespace autograd::detail {
// y = kernel(x); backward: s.add(0, backward_kernel(g, y)).
template <class T, class F, class B>
Var<T> unary_from_output(const char* name, const Var<T>& x, F&& forward, B backward) {
    Tensor<T> y = forward(x.value());
    return make_result(name, y, {&x}, [y, backward](const Tensor<T>& g, GradSink<T, Cpu>& s) { s.add(0, backward(g, y)); });
}
// y = kernel(x); backward: s.add(0, backward_kernel(g, x)).
template <class T, class F, class B>
Var<T> unary_from_input(const char* name, const Var<T>& x, F&& forward, B backward) {
    return make_result(name, forward(x.value()), {&x},
                       [xv = x.value(), backward](const Tensor<T>& g, GradSink<T, Cpu>& s) { s.add(0, backward(g, xv)); });
}
}  // namespace autograd::detail

template <class T>
Var<T> exp(const Var<T>& x) {
    return autograd::detail::unary_from_output(
        "exp", x, [](const Tensor<T>& v) { return ops::exp(v); },
        [](const Tensor<T>& g, const Tensor<T>& y) { return ops::exp_backward(g, y); });
}
template <class T>
Var<T> log(const Var<T>& x) {
    return autograd::detail::unary_from_input(
        "log", x, [](const Tensor<T>& v) { return ops::log(v); },
        [](const Tensor<T>& g, const Tensor<T>& xv) { return ops::log_backward(g, xv); });
}
template <class T>
Var<T> sqrt(const Var<T>& x) {
    return autograd::detail::unary_from_output(
        "sqrt", x, [](const Tensor<T>& v) { return ops::sqrt(v); },
        [](const Tensor<T>& g, const Tensor<T>& y) { return ops::sqrt_backward(g, y); });
}
template <class T>
Var<T> rsqrt(const Var<T>& x) {
    return autograd::detail::unary_from_output(
        "rsqrt", x, [](const Tensor<T>& v) { return ops::rsqrt(v); },
        [](const Tensor<T>& g, const Tensor<T>& y) { return ops::rsqrt_backward(g, y); });
}
template <class T>
Var<T> abs(const Var<T>& x) {
    return autograd::detail::unary_from_input(
        "abs", x, [](const Tensor<T>& v) { return ops::abs(v); },
        [](const Tensor<T>& g, const Tensor<T>& xv) { return ops::abs_backward(g, xv); });
}
template <class T>
Var<T> tanh(const Var<T>& x) {
    return autograd::detail::unary_from_output(
        "tanh", x, [](const Tensor<T>& v) { return ops::tanh(v); },
        [](const Tensor<T>& g, const Tensor<T>& y) { return ops::tanh_backward(g, y); });
}
template <class T>
Var<T> sigmoid(const Var<T>& x) {
    return autograd::detail::unary_from_output(
        "sigmoid", x, [](const Tensor<T>& v) { return ops::sigmoid(v); },
        [](const Tensor<T>& g, const Tensor<T>& y) { return ops::sigmoid_backward(g, y); });
}
template <class T>
Var<T> relu(const Var<T>& x) {
    return autograd::detail::unary_from_output(
        "relu", x, [](const Tensor<T>& v) { return ops::relu(v); },
        [](const Tensor<T>& g, const Tensor<T>& y) { return ops::relu_backward(g, y); });
}
template <class T>
Var<T> square(const Var<T>& x) {
    return autograd::detail::unary_from_input(
        "square", x, [](const Tensor<T>& v) { return ops::square(v); },
        [](const Tensor<T>& g, const Tensor<T>& xv) { return ops::square_backward(g, xv); });
}
template <class T>
Var<T> gelu(const Var<T>& x, GeluApprox approximate = GeluApprox::None) {
    return autograd::detail::unary_from_input(
        "gelu", x, [approximate](const Tensor<T>& v) { return ops::gelu(v, approximate); },
        [approximate](const Tensor<T>& g, const Tensor<T>& xv) { return ops::gelu_backward(g, xv, approximate); });
}
template <class T>
Var<T> gelu(const Var<T>& x, std::string_view approximate) {
    return gelu(x, gelu_approx_from_string(approximate));
}
template <class T>
Var<T> softplus(const Var<T>& x, std::type_identity_t<T> beta = T(1), std::type_identity_t<T> threshold = T(20)) {
    return autograd::detail::unary_from_input(
        "softplus", x, [beta, threshold](const Tensor<T>& v) { return ops::softplus(v, beta, threshold); },
        [beta, threshold](const Tensor<T>& g, const Tensor<T>& xv) {
            return ops::softplus_backward(g, xv, beta, threshold);
        });
}
// x^p for a scalar p.
template <class T>
Var<T> pow_scalar(const Var<T>& x, std::type_identity_t<T> p) {
    return autograd::detail::unary_from_input(
        "pow_scalar", x, [p](const Tensor<T>& v) { return ops::pow_scalar(v, p); },
        [p](const Tensor<T>& g, const Tensor<T>& xv) { return ops::pow_scalar_backward(g, xv, p); });
}

}  // namespace polymath
