// polymath/autograd/reduce.hpp — differentiable reductions (sum, mean, max,
// min, var). argmax returns plain indices (no gradient).
#pragma once
#include "polymath/autograd/var.hpp"
#include "polymath/ops/reduce.hpp"

namespace polymath {

namespace autograd::detail {
// Reshapes a reduction's gradient so it broadcasts against the input.
template <class T>
Tensor<T> unreduce(const Tensor<T>& g, const Shape& in_shape, const std::vector<std::int64_t>& axes, bool keepdim) {
    if (keepdim) return g;
    const std::vector<int> ax = ops::normalize_axes(axes, in_shape.size(), "backward");
    return g.reshape(ops::reduced_shape(in_shape, ax, true));
}
}  // namespace autograd::detail

template <class T>
Var<T> sum(const Var<T>& x, const std::vector<std::int64_t>& axes = {}, bool keepdim = false) {
    return autograd::make_result("sum", ops::sum(x.value(), axes, keepdim), {&x},
                                 [shape = x.shape(), axes, keepdim](const Tensor<T>& g, autograd::GradSink<T, Cpu>& s) {
                                     s.add(0, autograd::detail::unreduce(g, shape, axes, keepdim).expand(shape));
                                 });
}
template <class T>
Var<T> mean(const Var<T>& x, const std::vector<std::int64_t>& axes = {}, bool keepdim = false) {
    const T inv = T(1) / T(ops::reduced_count(x.value(), axes, "mean"));
    return autograd::make_result("mean", ops::mean(x.value(), axes, keepdim), {&x},
                                 [shape = x.shape(), axes, keepdim, inv](const Tensor<T>& g, autograd::GradSink<T, Cpu>& s) {
                                     s.add(0, ops::mul_scalar(autograd::detail::unreduce(g, shape, axes, keepdim), inv).expand(shape));
                                 });
}

namespace autograd::detail {
// Backward of max/min: the gradient is split evenly among the elements equal
// to the result (like torch.amax).
template <class T>
void extremum_backward(const Tensor<T>& g, const Tensor<T>& x, const Tensor<T>& y, const std::vector<std::int64_t>& axes,
                       bool keepdim, GradSink<T, Cpu>& s) {
    const Tensor<T> yk = unreduce(y, x.shape(), axes, keepdim);
    const Tensor<T> gk = unreduce(g, x.shape(), axes, keepdim);
    const Tensor<T> mask = ops::binary_map<T>("max_backward", x, yk,
                                              [](const auto& a, const auto& b) { return (a == b).template cast<T>(); });
    const Tensor<T> count = ops::sum(mask, axes, true);
    s.add(0, ops::ternary_map<T>("max_backward", mask, gk, count,
                                 [](const auto& m, const auto& gg, const auto& c) { return m * gg / c; }));
}
}  // namespace autograd::detail

template <class T>
Var<T> amax(const Var<T>& x, const std::vector<std::int64_t>& axes = {}, bool keepdim = false) {
    Tensor<T> y = ops::amax(x.value(), axes, keepdim);
    return autograd::make_result("amax", y, {&x},
                                 [xv = x.value(), y, axes, keepdim](const Tensor<T>& g, autograd::GradSink<T, Cpu>& s) {
                                     autograd::detail::extremum_backward(g, xv, y, axes, keepdim, s);
                                 });
}
template <class T>
Var<T> amin(const Var<T>& x, const std::vector<std::int64_t>& axes = {}, bool keepdim = false) {
    Tensor<T> y = ops::amin(x.value(), axes, keepdim);
    return autograd::make_result("amin", y, {&x},
                                 [xv = x.value(), y, axes, keepdim](const Tensor<T>& g, autograd::GradSink<T, Cpu>& s) {
                                     autograd::detail::extremum_backward(g, xv, y, axes, keepdim, s);
                                 });
}
// max / min over axes: the same as amax / amin (values only).
template <class T>
Var<T> max(const Var<T>& x, const std::vector<std::int64_t>& axes = {}, bool keepdim = false) { return amax(x, axes, keepdim); }
template <class T>
Var<T> min(const Var<T>& x, const std::vector<std::int64_t>& axes = {}, bool keepdim = false) { return amin(x, axes, keepdim); }

template <class T>
Var<T> var(const Var<T>& x, const std::vector<std::int64_t>& axes = {}, std::int64_t correction = 1, bool keepdim = false) {
    const std::int64_t n = ops::reduced_count(x.value(), axes, "var");
    return autograd::make_result(
        "var", ops::var(x.value(), axes, correction, keepdim), {&x},
        [xv = x.value(), axes, keepdim, scale = T(2) / T(n - correction)](const Tensor<T>& g, autograd::GradSink<T, Cpu>& s) {
            const Tensor<T> m = ops::mean(xv, axes, true);
            const Tensor<T> gk = autograd::detail::unreduce(g, xv.shape(), axes, keepdim);
            s.add(0, ops::ternary_map<T>("var_backward", xv, m, gk, [scale](const auto& a, const auto& mm, const auto& gg) {
                      return (a - mm) * gg * scale;
                  }));
        });
}

template <class T>
Tensor<std::int64_t> argmax(const Var<T>& x, std::int64_t axis, bool keepdim = false) {
    return ops::argmax(x.value(), axis, keepdim);
}

}  // namespace polymath
