// CPU references for tests/cuda/test_elementwise.cu: thin wrappers over the
// CPU ops (elementwise_ref.cpp is compiled by the host compiler with Eigen;
// the .cu file sees only these declarations). Ops are chosen by name.
// Instantiated for float and double.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <polymath/tensor/tensor.hpp>

namespace polymath::ref {

// exp log sqrt rsqrt abs tanh sigmoid relu square neg gelu gelu_tanh
template <class T>
Tensor<T> unary(const std::string& op, const Tensor<T>& x);
// softplus(x, p1 = beta, p2 = threshold), pow_scalar(x, p1), affine(x, p1, p2)
template <class T>
Tensor<T> unary_p(const std::string& op, const Tensor<T>& x, T p1, T p2);
// <op>_backward(g, xy) for the ops above (gelu_tanh -> the tanh form);
// softplus_backward(g, x, p1, p2), pow_scalar_backward(g, x, p1).
template <class T>
Tensor<T> unary_backward(const std::string& op, const Tensor<T>& g, const Tensor<T>& xy, T p1 = T(0), T p2 = T(0));
// add sub mul div pow maximum minimum
template <class T>
Tensor<T> binary(const std::string& op, const Tensor<T>& a, const Tensor<T>& b);
// eq ne lt le gt ge
template <class T>
Tensor<bool> compare(const std::string& op, const Tensor<T>& a, const Tensor<T>& b);
template <class T>
Tensor<bool> compare_scalar(const std::string& op, const Tensor<T>& a, T s);
template <class T>
Tensor<T> where(const Tensor<bool>& c, const Tensor<T>& a, const Tensor<T>& b);
// pow_backward_base pow_backward_exponent maximum_backward minimum_backward (which: 0 = a, 1 = b)
template <class T>
Tensor<T> ternary_backward(const std::string& op, const Tensor<T>& g, const Tensor<T>& a, const Tensor<T>& b,
                           int which);
// sum mean amax amin var (var: correction 1)
template <class T>
Tensor<T> reduce(const std::string& op, const Tensor<T>& x, const std::vector<std::int64_t>& axes, bool keepdim);
template <class T>
Tensor<std::int64_t> argmax(const Tensor<T>& x, std::int64_t axis, bool keepdim);
template <class T>
Tensor<T> sum_to(const Tensor<T>& g, const Shape& shape);

}  // namespace polymath::ref
