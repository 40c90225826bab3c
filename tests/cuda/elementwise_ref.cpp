// CPU references for tests/cuda/test_elementwise.cu (see elementwise_ref.hpp).
#include "elementwise_ref.hpp"

#include <polymath/polymath.hpp>

namespace polymath::ref {

template <class T>
Tensor<T> unary(const std::string& op, const Tensor<T>& x) {
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
    if (op == "gelu") return ops::gelu(x, GeluApprox::None);
    if (op == "gelu_tanh") return ops::gelu(x, GeluApprox::Tanh);
    throw Error("ref::unary: unknown op " + op);
}

template <class T>
Tensor<T> unary_p(const std::string& op, const Tensor<T>& x, T p1, T p2) {
    if (op == "softplus") return ops::softplus(x, p1, p2);
    if (op == "pow_scalar") return ops::pow_scalar(x, p1);
    if (op == "affine") return ops::affine(x, p1, p2);
    throw Error("ref::unary_p: unknown op " + op);
}

template <class T>
Tensor<T> unary_backward(const std::string& op, const Tensor<T>& g, const Tensor<T>& xy, T p1, T p2) {
    if (op == "exp") return ops::exp_backward(g, xy);
    if (op == "log") return ops::log_backward(g, xy);
    if (op == "sqrt") return ops::sqrt_backward(g, xy);
    if (op == "rsqrt") return ops::rsqrt_backward(g, xy);
    if (op == "abs") return ops::abs_backward(g, xy);
    if (op == "tanh") return ops::tanh_backward(g, xy);
    if (op == "sigmoid") return ops::sigmoid_backward(g, xy);
    if (op == "relu") return ops::relu_backward(g, xy);
    if (op == "square") return ops::square_backward(g, xy);
    if (op == "gelu") return ops::gelu_backward(g, xy, GeluApprox::None);
    if (op == "gelu_tanh") return ops::gelu_backward(g, xy, GeluApprox::Tanh);
    if (op == "softplus") return ops::softplus_backward(g, xy, p1, p2);
    if (op == "pow_scalar") return ops::pow_scalar_backward(g, xy, p1);
    throw Error("ref::unary_backward: unknown op " + op);
}

template <class T>
Tensor<T> binary(const std::string& op, const Tensor<T>& a, const Tensor<T>& b) {
    if (op == "add") return ops::add(a, b);
    if (op == "sub") return ops::sub(a, b);
    if (op == "mul") return ops::mul(a, b);
    if (op == "div") return ops::div(a, b);
    if (op == "pow") return ops::pow(a, b);
    if (op == "maximum") return ops::maximum(a, b);
    if (op == "minimum") return ops::minimum(a, b);
    throw Error("ref::binary: unknown op " + op);
}

template <class T>
Tensor<bool> compare(const std::string& op, const Tensor<T>& a, const Tensor<T>& b) {
    if (op == "eq") return ops::eq(a, b);
    if (op == "ne") return ops::ne(a, b);
    if (op == "lt") return ops::lt(a, b);
    if (op == "le") return ops::le(a, b);
    if (op == "gt") return ops::gt(a, b);
    if (op == "ge") return ops::ge(a, b);
    throw Error("ref::compare: unknown op " + op);
}
template <class T>
Tensor<bool> compare_scalar(const std::string& op, const Tensor<T>& a, T s) {
    if (op == "eq") return ops::eq(a, s);
    if (op == "ne") return ops::ne(a, s);
    if (op == "lt") return ops::lt(a, s);
    if (op == "le") return ops::le(a, s);
    if (op == "gt") return ops::gt(a, s);
    if (op == "ge") return ops::ge(a, s);
    throw Error("ref::compare_scalar: unknown op " + op);
}

template <class T>
Tensor<T> where(const Tensor<bool>& c, const Tensor<T>& a, const Tensor<T>& b) {
    return ops::where(c, a, b);
}

template <class T>
Tensor<T> ternary_backward(const std::string& op, const Tensor<T>& g, const Tensor<T>& a, const Tensor<T>& b,
                           int which) {
    if (op == "pow_backward_base") return ops::pow_backward_base(g, a, b);
    if (op == "pow_backward_exponent") return ops::pow_backward_exponent(g, a, b);
    if (op == "maximum_backward") return ops::maximum_backward(g, a, b, which);
    if (op == "minimum_backward") return ops::minimum_backward(g, a, b, which);
    throw Error("ref::ternary_backward: unknown op " + op);
}

template <class T>
Tensor<T> reduce(const std::string& op, const Tensor<T>& x, const std::vector<std::int64_t>& axes, bool keepdim) {
    if (op == "sum") return ops::sum(x, axes, keepdim);
    if (op == "mean") return ops::mean(x, axes, keepdim);
    if (op == "amax") return ops::amax(x, axes, keepdim);
    if (op == "amin") return ops::amin(x, axes, keepdim);
    if (op == "var") return ops::var(x, axes, 1, keepdim);
    throw Error("ref::reduce: unknown op " + op);
}

template <class T>
Tensor<std::int64_t> argmax(const Tensor<T>& x, std::int64_t axis, bool keepdim) {
    return ops::argmax(x, axis, keepdim);
}

template <class T>
Tensor<T> sum_to(const Tensor<T>& g, const Shape& shape) {
    return ops::sum_to(g, shape);
}

#define POLYMATH_REF_INSTANTIATE(T)                                                                                  \
    template Tensor<T> unary<T>(const std::string&, const Tensor<T>&);                                               \
    template Tensor<T> unary_p<T>(const std::string&, const Tensor<T>&, T, T);                                       \
    template Tensor<T> unary_backward<T>(const std::string&, const Tensor<T>&, const Tensor<T>&, T, T);              \
    template Tensor<T> binary<T>(const std::string&, const Tensor<T>&, const Tensor<T>&);                            \
    template Tensor<bool> compare<T>(const std::string&, const Tensor<T>&, const Tensor<T>&);                        \
    template Tensor<bool> compare_scalar<T>(const std::string&, const Tensor<T>&, T);                                \
    template Tensor<T> where<T>(const Tensor<bool>&, const Tensor<T>&, const Tensor<T>&);                            \
    template Tensor<T> ternary_backward<T>(const std::string&, const Tensor<T>&, const Tensor<T>&, const Tensor<T>&, \
                                           int);                                                                     \
    template Tensor<T> reduce<T>(const std::string&, const Tensor<T>&, const std::vector<std::int64_t>&, bool);      \
    template Tensor<std::int64_t> argmax<T>(const Tensor<T>&, std::int64_t, bool);                                   \
    template Tensor<T> sum_to<T>(const Tensor<T>&, const Shape&);
POLYMATH_REF_INSTANTIATE(float)
POLYMATH_REF_INSTANTIATE(double)
#undef POLYMATH_REF_INSTANTIATE

}  // namespace polymath::ref
