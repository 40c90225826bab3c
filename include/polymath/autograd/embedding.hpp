// polymath/autograd/embedding.hpp — differentiable embedding lookup.
//
//   Var<float> e = embedding(weight /* [V, D] */, indices /* any shape */, padding_idx);
//
// The gradient w.r.t. the table is the deterministic scatter-add of the
// output gradient rows (ops::embedding_backward); the row padding_idx gets none.
#pragma once
#include <cstdint>

#include "polymath/autograd/var.hpp"
#include "polymath/ops/embedding.hpp"

namespace polymath {

template <class T>
Var<T> embedding(const Var<T>& weight, const Tensor<std::int64_t>& indices, std::int64_t padding_idx = -1) {
    return autograd::make_result("embedding", ops::embedding(weight.value(), indices, padding_idx), {&weight},
                                 [indices, V = weight.shape()[0], padding_idx](const Tensor<T>& g,
                                                                               autograd::GradSink<T, Cpu>& s) {
                                     s.add(0, ops::embedding_backward(g, indices, V, padding_idx));
                                 });
}

}  // namespace polymath
