// polymath/autograd/topk.hpp — differentiable topk (values only; indices carry no gradient).
//
//   auto [values, indices] = topk(x, k, axis = -1, largest = true, sorted = true);
//
// The gradient of values is scattered back to the selected positions of x
// (zeros elsewhere).
#pragma once
#include <cstdint>

#include "polymath/autograd/var.hpp"
#include "polymath/ops/topk.hpp"

namespace polymath {

template <class T>
struct TopKVar {
    Var<T> values;
    Tensor<std::int64_t> indices;
};

template <class T>
TopKVar<T> topk(const Var<T>& x, std::int64_t k, std::int64_t axis = -1, bool largest = true, bool sorted = true) {
    ops::TopK<T> r = ops::topk(x.value(), k, axis, largest, sorted);
    Tensor<std::int64_t> indices = r.indices;
    Var<T> values = autograd::make_result("topk", std::move(r.values), {&x},
                                          [shape = x.shape(), axis, indices](const Tensor<T>& g,
                                                                             autograd::GradSink<T, Cpu>& s) {
                                              s.add(0, ops::gather_backward(g, shape, axis, indices));
                                          });
    return {std::move(values), std::move(indices)};
}

}  // namespace polymath
