// polymath/autograd/index.hpp — differentiable index_select, index_add, gather, scatter_add.
//
// The indices are plain Tensor<int64_t> (no gradient). Gradients:
//   index_select: dx = index_add(zeros(x), axis, idx, g)       (repeated indices accumulate)
//   index_add:    dx = g,  dsrc = index_select(g, axis, idx)
//   gather:       dx = scatter_add(zeros(x), axis, idx, g)
//   scatter_add:  dx = g,  dsrc = gather(g, axis, idx) (zero where src is larger than idx)
// All accumulation is deterministic (see ops/index.hpp).
#pragma once
#include <cstdint>

#include "polymath/autograd/var.hpp"
#include "polymath/ops/index.hpp"

namespace polymath {

template <class T>
Var<T> index_select(const Var<T>& x, std::int64_t axis, const Tensor<std::int64_t>& idx) {
    return autograd::make_result("index_select", ops::index_select(x.value(), axis, idx), {&x},
                                 [shape = x.shape(), axis, idx](const Tensor<T>& g, autograd::GradSink<T, Cpu>& s) {
                                     s.add(0, ops::index_select_backward(g, shape, axis, idx));
                                 });
}

template <class T>
Var<T> index_add(const Var<T>& x, std::int64_t axis, const Tensor<std::int64_t>& idx, const Var<T>& src) {
    return autograd::make_result("index_add", ops::index_add(x.value(), axis, idx, src.value()), {&x, &src},
                                 [axis, idx](const Tensor<T>& g, autograd::GradSink<T, Cpu>& s) {
                                     if (s.needs(0)) s.add(0, g);
                                     if (s.needs(1)) s.add(1, ops::index_select(g, axis, idx));
                                 });
}

template <class T>
Var<T> gather(const Var<T>& x, std::int64_t axis, const Tensor<std::int64_t>& idx) {
    return autograd::make_result("gather", ops::gather(x.value(), axis, idx), {&x},
                                 [shape = x.shape(), axis, idx](const Tensor<T>& g, autograd::GradSink<T, Cpu>& s) {
                                     s.add(0, ops::gather_backward(g, shape, axis, idx));
                                 });
}

template <class T>
Var<T> scatter_add(const Var<T>& x, std::int64_t axis, const Tensor<std::int64_t>& idx, const Var<T>& src) {
    return autograd::make_result("scatter_add", ops::scatter_add(x.value(), axis, idx, src.value()), {&x, &src},
                                 [src_shape = src.shape(), axis, idx](const Tensor<T>& g, autograd::GradSink<T, Cpu>& s) {
                                     if (s.needs(0)) s.add(0, g);
                                     if (s.needs(1)) s.add(1, ops::scatter_add_src_backward(g, src_shape, axis, idx));
                                 });
}

}  // namespace polymath
