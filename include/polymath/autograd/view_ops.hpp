// polymath/autograd/view_ops.hpp — differentiable shape and view ops on Vars.
//
// The result's value is the Tensor view (no copy, shares the input's
// storage); the backward maps the gradient back to the input's geometry
// (ops/view_ops.hpp): reshape-like ops reshape it, permute/transpose apply
// the inverse permutation, expand sums over the broadcast axes, and
// slice/narrow/select copy it into zeros of the input's shape.
#pragma once
#include <cstdint>
#include <vector>

#include "polymath/autograd/var.hpp"
#include "polymath/ops/view_ops.hpp"

namespace polymath {

namespace autograd::detail {
// Result of an op whose gradient is g reshaped to the input's shape.
template <class T>
Var<T> reshaped_result(const char* name, Tensor<T> value, const Var<T>& x) {
    return make_result(name, std::move(value), {&x}, [shape = x.shape()](const Tensor<T>& g, GradSink<T, Cpu>& s) {
        s.add(0, g.reshape(shape));
    });
}
// Result of an op whose gradient is g itself.
template <class T>
Var<T> identity_result(const char* name, Tensor<T> value, const Var<T>& x) {
    return make_result(name, std::move(value), {&x},
                       [](const Tensor<T>& g, GradSink<T, Cpu>& s) { s.add(0, g); });
}
}  // namespace autograd::detail

template <class T>
Var<T> reshape(const Var<T>& x, const Shape& shape) {
    return autograd::detail::reshaped_result("reshape", x.value().reshape(shape), x);
}
template <class T>
Var<T> view(const Var<T>& x, const Shape& shape) {
    return autograd::detail::reshaped_result("view", x.value().view(shape), x);
}
template <class T>
Var<T> flatten(const Var<T>& x, std::int64_t start = 0, std::int64_t end = -1) {
    return autograd::detail::reshaped_result("flatten", x.value().flatten(start, end), x);
}
template <class T>
Var<T> squeeze(const Var<T>& x) {
    return autograd::detail::reshaped_result("squeeze", x.value().squeeze(), x);
}
template <class T>
Var<T> squeeze(const Var<T>& x, std::int64_t axis) {
    return autograd::detail::reshaped_result("squeeze", x.value().squeeze(axis), x);
}
template <class T>
Var<T> unsqueeze(const Var<T>& x, std::int64_t axis) {
    return autograd::detail::reshaped_result("unsqueeze", x.value().unsqueeze(axis), x);
}

template <class T>
Var<T> permute(const Var<T>& x, const std::vector<std::int64_t>& dims) {
    Tensor<T> v = x.value().permute(dims);  // validates dims
    return autograd::make_result("permute", std::move(v), {&x},
                                 [inv = ops::inverse_permutation(dims, x.dim())](const Tensor<T>& g,
                                                                                 autograd::GradSink<T, Cpu>& s) {
                                     s.add(0, g.permute(inv));
                                 });
}
template <class T>
Var<T> transpose(const Var<T>& x, std::int64_t d0, std::int64_t d1) {
    return autograd::make_result("transpose", x.value().transpose(d0, d1), {&x},
                                 [d0, d1](const Tensor<T>& g, autograd::GradSink<T, Cpu>& s) {
                                     s.add(0, g.transpose(d0, d1));
                                 });
}

template <class T>
Var<T> slice(const Var<T>& x, std::int64_t axis, std::int64_t start, std::int64_t end, std::int64_t step = 1) {
    return autograd::make_result("slice", x.value().slice(axis, start, end, step), {&x},
                                 [shape = x.shape(), axis, start, end, step](const Tensor<T>& g,
                                                                             autograd::GradSink<T, Cpu>& s) {
                                     s.add(0, ops::slice_backward(g, shape, axis, start, end, step));
                                 });
}
template <class T>
Var<T> narrow(const Var<T>& x, std::int64_t axis, std::int64_t start, std::int64_t length) {
    return autograd::make_result("narrow", x.value().narrow(axis, start, length), {&x},
                                 [shape = x.shape(), axis, start, length](const Tensor<T>& g,
                                                                          autograd::GradSink<T, Cpu>& s) {
                                     s.add(0, ops::narrow_backward(g, shape, axis, start, length));
                                 });
}
template <class T>
Var<T> select(const Var<T>& x, std::int64_t axis, std::int64_t index) {
    return autograd::make_result("select", x.value().select(axis, index), {&x},
                                 [shape = x.shape(), axis, index](const Tensor<T>& g, autograd::GradSink<T, Cpu>& s) {
                                     s.add(0, ops::select_backward(g, shape, axis, index));
                                 });
}

// Broadcast view; the gradient is summed back over the broadcast axes.
template <class T>
Var<T> expand(const Var<T>& x, const Shape& shape) {
    return autograd::make_result("expand", x.value().expand(shape), {&x},
                                 [in = x.shape()](const Tensor<T>& g, autograd::GradSink<T, Cpu>& s) {
                                     s.add(0, ops::expand_backward(g, in));
                                 });
}
template <class T>
Var<T> broadcast_to(const Var<T>& x, const Shape& shape) {
    return expand(x, shape);
}

// A contiguous copy when needed (else the same storage); identity gradient.
template <class T>
Var<T> contiguous(const Var<T>& x) {
    return autograd::detail::identity_result("contiguous", x.value().contiguous(), x);
}
// Always a new contiguous copy; identity gradient.
template <class T>
Var<T> clone(const Var<T>& x) {
    return autograd::detail::identity_result("clone", x.value().clone(), x);
}

}  // namespace polymath
